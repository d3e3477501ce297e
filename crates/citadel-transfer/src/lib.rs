//! The protocol core of `citadel send` / `citadel recv` (issue 3), kept free
//! of sockets and async so that tests and fuzzers drive it with bytes:
//!
//! - [`manifest`]: what is sent (paths, sizes, modes, mtimes, per-chunk
//!   BLAKE3 hashes and a root per file), built from a directory walk and
//!   signed with the sender's ML-DSA key;
//! - [`frame`]: the length-prefixed frames on the wire;
//! - [`assemble`]: the receiver's side of one file: every chunk is checked
//!   against the manifest before it is written, progress survives a crash
//!   in a state file, and the file gets its final name only after the whole
//!   of it verified.
//!
//! The format is specified in `docs/formats/transfer-protocol.md`. The
//! network layer (TLS, sockets, progress bars) is not here: the drivers in
//! [`session`] take any `Read + Write` stream and a function that opens more.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod assemble;
pub mod beneath;
pub mod frame;
pub mod manifest;
pub mod session;

/// Size of a chunk: the unit of hashing, verification and resume.
pub const CHUNK_SIZE: u64 = 4 * 1024 * 1024;

/// What can go wrong.
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
    /// A path that could escape the output directory, or is otherwise unsafe.
    #[error("unsafe path {0:?}: paths must be relative, without '..', '.' or empty components")]
    UnsafePath(String),
    /// A name the receiver keeps for itself.
    #[error(
        "{0}: names starting with .citadel-recv are the receiver's own (its state directory); rename it before sending"
    )]
    Reserved(String),
    /// A component of a path on the receiver is a symbolic link or a file
    /// where a directory is needed: it is never followed.
    #[error(
        "{0} is a symbolic link or a file on the receiver, where the transfer needs a directory; nothing is written through it (remove or rename it on the receiver)"
    )]
    NotBeneath(String),
    /// Another transfer is receiving the same file right now.
    #[error("{0} is being received by another transfer right now; send again once it has finished")]
    Busy(String),
    /// A symbolic link or special file in the tree to send.
    #[error(
        "{0} is a symbolic link or special file; only regular files and directories can be sent"
    )]
    NotRegular(String),
    /// The manifest is malformed or its signature does not verify.
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// A file being sent became shorter than its manifest says.
    #[error("{0} shrank while being sent; run the command again to send its new content")]
    Shrank(String),
    /// The connection failed or closed before the transfer ended.
    #[error("{context}: {source}")]
    Connection {
        /// What was being done.
        context: &'static str,
        /// The underlying error (for a TLS stream it may wrap the TLS error).
        source: std::io::Error,
    },
    /// The other end stopped the transfer and said why.
    #[error("the other end stopped the transfer: {0}")]
    Peer(String),
    /// A frame is malformed.
    #[error("malformed frame: {0}")]
    Frame(String),
    /// A chunk did not match its hash in the signed manifest.
    #[error(
        "{path}: chunk {index} does not match the signed manifest (the file changed while being sent, or was corrupted in transit); send again"
    )]
    BadChunk {
        /// The file.
        path: String,
        /// The chunk index.
        index: u64,
    },
    /// The assembled file does not match its root hash.
    #[error("{0}: the assembled file does not match the signed manifest")]
    BadFile(String),
    /// The receiver's disk is full.
    #[error(
        "{0}: no space left on the device; the verified part is kept: free some space and run the same command again to resume"
    )]
    DiskFull(String),
    /// A further stream of a parallel transfer failed (the transfer's first
    /// connection reports the transfer's own outcome).
    #[error("a parallel stream failed: {0}")]
    Stream(Box<Error>),
    /// The transfer had already failed (another of its streams met the
    /// error given, the first one).
    #[error("the transfer stopped: {0}")]
    Failed(String),
    /// This stream stopped because another stream of the transfer failed.
    #[error("stopped: another stream of the transfer failed")]
    Aborted,
    /// Opening one of the parallel connections failed.
    #[error("cannot open stream {index}: {message}")]
    Connect {
        /// Which stream (0 is the first).
        index: usize,
        /// Why.
        message: String,
    },
    /// A signature operation failed.
    #[error(transparent)]
    Crypto(#[from] citadel_crypto::Error),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// What a receiver says when the sender went away mid-transfer.
pub const SENDER_DISCONNECTED: &str = "the sender disconnected before the transfer ended; the verified data is kept, so sending again resumes";

impl Error {
    /// Whether the connection closed or was reset under this stream: the
    /// other end went away (or was killed) rather than said why.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Error::Connection { source, .. } if matches!(
            source.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted
        ))
    }
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}
