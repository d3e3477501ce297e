//! C2SP transparency-log checkpoints (<https://c2sp.org/tlog-checkpoint>),
//! signed by a log with both an Ed25519 and an ML-DSA-65 note signature, and
//! C2SP inclusion-proof bundles (<https://c2sp.org/tlog-proof>).
//!
//! A checkpoint is the text of a signed note:
//!
//! ```text
//! <origin>
//! <tree size, decimal, no leading zeros>
//! <root hash, standard base64>
//! [extension lines, each non-empty]
//! ```
//!
//! A Citadel log names both of its keys after its origin and signs each
//! checkpoint with both ([`LogSigner`]); verifiers require both signatures
//! unless told otherwise by name ([`LogVerifier::ml_dsa_65_only`],
//! [`LogVerifier::insecure_ed25519_only`]). Classical verifiers (Go's
//! x/mod, for one) check the Ed25519 line and skip the ML-DSA-65 line.

use crate::merkle::{self, Hash, MAX_PROOF_LEN, ProofError};
use crate::note::{MAX_NOTE_LEN, Note, NoteError, NoteSigner, NoteVerifier, SignatureType};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use core::fmt;

/// The first line of a tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Largest tlog-proof accepted, in bytes (the checkpoint in it is limited to
/// [`MAX_NOTE_LEN`] on its own).
pub const MAX_TLOG_PROOF_LEN: usize = 2 * MAX_NOTE_LEN;

/// What can go wrong with checkpoints and proofs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The checkpoint text is malformed.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The tlog-proof text is malformed.
    #[error("malformed tlog-proof: {0}")]
    MalformedProof(&'static str),
    /// The checkpoint is from another log.
    #[error("the checkpoint is for log {found:?}, expected {expected:?}")]
    OriginMismatch {
        /// The origin asked for.
        expected: String,
        /// The origin the checkpoint names.
        found: String,
    },
    /// A signature the verifier requires is absent.
    #[error("the checkpoint has no {ty} signature by {name}+{key_id:08x}")]
    MissingSignature {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
        /// The key type.
        ty: SignatureType,
    },
    /// The keys given to [`LogSigner`] or [`LogVerifier`] do not fit together.
    #[error("unusable log keys: {0}")]
    Keys(&'static str),
    /// The signed note is malformed or a signature does not verify.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The inclusion proof does not verify.
    #[error("inclusion proof: {0}")]
    Proof(#[from] ProofError),
}

/// Parses an ASCII decimal without sign, spaces or leading zeros.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Decodes canonical standard base64 of exactly one hash.
fn parse_hash(s: &str) -> Option<Hash> {
    STANDARD.decode(s).ok()?.try_into().ok()
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c < ' ')
}

/// The note text of a checkpoint: a log's origin, tree size and root hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines. The origin must be non-empty and
    /// free of control characters (newlines included).
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        if origin.is_empty() || has_control(origin) {
            return Err(CheckpointError::Malformed(
                "the origin must be non-empty, on one line, without control characters",
            ));
        }
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
            extensions: Vec::new(),
        })
    }

    /// Appends an extension line (non-empty, no control characters). The
    /// specification advises against them: monitors cannot audit them.
    pub fn push_extension(&mut self, line: &str) -> Result<(), CheckpointError> {
        if line.is_empty() || has_control(line) {
            return Err(CheckpointError::Malformed(
                "an extension line must be non-empty, without control characters",
            ));
        }
        self.extensions.push(line.to_string());
        Ok(())
    }

    /// Parses checkpoint text (a note text, ending in a newline).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        use CheckpointError::Malformed;
        if text.len() > MAX_NOTE_LEN {
            return Err(Malformed("longer than a note may be"));
        }
        let body = text
            .strip_suffix('\n')
            .ok_or(Malformed("the text must end with a newline"))?;
        if has_control(&body.replace('\n', "")) {
            return Err(Malformed("control character"));
        }
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or("");
        if origin.is_empty() {
            return Err(Malformed("empty origin line"));
        }
        let size = lines
            .next()
            .ok_or(Malformed("missing tree size line"))
            .and_then(|l| {
                parse_decimal(l).ok_or(Malformed(
                    "the tree size must be a decimal number without leading zeros",
                ))
            })?;
        let root = lines
            .next()
            .ok_or(Malformed("missing root hash line"))
            .and_then(|l| {
                parse_hash(l).ok_or(Malformed(
                    "the root hash must be 32 bytes in canonical standard base64",
                ))
            })?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(Malformed("empty extension line"));
        }
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }

    /// The checkpoint as note text.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash.
    pub fn root(&self) -> &Hash {
        &self.root
    }

    /// The extension lines.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// A log's signing keys: one Ed25519 and one ML-DSA-65 key, both named
