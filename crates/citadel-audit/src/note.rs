//! C2SP signed notes (<https://c2sp.org/signed-note>), with Ed25519 keys as
//! the specification defines them and ML-DSA-65 keys of Citadel's own type.
//!
//! A signed note is a text ending in a newline, a blank line, then one line
//! per signature:
//!
//! ```text
//! <text, ending in "\n">
//!
//! — <key name> <base64(4-byte big-endian key ID || signature)>
//! ```
//!
//! The line starts with an em dash (U+2014) and a space. The key ID is
//! `SHA-256(key name || 0x0A || key type || public key)[:4]`, the key type
//! being the bytes [`SignatureType::type_prefix`] returns.
//!
//! # Key types
//!
//! - **Ed25519** (type `0x01`, assigned by the specification): RFC 8032
//!   signature over the note text, 32-byte public key. Interoperates with Go's
//!   `golang.org/x/mod/sumdb/note` and every other C2SP implementation.
//! - **ML-DSA-65** (Citadel's own type; the specification assigns no byte to
//!   ML-DSA-65): the key type is the byte `0xff` (reserved by the
//!   specification for types named by a longer identifier), then the ASCII
//!   identifier `citadel/ml-dsa-65`, then a newline `0x0A`:
//!
//!   ```text
//!   key type = 0xff || "citadel/ml-dsa-65" || 0x0A       (19 bytes)
//!   key ID   = SHA-256(key name || 0x0A || key type || 1952-byte public key)[:4]
//!   vkey     = <key name>+<key ID, 8 hex digits>+base64(key type || public key)
//!   skey     = PRIVATE+KEY+<key name>+<key ID>+base64(key type || 32-byte seed ξ)
//!   signature = ML-DSA-65.Sign(sk, note text, ctx = "")   (3309 bytes)
//!   ```
//!
//!   The signature is FIPS 204 ML-DSA-65 in pure mode with an **empty context
//!   string** over the note text exactly as the Ed25519 signature covers it
//!   (every byte up to and including the text's final newline, not the
//!   separating blank line), hedged (randomised) as FIPS 204 recommends. The
//!   seed is the 32-byte ξ from which FIPS 204 `ML-DSA.KeyGen_internal`
//!   derives the key (the IETF LAMPS "seed" form). The terminating newline
//!   makes the identifier prefix-free, and because the type bytes differ
//!   (`0xff…` versus `0x01`) the ML-DSA key ID is computed over a different
//!   input than any Ed25519 key ID; the 4-byte IDs can still collide by chance
//!   (probability 2⁻³²), which [`crate::checkpoint::LogSigner`] and
//!   [`crate::checkpoint::LogVerifier`] refuse. Verifiers that do not know
//!   this type (Go's x/mod, for one) skip the line, as the specification
//!   requires of unknown keys.
//!
//! # Limits and strictness
//!
//! Notes are at most [`MAX_NOTE_LEN`] bytes with at most [`MAX_SIGNATURES`]
//! signature lines (the limits of x/mod); they must be UTF-8 without control
//! characters other than newline; base64 must be canonical standard base64
//! with padding. Every signature line from a known key is verified, and any
//! that fails rejects the whole note (x/mod checks only the first line of a
//! key); lines from unknown keys are skipped; at least one known key must
//! have signed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use citadel_crypto::Algorithm;
use citadel_crypto::hash::sha256;
use citadel_crypto::sig::{SigningKey, VerifyingKey};
use core::fmt;
use core::str::FromStr;
use zeroize::Zeroizing;

/// Largest note accepted, in bytes.
pub const MAX_NOTE_LEN: usize = 1_000_000;

/// Most signature lines accepted in one note.
pub const MAX_SIGNATURES: usize = 100;

/// What every signature line starts with: an em dash (U+2014) and a space.
pub const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// The key type byte of Ed25519 keys.
pub const ED25519_TYPE: u8 = 0x01;

/// The identifier of Citadel's ML-DSA-65 key type (after the `0xff` byte).
pub const ML_DSA_65_IDENTIFIER: &str = "citadel/ml-dsa-65";

/// The key type of Citadel's ML-DSA-65 keys: `0xff || "citadel/ml-dsa-65" || 0x0A`.
pub const ML_DSA_65_TYPE: &[u8] = b"\xffcitadel/ml-dsa-65\n";

/// The FIPS 204 context string of ML-DSA-65 note signatures: empty.
pub const ML_DSA_65_CONTEXT: &[u8] = b"";

const SKEY_PREFIX: &str = "PRIVATE+KEY+";

