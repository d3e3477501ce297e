//! The MLKEM768-X25519 hybrid KEM (X-Wing, draft-connolly-cfrg-xwing-kem,
//! as used by HPKE-PQ and age v1.3's `mlkem768x25519` recipients).
//!
//! A composition of [`crate::kem`] (ML-KEM-768), [`crate::x25519`] and
//! SHA3-256/SHAKE256; checked against the age CCTV vectors in `citadel-age`.

use crate::hash::{sha3_256, shake256};
use crate::kem;
use crate::secret::SecretBytes;
use crate::x25519::StaticSecret;
use crate::{Algorithm, Error, Result, random};
use core::fmt;
use zeroize::Zeroizing;

/// Seed (private key) length.
pub const SEED_LEN: usize = 32;
/// Encapsulation key length: ML-KEM-768 key (1184) then X25519 point (32).
pub const PUBLIC_KEY_LEN: usize = 1216;
/// Ciphertext length: ML-KEM-768 ciphertext (1088) then X25519 share (32).
pub const CIPHERTEXT_LEN: usize = 1120;
const MLKEM_PK: usize = 1184;
const MLKEM_CT: usize = 1088;
/// The X-Wing combiner label `\./` `/^\`.
const LABEL: &[u8; 6] = b"\\.//^\\";

/// An X-Wing decapsulation key, kept as its 32-byte seed plus the expanded parts.
pub struct DecapsulationKey {
    seed: Zeroizing<[u8; SEED_LEN]>,
    mlkem: kem::DecapsulationKey,
    x25519: StaticSecret,
}

impl DecapsulationKey {
    /// A fresh key.
    pub fn generate() -> Result<Self> {
        let seed = random::secret_array::<SEED_LEN>()?;
        Self::from_seed(seed.as_ref())
    }

    /// Expands a 32-byte seed: SHAKE256(seed, 96) = ML-KEM d‖z (64) ‖ X25519 scalar (32).
    pub fn from_seed(seed: &[u8]) -> Result<Self> {
        let seed: [u8; SEED_LEN] = seed.try_into().map_err(|_| {
            crate::error::invalid_key(
                "mlkem768x25519",
                format!("seed must be {SEED_LEN} bytes, got {}", seed.len()),
            )
        })?;
        let mut expanded = Zeroizing::new([0u8; 96]);
        shake256(&seed, expanded.as_mut());
        let mlkem = kem::DecapsulationKey::from_seed(Algorithm::MlKem768, &expanded[..64])?;
        let x25519 = StaticSecret::from_bytes(&expanded[64..])?;
        Ok(Self {
            seed: Zeroizing::new(seed),
            mlkem,
            x25519,
        })
    }

    /// The 32-byte seed.
    pub fn seed(&self) -> &[u8] {
        self.seed.as_ref()
    }

    /// The encapsulation key.
    pub fn encapsulation_key(&self) -> EncapsulationKey {
        EncapsulationKey {
            mlkem: self.mlkem.encapsulation_key(),
            x25519: self.x25519.public_key(),
        }
    }

    /// Recovers the shared secret. Fails only on a wrong-length ciphertext or
    /// a low-order X25519 share; a corrupted ML-KEM part yields a wrong secret.
    pub fn decapsulate(&self, ct: &[u8]) -> Result<SecretBytes> {
        if ct.len() != CIPHERTEXT_LEN {
            return Err(Error::CiphertextLength {
                alg: "mlkem768x25519",
                expected: CIPHERTEXT_LEN,
                got: ct.len(),
            });
        }
        let (ct_m, ct_x) = ct.split_at(MLKEM_CT);
        let ss_m = self.mlkem.decapsulate(ct_m)?;
        let ss_x = self.x25519.diffie_hellman(ct_x)?;
        Ok(combine(&ss_m, &ss_x, ct_x, &self.x25519.public_key()))
    }
}

fn combine(ss_m: &SecretBytes, ss_x: &SecretBytes, ct_x: &[u8], pk_x: &[u8]) -> SecretBytes {
    SecretBytes::from_slice(&sha3_256(&[
        ss_m.expose(),
        ss_x.expose(),
        ct_x,
        pk_x,
        LABEL,
    ]))
}

impl fmt::Debug for DecapsulationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("xwing::DecapsulationKey([REDACTED])")
    }
}

/// An X-Wing encapsulation key.
#[derive(Clone)]
pub struct EncapsulationKey {
    mlkem: kem::EncapsulationKey,
    x25519: [u8; 32],
}

