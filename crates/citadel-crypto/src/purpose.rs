//! Signing purposes: **no two signing purposes share a message space.**
//!
//! A key that signs files must not, by signing a file someone else wrote,
//! produce a directory signature, a transfer manifest signature or anything
//! else Citadel checks. Every purpose Citadel defines signs under its own
//! context string: the purpose's name, or `name/extra` when the user adds
//! context of their own (`citadel sign --context`). No purpose name
//! contains `/` and none is another's prefix, so no choice of extra context
//! makes two purposes' strings equal.
//!
//! - ML-DSA and SLH-DSA take the string as their FIPS 204/205 context.
//! - Ed25519 has no context, so the message is prefixed the way FIPS 204
//!   forms its pure-mode message: `0x00 || len(ctx) || ctx || message`.
//!
//! Formats defined by others keep their own rules and stay apart by
//! structure: X.509 certificates and CRLs (DER, so a first byte of `0x30`),
//! TLS 1.3 handshake signatures (64 spaces first) and C2SP signed notes
//! (UTF-8 text). They use the empty context, which no Citadel purpose uses,
//! and none of their messages starts with a `0x00` byte.

use crate::sig::{SigningKey, StreamError, VerifyingKey};
use crate::{Algorithm, Error, Result};
use std::io::Read;

/// A signing purpose (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Purpose {
    name: &'static str,
}

impl Purpose {
    /// A single file's detached signature (`citadel sign FILE`).
    pub const FILE: Purpose = Purpose {
        name: "citadel-file-v1",
    };
    /// A DSSE envelope's signature over its pre-authentication encoding
    /// (`citadel sign DIR`).
    pub const DSSE: Purpose = Purpose {
        name: "citadel-dsse-v1",
    };
    /// A transfer manifest's signature (`citadel send`).
    pub const TRANSFER_MANIFEST: Purpose = Purpose {
        name: "citadel-transfer-v1",
    };
    /// Every purpose Citadel defines.
    pub const ALL: [Purpose; 3] = [Purpose::FILE, Purpose::DSSE, Purpose::TRANSFER_MANIFEST];

    /// The purpose's name: its context string when no extra is given.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// The longest extra context a user may add.
    pub const fn max_extra(self) -> usize {
        crate::sig::MAX_CONTEXT_LEN - self.name.len() - 1
    }

    /// The context string for this purpose with a user's `extra` context
    /// (empty for none): `name` or `name/extra`.
    pub fn context(self, extra: &[u8]) -> Result<Vec<u8>> {
        if extra.len() > self.max_extra() {
            return Err(Error::InvalidParameter(format!(
                "the context string is {} bytes; at most {} bytes are allowed (Citadel adds its purpose, {:?}, to it)",
                extra.len(),
                self.max_extra(),
                self.name
            )));
        }
        let mut ctx = self.name.as_bytes().to_vec();
        if !extra.is_empty() {
            ctx.push(b'/');
            ctx.extend_from_slice(extra);
        }
        Ok(ctx)
    }

    /// What the key signs, split as (prefix of the message, context): for
    /// Ed25519 a prefix and no context; otherwise no prefix.
    fn form(self, alg: Algorithm, extra: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let ctx = self.context(extra)?;
        if alg == Algorithm::Ed25519 {
            // `context` has bounded it to 255 bytes.
            let len = u8::try_from(ctx.len()).unwrap_or(u8::MAX);
            let mut prefix = vec![0u8, len];
            prefix.extend_from_slice(&ctx);
            Ok((prefix, Vec::new()))
        } else {
            Ok((Vec::new(), ctx))
        }
    }

    /// Signs `msg` for this purpose.
    pub fn sign(self, key: &SigningKey, extra: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
        let (prefix, ctx) = self.form(key.algorithm(), extra)?;
        if prefix.is_empty() {
            key.sign(msg, &ctx)
        } else {
            key.sign(&[prefix.as_slice(), msg].concat(), &ctx)
        }
    }

