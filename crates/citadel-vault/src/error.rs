//! What can go wrong while serving a request, each with the status code
//! Vault answers with. Messages of client errors (4xx) are shown to the
//! client; those of server errors (5xx) are logged and replaced, for the
//! client, by a message that names the request id and nothing internal.

/// A request's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vault is sealed (503).
    #[error("Vault is sealed")]
    Sealed,
    /// The vault has not been initialised (400).
    #[error("Vault is not initialized")]
    NotInitialized,
    /// A malformed or unacceptable request (400).
    #[error("{0}")]
    BadRequest(String),
    /// No token, or one without the needed permission (403).
    #[error("permission denied")]
    PermissionDenied,
    /// No such path or object (404). An empty message gives Vault's
    /// `{"errors": []}`.
    #[error("{0}")]
    NotFound(String),
    /// The HTTP method does not apply to the path (405).
    #[error("unsupported operation")]
    MethodNotAllowed,
    /// The server is at its limit of concurrent heavy work; retry (503).
    #[error("{0}")]
    Busy(String),
    /// This client has too many requests of one kind in flight (429).
    #[error("{0}")]
    TooManyRequests(String),
    /// The storage backend failed (500).
    #[error("storage: {0}")]
    Storage(String),
    /// Stored data failed to decrypt or parse (500).
    #[error("corrupt storage: {0}")]
    Corrupt(String),
    /// An audit device could not record the request (500, fail closed).
    #[error("audit: {0}")]
    Audit(String),
    /// Anything else (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status Vault answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::Sealed | Error::Busy(_) => 503,
            Error::TooManyRequests(_) => 429,
            Error::NotInitialized | Error::BadRequest(_) => 400,
            Error::PermissionDenied => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed => 405,
            Error::Storage(_) | Error::Corrupt(_) | Error::Audit(_) | Error::Internal(_) => 500,
        }
    }

    /// Whether the message may be shown to the client as it is. Server
    /// errors name storage paths, token HMACs and mount ids; they are
    /// logged, and the client gets [`Error::public_message`].
    pub fn is_server_error(&self) -> bool {
        self.status() >= 500 && !matches!(self, Error::Sealed | Error::Busy(_))
    }

    /// What the client is told.
    pub fn public_message(&self, request_id: &str) -> String {
        if self.is_server_error() {
            format!(
                "internal error: the server could not complete the request; its log has the details under request id {request_id}"
            )
        } else {
            self.to_string()
        }
    }

    /// A 400 with this message.
    pub fn bad(m: impl Into<String>) -> Self {
        Error::BadRequest(m.into())
    }
}

/// Turns a `citadel-crypto` failure into an internal error.
pub(crate) fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}
