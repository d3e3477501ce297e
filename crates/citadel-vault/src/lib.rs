//! Citadel's vault: HashiCorp Vault's HTTP API shape (so hvac, the Vault
//! CLI and other existing clients work) over an encrypted, sealable storage
//! barrier, with post-quantum transit keys and a tamper-evident audit log.
//!
//! - [`storage`]: the physical backend trait; SQLite (reader pool, one
//!   writer), in-memory, and Vault's read cache in front of either;
//! - [`shamir`]: unseal keys in Vault's share layout (by `vsss-rs`);
//! - [`barrier`]: AES-256-GCM keyring encryption of everything stored;
//! - [`core`]: the seal state machine, the root token, the parsed-value
//!   cache (dropped on seal);
//! - [`tokens`], [`policy`]: the token store and ACL policies (HCL/JSON);
//! - [`auth`]: AppRole and userpass logins;
//! - [`mounts`]: the mount table; [`kv`]: the KV v2 engine;
//! - [`transit`]: encryption, data keys, HMAC and signing as a service
//!   (incl. ML-DSA, SLH-DSA and the ML-KEM-768 + X25519 hybrid);
//! - [`audit`]: audit devices writing to `citadel-audit` logs, fail closed;
//! - [`http`]: the axum router speaking Vault's paths and JSON shapes, on
//!   plain TCP or TLS (the `rustls` config comes from the caller).
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
