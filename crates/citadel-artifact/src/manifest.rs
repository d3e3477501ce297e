//! The manifest of a directory tree and its in-toto statement form.

use crate::{Error, Result};
use citadel_crypto::hash::{HashAlgorithm, Hasher};
use rustix::fs::{FileType, Mode, OFlags};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// The in-toto predicate type of a Citadel manifest.
pub const PREDICATE_TYPE: &str = "https://citadel.dev/manifest/v2";
const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// How deep a signed tree may nest directories.
pub const MAX_DEPTH: usize = 256;

/// What a directory signature covers of one regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// SHA-256 of its bytes.
    pub sha256: [u8; 32],
    /// Whether any execute bit (`0o111`) is set.
    pub executable: bool,
}

/// Every regular file under a root, by relative path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Relative `/`-separated path → what is covered of the file.
    pub files: BTreeMap<String, FileEntry>,
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
    /// In both with the same contents, but executable in one and not in the
    /// other.
    pub mode_changed: Vec<String>,
    /// In the tree: symbolic links and special files, which a signature
    /// never covers.
    pub not_regular: Vec<String>,
}

impl Diff {
    /// Whether the tree matches exactly.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.modified.is_empty()
            && self.mode_changed.is_empty()
            && self.not_regular.is_empty()
    }
}

fn io_err(path: &str, source: impl Into<std::io::Error>) -> Error {
    Error::Io {
        path: crate::shown(path.as_bytes()),
        source: source.into(),
    }
}

fn not_regular(rel: &str) -> Error {
    Error::NotRegular(crate::shown(rel.as_bytes()))
}

/// SHA-256 of everything `r` yields, streamed.
fn sha256_of(r: &mut impl Read, path: &str) -> Result<[u8; 32]> {
    let mut h = Hasher::new(HashAlgorithm::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match r.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(path, e)),
        };
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finish());
    Ok(out)
}

/// Opens `name` in `dir` without following a symbolic link and without
/// blocking on a FIFO or device: what is opened is then checked by its
/// handle's type, so what is hashed is what was checked.
fn open_entry(dir: impl AsFd, name: &OsStr, extra: OFlags) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | extra,
        Mode::empty(),
    )?)
}

/// A directory still to be read: its parent's handle and its name there
/// (`None` for the root, already open), its path in the manifest and depth.
struct Pending {
    parent: Arc<OwnedFd>,
    name: OsString,
    rel: String,
    depth: usize,
}

