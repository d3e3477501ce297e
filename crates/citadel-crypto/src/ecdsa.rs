//! ECDSA over P-256 with SHA-256 (aws-lc-rs), for classical compatibility
//! where a peer expects it (Vault's transit `ecdsa-p256` key type).
//!
//! Private keys are PKCS#8 documents; public keys are SubjectPublicKeyInfo
//! (DER, or PEM for display). Signatures are ASN.1 DER (`Ecdsa-Sig-Value`)
//! or fixed-width `r‖s` (JWS).

use crate::error::invalid_key;
use crate::secret::SecretBytes;
use crate::{Error, Result};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
};
use base64::Engine;

/// How a signature is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureEncoding {
    /// ASN.1 DER `SEQUENCE { r INTEGER, s INTEGER }`.
    Asn1,
    /// Fixed-width big-endian `r‖s` (64 bytes), as JWS uses.
    Fixed,
}

/// A P-256 signing key.
pub struct P256SigningKey {
    pkcs8: SecretBytes,
    asn1: EcdsaKeyPair,
    fixed: EcdsaKeyPair,
}

impl P256SigningKey {
    /// A fresh key from the backend's random generator.
    pub fn generate() -> Result<Self> {
        let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| Error::Backend("P-256 key generation"))?;
        let doc = kp
            .to_pkcs8v1()
            .map_err(|_| Error::Backend("P-256 key encoding"))?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// A key from its PKCS#8 (v1 or v2) DER document.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let bad = |_| invalid_key("ecdsa-p256", "not a P-256 PKCS#8 private key");
        let asn1 = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der).map_err(bad)?;
        let fixed = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(bad)?;
        Ok(P256SigningKey {
            pkcs8: SecretBytes::from_slice(der),
            asn1,
            fixed,
        })
    }

    /// The PKCS#8 DER document.
    pub fn pkcs8(&self) -> &SecretBytes {
        &self.pkcs8
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Result<Vec<u8>> {
        self.asn1
            .public_key()
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| Error::Backend("P-256 public key encoding"))
    }

    /// The public key as a PEM `PUBLIC KEY` block.
    pub fn public_key_pem(&self) -> Result<String> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.public_key_der()?);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        Ok(pem)
    }

    /// Signs SHA-256(`msg`).
    pub fn sign(&self, msg: &[u8], encoding: SignatureEncoding) -> Result<Vec<u8>> {
        let kp = match encoding {
            SignatureEncoding::Asn1 => &self.asn1,
            SignatureEncoding::Fixed => &self.fixed,
        };
        let rng = aws_lc_rs::rand::SystemRandom::new();
        kp.sign(&rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| Error::Backend("P-256 signing"))
    }
}

/// Verifies a P-256/SHA-256 signature. `public_key` is SubjectPublicKeyInfo
/// DER or an uncompressed point.
pub fn verify_p256(public_key: &[u8], msg: &[u8], sig: &[u8], encoding: SignatureEncoding) -> bool {
    let point = spki_point(public_key).unwrap_or(public_key);
    let alg = match encoding {
        SignatureEncoding::Asn1 => &ECDSA_P256_SHA256_ASN1,
        SignatureEncoding::Fixed => &ECDSA_P256_SHA256_FIXED,
    };
    UnparsedPublicKey::new(alg, point).verify(msg, sig).is_ok()
}

/// The fixed DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey,
/// prime256v1) before its 65-byte uncompressed point.
const SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn spki_point(der: &[u8]) -> Option<&[u8]> {
    der.strip_prefix(&SPKI_PREFIX[..]).filter(|p| p.len() == 65)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6979 A.2.5: the P-256 key and its SHA-256 signature of "sample".
    const PKCS8: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721a1440342000460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb67903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
    const SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d0301070342000460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb67903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
    const R: &str = "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716";
    const S: &str = "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8";

    #[test]
    fn rfc6979_signature_verifies_and_key_round_trips() {
        let key = P256SigningKey::from_pkcs8(&hex::decode(PKCS8).unwrap()).unwrap();
        assert_eq!(hex::encode(key.public_key_der().unwrap()), SPKI);
        let spki = hex::decode(SPKI).unwrap();
        let fixed = hex::decode(format!("{R}{S}")).unwrap();
        assert!(verify_p256(
            &spki,
            b"sample",
            &fixed,
            SignatureEncoding::Fixed
        ));
        assert!(!verify_p256(
            &spki,
            b"samplf",
            &fixed,
            SignatureEncoding::Fixed
        ));
        // DER: SEQUENCE { INTEGER r (leading 0x00: high bit set), INTEGER s (same) }.
        let der = hex::decode(format!("3046022100{R}022100{S}")).unwrap();
        assert!(verify_p256(&spki, b"sample", &der, SignatureEncoding::Asn1));
        assert!(
            key.public_key_pem()
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----\nMFkw")
        );
    }

    #[test]
    fn fresh_keys_sign_and_verify_in_both_encodings() {
        let key = P256SigningKey::generate().unwrap();
        let again = P256SigningKey::from_pkcs8(key.pkcs8().expose()).unwrap();
        let spki = again.public_key_der().unwrap();
        for enc in [SignatureEncoding::Asn1, SignatureEncoding::Fixed] {
            let sig = key.sign(b"msg", enc).unwrap();
            assert!(verify_p256(&spki, b"msg", &sig, enc));
            assert!(!verify_p256(&spki, b"msh", &sig, enc));
        }
        assert!(P256SigningKey::from_pkcs8(b"junk").is_err());
    }
}
