//! Runs the interoperability scripts in `scripts/interop/` against the real
//! binary: Python's `cryptography` (ML-DSA, ML-KEM, Ed25519, encrypted
//! PKCS#8) and typage, the npm `age-encryption` package (age files).
//!
//! `.ci/run` installs both peers and sets `CITADEL_REQUIRE_PEERS=1`, which
//! turns a missing peer into a failure; elsewhere a missing peer is reported
//! and the check is skipped.

use std::path::PathBuf;
use std::process::Command;

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/interop")
}

fn peers_required() -> bool {
    std::env::var_os("CITADEL_REQUIRE_PEERS").is_some_and(|v| v == "1")
}

fn skip(what: &str) {
    assert!(
        !peers_required(),
        "{what} is not installed but CITADEL_REQUIRE_PEERS=1"
    );
    eprintln!("SKIPPED: {what} is not installed (run .ci/run to install the peers)");
}

/// Runs one script of `scripts/interop/` against the binary and checks that
/// it reported success.
fn run_peer_script(interpreter: &str, script: &str) {
    let out = Command::new(interpreter)
        .arg(scripts().join(script))
        .arg(env!("CARGO_BIN_EXE_citadel"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("interoperability checks passed"),
        "{stdout}"
    );
}

#[test]
fn python_cryptography_interop() {
    let probe = Command::new("python3")
        .args(["-c", "import cryptography, sys; sys.exit(0 if int(cryptography.__version__.split('.')[0]) >= 50 else 1)"])
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        return skip("Python cryptography >= 50");
    }
    run_peer_script("python3", "python_interop.py");
}

#[test]
fn typage_age_interop() {
    if !scripts().join("node_modules/age-encryption").exists() {
        return skip("typage (npm age-encryption in scripts/interop/node_modules)");
    }
    run_peer_script("node", "typage_interop.mjs");
}
