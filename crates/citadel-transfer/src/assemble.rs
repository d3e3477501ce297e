//! The receiver's side of one file: verify each chunk, write it in place,
//! remember progress across crashes, and publish the file only when all of
//! it matches the signed manifest.
//!
//! The receiver's own files live in its state directory
//! ([`crate::beneath::STATE_DIR`]), never beside the destination, where a
//! sender's names could collide with them: `KEY.partial` (the data) and
//! `KEY.state` (JSON: the file's root and the hex bitmap of verified
//! chunks), where `KEY` is derived from the file's path and root. Every
//! file is reached through directory handles, never through a symbolic
//! link (see [`crate::beneath`]).
//!
//! The state file is a hint, not a promise: when a transfer resumes, every
//! chunk it claims is read back and hashed again, and only chunks that still
//! match the manifest count. So the hot path never waits for the disk; data
//! reaches it through background flushes and one `fsync` before the rename.
//! A destination that already holds exactly the file (every chunk hash
//! matches) is kept as it is and counts as resumed.
//!
//! An assembler is shared by the connections of a parallel transfer: chunk
//! verification and the positioned write need no lock, only the bitmap does.

use crate::beneath::{self, Root};
use crate::manifest::{FileEntry, chunk_count, decode_hashes, validate_path};
use crate::{CHUNK_SIZE, Error, Result};
use rustix::fs::OFlags;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The state file is saved after this many chunks, or after
/// [`SAVE_INTERVAL`] on a slow link, whichever comes first.
const SAVE_EVERY: u64 = 16;
/// See [`SAVE_EVERY`].
const SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Bytes written between two background flushes of the data to disk, so the
/// final `fsync` has little left to do.
const FLUSH_EVERY: u64 = 32 * 1024 * 1024;
/// The largest state file read back (a bitmap of a 16 TiB file is 1 MiB).
const MAX_STATE: u64 = 4 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct State {
    root: String,
    have: String,
}

fn bitmap_to_hex(have: &[bool]) -> String {
    let mut bytes = vec![0u8; have.len().div_ceil(8)];
    for (i, h) in have.iter().enumerate() {
        if *h {
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    hex::encode(bytes)
}

fn bitmap_from_hex(s: &str, n: usize) -> Option<Vec<bool>> {
    let bytes = hex::decode(s).ok()?;
    if bytes.len() != n.div_ceil(8) {
        return None;
    }
    Some((0..n).map(|i| bytes[i / 8] & (1 << (i % 8)) != 0).collect())
}

struct Progress {
    have: Vec<bool>,
    missing: usize,
    unsaved: u64,
    unflushed: u64,
    saved_at: std::time::Instant,
    finished: bool,
}

/// One file being received.
pub struct FileAssembler {
    entry: FileEntry,
    hashes: Vec<[u8; 32]>,
    /// Where the destination is resolved (again, when it is published).
    root: Root,
    /// The destination's directory (relative to the root) and its name.
    parent: String,
    name: String,
    /// The receiver's state directory, and the names of this file's data
    /// and progress there.
    state_dir: Arc<File>,
    partial: String,
    state: String,
    /// For messages: the operator's path of the destination.
    shown: String,
    /// The mode the published file gets.
    mode: u32,
    /// Opened on first use and closed once the file is published, so a
    /// transfer of many files holds few descriptors.
    file: Mutex<Option<Arc<File>>>,
    /// Whether the partial file holds verified chunks to keep when opened.
    resumed: bool,
    /// The destination already holds exactly this file: its identity.
    in_place: Option<beneath::FileId>,
    progress: Mutex<Progress>,
    flushing: Arc<AtomicBool>,
    /// No other transfer of this receiver writes this file meanwhile.
    _claim: beneath::Claim,
}

/// Maps a write error to the clearest message: a full disk says what to do.
fn write_error(path: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| {
        if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
            Error::DiskFull(path.to_string())
        } else {
            Error::Io {
                path: path.to_string(),
                source: e,
            }
        }
    }
}

fn io_at(path: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_string(),
        source,
    }
}

