//! HKDF (RFC 5869) with SHA-256 and SHA-384, and HMAC-SHA-256 (aws-lc-rs).

use crate::secret::SecretBytes;
use crate::{Error, Result};
use aws_lc_rs::{hkdf, hmac};

/// The hash behind an HKDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HkdfHash {
    /// HKDF-SHA-256.
    Sha256,
    /// HKDF-SHA-384.
    Sha384,
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Extract then HKDF-Expand: derives `len` bytes from `ikm`.
/// `len` may be at most 255 times the hash length.
pub fn hkdf(
    hash: HkdfHash,
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    len: usize,
) -> Result<SecretBytes> {
    let prk = extract(hash, salt, ikm);
    expand(&prk, info, len)
}

/// HKDF-Extract: the pseudorandom key, kept inside the backend.
pub fn extract(hash: HkdfHash, salt: &[u8], ikm: &[u8]) -> hkdf::Prk {
    let alg = match hash {
        HkdfHash::Sha256 => hkdf::HKDF_SHA256,
        HkdfHash::Sha384 => hkdf::HKDF_SHA384,
    };
    hkdf::Salt::new(alg, salt).extract(ikm)
}

/// HKDF-Expand from an extracted key.
pub fn expand(prk: &hkdf::Prk, info: &[u8], len: usize) -> Result<SecretBytes> {
    let info = [info];
    let okm = prk
        .expand(&info, Len(len))
        .map_err(|_| Error::InvalidParameter(format!("HKDF output of {len} bytes is too long")))?;
    let mut out = vec![0u8; len];
    okm.fill(&mut out)
        .map_err(|_| Error::InvalidParameter(format!("HKDF output of {len} bytes is too long")))?;
    Ok(SecretBytes::new(out))
}

/// HKDF-SHA-256-Extract returning the pseudorandom key bytes (needed where a
/// protocol uses the PRK itself, as HPKE's `LabeledExtract` does).
pub fn hkdf_sha256_extract(salt: &[u8], ikm: &[u8]) -> SecretBytes {
    // HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM) (RFC 5869 §2.2).
    SecretBytes::from_slice(&hmac_sha256(salt, ikm))
}

/// HKDF-SHA-256-Expand from pseudorandom key bytes.
pub fn hkdf_sha256_expand(prk: &[u8], info: &[u8], len: usize) -> Result<SecretBytes> {
    expand(&hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk), info, len)
}

/// HMAC-SHA-256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&k, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Verifies an HMAC-SHA-256 tag in constant time.
pub fn hmac_sha256_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&k, data, tag).is_ok()
}

/// The hash behind an HMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HmacHash {
    /// HMAC-SHA-224.
    Sha224,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-384.
    Sha384,
    /// HMAC-SHA-512.
    Sha512,
}

impl HmacHash {
    fn backend(self) -> hmac::Algorithm {
        match self {
            HmacHash::Sha224 => hmac::HMAC_SHA224,
            HmacHash::Sha256 => hmac::HMAC_SHA256,
            HmacHash::Sha384 => hmac::HMAC_SHA384,
            HmacHash::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// HMAC of `data` under `key` with the chosen hash.
pub fn hmac(hash: HmacHash, key: &[u8], data: &[u8]) -> Vec<u8> {
    let k = hmac::Key::new(hash.backend(), key);
    hmac::sign(&k, data).as_ref().to_vec()
}

/// Verifies an HMAC tag in constant time.
pub fn hmac_verify(hash: HmacHash, key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let k = hmac::Key::new(hash.backend(), key);
    hmac::verify(&k, data, tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_known_answers() {
        // Wikipedia's HMAC examples, checked with Python's hmac module.
        let msg = b"The quick brown fox jumps over the lazy dog";
        let cases = [
            (
                HmacHash::Sha224,
                "88ff8b54675d39b8f72322e65ff945c52d96379988ada25639747e69",
            ),
            (
                HmacHash::Sha256,
                "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
            ),
            (
                HmacHash::Sha384,
                "d7f4727e2c0b39ae0f1e40cc96f60242d5b7801841cea6fc592c5d3e1ae50700582a96cf35e1e554995fe4e03381c237",
            ),
            (
                HmacHash::Sha512,
                "b42af09057bac1e2d41708e48a902e09b5ff7f12ab428a4fe86653c73dd248fb82f948a549f7b791a5b41915ee4d1ec3935357e4e2317250d0372afa2ebeeb3a",
            ),
        ];
        for (h, want) in cases {
            let tag = hmac(h, b"key", msg);
            assert_eq!(hex::encode(&tag), want, "{h:?}");
            assert!(hmac_verify(h, b"key", msg, &tag));
            assert!(!hmac_verify(h, b"key", b"other", &tag));
        }
    }

    #[test]
    fn rfc5869_case_1() {
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let okm = hkdf(HkdfHash::Sha256, &salt, &ikm, &info, 42).unwrap();
        assert_eq!(
            hex::encode(okm.expose()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        assert!(hkdf(HkdfHash::Sha256, &salt, &ikm, &info, 255 * 32 + 1).is_err());
        let prk = hkdf_sha256_extract(&salt, &ikm);
        assert_eq!(
            hex::encode(prk.expose()),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
        );
        assert_eq!(hkdf_sha256_expand(prk.expose(), &info, 42).unwrap(), okm);
    }
}
