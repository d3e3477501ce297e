//! Authenticated encryption: AES-256-GCM and ChaCha20-Poly1305 (aws-lc-rs).

use crate::{Error, Result};
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use core::fmt;

/// Key length of both AEADs.
pub const KEY_LEN: usize = 32;
/// Nonce length of both AEADs.
pub const NONCE_LEN: usize = 12;
/// Tag length of both AEADs.
pub const TAG_LEN: usize = 16;

/// An AEAD algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AeadAlgorithm {
    /// AES-256-GCM (NIST SP 800-38D).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439).
    ChaCha20Poly1305,
}

impl AeadAlgorithm {
    fn backend(self) -> &'static aead::Algorithm {
        match self {
            AeadAlgorithm::Aes256Gcm => &aead::AES_256_GCM,
            AeadAlgorithm::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            AeadAlgorithm::Aes256Gcm => "aes-256-gcm",
            AeadAlgorithm::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }
}

/// A key for one AEAD algorithm. The backend keeps (and wipes) the key schedule.
pub struct AeadKey {
    alg: AeadAlgorithm,
    key: LessSafeKey,
}

impl AeadKey {
    /// Creates a key from 32 bytes.
    pub fn new(alg: AeadAlgorithm, key: &[u8]) -> Result<Self> {
        let unbound = UnboundKey::new(alg.backend(), key).map_err(|_| {
            crate::error::invalid_key(
                alg.name(),
                format!("key must be {KEY_LEN} bytes, got {}", key.len()),
            )
        })?;
        Ok(Self {
            alg,
            key: LessSafeKey::new(unbound),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> AeadAlgorithm {
        self.alg
    }

    /// Encrypts `in_out` in place and appends the tag. The nonce must never
    /// repeat under one key.
    pub fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut Vec<u8>,
    ) -> Result<()> {
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), in_out)
            .map_err(|_| Error::Backend("AEAD seal"))
    }

    /// Encrypts `plaintext`, returning ciphertext || tag.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
        buf.extend_from_slice(plaintext);
        self.seal_in_place(nonce, aad, &mut buf)?;
        Ok(buf)
    }

    /// Decrypts ciphertext || tag in place, leaving the plaintext in `in_out`.
    pub fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut Vec<u8>,
    ) -> Result<()> {
        let len = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), in_out)
            .map_err(|_| Error::DecryptionFailed)?
            .len();
        in_out.truncate(len);
        Ok(())
    }

    /// Decrypts ciphertext || tag into `out` (which must be exactly
    /// `ciphertext.len() - TAG_LEN` bytes), leaving the input untouched; on
    /// failure `out` holds no plaintext.
    pub fn open_to(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        let split = ciphertext
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(Error::DecryptionFailed)?;
        if out.len() != split {
            return Err(Error::InvalidParameter(
                "output buffer has the wrong length".into(),
            ));
        }
        let (ct, tag) = ciphertext.split_at(split);
        self.key
            .open_separate_gather(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                ct,
                tag,
                out,
            )
            .map_err(|_| {
                out.fill(0);
                Error::DecryptionFailed
            })
    }

    /// Decrypts ciphertext || tag.
    pub fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
        let mut buf = ciphertext.to_vec();
        self.open_in_place(nonce, aad, &mut buf)?;
        Ok(buf)
    }
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AeadKey({}, [REDACTED])", self.alg.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        for alg in [AeadAlgorithm::Aes256Gcm, AeadAlgorithm::ChaCha20Poly1305] {
            let k = AeadKey::new(alg, &[7u8; 32]).unwrap();
            let n = [1u8; 12];
            let ct = k.seal(&n, b"aad", b"hello world").unwrap();
            assert_eq!(k.open(&n, b"aad", &ct).unwrap(), b"hello world");
            let mut bad = ct.clone();
            bad[0] ^= 1;
            assert_eq!(k.open(&n, b"aad", &bad), Err(Error::DecryptionFailed));
            assert_eq!(k.open(&n, b"aae", &ct), Err(Error::DecryptionFailed));
            assert_eq!(
                k.open(&n, b"aad", &ct[..ct.len() - 1]),
                Err(Error::DecryptionFailed)
            );
            assert_eq!(k.open(&n, b"aad", &ct[..3]), Err(Error::DecryptionFailed));
            let mut out = vec![0u8; ct.len() - TAG_LEN];
            k.open_to(&n, b"aad", &ct, &mut out).unwrap();
            assert_eq!(out, b"hello world");
            assert_eq!(
                k.open_to(&n, b"aad", &bad, &mut out),
                Err(Error::DecryptionFailed)
            );
            assert_eq!(out, vec![0u8; out.len()]);
            let other = AeadKey::new(alg, &[8u8; 32]).unwrap();
            assert_eq!(other.open(&n, b"aad", &ct), Err(Error::DecryptionFailed));
            assert!(AeadKey::new(alg, &[0u8; 16]).is_err());
        }
    }
}
