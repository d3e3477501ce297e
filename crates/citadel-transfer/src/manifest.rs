//! The signed manifest: every file with its size, mode, mtime, per-chunk
//! BLAKE3 hashes and root; every directory with its mode and mtime.

use crate::{CHUNK_SIZE, Error, Result, io};
use citadel_crypto::purpose::Purpose;
use citadel_crypto::sig::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;

/// Context string of manifest signatures (FIPS 204 pure mode): the
/// transfer manifest's signing purpose, which no other purpose shares.
pub const SIGNATURE_CONTEXT: &[u8] = Purpose::TRANSFER_MANIFEST.name().as_bytes();
const MAX_PATH: usize = 4096;

/// One file to transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative `/`-separated path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// BLAKE3 of the concatenated chunk hashes, hex.
    pub root: String,
    /// BLAKE3 of each chunk, hex.
    pub chunks: Vec<String>,
}

/// One directory to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// Relative `/`-separated path.
    pub path: String,
    /// Unix permission bits.
    pub mode: u32,
    /// Modification time, Unix seconds.
    pub mtime: i64,
}

/// What a transfer carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version (1).
    pub version: u32,
    /// Chunk size in bytes.
    pub chunk_size: u64,
    /// Files, in sending order.
    pub files: Vec<FileEntry>,
    /// Directories (parents before children).
    pub dirs: Vec<DirEntry>,
}

/// Rejects any path that could leave the output directory.
pub fn validate_path(p: &str) -> Result<()> {
    let bad = p.is_empty()
        || p.len() > MAX_PATH
        || p.starts_with('/')
        || p.contains('\\')
        || p.contains('\0')
        || p.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(Error::UnsafePath(p.to_string()))
    } else if p.split('/').next() == Some(crate::beneath::STATE_DIR) {
        Err(Error::Reserved(p.to_string()))
    } else {
        Ok(())
    }
}

/// Number of chunks of a file of `size` bytes.
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE)
}

/// The root over chunk hashes.
pub fn root_of(chunks: &[[u8; 32]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for c in chunks {
        h.update(c);
    }
    *h.finalize().as_bytes()
}

/// Chunk hashes computed by one thread: (chunk index, hash).
type Share = Vec<(usize, [u8; 32])>;

/// Hashes the first `size` bytes of a file chunk by chunk: (chunk
/// hashes, root). Chunks are independent, so a large file is hashed on as
/// many threads as the machine has cores (up to 8), each reading its own
/// chunks with positioned reads: the manifest of one big file costs a
/// fraction of its transfer, not a single core's full pass.
pub fn hash_file(path: &Path) -> Result<(Vec<[u8; 32]>, [u8; 32])> {
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(path).map_err(io(path))?;
    let size = f.metadata().map_err(io(path))?.len();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let read = |buf: &mut [u8], at: u64| {
        f.read_exact_at(buf, at).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Manifest(format!(
                    "{} changed while it was being hashed; run the command again",
                    path.display()
                ))
            } else {
                io(path)(e)
            }
        })
    };
    hash_chunks(&read, size, threads)
}

/// Hashes `size` bytes read with `read(buf, offset)` on up to `threads`
/// threads (at most 8). The first error stops every thread before its next
/// chunk, and is the one returned.
fn hash_chunks(
    read: &(dyn Fn(&mut [u8], u64) -> Result<()> + Sync),
    size: u64,
    threads: usize,
) -> Result<(Vec<[u8; 32]>, [u8; 32])> {
    let n = chunk_count(size) as usize;
    let threads = threads.clamp(1, 8).min(n.max(1));
    let failed = std::sync::atomic::AtomicBool::new(false);
    let failed = &failed;
    let hash_share = |k: usize| -> Result<Share> {
        let mut buf = vec![0u8; CHUNK_SIZE.min(size) as usize];
        let mut out = Vec::with_capacity(n / threads + 1);
        for i in (k..n).step_by(threads) {
            if failed.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let start = i as u64 * CHUNK_SIZE;
            let len = (size - start).min(CHUNK_SIZE) as usize;
            if let Err(e) = read(&mut buf[..len], start) {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                return Err(e);
            }
            out.push((i, *blake3::hash(&buf[..len]).as_bytes()));
        }
        Ok(out)
    };
    let shares: Vec<Result<Share>> = if threads <= 1 {
        vec![hash_share(0)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|k| s.spawn(move || hash_share(k)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Manifest("a hashing thread panicked".into()))
                    })
                })
                .collect()
        })
    };
    if failed.load(std::sync::atomic::Ordering::Relaxed) {
        // A share cut short by another's failure is incomplete: only the
        // failure itself is worth reporting.
        return Err(shares
            .into_iter()
            .find_map(|s| s.err())
            .unwrap_or_else(|| Error::Manifest("hashing stopped".into())));
    }
    let mut chunks = vec![[0u8; 32]; n];
    for share in shares {
        for (i, h) in share? {
            chunks[i] = h;
        }
    }
    let root = root_of(&chunks);
    Ok((chunks, root))
}

