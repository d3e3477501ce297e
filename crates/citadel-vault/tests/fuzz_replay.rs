//! Replays the `vault_api` fuzz target's corpus (`tests/data/fuzz/vault_core/`,
//! seeds and any crash inputs worth keeping) through the same harness the
//! fuzzer runs, so every `cargo test` checks them.

#[path = "support/fuzz_harness.rs"]
mod harness;

#[test]
fn the_fuzz_corpus_replays_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/vault_core");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        harness::run_one(&std::fs::read(&p).unwrap());
        n += 1;
    }
    assert!(n >= 10);
    harness::check_invariants();
}
