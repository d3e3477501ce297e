//! The crate's layering, as ARCHITECTURE.md states it, checked on the
//! source: only `http.rs` (the server) and `client.rs` (the client) know
//! HTTP or an async runtime, and modules use
//! only modules of their own layer or below, with no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module's layer; a module may use modules of a lower or equal
/// layer (never a higher one), and the uses must form no cycle.
const LAYERS: &[(&str, u8)] = &[
    // Leaves: formats and helpers that use nothing but each other.
    ("error", 0),
    ("ids", 0),
    ("fields", 0),
    ("path", 0),
    ("request", 0),
    ("metrics", 0),
    ("integrity", 0),
    ("shamir", 0),
    ("storage", 0),
    ("barrier", 1),
    ("view", 2),
    ("policy", 3),
    ("token_store", 3),
    ("mounts", 3),
    ("audit", 3),
    ("backend", 4),
    ("core", 5),
    ("http", 6),
    // The client: HTTP, and the server's body limit.
    ("client", 7),
];

/// The source without comments (doc comments mention other modules).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn module_of(file: &Path, src: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn only_http_knows_http_and_the_runtime_and_layers_point_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                files.push(p);
            }
        }
    }
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f, &src);
        if m == "lib" {
            continue;
        }
        assert!(
            layer.contains_key(m.as_str()),
            "{m} has no layer in LAYERS (and ARCHITECTURE.md)"
        );
        let text = code(&std::fs::read_to_string(f).unwrap());
        // 1. HTTP and the async runtime live in http.rs and client.rs alone.
        if m != "http" && m != "client" {
            for word in [
                "tokio",
                "hyper",
                "hyper_util",
                "tokio_rustls",
                "axum",
                "rustls",
            ] {
                let found = text.match_indices(word).any(|(i, _)| {
                    let before = text[..i].chars().next_back();
                    let after = text[i + word.len()..].chars().next();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_') && after == Some(':')
                });
                assert!(
                    !found,
                    "{} uses {word}: only http.rs and client.rs may",
                    f.display()
                );
            }
        }
        // 2. Uses of other modules.
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + 7..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if name.is_empty() || name == m {
                continue;
            }
            assert!(
                layer.contains_key(name.as_str()),
                "{} uses crate::{name}, which has no layer",
                f.display()
            );
            assert!(
                layer[name.as_str()] <= layer[m.as_str()],
                "{} (layer {}) uses {name} (layer {}): a layer may only use its own or lower ones",
                f.display(),
                layer[m.as_str()],
                layer[name.as_str()]
            );
            edges.entry(m.clone()).or_default().insert(name);
        }
    }
    // 3. No cycle (depth-first search with colours).
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) {
        match state.get(n) {
            Some(2) => return,
            Some(1) => panic!("import cycle: {} -> {n}", path.join(" -> ")),
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            visit(m, edges, state, path);
        }
        path.pop();
        state.insert(n.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        visit(n, &edges, &mut state, &mut Vec::new());
    }
    assert!(edges["core"].contains("backend") && edges["http"].contains("core"));
}
