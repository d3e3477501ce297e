//! The known-answer vector in `tests/data/citadel-log` (see its README): a
//! checkpoint signed with Ed25519 and ML-DSA-65, checked independently with
//! Python `cryptography` when it was made.

use citadel_audit::checkpoint::{LogVerifier, SignedCheckpoint, TlogProof};
use citadel_audit::merkle::{MemoryTree, leaf_hash};
use citadel_audit::note::{NoteSigner, NoteVerifier, SignatureType};
use citadel_crypto::Algorithm;
use citadel_crypto::sig::SigningKey;
use std::path::PathBuf;

const ORIGIN: &str = "citadel.example/audit";

fn data(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/citadel-log")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn line(name: &str) -> String {
    data(name).trim_end_matches('\n').to_string()
}

#[test]
fn keys_derive_from_their_seeds() {
    let ml_seed: Vec<u8> = (0u8..32).collect();
    let ed_seed: Vec<u8> = (32u8..64).collect();
    let ml = NoteSigner::new(
        ORIGIN,
        SigningKey::from_seed(Algorithm::MlDsa65, &ml_seed).unwrap(),
    )
    .unwrap();
    let ed = NoteSigner::new(
        ORIGIN,
        SigningKey::from_seed(Algorithm::Ed25519, &ed_seed).unwrap(),
    )
    .unwrap();
    assert_eq!(ml.verifier().vkey(), line("ml-dsa-65.vkey"));
    assert_eq!(ed.verifier().vkey(), line("ed25519.vkey"));
    assert_eq!(ml.skey().unwrap().as_str(), line("ml-dsa-65.skey"));
    assert_eq!(ed.skey().unwrap().as_str(), line("ed25519.skey"));
    assert_eq!(ml.key_id(), 0x1c0bfd3f);
    assert_eq!(ed.key_id(), 0x3b00e052);

    let parsed = NoteSigner::parse(&line("ml-dsa-65.skey")).unwrap();
    assert_eq!(parsed.signature_type(), SignatureType::MlDsa65);
    assert_eq!(
        parsed.verifier(),
        NoteVerifier::parse(&line("ml-dsa-65.vkey")).unwrap()
    );
}

fn verifier() -> LogVerifier {
    LogVerifier::new(
        ORIGIN,
        NoteVerifier::parse(&line("ed25519.vkey")).unwrap(),
        NoteVerifier::parse(&line("ml-dsa-65.vkey")).unwrap(),
    )
    .unwrap()
}

#[test]
fn checkpoint_verifies_with_both_keys() {
    let text = data("checkpoint.txt");
    let sc = SignedCheckpoint::open(text.as_bytes(), &verifier()).unwrap();
    let mut tree = MemoryTree::new();
    for e in [&b"first"[..], b"second", b"third"] {
        tree.push_entry(e);
    }
    assert_eq!(sc.checkpoint().origin(), ORIGIN);
    assert_eq!(sc.checkpoint().size(), 3);
    assert_eq!(sc.checkpoint().root(), &tree.current_root());
    assert_eq!(sc.to_text(), text);
    // Any one-character change to the body fails.
    let tampered = text.replacen("\n3\n", "\n4\n", 1);
    assert!(SignedCheckpoint::open(tampered.as_bytes(), &verifier()).is_err());
}

#[test]
fn tlog_proof_verifies() {
    let text = data("proof.tlog-proof");
    let proof = TlogProof::parse(text.as_bytes()).unwrap();
    assert_eq!(proof.index(), 1);
    assert_eq!(proof.to_text(), text);
    proof.verify(&leaf_hash(b"second"), &verifier()).unwrap();
    assert!(proof.verify(&leaf_hash(b"third"), &verifier()).is_err());
}
