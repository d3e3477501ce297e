//! age decryption (armor, header, stanzas, STREAM) on arbitrary bytes with a
//! fixed X25519 and a fixed post-quantum identity: never panic.
#![no_main]
use citadel_age::{Identity, decrypt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ids = [
        Identity::parse("AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0").unwrap(),
        Identity::parse("AGE-SECRET-KEY-PQ-1HZLGZUPT4ETPKDEV8HSGFDCYZ4E522W0A7PU2LHT8EH9W6YLNC3SW78XKG").unwrap(),
    ];
    let mut out = Vec::new();
    let _ = decrypt(&ids, &mut &data[..], &mut out);
});
