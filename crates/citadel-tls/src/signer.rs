//! Keys that sign certificates and CRLs, as rcgen wants them.
//!
//! rcgen can create ML-DSA keys but cannot load one back, so the CA key is
//! held by `citadel-crypto` (pure ML-DSA, empty context, as RFC 9881
//! requires for X.509) and offered to rcgen through its `SigningKey` trait.

use citadel_crypto::{Algorithm, PrivateKey, sig};

/// The rcgen signature algorithm of an ML-DSA parameter set.
pub(crate) fn rcgen_alg(alg: Algorithm) -> Option<&'static rcgen::SignatureAlgorithm> {
    match alg {
        Algorithm::MlDsa44 => Some(&rcgen::PKCS_ML_DSA_44),
        Algorithm::MlDsa65 => Some(&rcgen::PKCS_ML_DSA_65),
        Algorithm::MlDsa87 => Some(&rcgen::PKCS_ML_DSA_87),
        _ => None,
    }
}

/// A signing key for certificates: ML-DSA through citadel-crypto, or a
/// classical rcgen key pair (ECDSA P-256, only with `--classical`).
pub(crate) enum CertSigner {
    MlDsa {
        key: sig::SigningKey,
        public: Vec<u8>,
        alg: &'static rcgen::SignatureAlgorithm,
    },
    Classical(rcgen::KeyPair),
}

impl CertSigner {
    pub(crate) fn from_private_key(key: PrivateKey) -> Option<Self> {
        match key {
            PrivateKey::Signature(key) => {
                let alg = rcgen_alg(key.algorithm())?;
                let public = key.verifying_key().as_bytes().to_vec();
                Some(CertSigner::MlDsa { key, public, alg })
            }
            PrivateKey::Kem(_) => None,
        }
    }
}

impl rcgen::PublicKeyData for CertSigner {
    fn der_bytes(&self) -> &[u8] {
        match self {
            CertSigner::MlDsa { public, .. } => public,
            CertSigner::Classical(k) => k.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            CertSigner::MlDsa { alg, .. } => alg,
            CertSigner::Classical(k) => k.algorithm(),
        }
    }
}

impl rcgen::SigningKey for CertSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            CertSigner::MlDsa { key, .. } => {
                key.sign(msg, b"").map_err(|_| rcgen::Error::RemoteKeyError)
            }
            CertSigner::Classical(k) => k.sign(msg),
        }
    }
}

/// A bare public key for rcgen (the subject's key in a certificate).
pub(crate) struct SubjectKey {
    pub(crate) raw: Vec<u8>,
    pub(crate) alg: &'static rcgen::SignatureAlgorithm,
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}
