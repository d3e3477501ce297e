//! Errors of the log's storage and verification.

use crate::checkpoint::CheckpointError;
use crate::merkle::TreeError;
use crate::note::NoteError;

/// What can go wrong with a log on disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The log's files are damaged or were tampered with.
    #[error("{}{why}", index.map(|i| format!("entry {i}: ")).unwrap_or_default())]
    Corrupt {
        /// The first bad entry, when one can be named.
        index: Option<u64>,
        /// What is wrong.
        why: String,
    },
    /// An entry the writer supplied is not acceptable.
    #[error("invalid entry: {0}")]
    InvalidEntry(String),
    /// The directory is not a log, or already is one.
    #[error("{0}")]
    Setup(String),
    /// Another process holds the log open for writing.
    #[error("{0}")]
    Busy(String),
    /// An index or size beyond the log.
    #[error("{0}")]
    OutOfRange(String),
    /// A tree computation failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// A checkpoint could not be made, parsed or verified.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A key could not be made or parsed.
    #[error(transparent)]
    Note(#[from] NoteError),
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}
