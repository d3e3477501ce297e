//! See crates/citadel-audit/tests/fuzz/audit_text.rs: the body is shared with the corpus
//! replay `cargo test` runs (crates/citadel-audit/tests/fuzz_replay.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/citadel-audit/tests/fuzz/audit_text.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run_one(data));
