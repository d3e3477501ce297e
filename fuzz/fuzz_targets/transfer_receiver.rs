//! See crates/citadel-transfer/tests/fuzz/transfer_receiver.rs: the body is shared with the corpus
//! replay `cargo test` runs (crates/citadel-transfer/tests/fuzz_replay.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/citadel-transfer/tests/fuzz/transfer_receiver.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run_one(data));
