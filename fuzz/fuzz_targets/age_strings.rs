//! Recipient and identity strings (Bech32 without length limit): never panic.
#![no_main]
use citadel_age::{Identity, Recipient};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Recipient::parse(s);
        let _ = Identity::parse(s);
        let _ = Identity::parse_file(s);
    }
});
