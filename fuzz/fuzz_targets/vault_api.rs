//! The vault's request core with arbitrary requests (method, token, path,
//! query, body) against an unsealed in-memory vault, mostly with a
//! policy-limited token: no panic, no 500, and nothing outside the limited
//! token's policy ever returned to it or changed by it. The harness is the
//! one `cargo test` replays the corpus with (crates/citadel-vault/tests/).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/citadel-vault/tests/support/fuzz_harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run_one(data);
    // Cheap enough to check on every input: a write that slipped past the
    // policy shows at once.
    harness::check_invariants();
});