    /// Verifies a signature over `msg` made for this purpose.
    pub fn verify(self, key: &VerifyingKey, extra: &[u8], msg: &[u8], sig: &[u8]) -> Result<()> {
        let (prefix, ctx) = self.form(key.algorithm(), extra)?;
        if prefix.is_empty() {
            key.verify(msg, &ctx, sig)
        } else {
            key.verify(&[prefix.as_slice(), msg].concat(), &ctx, sig)
        }
    }

    /// Signs everything `reader` yields for this purpose; ML-DSA streams
    /// (see [`SigningKey::sign_reader`]).
    pub fn sign_reader(
        self,
        key: &SigningKey,
        extra: &[u8],
        reader: &mut dyn Read,
    ) -> std::result::Result<Vec<u8>, StreamError> {
        let (prefix, ctx) = self.form(key.algorithm(), extra)?;
        key.sign_reader(&mut std::io::Cursor::new(prefix).chain(reader), &ctx)
    }

    /// Verifies a signature over everything `reader` yields, made for this
    /// purpose.
    pub fn verify_reader(
        self,
        key: &VerifyingKey,
        extra: &[u8],
        reader: &mut dyn Read,
        sig: &[u8],
    ) -> std::result::Result<(), StreamError> {
        let (prefix, ctx) = self.form(key.algorithm(), extra)?;
        key.verify_reader(&mut std::io::Cursor::new(prefix).chain(reader), &ctx, sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_purpose_string_can_equal_another() {
        for (i, a) in Purpose::ALL.iter().enumerate() {
            assert!(!a.name().is_empty() && !a.name().contains('/'));
            for b in &Purpose::ALL[i + 1..] {
                // Distinct, and neither is the other's prefix: `a` or
                // `a/extra` can never be `b` or `b/extra`.
                assert!(!a.name().starts_with(b.name()) && !b.name().starts_with(a.name()));
            }
        }
    }

    #[test]
    fn the_context_is_the_name_or_name_slash_extra() {
        assert_eq!(Purpose::FILE.context(b"").unwrap(), b"citadel-file-v1");
        assert_eq!(
            Purpose::DSSE.context(b"release").unwrap(),
            b"citadel-dsse-v1/release"
        );
        let max = Purpose::FILE.max_extra();
        assert_eq!(Purpose::FILE.context(&vec![b'x'; max]).unwrap().len(), 255);
        assert!(Purpose::FILE.context(&vec![b'x'; max + 1]).is_err());
    }

    /// The composition, checked against the plain primitives: what a
    /// purpose signs is exactly the documented message and context.
    #[test]
    fn a_purpose_signs_the_documented_message() {
        let msg = b"DSSEv1 28 application/vnd.in-toto+json 2 {}";
        for alg in [
            Algorithm::MlDsa44,
            Algorithm::SlhDsaSha2_128f,
            Algorithm::Ed25519,
        ] {
            let k = SigningKey::generate(alg).unwrap();
            let vk = k.verifying_key();
            let sig = Purpose::FILE.sign(&k, b"", msg).unwrap();
            if alg == Algorithm::Ed25519 {
                let mut m = vec![0u8, 15];
                m.extend_from_slice(b"citadel-file-v1");
                m.extend_from_slice(msg);
                vk.verify(&m, b"", &sig).unwrap();
            } else {
                vk.verify(msg, b"citadel-file-v1", &sig).unwrap();
            }
            // Never valid bare (as a standard format's signature would be),
            // nor for another purpose, nor with extra context.
            assert!(vk.verify(msg, b"", &sig).is_err(), "{alg}");
            assert!(Purpose::DSSE.verify(&vk, b"", msg, &sig).is_err(), "{alg}");
            assert!(Purpose::FILE.verify(&vk, b"x", msg, &sig).is_err(), "{alg}");
            Purpose::FILE.verify(&vk, b"", msg, &sig).unwrap();
            // The streaming forms agree with the one-shot forms.
            let streamed = Purpose::FILE.sign_reader(&k, b"", &mut &msg[..]).unwrap();
            Purpose::FILE.verify(&vk, b"", msg, &streamed).unwrap();
            Purpose::FILE
                .verify_reader(&vk, b"", &mut &msg[..], &sig)
                .unwrap();
            assert!(
                Purpose::DSSE
                    .verify_reader(&vk, b"", &mut &msg[..], &sig)
                    .is_err()
            );
        }
    }
}