impl EncapsulationKey {
    /// Parses the 1216-byte key (ML-KEM-768 part is modulus-checked).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(crate::error::invalid_key(
                "mlkem768x25519",
                format!(
                    "public key must be {PUBLIC_KEY_LEN} bytes, got {}",
                    bytes.len()
                ),
            ));
        }
        let mlkem = kem::EncapsulationKey::from_bytes(Algorithm::MlKem768, &bytes[..MLKEM_PK])?;
        let mut x25519 = [0u8; 32];
        x25519.copy_from_slice(&bytes[MLKEM_PK..]);
        Ok(Self { mlkem, x25519 })
    }

    /// The 1216-byte encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.mlkem.to_bytes();
        out.extend_from_slice(&self.x25519);
        out
    }

    /// Encapsulates: returns `(ciphertext, shared_secret)`.
    pub fn encapsulate(&self) -> Result<(Vec<u8>, SecretBytes)> {
        let rand = random::secret_array::<64>()?;
        self.encapsulate_derand(&rand)
    }

    /// Encapsulates with explicit randomness (ML-KEM `m` ‖ X25519 ephemeral), for tests.
    pub fn encapsulate_derand(&self, rand: &[u8; 64]) -> Result<(Vec<u8>, SecretBytes)> {
        let mut m = [0u8; 32];
        m.copy_from_slice(&rand[..32]);
        let (mut ct, ss_m) = self.mlkem.encapsulate_deterministic(&m);
        let eph = StaticSecret::from_bytes(&rand[32..])?;
        let ct_x = eph.public_key();
        let ss_x = eph.diffie_hellman(&self.x25519)?;
        let ss = combine(&ss_m, &ss_x, &ct_x, &self.x25519);
        ct.extend_from_slice(&ct_x);
        Ok((ct, ss))
    }
}

impl fmt::Debug for EncapsulationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("xwing::EncapsulationKey")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_failures() {
        let dk = DecapsulationKey::generate().unwrap();
        let ek = EncapsulationKey::from_bytes(&dk.encapsulation_key().to_bytes()).unwrap();
        let (ct, ss) = ek.encapsulate().unwrap();
        assert_eq!(ct.len(), CIPHERTEXT_LEN);
        assert_eq!(dk.decapsulate(&ct).unwrap(), ss);
        let mut bad = ct.clone();
        bad[10] ^= 1;
        assert_ne!(dk.decapsulate(&bad).unwrap(), ss);
        let other = DecapsulationKey::generate().unwrap();
        assert_ne!(other.decapsulate(&ct).unwrap(), ss);
        assert!(dk.decapsulate(&ct[..100]).is_err());
    }

    /// The last test vector of draft-connolly-cfrg-xwing-kem-10 (Appendix C):
    /// key generation from the seed, derandomised encapsulation with
    /// `eseed`, and the shared secret (which binds every part: the ML-KEM
    /// secret, the X25519 secret, the X25519 share and public key, the label).
    #[test]
    fn draft_10_test_vector() {
        let seed = hex::decode("ef58538b8d23f87732ea63b02b4fa0f4873360e2841928cd60dd4cee8cc0d4c9")
            .unwrap();
        let eseed: [u8; 64] = hex::decode(
            "22a96188d032675c8ac850933c7aff1533b94c834adbb69c6115bad4692d8619f90b0cdf8a7b9c264029ac185b70b83f2801f2f4b3f70c593ea3aeeb613a7f1b",
        )
        .unwrap()
        .try_into()
        .unwrap();
        let dk = DecapsulationKey::from_seed(&seed).unwrap();
        let pk = dk.encapsulation_key().to_bytes();
        assert!(hex::encode(&pk).starts_with(
            "36244278824f77c621c660892c1c3886a9560caa52a97c461fd3958a598e749bbc8c7798"
        ));
        assert!(
            hex::encode(&pk).ends_with("c1c013747dfee80fb35b5299f555dcc2b787ea4f6f16ffdf66952461")
        );
        let (ct, ss) = dk.encapsulation_key().encapsulate_derand(&eseed).unwrap();
        assert!(hex::encode(&ct).starts_with(
            "0d2e38cbf17a2e2e4e0c87a94ca1e7701ae1552e02509b3b00f9c82c39e3fd435b05b912"
        ));
        assert!(hex::encode(&ct).ends_with("61137334"));
        assert_eq!(
            hex::encode(ss.expose()),
            "953f7f4e8c5b5049bdc771d1dffada0dd961477d1a2ae0988baa7ea6898d893f"
        );
        assert_eq!(dk.decapsulate(&ct).unwrap(), ss);
    }

    /// Intermediate values of the CCTV age `hybrid` vector (identity seed and
    /// the KEM shared secret its header yields), which also pins the combiner.
    #[test]
    fn seed_expansion_matches_age_vector() {
        let seed = hex::decode("b8be81702bae561b372c3de084b70415734529cfef83c57eeb3e6e57689f9e23")
            .unwrap();
        let dk = DecapsulationKey::from_seed(&seed).unwrap();
        let pk = dk.encapsulation_key().to_bytes();
        assert_eq!(
            hex::encode(&pk[1184..]),
            "4ca0d1a0b2d96b0c8e01fab2d9023225f0b6670c009ef1a7a277ec0f0c625277"
        );
        assert_eq!(hex::encode(&pk[..16]), "15525167a10724185b3049afc9591455");
    }
}
