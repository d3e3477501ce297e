//! Recipients and identities: X25519, the post-quantum `mlkem768x25519`
//! hybrid, and scrypt passphrases.

use crate::bech32;
use crate::error::{Error, Result, header};
use crate::header::{B64, Stanza, b64_decode};
use crate::hpke;
use base64::Engine as _;
use citadel_crypto::aead::{AeadAlgorithm, AeadKey};
use citadel_crypto::kdf::{HkdfHash, hkdf};
use citadel_crypto::secret::SecretBytes;
use citadel_crypto::x25519::StaticSecret;
use citadel_crypto::{random, xwing};
use core::fmt;
use zeroize::Zeroizing;

const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
const HYBRID_INFO: &[u8] = b"age-encryption.org/mlkem768x25519";
const SCRYPT_SALT_LABEL: &[u8] = b"age-encryption.org/v1/scrypt";
/// Largest scrypt work factor accepted when decrypting (as age does).
pub const MAX_SCRYPT_WORK_FACTOR: u8 = 22;

const HRP_X25519: &str = "age";
const HRP_HYBRID: &str = "age1pq";
const HRP_X25519_SECRET: &str = "age-secret-key-";
const HRP_HYBRID_SECRET: &str = "age-secret-key-pq-";

/// The 16-byte key that encrypts a file's payload.
pub(crate) type FileKey = Zeroizing<[u8; 16]>;

fn wrap_zero_nonce(key: &[u8], file_key: &FileKey) -> Result<Vec<u8>> {
    Ok(AeadKey::new(AeadAlgorithm::ChaCha20Poly1305, key)?.seal(
        &[0; 12],
        b"",
        file_key.as_ref(),
    )?)
}

fn unwrap_zero_nonce(key: &[u8], body: &[u8]) -> Option<FileKey> {
    let k = AeadKey::new(AeadAlgorithm::ChaCha20Poly1305, key).ok()?;
    let pt = Zeroizing::new(k.open(&[0; 12], b"", body).ok()?);
    let mut fk = Zeroizing::new([0u8; 16]);
    fk.copy_from_slice(&pt);
    Some(fk)
}

/// Someone a file is encrypted to.
#[derive(Clone)]
pub enum Recipient {
    /// A classical X25519 recipient (`age1…`).
    X25519([u8; 32]),
    /// A post-quantum hybrid recipient (`age1pq1…`).
    Hybrid(Box<xwing::EncapsulationKey>),
    /// A passphrase (scrypt); must be the only recipient.
    Scrypt {
        /// The passphrase.
        passphrase: SecretBytes,
        /// log2 of scrypt's N.
        work_factor: u8,
    },
}

impl Recipient {
    /// Parses an `age1…` or `age1pq1…` recipient string.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidRecipient(shorten(s), why.to_string());
        let (hrp, data) = bech32::decode(s.trim()).map_err(|e| bad(&e))?;
        if s.trim().chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("recipients are lower case"));
        }
        match hrp.as_str() {
            HRP_X25519 => Ok(Recipient::X25519(
                data.try_into()
                    .map_err(|_| bad("an X25519 recipient is 32 bytes"))?,
            )),
            HRP_HYBRID => Ok(Recipient::Hybrid(Box::new(
                xwing::EncapsulationKey::from_bytes(&data).map_err(|e| bad(&e.to_string()))?,
            ))),
            _ => Err(bad("unknown recipient type (expected age1… or age1pq1…)")),
        }
    }

    /// Whether the recipient resists quantum attacks.
    pub fn is_post_quantum(&self) -> bool {
        matches!(self, Recipient::Hybrid(_))
    }

    pub(crate) fn wrap(&self, file_key: &FileKey) -> Result<Stanza> {
        match self {
            Recipient::X25519(pk) => {
                let eph = StaticSecret::generate()?;
                let share = eph.public_key();
                let shared = eph.diffie_hellman(pk)?;
                let salt = [share.as_slice(), pk].concat();
                let key = hkdf(HkdfHash::Sha256, &salt, shared.expose(), X25519_INFO, 32)?;
                Ok(Stanza {
                    tag: "X25519".into(),
                    args: vec![B64.encode(share)],
                    body: wrap_zero_nonce(key.expose(), file_key)?,
                })
            }
            Recipient::Hybrid(pk) => {
                let (enc, body) = hpke::seal(pk, HYBRID_INFO, file_key.as_ref())?;
                Ok(Stanza {
                    tag: "mlkem768x25519".into(),
                    args: vec![B64.encode(enc)],
                    body,
                })
            }
            Recipient::Scrypt {
                passphrase,
                work_factor,
            } => {
                let salt = random::array::<16>()?;
                let key = scrypt_key(passphrase.expose(), &salt, *work_factor)?;
                Ok(Stanza {
                    tag: "scrypt".into(),
                    args: vec![B64.encode(salt), work_factor.to_string()],
                    body: wrap_zero_nonce(key.as_ref(), file_key)?,
                })
            }
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Recipient::X25519(pk) => bech32::encode(HRP_X25519, pk, false),
            Recipient::Hybrid(pk) => bech32::encode(HRP_HYBRID, &pk.to_bytes(), false),
            Recipient::Scrypt { .. } => return f.write_str("(passphrase)"),
        };
        f.write_str(&s.map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::Scrypt { .. } => f.write_str("Recipient::Scrypt([REDACTED])"),
            other => write!(f, "Recipient({})", shorten(&other.to_string())),
        }
    }
}

