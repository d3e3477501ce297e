//! Errors, classified the way the age test vectors classify outcomes.

use std::io;

/// What went wrong while encrypting or decrypting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ASCII armor is malformed.
    #[error("invalid ASCII armor: {0}")]
    Armor(String),
    /// The header is malformed, or a recipient stanza is invalid.
    #[error("invalid age header: {0}")]
    Header(String),
    /// None of the identities could unwrap the file key.
    #[error(
        "no identity matched any of the file's recipients: a wrong identity or passphrase, or a damaged header"
    )]
    NoMatch,
    /// The header MAC did not verify: the header was modified.
    #[error("the header MAC does not verify: the file's header was modified")]
    HeaderMac,
    /// The payload is truncated, reordered or modified.
    #[error("the encrypted payload is damaged: {0}")]
    Payload(String),
    /// A recipient string could not be parsed.
    #[error("invalid recipient '{0}': {1}")]
    InvalidRecipient(String, String),
    /// An identity could not be parsed.
    #[error("invalid identity: {0}")]
    InvalidIdentity(String),
    /// Post-quantum and classical recipients were mixed, or a passphrase was combined with recipients.
    #[error("incompatible recipients: {0}")]
    IncompatibleRecipients(String),
    /// No recipients were given.
    #[error("no recipients given; pass -r RECIPIENT or -R FILE")]
    NoRecipients,
    /// A primitive failed.
    #[error(transparent)]
    Crypto(#[from] citadel_crypto::Error),
    /// Reading the input or writing the output failed.
    #[error("I/O error: {0}")]
    Io(io::Error),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Marker carried inside `io::Error` by the armor reader, so that armor
/// failures keep their class when they surface through `Read`.
#[derive(Debug)]
pub(crate) struct ArmorError(pub(crate) String);

impl std::fmt::Display for ArmorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArmorError {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if let Some(a) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ArmorError>())
        {
            return Error::Armor(a.0.clone());
        }
        Error::Io(e)
    }
}

pub(crate) fn header(msg: impl Into<String>) -> Error {
    Error::Header(msg.into())
}