fn is_errno(e: &std::io::Error, codes: &[rustix::io::Errno]) -> bool {
    codes
        .iter()
        .any(|c| e.raw_os_error() == Some(c.raw_os_error()))
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

impl Manifest {
    /// Walks `root` and hashes every regular file. Symbolic links and special
    /// files inside the tree are errors, including ones swapped in while the
    /// walk runs: every entry is opened relative to its directory's handle
    /// with `O_NOFOLLOW | O_NONBLOCK` and judged by the opened handle's type,
    /// so what is hashed is what was checked. The walk holds at most one
    /// handle per level of the tree, and refuses trees deeper than
    /// [`MAX_DEPTH`].
    pub fn from_dir(root: &Path) -> Result<Self> {
        let (m, others) = Self::walk(root)?;
        match others.first() {
            Some(first) => Err(not_regular(first)),
            None => Ok(m),
        }
    }

    /// Walks `root` as [`Manifest::from_dir`] does and compares it with a
    /// signed manifest; symbolic links and special files are reported as
    /// differences ([`Diff::not_regular`]) rather than errors.
    pub fn diff_dir(root: &Path, signed: &Manifest) -> Result<Diff> {
        let (m, others) = Self::walk(root)?;
        let mut d = m.diff_against(signed);
        d.not_regular = others;
        Ok(d)
    }

    /// The regular files under `root`, and the paths of the entries that
    /// are not regular files or directories (symbolic links included).
    fn walk(root: &Path) -> Result<(Self, Vec<String>)> {
        let mut others = Vec::new();
        let shown = root.display().to_string();
        let root_fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(&shown, e))?;
        let mut m = Manifest::default();
        let mut todo: Vec<Pending> = Vec::new();
        let mut next = Some((Arc::new(root_fd), String::new(), 0));
        while let Some((dir, prefix, depth)) = next.take() {
            let here = if prefix.is_empty() { &shown } else { &prefix };
            let entries = rustix::fs::Dir::read_from(&*dir).map_err(|e| io_err(here, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io_err(here, e))?;
                let name = OsStr::from_bytes(entry.file_name().to_bytes());
                if name == "." || name == ".." {
                    continue;
                }
                let Some(utf8) = name.to_str() else {
                    let mut bytes = prefix.as_bytes().to_vec();
                    if !prefix.is_empty() {
                        bytes.push(b'/');
                    }
                    bytes.extend_from_slice(name.as_bytes());
                    return Err(Error::NonUtf8Path(crate::shown(&bytes)));
                };
                let rel = join(&prefix, utf8);
                let fd = match open_entry(&*dir, name, OFlags::empty()) {
                    Ok(fd) => fd,
                    // A symbolic link (ELOOP) or a socket (ENXIO).
                    Err(e) if is_errno(&e, &[rustix::io::Errno::LOOP, rustix::io::Errno::NXIO]) => {
                        others.push(rel);
                        continue;
                    }
                    Err(e) => return Err(io_err(&rel, e)),
                };
                let st = rustix::fs::fstat(&fd).map_err(|e| io_err(&rel, e))?;
                match FileType::from_raw_mode(st.st_mode) {
                    FileType::Directory => {
                        if depth >= MAX_DEPTH {
                            return Err(Error::TooDeep(crate::shown(rel.as_bytes())));
                        }
                        // Closed now and opened again (never following a
                        // link) when its turn comes, so that a wide tree
                        // does not hold a handle per directory.
                        drop(fd);
                        todo.push(Pending {
                            parent: dir.clone(),
                            name: name.to_os_string(),
                            rel,
                            depth: depth + 1,
                        });
                    }
                    FileType::RegularFile => {
                        let mut file = std::fs::File::from(fd);
                        let sha256 = sha256_of(&mut file, &rel)?;
                        let executable = st.st_mode & 0o111 != 0;
                        m.files.insert(rel, FileEntry { sha256, executable });
                    }
                    _ => others.push(rel),
                }
            }
            while let Some(p) = todo.pop() {
                match open_entry(&*p.parent, &p.name, OFlags::DIRECTORY) {
                    Ok(fd) => {
                        next = Some((Arc::new(fd), p.rel, p.depth));
                        break;
                    }
                    // Swapped for a link or a file since it was seen.
                    Err(e)
                        if is_errno(&e, &[rustix::io::Errno::LOOP, rustix::io::Errno::NOTDIR]) =>
                    {
                        others.push(p.rel);
                    }
                    Err(e) => return Err(io_err(&p.rel, e)),
                }
            }
        }
        others.sort();
        Ok((m, others))
    }

    /// Compares the tree (`self`) against a signed manifest (`signed`).
    pub fn diff_against(&self, signed: &Manifest) -> Diff {
        let mut d = Diff::default();
        for (p, f) in &self.files {
            match signed.files.get(p) {
                None => d.added.push(p.clone()),
                Some(s) if s.sha256 != f.sha256 => d.modified.push(p.clone()),
                Some(s) if s.executable != f.executable => d.mode_changed.push(p.clone()),
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
            .map(|(p, f)| {
                json!({"name": p, "digest": {"sha256": hex::encode(f.sha256)},
                       "annotations": {"executable": f.executable}})
            })
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

    /// Parses a statement produced by [`Manifest::to_statement`], returning
    /// the manifest and the signed root name (informational).
    pub fn from_statement(bytes: &[u8]) -> Result<(Self, String)> {
        let bad = |why: &str| Error::Malformed(why.to_string());
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| bad(&format!("statement is not JSON: {e}")))?;
        if v["_type"] != STATEMENT_TYPE {
            return Err(bad("not an in-toto Statement v1"));
        }
        if v["predicateType"] != PREDICATE_TYPE {
            return Err(bad(&format!(
                "predicate type {} is not {PREDICATE_TYPE} (a bundle from another tool, or from a Citadel release before file modes were covered: sign the tree again)",
                v["predicateType"]
            )));
        }
        let subjects = v["subject"]
            .as_array()
            .ok_or_else(|| bad("subject is not a list"))?;
        let root = v["predicate"]["root"]
            .as_str()
            .ok_or_else(|| bad("predicate.root is not a string"))?
            .to_string();
        if v["predicate"]["files"].as_u64() != Some(subjects.len() as u64) {
            return Err(bad("predicate.files does not count the subjects"));
        }
        let mut m = Manifest::default();
        for s in subjects {
            let name = s["name"]
                .as_str()
                .ok_or_else(|| bad("subject without a name"))?;
            if name.is_empty()
                || name.starts_with('/')
                || name
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                return Err(bad(&format!(
                    "unsafe path in manifest: {}",
                    crate::shown(name.as_bytes())
                )));
            }
            let hex_digest = s["digest"]["sha256"]
                .as_str()
                .ok_or_else(|| bad("subject without a sha256 digest"))?;
            if hex_digest.len() != 64 || hex_digest.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(bad("sha256 digest is not 64 lower-case hex digits"));
            }
            let sha256: [u8; 32] = hex::decode(hex_digest)
                .ok()
                .and_then(|d| d.try_into().ok())
                .ok_or_else(|| bad("sha256 digest is not 64 lower-case hex digits"))?;
            let executable = s["annotations"]["executable"]
                .as_bool()
                .ok_or_else(|| bad("subject without annotations.executable (true or false)"))?;
            let entry = FileEntry { sha256, executable };
            if m.files.insert(name.to_string(), entry).is_some() {
                return Err(bad(&format!(
                    "duplicate path in manifest: {}",
                    crate::shown(name.as_bytes())
                )));
            }
        }
        Ok((m, root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
        let (back, root) = Manifest::from_statement(&m.to_statement("model")).unwrap();
        assert_eq!((back, root.as_str()), (m.clone(), "model"));
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

    fn statement(name: &str, digest: &str, executable: &str, files: usize) -> String {
        format!(
            r#"{{"_type":"{STATEMENT_TYPE}","predicateType":"{PREDICATE_TYPE}","subject":[{{"name":"{name}","digest":{{"sha256":"{digest}"}},"annotations":{{"executable":{executable}}}}}],"predicate":{{"root":"r","files":{files}}}}}"#
        )
    }

    #[test]
    fn traversal_paths_and_malformed_subjects_in_a_statement_are_rejected() {
        let zero = "00".repeat(32);
        assert!(Manifest::from_statement(statement("ok", &zero, "false", 1).as_bytes()).is_ok());
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            let s = statement(bad, &zero, "false", 1);
            assert!(Manifest::from_statement(s.as_bytes()).is_err(), "{bad}");
        }
        // Issue 14, item 5: every field is checked.
        for s in [
            statement("ok", &zero, "false", 2),
            statement("ok", &zero, "\"yes\"", 1),
            statement("ok", &"AB".repeat(32), "false", 1),
            statement("ok", &"0".repeat(63), "false", 1),
            statement("ok", &zero, "false", 1).replace("/v2", "/v1"),
            statement("ok", &zero, "false", 1).replace(r#""root":"r""#, r#""root":7"#),
        ] {
            assert!(Manifest::from_statement(s.as_bytes()).is_err(), "{s}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_executable_bit_is_covered() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("run.sh");
        fs::write(&f, b"echo").unwrap();
        let before = Manifest::from_dir(dir.path()).unwrap();
        assert!(!before.files["run.sh"].executable);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o744)).unwrap();
        let after = Manifest::from_dir(dir.path()).unwrap();
        let d = after.diff_against(&before);
        assert_eq!(d.mode_changed, vec!["run.sh"]);
        assert!(d.modified.is_empty() && !d.is_empty());
        let (back, _) = Manifest::from_statement(&after.to_statement("x")).unwrap();
        assert!(back.files["run.sh"].executable);
    }

    #[cfg(unix)]
    #[test]
    fn fifos_sockets_and_linked_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("d/fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert!(
            matches!(Manifest::from_dir(dir.path()), Err(Error::NotRegular(n)) if n == "d/fifo")
        );
        fs::remove_file(dir.path().join("d/fifo")).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(dir.path().join("d/sock")).unwrap();
        assert!(
            matches!(Manifest::from_dir(dir.path()), Err(Error::NotRegular(n)) if n == "d/sock")
        );
        fs::remove_file(dir.path().join("d/sock")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("d/etc")).unwrap();
        assert!(
            matches!(Manifest::from_dir(dir.path()), Err(Error::NotRegular(n)) if n == "d/etc")
        );
    }

    #[cfg(unix)]
    #[test]
    fn names_in_errors_are_escaped_and_depth_is_bounded() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let evil = std::ffi::OsStr::from_bytes(b"a\r\x1b[2KOK\xff");
        fs::write(dir.path().join(evil), b"x").unwrap();
        let e = Manifest::from_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains(r#""a\u{d}\u{1b}[2KOK\xff""#), "{e}");
        assert!(!e.contains('\x1b'));
        fs::remove_file(dir.path().join(evil)).unwrap();
        let mut deep = dir.path().to_path_buf();
        for _ in 0..=MAX_DEPTH {
            deep.push("d");
        }
        fs::create_dir_all(&deep).unwrap();
        assert!(matches!(
            Manifest::from_dir(dir.path()),
            Err(Error::TooDeep(_))
        ));
    }
}
