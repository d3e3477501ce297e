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
    // Revocation by serial (issue 15), as `ca list --json` shows it.
    ok(
        p,
        &[
            "ca", "issue", "--ca", "CA", "--name", "eve", "--client", "-q",
        ],
    );
    let list = ok(p, &["ca", "list", "--ca", "CA", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let serial = list["issued"]["eve"]["serial"].as_str().unwrap();
    let out = ok(
        p,
        &["ca", "revoke", "--ca", "CA", "--serial", serial, "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "eve", "{v}");
    // A crl.pem that does not load: ca list says its states are ca.json's
    // alone (helper-21: it showed them without a word).
    fs::write(p.join("CA/crl.pem"), "damaged").unwrap();
    let out = ok(p, &["ca", "list", "--ca", "CA"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("ca.json's alone"),
        "{err}"
    );
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

fn sh(dir: &Path, script: &str) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("citadel");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::process::Command::new("bash")
        .current_dir(dir)
        .env("PATH", path)
        .args(["-c", script])
        .output()
        .unwrap()
}

/// A second attack on the grammar: with --force, an output could replace
/// the command's own key, passphrase file, input or log; `-o -` and
/// `-o /dev/stdout` made files or wiped the file stdout was appended to;
/// outputs ignored the umask; a failed `key gen` left half a pair.
#[test]
fn outputs_never_replace_what_the_command_reads() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(
        p,
        &["-q", "key", "gen", "--alg", "mlkem768x25519", "-o", "age"],
    );
    ok(p, &["-q", "key", "gen", "--alg", "ml-kem-768", "-o", "kem"]);
    fs::write(p.join("f"), b"data").unwrap();
    fs::write(p.join("pp"), b"a passphrase\n").unwrap();
    ok(p, &["encrypt", "-R", "age.pub", "-o", "f.age", "f"]);
    for (args, file) in [
        (
            &[
                "decrypt", "-i", "age.key", "f.age", "-o", "age.key", "--force",
            ][..],
            "age.key",
        ),
        (
            &[
                "decrypt", "-i", "age.key", "f.age", "-o", "f.age", "--force",
            ][..],
            "f.age",
        ),
        (
            &[
                "encrypt",
                "--passphrase-file",
                "pp",
                "f",
                "-o",
                "pp",
                "--force",
            ][..],
            "pp",
        ),
        (
            &["encrypt", "-R", "age.pub", "f", "-o", "f", "--force"][..],
            "f",
        ),
        (
            &[
                "kem", "encap", "--pub", "kem.pub", "-o", "kem.pub", "--force",
            ][..],
            "kem.pub",
        ),
    ] {
        let before = fs::read(p.join(file)).unwrap();
        let out = run(p, args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("also read by this command"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(fs::read(p.join(file)).unwrap(), before, "{args:?}");
    }
    // The log's own files, and the old checkpoint a proof reads.
    ok(
        p,
        &[
            "audit",
            "init",
            "--dir",
            "log",
            "--origin",
            "example.com/log",
            "-q",
        ],
    );
    assert!(
        run(
            p,
            &["audit", "append", "--dir", "log"],
            b"{\"action\":\"x\"}\n"
        )
        .status
        .success()
    );
    ok(p, &["audit", "checkpoint", "--dir", "log", "-o", "cp"]);
    let vkeys = fs::read(p.join("log/log.vkeys")).unwrap();
    let out = run(
        p,
        &[
            "audit",
            "checkpoint",
            "--dir",
            "log",
            "-o",
            "log/log.vkeys",
            "--force",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fs::read(p.join("log/log.vkeys")).unwrap(), vkeys);
    let out = run(
        p,
        &[
            "audit",
            "consistency",
            "--dir",
            "log",
            "--old",
            "cp",
            "-o",
            "cp",
            "--force",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    // Refused before any work: no checkpoint is signed for an output that exists.
    let count = || fs::read_dir(p.join("log/checkpoints")).unwrap().count();
    let n = count();
    assert!(
        run(
            p,
            &["audit", "append", "--dir", "log"],
            b"{\"action\":\"y\"}\n"
        )
        .status
        .success()
    );
    let out = run(p, &["audit", "checkpoint", "--dir", "log", "-o", "cp"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(count(), n, "a checkpoint was made before the refusal");
    // Standard output: `-`, /dev/stdout redirected to a file, appended to.
    let out = sh(
        p,
        "citadel kem encap --pub kem.pub -o - > ct && test -s ct && test ! -e ./-",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sh(
        p,
        "citadel encrypt -R age.pub f -o /dev/stdout > o1.age && citadel decrypt -i age.key o1.age",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"data");
    let out = sh(
        p,
        "echo old > app.log && citadel decrypt -i age.key f.age -o /dev/stdout >> app.log && cat app.log",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "old\ndata");
    let out = sh(
        p,
        "citadel audit prove --dir log --index 0 -o /dev/stdout | head -1",
    );
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The umask, and the mode of a file replaced.
    let out = sh(p, "umask 077 && citadel decrypt -i age.key f.age -o um.out");
    assert!(out.status.success());
    assert_eq!(
        fs::metadata(p.join("um.out")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    fs::set_permissions(p.join("um.out"), fs::Permissions::from_mode(0o640)).unwrap();
    ok(
        p,
        &[
            "decrypt", "-i", "age.key", "f.age", "-o", "um.out", "--force",
        ],
    );
    assert_eq!(
        fs::metadata(p.join("um.out")).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // key gen: a NAME, and both files or neither.
    for bad in ["-", "keys/"] {
        let out = run(p, &["key", "gen", "--alg", "ed25519", "-o", bad], b"");
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
    std::os::unix::fs::symlink("/nonexistent/x", p.join("p1.pub")).unwrap();
    let out = run(
        p,
        &["key", "gen", "--alg", "ed25519", "-o", "p1", "--force"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!p.join("p1.key").exists(), "half a pair left");
    ok(p, &["-q", "key", "gen", "--alg", "ed25519", "-o", "p2"]);
    let old = fs::read(p.join("p2.key")).unwrap();
    fs::remove_file(p.join("p2.pub")).unwrap();
    fs::create_dir(p.join("p2.pub")).unwrap();
    let out = run(
        p,
        &["key", "gen", "--alg", "ed25519", "-o", "p2", "--force"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        fs::read(p.join("p2.key")).unwrap(),
        old,
        "the old private key is gone"
    );
    // Signing one file twice signs it once.
    ok(p, &["-q", "key", "gen", "--alg", "ml-dsa-44", "-o", "k"]);
    ok(p, &["sign", "-k", "k.key", "f", "f"]);
}

/// Errors are one line, never a panic: a reader that goes away, clap's
/// usage errors, a certificate and key that do not belong together.
#[test]
fn errors_are_one_line_and_a_closed_pipe_is_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    for _ in 0..3 {
        let out = sh(
            p,
            "set -o pipefail; citadel key list-algs --json | head -c 0",
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert_ne!(out.status.code(), Some(101), "{err}");
    }
    let out = run(p, &["sign", "--kee", "x"], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("citadel: ") && err.contains("--key"),
        "{err}"
    );
    // Vault's single-dash long flags get the spelling (helper-20).
    let out = run(p, &["vault", "token", "create", "-policy=x"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--policy, not -policy"), "{err}");
    // A missing argument is named (helper-17: "were not provided:" ended
    // the line, the names were cut).
    let out = run(p, &["completions"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("<SHELL>"), "{err}");
    // One algorithm vocabulary: ca init takes what key gen takes.
    ok(
        p,
        &["-q", "ca", "init", "--ca", "CA87", "--alg", "ML_DSA_87"],
    );
    let out = run(
        p,
        &["ca", "init", "--ca", "CAK", "--alg", "ml-kem-768"],
        b"",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a CA signs with ml-dsa-44"), "{err}");
    ok(p, &["-q", "ca", "init", "--ca", "CA"]);
    ok(
        p,
        &[
            "-q",
            "ca",
            "issue",
            "--ca",
            "CA",
            "--name",
            "server",
            "--ip",
            "127.0.0.1",
        ],
    );
    ok(
        p,
        &[
            "-q", "ca", "issue", "--ca", "CA", "--name", "alice", "--client",
        ],
    );
    let out = run(
        p,
        &[
            "recv",
            "--listen",
            "127.0.0.1:0",
            "--dir",
            "in",
            "--ca",
            "CA",
            "--cert",
            "CA/server.crt",
            "--key",
            "CA/alice.key",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("do not belong together") && !err.contains("KeyMismatch"),
        "{err}"
    );
    let out = run(p, &["ca", "list", "--ca", "nowhere"], b"");
    assert!(String::from_utf8_lossy(&out.stderr).contains("citadel ca init --ca nowhere"));
}

/// Another user's link anywhere on the way to a CA directory is refused,
/// by the `ca` verbs and by `send` and `recv` (they trust its files).
#[test]
fn a_ca_reached_through_another_users_link_is_refused() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    if fs::metadata(p).unwrap().uid() != 0 {
        return; // making another user's link needs root
    }
    fs::create_dir(p.join("mine")).unwrap();
    ok(&p.join("mine"), &["-q", "ca", "init", "--ca", "CA"]);
    ok(
        &p.join("mine"),
        &[
            "-q", "ca", "issue", "--ca", "CA", "--name", "alice", "--client",
        ],
    );
    fs::create_dir(p.join("shared")).unwrap();
    fs::set_permissions(p.join("shared"), fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::symlink(p.join("mine"), p.join("shared/evil")).unwrap();
    std::os::unix::fs::lchown(p.join("shared/evil"), Some(4242), Some(4242)).unwrap();
    let out = run(p, &["ca", "list", "--ca", "shared/evil/CA"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another user owns"));
    let out = run(
        p,
        &[
            "send",
            "mine/CA/ca.crt",
            "--to",
            "127.0.0.1:9",
            "--ca",
            "shared/evil/CA",
            "--cert",
            "mine/CA/alice.crt",
            "--key",
            "mine/CA/alice.key",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another user owns"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Completions and manual pages come from the command definition: every
/// verb has a page, and the scripts name the verbs.
#[test]
fn completions_and_manual_pages_cover_every_verb() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    for shell in ["bash", "zsh", "fish"] {
        let out = ok(p, &["completions", shell]);
        let script = String::from_utf8_lossy(&out.stdout);
        for verb in ["sign", "encrypt", "audit", "vault", "completions"] {
            assert!(script.contains(verb), "{shell}: {verb}");
        }
    }
    let out = run(p, &["completions", "tcsh"], b"");
    assert_eq!(out.status.code(), Some(2));
    let out = ok(p, &["man", "-o", "man", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pages = v["pages"].as_array().unwrap();
    for verb in [
        "citadel",
        "citadel-sign",
        "citadel-ca-issue",
        "citadel-vault-kv-get",
        "citadel-man",
    ] {
        let page = fs::read_to_string(p.join(format!("man/{verb}.1"))).unwrap();
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{verb}");
    }
    assert!(pages.len() > 60, "{}", pages.len());
    let out = run(p, &["man", "-o", "man"], b"");
    assert_eq!(out.status.code(), Some(2), "pages replaced without --force");
    ok(p, &["man", "-o", "man", "--force", "-q"]);
}
