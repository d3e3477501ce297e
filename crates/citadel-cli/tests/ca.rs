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
            &format!("umask 000; exec '{}' ca init --ca CA", bin.display()),
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
        .args([
            "ca", "issue", "--ca", "CA", "--name", "alice", "--client", "--force",
        ])
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
    // Numbers grow, and follow the clock (Unix microseconds), so a CA
    // restored from a backup still publishes above every list before.
    let (na, nb) = (a["number"].as_u64().unwrap(), b["number"].as_u64().unwrap());
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(
        na < nb && nb <= micros && micros - nb < 60_000_000,
        "{na} {nb} {micros}"
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

/// Helper-13's findings 1-3 and 7: verbs run at once never lose a
/// revocation or a record; a directory others may write is refused; a
/// damaged `ca.json` is an error, never a panic or a revocation left out;
/// addresses and names that stand for no host are refused.
#[test]
fn the_ca_holds_against_races_and_tampering() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let bin = assert_cmd::cargo::cargo_bin("citadel");
    citadel(p)
        .args(["ca", "init", "--ca", "CA"])
        .assert()
        .success();
    for round in 0..12 {
        let name = format!("v{round}");
        citadel(p)
            .args(["ca", "issue", "--ca", "CA", "--name", &name, "--client"])
            .assert()
            .success();
        let revoke = std::process::Command::new(&bin)
            .current_dir(p)
            .args(["ca", "revoke", "--ca", "CA", "--name", &name])
            .spawn()
            .unwrap();
        let crl = std::process::Command::new(&bin)
            .current_dir(p)
            .args(["ca", "crl", "--ca", "CA"])
            .spawn()
            .unwrap();
        let issue = std::process::Command::new(&bin)
            .current_dir(p)
            .args([
                "ca",
                "issue",
                "--ca",
                "CA",
                "--name",
                &format!("w{round}"),
                "--client",
            ])
            .spawn()
            .unwrap();
        for mut c in [revoke, crl, issue] {
            assert!(c.wait().unwrap().success());
        }
        let list = json(
            &citadel(p)
                .args(["ca", "list", "--ca", "CA", "--json"])
                .output()
                .unwrap(),
        );
        assert_eq!(list["issued"][&name]["state"], "revoked", "round {round}");
        assert!(
            list["issued"].get(format!("w{round}")).is_some(),
            "round {round}: a record lost"
        );
        // The published list names the revoked serial.
        let serial = list["issued"][&name]["serial"]
            .as_str()
            .unwrap()
            .to_string();
        let pem = fs::read(p.join("CA/crl.pem")).unwrap();
        let der = rustls_pemfile_der(&pem);
        let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
        assert!(
            crl.iter_revoked_certificates()
                .any(|r| hex::encode(r.raw_serial()) == serial),
            "round {round}: revoked, yet not in the published CRL"
        );
    }
    // Out-of-range values in ca.json: exit 2 with the field, never 101.
    let good = fs::read_to_string(p.join("CA/ca.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    for (field, value) in [
        ("crl_number", serde_json::json!(u64::MAX)),
        ("crl_days", serde_json::json!(u32::MAX)),
        ("crl_days", serde_json::json!(0)),
    ] {
        let mut bad = v.clone();
        bad[field] = value;
        fs::write(p.join("CA/ca.json"), bad.to_string()).unwrap();
        for verb in [
            vec!["crl"],
            vec!["revoke", "--name", "w0"],
            vec!["issue", "--name", "x", "--client"],
        ] {
            let out = citadel(p)
                .args(["ca"])
                .args(&verb[..1])
                .args(["--ca", "CA"])
                .args(&verb[1..])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{field} {verb:?}");
            assert!(String::from_utf8_lossy(&out.stderr).contains(field));
        }
    }
    let mut bad = v.clone();
    bad["issued"]["v0"]["revoked_at"] = serde_json::json!(1u64 << 62);
    fs::write(p.join("CA/ca.json"), bad.to_string()).unwrap();
    let out = citadel(p)
        .args(["ca", "crl", "--ca", "CA"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    fs::write(p.join("CA/ca.json"), &good).unwrap();
    // A directory others may write.
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir(p.join("open")).unwrap();
    fs::set_permissions(p.join("open"), fs::Permissions::from_mode(0o777)).unwrap();
    let out = citadel(p)
        .args(["ca", "init", "--ca", "open"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 700"));
    // The real directory is judged however it is named: through a link,
    // with a trailing slash or a `.` (a link was once refused by name but
    // let through as `CAlink/`).
    std::os::unix::fs::symlink("CA", p.join("CAlink")).unwrap();
    fs::set_permissions(p.join("CA"), fs::Permissions::from_mode(0o777)).unwrap();
    for spelling in [
        "CA",
        "CA/",
        "CA/.",
        "CAlink",
        "CAlink/",
        "CAlink/.",
        "./CAlink//",
    ] {
        let out = citadel(p)
            .args(["ca", "crl", "--ca", spelling])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{spelling}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 700"));
    }
    fs::set_permissions(p.join("CA"), fs::Permissions::from_mode(0o700)).unwrap();
    for spelling in ["CAlink", "CAlink/."] {
        citadel(p)
            .args(["ca", "list", "--ca", spelling])
            .assert()
            .success();
    }
    // The lock is never followed out of the directory.
    fs::remove_file(p.join("CA/lock")).unwrap();
    fs::write(p.join("victim"), "keep").unwrap();
    std::os::unix::fs::symlink("../victim", p.join("CA/lock")).unwrap();
    let out = citadel(p)
        .args(["ca", "crl", "--ca", "CA"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fs::read_to_string(p.join("victim")).unwrap(), "keep");
    fs::remove_file(p.join("CA/lock")).unwrap();
    // Nor does a FIFO in its place hang a verb.
    assert!(
        std::process::Command::new("mkfifo")
            .arg(p.join("CA/lock"))
            .status()
            .unwrap()
            .success()
    );
    let mut c = std::process::Command::new(&bin)
        .current_dir(p)
        .args(["ca", "crl", "--ca", "CA"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > std::time::Duration::from_secs(10) {
            let _ = c.kill();
            panic!("ca crl hangs on a FIFO at CA/lock");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2));
    fs::remove_file(p.join("CA/lock")).unwrap();
    // A directory that existed with group and other bits becomes the
    // owner's alone at init.
    fs::create_dir(p.join("wide")).unwrap();
    fs::set_permissions(p.join("wide"), fs::Permissions::from_mode(0o755)).unwrap();
    citadel(p)
        .args(["ca", "init", "--ca", "wide", "-q"])
        .assert()
        .success();
    assert_eq!(
        fs::metadata(p.join("wide")).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // A CA in a directory others may rename things in is refused.
    fs::create_dir(p.join("open/inner")).unwrap();
    let out = citadel(p)
        .args(["ca", "init", "--ca", "open/inner"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("others may change"));
    for (flag, value) in [
        ("--ip", "0.0.0.0"),
        ("--ip", "255.255.255.255"),
        ("--ip", "::"),
        ("--dns", "0x7f000001"),
        ("--dns", "a.0x1"),
    ] {
        let out = citadel(p)
            .args(["ca", "issue", "--ca", "CA", "--name", "h", flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
    }
    let out = citadel(p)
        .args(["ca", "issue", "--ca", "CA", "--name", "CA", "--client"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--name CA");
}

/// The DER of the first PEM block.
fn rustls_pemfile_der(pem: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(pem);
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}