/// after the log's origin.
#[derive(Debug)]
pub struct LogSigner {
    ed25519: NoteSigner,
    ml_dsa_65: NoteSigner,
}

impl LogSigner {
    /// Pairs the two keys. Both must be named after the origin, be of the
    /// right types, and have different key IDs.
    pub fn new(ed25519: NoteSigner, ml_dsa_65: NoteSigner) -> Result<Self, CheckpointError> {
        if ed25519.signature_type() != SignatureType::Ed25519
            || ml_dsa_65.signature_type() != SignatureType::MlDsa65
        {
            return Err(CheckpointError::Keys(
                "expected an Ed25519 and an ML-DSA-65 key",
            ));
        }
        if ed25519.name() != ml_dsa_65.name() {
            return Err(CheckpointError::Keys(
                "both keys must carry the same name, the log's origin",
            ));
        }
        if ed25519.key_id() == ml_dsa_65.key_id() {
            return Err(CheckpointError::Keys(
                "the two keys have the same key ID; generate another ML-DSA-65 key",
            ));
        }
        Ok(Self { ed25519, ml_dsa_65 })
    }

    /// Generates both keys for a log with this origin (which must be a valid
    /// key name).
    pub fn generate(origin: &str) -> Result<Self, CheckpointError> {
        let ed25519 = NoteSigner::generate(origin, SignatureType::Ed25519)?;
        // Key IDs are 32 bits: a collision is a 2^-32 event; draw again.
        for _ in 0..4 {
            let ml_dsa_65 = NoteSigner::generate(origin, SignatureType::MlDsa65)?;
            if ml_dsa_65.key_id() != ed25519.key_id() {
                return Self::new(ed25519, ml_dsa_65);
            }
        }
        Err(CheckpointError::Keys("key IDs keep colliding"))
    }

    /// The log's origin, the name of both keys.
    pub fn origin(&self) -> &str {
        self.ed25519.name()
    }

    /// The Ed25519 key.
    pub fn ed25519(&self) -> &NoteSigner {
        &self.ed25519
    }

    /// The ML-DSA-65 key.
    pub fn ml_dsa_65(&self) -> &NoteSigner {
        &self.ml_dsa_65
    }

    /// The verifier that requires both signatures.
    pub fn verifier(&self) -> LogVerifier {
        LogVerifier {
            origin: self.origin().to_string(),
            keys: vec![self.ed25519.verifier(), self.ml_dsa_65.verifier()],
        }
    }
}

/// What a checkpoint verifier trusts: a log origin and the keys that must
/// all have signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogVerifier {
    origin: String,
    keys: Vec<NoteVerifier>,
}

impl LogVerifier {
    /// Requires both an Ed25519 and an ML-DSA-65 signature (the default
    /// for Citadel logs). The key names need not equal the origin (Go's
    /// checksum database signs origin `go.sum database tree` with key
    /// `sum.golang.org`), but the two keys must not share name and key ID.
    pub fn new(
        origin: &str,
        ed25519: NoteVerifier,
        ml_dsa_65: NoteVerifier,
    ) -> Result<Self, CheckpointError> {
        if ed25519.signature_type() != SignatureType::Ed25519
            || ml_dsa_65.signature_type() != SignatureType::MlDsa65
        {
            return Err(CheckpointError::Keys(
                "expected an Ed25519 and an ML-DSA-65 key",
            ));
        }
        if ed25519.name() == ml_dsa_65.name() && ed25519.key_id() == ml_dsa_65.key_id() {
            return Err(CheckpointError::Keys(
                "the two keys have the same name and key ID",
            ));
        }
        Self::with_keys(origin, vec![ed25519, ml_dsa_65])
    }

