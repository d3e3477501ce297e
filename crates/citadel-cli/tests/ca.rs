//! Issue 14, the CA at the command line: bad names and lifetimes are usage
//! errors (exit 2, one line, never a panic), the directory is private
//! whatever the umask, `ca list` shows each certificate's state and
//! `ca crl` re-signs the revocation list.

use assert_cmd::Command;
use std::fs;
use std::path::Path;

fn citadel(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("citadel").unwrap();
    c.current_dir(dir);
    c
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_ca_at_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let bin = assert_cmd::cargo::cargo_bin("citadel");
    let status = std::process::Command::new("sh")
        .current_dir(p)
        .args([
            "-c",
            &format!("umask 000; exec '{}' ca init --dir CA", bin.display()),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(p.join("CA")).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for (flag, value, needle) in [
        ("--dns", "bad dns!", "invalid DNS name"),
        ("--dns", "", "invalid DNS name"),
        ("--dns", "*", "invalid DNS name"),
        ("--days", "0", "--days 0"),
        ("--days", "3000000", "--days 3000000"),
    ] {
        let out = citadel(p)
            .args([
                "ca",
                "issue",
                "--ca",
                "CA",
                "--name",
                "web",
                "--ip",
                "127.0.0.1",
            ])
            .args([flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
    assert!(!p.join("CA/web.crt").exists());
    citadel(p)
        .args(["ca", "issue", "--ca", "CA", "--name", "alice", "--client"])
        .assert()
        .success();
    citadel(p)
        .args(["ca", "issue", "--ca", "CA", "--name", "alice", "--client"])
        .assert()
        .success();
    citadel(p)
        .args(["ca", "issue", "--ca", "CA", "--name", "bob", "--client"])
        .assert()
        .success();
    citadel(p)
        .args(["ca", "revoke", "--ca", "CA", "--name", "bob"])
        .assert()
        .success();
    let list = json(
        &citadel(p)
            .args(["ca", "list", "--ca", "CA", "--json"])
            .output()
            .unwrap(),
    );
    let states: Vec<(String, String)> = list["issued"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.split('#').next().unwrap().to_string(),
                v["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("alice", "valid"),
        ("alice", "superseded"),
        ("bob", "revoked"),
    ] {
        assert!(
            states.contains(&(want.0.into(), want.1.into())),
            "{states:?}"
        );
    }
    let text = citadel(p)
        .args(["ca", "list", "--ca", "CA"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("superseded") && text.contains("revoked"),
        "{text}"
    );
    let a = json(
        &citadel(p)
            .args(["ca", "crl", "--ca", "CA", "--json"])
            .output()
            .unwrap(),
    );
    let b = json(
        &citadel(p)
            .args(["ca", "crl", "--ca", "CA", "--days", "7", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        b["number"].as_u64().unwrap(),
        a["number"].as_u64().unwrap() + 1
    );
    let left = b["next_update"].as_i64().unwrap()
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
    assert!((6 * 86_400..=7 * 86_400).contains(&left), "{left}");
    let out = citadel(p)
        .args(["ca", "crl", "--ca", "CA", "--days", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