/// Which chunks of `file` match `hashes` (reading at most what `claimed`
/// says is there; all of them when `claimed` is `None`).
fn verified_chunks(
    file: &File,
    size: u64,
    hashes: &[[u8; 32]],
    claimed: Option<&[bool]>,
) -> Vec<bool> {
    let mut buf = vec![0u8; CHUNK_SIZE.min(size) as usize];
    (0..hashes.len())
        .map(|i| {
            let len = chunk_len(size, i as u64) as usize;
            claimed.is_none_or(|c| c[i])
                && file
                    .read_exact_at(&mut buf[..len], i as u64 * CHUNK_SIZE)
                    .is_ok()
                && blake3::hash(&buf[..len]).as_bytes() == &hashes[i]
        })
        .collect()
}

impl FileAssembler {
    /// Prepares to receive `entry` beneath `root`, resuming from an earlier
    /// interrupted run when its state file names the same root (every chunk
    /// it claims is re-hashed; damaged ones are fetched again); a different
    /// root (the sender's file changed) starts over. A destination that
    /// already holds exactly this file needs nothing.
    pub fn open(root: &Root, entry: &FileEntry) -> Result<Self> {
        validate_path(&entry.path)?;
        let hashes = decode_hashes(entry)?;
        let (parent_rel, name) = entry.path.rsplit_once('/').unwrap_or(("", &entry.path));
        let parent = root.dir(parent_rel, true)?;
        let shown = root.display(&entry.path);
        let state_dir = root.state();
        let mut key = blake3::Hasher::new();
        key.update(b"citadel-recv-v1\0");
        key.update(entry.path.as_bytes());
        key.update(b"\0");
        key.update(entry.root.as_bytes());
        let key = hex::encode(&key.finalize().as_bytes()[..16]);
        let claim = root.claim(&key, &shown)?;
        let partial = format!("{key}.partial");
        let state = format!("{key}.state");
        let n = chunk_count(entry.size) as usize;
        let claimed = beneath::open_sole_regular(&state_dir, &state)
            .ok()
            .flatten()
            .and_then(|(f, _, _)| {
                let mut b = Vec::new();
                f.take(MAX_STATE).read_to_end(&mut b).ok()?;
                serde_json::from_slice::<State>(&b).ok()
            })
            .filter(|s| s.root == entry.root)
            .and_then(|s| bitmap_from_hex(&s.have, n));
        let mut have = vec![false; n];
        if let Some(claimed) = claimed {
            if let Ok(Some((file, _, _))) = beneath::open_sole_regular(&state_dir, &partial) {
                have = verified_chunks(&file, entry.size, &hashes, Some(&claimed));
            }
        }
        let resumed = have.iter().any(|h| *h);
        // Nothing of it in progress: the destination may hold it already
        // (a transfer interrupted after this file was published, or the
        // same tree sent again). Only a regular file with one name counts.
        let mut in_place = None;
        if !resumed {
            if let Ok(Some((f, id, size))) = beneath::open_sole_regular(&parent, name) {
                if size == entry.size {
                    let all = verified_chunks(&f, entry.size, &hashes, None);
                    if all.iter().all(|h| *h) {
                        have = all;
                        in_place = Some(id);
                    }
                }
            }
        }
        let missing = have.iter().filter(|h| !**h).count();
        Ok(Self {
            entry: entry.clone(),
            hashes,
            root: root.clone(),
            parent: parent_rel.to_string(),
            name: name.to_string(),
            state_dir,
            partial,
            state,
            shown,
            mode: root.mode(entry.mode),
            file: Mutex::new(None),
            resumed,
            in_place,
            progress: Mutex::new(Progress {
                have,
                missing,
                unsaved: 0,
                unflushed: 0,
                saved_at: std::time::Instant::now(),
                finished: false,
            }),
            flushing: Arc::new(AtomicBool::new(false)),
            _claim: claim,
        })
    }

