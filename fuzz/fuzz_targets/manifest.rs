//! DSSE envelopes and manifest statements: never panic.
#![no_main]
use citadel_artifact::{Envelope, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Envelope::from_json(data);
    let _ = Manifest::from_statement(data);
});
