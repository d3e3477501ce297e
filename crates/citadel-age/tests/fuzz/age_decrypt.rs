//! The `age_decrypt` fuzz target's body (fuzz/fuzz_targets includes this
//! file; tests/fuzz_replay.rs replays the corpus through it): age
//! decryption (armor, header, stanzas, STREAM) on arbitrary bytes with a
//! fixed X25519 and a fixed post-quantum identity never panics.
use citadel_age::{Identity, decrypt};

/// Runs one input.
pub fn run_one(data: &[u8]) {
    let ids = [
        Identity::parse(
            "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0",
        )
        .unwrap(),
        Identity::parse(
            "AGE-SECRET-KEY-PQ-1HZLGZUPT4ETPKDEV8HSGFDCYZ4E522W0A7PU2LHT8EH9W6YLNC3SW78XKG",
        )
        .unwrap(),
    ];
    let mut out = Vec::new();
    let _ = decrypt(&ids, &mut &data[..], &mut out);
}