/// A recipient string cut down for error messages (they can be 2,000
/// characters long). Works on characters, so any UTF-8 input is safe.
fn shorten(s: &str) -> String {
    let s = s.trim();
    let n = s.chars().count();
    if n > 40 {
        let head: String = s.chars().take(20).collect();
        let tail: String = s.chars().skip(n - 8).collect();
        format!("{head}…{tail}")
    } else {
        s.to_string()
    }
}

fn scrypt_key(passphrase: &[u8], salt: &[u8], work_factor: u8) -> Result<Zeroizing<[u8; 32]>> {
    let params = scrypt::Params::new(work_factor, 8, 1)
        .map_err(|_| header(format!("invalid scrypt work factor {work_factor}")))?;
    let full_salt = [SCRYPT_SALT_LABEL, salt].concat();
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(passphrase, &full_salt, &params, key.as_mut())
        .map_err(|_| header("scrypt failed"))?;
    Ok(key)
}

/// Something that can decrypt a file.
pub enum Identity {
    /// An X25519 secret key (`AGE-SECRET-KEY-1…`).
    X25519(StaticSecret),
    /// A post-quantum hybrid secret key (`AGE-SECRET-KEY-PQ-1…`).
    Hybrid(Box<xwing::DecapsulationKey>),
    /// A passphrase, for scrypt stanzas.
    Scrypt(SecretBytes),
}

impl Identity {
    /// Generates a new hybrid (post-quantum) identity.
    pub fn generate_hybrid() -> Result<Self> {
        Ok(Identity::Hybrid(Box::new(
            xwing::DecapsulationKey::generate()?,
        )))
    }

    /// Generates a new X25519 identity.
    pub fn generate_x25519() -> Result<Self> {
        Ok(Identity::X25519(StaticSecret::generate()?))
    }

