//! ML-KEM (FIPS 203) key encapsulation, for all three parameter sets.
//!
//! Backend: RustCrypto `ml-kem`. It is used because it derives keys from the
//! 64-byte seed `d || z` (the form IETF LAMPS stores in PKCS#8) and encapsulates
//! with caller-supplied randomness, both of which the NIST vectors need and
//! aws-lc-rs does not expose. Randomness comes from [`crate::random`].

use crate::secret::SecretBytes;
use crate::{Algorithm, Error, Result, random};
use core::fmt;
#[allow(deprecated)]
use ml_kem::ExpandedKeyEncoding;
use ml_kem::array::Array;
use ml_kem::{Decapsulate, KeyExport, MlKem512, MlKem768, MlKem1024};
use zeroize::Zeroizing;

/// Length of an ML-KEM seed (`d || z`).
pub const SEED_LEN: usize = 64;
/// Length of an ML-KEM shared secret.
pub const SHARED_SECRET_LEN: usize = 32;

enum DkInner {
    K512(Box<ml_kem::DecapsulationKey<MlKem512>>),
    K768(Box<ml_kem::DecapsulationKey<MlKem768>>),
    K1024(Box<ml_kem::DecapsulationKey<MlKem1024>>),
}

#[derive(Clone)]
enum EkInner {
    K512(Box<ml_kem::EncapsulationKey<MlKem512>>),
    K768(Box<ml_kem::EncapsulationKey<MlKem768>>),
    K1024(Box<ml_kem::EncapsulationKey<MlKem1024>>),
}

macro_rules! each {
    ($value:expr, $kind:ident, $k:ident => $body:expr) => {
        match $value {
            $kind::K512($k) => $body,
            $kind::K768($k) => $body,
            $kind::K1024($k) => $body,
        }
    };
}

fn check_alg(alg: Algorithm) -> Result<()> {
    match alg {
        Algorithm::MlKem512 | Algorithm::MlKem768 | Algorithm::MlKem1024 => Ok(()),
        other => Err(Error::WrongKeyType {
            alg: other.name(),
            op: "encapsulate or decapsulate with ML-KEM",
        }),
    }
}

fn arr<N: ml_kem::array::ArraySize>(
    alg: Algorithm,
    what: &str,
    bytes: &[u8],
) -> Result<Array<u8, N>> {
    Array::try_from(bytes).map_err(|_| {
        crate::error::invalid_key(
            alg.name(),
            format!("{what} must be {} bytes, got {}", N::USIZE, bytes.len()),
        )
    })
}

/// An ML-KEM decapsulation (private) key.
pub struct DecapsulationKey {
    alg: Algorithm,
    inner: DkInner,
    /// The seed, when the key was made from one (always, unless it was
    /// imported in the expanded-only form).
    seed: Option<Zeroizing<[u8; SEED_LEN]>>,
}

impl DecapsulationKey {
    /// Generates a fresh key from 64 random bytes.
    pub fn generate(alg: Algorithm) -> Result<Self> {
        let seed = random::secret_array::<SEED_LEN>()?;
        Self::from_seed(alg, seed.as_ref())
    }

    /// Derives the key from its 64-byte seed `d || z` (FIPS 203 `ML-KEM.KeyGen_internal`).
    pub fn from_seed(alg: Algorithm, seed: &[u8]) -> Result<Self> {
        check_alg(alg)?;
        let s: Array<u8, ml_kem::array::typenum::U64> = arr(alg, "seed", seed)?;
        let inner = match alg {
            Algorithm::MlKem512 => DkInner::K512(Box::new(ml_kem::DecapsulationKey::from_seed(s))),
            Algorithm::MlKem768 => DkInner::K768(Box::new(ml_kem::DecapsulationKey::from_seed(s))),
            _ => DkInner::K1024(Box::new(ml_kem::DecapsulationKey::from_seed(s))),
        };
        let mut kept = Zeroizing::new([0u8; SEED_LEN]);
        kept.copy_from_slice(seed);
        Ok(Self {
            alg,
            inner,
            seed: Some(kept),
        })
    }

