//! ARCHITECTURE.md stays a true map where a test can tell: every source file
//! that starts a thread or a task is in its table of threaded paths, each
//! with the test that shows it stops on its first error.

use std::fs;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_file_that_starts_threads_is_in_the_architecture_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let map = fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut files = Vec::new();
    for krate in fs::read_dir(root.join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            sources(&src, &mut files);
        }
    }
    let starts = [
        "thread::spawn",
        "thread::scope",
        "thread::Builder",
        "spawn_blocking",
        "tokio::spawn",
    ];
    let mut missing = Vec::new();
    let mut found = 0;
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        // Unit tests (at the end of a file) may start what they like.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        if !starts.iter().any(|s| code.contains(s)) {
            continue;
        }
        found += 1;
        let rel = f.strip_prefix(root.join("crates")).unwrap();
        let (krate, file) = (
            rel.iter().next().unwrap().to_string_lossy(),
            f.file_name().unwrap().to_string_lossy(),
        );
        let named = map.contains(&format!("`{}`", rel.display()))
            || map.lines().any(|l| {
                l.starts_with('|') && l.contains(krate.as_ref()) && l.contains(&format!("`{file}`"))
            });
        if !named {
            missing.push(rel.display().to_string());
        }
    }
    assert!(
        found >= 8,
        "only {found} files start threads: is the scan wrong?"
    );
    assert!(
        missing.is_empty(),
        "these start threads or tasks but are not in ARCHITECTURE.md's table of threaded paths: {missing:?}"
    );
}