/// What can go wrong with notes and note keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is larger than [`MAX_NOTE_LEN`].
    #[error("the note is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The note is not valid UTF-8.
    #[error("the note is not valid UTF-8")]
    NotUtf8,
    /// The note contains a control character other than newline.
    #[error("the note contains a control character other than newline")]
    ControlCharacter,
    /// The note text does not end with a newline.
    #[error("the note text must end with a newline")]
    TextWithoutNewline,
    /// There is no blank line followed by signature lines.
    #[error("the note has no signature block (a blank line, then signature lines)")]
    NoSignatureBlock,
    /// A signature line is malformed.
    #[error("signature line {line} is malformed: {why}")]
    MalformedSignatureLine {
        /// 1-based number of the line within the signature block.
        line: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("the note has more than {0} signatures")]
    TooManySignatures(usize),
    /// A key name that is empty or contains a space, a plus sign or a control character.
    #[error(
        "invalid key name {0:?}: it must be non-empty, without spaces, `+` or control characters"
    )]
    InvalidKeyName(String),
    /// A verifier or signer key string that cannot be parsed.
    #[error("malformed {kind} key: {why}")]
    MalformedKey {
        /// `verifier` or `signer`.
        kind: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A key of a type this crate does not support.
    #[error("unsupported note key type (Ed25519 and Citadel ML-DSA-65 are supported)")]
    UnknownKeyType,
    /// The key ID in a key string is not the one its name and key give.
    #[error("the key ID {stated:08x} does not match the key (computed {computed:08x})")]
    KeyIdMismatch {
        /// The ID the string states.
        stated: u32,
        /// The ID computed from name and key.
        computed: u32,
    },
    /// A key of an algorithm that cannot sign notes.
    #[error("{0} keys cannot sign notes; use ed25519 or ml-dsa-65")]
    UnsupportedAlgorithm(Algorithm),
    /// A signer key string was asked for a key whose seed is unknown.
    #[error("the signing key was not created from a seed, so it has no key string")]
    NoSeed,
    /// A signature by a known key does not verify.
    #[error("invalid signature by {name}+{key_id:08x}")]
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
    /// No known key signed the note.
    #[error("no signature in the note is from a known key")]
    NoVerifiedSignature,
    /// Two different keys share a name and key ID.
    #[error("two different keys are named {name}+{key_id:08x}")]
    AmbiguousKey {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
    /// A note must carry at least one signature.
    #[error("no signers given; a note needs at least one signature")]
    NoSigners,
    /// The signing backend failed.
    #[error(transparent)]
    Crypto(#[from] citadel_crypto::Error),
}

/// The note key types this crate signs and verifies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureType {
    /// Ed25519, type byte `0x01`.
    Ed25519,
    /// ML-DSA-65, Citadel's type `0xff || "citadel/ml-dsa-65" || 0x0A`.
    MlDsa65,
}

impl SignatureType {
    /// The bytes between the key name's newline and the public key in the
    /// key ID hash, and before the key in a vkey.
    pub const fn type_prefix(self) -> &'static [u8] {
        match self {
            SignatureType::Ed25519 => &[ED25519_TYPE],
            SignatureType::MlDsa65 => ML_DSA_65_TYPE,
        }
    }

    /// The signature algorithm.
    pub const fn algorithm(self) -> Algorithm {
        match self {
            SignatureType::Ed25519 => Algorithm::Ed25519,
            SignatureType::MlDsa65 => Algorithm::MlDsa65,
        }
    }

    /// The type for an algorithm, if notes can be signed with it.
    pub fn from_algorithm(alg: Algorithm) -> Option<Self> {
        match alg {
            Algorithm::Ed25519 => Some(SignatureType::Ed25519),
            Algorithm::MlDsa65 => Some(SignatureType::MlDsa65),
            _ => None,
        }
    }

    /// The context string its signatures use (Ed25519 has none).
    const fn context(self) -> &'static [u8] {
        match self {
            SignatureType::Ed25519 => b"",
            SignatureType::MlDsa65 => ML_DSA_65_CONTEXT,
        }
    }

    /// Splits `type prefix || public key` (or `|| seed`) into its parts.
    fn split(data: &[u8]) -> Option<(Self, &[u8])> {
        [SignatureType::Ed25519, SignatureType::MlDsa65]
            .into_iter()
            .find_map(|t| data.strip_prefix(t.type_prefix()).map(|rest| (t, rest)))
    }
}

impl fmt::Display for SignatureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.algorithm().name())
    }
}

/// Whether `name` can name a note key: non-empty, with no Unicode space, no
/// `+` and no control character.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if is_valid_key_name(name) {
        Ok(())
    } else {
        Err(NoteError::InvalidKeyName(name.to_string()))
    }
}

