//! Citadel's vault (issue 5, first part): the storage barrier, sealing with
//! a Shamir-split root key, and the `sys/` endpoints of HashiCorp Vault's
//! HTTP API (health, init, unseal, seal, seal-status) so that existing
//! clients (hvac, the Vault CLI) can drive it.
//!
//! - [`storage`]: the physical backend trait, SQLite and in-memory;
//! - [`shamir`]: unseal keys in Vault's share layout (by `vsss-rs`);
//! - [`barrier`]: AES-256-GCM keyring encryption of everything stored;
//! - [`core`]: the seal state machine, root token;
//! - [`mounts`]: the mount table; [`kv`]: the KV v2 engine;
//! - [`http`]: the axum router speaking Vault's paths and JSON shapes.
//!
//! - [`transit`]: encryption and signing as a service (incl. ML-DSA, SLH-DSA);
//! - [`tokens`], [`policy`]: the token store and ACL policies.
//!
//! - [`audit`]: audit devices writing to `citadel-audit` logs, fail closed.
//!
//! - [`auth`]: AppRole and userpass logins.
//!
//! Not yet: transit's datakey/hmac/random/hash and ML-KEM hybrid keys, TLS
//! listeners.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod auth;
pub mod barrier;
pub mod core;
pub mod http;
pub mod kv;
pub mod mounts;
pub mod policy;
pub mod shamir;
pub mod storage;
pub mod tokens;
pub mod transit;

/// What can go wrong, each mapped to Vault's status code by [`Error::status`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vault is sealed (503).
    #[error("Vault is sealed")]
    Sealed,
    /// The vault has not been initialised (501 on health; 400 elsewhere).
    #[error("Vault is not initialized")]
    NotInitialized,
    /// A malformed or unacceptable request (400).
    #[error("{0}")]
    BadRequest(String),
    /// No token, or one without the needed permission (403).
    #[error("permission denied")]
    PermissionDenied,
    /// No such path (404).
    #[error("{0}")]
    NotFound(String),
    /// The storage backend failed (500).
    #[error("storage: {0}")]
    Storage(String),
    /// Stored data failed to decrypt or parse (500).
    #[error("corrupt storage: {0}")]
    Corrupt(String),
    /// Anything else (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status Vault answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::Sealed => 503,
            Error::NotInitialized | Error::BadRequest(_) => 400,
            Error::PermissionDenied => 403,
            Error::NotFound(_) => 404,
            Error::Storage(_) | Error::Corrupt(_) | Error::Internal(_) => 500,
        }
    }
}
