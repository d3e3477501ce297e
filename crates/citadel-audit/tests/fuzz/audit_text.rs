//! The `audit_text` fuzz target's body: signed notes, checkpoints,
//! tlog-proofs and vkeys never panic, and a note that parses re-encodes to
//! the same bytes.
use citadel_audit::checkpoint::{Checkpoint, TlogProof};
use citadel_audit::note::{Note, NoteVerifier};

/// Runs one input.
pub fn run_one(data: &[u8]) {
    if let Ok(n) = Note::parse(data) {
        assert_eq!(n.encode().as_bytes(), data);
    }
    let _ = TlogProof::parse(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Checkpoint::parse(s);
        let _ = NoteVerifier::parse(s);
    }
}
