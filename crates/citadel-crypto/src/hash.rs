//! Hash functions: SHA-2 (aws-lc-rs), SHA-3 and SHAKE (RustCrypto `sha3`, `shake`), BLAKE3.

use core::fmt;
use core::str::FromStr;
use sha3::Digest as _;

/// A hash function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// SHA3-224.
    Sha3_224,
    /// SHA3-256.
    Sha3_256,
    /// SHA3-384.
    Sha3_384,
    /// SHA3-512.
    Sha3_512,
    /// BLAKE3 (32-byte output).
    Blake3,
}

impl HashAlgorithm {
    /// Every hash, in display order.
    pub const ALL: [HashAlgorithm; 9] = [
        HashAlgorithm::Sha224,
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
        HashAlgorithm::Sha3_224,
        HashAlgorithm::Sha3_256,
        HashAlgorithm::Sha3_384,
        HashAlgorithm::Sha3_512,
        HashAlgorithm::Blake3,
    ];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha224 => "sha224",
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
            HashAlgorithm::Sha3_224 => "sha3-224",
            HashAlgorithm::Sha3_256 => "sha3-256",
            HashAlgorithm::Sha3_384 => "sha3-384",
            HashAlgorithm::Sha3_512 => "sha3-512",
            HashAlgorithm::Blake3 => "blake3",
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        HashAlgorithm::ALL
            .iter()
            .copied()
            .find(|h| h.name() == s.to_ascii_lowercase())
            .ok_or_else(|| crate::Error::UnknownAlgorithm(s.to_string()))
    }
}

enum State {
    Sha2(aws_lc_rs::digest::Context),
    Sha3_224(sha3::Sha3_224),
    Sha3_256(sha3::Sha3_256),
    Sha3_384(sha3::Sha3_384),
    Sha3_512(sha3::Sha3_512),
    Blake3(Box<blake3::Hasher>),
}

/// An incremental hasher.
pub struct Hasher(State);

impl Hasher {
    /// Starts a hash.
    pub fn new(alg: HashAlgorithm) -> Self {
        use aws_lc_rs::digest;
        Hasher(match alg {
            HashAlgorithm::Sha224 => State::Sha2(digest::Context::new(&digest::SHA224)),
            HashAlgorithm::Sha256 => State::Sha2(digest::Context::new(&digest::SHA256)),
            HashAlgorithm::Sha384 => State::Sha2(digest::Context::new(&digest::SHA384)),
            HashAlgorithm::Sha512 => State::Sha2(digest::Context::new(&digest::SHA512)),
            HashAlgorithm::Sha3_224 => State::Sha3_224(sha3::Sha3_224::new()),
            HashAlgorithm::Sha3_256 => State::Sha3_256(sha3::Sha3_256::new()),
            HashAlgorithm::Sha3_384 => State::Sha3_384(sha3::Sha3_384::new()),
            HashAlgorithm::Sha3_512 => State::Sha3_512(sha3::Sha3_512::new()),
            HashAlgorithm::Blake3 => State::Blake3(Box::new(blake3::Hasher::new())),
        })
    }

    /// Absorbs bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            State::Sha2(c) => c.update(data),
            State::Sha3_224(h) => h.update(data),
            State::Sha3_256(h) => h.update(data),
            State::Sha3_384(h) => h.update(data),
            State::Sha3_512(h) => h.update(data),
            State::Blake3(h) => {
                h.update(data);
            }
        }
    }

    /// Finishes and returns the digest.
    pub fn finish(self) -> Vec<u8> {
        match self.0 {
            State::Sha2(c) => c.finish().as_ref().to_vec(),
            State::Sha3_224(h) => h.finalize().to_vec(),
            State::Sha3_256(h) => h.finalize().to_vec(),
            State::Sha3_384(h) => h.finalize().to_vec(),
            State::Sha3_512(h) => h.finalize().to_vec(),
            State::Blake3(h) => h.finalize().as_bytes().to_vec(),
        }
    }
}

/// One-shot hash.
pub fn digest(alg: HashAlgorithm, data: &[u8]) -> Vec<u8> {
    let mut h = Hasher::new(alg);
    h.update(data);
    h.finish()
}

/// SHA-256 as a fixed array.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref());
    out
}

/// SHA3-256 over the concatenation of `parts`.
pub fn sha3_256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = sha3::Sha3_256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// SHAKE256 of `input`, `out.len()` bytes.
pub fn shake256(input: &[u8], out: &mut [u8]) {
    use shake::{ExtendableOutput, Update};
    let mut h = shake::Shake256::default();
    h.update(input);
    h.finalize_xof_into(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers_for_abc() {
        let cases = [
            (
                HashAlgorithm::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                HashAlgorithm::Sha3_256,
                "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
            ),
            (
                HashAlgorithm::Sha224,
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
            (
                HashAlgorithm::Sha3_224,
                "e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf",
            ),
            (
                HashAlgorithm::Sha3_384,
                "ec01498288516fc926459f58e2c6ad8df9b473cb0fc08c2596da7cf0e49be4b298d88cea927ac7f539f1edf228376d25",
            ),
            (
                HashAlgorithm::Blake3,
                "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
            ),
        ];
        for (alg, want) in cases {
            assert_eq!(hex::encode(digest(alg, b"abc")), want, "{alg}");
        }
        assert_eq!(digest(HashAlgorithm::Sha384, b"").len(), 48);
        assert_eq!(digest(HashAlgorithm::Sha512, b"").len(), 64);
        assert_eq!(digest(HashAlgorithm::Sha3_512, b"").len(), 64);
    }

    #[test]
    fn shake256_empty() {
        let mut out = [0u8; 16];
        shake256(b"", &mut out);
        assert_eq!(hex::encode(out), "46b9dd2b0ba88d13233b3feb743eeb24");
    }
}