fn meta_mode_mtime(meta: &fs::Metadata) -> (u32, i64) {
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o7777
    };
    #[cfg(not(unix))]
    let mode = if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    };
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    (mode, mtime)
}

impl Manifest {
    /// Builds the manifest of `sources`: a file is sent under its own name,
    /// a directory as a tree under its name. Symbolic links are refused.
    pub fn build(sources: &[&Path]) -> Result<Manifest> {
        Ok(Self::build_with_sources(sources)?.0)
    }

    /// Like [`Manifest::build`], also returning the local path of each file
    /// (in manifest order), which the sender reads chunks from.
    pub fn build_with_sources(sources: &[&Path]) -> Result<(Manifest, Vec<std::path::PathBuf>)> {
        let mut m = Manifest {
            version: 1,
            chunk_size: CHUNK_SIZE,
            files: Vec::new(),
            dirs: Vec::new(),
        };
        let mut locals = Vec::new();
        for src in sources {
            let meta = fs::symlink_metadata(src).map_err(io(src))?;
            let name = src
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| Error::UnsafePath(src.display().to_string()))?
                .to_string();
            m.add(src, &name, &meta, &mut locals)?;
        }
        m.validate()?;
        Ok((m, locals))
    }

    fn add(
        &mut self,
        path: &Path,
        rel: &str,
        meta: &fs::Metadata,
        locals: &mut Vec<std::path::PathBuf>,
    ) -> Result<()> {
        validate_path(rel)?;
        let ft = meta.file_type();
        let (mode, mtime) = meta_mode_mtime(meta);
        if ft.is_file() {
            let (chunks, root) = hash_file(path)?;
            locals.push(path.to_path_buf());
            self.files.push(FileEntry {
                path: rel.to_string(),
                size: meta.len(),
                mode,
                mtime,
                root: hex::encode(root),
                chunks: chunks.iter().map(hex::encode).collect(),
            });
        } else if ft.is_dir() {
            self.dirs.push(DirEntry {
                path: rel.to_string(),
                mode,
                mtime,
            });
            let mut entries = fs::read_dir(path)
                .map_err(io(path))?
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(io(path))?;
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let child = e.path();
                let name = e
                    .file_name()
                    .into_string()
                    .map_err(|_| Error::UnsafePath(child.display().to_string()))?;
                let meta = fs::symlink_metadata(&child).map_err(io(&child))?;
                self.add(&child, &format!("{rel}/{name}"), &meta, locals)?;
            }
        } else {
            return Err(Error::NotRegular(path.display().to_string()));
        }
        Ok(())
    }

    /// Checks every invariant a receiver relies on.
    pub fn validate(&self) -> Result<()> {
        if self.version != 1 || self.chunk_size != CHUNK_SIZE {
            return Err(Error::Manifest(format!(
                "unsupported version {} or chunk size {}",
                self.version, self.chunk_size
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.dirs {
            validate_path(&d.path)?;
            if !seen.insert(d.path.as_str()) {
                return Err(Error::Manifest(format!("duplicate path {}", d.path)));
            }
        }
        for f in &self.files {
            validate_path(&f.path)?;
            if !seen.insert(f.path.as_str()) {
                return Err(Error::Manifest(format!("duplicate path {}", f.path)));
            }
            if f.chunks.len() as u64 != chunk_count(f.size) {
                return Err(Error::Manifest(format!(
                    "{}: {} chunk hashes for {} bytes",
                    f.path,
                    f.chunks.len(),
                    f.size
                )));
            }
            let hashes = decode_hashes(f)?;
            if hex::encode(root_of(&hashes)) != f.root {
                return Err(Error::Manifest(format!(
                    "{}: root does not match its chunk hashes",
                    f.path
                )));
            }
        }
        Ok(())
    }

    /// Serialises to the JSON that is signed and sent.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The transfer's identifier: the first 16 bytes of the BLAKE3 hash of
    /// the manifest JSON exactly as signed (the bytes [`Manifest::sign`]
    /// puts in the `MANIFEST` frame), hex.
    pub fn transfer_id(&self) -> String {
        hex::encode(id_of_json(&self.to_json()))
    }

    /// The `MANIFEST` frame payload: signature length (2) ‖ signature ‖ JSON.
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>> {
        let json = self.to_json();
        let sig = Purpose::TRANSFER_MANIFEST.sign(key, b"", &json)?;
        let len =
            u16::try_from(sig.len()).map_err(|_| Error::Manifest("signature too long".into()))?;
        let mut out = len.to_be_bytes().to_vec();
        out.extend_from_slice(&sig);
        out.extend_from_slice(&json);
        Ok(out)
    }

    /// Verifies a `MANIFEST` payload against the sender's key and validates it.
    pub fn open_signed(payload: &[u8], key: &VerifyingKey) -> Result<Manifest> {
        Self::open_signed_with_id(payload, key).map(|(m, _)| m)
    }

    /// [`Manifest::open_signed`], also returning the transfer id: the hash
    /// of the JSON bytes received (never of a re-serialisation).
    pub fn open_signed_with_id(payload: &[u8], key: &VerifyingKey) -> Result<(Manifest, [u8; 16])> {
        if payload.len() < 2 {
            return Err(Error::Manifest("truncated".into()));
        }
        let len = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
        let rest = &payload[2..];
        if rest.len() < len {
            return Err(Error::Manifest("truncated signature".into()));
        }
        let (sig, json) = rest.split_at(len);
        Purpose::TRANSFER_MANIFEST
            .verify(key, b"", json, sig)
            .map_err(|_| {
                Error::Manifest("the signature does not verify with the sender's key".into())
            })?;
        let m: Manifest =
            serde_json::from_slice(json).map_err(|e| Error::Manifest(e.to_string()))?;
        m.validate()?;
        Ok((m, id_of_json(json)))
    }
}

/// A transfer id: the first 16 bytes of BLAKE3 over the manifest JSON.
pub fn id_of_json(json: &[u8]) -> [u8; 16] {
    let mut id = [0u8; 16];
    id.copy_from_slice(&blake3::hash(json).as_bytes()[..16]);
    id
}

/// The chunk hashes of an entry as bytes.
pub fn decode_hashes(f: &FileEntry) -> Result<Vec<[u8; 32]>> {
    f.chunks
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    Error::Manifest(format!("{}: a chunk hash is not 64 hex digits", f.path))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use citadel_crypto::Algorithm;

    #[test]
    fn build_sign_open_and_tamper() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        fs::create_dir_all(tree.join("sub")).unwrap();
        fs::write(
            tree.join("sub/a.bin"),
            vec![7u8; (CHUNK_SIZE + 10) as usize],
        )
        .unwrap();
        fs::write(tree.join("empty"), b"").unwrap();
        let m = Manifest::build(&[tree.as_path()]).unwrap();
        assert_eq!(
            m.dirs.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(),
            ["tree", "tree/sub"]
        );
        let a = m.files.iter().find(|f| f.path == "tree/sub/a.bin").unwrap();
        assert_eq!(a.chunks.len(), 2);
        assert_eq!(
            m.files
                .iter()
                .find(|f| f.path == "tree/empty")
                .unwrap()
                .chunks
                .len(),
            0
        );
        let key = SigningKey::generate(Algorithm::MlDsa44).unwrap();
        let payload = m.sign(&key).unwrap();
        assert_eq!(
            Manifest::open_signed(&payload, &key.verifying_key()).unwrap(),
            m
        );
        let other = SigningKey::generate(Algorithm::MlDsa44).unwrap();
        assert!(Manifest::open_signed(&payload, &other.verifying_key()).is_err());
        let mut bad = payload.clone();
        let n = bad.len();
        bad[n - 5] ^= 1;
        assert!(Manifest::open_signed(&bad, &key.verifying_key()).is_err());
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for p in ["../x", "/etc/passwd", "a/../b", "a//b", "./a", "", "a\\b"] {
            assert!(validate_path(p).is_err(), "{p:?}");
        }
        validate_path("a/b.c/d").unwrap();
        let mut m = Manifest {
            version: 1,
            chunk_size: CHUNK_SIZE,
            files: vec![],
            dirs: vec![],
        };
        m.files.push(FileEntry {
            path: "../escape".into(),
            size: 0,
            mode: 0o644,
            mtime: 0,
            root: hex::encode(root_of(&[])),
            chunks: vec![],
        });
        assert!(matches!(m.validate(), Err(Error::UnsafePath(_))));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_refused() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("link")).unwrap();
        assert!(matches!(
            Manifest::build(&[d.path()]),
            Err(Error::NotRegular(_))
        ));
    }

    /// Issue 13: a read failing at the first, a middle or the last chunk
    /// ends hashing with that error, and the other threads stop before
    /// their next chunk instead of reading the rest of the file.
    #[test]
    fn the_first_read_error_stops_every_hashing_thread() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let n = 24u64;
        for bad in [0, n / 2, n - 1] {
            for _ in 0..50 {
                let (late, seen) = (
                    AtomicUsize::new(0),
                    std::sync::atomic::AtomicBool::new(false),
                );
                let read = |_: &mut [u8], at: u64| -> Result<()> {
                    if seen.load(Ordering::SeqCst) {
                        late.fetch_add(1, Ordering::SeqCst);
                    }
                    if at / CHUNK_SIZE == bad {
                        seen.store(true, Ordering::SeqCst);
                        return Err(Error::Manifest(format!("chunk {bad} unreadable")));
                    }
                    std::thread::sleep(std::time::Duration::from_micros(300));
                    Ok(())
                };
                let e = hash_chunks(&read, n * CHUNK_SIZE, 4).unwrap_err();
                assert!(
                    e.to_string().contains(&format!("chunk {bad} unreadable")),
                    "{e}"
                );
                // Each other thread reads at most the chunk it had begun.
                let late = late.into_inner();
                assert!(late <= 3, "{late} reads after chunk {bad} failed");
            }
        }
    }
}
