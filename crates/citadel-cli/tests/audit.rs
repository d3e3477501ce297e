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
