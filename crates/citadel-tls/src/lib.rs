//! Post-quantum mutual TLS 1.3 for Citadel.
//!
//! - [`ca`]: a private certificate authority whose root key is ML-DSA
//!   (44/65/87; ECDSA P-256 only when asked for explicitly), issuing
//!   end-entity certificates with ML-DSA keys and keeping a revocation list.
//! - [`config`]: ready-made rustls server and client configs for every
//!   Citadel service: TLS 1.3 only, key exchange X25519MLKEM768 only, ML-DSA
//!   signatures only, mutual authentication against the CA with its CRL.
//! - [`info`]: what a connection negotiated.
//! - [`reload`]: a server config rebuilt when the CA's CRL changes.
//!
//! Non-features: no TLS 1.2, no classical-only key exchange and no classical
//! certificate signatures unless the caller sets
//! [`config::TlsOptions::allow_classical`]; no session resumption across
//! processes; no OCSP.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ca;
pub mod config;
pub mod crl;
pub mod info;
pub mod reload;
mod signer;
pub mod stream;

pub use rustls;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the CA directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The CA directory is not usable.
    #[error("{0}")]
    Ca(String),
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls rejected a configuration or key.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A key operation failed.
    #[error(transparent)]
    Crypto(#[from] citadel_crypto::Error),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
