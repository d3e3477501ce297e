//! Signing artifacts: single files (detached raw signatures) and directory
//! trees (an [in-toto Statement v1] listing every file's SHA-256, wrapped in
//! a [DSSE] envelope and signed), the way OpenSSF model signing signs ML
//! models.
//!
//! The layout is documented in `docs/formats/artifact-manifest.md`.
//!
//! Invariants: paths in a manifest are relative, `/`-separated, valid UTF-8,
//! never contain `.` or `..` components, and are sorted; symbolic links are
//! refused rather than followed, even when swapped in during the walk (each
//! entry is opened with `O_NOFOLLOW | O_NONBLOCK` and judged by its open
//! handle), so a manifest always describes bytes inside the tree. A
//! directory signature covers each regular file's path, contents and
//! executable bit. File signatures and envelope signatures are made for
//! different purposes ([`citadel_crypto::purpose::Purpose`]), so neither can
//! pass for the other. Names in error messages are escaped ([`shown`]).
//!
//! [in-toto Statement v1]: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
//! [DSSE]: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod dsse;
mod manifest;
mod shown;

pub use dsse::{Envelope, PAYLOAD_TYPE, Signature};
pub use manifest::{Diff, FileEntry, MAX_DEPTH, Manifest, PREDICATE_TYPE};
pub use shown::shown;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the tree failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A symbolic link or special file inside the tree.
    #[error(
        "{0} is a symbolic link or special file; only regular files and directories can be signed"
    )]
    NotRegular(String),
    /// A file name that is not valid UTF-8 (shown escaped).
    #[error("{0} has a name that is not valid UTF-8; rename it to sign the tree")]
    NonUtf8Path(String),
    /// Directories nested deeper than [`MAX_DEPTH`].
    #[error("{0} is nested more than {MAX_DEPTH} directories deep; such a tree cannot be signed")]
    TooDeep(String),
    /// The envelope or statement is malformed.
    #[error("malformed signature bundle: {0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error(transparent)]
    Crypto(#[from] citadel_crypto::Error),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