    /// The partial file, opened (and sized) on first use: the verified one
    /// when resuming (a regular file with one name), else a new one.
    fn handle(&self) -> Result<Arc<File>> {
        let mut slot = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = slot.as_ref() {
            return Ok(Arc::clone(f));
        }
        let f = if self.resumed {
            let f = beneath::open_file(&self.state_dir, &self.partial, OFlags::RDWR)
                .map_err(write_error(&self.shown))?;
            if beneath::sole_regular(&f).ok().flatten().is_none() {
                return Err(io_at(&self.shown)(std::io::Error::other(
                    "the receiver's partial file is not a regular file with one name",
                )));
            }
            f
        } else {
            beneath::create_fresh(&self.state_dir, &self.partial)
                .map_err(write_error(&self.shown))?
        };
        f.set_len(self.entry.size)
            .map_err(write_error(&self.shown))?;
        let f = Arc::new(f);
        *slot = Some(Arc::clone(&f));
        Ok(f)
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        // A panic elsewhere cannot leave the bitmap half-updated: every
        // update is a single assignment, so a poisoned lock is still sound.
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The manifest entry this assembler receives.
    pub fn entry(&self) -> &FileEntry {
        &self.entry
    }

    /// Whether the destination already held exactly this file.
    pub fn was_in_place(&self) -> bool {
        self.in_place.is_some()
    }

    /// Which chunks are already verified on disk.
    pub fn have(&self) -> Vec<bool> {
        self.lock().have.clone()
    }

    /// Bytes already verified (for reporting resumed transfers).
    pub fn verified_bytes(&self) -> u64 {
        self.lock()
            .have
            .iter()
            .enumerate()
            .filter(|(_, h)| **h)
            .map(|(i, _)| chunk_len(self.entry.size, i as u64))
            .sum()
    }

    /// Verifies chunk `index` against the manifest and writes it. A chunk
    /// that does not match is refused and nothing is written. Returns
    /// `true` when this call supplied the file's last missing chunk (exactly
    /// one caller sees `true`; it should then call [`finish`](Self::finish)).
    pub fn write_chunk(&self, index: u64, data: &[u8]) -> Result<bool> {
        let bad = || Error::BadChunk {
            path: self.entry.path.clone(),
            index,
        };
        let expected = self.hashes.get(index as usize).ok_or_else(bad)?;
        if data.len() as u64 != chunk_len(self.entry.size, index)
            || blake3::hash(data).as_bytes() != expected
        {
            return Err(bad());
        }
        if self.in_place.is_some() {
            return Ok(false);
        }
        let file = self.handle()?;
        file.write_all_at(data, index * CHUNK_SIZE)
            .map_err(write_error(&self.shown))?;
        let mut p = self.lock();
        if p.finished || p.have[index as usize] {
            return Ok(false);
        }
        p.have[index as usize] = true;
        p.missing -= 1;
        p.unsaved += 1;
        p.unflushed += data.len() as u64;
        if p.unflushed >= FLUSH_EVERY {
            p.unflushed = 0;
            flush_in_background(file, Arc::clone(&self.flushing));
        }
        if p.unsaved >= SAVE_EVERY || p.saved_at.elapsed() >= SAVE_INTERVAL {
            self.save_locked(&mut p)?;
        }
        Ok(p.missing == 0)
    }

    /// Records the verified-chunk bitmap (a hint for the next attempt,
    /// re-checked then), atomically replacing the previous one.
    pub fn save_state(&self) -> Result<()> {
        let mut p = self.lock();
        if p.finished || self.in_place.is_some() {
            return Ok(());
        }
        self.save_locked(&mut p)
    }

    fn save_locked(&self, p: &mut Progress) -> Result<()> {
        let s = State {
            root: self.entry.root.clone(),
            have: bitmap_to_hex(&p.have),
        };
        let json = serde_json::to_vec(&s).map_err(|e| Error::Manifest(e.to_string()))?;
        let tmp = format!("{}-tmp", self.state);
        let mut f =
            beneath::create_fresh(&self.state_dir, &tmp).map_err(write_error(&self.shown))?;
        f.write_all(&json).map_err(write_error(&self.shown))?;
        beneath::rename(&self.state_dir, &tmp, &self.state_dir, &self.state)
            .map_err(io_at(&self.shown))?;
        p.unsaved = 0;
        p.saved_at = std::time::Instant::now();
        Ok(())
    }

    /// Whether every chunk has been verified.
    pub fn is_complete(&self) -> bool {
        self.lock().missing == 0
    }

    /// Publishes the file once every chunk is verified: fsyncs the data,
    /// sets mode (permission bits less the receiver's umask) and mtime,
    /// renames it into place, fsyncs the directory and removes the state
    /// file. Every chunk was hashed against the signed manifest when it was
    /// written (or, for a resumed run, when the assembler opened), and the
    /// manifest's root covers the chunk hashes. A file already in place is
    /// left as it is.
    pub fn finish(&self) -> Result<PathBuf> {
        let mut p = self.lock();
        if p.finished {
            return Ok(self.destination());
        }
        if p.missing != 0 {
            return Err(Error::BadFile(format!(
                "{} ({} chunks missing)",
                self.entry.path, p.missing
            )));
        }
        let mtime =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.entry.mtime.max(0) as u64);
        // The directory is resolved again beneath the root: one replaced by
        // a link meanwhile is refused, not followed.
        let parent = self.root.dir(&self.parent, true)?;
        if let Some(id) = self.in_place {
            // Kept as it is, with the manifest's mode and time, if it is
            // still the file that was verified.
            match beneath::open_sole_regular(&parent, &self.name) {
                Ok(Some((f, again, _))) if again == id => {
                    beneath::chmod(&f, self.mode).map_err(io_at(&self.shown))?;
                    f.set_modified(mtime).map_err(io_at(&self.shown))?;
                }
                _ => {
                    return Err(Error::BadFile(format!(
                        "{} changed on the receiver during the transfer; send again",
                        self.entry.path
                    )));
                }
            }
            p.finished = true;
            return Ok(self.destination());
        }
        let file = self.handle()?;
        file.sync_all().map_err(write_error(&self.shown))?;
        beneath::chmod(&file, self.mode).map_err(io_at(&self.shown))?;
        file.set_modified(mtime).map_err(io_at(&self.shown))?;
        beneath::rename(&self.state_dir, &self.partial, &parent, &self.name)
            .map_err(io_at(&self.shown))?;
        let _ = parent.sync_all();
        let _ = beneath::remove(&self.state_dir, &self.state);
        p.finished = true;
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(self.destination())
    }