    /// Requires only the ML-DSA-65 signature.
    pub fn ml_dsa_65_only(origin: &str, ml_dsa_65: NoteVerifier) -> Result<Self, CheckpointError> {
        if ml_dsa_65.signature_type() != SignatureType::MlDsa65 {
            return Err(CheckpointError::Keys("expected an ML-DSA-65 key"));
        }
        Self::with_keys(origin, vec![ml_dsa_65])
    }

    /// Requires only an Ed25519 signature: a quantum computer could forge
    /// the checkpoints this accepts. For logs that have no ML-DSA-65 key.
    pub fn insecure_ed25519_only(
        origin: &str,
        ed25519: NoteVerifier,
    ) -> Result<Self, CheckpointError> {
        if ed25519.signature_type() != SignatureType::Ed25519 {
            return Err(CheckpointError::Keys("expected an Ed25519 key"));
        }
        Self::with_keys(origin, vec![ed25519])
    }

    fn with_keys(origin: &str, keys: Vec<NoteVerifier>) -> Result<Self, CheckpointError> {
        if origin.is_empty() || has_control(origin) {
            return Err(CheckpointError::Malformed(
                "the origin must be non-empty, on one line, without control characters",
            ));
        }
        Ok(Self {
            origin: origin.to_string(),
            keys,
        })
    }

    /// The origin checkpoints must name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The keys that must all have signed.
    pub fn keys(&self) -> &[NoteVerifier] {
        &self.keys
    }
}

/// A checkpoint and the signed note that carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: Note,
}

impl SignedCheckpoint {
    /// Signs a checkpoint with both log keys; its origin must be the keys' name.
    pub fn sign(checkpoint: Checkpoint, signer: &LogSigner) -> Result<Self, CheckpointError> {
        if checkpoint.origin() != signer.origin() {
            return Err(CheckpointError::OriginMismatch {
                expected: signer.origin().to_string(),
                found: checkpoint.origin,
            });
        }
        let mut note = Note::new(&checkpoint.to_text())?;
        note.sign(&[signer.ed25519(), signer.ml_dsa_65()])?;
        Ok(Self { checkpoint, note })
    }

    /// Parses a signed checkpoint and verifies it: the origin must be the
    /// verifier's, every key of the verifier must have a valid signature,
    /// and no line by one of its keys may fail. Lines by other keys
    /// (witnesses, say) are kept but not checked.
    pub fn open(msg: &[u8], verifier: &LogVerifier) -> Result<Self, CheckpointError> {
        let note = Note::parse(msg)?;
        let checkpoint = Checkpoint::parse(note.text())?;
        if checkpoint.origin() != verifier.origin() {
            return Err(CheckpointError::OriginMismatch {
                expected: verifier.origin().to_string(),
                found: checkpoint.origin,
            });
        }
        let verified = note.verify(verifier.keys())?;
        for key in verifier.keys() {
            if !verified.contains(&key) {
                return Err(CheckpointError::MissingSignature {
                    name: key.name().to_string(),
                    key_id: key.key_id(),
                    ty: key.signature_type(),
                });
            }
        }
        Ok(Self { checkpoint, note })
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The signed note, with every signature line.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// The signed checkpoint as text.
    pub fn to_text(&self) -> String {
        self.note.encode()
    }
}

impl fmt::Display for SignedCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// An inclusion proof bundled with its signed checkpoint
/// (c2sp.org/tlog-proof@v1):
///
/// ```text
/// c2sp.org/tlog-proof@v1
/// extra <base64>              (optional, unauthenticated)
/// index <decimal>
/// <proof hash, base64>        (zero or more lines, leaf's sibling first)
///
/// <signed checkpoint>
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    extra: Option<Vec<u8>>,
    index: u64,
    hashes: Vec<Hash>,
    checkpoint: String,
}

impl TlogProof {
    /// Bundles the inclusion proof of leaf `index` with the checkpoint it
    /// leads to.
    pub fn new(
        index: u64,
        hashes: Vec<Hash>,
        checkpoint: &SignedCheckpoint,
    ) -> Result<Self, CheckpointError> {
        if hashes.len() > MAX_PROOF_LEN {
            return Err(CheckpointError::MalformedProof("too many proof hashes"));
        }
        Ok(Self {
            extra: None,
            index,
            hashes,
            checkpoint: checkpoint.to_text(),
        })
    }

