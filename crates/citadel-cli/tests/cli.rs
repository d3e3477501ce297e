//! End-to-end tests of the `citadel` binary: every verb, its exit codes and
//! its error paths.

mod support;

use assert_cmd::Command;
use std::fs;
use std::path::Path;

fn citadel(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("citadel").unwrap();
    c.current_dir(dir);
    c
}

fn stderr_line(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn help_everywhere() {
    let d = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["key", "--help"],
        vec!["key", "gen", "--help"],
        vec!["key", "show", "--help"],
        vec!["key", "list-algs", "--help"],
        vec!["sign", "--help"],
        vec!["verify", "--help"],
        vec!["kem", "encap", "--help"],
        vec!["kem", "decap", "--help"],
        vec!["encrypt", "--help"],
        vec!["decrypt", "--help"],
        vec!["bench", "crypto", "--help"],
    ] {
        let out = citadel(d.path()).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let d = tempfile::tempdir().unwrap();
    let out = citadel(d.path())
        .args(["key", "gen", "--alg", "rsa", "--output", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_line(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("list-algs"), "{err}");
    let out = citadel(d.path())
        .args(["verify", "--pub", "missing.pub", "f"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    let out = citadel(d.path()).args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn key_gen_writes_0600_and_show_reports() {
    let d = tempfile::tempdir().unwrap();
    for alg in [
        "ml-kem-512",
        "ml-dsa-87",
        "slh-dsa-sha2-128f",
        "ed25519",
        "x25519",
        "mlkem768x25519",
    ] {
        citadel(d.path())
            .args(["key", "gen", "--alg", alg, "--output", alg])
            .assert()
            .success();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(d.path().join(format!("{alg}.key")))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{alg}");
        }
        for ext in ["key", "pub"] {
            let out = citadel(d.path())
                .args(["key", "show", &format!("{alg}.{ext}"), "--json"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{alg}.{ext}: {}", stderr_line(&out));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["algorithm"], alg);
        }
    }
    // Refuses to overwrite without --force.
    let out = citadel(d.path())
        .args(["key", "gen", "--alg", "ed25519", "--output", "ed25519"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("--force"));
}

#[test]
fn sign_verify_files_and_trees() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    citadel(p)
        .args(["key", "gen", "--alg", "ml-dsa-44", "--output", "k"])
        .assert()
        .success();
    fs::write(p.join("a.bin"), b"model weights").unwrap();
    fs::write(p.join("b.bin"), b"more").unwrap();
    citadel(p)
        .args([
            "sign",
            "--key",
            "k.key",
            "a.bin",
            "b.bin",
            "--context",
            "release",
        ])
        .assert()
        .success();
    assert_eq!(
        fs::read(p.join("a.bin.sig")).unwrap().len(),
        2420,
        "raw signature bytes"
    );
    citadel(p)
        .args(["verify", "--pub", "k.pub", "a.bin", "--context", "release"])
        .assert()
        .success();
    // Wrong context, tampered file, wrong key: exit 1.
    citadel(p)
        .args(["verify", "--pub", "k.pub", "a.bin"])
        .assert()
        .code(1);
    fs::write(p.join("b.bin"), b"morf").unwrap();
    citadel(p)
        .args(["verify", "--pub", "k.pub", "b.bin", "--context", "release"])
        .assert()
        .code(1);
    citadel(p)
        .args(["key", "gen", "--alg", "ml-dsa-44", "--output", "other"])
        .assert()
        .success();
    citadel(p)
        .args([
            "verify",
            "--pub",
            "other.pub",
            "a.bin",
            "--context",
            "release",
        ])
        .assert()
        .code(1);
    // A KEM key cannot sign: exit 2 with a message.
    citadel(p)
        .args(["key", "gen", "--alg", "ml-kem-768", "--output", "kem"])
        .assert()
        .success();
    let out = citadel(p)
        .args(["sign", "--key", "kem.key", "a.bin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("cannot sign"));

    // Directory tree.
    fs::create_dir_all(p.join("model/layers")).unwrap();
    fs::write(p.join("model/config.json"), b"{}").unwrap();
    fs::write(p.join("model/layers/0.bin"), vec![1u8; 1000]).unwrap();
    citadel(p)
        .args(["sign", "--key", "k.key", "model"])
        .assert()
        .success();
    let out = citadel(p)
        .args(["verify", "--pub", "k.pub", "model", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["files"], 2);
    fs::write(p.join("model/layers/0.bin"), vec![2u8; 1000]).unwrap();
    fs::write(p.join("model/extra.txt"), b"x").unwrap();
    fs::remove_file(p.join("model/config.json")).unwrap();
    let out = citadel(p)
        .args(["verify", "--pub", "k.pub", "model"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_line(&out);
    for needle in [
        "added: extra.txt",
        "removed: config.json",
        "modified: layers/0.bin",
    ] {
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn kem_encap_decap_round_trip_and_errors() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    citadel(p)
        .args(["key", "gen", "--alg", "ml-kem-1024", "--output", "k"])
        .assert()
        .success();
    let out = citadel(p)
        .args(["kem", "encap", "--pub", "k.pub", "--output", "ct", "--json"])
        .output()
        .unwrap();
    let enc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = citadel(p)
        .args(["kem", "decap", "--key", "k.key", "--ct", "ct", "--json"])
        .output()
        .unwrap();
    let dec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(enc["shared_secret"], dec["shared_secret"]);
    assert_eq!(
        hex::decode(enc["ciphertext"].as_str().unwrap()).unwrap(),
        fs::read(p.join("ct")).unwrap()
    );
    fs::write(p.join("short"), [0u8; 10]).unwrap();
    let out = citadel(p)
        .args(["kem", "decap", "--key", "k.key", "--ct", "short"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_line(&out).contains("1568 bytes"),
        "{}",
        stderr_line(&out)
    );
}

#[test]
fn passphrase_protected_keys() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    fs::write(p.join("pw"), "hunter2 is not a good passphrase\n").unwrap();
    citadel(p)
        .args([
            "key",
            "gen",
            "--alg",
            "ml-dsa-65",
            "--output",
            "k",
            "--passphrase-file",
            "pw",
            "--kdf",
            "pbkdf2",
        ])
        .assert()
        .success();
    assert!(
        fs::read_to_string(p.join("k.key"))
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY")
    );
    fs::write(p.join("f"), b"data").unwrap();
    let out = citadel(p)
        .args(["sign", "--key", "k.key", "f"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("passphrase"));
    fs::write(p.join("bad"), "wrong\n").unwrap();
    let out = citadel(p)
        .args(["sign", "--key", "k.key", "f", "--passphrase-file", "bad"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_line(&out).contains("wrong passphrase"),
        "{}",
        stderr_line(&out)
    );
    citadel(p)
        .args(["sign", "--key", "k.key", "f", "--passphrase-file", "pw"])
        .assert()
        .success();
    citadel(p)
        .args(["verify", "--pub", "k.pub", "f"])
        .assert()
        .success();
}

#[test]
fn encrypt_decrypt_and_tamper_leaves_no_output() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    citadel(p)
        .args(["key", "gen", "--alg", "mlkem768x25519", "--output", "pq"])
        .assert()
        .success();
    citadel(p)
        .args(["key", "gen", "--alg", "x25519", "--output", "classic"])
        .assert()
        .success();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(p.join("plain"), &data).unwrap();
    citadel(p)
        .args(["encrypt", "-R", "pq.pub", "-o", "f.age", "plain"])
        .assert()
        .success();
    citadel(p)
        .args(["decrypt", "-i", "pq.key", "-o", "out", "f.age"])
        .assert()
        .success();
    assert_eq!(fs::read(p.join("out")).unwrap(), data);
    // Armored, from stdin to stdout.
    let armored = citadel(p)
        .args([
            "encrypt",
            "-a",
            "-r",
            fs::read_to_string(p.join("pq.pub")).unwrap().trim(),
        ])
        .write_stdin(data.clone())
        .output()
        .unwrap();
    assert!(armored.status.success());
    assert!(
        armored
            .stdout
            .starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
    );
    let out = citadel(p)
        .args(["decrypt", "-i", "pq.key"])
        .write_stdin(armored.stdout)
        .output()
        .unwrap();
    assert_eq!(out.stdout, data);
    // Mixing post-quantum and classical recipients is refused.
    let out = citadel(p)
        .args([
            "encrypt",
            "-R",
            "pq.pub",
            "-R",
            "classic.pub",
            "-o",
            "mixed.age",
            "plain",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("cannot be mixed"));
    assert!(!p.join("mixed.age").exists());
    // A flipped bit: exit 1, and no output file appears.
    let mut ct = fs::read(p.join("f.age")).unwrap();
    let n = ct.len();
    ct[n - 100] ^= 0x01;
    fs::write(p.join("bad.age"), &ct).unwrap();
    let out = citadel(p)
        .args(["decrypt", "-i", "pq.key", "-o", "bad.out", "bad.age"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!p.join("bad.out").exists());
    assert!(fs::read_dir(p).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")
    }));
    // Truncation at a chunk boundary.
    fs::write(
        p.join("trunc.age"),
        &fs::read(p.join("f.age")).unwrap()[..n - 40_000],
    )
    .unwrap();
    let out = citadel(p)
        .args(["decrypt", "-i", "pq.key", "-o", "trunc.out", "trunc.age"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!p.join("trunc.out").exists());
    // Wrong identity.
    let out = citadel(p)
        .args(["decrypt", "-i", "classic.key", "-o", "x", "f.age"])
        .output()
        .unwrap();
    // Exit 1, as every file that cannot be decrypted and authenticated
    // (a damaged stanza looks exactly like one for someone else).
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_line(&out).contains("no identity matched"));
}

#[test]
fn bench_crypto_json() {
    let d = tempfile::tempdir().unwrap();
    let out = citadel(d.path())
        .args([
            "bench",
            "crypto",
            "--seconds",
            "0.01",
            "--filter",
            "ml-kem-768",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["algorithms"][0]["algorithm"], "ml-kem-768");
    assert!(v["algorithms"][0]["op1_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn secrets_never_reach_the_output_of_show() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    citadel(p)
        .args(["key", "gen", "--alg", "mlkem768x25519", "--output", "id"])
        .assert()
        .success();
    let text = fs::read_to_string(p.join("id.key")).unwrap();
    let secret = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-PQ-1"))
        .unwrap();
    let out = citadel(p)
        .args(["key", "show", "id.key", "--json"])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains(&secret[20..]),
        "the identity leaked into key show output"
    );
}

#[cfg(unix)]
#[test]
fn output_to_special_files_and_symlinks() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    citadel(p)
        .args(["key", "gen", "--alg", "x25519", "--output", "id"])
        .assert()
        .success();
    fs::write(p.join("plain"), b"some data").unwrap();
    // A symlink to a regular file: the target is replaced, the link survives.
    fs::write(p.join("target"), b"old").unwrap();
    std::os::unix::fs::symlink("target", p.join("link")).unwrap();
    citadel(p)
        .args(["encrypt", "-R", "id.pub", "-o", "link", "plain", "--force"])
        .assert()
        .success();
    assert!(
        fs::symlink_metadata(p.join("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let out = citadel(p)
        .args(["decrypt", "-i", "id.key", "target"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"some data");
    // A FIFO is written to directly, never renamed over.
    let fifo = p.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    citadel(p)
        .args(["encrypt", "-R", "id.pub", "-a", "-o", "fifo", "plain"])
        .assert()
        .success();
    let armored = reader.join().unwrap();
    assert!(armored.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn ca_init_issue_revoke_list() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    citadel(p)
        .args(["ca", "init", "--ca", "CA", "--alg", "ml-dsa-44"])
        .assert()
        .success();
    let out = citadel(p)
        .args(["ca", "init", "--ca", "CA"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a second init must be refused");
    citadel(p)
        .args([
            "ca",
            "issue",
            "--ca",
            "CA",
            "--name",
            "web",
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
            "--server",
        ])
        .assert()
        .success();
    citadel(p)
        .args(["ca", "issue", "--ca", "CA", "--name", "bob", "--client"])
        .assert()
        .success();
    let chain = fs::read_to_string(p.join("CA/web.crt")).unwrap();
    assert_eq!(
        chain.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf then CA"
    );
    let out = citadel(p)
        .args(["ca", "issue", "--ca", "CA", "--name", "../x", "--client"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    citadel(p)
        .args(["ca", "revoke", "--ca", "CA", "--name", "bob"])
        .assert()
        .success();
    let out = citadel(p)
        .args(["ca", "list", "--ca", "CA", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["issued"]["bob"]["revoked_at"].is_number());
    assert!(v["issued"]["web"]["revoked_at"].is_null());
    // The issued key is an ML-DSA PKCS#8 key that `key show` understands.
    let out = citadel(p)
        .args(["key", "show", "CA/web.key", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["algorithm"], "ml-dsa-44");
}

#[test]
fn bench_tls_reports_both_configurations() {
    let d = tempfile::tempdir().unwrap();
    let out = citadel(d.path())
        .args(["bench", "tls", "--seconds", "0.2", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_line(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["post_quantum"]["key_exchange"], "X25519MLKEM768");
    assert_eq!(v["classical"]["key_exchange"], "X25519");
    assert!(v["post_quantum"]["handshakes_per_s"].as_f64().unwrap() > 0.0);
}

/// Starts `citadel recv --once` and returns the child and its address.
fn start_recv(p: &Path, cert: &str) -> (support::KillOnDrop, String) {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("citadel"))
        .current_dir(p)
        .args([
            "recv",
            "--listen",
            "127.0.0.1:0",
            "--dir",
            "out",
            "--ca",
            "CA",
            "--once",
            "--json",
        ])
        .args([
            "--cert",
            &format!("CA/{cert}.crt"),
            "--key",
            &format!("CA/{cert}.key"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // With --json every line is a document, the first saying where.
    let addr = support::announced(&mut child, "{\"listening\":");
    (support::KillOnDrop::new(child), addr)
}

#[test]
fn send_and_recv_a_tree_over_pq_mutual_tls() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    citadel(p)
        .args(["ca", "init", "--ca", "CA"])
        .assert()
        .success();
    citadel(p)
        .args([
            "ca",
            "issue",
            "--ca",
            "CA",
            "--name",
            "server",
            "--ip",
            "127.0.0.1",
        ])
        .assert()
        .success();
    citadel(p)
        .args(["ca", "issue", "--ca", "CA", "--name", "alice", "--client"])
        .assert()
        .success();
    citadel(p)
        .args(["ca", "issue", "--ca", "CA", "--name", "mallory", "--client"])
        .assert()
        .success();
    fs::create_dir_all(p.join("tree/sub")).unwrap();
    let big: Vec<u8> = (0..9_000_000u32).map(|i| (i % 249) as u8).collect();
    fs::write(p.join("tree/big.bin"), &big).unwrap();
    fs::write(p.join("tree/sub/small.txt"), b"hello").unwrap();

    let (child, addr) = start_recv(p, "server");
    let out = citadel(p)
        .args([
            "send",
            "tree",
            "--to",
            &addr,
            "--ca",
            "CA",
            "--cert",
            "CA/alice.crt",
            "--key",
            "CA/alice.key",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_line(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["files"], 2);
    assert_eq!(v["negotiated"]["key_exchange"], "X25519MLKEM768");
    assert_eq!(v["negotiated"]["peer_signature_algorithm"], "ml-dsa-65");
    assert_eq!(v["negotiated"]["protocol"], "TLSv1.3");
    assert!(
        std::process::Child::from(child)
            .wait_with_output()
            .unwrap()
            .status
            .success()
    );
    assert_eq!(fs::read(p.join("out/tree/big.bin")).unwrap(), big);
    assert_eq!(
        fs::read(p.join("out/tree/sub/small.txt")).unwrap(),
        b"hello"
    );

    // A revoked client is refused (the receiver loads the CRL at start).
    citadel(p)
        .args(["ca", "revoke", "--ca", "CA", "--name", "mallory"])
        .assert()
        .success();
    let (child, addr) = start_recv(p, "server");
    let out = citadel(p)
        .args([
            "send",
            "tree",
            "--to",
            &addr,
            "--ca",
            "CA",
            "--cert",
            "CA/mallory.crt",
            "--key",
            "CA/mallory.key",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let recv = std::process::Child::from(child).wait_with_output().unwrap();
    assert!(!recv.status.success());
    assert!(
        String::from_utf8_lossy(&recv.stderr).contains("revoked"),
        "{}",
        String::from_utf8_lossy(&recv.stderr)
    );

    // A path that is a symlink is refused by the sender before connecting.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/passwd", p.join("tree/link")).unwrap();
        let out = citadel(p)
            .args([
                "send",
                "tree",
                "--to",
                "127.0.0.1:9",
                "--ca",
                "CA",
                "--cert",
                "CA/alice.crt",
                "--key",
                "CA/alice.key",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr_line(&out).contains("symbolic link"),
            "{}",
            stderr_line(&out)
        );
    }
}

/// Issue 13: a damaged file made `citadel decrypt` hang at times (a
/// pipeline stage waited on one that had stopped); it now exits 1 at once,
/// to a file and to stdout, wherever the damage is. And an armored file
/// whose END line fell just before an 8 KiB boundary of the read buffer
/// (108,648 bytes to an X25519 recipient) was refused.
#[test]
fn damaged_files_end_at_once_and_every_armored_length_decrypts() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    for (alg, out) in [("mlkem768x25519", "pq"), ("x25519", "x")] {
        citadel(p)
            .args(["key", "gen", "--alg", alg, "--output", out])
            .assert()
            .success();
    }
    let data: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(p.join("big"), &data).unwrap();
    citadel(p)
        .args(["encrypt", "-R", "pq.pub", "-o", "big.age", "big"])
        .assert()
        .success();
    let good = fs::read(p.join("big.age")).unwrap();
    // Header damage too (the version line, a stanza, the MAC line, the
    // nonce): every offset is exit 1.
    let header_end = good.windows(4).position(|w| w == b"\n---").unwrap() + 30;
    for at in [0usize, 5, 25, 200, header_end, header_end + 20] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        fs::write(p.join("big.bad"), &bad).unwrap();
        let out = citadel(p)
            .args(["decrypt", "-i", "pq.key", "-o", "out", "big.bad"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "header byte {at}: {}",
            stderr_line(&out)
        );
        assert!(!p.join("out").exists(), "no partial output");
    }
    for at in [1_000_000usize, 40_000_000, good.len() - 5] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        fs::write(p.join("big.bad"), &bad).unwrap();
        for run in 0..10 {
            for to_file in [true, false] {
                let mut c = citadel(p);
                c.args(["decrypt", "-i", "pq.key"]);
                if to_file {
                    c.args(["-o", "out"]);
                }
                let t = std::time::Instant::now();
                let out = c
                    .arg("big.bad")
                    .timeout(std::time::Duration::from_secs(30))
                    .output()
                    .unwrap();
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "at {at}, run {run}: {}",
                    stderr_line(&out)
                );
                assert!(t.elapsed().as_secs() < 10, "at {at}: {:?}", t.elapsed());
                assert!(!p.join("out").exists(), "no partial output");
            }
        }
    }
    let plain: Vec<u8> = (0..108_648u32)
        .map(|i| (i.wrapping_mul(40503) >> 7) as u8)
        .collect();
    fs::write(p.join("plain"), &plain).unwrap();
    for extra in 0..4usize {
        let n = 108_648 + extra * 48;
        fs::write(
            p.join("plain"),
            plain.iter().cycle().take(n).copied().collect::<Vec<u8>>(),
        )
        .unwrap();
        citadel(p)
            .args([
                "encrypt", "-a", "-R", "x.pub", "-o", "p.age", "plain", "--force",
            ])
            .assert()
            .success();
        let out = citadel(p)
            .args(["decrypt", "-i", "x.key", "p.age"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{n} bytes: {}", stderr_line(&out));
        assert_eq!(out.stdout.len(), n);
    }
}
