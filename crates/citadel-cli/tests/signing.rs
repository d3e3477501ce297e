//! Issue 14, signatures: each item of the attacker's review as a test of
//! the real binary.

use assert_cmd::Command;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::fs;
use std::path::Path;
use std::process::Output;

fn citadel(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("citadel").unwrap();
    c.current_dir(dir);
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    citadel(dir).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn key(dir: &Path, alg: &str, name: &str) {
    let out = run(dir, &["key", "gen", "--alg", alg, "--output", name]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The envelope an attacker assembles from a signature the victim made
/// over a file the attacker wrote.
fn forged_envelope(statement: &[u8], sig: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "payload": STANDARD.encode(statement),
        "payloadType": "application/vnd.in-toto+json",
        "signatures": [{"keyid": "x", "sig": STANDARD.encode(sig)}],
    }))
    .unwrap()
}

/// Item 1: a file whose bytes spell a DSSE pre-authentication encoding,
/// signed as a file, is not a directory signature: for ML-DSA, SLH-DSA and
/// Ed25519 keys, and with or without extra context.
#[test]
fn a_file_signature_is_never_a_directory_signature() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    fs::create_dir(p.join("evil")).unwrap();
    // A statement that matches the (empty) directory exactly.
    let statement = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"https://citadel.dev/manifest/v2","predicate":{"root":"evil","files":0}}"#;
    let mut pae = format!(
        "DSSEv1 28 application/vnd.in-toto+json {} ",
        statement.len()
    )
    .into_bytes();
    pae.extend_from_slice(statement);
    fs::write(p.join("innocent.bin"), &pae).unwrap();
    for alg in ["ml-dsa-44", "slh-dsa-sha2-128f", "ed25519"] {
        key(p, alg, alg);
        for ctx in ["", "release"] {
            let k = format!("{alg}.key");
            let out = run(
                p,
                &[
                    "sign",
                    "--key",
                    &k,
                    "innocent.bin",
                    "--context",
                    ctx,
                    "-o",
                    "f.sig",
                    "--force",
                ],
            );
            assert!(out.status.success(), "{alg}: {}", stderr(&out));
            // The victim's file signature verifies as a file signature...
            let out = run(
                p,
                &[
                    "verify",
                    "--pub",
                    &format!("{alg}.pub"),
                    "innocent.bin",
                    "-s",
                    "f.sig",
                    "-c",
                    ctx,
                ],
            );
            assert!(out.status.success(), "{alg}: {}", stderr(&out));
            // ...and never as a directory's.
            let sig = fs::read(p.join("f.sig")).unwrap();
            fs::write(p.join("evil.sig"), forged_envelope(statement, &sig)).unwrap();
            let out = run(
                p,
                &["verify", "--pub", &format!("{alg}.pub"), "evil", "-c", ctx],
            );
            assert_eq!(
                out.status.code(),
                Some(1),
                "{alg} {ctx:?}: {}",
                stderr(&out)
            );
            assert!(stderr(&out).contains("not valid"), "{}", stderr(&out));
        }
    }
}

/// Item 1: a signature made the way releases before the purposes were
/// separated made them is refused, with the reason.
#[test]
fn a_signature_without_a_purpose_is_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    key(p, "ml-dsa-44", "k");
    fs::write(p.join("a.bin"), b"weights").unwrap();
    let pem = fs::read_to_string(p.join("k.key")).unwrap();
    let citadel_crypto::PrivateKey::Signature(sk) =
        citadel_crypto::PrivateKey::from_pem(&pem, None).unwrap()
    else {
        panic!("not a signing key")
    };
    fs::write(p.join("a.bin.sig"), sk.sign(b"weights", b"").unwrap()).unwrap();
    let out = run(p, &["verify", "--pub", "k.pub", "a.bin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("before signing purposes were separated"),
        "{}",
        stderr(&out)
    );
}

/// Item 2: `verify` hashes what it checked. A loop swapping a tree's file
/// between a regular file (the attacker's bytes) and a symbolic link to the
/// signed bytes outside never makes it pass; a FIFO swapped in never hangs
/// it.
#[test]
fn a_tree_changing_under_verify_never_passes_or_hangs() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    key(p, "ed25519", "k");
    fs::create_dir(p.join("tree")).unwrap();
    fs::create_dir(p.join("spare")).unwrap();
    fs::write(p.join("tree/data"), b"signed bytes").unwrap();
    assert!(run(p, &["sign", "--key", "k.key", "tree"]).status.success());
    fs::write(p.join("outside"), b"signed bytes").unwrap();
    for fifo in [false, true] {
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, p) = (stop.clone(), p.to_path_buf());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let spare = p.join("spare/x");
                    let _ = fs::remove_file(&spare);
                    if fifo {
                        let _ = std::process::Command::new("mkfifo").arg(&spare).status();
                    } else {
                        let _ = std::os::unix::fs::symlink(p.join("outside"), &spare);
                    }
                    let _ = fs::rename(&spare, p.join("tree/data"));
                    fs::write(&spare, b"attacker bytes").unwrap();
                    let _ = fs::rename(&spare, p.join("tree/data"));
                }
            })
        };
        let runs = if fifo { 40 } else { 200 };
        for i in 0..runs {
            let start = std::time::Instant::now();
            let out = std::process::Command::new("timeout")
                .args([
                    "20",
                    assert_cmd::cargo::cargo_bin("citadel").to_str().unwrap(),
                ])
                .args(["verify", "--pub", "k.pub", "tree"])
                .current_dir(p)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(1),
                "run {i} (fifo {fifo}) after {:?}: {}",
                start.elapsed(),
                stderr(&out)
            );
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
    }
}

