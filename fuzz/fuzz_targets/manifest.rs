//! See crates/citadel-artifact/tests/fuzz/manifest.rs: the body is shared with the corpus
//! replay `cargo test` runs (crates/citadel-artifact/tests/fuzz_replay.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/citadel-artifact/tests/fuzz/manifest.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run_one(data));