    /// Imports the FIPS 203 expanded decapsulation key (1632/2400/3168 bytes),
    /// checking the embedded hash of the encapsulation key and its encoding.
    #[allow(deprecated)]
    pub fn from_expanded(alg: Algorithm, bytes: &[u8]) -> Result<Self> {
        check_alg(alg)?;
        let bad = |_| {
            crate::error::invalid_key(
                alg.name(),
                "the expanded key failed its consistency check (H(ek) or ek encoding)",
            )
        };
        let inner = match alg {
            Algorithm::MlKem512 => DkInner::K512(Box::new(
                ml_kem::DecapsulationKey::from_expanded_bytes(&arr(alg, "expanded key", bytes)?)
                    .map_err(bad)?,
            )),
            Algorithm::MlKem768 => DkInner::K768(Box::new(
                ml_kem::DecapsulationKey::from_expanded_bytes(&arr(alg, "expanded key", bytes)?)
                    .map_err(bad)?,
            )),
            _ => DkInner::K1024(Box::new(
                ml_kem::DecapsulationKey::from_expanded_bytes(&arr(alg, "expanded key", bytes)?)
                    .map_err(bad)?,
            )),
        };
        Ok(Self {
            alg,
            inner,
            seed: None,
        })
    }

    /// The parameter set.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The 64-byte seed, if the key was made from one.
    pub fn seed(&self) -> Option<&[u8]> {
        self.seed.as_ref().map(|s| s.as_slice())
    }

    /// The FIPS 203 expanded form of the key.
    #[allow(deprecated)]
    pub fn expanded(&self) -> SecretBytes {
        each!(&self.inner, DkInner, k => SecretBytes::new(k.to_expanded_bytes().to_vec()))
    }

    /// The matching encapsulation (public) key.
    pub fn encapsulation_key(&self) -> EncapsulationKey {
        let inner = match &self.inner {
            DkInner::K512(k) => EkInner::K512(Box::new(k.encapsulation_key().clone())),
            DkInner::K768(k) => EkInner::K768(Box::new(k.encapsulation_key().clone())),
            DkInner::K1024(k) => EkInner::K1024(Box::new(k.encapsulation_key().clone())),
        };
        EncapsulationKey {
            alg: self.alg,
            inner,
        }
    }

    /// Recovers the shared secret from a ciphertext. A ciphertext of the right
    /// length always yields a secret (implicit rejection); a wrong one yields an
    /// unrelated secret, as FIPS 203 requires.
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<SecretBytes> {
        let expected = self.alg.output_len();
        if ciphertext.len() != expected {
            return Err(Error::CiphertextLength {
                alg: self.alg.name(),
                expected,
                got: ciphertext.len(),
            });
        }
        let ss = each!(&self.inner, DkInner, k => {
            let ct = Array::try_from(ciphertext).map_err(|_| Error::Backend("ML-KEM decapsulation"))?;
            k.decapsulate(&ct).to_vec()
        });
        Ok(SecretBytes::new(ss))
    }
}

impl fmt::Debug for DecapsulationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DecapsulationKey({}, [REDACTED])", self.alg)
    }
}

/// An ML-KEM encapsulation (public) key.
#[derive(Clone)]
pub struct EncapsulationKey {
    alg: Algorithm,
    inner: EkInner,
}

impl EncapsulationKey {
    /// Parses an encapsulation key, with the FIPS 203 modulus check.
    pub fn from_bytes(alg: Algorithm, bytes: &[u8]) -> Result<Self> {
        check_alg(alg)?;
        let bad = |_| {
            crate::error::invalid_key(
                alg.name(),
                "coefficients out of range (FIPS 203 modulus check failed)",
            )
        };
        let inner = match alg {
            Algorithm::MlKem512 => EkInner::K512(Box::new(
                ml_kem::EncapsulationKey::new(&arr(alg, "public key", bytes)?).map_err(bad)?,
            )),
            Algorithm::MlKem768 => EkInner::K768(Box::new(
                ml_kem::EncapsulationKey::new(&arr(alg, "public key", bytes)?).map_err(bad)?,
            )),
            _ => EkInner::K1024(Box::new(
                ml_kem::EncapsulationKey::new(&arr(alg, "public key", bytes)?).map_err(bad)?,
            )),
        };
        Ok(Self { alg, inner })
    }