/// Item 3 and helper-12's F5: names are escaped, one per line, so a name
/// cannot forge an "OK" line; a link or FIFO added to a signed tree is a
/// difference (exit 1), not a signing error.
#[test]
fn names_cannot_forge_output_and_links_are_differences() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    key(p, "ml-dsa-44", "k");
    fs::create_dir(p.join("model")).unwrap();
    fs::write(p.join("model/model.bin"), b"weights").unwrap();
    assert!(
        run(p, &["sign", "--key", "k.key", "model"])
            .status
            .success()
    );
    fs::write(p.join("model/model.bin"), b"backdoor").unwrap();
    fs::write(p.join("model/\r\x1b[2KOK: model (1 files, valid)"), b"").unwrap();
    fs::write(p.join("model/mod\u{0430}l.bin"), b"").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p.join("model/link")).unwrap();
    let out = run(p, &["verify", "--pub", "k.pub", "model"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    assert!(
        err.contains(r#"added: "\u{d}\u{1b}[2KOK: model (1 files, valid)""#),
        "{err}"
    );
    assert!(err.contains(r#"added: "mod\u{430}l.bin""#), "{err}");
    assert!(err.contains("modified: model.bin\n"), "{err}");
    assert!(
        err.contains("not a regular file (never covered): link\n"),
        "{err}"
    );
    let out = run(p, &["verify", "--pub", "k.pub", "model", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["not_regular"], serde_json::json!(["link"]));
}

/// Item 4: `sign .` puts the bundle beside the directory, where `verify .`
/// finds it; an output inside the tree is refused.
#[test]
fn signing_dot_writes_beside_the_tree() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    key(p, "ml-dsa-44", "k");
    let tree = p.join("release");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("app"), b"binary").unwrap();
    let out = run(&tree, &["sign", "--key", "../k.key", "."]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(p.join("release.sig").exists());
    assert!(!tree.join("..sig").exists());
    let out = run(&tree, &["verify", "--pub", "../k.pub", "."]);
    assert!(out.status.success(), "{}", stderr(&out));
    for inside in ["inside.sig", "./sub.sig", "../release/x.sig"] {
        let out = run(&tree, &["sign", "--key", "../k.key", ".", "-o", inside]);
        assert_eq!(out.status.code(), Some(2), "{inside}");
        assert!(stderr(&out).contains("inside the directory being signed"));
    }
    assert!(!tree.join("inside.sig").exists());
    // One call signing the tree and a file in it: the file's signature
    // would land in the signed tree, in either order; nothing is written.
    fs::remove_file(p.join("release.sig")).unwrap();
    for order in [["release", "release/app"], ["release/app", "release"]] {
        let out = run(p, &["sign", "--key", "k.key", order[0], order[1]]);
        assert_eq!(out.status.code(), Some(2), "{order:?}");
        assert!(stderr(&out).contains("inside the directory being signed"));
        assert!(!tree.join("app.sig").exists() && !p.join("release.sig").exists());
    }
}

/// Item 5: the executable bit is covered.
#[test]
fn the_executable_bit_is_covered() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    key(p, "ml-dsa-44", "k");
    fs::create_dir(p.join("rel")).unwrap();
    fs::write(p.join("rel/install.sh"), b"echo hi").unwrap();
    assert!(run(p, &["sign", "--key", "k.key", "rel"]).status.success());
    assert!(
        run(p, &["verify", "--pub", "k.pub", "rel"])
            .status
            .success()
    );
    fs::set_permissions(p.join("rel/install.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(p, &["verify", "--pub", "k.pub", "rel"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("executable bit changed: install.sh"),
        "{}",
        stderr(&out)
    );
}

/// Helper-13's findings 5, 6 and 7: `-` is standard input, never a file of
/// that name; names in error messages cannot rewrite the terminal; a link
/// planted at DIR.sig into the tree and a FIFO at the signature path are
/// refused, not followed or waited on.
#[test]
fn dash_links_fifos_and_escapes_in_errors() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    key(p, "ml-dsa-44", "k");
    fs::write(p.join("empty"), b"").unwrap();
    assert!(
        run(p, &["sign", "--key", "k.key", "empty"])
            .status
            .success()
    );
    fs::write(p.join("-"), b"malicious\n").unwrap();
    fs::copy(p.join("empty.sig"), p.join("-.sig")).unwrap();
    let out = citadel(p)
        .args(["verify", "--pub", "k.pub", "-"])
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("needs --sig"));
    let out = run(p, &["verify", "--pub", "k.pub", "./-", "--sig", "./-.sig"]);
    assert_eq!(out.status.code(), Some(1), "the file named - is checked");
    let out = citadel(p)
        .args(["verify", "--pub", "k.pub", "-", "--sig", "empty.sig"])
        .write_stdin("")
        .output()
        .unwrap();
    assert!(out.status.success(), "standard input is checked");
    let out = run(p, &["sign", "--key", "k.key", "-"]);
    assert_eq!(out.status.code(), Some(2));

    let evil = "evil\x1b[2K\r\x1b[32mOK: model (3 files, valid)\x1b[0m";
    fs::write(p.join(evil), b"d").unwrap();
    for args in [
        vec!["verify", "--pub", "k.pub", evil],
        vec!["verify", "--pub", evil, "empty"],
    ] {
        let out = run(p, &args);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
        assert!(err.contains("\\u{1b}"), "{err}");
    }

    fs::create_dir(p.join("m")).unwrap();
    fs::write(p.join("m/inside.sig"), b"keep").unwrap();
    std::os::unix::fs::symlink("m/inside.sig", p.join("m.sig")).unwrap();
    let out = run(p, &["sign", "--key", "k.key", "m"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(fs::read(p.join("m/inside.sig")).unwrap(), b"keep");
    fs::remove_file(p.join("m.sig")).unwrap();
    std::process::Command::new("mkfifo")
        .arg(p.join("m.sig"))
        .status()
        .unwrap();
    let out = std::process::Command::new("timeout")
        .args([
            "10",
            assert_cmd::cargo::cargo_bin("citadel").to_str().unwrap(),
        ])
        .args(["verify", "--pub", "k.pub", "m"])
        .current_dir(p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a regular file"));
}

/// A last attack: `-o` naming an input or the key replaced it (even the
/// private key, exit 0); one input's signature could replace another
/// input; `-o -` made a file named `-`; `-o /dev/stdout` got the
/// confirmation line appended to the signature.
#[test]
fn a_signature_never_replaces_what_it_signs_and_dash_is_stdout() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    key(p, "ml-dsa-44", "k");
    fs::write(p.join("y.txt"), b"data").unwrap();
    fs::write(p.join("x.txt"), b"more").unwrap();
    fs::write(p.join("x.txt.sig"), b"an input too").unwrap();
    let key_before = fs::read(p.join("k.key")).unwrap();
    for args in [
        &["sign", "-k", "k.key", "y.txt", "-o", "y.txt", "--force"][..],
        &["sign", "-k", "k.key", "y.txt", "-o", "k.key", "--force"][..],
        &["sign", "-k", "k.key", "x.txt.sig", "x.txt", "--force"][..],
    ] {
        let out = run(p, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("of this call"), "{}", stderr(&out));
    }
    assert_eq!(fs::read(p.join("y.txt")).unwrap(), b"data");
    assert_eq!(fs::read(p.join("k.key")).unwrap(), key_before);
    assert_eq!(fs::read(p.join("x.txt.sig")).unwrap(), b"an input too");
    // `-o -`: the signature alone on standard output.
    let out = run(p, &["sign", "-k", "k.key", "y.txt", "-o", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!p.join("-").exists());
    fs::write(p.join("y.sig"), &out.stdout).unwrap();
    let v = run(p, &["verify", "--pub", "k.pub", "-s", "y.sig", "y.txt"]);
    assert!(v.status.success(), "{}", stderr(&v));
    let out = citadel(p)
        .args(["sign", "-k", "k.key", "-", "-o", "-"])
        .write_stdin(&b"data"[..])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    fs::write(p.join("s.sig"), &out.stdout).unwrap();
    let v = run(p, &["verify", "--pub", "k.pub", "-s", "s.sig", "y.txt"]);
    assert!(v.status.success(), "{}", stderr(&v));
    assert!(!p.join("-").exists());
}

/// Another path to the same tree (a bind mount) is inside it too: the
/// check once compared paths only. Runs where `mount --bind` works (root
/// with the capability); skipped elsewhere.
#[test]
fn a_signature_is_not_written_into_the_tree_through_a_bind_mount() {
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    key(p, "ml-dsa-44", "k");
    fs::create_dir_all(p.join("D")).unwrap();
    fs::write(p.join("D/a"), b"data").unwrap();
    fs::create_dir(p.join("mnt")).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["--bind"])
        .arg(p.join("D"))
        .arg(p.join("mnt"))
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mount --bind is not allowed here");
        return;
    }
    let _unmount = Unmount(p.join("mnt"));
    let out = run(p, &["sign", "-k", "k.key", "D", "-o", "mnt/D.sig"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("inside the directory being signed"));
    assert!(!p.join("D/D.sig").exists());
}