/// The key ID: `SHA-256(name || 0x0A || type prefix || public key)[:4]`, big-endian.
pub fn key_id(name: &str, ty: SignatureType, public_key: &[u8]) -> u32 {
    let prefix = ty.type_prefix();
    let mut buf = Vec::with_capacity(name.len() + 1 + prefix.len() + public_key.len());
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.extend_from_slice(prefix);
    buf.extend_from_slice(public_key);
    let d = sha256(&buf);
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Parses exactly 8 hexadecimal digits.
fn parse_key_id(s: &str) -> Option<u32> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// A public key that verifies note signatures, with its name and key ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    ty: SignatureType,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for `key` (Ed25519 or ML-DSA-65) under `name`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        let ty = SignatureType::from_algorithm(key.algorithm())
            .ok_or(NoteError::UnsupportedAlgorithm(key.algorithm()))?;
        Ok(Self {
            name: name.to_string(),
            key_id: key_id(name, ty, key.as_bytes()),
            ty,
            key,
        })
    }

    /// Parses a verifier key string `name+<8 hex digit key ID>+base64(type || key)`,
    /// checking the key ID. The string must not carry surrounding whitespace.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let bad = |why| NoteError::MalformedKey {
            kind: "verifier",
            why,
        };
        let (name, rest) = vkey.split_once('+').ok_or(bad("expected name+id+key"))?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or(bad("expected name+id+key"))?;
        check_name(name)?;
        let stated = parse_key_id(id_hex).ok_or(bad("the key ID must be 8 hex digits"))?;
        let data = STANDARD
            .decode(key_b64)
            .map_err(|_| bad("the key is not canonical base64"))?;
        let (ty, public) = SignatureType::split(&data).ok_or(NoteError::UnknownKeyType)?;
        if public.len() != ty.algorithm().public_key_len() {
            return Err(bad("the public key has the wrong length"));
        }
        let computed = key_id(name, ty, public);
        if computed != stated {
            return Err(NoteError::KeyIdMismatch { stated, computed });
        }
        let key = VerifyingKey::from_bytes(ty.algorithm(), public)?;
        Ok(Self {
            name: name.to_string(),
            key_id: computed,
            ty,
            key,
        })
    }

    /// The verifier key string, `name+<key ID>+base64(type || key)`.
    pub fn vkey(&self) -> String {
        let mut data = self.ty.type_prefix().to_vec();
        data.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(&data)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The key type.
    pub fn signature_type(&self) -> SignatureType {
        self.ty
    }

    /// The public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Verifies a raw signature (without the key ID) over `text`.
    pub fn verify(&self, text: &[u8], signature: &[u8]) -> Result<(), NoteError> {
        self.key
            .verify(text, self.ty.context(), signature)
            .map_err(|_| NoteError::InvalidSignature {
                name: self.name.clone(),
                key_id: self.key_id,
            })
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, NoteError> {
        Self::parse(s)
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.vkey())
    }
}

/// A private key that signs notes, with its name and key ID.
pub struct NoteSigner {
    name: String,
    key_id: u32,
    ty: SignatureType,
    key: SigningKey,
}

