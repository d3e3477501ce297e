//! `citadel vault serve` as a user starts it.

use std::io::{BufRead, BufReader, Read, Write};
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_citadel"))
        .args(["vault", "serve", "--dev", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = String::new();
    let mut token = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("Api Address: http://") {
            addr = a.to_string();
        }
        if let Some(t) = line.strip_prefix("Root Token: ") {
            token = t.to_string();
            break;
        }
    }
    assert!(token.starts_with("hvs.") && token.len() > 20, "{token}");
    let health = get(&addr, "/v1/sys/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"sealed\":false"));
    let sealed = get(&addr, "/v1/secret/data/x");
    assert!(sealed.starts_with("HTTP/1.1 404"), "{sealed}");
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
