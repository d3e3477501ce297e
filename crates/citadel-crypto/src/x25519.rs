//! X25519 (RFC 7748) key agreement, through aws-lc-rs.

use crate::secret::SecretBytes;
use crate::{Error, Result, random};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use core::fmt;
use zeroize::Zeroizing;

/// An X25519 secret scalar.
pub struct StaticSecret {
    key: PrivateKey,
    bytes: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl StaticSecret {
    /// A fresh random scalar.
    pub fn generate() -> Result<Self> {
        let bytes = random::secret_array::<32>()?;
        Self::from_bytes(bytes.as_ref())
    }

    /// Imports a 32-byte scalar (clamping happens inside X25519).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| {
            crate::error::invalid_key(
                "x25519",
                format!("secret must be 32 bytes, got {}", bytes.len()),
            )
        })?;
        let key = PrivateKey::from_private_key(&X25519, &arr)
            .map_err(|_| crate::error::invalid_key("x25519", "rejected by the backend"))?;
        let pk = key
            .compute_public_key()
            .map_err(|_| Error::Backend("X25519 public key"))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pk.as_ref());
        Ok(Self {
            key,
            bytes: Zeroizing::new(arr),
            public,
        })
    }

    /// The scalar bytes.
    pub fn to_bytes(&self) -> SecretBytes {
        SecretBytes::from_slice(self.bytes.as_ref())
    }

    /// The public point `X25519(secret, 9)`.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// `X25519(secret, peer)`. An all-zero result (a low-order peer point) is
    /// an error, as RFC 7748 §6.1 allows and age requires.
    pub fn diffie_hellman(&self, peer: &[u8]) -> Result<SecretBytes> {
        if peer.len() != 32 {
            return Err(crate::error::invalid_key(
                "x25519",
                format!("public key must be 32 bytes, got {}", peer.len()),
            ));
        }
        let shared = agreement::agree(
            &self.key,
            UnparsedPublicKey::new(&X25519, peer),
            Error::Backend("X25519"),
            |k| Ok(SecretBytes::from_slice(k)),
        )
        .map_err(|_| {
            Error::InvalidParameter(
                "X25519 produced the all-zero shared secret (low-order point)".into(),
            )
        })?;
        if crate::secret::ct_eq(shared.expose(), &[0u8; 32]) {
            return Err(Error::InvalidParameter(
                "X25519 produced the all-zero shared secret (low-order point)".into(),
            ));
        }
        Ok(shared)
    }
}

impl fmt::Debug for StaticSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("x25519::StaticSecret([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7748_section_6_1() {
        let a = StaticSecret::from_bytes(
            &hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            hex::encode(a.public_key()),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        let b_pub = hex::decode("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
            .unwrap();
        assert_eq!(
            hex::encode(a.diffie_hellman(&b_pub).unwrap().expose()),
            "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
        );
        assert!(a.diffie_hellman(&[0u8; 32]).is_err());
    }
}
