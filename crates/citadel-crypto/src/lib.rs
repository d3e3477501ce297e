//! Post-quantum and classical cryptography for Citadel.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aead;
pub mod alg;
pub mod ecdsa;
mod error;
pub mod hash;
pub mod kdf;
pub mod kem;
pub mod keys;
pub mod purpose;
pub mod random;
pub mod secret;
pub mod sig;
pub mod x25519;
pub mod xwing;

pub use alg::{Algorithm, Family};
pub use error::{Error, Result};
pub use keys::{PrivateKey, PrivateKeyForm, PublicKey};
