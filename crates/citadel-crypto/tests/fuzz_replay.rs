//! Replays the `key_files` fuzz corpus (`tests/data/fuzz/key_files/`: seeds, and
//! every crash input kept) through the body the fuzz target runs
//! (`tests/fuzz/key_files.rs`), so every `cargo test` checks it;
//! `scripts/fuzz.sh` starts the open-ended search from the same corpus.

#[path = "fuzz/key_files.rs"]
mod harness;

#[test]
fn the_key_files_corpus_replays_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/key_files");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        harness::run_one(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 5, "{n} inputs");
}
