//! docs/cli.md's promises, on the real binary: outputs are never replaced
//! without `--force`, `-q` leaves only what was asked for, renamed
//! spellings still work with a note, and `--json` is there where it was
//! missing.

use assert_cmd::Command;
use std::fs;
use std::path::Path;
use std::process::Output;

fn run(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    Command::cargo_bin("citadel")
        .unwrap()
        .current_dir(dir)
        .args(args)
        .write_stdin(stdin.to_vec())
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    let out = run(dir, args, b"");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn refused_as_existing(dir: &Path, args: &[&str], stdin: &[u8], file: &str) {
    let before = fs::read(dir.join(file)).unwrap();
    let out = run(dir, args, stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains("already exists; pass --force"),
        "{args:?}: {err}"
    );
    assert_eq!(
        fs::read(dir.join(file)).unwrap(),
        before,
        "{args:?} replaced {file}"
    );
}

#[test]
fn no_output_is_replaced_without_force() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(p, &["key", "gen", "--alg", "ml-dsa-44", "-o", "k"]);
    ok(p, &["key", "gen", "--alg", "mlkem768x25519", "-o", "age"]);
    ok(p, &["key", "gen", "--alg", "ml-kem-768", "-o", "kem"]);
    fs::write(p.join("f"), b"data").unwrap();
    fs::write(p.join("taken"), b"keep me").unwrap();
    fs::write(p.join("f.sig"), b"keep me").unwrap();
    refused_as_existing(
        p,
        &["key", "gen", "--alg", "ml-dsa-44", "-o", "k"],
        b"",
        "k.key",
    );
    refused_as_existing(p, &["sign", "-k", "k.key", "f"], b"", "f.sig");
    refused_as_existing(
        p,
        &["sign", "-k", "k.key", "f", "-o", "taken"],
        b"",
        "taken",
    );
    refused_as_existing(
        p,
        &["kem", "encap", "--pub", "kem.pub", "-o", "taken"],
        b"",
        "taken",
    );
    refused_as_existing(
        p,
        &["encrypt", "-R", "age.pub", "-o", "taken", "f"],
        b"",
        "taken",
    );
    ok(p, &["encrypt", "-R", "age.pub", "-o", "f.age", "f"]);
    refused_as_existing(
        p,
        &["decrypt", "-i", "age.key", "-o", "taken", "f.age"],
        b"",
        "taken",
    );
    // With --force each is replaced.
    ok(p, &["sign", "-k", "k.key", "f", "--force"]);
    ok(p, &["verify", "--pub", "k.pub", "f"]);
    ok(
        p,
        &[
            "decrypt", "-i", "age.key", "-o", "taken", "f.age", "--force",
        ],
    );
    assert_eq!(fs::read(p.join("taken")).unwrap(), b"data");
    // The audit documents too.
    ok(
        p,
        &[
            "audit",
            "init",
            "--dir",
            "log",
            "--origin",
            "example.com/log",
        ],
    );
    let out = run(
        p,
        &["audit", "append", "--dir", "log"],
        b"{\"action\":\"x\"}\n",
    );
    assert!(out.status.success());
    ok(p, &["audit", "checkpoint", "--dir", "log", "-o", "cp"]);
    refused_as_existing(
        p,
        &["audit", "checkpoint", "--dir", "log", "-o", "cp"],
        b"",
        "cp",
    );
    refused_as_existing(
        p,
        &["audit", "prove", "--dir", "log", "--index", "0", "-o", "cp"],
        b"",
        "cp",
    );
    // A second output that exists stops the verb before the first is written.
    refused_as_existing(
        p,
        &[
            "audit",
            "prove",
            "--dir",
            "log",
            "--index",
            "0",
            "-o",
            "proof",
            "--entry-out",
            "cp",
        ],
        b"",
        "cp",
    );
    assert!(!p.join("proof").exists());
    let out = ok(
        p,
        &["audit", "prove", "--dir", "log", "--index", "0", "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["index"], 0);
    assert!(v["proof"].as_str().unwrap().contains("example.com/log"));
    let out = ok(
        p,
        &[
            "audit",
            "consistency",
            "--dir",
            "log",
            "--old",
            "cp",
            "--json",
            "-q",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["old_size"].as_u64(), v["new_size"].as_u64()),
        (Some(1), Some(1))
    );
    // A FIFO or device is written to, without --force.
    ok(p, &["encrypt", "-R", "age.pub", "-o", "/dev/null", "f"]);
}

#[test]
fn quiet_leaves_only_what_was_asked_for() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let out = ok(p, &["-q", "key", "gen", "--alg", "ml-dsa-44", "-o", "k"]);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    fs::write(p.join("f"), b"data").unwrap();
    let out = ok(p, &["sign", "-k", "k.key", "f", "-q"]);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let out = ok(p, &["verify", "--pub", "k.pub", "f", "--quiet"]);
    assert!(out.stdout.is_empty());
    // Without -q the confirmation is there: the test above can fail.
    let out = ok(p, &["verify", "--pub", "k.pub", "f"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK: "));
    // Data and --json documents stay.
    let out = ok(p, &["-q", "key", "show", "k.pub", "--json"]);
    assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok());
    ok(p, &["ca", "init", "--ca", "CA", "-q"]);
    ok(
        p,
        &[
            "ca", "issue", "--ca", "CA", "--name", "bob", "--client", "-q",
        ],
    );
    let out = ok(
        p,
        &["ca", "revoke", "--ca", "CA", "--name", "bob", "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revoked"], 1);
}

#[test]
fn renamed_spellings_work_with_a_note() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let out = ok(p, &["key", "gen", "--alg", "ml-dsa-44", "--out", "k"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--out is now --output"), "{err}");
    assert!(p.join("k.key").exists());
    let out = ok(p, &["ca", "init", "--dir", "CA", "-q"]);
    assert!(out.stderr.is_empty(), "-q hides the note too");
    assert!(p.join("CA/ca.crt").exists());
    // A short flag that changed meaning is refused, not reinterpreted.
    let out = run(p, &["key", "gen", "-a", "ml-dsa-44", "-o", "x"], b"");
    assert_eq!(out.status.code(), Some(2));
    let out = run(p, &["verify", "-p", "k.pub", "k.key"], b"");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_name_with_a_valid_certificate_is_reissued_only_with_force() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(p, &["ca", "init", "--ca", "CA", "-q"]);
    ok(
        p,
        &[
            "ca",
            "issue",
            "--ca",
            "CA",
            "--name",
            "web",
            "--dns",
            "a.example.com",
        ],
    );
    let crt = fs::read(p.join("CA/web.crt")).unwrap();
    let out = run(
        p,
        &[
            "ca",
            "issue",
            "--ca",
            "CA",
            "--name",
            "web",
            "--dns",
            "b.example.com",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already has a valid certificate") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(fs::read(p.join("CA/web.crt")).unwrap(), crt);
    ok(
        p,
        &[
            "ca",
            "issue",
            "--ca",
            "CA",
            "--name",
            "web",
            "--dns",
            "b.example.com",
            "--force",
        ],
    );
    let out = ok(p, &["ca", "list", "--ca", "CA", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<&str> = v["issued"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "superseded").count(),
        1,
        "{v}"
    );
    // After a revocation the name is free again.
    ok(p, &["ca", "revoke", "--ca", "CA", "--name", "web", "-q"]);
    ok(
        p,
        &[
            "ca",
            "issue",
            "--ca",
            "CA",
            "--name",
            "web",
            "--dns",
            "c.example.com",
            "-q",
        ],
    );
}
