//! The manifest of a directory tree and its in-toto statement form.

use crate::{Error, Result};
use citadel_crypto::hash::{HashAlgorithm, Hasher};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;

/// The in-toto predicate type of a Citadel manifest.
pub const PREDICATE_TYPE: &str = "https://citadel.dev/manifest/v1";
const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// Every regular file under a root, by relative path, with its SHA-256.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Relative `/`-separated path → SHA-256.
    pub files: BTreeMap<String, [u8; 32]>,
}

/// How a tree differs from a manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// In the tree, not in the manifest.
    pub added: Vec<String>,
    /// In the manifest, not in the tree.
    pub removed: Vec<String>,
    /// In both, with different contents.
    pub modified: Vec<String>,
}

impl Diff {
    /// Whether the tree matches exactly.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut h = Hasher::new(HashAlgorithm::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finish());
    Ok(out)
}

impl Manifest {
    /// Walks `root` and hashes every regular file. Symbolic links and special
    /// files are errors.
    pub fn from_dir(root: &Path) -> Result<Self> {
        let mut m = Manifest::default();
        let mut stack = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let mut entries = fs::read_dir(&dir)
                .map_err(|e| io_err(&dir, e))?
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|e| io_err(&dir, e))?;
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let path = e.path();
                let name = e
                    .file_name()
                    .into_string()
                    .map_err(|_| Error::NonUtf8Path(path.display().to_string()))?;
                let rel = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let ft = fs::symlink_metadata(&path)
                    .map_err(|e| io_err(&path, e))?
                    .file_type();
                if ft.is_dir() {
                    stack.push((path, rel));
                } else if ft.is_file() {
                    let digest = sha256_file(&path)?;
                    m.files.insert(rel, digest);
                } else {
                    return Err(Error::NotRegular(path.display().to_string()));
                }
            }
        }
        Ok(m)
    }

    /// Compares the tree (`self`) against a signed manifest (`signed`).
    pub fn diff_against(&self, signed: &Manifest) -> Diff {
        let mut d = Diff::default();
        for (p, h) in &self.files {
            match signed.files.get(p) {
                None => d.added.push(p.clone()),
                Some(s) if s != h => d.modified.push(p.clone()),
                Some(_) => {}
            }
        }
        d.removed = signed
            .files
            .keys()
            .filter(|p| !self.files.contains_key(*p))
            .cloned()
            .collect();
        d
    }

    /// The in-toto Statement v1 (JSON bytes) listing the files as subjects.
    pub fn to_statement(&self, root_name: &str) -> Vec<u8> {
        let subjects: Vec<Value> = self
            .files
            .iter()
            .map(|(p, h)| json!({"name": p, "digest": {"sha256": hex::encode(h)}}))
            .collect();
        let statement = json!({
            "_type": STATEMENT_TYPE,
            "subject": subjects,
            "predicateType": PREDICATE_TYPE,
            "predicate": {"root": root_name, "files": self.files.len()},
        });
        // serde_json's Value map is ordered, so the output is deterministic.
        serde_json::to_vec(&statement).unwrap_or_default()
    }

    /// Parses a statement produced by [`Manifest::to_statement`].
    pub fn from_statement(bytes: &[u8]) -> Result<Self> {
        let bad = |why: &str| Error::Malformed(why.to_string());
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| bad(&format!("statement is not JSON: {e}")))?;
        if v["_type"] != STATEMENT_TYPE || v["predicateType"] != PREDICATE_TYPE {
            return Err(bad("not a Citadel manifest statement"));
        }
        let mut m = Manifest::default();
        for s in v["subject"]
            .as_array()
            .ok_or_else(|| bad("subject is not a list"))?
        {
            let name = s["name"]
                .as_str()
                .ok_or_else(|| bad("subject without a name"))?;
            if name.is_empty()
                || name.starts_with('/')
                || name
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                return Err(bad(&format!("unsafe path in manifest: {name:?}")));
            }
            let hex_digest = s["digest"]["sha256"]
                .as_str()
                .ok_or_else(|| bad("subject without a sha256 digest"))?;
            let digest: [u8; 32] = hex::decode(hex_digest)
                .ok()
                .and_then(|d| d.try_into().ok())
                .ok_or_else(|| bad("sha256 digest is not 64 hex digits"))?;
            if m.files.insert(name.to_string(), digest).is_some() {
                return Err(bad(&format!("duplicate path in manifest: {name}")));
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_diff_and_statement_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/w.bin"), b"weights").unwrap();
        fs::write(dir.path().join("config.json"), b"{}").unwrap();
        let m = Manifest::from_dir(dir.path()).unwrap();
        assert_eq!(
            m.files.keys().cloned().collect::<Vec<_>>(),
            vec!["a/b/w.bin", "config.json"]
        );
        let back = Manifest::from_statement(&m.to_statement("model")).unwrap();
        assert_eq!(back, m);
        fs::write(dir.path().join("config.json"), b"{\"x\":1}").unwrap();
        fs::write(dir.path().join("new.txt"), b"n").unwrap();
        fs::remove_file(dir.path().join("a/b/w.bin")).unwrap();
        let d = Manifest::from_dir(dir.path()).unwrap().diff_against(&m);
        assert_eq!(d.added, vec!["new.txt"]);
        assert_eq!(d.removed, vec!["a/b/w.bin"]);
        assert_eq!(d.modified, vec!["config.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        assert!(matches!(
            Manifest::from_dir(dir.path()),
            Err(Error::NotRegular(_))
        ));
    }

    #[test]
    fn traversal_paths_in_a_statement_are_rejected() {
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b"] {
            let s = format!(
                r#"{{"_type":"{STATEMENT_TYPE}","predicateType":"{PREDICATE_TYPE}","subject":[{{"name":"{bad}","digest":{{"sha256":"{}"}}}}]}}"#,
                "00".repeat(32)
            );
            assert!(Manifest::from_statement(s.as_bytes()).is_err(), "{bad}");
        }
    }
}
