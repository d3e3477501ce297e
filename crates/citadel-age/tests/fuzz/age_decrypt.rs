//! The `age_decrypt` fuzz target's body (fuzz/fuzz_targets includes this
//! file; tests/fuzz_replay.rs replays the corpus through it): age
//! decryption (armor, header, stanzas, STREAM) on arbitrary bytes with a
//! fixed X25519 and a fixed post-quantum identity never panics, and never
//! hangs: decryption runs the threaded pipeline, and one that has not
//! returned in 20 s is a finding (issue 13).
use citadel_age::{Identity, decrypt};

/// Runs one input, failing if decryption does not return in 20 s.
pub fn run_one(data: &[u8]) {
    let data = data.to_vec();
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        decrypt_one(&data);
        let _ = tx.send(());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(20)) {
        Ok(()) => {}
        // The thread panicked: the fuzzer sees that panic.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = worker.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("age decryption hung: a pipeline stage waits on one that stopped")
        }
    }
}

fn decrypt_one(data: &[u8]) {
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
    let _ = decrypt(&ids, std::io::Cursor::new(data[..].to_vec()), &mut out);
}
