//! The `manifest` fuzz target's body: DSSE envelopes and manifest
//! statements never panic.
use citadel_artifact::{Envelope, Manifest};

/// Runs one input.
pub fn run_one(data: &[u8]) {
    let _ = Envelope::from_json(data);
    let _ = Manifest::from_statement(data);
}
