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

/// Runs `citadel ARGS` under a pseudo-terminal (util-linux `script`), with
/// `typed` as what is typed at it; None if `script` is not installed.
fn on_a_terminal(dir: &Path, args: &str, typed: &str) -> Option<(i32, String)> {
    use std::io::Write;
    let bin = assert_cmd::cargo::cargo_bin("citadel");
    let mut child = std::process::Command::new("script")
        .current_dir(dir)
        .args(["-qec", &format!("'{}' {args}", bin.display()), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take().unwrap();
    // Typed slowly enough for each prompt to be up (the terminal discards
    // nothing, but a prompt turns echo off first).
    for line in typed.lines() {
        std::thread::sleep(std::time::Duration::from_millis(300));
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.code().unwrap_or(-1), text))
}

#[test]
fn passphrases_are_asked_on_the_terminal() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    if on_a_terminal(p, "--version", "").is_none() {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    fs::write(p.join("plain"), b"secret words").unwrap();
    let (code, text) = on_a_terminal(
        p,
        "encrypt -p -o f.age plain",
        "horse battery\nhorse battery",
    )
    .unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("New passphrase for the encrypted file"),
        "{text}"
    );
    // No -i: asked for, as age does.
    let (code, text) = on_a_terminal(p, "decrypt -o out f.age", "horse battery").unwrap();
    assert_eq!(code, 0, "{text}");
    assert_eq!(fs::read(p.join("out")).unwrap(), b"secret words");
    let (code, text) = on_a_terminal(p, "decrypt f.age", "wrong").unwrap();
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("the passphrase does not open this file"),
        "{text}"
    );
    assert!(!text.contains("-i identity"), "{text}");
    // Two different passphrases: nothing is written.
    let (code, text) = on_a_terminal(p, "key gen --alg ml-dsa-44 -o k -p", "one\ntwo").unwrap();
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("differ"), "{text}");
    assert!(!p.join("k.key").exists());
    let (code, text) = on_a_terminal(p, "key gen --alg ml-dsa-44 -o k -p", "one\none").unwrap();
    assert_eq!(code, 0, "{text}");
    // An encrypted key is unlocked by asking.
    let (code, text) = on_a_terminal(p, "sign -k k.key plain", "one").unwrap();
    assert_eq!(code, 0, "{text}");
    // Without a terminal, the error names the ways to give it.
    let out = run(p, &["sign", "-k", "k.key", "plain", "--force"], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-p") && err.contains("--passphrase-file"),
        "{err}"
    );
}