    /// Parses an `AGE-SECRET-KEY-…` string.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        let (hrp, data) = bech32::decode(s).map_err(Error::InvalidIdentity)?;
        if s.chars().any(|c| c.is_ascii_lowercase()) {
            return Err(Error::InvalidIdentity("identities are upper case".into()));
        }
        let data = Zeroizing::new(data);
        match hrp.as_str() {
            HRP_X25519_SECRET => Ok(Identity::X25519(
                StaticSecret::from_bytes(&data)
                    .map_err(|e| Error::InvalidIdentity(e.to_string()))?,
            )),
            HRP_HYBRID_SECRET => Ok(Identity::Hybrid(Box::new(
                xwing::DecapsulationKey::from_seed(&data)
                    .map_err(|e| Error::InvalidIdentity(e.to_string()))?,
            ))),
            _ => Err(Error::InvalidIdentity(
                "unknown identity type (expected AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1…)".into(),
            )),
        }
    }

    /// Parses an identity file: one identity per line, `#` comments and blank lines ignored.
    pub fn parse_file(text: &str) -> Result<Vec<Self>> {
        let ids = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(Identity::parse)
            .collect::<Result<Vec<_>>>()?;
        if ids.is_empty() {
            return Err(Error::InvalidIdentity(
                "the identity file holds no identities".into(),
            ));
        }
        Ok(ids)
    }

    /// The identity string (`AGE-SECRET-KEY-…`). Secret: do not log it.
    pub fn to_secret_string(&self) -> Result<Zeroizing<String>> {
        let s = match self {
            Identity::X25519(k) => bech32::encode(HRP_X25519_SECRET, k.to_bytes().expose(), true),
            Identity::Hybrid(k) => bech32::encode(HRP_HYBRID_SECRET, k.seed(), true),
            Identity::Scrypt(_) => {
                return Err(Error::InvalidIdentity(
                    "a passphrase has no identity string".into(),
                ));
            }
        };
        s.map(Zeroizing::new).map_err(Error::InvalidIdentity)
    }

    /// The matching recipient.
    pub fn to_recipient(&self) -> Option<Recipient> {
        match self {
            Identity::X25519(k) => Some(Recipient::X25519(k.public_key())),
            Identity::Hybrid(k) => Some(Recipient::Hybrid(Box::new(k.encapsulation_key()))),
            Identity::Scrypt(_) => None,
        }
    }

    /// Tries to unwrap the file key from the stanzas. `Ok(None)`: no stanza
    /// is for this identity. `Err`: a stanza for this identity is malformed.
    pub(crate) fn unwrap(&self, stanzas: &[Stanza]) -> Result<Option<FileKey>> {
        for s in stanzas {
            if let Some(fk) = self.unwrap_one(s, stanzas.len())? {
                return Ok(Some(fk));
            }
        }
        Ok(None)
    }

    fn unwrap_one(&self, s: &Stanza, count: usize) -> Result<Option<FileKey>> {
        match (self, s.tag.as_str()) {
            (Identity::X25519(k), "X25519") => {
                let [share] = s.args.as_slice() else {
                    return Err(header("an X25519 stanza must have exactly one argument"));
                };
                let share = b64_decode(share.as_bytes())
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| {
                        header("an X25519 share must be 32 bytes of canonical base64")
                    })?;
                if s.body.len() != 32 {
                    return Err(header("an X25519 stanza body must be 32 bytes"));
                }
                let shared = k
                    .diffie_hellman(&share)
                    .map_err(|_| header("the X25519 share is a low-order point"))?;
                let salt = [share.as_slice(), &k.public_key()].concat();
                let key = hkdf(HkdfHash::Sha256, &salt, shared.expose(), X25519_INFO, 32)?;
                Ok(unwrap_zero_nonce(key.expose(), &s.body))
            }
            (Identity::Hybrid(k), "mlkem768x25519") => {
                let [enc] = s.args.as_slice() else {
                    return Err(header(
                        "an mlkem768x25519 stanza must have exactly one argument",
                    ));
                };
                let enc = b64_decode(enc.as_bytes())
                    .filter(|b| b.len() == xwing::CIPHERTEXT_LEN)
                    .ok_or_else(|| {
                        header("an mlkem768x25519 share must be 1120 bytes of canonical base64")
                    })?;
                if s.body.len() != 32 {
                    return Err(header("an mlkem768x25519 stanza body must be 32 bytes"));
                }
                match hpke::open(k, &enc, HYBRID_INFO, &s.body) {
                    Ok(pt) => {
                        let pt = Zeroizing::new(pt);
                        let mut fk = Zeroizing::new([0u8; 16]);
                        fk.copy_from_slice(&pt);
                        Ok(Some(fk))
                    }
                    Err(citadel_crypto::Error::DecryptionFailed) => Ok(None),
                    Err(_) => Err(header(
                        "the mlkem768x25519 share has a low-order X25519 point",
                    )),
                }
            }
            (Identity::Scrypt(pass), "scrypt") => {
                if count != 1 {
                    return Err(header("an scrypt stanza must be the only stanza"));
                }
                let [salt, wf] = s.args.as_slice() else {
                    return Err(header("an scrypt stanza must have exactly two arguments"));
                };
                let salt = b64_decode(salt.as_bytes())
                    .filter(|b| b.len() == 16)
                    .ok_or_else(|| header("an scrypt salt must be 16 bytes of canonical base64"))?;
                let valid = wf
                    .bytes()
                    .next()
                    .is_some_and(|b| (b'1'..=b'9').contains(&b))
                    && wf.bytes().all(|b| b.is_ascii_digit());
                let wf: u8 = if valid {
                    wf.parse().unwrap_or(u8::MAX)
                } else {
                    u8::MAX
                };
                if !valid {
                    return Err(header("the scrypt work factor must be a decimal number"));
                }
                if wf > MAX_SCRYPT_WORK_FACTOR {
                    return Err(header(format!(
                        "the scrypt work factor {wf} exceeds the limit of {MAX_SCRYPT_WORK_FACTOR}"
                    )));
                }
                if s.body.len() != 32 {
                    return Err(header("an scrypt stanza body must be 32 bytes"));
                }
                let key = scrypt_key(pass.expose(), &salt, wf)?;
                Ok(unwrap_zero_nonce(key.as_ref(), &s.body))
            }
            _ => Ok(None),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Identity::X25519(_) => "X25519",
            Identity::Hybrid(_) => "mlkem768x25519",
            Identity::Scrypt(_) => "scrypt",
        };
        write!(f, "Identity({kind}, [REDACTED])")
    }
}
