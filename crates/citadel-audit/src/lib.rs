//! Transparency-log building blocks for Citadel's audit log: the pieces a log
//! and its verifiers share, without any storage, network or clock.
//!
//! - [`merkle`]: RFC 6962 / RFC 9162 Merkle tree hashing; an append-only
//!   in-memory tree ([`merkle::MemoryTree`]) that gives the root of any
//!   earlier size and inclusion and consistency proofs in O(log n); the
//!   RFC 9162 verification algorithms.
//! - [`note`]: C2SP signed notes with Ed25519 keys (interoperable with Go's
//!   `golang.org/x/mod/sumdb/note`) and ML-DSA-65 keys of Citadel's own,
//!   documented key type; verifier (`vkey`) and signer (`skey`) key strings.
//! - [`checkpoint`]: C2SP tlog checkpoints signed with both an Ed25519 and
//!   an ML-DSA-65 signature, verified by default only when both are valid;
//!   C2SP tlog-proof bundles.
//!
//! - [`log`]: the log on disk (segments of checksummed records, derived
//!   index and tree files, group commit, crash recovery, checkpoints);
//!   [`verify`]: full verification from the raw files; [`entry`]: the entry
//!   model and HMAC of sensitive fields.
//!
//! Non-features: no tiles, no witness cosignature types (`0x04`, `0x06`:
//! their lines are kept and skipped like any unknown key's), no ECDSA or
//! RFC 6962 STH note signatures, no checkpoint accepted on Ed25519 alone
//! unless the verifier is built with
//! [`checkpoint::LogVerifier::insecure_ed25519_only`].
//!
//! ```
//! use citadel_audit::checkpoint::{Checkpoint, LogSigner, SignedCheckpoint, TlogProof};
//! use citadel_audit::merkle::{MemoryTree, leaf_hash};
//!
//! let log = LogSigner::generate("audit.example/log1")?;
//! let mut tree = MemoryTree::new();
//! for entry in [&b"first"[..], b"second", b"third"] {
//!     tree.push_entry(entry);
//! }
//! let checkpoint = Checkpoint::new(log.origin(), tree.size(), tree.current_root())?;
//! let signed = SignedCheckpoint::sign(checkpoint, &log)?;
//! let proof = TlogProof::new(1, tree.inclusion_proof(1, tree.size())?, &signed)?;
//!
//! // A verifier that holds both public keys (as vkey strings, say).
//! let verifier = log.verifier();
//! let text = proof.to_text();
//! let checked = TlogProof::parse(text.as_bytes())?.verify(&leaf_hash(b"second"), &verifier)?;
//! assert_eq!(checked.checkpoint().size(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod entry;
pub mod error;
mod files;
pub mod log;
pub mod merkle;
pub mod note;
pub mod segment;
pub mod tree;
pub mod verify;

pub use checkpoint::{
    Checkpoint, CheckpointError, LogSigner, LogVerifier, SignedCheckpoint, TlogProof,
};
pub use error::Error;
pub use log::{AuditLog, Durability};
pub use merkle::{Hash, MemoryTree, NodeSource, ProofError, TreeError};
pub use note::{Note, NoteError, NoteSigner, NoteVerifier, SignatureType};
