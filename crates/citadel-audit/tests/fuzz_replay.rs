//! Replays the `audit_text` fuzz corpus (`tests/data/fuzz/audit_text/`: seeds, and
//! every crash input kept) through the body the fuzz target runs
//! (`tests/fuzz/audit_text.rs`), so every `cargo test` checks it;
//! `scripts/fuzz.sh` starts the open-ended search from the same corpus.

#[path = "fuzz/audit_text.rs"]
mod harness;

#[test]
fn the_audit_text_corpus_replays_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/audit_text");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        harness::run_one(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 5, "{n} inputs");
}
