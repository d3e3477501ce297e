//! DSSE envelopes (Dead Simple Signing Envelope, v1).

use crate::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use citadel_crypto::purpose::Purpose;
use citadel_crypto::sig::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// One signature in an envelope.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Signature {
    /// Identifies the key: the SHA-256 fingerprint of its SPKI.
    pub keyid: String,
    /// Base64 signature over the PAE.
    pub sig: String,
}

/// A DSSE envelope.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 payload.
    pub payload: String,
    /// The payload's media type.
    pub payload_type: String,
    /// Signatures over the PAE.
    pub signatures: Vec<Signature>,
}

/// DSSE pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Signs `payload` (an in-toto statement) with `key` for the DSSE
    /// purpose ([`Purpose::DSSE`]); `context` is the user's extra context
    /// (empty for none).
    pub fn sign(payload: &[u8], key: &SigningKey, keyid: &str, context: &[u8]) -> Result<Self> {
        let sig = Purpose::DSSE.sign(key, context, &pae(PAYLOAD_TYPE, payload))?;
        Ok(Envelope {
            payload: STANDARD.encode(payload),
            payload_type: PAYLOAD_TYPE.to_string(),
            signatures: vec![Signature {
                keyid: keyid.to_string(),
                sig: STANDARD.encode(sig),
            }],
        })
    }

    /// Parses an envelope from JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Malformed(format!("not a DSSE envelope: {e}")))
    }

    /// Serialises to JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Verifies that at least one signature is valid under `key` for the
    /// DSSE purpose with extra context `context`, and returns the payload.
    /// Fails if none is.
    pub fn verify(&self, key: &VerifyingKey, context: &[u8]) -> Result<Vec<u8>> {
        self.verify_with(|msg, sig| Purpose::DSSE.verify(key, context, msg, sig))
    }

    /// Whether a signature is valid the way Citadel signed envelopes before
    /// signing purposes were separated (bare PAE, `context` as the whole
    /// context string). Such a signature is never accepted (a file's
    /// signature could pose as one); this only lets a verifier say why.
    pub fn signed_before_purposes(&self, key: &VerifyingKey, context: &[u8]) -> bool {
        self.verify_with(|msg, sig| key.verify(msg, context, sig))
            .is_ok()
    }

    fn verify_with(
        &self,
        check: impl Fn(&[u8], &[u8]) -> citadel_crypto::Result<()>,
    ) -> Result<Vec<u8>> {
        if self.payload_type != PAYLOAD_TYPE {
            return Err(Error::Malformed(format!(
                "unexpected payload type {:?}",
                self.payload_type
            )));
        }
        let payload = STANDARD
            .decode(&self.payload)
            .map_err(|_| Error::Malformed("payload is not base64".into()))?;
        let msg = pae(&self.payload_type, &payload);
        let mut last = citadel_crypto::Error::BadSignature;
        for s in &self.signatures {
            let Ok(sig) = STANDARD.decode(&s.sig) else {
                continue;
            };
            match check(&msg, &sig) {
                Ok(()) => return Ok(payload),
                Err(e) => last = e,
            }
        }
        Err(Error::Crypto(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use citadel_crypto::Algorithm;

    #[test]
    fn sign_verify_and_tamper() {
        let k = SigningKey::generate(Algorithm::MlDsa44).unwrap();
        let env = Envelope::sign(b"{\"a\":1}", &k, "id", b"").unwrap();
        let back = Envelope::from_json(&env.to_json()).unwrap();
        assert_eq!(back.verify(&k.verifying_key(), b"").unwrap(), b"{\"a\":1}");
        let mut bad = back.clone();
        bad.payload = STANDARD.encode(b"{\"a\":2}");
        assert!(bad.verify(&k.verifying_key(), b"").is_err());
        let other = SigningKey::generate(Algorithm::MlDsa44).unwrap();
        assert!(back.verify(&other.verifying_key(), b"").is_err());
    }

    /// Issue 14, item 1: a file signature over bytes that spell a PAE is
    /// not an envelope signature, for any algorithm family.
    #[test]
    fn a_file_signature_is_never_an_envelope_signature() {
        let statement = b"{\"_type\":\"x\"}";
        for alg in [
            Algorithm::MlDsa44,
            Algorithm::SlhDsaSha2_128f,
            Algorithm::Ed25519,
        ] {
            let k = SigningKey::generate(alg).unwrap();
            let vk = k.verifying_key();
            let pae_bytes = pae(PAYLOAD_TYPE, statement);
            for sig in [
                Purpose::FILE.sign(&k, b"", &pae_bytes).unwrap(),
                // The pre-purpose form a file signature used to have.
                k.sign(&pae_bytes, b"").unwrap(),
            ] {
                let env = Envelope {
                    payload: STANDARD.encode(statement),
                    payload_type: PAYLOAD_TYPE.into(),
                    signatures: vec![Signature {
                        keyid: "k".into(),
                        sig: STANDARD.encode(sig),
                    }],
                };
                assert!(env.verify(&vk, b"").is_err(), "{alg}");
            }
            let good = Envelope::sign(statement, &k, "k", b"").unwrap();
            assert_eq!(good.verify(&vk, b"").unwrap(), statement);
            assert!(!good.signed_before_purposes(&vk, b""));
        }
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }
}
