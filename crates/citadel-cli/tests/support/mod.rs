//! Shared by the integration tests: a child process that is killed when
//! dropped, so a failing test never leaves a server running, and the
//! readers of what servers announce when they start.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::process::Child;

/// A child process killed (and reaped) on drop, unless taken back with
/// `Child::from` to wait for it.
pub struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    /// Guards `child`.
    pub fn new(child: Child) -> Self {
        Self(Some(child))
    }
}

impl From<KillOnDrop> for Child {
    fn from(mut k: KillOnDrop) -> Child {
        k.0.take().expect("the child is present until dropped")
    }
}

impl Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("the child is present until dropped")
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child is present until dropped")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads the child's next line of standard output and returns what follows
/// `prefix` on it (a server announcing its address).
pub fn announced(child: &mut Child, prefix: &str) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().expect("stdout is piped"))
        .read_line(&mut line)
        .expect("the child writes its announcement");
    // With --json the announcement is a JSON line: {"listening": ADDR}.
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(line.trim())
        && let Some(serde_json::Value::String(a)) = m.get("listening")
    {
        return a.clone();
    }
    line.trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
        .to_string()
}

/// `citadel vault serve --dev` on a free loopback port: the guarded child,
/// its base URL and its root token.
pub fn dev_vault(bin: &str, dir: &std::path::Path) -> (KillOnDrop, String, String) {
    use std::io::BufRead;
    let mut child = KillOnDrop::new(
        std::process::Command::new(bin)
            .current_dir(dir)
            .args(["vault", "serve", "--dev", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("citadel starts"),
    );
    let (mut addr, mut token) = (String::new(), String::new());
    let out = child.stdout.take().expect("stdout is piped");
    for line in std::io::BufReader::new(out).lines() {
        let line = line.expect("the banner is text");
        if let Some(a) = line.strip_prefix("Api Address: ") {
            addr = a.to_string();
        }
        if let Some(t) = line.strip_prefix("Root Token: ") {
            token = t.to_string();
            break;
        }
    }
    (child, addr, token)
}
