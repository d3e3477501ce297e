//! `citadel audit` as a user runs it: the whole flow, tampering found by
//! `verify` with the first bad index and exit 1, and a kill -9 in the middle
//! of a stream of appends losing nothing that was acknowledged.

use assert_cmd::Command;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;

fn citadel(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("citadel").unwrap();
    c.current_dir(dir);
    c
}

fn stdout(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn lines(n: usize, from: usize) -> String {
    (from..from + n)
        .map(|i| format!("{{\"action\":\"read\",\"actor\":\"u{}\",\"resource\":\"r{i}\",\"details\":{{\"token\":\"t{i}\"}}}}\n", i % 3))
        .collect()
}

#[test]
fn init_append_checkpoint_prove_verify_search() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    citadel(p)
        .args([
            "audit",
            "init",
            "--dir",
            "log",
            "--origin",
            "example.org/audit",
            "--sensitive",
            "details.token",
        ])
        .assert()
        .success();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for k in ["ed25519.skey", "ml-dsa-65.skey", "hmac.key"] {
            let mode = fs::metadata(p.join("log/keys").join(k))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{k}");
        }
    }
    let idx = stdout(
        citadel(p)
            .args(["audit", "append", "--dir", "log"])
            .write_stdin(lines(20, 0)),
    );
    assert_eq!(
        idx.lines().collect::<Vec<_>>(),
        (0..20).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    let cp = stdout(citadel(p).args(["audit", "checkpoint", "--dir", "log"]));
    assert!(cp.starts_with("example.org/audit\n20\n"), "{cp}");
    assert_eq!(
        cp.matches("\u{2014} example.org/audit ").count(),
        2,
        "two signatures"
    );
    fs::write(p.join("old.cp"), &cp).unwrap();

    // Secrets never stored in the clear, yet findable with the key.
    let raw: Vec<u8> = fs::read_dir(p.join("log/segments"))
        .unwrap()
        .flat_map(|e| fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!String::from_utf8_lossy(&raw).contains("\"t7\""));
    let found = stdout(citadel(p).args([
        "audit",
        "search",
        "--dir",
        "log",
        "--hmac",
        "details.token=t7",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(found.trim()).unwrap();
    assert_eq!(v["index"], 7);
    let by_actor = stdout(citadel(p).args([
        "audit", "search", "--dir", "log", "--actor", "u1", "--action", "read",
    ]));
    assert_eq!(by_actor.lines().count(), 7);
    assert_eq!(
        stdout(citadel(p).args(["audit", "tail", "--dir", "log", "-n", "3"]))
            .lines()
            .count(),
        3
    );

    // Inclusion proof checked with the public keys only.
    let proof = stdout(citadel(p).args([
        "audit",
        "prove",
        "--dir",
        "log",
        "--index",
        "5",
        "--entry-out",
        "e5",
    ]));
    assert!(
        proof.starts_with("c2sp.org/tlog-proof@v1\nindex 5\n"),
        "{proof}"
    );
    fs::write(p.join("p5"), &proof).unwrap();
    fs::create_dir(p.join("elsewhere")).unwrap();
    fs::copy(p.join("log/log.vkeys"), p.join("elsewhere/vkeys")).unwrap();
    let ok = stdout(citadel(p).args([
        "audit",
        "verify-proof",
        "--vkeys",
        "elsewhere/vkeys",
        "--proof",
        "p5",
        "--entry",
        "e5",
    ]));
    assert!(ok.starts_with("ok: entry 5"), "{ok}");
    // Another entry's bytes do not verify with it: exit 1.
    fs::write(
        p.join("e5x"),
        fs::read(p.join("e5"))
            .unwrap()
            .iter()
            .map(|b| if *b == b'5' { b'6' } else { *b })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    citadel(p)
        .args([
            "audit",
            "verify-proof",
            "--vkeys",
            "elsewhere/vkeys",
            "--proof",
            "p5",
            "--entry",
            "e5x",
        ])
        .assert()
        .code(1);

    // The log grows; a consistency proof links the old checkpoint to the new.
    stdout(
        citadel(p)
            .args(["audit", "append", "--dir", "log", "--fsync", "every"])
            .write_stdin(lines(5, 20)),
    );
    stdout(citadel(p).args(["audit", "checkpoint", "--dir", "log"]));
    let cproof = stdout(citadel(p).args([
        "audit",
        "consistency",
        "--dir",
        "log",
        "--old",
        "old.cp",
        "--new-out",
        "new.cp",
    ]));
    fs::write(p.join("c.proof"), cproof).unwrap();
    let ok = stdout(citadel(p).args([
        "audit",
        "verify-proof",
        "--vkeys",
        "elsewhere/vkeys",
        "--old",
        "old.cp",
        "--new",
        "new.cp",
        "--proof",
        "c.proof",
    ]));
    assert!(ok.contains("size 25 is an extension of size 20"), "{ok}");
    let v: serde_json::Value = serde_json::from_str(&stdout(citadel(p).args([
        "audit",
        "verify",
        "--dir",
        "log",
        "--checkpoint",
        "old.cp",
        "--json",
    ])))
    .unwrap();
    assert_eq!(v["entries"], 25);

    // A bad line stops the append with exit 2; the lines before it stay.
    let out = citadel(p)
        .args(["audit", "append", "--dir", "log"])
        .write_stdin(format!("{}not json\n", lines(1, 25)))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "25\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));

    // Tampering: exit 1 and the first bad index.
    let seg = fs::read_dir(p.join("log/segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut b = fs::read(&seg).unwrap();
    let at = b.windows(4).position(|w| w == b"\"r9\"").unwrap();
    b[at + 2] = b'8';
    fs::write(&seg, b).unwrap();
    let out = citadel(p)
        .args(["audit", "verify", "--dir", "log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("first bad entry 9"), "{err}");
}

#[test]
fn kill_9_during_appends_loses_nothing_acknowledged() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    citadel(p)
        .args(["audit", "init", "--dir", "log"])
        .assert()
        .success();
    for fsync in ["every", "group"] {
        let before: u64 = stdout(citadel(p).args(["audit", "verify", "--dir", "log", "--json"]))
            .parse::<serde_json::Value>()
            .unwrap()["entries"]
            .as_u64()
            .unwrap();
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("citadel"))
            .current_dir(p)
            .args([
                "audit",
                "append",
                "--dir",
                "log",
                "--fsync",
                fsync,
                "--group-ms",
                "2",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            // An endless stream; stops when the process dies.
            for i in 0.. {
                if stdin.write_all(lines(1, i).as_bytes()).is_err() {
                    break;
                }
            }
        });
        let mut acked = Vec::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while acked.len() < 300 {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0);
            acked.push(line.trim().parse::<u64>().unwrap());
        }
        child.kill().unwrap(); // SIGKILL, mid-stream
        child.wait().unwrap();
        writer.join().unwrap();
        // Everything acknowledged is there and the log verifies.
        let v: serde_json::Value =
            stdout(citadel(p).args(["audit", "verify", "--dir", "log", "--json"]))
                .parse()
                .unwrap();
        let entries = v["entries"].as_u64().unwrap();
        let last = *acked.last().unwrap();
        assert!(
            entries > last,
            "{fsync}: {entries} entries, but {last} was acknowledged"
        );
        assert_eq!(acked.first(), Some(&before));
        // Opening recovers (cutting any torn tail) and appends continue.
        let next = stdout(
            citadel(p)
                .args(["audit", "append", "--dir", "log"])
                .write_stdin(lines(1, 0)),
        );
        assert_eq!(next.trim().parse::<u64>().unwrap(), entries);
        let tail = stdout(citadel(p).args([
            "audit",
            "search",
            "--dir",
            "log",
            "--resource",
            &format!("r{}", last - before),
        ]));
        assert!(
            tail.lines().any(|l| l.starts_with(&format!("{last}\t"))),
            "{fsync}: {tail}"
        );
    }
}

#[test]
fn a_pause_in_the_input_still_acknowledges_within_the_window() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    citadel(p)
        .args(["audit", "init", "--dir", "log"])
        .assert()
        .success();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("citadel"))
        .current_dir(p)
        .args(["audit", "append", "--dir", "log", "--group-ms", "20"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines(1, 0).as_bytes()).unwrap();
    stdin.flush().unwrap();
    // The input stays open: the index must come anyway.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "0\n");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

fn code(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 12, items 10-12, 14 and 15, as a user meets them.
#[test]
fn reading_never_changes_the_log_and_proofs_name_their_log() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    citadel(p)
        .args([
            "audit",
            "init",
            "--dir",
            "log",
            "--origin",
            "example.org/audit",
        ])
        .assert()
        .success();
    stdout(
        citadel(p)
            .args(["audit", "append", "--dir", "log", "--fsync", "every"])
            .write_stdin(lines(2, 0)),
    );
    stdout(citadel(p).args(["audit", "checkpoint", "--dir", "log"]));
    fs::copy(p.join("log/checkpoint"), p.join("published.cp")).unwrap();
    stdout(
        citadel(p)
            .args(["audit", "append", "--dir", "log", "--fsync", "every"])
            .write_stdin(lines(4, 2)),
    );
    // Item 11: entries no checkpoint covers are reported.
    let out = stdout(citadel(p).args(["audit", "verify", "--dir", "log"]));
    assert!(
        out.contains("6 entries")
            && out.contains("the last 4 are not covered by a signed checkpoint"),
        "{out}"
    );
    // Item 12: a consistency proof to a stale checkpoint is refused (exit
    // 2), not a silent 2 -> 2.
    let (c, _, err) = code(citadel(p).args([
        "audit",
        "consistency",
        "--dir",
        "log",
        "--old",
        "published.cp",
    ]));
    assert_eq!(c, 2, "{err}");
    assert!(
        err.contains("run `citadel audit checkpoint` first"),
        "{err}"
    );
    // Input errors exit 2, not 1.
    fs::write(p.join("empty"), b"").unwrap();
    let (c, _, err) =
        code(citadel(p).args(["audit", "verify", "--dir", "log", "--checkpoint", "empty"]));
    assert_eq!(c, 2, "{err}");
    let (c, _, err) = code(citadel(p).args([
        "audit",
        "verify-proof",
        "--vkeys",
        "log/log.vkeys",
        "--proof",
        "empty",
        "--entry",
        "empty",
    ]));
    assert_eq!(c, 2, "{err}");
    // Item 15: a huge file is refused without being read whole.
    let big = fs::File::create(p.join("big.cp")).unwrap();
    big.set_len(100 << 20).unwrap();
    let (c, _, err) =
        code(citadel(p).args(["audit", "verify", "--dir", "log", "--checkpoint", "big.cp"]));
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("larger than"), "{err}");
    // Item 14: a checkpoint signed with the log's keys for another origin
    // (or the right name with a trailing space) does not verify a proof.
    stdout(citadel(p).args(["audit", "checkpoint", "--dir", "log"]));
    let proof = stdout(citadel(p).args([
        "audit",
        "prove",
        "--dir",
        "log",
        "--index",
        "1",
        "--entry-out",
        "e1",
    ]));
    fs::write(p.join("p1"), &proof).unwrap();
    stdout(citadel(p).args([
        "audit",
        "verify-proof",
        "--vkeys",
        "log/log.vkeys",
        "--proof",
        "p1",
        "--entry",
        "e1",
    ]));
    // An insider with the log's keys signs the same tree under another
    // origin, or the right name with a trailing space.
    let skey = |n: &str| {
        citadel_audit::note::NoteSigner::parse(
            fs::read_to_string(p.join("log/keys").join(n))
                .unwrap()
                .trim(),
        )
        .unwrap()
    };
    let (ed, ml) = (skey("ed25519.skey"), skey("ml-dsa-65.skey"));
    let at = proof.find("example.org/audit\n").unwrap();
    let (head, note) = proof.split_at(at);
    let body: String = note.split_inclusive('\n').take(3).collect();
    for other in ["evil.example/other-log", "example.org/audit "] {
        let forged_body = body.replacen("example.org/audit", other, 1);
        let signed = citadel_audit::note::sign(&forged_body, &[&ed, &ml]).unwrap();
        fs::write(p.join("p-other"), format!("{head}{signed}")).unwrap();
        let (c, _, err) = code(citadel(p).args([
            "audit",
            "verify-proof",
            "--vkeys",
            "log/log.vkeys",
            "--proof",
            "p-other",
            "--entry",
            "e1",
        ]));
        assert_eq!(c, 1, "{other:?}: {err}");
        assert!(err.contains("expected"), "{err}");
    }
    // Item 10: flip a bit of entry 4's length: search and verify report
    // it and change nothing; append refuses and deletes nothing.
    let seg = fs::read_dir(p.join("log/segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut b = fs::read(&seg).unwrap();
    let mut at = 8;
    for _ in 0..4 {
        let len = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        at += 16 + len;
    }
    b[at + 1] ^= 1;
    fs::write(&seg, &b).unwrap();
    let (c, _, _) = code(citadel(p).args(["audit", "verify", "--dir", "log"]));
    assert_eq!(c, 1);
    let _ = code(citadel(p).args(["audit", "search", "--dir", "log", "--actor", "u1"]));
    let _ = code(citadel(p).args(["audit", "tail", "--dir", "log"]));
    assert_eq!(fs::read(&seg).unwrap(), b, "reading changed the log");
    let (c, _, err) = code(
        citadel(p)
            .args(["audit", "append", "--dir", "log"])
            .write_stdin(lines(1, 9)),
    );
    assert_ne!(c, 0);
    assert!(err.contains("nothing was removed"), "{err}");
    assert_eq!(
        fs::read(&seg).unwrap(),
        b,
        "append cut acknowledged entries"
    );
}

/// Issue 12, the second attack on the log (F3-F7) as a user meets it: one
/// writer at a time and reading beside it, the bookkeeping repaired, exit
/// codes that say whether a check failed or the input was wrong, and a
/// FIFO that nobody writes refused instead of waited on.
#[test]
fn one_writer_repairs_and_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    for log in ["a", "b"] {
        stdout(citadel(p).args([
            "audit",
            "init",
            "--dir",
            log,
            "--origin",
            "example.org/audit",
        ]));
        stdout(
            citadel(p)
                .args(["audit", "append", "--dir", log, "--fsync", "every"])
                .write_stdin(lines(3, 0)),
        );
        stdout(citadel(p).args(["audit", "checkpoint", "--dir", log]));
    }
    // F7: a checkpoint signed by another log's keys of the same name fails
    // verification (exit 1), it is not malformed input (2).
    let (c, _, err) = code(citadel(p).args([
        "audit",
        "verify",
        "--dir",
        "a",
        "--checkpoint",
        "b/checkpoint",
    ]));
    assert_eq!(c, 1, "{err}");
    fs::write(
        p.join("pb"),
        stdout(citadel(p).args([
            "audit",
            "prove",
            "--dir",
            "b",
            "--index",
            "1",
            "--entry-out",
            "eb",
        ])),
    )
    .unwrap();
    let vp = |proof: &str, entry: &str| {
        code(
            citadel(p)
                .args([
                    "audit",
                    "verify-proof",
                    "--vkeys",
                    "a/log.vkeys",
                    "--proof",
                    proof,
                    "--entry",
                    entry,
                ])
                .timeout(std::time::Duration::from_secs(30)),
        )
    };
    let (c, _, err) = vp("pb", "eb");
    assert_eq!(c, 1, "{err}");
    // F7: an empty entry is an input error.
    fs::write(p.join("empty"), b"").unwrap();
    let (c, _, err) = vp("pb", "empty");
    assert_eq!((c, err.contains("is empty")), (2, true), "{err}");
    // F5: a FIFO nobody writes to reads as empty instead of hanging.
    assert!(
        std::process::Command::new("mkfifo")
            .arg(p.join("fifo"))
            .status()
            .unwrap()
            .success()
    );
    let (c, _, err) = vp("fifo", "eb");
    assert_eq!(c, 2, "{err}");

    // F3: while one `append` holds the log, a second writer is refused;
    // proofs are served beside it from what the writer flushed.
    let mut writer = std::process::Command::new(assert_cmd::cargo::cargo_bin("citadel"))
        .current_dir(p)
        .args(["audit", "append", "--dir", "a", "--fsync", "every"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = writer.stdin.take().unwrap();
    let mut acks = BufReader::new(writer.stdout.take().unwrap());
    stdin.write_all(lines(1, 3).as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut ack = String::new();
    acks.read_line(&mut ack).unwrap();
    assert_eq!(ack.trim(), "3");
    let (c, _, err) = code(
        citadel(p)
            .args(["audit", "append", "--dir", "a"])
            .write_stdin(lines(1, 9)),
    );
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("open for writing by another process"), "{err}");
    let (c, _, err) = code(citadel(p).args(["audit", "checkpoint", "--dir", "a"]));
    assert_eq!(c, 2, "{err}");
    stdout(citadel(p).args(["audit", "prove", "--dir", "a", "--index", "2"]));
    fs::copy(p.join("a/checkpoint"), p.join("a.cp")).unwrap();
    let (c, _, err) =
        code(citadel(p).args(["audit", "consistency", "--dir", "a", "--old", "a.cp"]));
    assert_eq!(c, 0, "{err}");
    assert!(err.contains("the log is being written"), "{err}");
    assert!(stdout(citadel(p).args(["audit", "tail", "--dir", "a"])).contains("\"r3\""));
    drop(stdin);
    assert!(writer.wait().unwrap().success());

    // F4, F6: a removed mark or a garbled checkpoint copy stops the log
    // with a way back; `repair` verifies the rest and restores them.
    fs::remove_file(p.join("a/acked")).unwrap();
    fs::write(p.join("a/checkpoint"), b"garbage\n").unwrap();
    let (c, _, err) = code(
        citadel(p)
            .args(["audit", "append", "--dir", "a"])
            .write_stdin(lines(1, 4)),
    );
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("citadel audit repair"), "{err}");
    let (c, _, err) = code(citadel(p).args(["audit", "verify", "--dir", "a"]));
    assert_eq!(c, 1, "{err}");
    let out = stdout(citadel(p).args(["audit", "repair", "--dir", "a"]));
    assert!(
        out.contains("the high-water mark was missing or damaged, now 4")
            && out.contains("restored from LOG/checkpoints/"),
        "{out}"
    );
    stdout(citadel(p).args(["audit", "verify", "--dir", "a"]));
    stdout(
        citadel(p)
            .args(["audit", "append", "--dir", "a"])
            .write_stdin(lines(1, 4)),
    );
    // A repair never goes below a checkpoint: with entries cut from a
    // segment that a checkpoint covers, it refuses (exit 1).
    stdout(citadel(p).args(["audit", "checkpoint", "--dir", "a"]));
    let seg = p.join("a/segments/00000000000000000000.seg");
    let b = fs::read(&seg).unwrap();
    fs::write(&seg, &b[..b.len() - 40]).unwrap();
    let (c, _, err) = code(citadel(p).args(["audit", "repair", "--dir", "a"]));
    assert_eq!(c, 1, "{err}");
    assert!(err.contains("not repaired"), "{err}");
}

/// Finding 5 of the third attack: `--entry-out` (like every output) wrote
/// through a symbolic link someone else planted in a shared sticky
/// directory, which the kernel's protected_symlinks would have refused.
#[test]
fn outputs_do_not_follow_a_link_another_user_planted_in_tmp() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    if fs::metadata(p).unwrap().uid() != 0 {
        return; // making a link of another user's needs root
    }
    stdout(citadel(p).args(["audit", "init", "--dir", "log"]));
    stdout(
        citadel(p)
            .args(["audit", "append", "--dir", "log"])
            .write_stdin(lines(1, 0)),
    );
    stdout(citadel(p).args(["audit", "checkpoint", "--dir", "log"]));
    fs::create_dir(p.join("shared")).unwrap();
    fs::set_permissions(p.join("shared"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(p.join("victim"), b"precious").unwrap();
    std::os::unix::fs::symlink(p.join("victim"), p.join("shared/e")).unwrap();
    std::os::unix::fs::lchown(p.join("shared/e"), Some(4242), Some(4242)).unwrap();
    let (c, _, err) = code(citadel(p).args([
        "audit",
        "prove",
        "--dir",
        "log",
        "--index",
        "0",
        "--entry-out",
        "shared/e",
    ]));
    // Replaced (root may rename over another user's link in a sticky
    // directory; anyone else is refused), never written through.
    let _ = (c, err);
    assert_eq!(fs::read(p.join("victim")).unwrap(), b"precious");
    // A link to a directory on the way is refused.
    fs::create_dir(p.join("private")).unwrap();
    std::os::unix::fs::symlink(p.join("private"), p.join("shared/proofs")).unwrap();
    std::os::unix::fs::lchown(p.join("shared/proofs"), Some(4242), Some(4242)).unwrap();
    let (c, _, err) = code(citadel(p).args([
        "audit",
        "prove",
        "--dir",
        "log",
        "--index",
        "0",
        "--entry-out",
        "shared/proofs/e",
    ]));
    assert_eq!(c, 2, "{err}");
    assert!(!p.join("private/e").exists());
    // In a directory others can write, even the user's own link is
    // replaced, not written through (it could be swapped at any moment).
    std::os::unix::fs::symlink(p.join("victim"), p.join("shared/mine")).unwrap();
    stdout(citadel(p).args([
        "audit",
        "prove",
        "--dir",
        "log",
        "--index",
        "0",
        "--entry-out",
        "shared/mine",
        "--force",
    ]));
    assert_eq!(fs::read(p.join("victim")).unwrap(), b"precious");
    assert!(
        fs::symlink_metadata(p.join("shared/mine"))
            .unwrap()
            .is_file()
    );
    // In the user's own directory, a link is followed, as before.
    std::os::unix::fs::symlink(p.join("victim"), p.join("mine")).unwrap();
    stdout(citadel(p).args([
        "audit",
        "prove",
        "--dir",
        "log",
        "--index",
        "0",
        "--entry-out",
        "mine",
        "--force",
    ]));
    assert_ne!(fs::read(p.join("victim")).unwrap(), b"precious");
}

/// The third attack's minor notes: `append` read a line whole (300 MB in
/// memory before refusing it), and `tail` printed an entry's terminal
/// escapes as they were.
#[test]
fn a_huge_line_is_refused_and_tail_escapes_control_characters() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    stdout(citadel(p).args(["audit", "init", "--dir", "log"]));
    let mut huge = "{\"action\":\"x\",\"pad\":\"".to_string();
    huge.push_str(&"a".repeat(5 << 20));
    huge.push_str("\"}\n");
    let (c, _, err) = code(
        citadel(p)
            .args(["audit", "append", "--dir", "log"])
            .write_stdin(huge),
    );
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("longer than"), "{err}");
    {
        let mut log = citadel_audit::log::AuditLog::open(
            &p.join("log"),
            citadel_audit::log::Durability::EveryAppend,
        )
        .unwrap();
        log.append(b"\x1b]0;owned\x07\x1b[31mred").unwrap();
    }
    let out = stdout(citadel(p).args(["audit", "tail", "--dir", "log"]));
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(out.contains("\\u{001b}[31mred"), "{out}");
}

/// Issue 13's sweep, `audit append`: its stdin is read on a thread that
/// hands lines over a bounded queue. Whatever stops the appends (a bad line
/// at the first, a middle or the last position, stdin unreadable, stdout
/// closed), the command ends at once with exit 2, even while the producer
/// keeps its end of stdin open and writing, and acknowledges what it kept.
#[test]
fn append_ends_on_its_first_error_while_the_producer_writes_on() {
    use std::time::{Duration, Instant};
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    stdout(citadel(p).args(["audit", "init", "--dir", "log"]));
    let bin = assert_cmd::cargo::cargo_bin("citadel");
    let spawn = |stdout_to: Stdio| {
        std::process::Command::new(&bin)
            .current_dir(p)
            .args(["audit", "append", "--dir", "log"])
            .stdin(Stdio::piped())
            .stdout(stdout_to)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Runs the child while a thread writes `more` to its stdin until the
    // pipe breaks and another reads its acknowledgements: it must end
    // within 5 s. Returns its exit code, stderr and acknowledgements.
    let ends = |mut child: std::process::Child, first: String, more: String| {
        let mut input = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let _ = input.write_all(first.as_bytes());
            while input.write_all(more.as_bytes()).is_ok() {}
        });
        let reader = child.stdout.take().map(|mut acks| {
            std::thread::spawn(move || {
                let mut out = String::new();
                let _ = std::io::Read::read_to_string(&mut acks, &mut out);
                out
            })
        });
        let t = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if t.elapsed() > Duration::from_secs(5) {
                let _ = child.kill();
                panic!("append did not end within 5 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        feeder.join().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        let out = reader.map_or(String::new(), |r| r.join().unwrap());
        (status.code(), err, out)
    };
    let mut entries = 0usize;
    for bad_at in [0usize, 5_000, 9_999] {
        for round in 0..10 {
            let mut batch = lines(bad_at, entries);
            batch.push_str("not json\n");
            // The producer goes on writing good lines, and never closes.
            let (code, err, out) = ends(spawn(Stdio::piped()), batch, lines(200, 0));
            assert_eq!(code, Some(2), "bad line {bad_at}, round {round}: {err}");
            assert!(err.contains(&format!("line {}", bad_at + 1)), "{err}");
            // Every line before the bad one was kept and acknowledged.
            assert_eq!(out.lines().count(), bad_at, "bad line {bad_at}");
            entries += bad_at;
        }
    }
    // Stdin that cannot be read (a directory): exit 2, nothing kept.
    let out = std::process::Command::new(&bin)
        .current_dir(p)
        .args(["audit", "append", "--dir", "log"])
        .stdin(fs::File::open(p).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read stdin"));
    // Acknowledgements nobody reads (stdout closed): it ends, exit 2.
    for _ in 0..10 {
        let mut child = spawn(Stdio::piped());
        drop(child.stdout.take());
        let (code, err, _) = ends(child, String::new(), lines(50, 0));
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("Broken pipe"), "{err}");
    }
}

/// Helper-12's F4: errors name what failed. A full stdout is named as
/// stdout (not the log's disk); a log directory removed while appending
/// stops the acknowledgements (writes into an unlinked directory are not
/// durable anywhere) and says so; a line that is not UTF-8 is named.
#[test]
fn append_errors_name_what_failed() {
    use std::io::BufRead;
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    stdout(citadel(p).args(["audit", "init", "--dir", "log"]));
    let bin = assert_cmd::cargo::cargo_bin("citadel");
    let out = std::process::Command::new(&bin)
        .current_dir(p)
        .args(["audit", "append", "--dir", "log"])
        .stdin(Stdio::piped())
        .stdout(fs::File::options().write(true).open("/dev/full").unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(lines(3, 0).as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "cannot write acknowledgements to stdout (the entries up to index 2 are in the log)"
        ),
        "{err}"
    );
    assert_eq!(err.matches("No space left").count(), 1, "{err}");

    let out = std::process::Command::new(&bin)
        .current_dir(p)
        .args(["audit", "append", "--dir", "log"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            let mut input = lines(2, 0).into_bytes();
            input.extend_from_slice(b"\xff\xfe\n");
            c.stdin.take().unwrap().write_all(&input)?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3: cannot read stdin: a line is not UTF-8"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);

    stdout(citadel(p).args(["audit", "init", "--dir", "gone"]));
    let mut child = std::process::Command::new(&bin)
        .current_dir(p)
        .args(["audit", "append", "--dir", "gone", "--group-ms", "5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut acks = std::io::BufReader::new(child.stdout.take().unwrap());
    input.write_all(lines(1, 0).as_bytes()).unwrap();
    let mut ack = String::new();
    acks.read_line(&mut ack).unwrap();
    assert_eq!(ack.trim(), "0");
    fs::remove_dir_all(p.join("gone")).unwrap();
    let _ = input.write_all(lines(5, 1).as_bytes());
    drop(input);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut acks, &mut rest).unwrap();
    assert_eq!(rest, "", "acknowledged after the directory was removed");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was removed while the log was open"), "{err}");
    assert!(err.contains("line "), "{err}");
}