    /// The parameter set.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The encoded key.
    pub fn to_bytes(&self) -> Vec<u8> {
        each!(&self.inner, EkInner, k => k.to_bytes().to_vec())
    }

    /// Encapsulates a fresh shared secret: returns `(ciphertext, shared_secret)`.
    pub fn encapsulate(&self) -> Result<(Vec<u8>, SecretBytes)> {
        let m = random::secret_array::<32>()?;
        Ok(self.encapsulate_deterministic(&m))
    }

    /// Encapsulates with the given 32 bytes of randomness `m` (FIPS 203
    /// `ML-KEM.Encaps_internal`). Only for known-answer tests and for
    /// constructions that derive `m` themselves; `m` must be uniformly random.
    pub fn encapsulate_deterministic(&self, m: &[u8; 32]) -> (Vec<u8>, SecretBytes) {
        let m = Array::from(*m);
        each!(&self.inner, EkInner, k => {
            let (ct, ss) = k.encapsulate_deterministic(&m);
            (ct.to_vec(), SecretBytes::new(ss.to_vec()))
        })
    }
}

impl fmt::Debug for EncapsulationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncapsulationKey({})", self.alg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALGS: [Algorithm; 3] = [
        Algorithm::MlKem512,
        Algorithm::MlKem768,
        Algorithm::MlKem1024,
    ];

    #[test]
    fn round_trip_and_sizes() {
        for alg in ALGS {
            let dk = DecapsulationKey::generate(alg).unwrap();
            let ek = dk.encapsulation_key();
            assert_eq!(ek.to_bytes().len(), alg.public_key_len());
            let (ct, ss) = ek.encapsulate().unwrap();
            assert_eq!(ct.len(), alg.output_len());
            assert_eq!(dk.decapsulate(&ct).unwrap(), ss);
        }
    }

    #[test]
    fn wrong_key_and_tampered_ciphertext_give_other_secrets() {
        for alg in ALGS {
            let dk = DecapsulationKey::generate(alg).unwrap();
            let other = DecapsulationKey::generate(alg).unwrap();
            let (mut ct, ss) = dk.encapsulation_key().encapsulate().unwrap();
            assert_ne!(other.decapsulate(&ct).unwrap(), ss);
            ct[7] ^= 1;
            assert_ne!(dk.decapsulate(&ct).unwrap(), ss);
        }
    }

    #[test]
    fn truncated_ciphertext_is_an_error() {
        let dk = DecapsulationKey::generate(Algorithm::MlKem768).unwrap();
        let (ct, _) = dk.encapsulation_key().encapsulate().unwrap();
        assert!(matches!(
            dk.decapsulate(&ct[..ct.len() - 1]),
            Err(Error::CiphertextLength { .. })
        ));
    }

    #[test]
    fn seed_and_expanded_forms_agree() {
        for alg in ALGS {
            let dk = DecapsulationKey::generate(alg).unwrap();
            let again = DecapsulationKey::from_expanded(alg, dk.expanded().expose()).unwrap();
            assert!(again.seed().is_none());
            let (ct, ss) = dk.encapsulation_key().encapsulate().unwrap();
            assert_eq!(again.decapsulate(&ct).unwrap(), ss);
            let mut bad = dk.expanded().expose().to_vec();
            let n = bad.len();
            bad[n - 40] ^= 1; // inside H(ek)
            assert!(DecapsulationKey::from_expanded(alg, &bad).is_err());
        }
    }

    #[test]
    fn debug_is_redacted() {
        let dk = DecapsulationKey::from_seed(Algorithm::MlKem512, &[0x42; 64]).unwrap();
        assert!(!format!("{dk:?}").contains("42"));
    }
}
