//! See crates/citadel-age/tests/fuzz/age_decrypt.rs: the body is shared with the corpus
//! replay `cargo test` runs (crates/citadel-age/tests/fuzz_replay.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/citadel-age/tests/fuzz/age_decrypt.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run_one(data));
