//! The README's walkthroughs, run as written: every `sh` block that follows
//! a `<!-- walkthrough: runs in CI -->` line is run by bash, line by line
//! (`set -e`), in an empty directory with this build's `citadel` first on
//! the PATH. A README step that stops working fails here.
//!
//! The harness does what the reader of a block would, and nothing else:
//! - a line whose comment ends `: exit N` must exit with N (any other line
//!   with 0);
//! - a line ending with `&` starts a server in the background; the first
//!   `citadel` line after it is tried again, for up to 10 s, while it exits
//!   2 (the server is not listening yet), as a reader waits for the server
//!   to start; the servers are stopped when the block ends;
//! - a line whose comment says `paste unseal key K` or `paste the root
//!   token` reads that value, from what the block's `vault init` printed,
//!   on standard input (every other line's standard input is empty).

use std::path::Path;

/// The marked blocks of the README, in order.
fn walkthroughs(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = readme;
    while let Some(at) = rest.find("<!-- walkthrough: runs in CI -->") {
        rest = &rest[at..];
        let start = rest.find("```sh\n").expect("a marked block") + 6;
        let end = start + rest[start..].find("```").expect("a closed block");
        blocks.push(rest[start..end].to_string());
        rest = &rest[end..];
    }
    blocks
}

#[test]
fn the_readme_walkthroughs_run_as_written() {
    let readme = include_str!("../../../README.md");
    let blocks = walkthroughs(readme);
    assert_eq!(
        blocks.len(),
        2,
        "the README marks two walkthroughs: the first steps and the vault"
    );
    let bin = assert_cmd::cargo::cargo_bin("citadel");
    let bin_dir = bin.parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (i, block) in blocks.iter().enumerate() {
        let d = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("bash")
            .current_dir(d.path())
            .env("PATH", &path)
            .env("HOME", d.path())
            .args(["-euo", "pipefail", "-c", &script(block)])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README walkthrough {i} failed:\n{block}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        check_ran(d.path(), i, &String::from_utf8_lossy(&out.stdout));
    }
}

/// Bash run before a block: servers started in the background stop with
/// it; pasted values are kept in `$HOME/.paste`.
const PRELUDE: &str = r#"
trap 'rc=$?; kill $(jobs -p) 2>/dev/null || true; wait || true; exit $rc' EXIT
PASTE="$HOME/.paste"; mkdir -p "$PASTE"
__keys() {
  sed -n 's/^Unseal Key \([0-9]*\): \(.*\)$/\1 \2/p' "$PASTE/init" |
    while read -r k v; do printf '%s\n' "$v" > "$PASTE/key$k"; done
  sed -n 's/^Initial Root Token: //p' "$PASTE/init" > "$PASTE/root"
}
__check() {
  [ "$2" -eq "$3" ] || { echo "README walkthrough line $1 exited $2, expected $3" >&2; exit 1; }
}
"#;

/// A line's command and its comment (after two spaces and `#`, as the
/// README aligns them).
fn split_comment(line: &str) -> (&str, &str) {
    match line.find("  # ") {
        Some(at) => (line[..at].trim_end(), line[at + 4..].trim()),
        None => (line.trim_end(), ""),
    }
}

/// A block as the bash script the harness runs (see the module doc).
fn script(block: &str) -> String {
    let mut out = String::from(PRELUDE);
    let mut after_background = false;
    for (n, line) in block.lines().enumerate() {
        let n = n + 1;
        let (cmd, comment) = split_comment(line);
        if cmd.trim_start().starts_with('#') || cmd.trim().is_empty() {
            continue;
        }
        if cmd.ends_with('&') {
            out.push_str(cmd);
            out.push('\n');
            after_background = true;
            continue;
        }
        let mut cmd = cmd.to_string();
        let expect: u8 = comment
            .rsplit_once(": exit ")
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0);
        if let Some(k) = comment
            .split_once("paste unseal key ")
            .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        {
            cmd = format!("{cmd} < \"$PASTE/key{k}\"");
        } else if comment.contains("paste the root token") {
            cmd.push_str(" < \"$PASTE/root\"");
        }
        let keys = cmd.contains("vault init");
        if keys {
            cmd = format!("{cmd} | tee \"$PASTE/init\"");
        }
        let retry = after_background && cmd.starts_with("citadel ");
        if retry {
            after_background = false;
            out.push_str(&format!(
                "for __try in $(seq 100); do __rc=0; {{ {cmd}\n}} || __rc=$?; \
                 [ \"$__rc\" -ne 2 ] && break; sleep 0.1; done\n"
            ));
        } else {
            out.push_str(&format!("__rc=0; {{ {cmd}\n}} || __rc=$?\n"));
        }
        out.push_str(&format!("__check {n} \"$__rc\" {expect}\n"));
        if keys {
            out.push_str("__keys\n");
        }
    }
    out
}

/// What the walkthroughs leave behind, so a block that silently did
/// nothing cannot pass.
fn check_ran(dir: &Path, i: usize, stdout: &str) {
    if i == 0 {
        for f in [
            "alice.key",
            "model.sig",
            "secret.tar",
            "published.cp",
            "CA/crl.pem",
        ] {
            assert!(dir.join(f).exists(), "walkthrough 0 left no {f}");
        }
    }
    if i == 1 {
        // The vault: unsealed with pasted keys, a secret read back by the
        // CLI and by curl, a signature verified, a card number decrypted.
        assert!(
            dir.join("vault.db").exists(),
            "walkthrough 1 left no vault.db"
        );
        for want in ["s3cr3t", "\"password\": \"s3cr3t\"", "4111 1111 1111 1111"] {
            assert!(
                stdout.contains(want),
                "walkthrough 1 printed no {want:?}:\n{stdout}"
            );
        }
        let sig = std::fs::read_to_string(dir.join("notes.sig")).unwrap();
        assert!(sig.starts_with("vault:v1:"), "{sig}");
    }
}
