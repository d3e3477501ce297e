//! The one error type of this crate.

/// Everything that can go wrong in `citadel-crypto`.
///
/// Messages are written for the person at the terminal: they say what was
/// wrong and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An algorithm name that this crate does not know.
    #[error("unknown algorithm `{0}`; run `citadel key list-algs` for the supported names")]
    UnknownAlgorithm(String),
    /// The algorithm cannot perform the requested operation.
    #[error("{alg} cannot be used to {op}")]
    WrongKeyType {
        /// The algorithm of the key that was given.
        alg: &'static str,
        /// The operation that was asked for.
        op: &'static str,
    },
    /// Key bytes that do not form a valid key.
    #[error("invalid {alg} key: {why}")]
    InvalidKey {
        /// The algorithm the key was read as.
        alg: &'static str,
        /// What was wrong with it.
        why: String,
    },
    /// A structure (DER, PEM, ciphertext) that cannot be parsed.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// What was wrong with it.
        why: String,
    },
    /// A ciphertext of the wrong length for its algorithm.
    #[error("{alg} ciphertext must be {expected} bytes, got {got}")]
    CiphertextLength {
        /// The algorithm.
        alg: &'static str,
        /// Expected length in bytes.
        expected: usize,
        /// Actual length in bytes.
        got: usize,
    },
    /// A signature did not verify.
    #[error(
        "signature verification failed: the data, the signature or the public key differ from what was signed"
    )]
    BadSignature,
    /// Authenticated decryption failed.
    #[error("decryption failed: the data was modified or truncated, or the key is wrong")]
    DecryptionFailed,
    /// An encrypted private key could not be decrypted.
    #[error("cannot decrypt the private key: wrong passphrase, or the file is corrupted")]
    BadPassphrase,
    /// The private key file is encrypted and no passphrase was supplied.
    #[error("the private key is passphrase-protected; supply the passphrase")]
    PassphraseRequired,
    /// A context string longer than FIPS 204/205 allow.
    #[error("context string is {0} bytes; at most 255 bytes are allowed")]
    ContextTooLong(usize),
    /// A context string was given to an algorithm that has none.
    #[error("{0} does not take a context string; drop --context")]
    ContextNotSupported(&'static str),
    /// A parameter outside the allowed range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The backend reported an internal failure.
    #[error("cryptographic backend failure during {0}")]
    Backend(&'static str),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

pub(crate) fn malformed(what: &'static str, why: impl Into<String>) -> Error {
    Error::Malformed {
        what,
        why: why.into(),
    }
}

pub(crate) fn invalid_key(alg: &'static str, why: impl Into<String>) -> Error {
    Error::InvalidKey {
        alg,
        why: why.into(),
    }
}
