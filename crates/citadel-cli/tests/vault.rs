//! `citadel vault serve` as a user starts it.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn dev_server_prints_its_root_token_and_is_unsealed() {
    let d = tempfile::tempdir().unwrap();
    let (mut child, addr, token) = support::dev_vault(env!("CARGO_BIN_EXE_citadel"), d.path());
    let addr = addr.strip_prefix("http://").unwrap().to_string();
    assert!(token.starts_with("hvs.") && token.len() > 20, "{token}");
    let health = get(&addr, "/v1/sys/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"sealed\":false"));
    // secret/ is mounted (KV v2), and nothing is readable without a token.
    let denied = get(&addr, "/v1/secret/data/x");
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn plaintext_beyond_loopback_and_a_bad_config_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_citadel"))
        .args(["vault", "serve", "--dev", "--listen", "0.0.0.0:8200"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only on loopback"));
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("c.toml"),
        "listen = \"127.0.0.1:0\"\nstorage_path = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_citadel"))
        .current_dir(d.path())
        .args(["vault", "serve", "--config", "c.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("storage_path"),
        "unknown keys are named"
    );
    let _ = std::io::stdout().flush();
}

/// One HTTP/1.1 request on its own connection: (status, body).
fn req(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-Vault-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn start(dir: &std::path::Path) -> (support::KillOnDrop, String) {
    std::fs::write(dir.join("c.toml"), "[storage]\npath = \"vault.db\"\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_citadel"))
        .current_dir(dir)
        .args([
            "vault",
            "serve",
            "--config",
            "c.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = support::announced(&mut child, "Api Address: http://");
    (support::KillOnDrop::new(child), addr)
}

#[test]
fn kill_9_during_kv_writes_loses_no_acknowledged_write() {
    let d = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(d.path());
    let (s, init) = req(
        &addr,
        "PUT",
        "/v1/sys/init",
        "",
        r#"{"secret_shares":3,"secret_threshold":2}"#,
    );
    assert_eq!(s, 200, "{init}");
    let init: serde_json::Value = serde_json::from_str(&init).unwrap();
    let token = init["root_token"].as_str().unwrap().to_string();
    let keys: Vec<String> = serde_json::from_value(init["keys"].clone()).unwrap();
    let unseal = |addr: &str| {
        for k in &keys[..2] {
            req(
                addr,
                "PUT",
                "/v1/sys/unseal",
                "",
                &format!("{{\"key\":\"{k}\"}}"),
            );
        }
    };
    unseal(&addr);
    assert_eq!(
        req(
            &addr,
            "POST",
            "/v1/sys/mounts/secret",
            &token,
            r#"{"type":"kv-v2"}"#
        )
        .0,
        204
    );
    // Writers on two threads; every 200 is an acknowledged write.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (addr, token, acked, stop) = (addr.clone(), token.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("w{w}/k{i}");
                    let Ok(mut s) = std::net::TcpStream::connect(&addr) else { break };
                    let body = format!("{{\"data\":{{\"v\":\"{key}\"}}}}");
                    let sent = write!(
                        s,
                        "POST /v1/secret/data/{key} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let mut out = String::new();
                    if sent.is_err() || s.read_to_string(&mut out).is_err() {
                        break;
                    }
                    if out.starts_with("HTTP/1.1 200") {
                        acked.lock().unwrap().push(key);
                    } else {
                        break;
                    }
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 200 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL mid-stream
    child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let (mut child, addr) = start(d.path());
    let (_, status) = req(&addr, "GET", "/v1/sys/seal-status", "", "");
    assert!(status.contains("\"sealed\":true"), "{status}");
    unseal(&addr);
    for key in &acked {
        let (s, body) = req(&addr, "GET", &format!("/v1/secret/data/{key}"), &token, "");
        assert_eq!(s, 200, "{key} was acknowledged but is missing: {body}");
        assert!(body.contains(&format!("\"v\":\"{key}\"")));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
