//! The README's walkthroughs, run as written: every `sh` block that follows
//! a `<!-- walkthrough: runs in CI -->` line is run by bash, line by line
//! (`set -e`), in an empty directory with this build's `citadel` first on
//! the PATH. A README step that stops working fails here.

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
    assert!(!blocks.is_empty(), "no walkthrough is marked in the README");
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
            .args(["-euo", "pipefail", "-c", block])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README walkthrough {i} failed:\n{block}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        check_ran(d.path(), i);
    }
}

/// What the first walkthrough leaves behind, so a block that silently did
/// nothing cannot pass.
fn check_ran(dir: &Path, i: usize) {
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
}
