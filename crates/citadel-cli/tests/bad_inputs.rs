//! The error corpus (issue 15): every verb of `tests/data/bad-inputs/
//! cases.txt` run over every input in that directory (truncated and
//! damaged keys, a public key as a private one, binary as PEM, a
//! directory, an empty file, a missing path), each ending with the exit
//! code the table says, one line on stderr, and no Rust Debug text in it.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn citadel(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("citadel")
        .unwrap()
        .current_dir(dir)
        .args(args)
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap()
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad-inputs")
}

/// The good inputs the table's other arguments name.
fn setup(dir: &Path) {
    for args in [
        &["key", "gen", "--alg", "ml-dsa-44", "-o", "sig", "-q"][..],
        &["key", "gen", "--alg", "ml-kem-768", "-o", "kem", "-q"],
        &["key", "gen", "--alg", "mlkem768x25519", "-o", "id", "-q"],
        &["sign", "-k", "sig.key", "msg.txt", "-q"],
        &["encrypt", "-R", "id.pub", "-o", "msg.age", "msg.txt", "-q"],
        &["kem", "encap", "--pub", "kem.pub", "-o", "ct.bin", "-q"],
        &["audit", "init", "--dir", "log", "-q"],
        &["ca", "init", "--ca", "CA", "-q"],
        &[
            "ca", "issue", "--ca", "CA", "--name", "alice", "--client", "-q",
        ],
    ] {
        if args[0] == "sign" {
            std::fs::write(dir.join("msg.txt"), "hello\n").unwrap();
            std::fs::write(dir.join("wrong.txt"), "not the passphrase\n").unwrap();
        }
        let out = citadel(dir, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
}

/// What in an error line betrays Rust's Debug formatting or a cause said
/// twice, if anything.
fn debug_text(line: &str) -> Option<String> {
    if line.contains('{') || line.contains("::") {
        return Some("braces or a Rust path".into());
    }
    if line.matches("os error").count() > 1 {
        return Some("the OS error twice".into());
    }
    let camel = line.split(|c: char| !c.is_ascii_alphanumeric()).find(|w| {
        let mut cs = w.chars();
        cs.next().is_some_and(|c| c.is_ascii_uppercase())
            && w.chars().any(|c| c.is_ascii_lowercase())
            && w.chars().skip(1).any(|c| c.is_ascii_uppercase())
    });
    if let Some(w) = camel {
        return Some(format!("an enum-style name ({w})"));
    }
    let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
    for (i, a) in parts.iter().enumerate() {
        if a.len() > 10 && parts[i + 1..].contains(a) {
            return Some(format!("a cause said twice ({a})"));
        }
    }
    None
}

#[test]
fn every_verb_refuses_every_bad_input_in_one_clear_line() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path());
    let table = std::fs::read_to_string(corpus().join("cases.txt")).unwrap();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != "cases.txt"))
        .collect();
    inputs.sort();
    inputs.push(corpus().join("does-not-exist"));
    assert!(inputs.len() >= 10, "the corpus is there");
    let mut problems = Vec::new();
    let mut runs = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        let exit: i32 = words.remove(0).parse().expect("EXIT first");
        // `CODE:FILE` words at the end: that input is expected to end so
        // (0: it is a good input for this verb).
        let overrides: Vec<(i32, &str)> = words
            .iter()
            .filter_map(|w| {
                let (code, file) = w.split_once(':')?;
                Some((code.parse().ok()?, file))
            })
            .collect();
        words.retain(|w| {
            w.split_once(':')
                .is_none_or(|(c, _)| c.parse::<i32>().is_err())
        });
        for input in &inputs {
            let name = input.file_name().unwrap().to_str().unwrap();
            let want = overrides
                .iter()
                .find(|(_, f)| *f == name)
                .map_or(exit, |(c, _)| *c);
            let path = input.to_str().unwrap();
            let args: Vec<&str> = words
                .iter()
                .map(|w| if *w == "{bad}" { path } else { w })
                .collect();
            let out = citadel(d.path(), &args);
            runs += 1;
            let code = out.status.code().unwrap_or(-1);
            let err = String::from_utf8_lossy(&out.stderr);
            let what = format!("{} over {name}", words.join(" "));
            if code != want {
                problems.push(format!("{what}: exit {code}, not {want}: {err}"));
                continue;
            }
            if want == 0 {
                continue;
            }
            let lines: Vec<&str> = err.lines().collect();
            if lines.len() != 1 || !lines[0].starts_with("citadel: ") {
                problems.push(format!("{what}: not one line: {err:?}"));
            } else if let Some(why) = debug_text(lines[0]) {
                problems.push(format!("{what}: {why}: {}", lines[0]));
            }
        }
    }
    assert!(runs >= 100, "{runs} runs");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_debug_text_check_can_fail() {
    for bad in [
        "citadel: x: base64 decode error: InvalidCharacter(33)",
        "citadel: keys may not be consistent: KeyMismatch",
        "citadel: f: No such file or directory (os error 2): No such file or directory (os error 2)",
        "citadel: cannot decrypt the private key: cannot decrypt the private key",
        "citadel: Foo { bar: 1 }",
    ] {
        assert!(debug_text(bad).is_some(), "{bad}");
    }
    assert!(debug_text("citadel: key.pem: no private key found in it (PKCS#8 PEM)").is_none());
}