    /// Sets the opaque extra data. It is not authenticated.
    pub fn with_extra(mut self, extra: Vec<u8>) -> Self {
        self.extra = Some(extra);
        self
    }

    /// Parses a tlog-proof. The checkpoint's syntax is checked here, its
    /// signatures by [`TlogProof::verify`].
    pub fn parse(data: &[u8]) -> Result<Self, CheckpointError> {
        use CheckpointError::MalformedProof as Bad;
        if data.len() > MAX_TLOG_PROOF_LEN {
            return Err(Bad("too large"));
        }
        let text = core::str::from_utf8(data).map_err(|_| Bad("not UTF-8"))?;
        let mut rest = text;
        let mut next_line = || -> Result<&str, CheckpointError> {
            let (line, tail) = rest.split_once('\n').ok_or(Bad("truncated"))?;
            rest = tail;
            Ok(line)
        };
        if next_line()? != TLOG_PROOF_HEADER {
            return Err(Bad("missing the c2sp.org/tlog-proof@v1 header"));
        }
        let mut line = next_line()?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(
                STANDARD
                    .decode(b64)
                    .map_err(|_| Bad("the extra data is not canonical base64"))?,
            );
            line = next_line()?;
        }
        let index = line
            .strip_prefix("index ")
            .ok_or(Bad("missing the index line"))?;
        let index = parse_decimal(index).ok_or(Bad(
            "the index must be a decimal number without leading zeros",
        ))?;
        let mut hashes = Vec::new();
        loop {
            let line = next_line()?;
            if line.is_empty() {
                break;
            }
            if hashes.len() == MAX_PROOF_LEN {
                return Err(Bad("too many proof hashes"));
            }
            hashes.push(parse_hash(line).ok_or(Bad(
                "a proof hash is not 32 bytes of canonical standard base64",
            ))?);
        }
        let checkpoint = rest.to_string();
        Checkpoint::parse(Note::parse(checkpoint.as_bytes())?.text())?;
        Ok(Self {
            extra,
            index,
            hashes,
            checkpoint,
        })
    }

    /// The proof as text.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(
            TLOG_PROOF_HEADER.len() + 64 + self.hashes.len() * 45 + self.checkpoint.len(),
        );
        out.push_str(TLOG_PROOF_HEADER);
        out.push('\n');
        if let Some(extra) = &self.extra {
            out.push_str("extra ");
            out.push_str(&STANDARD.encode(extra));
            out.push('\n');
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.hashes {
            out.push_str(&STANDARD.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Opens the checkpoint with `verifier` and checks that `leaf_hash` is
    /// leaf [`TlogProof::index`] of its tree. Returns the verified checkpoint.
    pub fn verify(
        &self,
        leaf_hash: &Hash,
        verifier: &LogVerifier,
    ) -> Result<SignedCheckpoint, CheckpointError> {
        let signed = SignedCheckpoint::open(self.checkpoint.as_bytes(), verifier)?;
        let cp = signed.checkpoint();
        merkle::verify_inclusion(leaf_hash, self.index, cp.size(), &self.hashes, cp.root())?;
        Ok(signed)
    }

    /// The opaque extra data, if any. Not authenticated.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }

    /// The leaf index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The inclusion proof hashes.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The signed checkpoint, as included (not yet verified).
    pub fn checkpoint_text(&self) -> &str {
        &self.checkpoint
    }
}

impl fmt::Display for TlogProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{MemoryTree, leaf_hash};
    use proptest::prelude::*;

    fn signer() -> LogSigner {
        LogSigner::generate("citadel.example/audit").unwrap()
    }

    #[test]
    fn checkpoint_round_trip_and_c2sp_example() {
        // c2sp.org/tlog-checkpoint example body.
        let text =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let cp = Checkpoint::parse(text).unwrap();
        assert_eq!(cp.origin(), "example.com/behind-the-sofa");
        assert_eq!(cp.size(), 20852163);
        assert_eq!(
            hex::encode(cp.root()),
            "0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62"
        );
        assert!(cp.extensions().is_empty());
        assert_eq!(cp.to_text(), text);
        // The example's signed note parses (its key is not published).
        let signed = format!(
            "{text}\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
        );
        let n = Note::parse(signed.as_bytes()).unwrap();
        assert_eq!(n.signatures()[0].key_id(), 0x033de0ae);

        let mut cp = Checkpoint::new("log", 0, merkle::empty_root()).unwrap();
        cp.push_extension("ext one").unwrap();
        cp.push_extension("— two").unwrap();
        assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
        assert!(cp.push_extension("").is_err());
        assert!(cp.push_extension("a\nb").is_err());
        assert!(Checkpoint::new("", 1, [0; 32]).is_err());
        assert!(Checkpoint::new("a\nb", 1, [0; 32]).is_err());
    }

    #[test]
    fn checkpoint_parsing_is_strict() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        let ok = |s: &str| Checkpoint::parse(s).is_ok();
        assert!(ok(&format!("o\n0\n{root}\n")));
        assert!(ok(&format!("o\n18446744073709551615\n{root}\n")));
        assert!(ok(&format!("o\n1\n{root}\next\n")));
        for bad in [
            format!("o\n1\n{root}"),
            "o\n1\n".to_string(),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root}\n\next\n"),
            format!("\n1\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n00\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n 1\n{root}\n"),
            format!("o\n1 \n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n0x10\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("o\n1\n{}\n", &root[..root.len() - 4]),
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".to_string(),
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".to_string(),
            format!("o\n1\n{}\n", hex::encode([0u8; 32])),
            format!("o\r\n1\n{root}\n"),
            format!("o\t\n1\n{root}\n"),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
        }
    }

    /// A real sum.golang.org checkpoint and the sumdb key, from
    /// transparency-dev/formats log/note_test.go (TestSumDBNoteParsing).
    #[test]
    fn go_sumdb_checkpoint_verifies_with_ed25519_only() {
        let vkey = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
        let msg = "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n— sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n";
        let v = NoteVerifier::parse(vkey).unwrap();
        let lv = LogVerifier::insecure_ed25519_only("go.sum database tree", v.clone()).unwrap();
        let sc = SignedCheckpoint::open(msg.as_bytes(), &lv).unwrap();
        assert_eq!(sc.checkpoint().size(), 6476701);
        assert_eq!(sc.checkpoint().origin(), "go.sum database tree");
        assert_eq!(sc.to_text(), msg);
        let wrong = LogVerifier::insecure_ed25519_only("Go rocks", v).unwrap();
        assert!(matches!(
            SignedCheckpoint::open(msg.as_bytes(), &wrong),
            Err(CheckpointError::OriginMismatch { .. })
        ));
        let tampered = msg.replace("6476701", "6476702");
        assert!(SignedCheckpoint::open(tampered.as_bytes(), &lv).is_err());
    }

    #[test]
    fn signed_checkpoint_requires_both_signatures() {
        let s = signer();
        let v = s.verifier();
        let cp = Checkpoint::new(s.origin(), 5, [9; 32]).unwrap();
        let sc = SignedCheckpoint::sign(cp.clone(), &s).unwrap();
        let text = sc.to_text();
        let opened = SignedCheckpoint::open(text.as_bytes(), &v).unwrap();
        assert_eq!(opened, sc);
        assert_eq!(opened.checkpoint(), &cp);
        assert_eq!(opened.note().signatures().len(), 2);

        // Each key on its own.
        let ml_only = LogVerifier::ml_dsa_65_only(s.origin(), s.ml_dsa_65().verifier()).unwrap();
        SignedCheckpoint::open(text.as_bytes(), &ml_only).unwrap();
        let ed_only =
            LogVerifier::insecure_ed25519_only(s.origin(), s.ed25519().verifier()).unwrap();
        SignedCheckpoint::open(text.as_bytes(), &ed_only).unwrap();

        // Only one of the two signatures: refused by the default verifier.
        for (one, missing) in [
            (s.ed25519(), SignatureType::MlDsa65),
            (s.ml_dsa_65(), SignatureType::Ed25519),
        ] {
            let half = crate::note::sign(&cp.to_text(), &[one]).unwrap();
            match SignedCheckpoint::open(half.as_bytes(), &v) {
                Err(CheckpointError::MissingSignature { ty, .. }) => assert_eq!(ty, missing),
                other => panic!("{other:?}"),
            }
        }

        // A witness cosignature by an unknown key is kept and ignored.
        let witness = NoteSigner::generate("witness.example", SignatureType::Ed25519).unwrap();
        let mut n = sc.note().clone();
        n.sign(&[&witness]).unwrap();
        let opened = SignedCheckpoint::open(n.encode().as_bytes(), &v).unwrap();
        assert_eq!(opened.note().signatures().len(), 3);

        // A bad line by a required key rejects the note, even next to a good one.
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let ml_line = lines.last().unwrap().clone();
        let mut bad_line = ml_line.into_bytes();
        let at = bad_line.len() - 10;
        bad_line[at] = if bad_line[at] == b'A' { b'B' } else { b'A' };
        lines.push(String::from_utf8(bad_line).unwrap());
        let doubled = lines.join("\n") + "\n";
        assert!(matches!(
            SignedCheckpoint::open(doubled.as_bytes(), &v),
            Err(CheckpointError::Note(NoteError::InvalidSignature { .. }))
        ));

        // Another log's keys.
        let other = signer();
        assert!(SignedCheckpoint::open(text.as_bytes(), &other.verifier()).is_err());

        // Tampered body.
        let tampered = text.replacen("\n5\n", "\n6\n", 1);
        assert!(SignedCheckpoint::open(tampered.as_bytes(), &v).is_err());

        // Checkpoint of another origin cannot be signed.
        let foreign = Checkpoint::new("elsewhere", 5, [9; 32]).unwrap();
        assert!(matches!(
            SignedCheckpoint::sign(foreign, &s),
            Err(CheckpointError::OriginMismatch { .. })
        ));
    }

    #[test]
    fn log_key_pairing_rules() {
        let ed = NoteSigner::generate("a", SignatureType::Ed25519).unwrap();
        let ml = NoteSigner::generate("b", SignatureType::MlDsa65).unwrap();
        assert!(matches!(
            LogSigner::new(ed, ml),
            Err(CheckpointError::Keys(_))
        ));
        let ed = NoteSigner::generate("a", SignatureType::Ed25519).unwrap();
        let ed2 = NoteSigner::generate("a", SignatureType::Ed25519).unwrap();
        assert!(LogSigner::new(ed, ed2).is_err());
        let s = signer();
        assert!(
            LogVerifier::new(s.origin(), s.ml_dsa_65().verifier(), s.ed25519().verifier()).is_err()
        );
        assert_eq!(
            LogVerifier::new(s.origin(), s.ed25519().verifier(), s.ml_dsa_65().verifier()).unwrap(),
            s.verifier()
        );
        assert!(LogVerifier::ml_dsa_65_only(s.origin(), s.ed25519().verifier()).is_err());
        assert!(LogVerifier::insecure_ed25519_only("", s.ed25519().verifier()).is_err());
    }

    fn proof_fixture() -> (LogSigner, MemoryTree, SignedCheckpoint) {
        let s = signer();
        let mut t = MemoryTree::new();
        for i in 0..10u8 {
            t.push_entry(&[i]);
        }
        let cp = Checkpoint::new(s.origin(), 10, t.current_root()).unwrap();
        let sc = SignedCheckpoint::sign(cp, &s).unwrap();
        (s, t, sc)
    }

    #[test]
    fn tlog_proof_round_trip_and_verify() {
        let (s, t, sc) = proof_fixture();
        let proof = TlogProof::new(3, t.inclusion_proof(3, 10).unwrap(), &sc).unwrap();
        let text = proof.to_text();
        let b64: Vec<String> = proof.hashes().iter().map(|h| STANDARD.encode(h)).collect();
        assert_eq!(
            text,
            format!(
                "c2sp.org/tlog-proof@v1\nindex 3\n{}\n\n{}",
                b64.join("\n"),
                sc.to_text()
            )
        );
        let parsed = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed, proof);
        let opened = parsed.verify(&leaf_hash(&[3]), &s.verifier()).unwrap();
        assert_eq!(opened, sc);
        assert!(matches!(
            parsed.verify(&leaf_hash(&[4]), &s.verifier()),
            Err(CheckpointError::Proof(ProofError::RootMismatch))
        ));
        assert!(
            parsed
                .verify(&leaf_hash(&[3]), &signer().verifier())
                .is_err()
        );

        let with_extra = proof.clone().with_extra(b"extra information".to_vec());
        let text = with_extra.to_text();
        assert!(
            text.starts_with("c2sp.org/tlog-proof@v1\nextra ZXh0cmEgaW5mb3JtYXRpb24=\nindex 3\n")
        );
        let parsed = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed.extra(), Some(&b"extra information"[..]));
        assert_eq!(parsed, with_extra);

        // A flipped proof hash.
        let mut bad = proof.clone();
        bad.hashes[1][0] ^= 1;
        let bad = TlogProof::parse(bad.to_text().as_bytes()).unwrap();
        assert!(bad.verify(&leaf_hash(&[3]), &s.verifier()).is_err());
        // Index beyond the checkpoint.
        let beyond = TlogProof::new(10, vec![], &sc).unwrap();
        assert!(matches!(
            beyond.verify(&leaf_hash(&[3]), &s.verifier()),
            Err(CheckpointError::Proof(ProofError::IndexOutOfRange { .. }))
        ));
    }

    /// The header lines of the c2sp.org/tlog-proof example, with a real
    /// checkpoint in place of the example's elided one.
    #[test]
    fn c2sp_tlog_proof_example_header_parses() {
        let (_, _, sc) = proof_fixture();
        let text = format!(
            "c2sp.org/tlog-proof@v1\n\
             extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n\
             index 73894\n\
             gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n\
             B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n\
             EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n\
             RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n\
             AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n\
             \n{}",
            sc.to_text()
        );
        let p = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!(p.index(), 73894);
        assert_eq!(p.hashes().len(), 5);
        assert_eq!(p.extra().map(<[u8]>::len), Some(39));
        assert_eq!(p.to_text(), text);
    }

    /// transparency-dev/formats proof/tlog_proof_test.go TestUnmarshalErrors,
    /// plus the checks that come with a real checkpoint.
    #[test]
    fn tlog_proof_parse_errors() {
        let (_, _, sc) = proof_fixture();
        let cp = sc.to_text();
        let h64 = STANDARD.encode([0u8; 64]);
        let h32 = STANDARD.encode([0u8; 32]);
        for bad in [
            format!("wrong-header\nindex 0\n\n{cp}"),
            format!("c2sp.org/tlog-proof@v1\nextra !!notbase64!!\nindex 0\n\n{cp}"),
            format!("c2sp.org/tlog-proof@v1\n\n\n{cp}"),
            format!("c2sp.org/tlog-proof@v1\nindex notanumber\n\n{cp}"),
            format!("c2sp.org/tlog-proof@v1\nindex -5\n\n{cp}"),
            format!("c2sp.org/tlog-proof@v1\nindex 05\n\n{cp}"),
            format!("c2sp.org/tlog-proof@v1\nindex 0\n!!notbase64!!\n\n{cp}"),
            format!("c2sp.org/tlog-proof@v1\nindex 0\n{h64}\n\n{cp}"),
            format!("c2sp.org/tlog-proof@v1\nindex 0\n{h32}\n"),
            "c2sp.org/tlog-proof@v1\nindex 0\n\ncheckpoint\n".to_string(),
            format!(
                "c2sp.org/tlog-proof@v1\nindex 0\n{}\n{cp}",
                format!("{h32}\n").repeat(65)
            ),
            format!("c2sp.org/tlog-proof@v1\r\nindex 0\n\n{cp}"),
            format!("c2sp.org/tlog-proof@v1\nindex 0\n\n{cp}trailing\n"),
            "c2sp.org/tlog-proof@v1".to_string(),
        ] {
            assert!(TlogProof::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let max = format!(
            "c2sp.org/tlog-proof@v1\nindex 0\n{}\n{cp}",
            format!("{h32}\n").repeat(64)
        );
        assert_eq!(TlogProof::parse(max.as_bytes()).unwrap().hashes().len(), 64);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = Checkpoint::parse(&s);
            let _ = TlogProof::parse(&bytes);
            let mut prefixed = b"c2sp.org/tlog-proof@v1\n".to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = TlogProof::parse(&prefixed);
        }

        #[test]
        fn checkpoint_round_trips(origin in "[a-z./+ \u{2014}]{1,30}", size in any::<u64>(), root in any::<[u8; 32]>(), ext in proptest::collection::vec("[ -~]{1,20}", 0..3)) {
            let mut cp = Checkpoint::new(&origin, size, root).unwrap();
            for e in &ext {
                cp.push_extension(e).unwrap();
            }
            prop_assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
        }
    }
}