    /// Where the file is published (for messages).
    pub fn destination(&self) -> PathBuf {
        PathBuf::from(&self.shown)
    }
}

/// Starts writing a file's data to disk without waiting (at most one flush
/// at a time per file).
fn flush_in_background(file: Arc<File>, flag: Arc<AtomicBool>) {
    if flag.swap(true, Ordering::AcqRel) {
        return;
    }
    let clear = Arc::clone(&flag);
    let spawned = std::thread::Builder::new()
        .name("citadel-flush".into())
        .spawn(move || {
            // Only an optimisation: the fsync before the rename is the one
            // that counts, and it reports errors.
            let _ = file.sync_data();
            clear.store(false, Ordering::Release);
        });
    if spawned.is_err() {
        flag.store(false, Ordering::Release);
    }
}

fn chunk_len(size: u64, index: u64) -> u64 {
    size.saturating_sub(index * CHUNK_SIZE).min(CHUNK_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    fn setup(size: usize) -> (tempfile::TempDir, Vec<u8>, FileEntry) {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let src = d.path().join("src.bin");
        fs::write(&src, &data).unwrap();
        let m = Manifest::build(&[src.as_path()]).unwrap();
        (d, data, m.files[0].clone())
    }

    fn root(out: &std::path::Path) -> Root {
        Root::open(out, 0o022).unwrap()
    }

    fn chunk(data: &[u8], i: u64) -> &[u8] {
        let s = (i * CHUNK_SIZE) as usize;
        &data[s..(s + CHUNK_SIZE as usize).min(data.len())]
    }

    #[test]
    fn out_of_order_chunks_assemble_into_the_same_file() {
        let (d, data, entry) = setup(3 * CHUNK_SIZE as usize + 1234);
        let out = d.path().join("out");
        let a = FileAssembler::open(&root(&out), &entry).unwrap();
        for i in [3, 1, 0, 2] {
            a.write_chunk(i, chunk(&data, i)).unwrap();
        }
        let dest = a.finish().unwrap();
        assert_eq!(fs::read(dest).unwrap(), data);
        let mut names: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                std::ffi::OsString::from(crate::beneath::STATE_DIR),
                std::ffi::OsString::from("src.bin")
            ],
        );
        assert_eq!(
            fs::read_dir(out.join(crate::beneath::STATE_DIR))
                .unwrap()
                .count(),
            0,
            "no partial or state files left"
        );
    }

    #[test]
    fn a_corrupted_chunk_is_refused_and_the_file_never_appears() {
        let (d, data, entry) = setup(2 * CHUNK_SIZE as usize);
        let out = d.path().join("out");
        let a = FileAssembler::open(&root(&out), &entry).unwrap();
        let mut bad = chunk(&data, 0).to_vec();
        bad[100] ^= 1;
        assert!(matches!(
            a.write_chunk(0, &bad),
            Err(Error::BadChunk { index: 0, .. })
        ));
        assert!(
            a.write_chunk(0, &chunk(&data, 0)[..10]).is_err(),
            "truncated chunk"
        );
        assert!(
            a.write_chunk(7, chunk(&data, 0)).is_err(),
            "index out of range"
        );
        a.write_chunk(0, chunk(&data, 0)).unwrap();
        assert!(a.finish().is_err(), "incomplete file cannot be finished");
        assert!(!out.join("src.bin").exists());
    }

    #[test]
    fn progress_survives_a_crash_and_a_changed_file_restarts() {
        let (d, data, entry) = setup(2 * CHUNK_SIZE as usize + 5);
        let out = d.path().join("out");
        {
            let a = FileAssembler::open(&root(&out), &entry).unwrap();
            a.write_chunk(0, chunk(&data, 0)).unwrap();
            a.write_chunk(2, chunk(&data, 2)).unwrap();
            a.save_state().unwrap();
            // dropped here without finish: the "kill -9"
        }
        let a = FileAssembler::open(&root(&out), &entry).unwrap();
        assert_eq!(a.have(), vec![true, false, true]);
        assert_eq!(a.verified_bytes(), CHUNK_SIZE + 5);
        a.write_chunk(1, chunk(&data, 1)).unwrap();
        assert_eq!(fs::read(a.finish().unwrap()).unwrap(), data);

        // Same name, different content: the state no longer applies.
        let mut other = entry.clone();
        other.chunks[0] = hex::encode([9u8; 32]);
        other.root = hex::encode([9u8; 32]);
        {
            let a = FileAssembler::open(&root(&out), &entry).unwrap();
            a.write_chunk(0, chunk(&data, 0)).unwrap();
            a.save_state().unwrap();
        }
        let a = FileAssembler::open(&root(&out), &other).unwrap();
        assert_eq!(a.have(), vec![false, false, false]);
    }

    #[test]
    fn damage_to_a_resumed_partial_file_is_caught_on_resume() {
        let (d, data, entry) = setup(2 * CHUNK_SIZE as usize);
        let out = d.path().join("out");
        {
            let a = FileAssembler::open(&root(&out), &entry).unwrap();
            a.write_chunk(0, chunk(&data, 0)).unwrap();
            a.write_chunk(1, chunk(&data, 1)).unwrap();
            a.save_state().unwrap();
        }
        // Flip a byte of a verified chunk on disk while "crashed".
        let partial = fs::read_dir(out.join(crate::beneath::STATE_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "partial"))
            .unwrap();
        let mut bytes = fs::read(&partial).unwrap();
        bytes[CHUNK_SIZE as usize + 5] ^= 1;
        fs::write(&partial, bytes).unwrap();
        let a = FileAssembler::open(&root(&out), &entry).unwrap();
        assert_eq!(
            a.have(),
            vec![true, false],
            "the damaged chunk is fetched again"
        );
        assert!(matches!(a.finish(), Err(Error::BadFile(_))));
        assert!(!out.join("src.bin").exists());
        assert!(
            a.write_chunk(1, chunk(&data, 1)).unwrap(),
            "last chunk completes the file"
        );
        assert_eq!(fs::read(a.finish().unwrap()).unwrap(), data);
    }

    #[test]
    fn parallel_writers_complete_the_file_exactly_once() {
        let (d, data, entry) = setup(8 * CHUNK_SIZE as usize + 3);
        let out = d.path().join("out");
        let a = FileAssembler::open(&root(&out), &entry).unwrap();
        let completions: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3u64)
                .map(|k| {
                    let (a, data) = (&a, &data);
                    s.spawn(move || {
                        (0..9u64)
                            .filter(|i| i % 3 == k)
                            .filter(|&i| a.write_chunk(i, chunk(data, i)).unwrap())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(completions, 1);
        assert!(
            !a.write_chunk(0, chunk(&data, 0)).unwrap(),
            "a duplicate is harmless"
        );
        assert_eq!(fs::read(a.finish().unwrap()).unwrap(), data);
    }

    #[test]
    fn empty_files_and_traversal() {
        let (d, _, entry) = setup(0);
        let out = d.path().join("out");
        let a = FileAssembler::open(&root(&out), &entry).unwrap();
        assert!(a.is_complete());
        assert_eq!(fs::read(a.finish().unwrap()).unwrap(), b"");
        let mut evil = entry.clone();
        evil.path = "../evil".into();
        assert!(matches!(
            FileAssembler::open(&root(&out), &evil),
            Err(Error::UnsafePath(_))
        ));
    }

    /// Issue 12, item 5: a file already at the destination with the same
    /// chunk hashes is kept and counts as resumed; a different one is
    /// replaced (through the state directory, never written in place).
    #[test]
    fn a_file_already_in_place_is_not_sent_again() {
        let (d, data, entry) = setup(2 * CHUNK_SIZE as usize + 7);
        let out = d.path().join("out");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("src.bin"), &data).unwrap();
        let a = FileAssembler::open(&root(&out), &entry).unwrap();
        assert!(a.was_in_place() && a.is_complete());
        assert_eq!(a.verified_bytes(), data.len() as u64);
        a.finish().unwrap();
        let mut other = data.clone();
        other[5] ^= 1;
        fs::write(out.join("src.bin"), &other).unwrap();
        let a = FileAssembler::open(&root(&out), &entry).unwrap();
        assert!(!a.was_in_place());
        assert_eq!(a.verified_bytes(), 0);
    }

    /// Issue 12, item 3: a sender's names cannot collide with the
    /// receiver's own files, which live in the state directory.
    #[test]
    fn names_like_the_old_temporary_files_are_just_names() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("t");
        fs::create_dir_all(&tree).unwrap();
        for (n, c) in [
            ("x", &b"x data"[..]),
            (".x.citadel-partial", b"px"),
            ("y", b"y data"),
            (".y.citadel-state", b"sy"),
        ] {
            fs::write(tree.join(n), c).unwrap();
        }
        let m = Manifest::build(&[tree.as_path()]).unwrap();
        let out = d.path().join("out");
        let r = root(&out);
        for f in &m.files {
            let a = FileAssembler::open(&r, f).unwrap();
            let src = fs::read(d.path().join(&f.path)).unwrap();
            if !src.is_empty() {
                a.write_chunk(0, &src).unwrap();
            }
            a.finish().unwrap();
        }
        for f in &m.files {
            assert_eq!(
                fs::read(out.join(&f.path)).unwrap(),
                fs::read(d.path().join(&f.path)).unwrap(),
                "{}",
                f.path
            );
        }
    }

    /// Issue 12, items 1 and 2: a link in the receiver's tree is never
    /// written through, and modes lose setuid/setgid/sticky and the umask.
    #[test]
    fn links_are_not_followed_and_modes_are_tamed() {
        use std::os::unix::fs::PermissionsExt;
        let (d, data, mut entry) = setup(10);
        let out = d.path().join("out");
        let outside = d.path().join("outside");
        fs::create_dir_all(&out).unwrap();
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink("../outside", out.join("link")).unwrap();
        entry.path = "link/planted.txt".into();
        assert!(matches!(
            FileAssembler::open(&root(&out), &entry),
            Err(Error::NotBeneath(_))
        ));
        // A link at the file's own name is replaced, not followed.
        fs::write(outside.join("victim"), b"keep").unwrap();
        std::os::unix::fs::symlink("../outside/victim", out.join("victim")).unwrap();
        entry.path = "victim".into();
        entry.mode = 0o6777;
        let a = FileAssembler::open(&root(&out), &entry).unwrap();
        a.write_chunk(0, &data).unwrap();
        a.finish().unwrap();
        assert_eq!(fs::read(outside.join("victim")).unwrap(), b"keep");
        let meta = fs::symlink_metadata(out.join("victim")).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    }

    /// Fourth review, F1: a state directory others can write is refused,
    /// and a hard link planted at a partial or state name is replaced, never
    /// written through.
    #[test]
    fn planted_links_in_the_state_directory_are_never_written_through() {
        use std::os::unix::fs::PermissionsExt;
        let (d, data, entry) = setup(10);
        let out = d.path().join("out");
        let outside = d.path().join("victim");
        fs::write(&outside, b"keep me").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).unwrap();
        fs::create_dir_all(out.join(crate::beneath::STATE_DIR)).unwrap();
        fs::set_permissions(
            out.join(crate::beneath::STATE_DIR),
            fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        assert!(
            Root::open(&out, 0o022).is_err(),
            "a world-writable state directory"
        );
        fs::set_permissions(
            out.join(crate::beneath::STATE_DIR),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        // Hard links at every name the assembler will use.
        let r = root(&out);
        let a = FileAssembler::open(&r, &entry).unwrap();
        for n in [&a.partial, &a.state, &format!("{}-tmp", a.state)] {
            fs::hard_link(&outside, out.join(crate::beneath::STATE_DIR).join(n)).unwrap();
        }
        drop(a);
        let a = FileAssembler::open(&r, &entry).unwrap();
        a.write_chunk(0, &data).unwrap();
        a.save_state().unwrap();
        a.finish().unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"keep me");
        assert_eq!(
            fs::metadata(&outside).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read(out.join("src.bin")).unwrap(), data);
    }

    /// Fourth review, F2: a second transfer of the same file is refused
    /// while the first receives it (it would truncate the shared partial
    /// file); once the first ends, it may go.
    #[test]
    fn one_file_is_received_by_one_transfer_at_a_time() {
        let (d, data, entry) = setup(CHUNK_SIZE as usize + 10);
        let out = d.path().join("out");
        let r = root(&out);
        let first = FileAssembler::open(&r, &entry).unwrap();
        first.write_chunk(0, chunk(&data, 0)).unwrap();
        assert!(matches!(
            FileAssembler::open(&r, &entry),
            Err(Error::Busy(_))
        ));
        first.write_chunk(1, chunk(&data, 1)).unwrap();
        first.finish().unwrap();
        drop(first);
        assert_eq!(fs::read(out.join("src.bin")).unwrap(), data);
        FileAssembler::open(&r, &entry).unwrap();
    }

    /// Fourth review, F3: a hard link to an identical file is not "in
    /// place" (it is replaced); a kept file gets the manifest's mode and
    /// time (no setuid left behind).
    #[test]
    fn only_a_file_with_one_name_is_kept_and_it_gets_the_manifests_mode() {
        use std::os::unix::fs::PermissionsExt;
        let (d, data, mut entry) = setup(10);
        let out = d.path().join("out");
        fs::create_dir_all(&out).unwrap();
        let elsewhere = d.path().join("elsewhere");
        fs::write(&elsewhere, &data).unwrap();
        fs::hard_link(&elsewhere, out.join("src.bin")).unwrap();
        let a = FileAssembler::open(&root(&out), &entry).unwrap();
        assert!(!a.was_in_place());
        a.write_chunk(0, &data).unwrap();
        a.finish().unwrap();
        assert_eq!(fs::metadata(&elsewhere).unwrap().nlink(), 1);
        drop(a);
        // Now a sole, identical file, setuid: kept, with the mode tamed.
        fs::set_permissions(out.join("src.bin"), fs::Permissions::from_mode(0o4777)).unwrap();
        entry.mode = 0o640;
        let a = FileAssembler::open(&root(&out), &entry).unwrap();
        assert!(a.was_in_place());
        a.finish().unwrap();
        let meta = fs::metadata(out.join("src.bin")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!(
            meta.modified().unwrap(),
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(entry.mtime as u64)
        );
    }
}
