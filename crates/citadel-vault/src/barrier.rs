//! The barrier: everything the vault stores is encrypted with AES-256-GCM
//! under a keyring of terms (`sys/rotate` adds one; old terms still
//! decrypt). The keyring itself is stored encrypted under the root key,
//! which exists only in memory while the vault is unsealed.
//!
//! Blob: `0x01 ‖ term (u32 BE) ‖ nonce (12) ‖ ciphertext ‖ tag`, with the
//! storage key as associated data, so a blob moved to another key fails to
//! decrypt.

use crate::Error;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use citadel_crypto::aead::{AeadAlgorithm, AeadKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const VERSION: u8 = 1;

/// Encrypts `plaintext` for storage at `path` under `key` (term `term`).
pub fn seal_blob(key: &[u8], term: u32, path: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let k =
        AeadKey::new(AeadAlgorithm::Aes256Gcm, key).map_err(|e| Error::Internal(e.to_string()))?;
    let nonce =
        citadel_crypto::random::array::<12>().map_err(|e| Error::Internal(e.to_string()))?;
    let ct = k
        .seal(&nonce, path.as_bytes(), plaintext)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut out = Vec::with_capacity(17 + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// The term a blob was sealed under.
pub fn blob_term(blob: &[u8]) -> Result<u32, Error> {
    if blob.len() < 17 + 16 || blob[0] != VERSION {
        return Err(Error::Corrupt("a stored blob is malformed".into()));
    }
    Ok(u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]))
}

/// Decrypts a blob stored at `path`.
pub fn open_blob(key: &[u8], path: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    blob_term(blob)?;
    let k =
        AeadKey::new(AeadAlgorithm::Aes256Gcm, key).map_err(|e| Error::Internal(e.to_string()))?;
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&blob[5..17]);
    k.open(&nonce, path.as_bytes(), &blob[17..])
        .map(Zeroizing::new)
        .map_err(|_| Error::Corrupt(format!("{path}: stored data does not authenticate")))
}

/// The keyring: every term's key; new data uses the newest.
pub struct Keyring {
    terms: Vec<(u32, Zeroizing<[u8; 32]>)>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    term: u32,
    key: String,
    time: u64,
}

impl Keyring {
    /// A keyring with one fresh term.
    pub fn new() -> Result<Self, Error> {
        let key = citadel_crypto::random::secret_array::<32>()
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Self {
            terms: vec![(1, key)],
        })
    }

    /// The active term.
    pub fn term(&self) -> u32 {
        self.terms.last().map(|t| t.0).unwrap_or(0)
    }

    /// Adds a term and makes it active; returns it.
    pub fn rotate(&mut self) -> Result<u32, Error> {
        let key = citadel_crypto::random::secret_array::<32>()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let term = self.term() + 1;
        self.terms.push((term, key));
        Ok(term)
    }

    /// Encrypts for storage at `path` with the active term.
    pub fn seal(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let (term, key) = self
            .terms
            .last()
            .ok_or_else(|| Error::Internal("empty keyring".into()))?;
        seal_blob(&key[..], *term, path, plaintext)
    }

    /// Decrypts a blob stored at `path`, whatever its term.
    pub fn open(&self, path: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let term = blob_term(blob)?;
        let (_, key) =
            self.terms.iter().find(|(t, _)| *t == term).ok_or_else(|| {
                Error::Corrupt(format!("{path}: sealed under unknown term {term}"))
            })?;
        open_blob(&key[..], path, blob)
    }

    /// Serialises (for encryption under the root key).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let s = Stored {
            keys: self
                .terms
                .iter()
                .map(|(term, key)| StoredKey {
                    term: *term,
                    key: B64.encode(&key[..]),
                    time: 0,
                })
                .collect(),
        };
        Zeroizing::new(serde_json::to_vec(&s).unwrap_or_default())
    }

    /// Parses what [`to_bytes`](Self::to_bytes) wrote.
    pub fn from_bytes(b: &[u8]) -> Result<Self, Error> {
        let s: Stored =
            serde_json::from_slice(b).map_err(|e| Error::Corrupt(format!("keyring: {e}")))?;
        let mut terms = Vec::new();
        for k in s.keys {
            let raw = Zeroizing::new(
                B64.decode(&k.key)
                    .map_err(|_| Error::Corrupt("keyring key".into()))?,
            );
            let key: [u8; 32] = raw[..]
                .try_into()
                .map_err(|_| Error::Corrupt("keyring key length".into()))?;
            terms.push((k.term, Zeroizing::new(key)));
        }
        terms.sort_by_key(|t| t.0);
        if terms.is_empty() {
            return Err(Error::Corrupt("empty keyring".into()));
        }
        Ok(Self { terms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_bound_to_their_path_and_old_terms_still_open() {
        let mut k = Keyring::new().unwrap();
        let b1 = k.seal("secret/a", b"one").unwrap();
        assert!(k.open("secret/b", &b1).is_err(), "moved blob");
        k.rotate().unwrap();
        let b2 = k.seal("secret/a", b"two").unwrap();
        assert_eq!(blob_term(&b2).unwrap(), 2);
        let k2 = Keyring::from_bytes(&k.to_bytes()).unwrap();
        assert_eq!(&k2.open("secret/a", &b1).unwrap()[..], b"one");
        assert_eq!(&k2.open("secret/a", &b2).unwrap()[..], b"two");
        let mut bad = b2.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(k2.open("secret/a", &bad).is_err());
    }
}
