//! PKCS#8, SPKI, PEM and PBES2 parsers on arbitrary bytes: never panic.
#![no_main]
use citadel_crypto::keys::pbes2;
use citadel_crypto::{PrivateKey, PublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
