//! Citadel's vault: HashiCorp Vault's HTTP API shape (so hvac, the Vault
//! and OpenBao CLIs and other existing clients work) over an encrypted,
//! sealable storage barrier, with post-quantum transit keys and a
//! tamper-evident audit log.
//!
//! Layers, each using only those below it:
//!
//! ```text
//! http ─► core ─► backend::{sys, token, userpass, approle, kv, transit}
//!                   ─► {token_store, policy, mounts, view, audit, metrics}
//!                        ─► barrier ─► storage
//! ```
//!
//! - [`http`]: HTTP only (hyper, tokio, rustls); nothing below it knows
//!   an async runtime or a socket;
//! - [`core`]: [`core::Core::handle`] turns a [`request::Request`] into a
//!   [`request::Response`]: the path canonicalised once ([`path`]), routed,
//!   authorised on exactly the path the backend serves, the fields typed
//!   ([`fields`]), the backend run, a login's token minted;
//! - [`backend`]: the backends behind one trait, each with a [`view`] of
//!   the storage scoped to its mount;
//! - [`token_store`], [`policy`], [`mounts`]: tokens (as keyed HMACs),
//!   ACL policies evaluated as Vault does, the mount tables;
//! - [`audit`]: audit devices, fail closed, a writer thread each: Vault's
//!   JSON-lines `file` device, and `citadel` devices over `citadel-audit`
//!   logs with signed checkpoints each second; [`metrics`];
//! - [`barrier`]: the AES-256-GCM keyring, the seal state machine, and the
//!   storage digest of [`integrity`] (rollback detection);
//! - [`storage`]: SQLite (reader pool, one writer), in-memory, and a read
//!   cache; [`shamir`]: unseal keys in Vault's share layout.
//!
//! Non-features: no high availability or replication, no namespaces, no
//! leases beyond tokens, no response wrapping, no plugins; options that
//! would need them are refused with a 400 that says so, never ignored.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod backend;
pub mod barrier;
pub mod client;
pub mod core;
mod error;
pub mod fields;
pub mod http;
pub mod ids;
pub mod integrity;
pub mod metrics;
pub mod mounts;
pub mod path;
pub mod policy;
pub mod request;
pub mod shamir;
pub mod storage;
pub mod token_store;
pub mod view;

pub use error::Error;