impl NoteSigner {
    /// A signer for `key` (Ed25519 or ML-DSA-65) under `name`.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        check_name(name)?;
        let ty = SignatureType::from_algorithm(key.algorithm())
            .ok_or(NoteError::UnsupportedAlgorithm(key.algorithm()))?;
        let key_id = key_id(name, ty, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_string(),
            key_id,
            ty,
            key,
        })
    }

    /// Generates a fresh key of type `ty` under `name`.
    pub fn generate(name: &str, ty: SignatureType) -> Result<Self, NoteError> {
        check_name(name)?;
        Self::new(name, SigningKey::generate(ty.algorithm())?)
    }

    /// Parses a signer key string
    /// `PRIVATE+KEY+name+<key ID>+base64(type || seed)` (Go's x/mod format for
    /// Ed25519; the same layout with the ML-DSA-65 type and the 32-byte seed
    /// ξ for ML-DSA-65), checking the key ID against the derived public key.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let bad = |why| NoteError::MalformedKey {
            kind: "signer",
            why,
        };
        let rest = skey
            .strip_prefix(SKEY_PREFIX)
            .ok_or(bad("expected PRIVATE+KEY+name+id+key"))?;
        let (name, rest) = rest
            .split_once('+')
            .ok_or(bad("expected PRIVATE+KEY+name+id+key"))?;
        let (id_hex, key_b64) = rest
            .split_once('+')
            .ok_or(bad("expected PRIVATE+KEY+name+id+key"))?;
        check_name(name)?;
        let stated = parse_key_id(id_hex).ok_or(bad("the key ID must be 8 hex digits"))?;
        let data = Zeroizing::new(
            STANDARD
                .decode(key_b64)
                .map_err(|_| bad("the key is not canonical base64"))?,
        );
        let (ty, seed) = SignatureType::split(&data).ok_or(NoteError::UnknownKeyType)?;
        if seed.len() != 32 {
            return Err(bad("the seed must be 32 bytes"));
        }
        let signer = Self::new(name, SigningKey::from_seed(ty.algorithm(), seed)?)?;
        if signer.key_id != stated {
            return Err(NoteError::KeyIdMismatch {
                stated,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// The signer key string `PRIVATE+KEY+name+<key ID>+base64(type || seed)`.
    /// It is the private key: keep it secret.
    pub fn skey(&self) -> Result<Zeroizing<String>, NoteError> {
        let seed = self.key.seed().ok_or(NoteError::NoSeed)?;
        let mut data = Zeroizing::new(Vec::with_capacity(ML_DSA_65_TYPE.len() + seed.len()));
        data.extend_from_slice(self.ty.type_prefix());
        data.extend_from_slice(seed);
        let b64 = Zeroizing::new(STANDARD.encode(data.as_slice()));
        let id = format!("{:08x}", self.key_id);
        let mut out = Zeroizing::new(String::with_capacity(
            SKEY_PREFIX.len() + self.name.len() + 1 + id.len() + 1 + b64.len(),
        ));
        out.push_str(SKEY_PREFIX);
        out.push_str(&self.name);
        out.push('+');
        out.push_str(&id);
        out.push('+');
        out.push_str(&b64);
        Ok(out)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The key type.
    pub fn signature_type(&self) -> SignatureType {
        self.ty
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            ty: self.ty,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text`, returning the raw signature (without the key ID).
    pub fn sign(&self, text: &[u8]) -> Result<Vec<u8>, NoteError> {
        Ok(self.key.sign(text, self.ty.context())?)
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NoteSigner({}+{:08x}, {}, [REDACTED])",
            self.name, self.key_id, self.ty
        )
    }
}

/// One signature line of a note, verified or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    name: String,
    key_id: u32,
    signature: Vec<u8>,
}

impl NoteSignature {
    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature bytes, without the key ID.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The line as it appears in the note, without its newline.
    pub fn line(&self) -> String {
        let mut data = Vec::with_capacity(4 + self.signature.len());
        data.extend_from_slice(&self.key_id.to_be_bytes());
        data.extend_from_slice(&self.signature);
        format!(
            "{SIGNATURE_LINE_PREFIX}{} {}",
            self.name,
            STANDARD.encode(&data)
        )
    }

    fn parse(line: &str, number: usize) -> Result<Self, NoteError> {
        let bad = |why| NoteError::MalformedSignatureLine { line: number, why };
        let rest = line
            .strip_prefix(SIGNATURE_LINE_PREFIX)
            .ok_or(bad("it does not start with an em dash and a space"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(bad("expected a key name, a space and a signature"))?;
        if !is_valid_key_name(name) {
            return Err(bad("invalid key name"));
        }
        let data = STANDARD
            .decode(b64)
            .map_err(|_| bad("the signature is not canonical base64"))?;
        match data.as_slice() {
            [a, b, c, d, sig @ ..] if !sig.is_empty() => Ok(Self {
                name: name.to_string(),
                key_id: u32::from_be_bytes([*a, *b, *c, *d]),
                signature: sig.to_vec(),
            }),
            _ => Err(bad("the signature is too short")),
        }
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::TextWithoutNewline);
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::ControlCharacter);
    }
    Ok(())
}

/// A note: its text and signature lines, as parsed, not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// A note with this text and no signatures yet. The text must end with a
    /// newline and contain no control characters but newlines.
    pub fn new(text: &str) -> Result<Self, NoteError> {
        check_text(text)?;
        if text.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLarge {
                len: text.len(),
                max: MAX_NOTE_LEN,
            });
        }
        Ok(Self {
            text: text.to_string(),
            signatures: Vec::new(),
        })
    }

    /// Parses a signed note without verifying it. Checks the syntax only:
    /// size, UTF-8, control characters, the blank line, each signature line.
    pub fn parse(msg: &[u8]) -> Result<Self, NoteError> {
        if msg.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLarge {
                len: msg.len(),
                max: MAX_NOTE_LEN,
            });
        }
        let msg = core::str::from_utf8(msg).map_err(|_| NoteError::NotUtf8)?;
        if msg.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::ControlCharacter);
        }
        // The text ends at the last blank line; the block after it cannot
        // hold a blank line, so no text can smuggle in a signature line.
        let split = msg.rfind("\n\n").ok_or(NoteError::NoSignatureBlock)?;
        let (text, block) = msg.split_at(split + 1);
        let block = block.strip_prefix('\n').unwrap_or(block);
        let Some(block) = block.strip_suffix('\n') else {
            return Err(NoteError::NoSignatureBlock);
        };
        let mut signatures = Vec::new();
        for (i, line) in block.split('\n').enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures(MAX_SIGNATURES));
            }
            signatures.push(NoteSignature::parse(line, i + 1)?);
        }
        Ok(Self {
            text: text.to_string(),
            signatures,
        })
    }

    /// The note text, including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature by each signer, replacing any existing line with the
    /// same key name and ID. Existing lines come first, as in Go's x/mod.
    pub fn sign(&mut self, signers: &[&NoteSigner]) -> Result<(), NoteError> {
        for (i, s) in signers.iter().enumerate() {
            if signers[..i]
                .iter()
                .any(|o| o.name == s.name && o.key_id == s.key_id)
            {
                return Err(NoteError::AmbiguousKey {
                    name: s.name.clone(),
                    key_id: s.key_id,
                });
            }
        }
        let mut fresh = Vec::with_capacity(signers.len());
        for s in signers {
            fresh.push(NoteSignature {
                name: s.name.clone(),
                key_id: s.key_id,
                signature: s.sign(self.text.as_bytes())?,
            });
        }
        let mut signatures: Vec<NoteSignature> = self
            .signatures
            .iter()
            .filter(|old| {
                !signers
                    .iter()
                    .any(|s| s.name == old.name && s.key_id == old.key_id)
            })
            .cloned()
            .collect();
        signatures.extend(fresh);
        if signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures(MAX_SIGNATURES));
        }
        let candidate = Note {
            text: self.text.clone(),
            signatures,
        };
        let len = candidate.encoded_len();
        if len > MAX_NOTE_LEN {
            return Err(NoteError::TooLarge {
                len,
                max: MAX_NOTE_LEN,
            });
        }
        *self = candidate;
        Ok(())
    }

    /// Verifies the note against `verifiers`: every line whose key name and
    /// ID match a verifier must verify, lines of unknown keys are skipped,
    /// and at least one must have verified. Returns the verifiers whose
    /// signatures verified, each once, in the order of their first line.
    pub fn verify<'v>(
        &self,
        verifiers: &'v [NoteVerifier],
    ) -> Result<Vec<&'v NoteVerifier>, NoteError> {
        let mut verified: Vec<&'v NoteVerifier> = Vec::new();
        for sig in &self.signatures {
            let mut known = verifiers
                .iter()
                .filter(|v| v.name == sig.name && v.key_id == sig.key_id);
            let Some(v) = known.next() else {
                continue;
            };
            if known.any(|other| other != v) {
                return Err(NoteError::AmbiguousKey {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            v.verify(self.text.as_bytes(), &sig.signature)?;
            if !verified.contains(&v) {
                verified.push(v);
            }
        }
        if verified.is_empty() {
            return Err(NoteError::NoVerifiedSignature);
        }
        Ok(verified)
    }

    /// The signed note: text, blank line, signature lines.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.encoded_len());
        out.push_str(&self.text);
        out.push('\n');
        for sig in &self.signatures {
            out.push_str(&sig.line());
            out.push('\n');
        }
        out
    }

    fn encoded_len(&self) -> usize {
        self.text.len()
            + 1
            + self
                .signatures
                .iter()
                .map(|s| {
                    SIGNATURE_LINE_PREFIX.len()
                        + s.name.len()
                        + 1
                        + (4 + s.signature.len()).div_ceil(3) * 4
                        + 1
                })
                .sum::<usize>()
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// Signs `text` with every signer and returns the signed note.
pub fn sign(text: &str, signers: &[&NoteSigner]) -> Result<String, NoteError> {
    if signers.is_empty() {
        return Err(NoteError::NoSigners);
    }
    let mut note = Note::new(text)?;
    note.sign(signers)?;
    Ok(note.encode())
}

/// A note that verified, with the keys that signed it.
#[derive(Clone, Debug)]
pub struct OpenedNote<'v> {
    /// The note, all its signature lines included.
    pub note: Note,
    /// The known keys whose signatures verified.
    pub verified_by: Vec<&'v NoteVerifier>,
}

/// Parses and verifies a signed note (see [`Note::verify`]).
pub fn open<'v>(msg: &[u8], verifiers: &'v [NoteVerifier]) -> Result<OpenedNote<'v>, NoteError> {
    let note = Note::parse(msg)?;
    let verified_by = note.verify(verifiers)?;
    Ok(OpenedNote { note, verified_by })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // golang.org/x/mod/sumdb/note: package documentation and note_test.go
    // (TestNewVerifier, TestNewSigner, TestSign, TestOpen).
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn peter() -> NoteVerifier {
        NoteVerifier::parse(PETER_VKEY).unwrap()
    }

    fn enoch() -> NoteVerifier {
        NoteVerifier::parse(ENOCH_VKEY).unwrap()
    }

    fn msg(sigs: &[&str]) -> String {
        format!("{TEXT}\n{}", sigs.concat())
    }

    #[test]
    fn go_vkeys_parse_and_format() {
        let p = peter();
        assert_eq!(p.name(), "PeterNeumann");
        assert_eq!(p.key_id(), 0xc74f20a3);
        assert_eq!(p.signature_type(), SignatureType::Ed25519);
        assert_eq!(p.vkey(), PETER_VKEY);
        assert_eq!(enoch().to_string(), ENOCH_VKEY);
        assert_eq!(PETER_VKEY.parse::<NoteVerifier>().unwrap(), p);
    }

    /// Go's TestNewVerifier: every proper substring and every one-byte
    /// increment of the vkey is rejected.
    #[test]
    fn mangled_vkeys_are_rejected() {
        let b = PETER_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i != 0 || j != b.len() {
                    let s = String::from_utf8_lossy(&b[i..j]);
                    assert!(NoteVerifier::parse(&s).is_err(), "{s}");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] = m[i].wrapping_add(1);
            let s = String::from_utf8_lossy(&m);
            assert!(NoteVerifier::parse(&s).is_err(), "{s}");
        }
        // Go's "wrong length key, with adjusted key hash" and "unknown
        // algorithm, with adjusted key hash".
        assert!(
            NoteVerifier::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            )
            .is_err()
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::UnknownKeyType)
        );
    }

    #[test]
    fn go_skey_parses_and_signs_the_known_answer() {
        let s = NoteSigner::parse(PETER_SKEY).unwrap();
        assert_eq!(s.key_id(), 0xc74f20a3);
        assert_eq!(s.verifier(), peter());
        assert_eq!(s.skey().unwrap().as_str(), PETER_SKEY);
        // Ed25519 is deterministic: Go's TestSign output, byte for byte.
        assert_eq!(sign(TEXT, &[&s]).unwrap(), msg(&[PETER_SIG]));
        // A stale line by the same key is replaced.
        let mut n = Note::parse(msg(&[PETER_SIG]).as_bytes()).unwrap();
        n.signatures[0].signature[0] ^= 1;
        n.sign(&[&s]).unwrap();
        assert_eq!(n.encode(), msg(&[PETER_SIG]));
        // Go's TestNewSigner manglings (a sample: every one-byte increment).
        let b = PETER_SKEY.as_bytes();
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] = m[i].wrapping_add(1);
            assert!(NoteSigner::parse(&String::from_utf8_lossy(&m)).is_err());
        }
        assert!(NoteSigner::parse(&PETER_SKEY[1..]).is_err());
        assert!(NoteSigner::parse(&PETER_SKEY[..PETER_SKEY.len() - 1]).is_err());
    }

    #[test]
    fn go_test_open() {
        let (p, e) = (peter(), enoch());
        let keys = [p.clone()];
        let o = open(msg(&[PETER_SIG, ENOCH_SIG]).as_bytes(), &keys).unwrap();
        assert_eq!(o.note.text(), TEXT);
        assert_eq!(o.verified_by, vec![&p]);
        assert_eq!(o.note.signatures().len(), 2);
        assert_eq!(o.note.signatures()[1].name(), "EnochRoot");
        assert_eq!(o.note.signatures()[1].key_id(), 0xaf0cfe78);

        let both = [p.clone(), e.clone()];
        let o = open(msg(&[PETER_SIG, ENOCH_SIG]).as_bytes(), &both).unwrap();
        assert_eq!(o.verified_by, vec![&p, &e]);

        assert_eq!(
            open(msg(&[PETER_SIG, ENOCH_SIG]).as_bytes(), &[]).unwrap_err(),
            NoteError::NoVerifiedSignature
        );

        // Too many signatures, verified or not.
        let many = msg(&[&PETER_SIG.repeat(101)]);
        assert_eq!(
            open(many.as_bytes(), &keys).unwrap_err(),
            NoteError::TooManySignatures(MAX_SIGNATURES)
        );
        assert!(Note::parse(msg(&[&PETER_SIG.repeat(100)]).as_bytes()).is_ok());

        // Invalid signature by a known key.
        let bad = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert_eq!(
            open(msg(&[&bad]).as_bytes(), &keys).unwrap_err(),
            NoteError::InvalidSignature {
                name: "PeterNeumann".into(),
                key_id: 0xc74f20a3
            }
        );

        // Duplicated lines are fine; a bad line by an unknown key is skipped.
        let enoch_bad = format!("{}ABCD{}", &ENOCH_SIG[..60], &ENOCH_SIG[60..]);
        let o = open(
            msg(&[PETER_SIG, PETER_SIG, ENOCH_SIG, ENOCH_SIG, &enoch_bad]).as_bytes(),
            &keys,
        )
        .unwrap();
        assert_eq!(o.verified_by, vec![&p]);

        // Malformed notes (Go's badMsgs).
        let bad_msgs = [
            TEXT.to_string(),
            format!("{TEXT}\n"),
            format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
            format!("\x01{TEXT}\n{PETER_SIG}"),
            format!(
                "{TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
            ),
            format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
        ];
        for m in bad_msgs {
            assert!(open(m.as_bytes(), &keys).is_err(), "{m:?}");
        }
        let mut not_utf8 = b"\xff".to_vec();
        not_utf8.extend_from_slice(msg(&[PETER_SIG]).as_bytes());
        assert_eq!(Note::parse(&not_utf8), Err(NoteError::NotUtf8));

        // A line that names a known key with another ID is someone else's.
        let renamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego");
        assert_eq!(
            open(msg(&[&renamed]).as_bytes(), &keys).unwrap_err(),
            NoteError::NoVerifiedSignature
        );
    }

    #[test]
    fn tampering_is_detected() {
        let keys = [peter()];
        let good = msg(&[PETER_SIG]);
        assert!(open(good.as_bytes(), &keys).is_ok());
        // Any changed byte of the text.
        for i in 0..TEXT.len() {
            let mut b = good.clone().into_bytes();
            b[i] = if b[i] == b'x' { b'y' } else { b'x' };
            assert!(open(&b, &keys).is_err(), "byte {i}");
        }
        // A changed signature byte.
        let mut n = Note::parse(good.as_bytes()).unwrap();
        n.signatures[0].signature[10] ^= 0x40;
        assert!(matches!(
            n.verify(&keys),
            Err(NoteError::InvalidSignature { .. })
        ));
        // The right name and ID with another key.
        let impostor = NoteVerifier {
            key: enoch().key,
            ..peter()
        };
        assert!(open(good.as_bytes(), &[impostor]).is_err());
        // Two different keys claiming the same name and ID.
        let twin = NoteVerifier {
            key: enoch().key,
            ..peter()
        };
        assert!(matches!(
            open(good.as_bytes(), &[peter(), twin]),
            Err(NoteError::AmbiguousKey { .. })
        ));
        // The same key listed twice is not ambiguous.
        assert!(open(good.as_bytes(), &[peter(), peter()]).is_ok());
    }

    #[test]
    fn ml_dsa_65_round_trip() {
        let s = NoteSigner::generate("citadel.example/log", SignatureType::MlDsa65).unwrap();
        let v = s.verifier();
        assert_eq!(v.signature_type(), SignatureType::MlDsa65);
        assert_eq!(
            v.key_id(),
            key_id(
                "citadel.example/log",
                SignatureType::MlDsa65,
                v.verifying_key().as_bytes()
            )
        );
        let vkey = v.vkey();
        assert_eq!(NoteVerifier::parse(&vkey).unwrap(), v);
        let skey = s.skey().unwrap();
        assert!(skey.starts_with("PRIVATE+KEY+citadel.example/log+"));
        let again = NoteSigner::parse(&skey).unwrap();
        assert_eq!(again.verifier(), v);

        let signed = sign("hello\nworld\n", &[&s]).unwrap();
        let line = signed.lines().last().unwrap();
        // 4 + 3309 bytes of base64.
        assert_eq!(
            line.len(),
            SIGNATURE_LINE_PREFIX.len() + "citadel.example/log ".len() + 4 * 3313usize.div_ceil(3)
        );
        let o = open(signed.as_bytes(), std::slice::from_ref(&v)).unwrap();
        assert_eq!(o.note.text(), "hello\nworld\n");
        // The signature is plain ML-DSA-65 over the text with an empty context.
        let sig = o.note.signatures()[0].signature();
        v.verifying_key()
            .verify(b"hello\nworld\n", b"", sig)
            .unwrap();
        assert!(
            v.verifying_key()
                .verify(b"hello\nworld\n", b"x", sig)
                .is_err()
        );
        // Tampered text.
        let tampered = signed.replacen("world", "w0rld", 1);
        assert!(open(tampered.as_bytes(), std::slice::from_ref(&v)).is_err());
    }

    #[test]
    fn ml_dsa_key_id_construction() {
        // The key ID input is name || 0x0A || 0xff || "citadel/ml-dsa-65" || 0x0A || pk.
        let pk = [7u8; 1952];
        let mut input = b"log.example\n\xffcitadel/ml-dsa-65\n".to_vec();
        input.extend_from_slice(&pk);
        let d = sha256(&input);
        assert_eq!(
            key_id("log.example", SignatureType::MlDsa65, &pk),
            u32::from_be_bytes([d[0], d[1], d[2], d[3]])
        );
        assert_eq!(ML_DSA_65_TYPE.len(), 19);
        assert_eq!(&ML_DSA_65_TYPE[1..18], ML_DSA_65_IDENTIFIER.as_bytes());
    }

    #[test]
    fn mixed_signers_and_unknown_ml_dsa_line_for_ed25519_verifiers() {
        let ed = NoteSigner::generate("log.example", SignatureType::Ed25519).unwrap();
        let ml = NoteSigner::generate("log.example", SignatureType::MlDsa65).unwrap();
        let signed = sign("a\n\nb\n", &[&ed, &ml]).unwrap();
        // An Ed25519-only verifier skips the ML-DSA line.
        let ed_only = [ed.verifier()];
        let o = open(signed.as_bytes(), &ed_only).unwrap();
        assert_eq!(o.note.text(), "a\n\nb\n");
        assert_eq!(o.note.signatures().len(), 2);
        let both = [ed.verifier(), ml.verifier()];
        assert_eq!(open(signed.as_bytes(), &both).unwrap().verified_by.len(), 2);
        // Re-encoding reproduces the bytes.
        assert_eq!(Note::parse(signed.as_bytes()).unwrap().encode(), signed);
    }

    #[test]
    fn text_and_name_rules() {
        let ed = NoteSigner::generate("k", SignatureType::Ed25519).unwrap();
        assert_eq!(sign("abc", &[&ed]), Err(NoteError::TextWithoutNewline));
        assert_eq!(sign("a\tb\n", &[&ed]), Err(NoteError::ControlCharacter));
        assert_eq!(sign("abc\n", &[]), Err(NoteError::NoSigners));
        assert!(matches!(
            sign("abc\n", &[&ed, &ed]),
            Err(NoteError::AmbiguousKey { .. })
        ));
        for name in ["", "a b", "a+b", "a\u{2003}b", "a\x01b", "a\nb"] {
            assert!(!is_valid_key_name(name), "{name:?}");
            assert!(NoteSigner::generate(name, SignatureType::Ed25519).is_err());
        }
        assert!(is_valid_key_name("example.com/log—1"));
        // Texts with blank lines, even at the end, survive the round trip.
        for text in ["\n", "a\n\n", "a\n\n\n", "— k AAAA\n\n"] {
            let signed = sign(text, &[&ed]).unwrap();
            let keys = [ed.verifier()];
            let o = open(signed.as_bytes(), &keys).unwrap();
            assert_eq!(o.note.text(), text);
        }
        let big = "a".repeat(MAX_NOTE_LEN) + "\n";
        assert!(matches!(Note::new(&big), Err(NoteError::TooLarge { .. })));
        let nearly = "a".repeat(MAX_NOTE_LEN - 10) + "\n";
        assert!(matches!(
            sign(&nearly, &[&ed]),
            Err(NoteError::TooLarge { .. })
        ));
    }

    #[test]
    fn non_canonical_base64_is_rejected() {
        // The last character of Peter's signature carries 2 padding bits;
        // changing them keeps the bytes for lenient decoders.
        let lenient = PETER_SIG.replace("nAM=", "nAN=");
        assert!(matches!(
            Note::parse(msg(&[&lenient]).as_bytes()),
            Err(NoteError::MalformedSignatureLine { .. })
        ));
        let unpadded = PETER_SIG.replace("nAM=", "nAM");
        assert!(Note::parse(msg(&[&unpadded]).as_bytes()).is_err());
    }

    #[test]
    fn unsupported_algorithms() {
        let k = SigningKey::generate(Algorithm::MlDsa44).unwrap();
        assert_eq!(
            NoteVerifier::new("x", k.verifying_key()).unwrap_err(),
            NoteError::UnsupportedAlgorithm(Algorithm::MlDsa44)
        );
        assert!(NoteSigner::new("x", k).is_err());
    }

    #[test]
    fn signer_debug_is_redacted() {
        let s = NoteSigner::parse(PETER_SKEY).unwrap();
        let d = format!("{s:?}");
        assert!(d.contains("REDACTED") && !d.contains("AYEKF"), "{d}");
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Note::parse(&bytes);
            let s = String::from_utf8_lossy(&bytes);
            let _ = NoteVerifier::parse(&s);
            let _ = NoteSigner::parse(&s);
            let _ = open(&bytes, &[peter()]);
        }

        #[test]
        fn mutated_notes_never_panic(pos in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
            let mut b = msg(&[PETER_SIG, ENOCH_SIG]).into_bytes();
            let p = pos % b.len();
            b[p] = byte;
            let _ = open(&b, &[peter(), enoch()]);
            b.truncate(cut % (b.len() + 1));
            let _ = open(&b, &[peter(), enoch()]);
        }

        #[test]
        fn text_round_trips(text in "[a-z \u{2014}+\n]{0,80}") {
            let text = format!("{text}\n");
            let s = NoteSigner::parse(PETER_SKEY).unwrap();
            let signed = sign(&text, &[&s]).unwrap();
            let keys = [peter()];
            let o = open(signed.as_bytes(), &keys).unwrap();
            prop_assert_eq!(o.note.text(), text.as_str());
            prop_assert_eq!(o.note.encode(), signed);
        }
    }
}
