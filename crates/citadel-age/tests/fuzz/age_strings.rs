//! The `age_strings` fuzz target's body: recipient and identity strings
//! (Bech32 without length limit) never panic.
use citadel_age::{Identity, Recipient};

/// Runs one input.
pub fn run_one(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Recipient::parse(s);
        let _ = Identity::parse(s);
        let _ = Identity::parse_file(s);
    }
}
