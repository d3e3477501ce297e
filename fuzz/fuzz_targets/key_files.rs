//! See crates/citadel-crypto/tests/fuzz/key_files.rs: the body is shared with the corpus
//! replay `cargo test` runs (crates/citadel-crypto/tests/fuzz_replay.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/citadel-crypto/tests/fuzz/key_files.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run_one(data));
