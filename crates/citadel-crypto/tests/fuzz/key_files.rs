//! The `key_files` fuzz target's body (fuzz/fuzz_targets/key_files.rs
//! includes this file; tests/fuzz_replay.rs replays the corpus through it):
//! PKCS#8, SPKI, PEM and PBES2 parsers on arbitrary bytes never panic.
use citadel_crypto::keys::pbes2;
use citadel_crypto::{PrivateKey, PublicKey};

/// Runs one input.
pub fn run_one(data: &[u8]) {
    let _ = PrivateKey::from_pkcs8_der(data);
    let _ = PublicKey::from_spki_der(data);
    // Cheapest KDF costs only: a fuzzer must not spend its time in scrypt.
    if data.len() < 512 {
        let _ = pbes2::decrypt(data, b"pw");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PublicKey::from_pem(text);
        let _ = PrivateKey::from_pem(text, None);
    }
}
