//! The receiver's side of one file: verify each chunk, write it in place,
//! remember progress across crashes, and publish the file only when all of
//! it matches the signed manifest.
//!
//! Files beside the destination `DIR/NAME`:
//! `DIR/.NAME.citadel-partial` (the data) and `DIR/.NAME.citadel-state`
//! (JSON: the file's root and the hex bitmap of verified chunks).

use crate::manifest::{FileEntry, chunk_count, decode_hashes, root_of, validate_path};
use crate::{CHUNK_SIZE, Error, Result, io};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Chunks written between two saves of the state file.
const SAVE_EVERY: u64 = 16;

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

/// One file being received.
pub struct FileAssembler {
    entry: FileEntry,
    hashes: Vec<[u8; 32]>,
    dest: PathBuf,
    partial: PathBuf,
    state: PathBuf,
    file: File,
    have: Vec<bool>,
    unsaved: u64,
}

impl FileAssembler {
    /// Prepares to receive `entry` under `out_dir`, resuming from an earlier
    /// interrupted run when its state file names the same root; a different
    /// root (the sender's file changed) starts over.
    pub fn open(out_dir: &Path, entry: &FileEntry) -> Result<Self> {
        validate_path(&entry.path)?;
        let hashes = decode_hashes(entry)?;
        let dest = out_dir.join(&entry.path);
        let dir = dest.parent().unwrap_or(out_dir).to_path_buf();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let partial = dir.join(format!(".{name}.citadel-partial"));
        let state = dir.join(format!(".{name}.citadel-state"));
        let n = chunk_count(entry.size) as usize;
        let resumed = fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<State>(&b).ok())
            .filter(|s| s.root == entry.root)
            .and_then(|s| bitmap_from_hex(&s.have, n))
            .filter(|_| partial.exists());
        let have = resumed.clone().unwrap_or_else(|| vec![false; n]);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(resumed.is_none())
            .open(&partial)
            .map_err(io(&partial))?;
        file.set_len(entry.size).map_err(io(&partial))?;
        Ok(Self {
            entry: entry.clone(),
            hashes,
            dest,
            partial,
            state,
            file,
            have,
            unsaved: 0,
        })
    }

    /// Which chunks are already verified on disk.
    pub fn have(&self) -> &[bool] {
        &self.have
    }

    /// Bytes already verified (for reporting resumed transfers).
    pub fn verified_bytes(&self) -> u64 {
        self.have
            .iter()
            .enumerate()
            .filter(|(_, h)| **h)
            .map(|(i, _)| self.chunk_len(i as u64))
            .sum()
    }

    fn chunk_len(&self, index: u64) -> u64 {
        let start = index * CHUNK_SIZE;
        (self.entry.size - start).min(CHUNK_SIZE)
    }

    /// Verifies chunk `index` against the manifest and writes it. A chunk
    /// that does not match is refused and nothing is written.
    pub fn write_chunk(&mut self, index: u64, data: &[u8]) -> Result<()> {
        let bad = || Error::BadChunk {
            path: self.entry.path.clone(),
            index,
        };
        let expected = self.hashes.get(index as usize).ok_or_else(bad)?;
        if data.len() as u64 != self.chunk_len(index) || blake3::hash(data).as_bytes() != expected {
            return Err(bad());
        }
        self.file
            .seek(SeekFrom::Start(index * CHUNK_SIZE))
            .map_err(io(&self.partial))?;
        self.file.write_all(data).map_err(io(&self.partial))?;
        self.have[index as usize] = true;
        self.unsaved += 1;
        if self.unsaved >= SAVE_EVERY {
            self.save_state()?;
        }
        Ok(())
    }

    /// Makes progress durable: data first, then the bitmap that claims it.
    pub fn save_state(&mut self) -> Result<()> {
        self.file.sync_data().map_err(io(&self.partial))?;
        let s = State {
            root: self.entry.root.clone(),
            have: bitmap_to_hex(&self.have),
        };
        let json = serde_json::to_vec(&s).map_err(|e| Error::Manifest(e.to_string()))?;
        let tmp = self.state.with_extension("citadel-state-tmp");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&json).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &self.state).map_err(io(&self.state))?;
        self.unsaved = 0;
        Ok(())
    }

    /// Whether every chunk has been verified.
    pub fn is_complete(&self) -> bool {
        self.have.iter().all(|h| *h)
    }

    /// Re-reads and re-hashes the whole file, checks the root, fsyncs, sets
    /// mode and mtime, renames it into place and removes the state file.
    pub fn finish(mut self) -> Result<PathBuf> {
        if !self.is_complete() {
            return Err(Error::BadFile(format!(
                "{} (chunks missing)",
                self.entry.path
            )));
        }
        self.file.sync_all().map_err(io(&self.partial))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(io(&self.partial))?;
        let mut buf = vec![0u8; CHUNK_SIZE as usize];
        let mut chunks = Vec::with_capacity(self.hashes.len());
        for i in 0..self.hashes.len() as u64 {
            let len = self.chunk_len(i) as usize;
            self.file
                .read_exact(&mut buf[..len])
                .map_err(io(&self.partial))?;
            chunks.push(*blake3::hash(&buf[..len]).as_bytes());
        }
        if hex::encode(root_of(&chunks)) != self.entry.root {
            // The data on disk changed under us (or a resumed partial file
            // was damaged): start the next attempt from scratch.
            let _ = fs::remove_file(&self.state);
            let _ = fs::remove_file(&self.partial);
            return Err(Error::BadFile(self.entry.path.clone()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(
                &self.partial,
                fs::Permissions::from_mode(self.entry.mode & 0o7777),
            )
            .map_err(io(&self.partial))?;
        }
        let mtime =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.entry.mtime.max(0) as u64);
        self.file.set_modified(mtime).map_err(io(&self.partial))?;
        fs::rename(&self.partial, &self.dest).map_err(io(&self.dest))?;
        if let Some(dir) = self.dest.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        let _ = fs::remove_file(&self.state);
        Ok(self.dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn setup(size: usize) -> (tempfile::TempDir, Vec<u8>, FileEntry) {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let src = d.path().join("src.bin");
        fs::write(&src, &data).unwrap();
        let m = Manifest::build(&[src.as_path()]).unwrap();
        (d, data, m.files[0].clone())
    }

    fn chunk(data: &[u8], i: u64) -> &[u8] {
        let s = (i * CHUNK_SIZE) as usize;
        &data[s..(s + CHUNK_SIZE as usize).min(data.len())]
    }

    #[test]
    fn out_of_order_chunks_assemble_into_the_same_file() {
        let (d, data, entry) = setup(3 * CHUNK_SIZE as usize + 1234);
        let out = d.path().join("out");
        let mut a = FileAssembler::open(&out, &entry).unwrap();
        for i in [3, 1, 0, 2] {
            a.write_chunk(i, chunk(&data, i)).unwrap();
        }
        let dest = a.finish().unwrap();
        assert_eq!(fs::read(dest).unwrap(), data);
        let names: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("src.bin")],
            "no partial or state files left"
        );
    }

    #[test]
    fn a_corrupted_chunk_is_refused_and_the_file_never_appears() {
        let (d, data, entry) = setup(2 * CHUNK_SIZE as usize);
        let out = d.path().join("out");
        let mut a = FileAssembler::open(&out, &entry).unwrap();
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
            let mut a = FileAssembler::open(&out, &entry).unwrap();
            a.write_chunk(0, chunk(&data, 0)).unwrap();
            a.write_chunk(2, chunk(&data, 2)).unwrap();
            a.save_state().unwrap();
            // dropped here without finish: the "kill -9"
        }
        let mut a = FileAssembler::open(&out, &entry).unwrap();
        assert_eq!(a.have(), &[true, false, true]);
        assert_eq!(a.verified_bytes(), CHUNK_SIZE + 5);
        a.write_chunk(1, chunk(&data, 1)).unwrap();
        assert_eq!(fs::read(a.finish().unwrap()).unwrap(), data);

        // Same name, different content: the state no longer applies.
        let mut other = entry.clone();
        other.root = hex::encode([9u8; 32]);
        {
            let mut a = FileAssembler::open(&out, &entry).unwrap();
            a.write_chunk(0, chunk(&data, 0)).unwrap();
            a.save_state().unwrap();
        }
        let a = FileAssembler::open(&out, &other).unwrap();
        assert_eq!(a.have(), &[false, false, false]);
    }

    #[test]
    fn damage_to_a_resumed_partial_file_is_caught_at_the_end_and_reset() {
        let (d, data, entry) = setup(2 * CHUNK_SIZE as usize);
        let out = d.path().join("out");
        {
            let mut a = FileAssembler::open(&out, &entry).unwrap();
            a.write_chunk(0, chunk(&data, 0)).unwrap();
            a.save_state().unwrap();
        }
        // Flip a byte of the verified chunk on disk while "crashed".
        let partial = out.join(".src.bin.citadel-partial");
        let mut bytes = fs::read(&partial).unwrap();
        bytes[5] ^= 1;
        fs::write(&partial, bytes).unwrap();
        let mut a = FileAssembler::open(&out, &entry).unwrap();
        a.write_chunk(1, chunk(&data, 1)).unwrap();
        assert!(matches!(a.finish(), Err(Error::BadFile(_))));
        assert!(!out.join("src.bin").exists());
        let a = FileAssembler::open(&out, &entry).unwrap();
        assert_eq!(a.have(), &[false, false], "the next attempt starts over");
    }

    #[test]
    fn empty_files_and_traversal() {
        let (d, _, entry) = setup(0);
        let out = d.path().join("out");
        let a = FileAssembler::open(&out, &entry).unwrap();
        assert!(a.is_complete());
        assert_eq!(fs::read(a.finish().unwrap()).unwrap(), b"");
        let mut evil = entry.clone();
        evil.path = "../evil".into();
        assert!(matches!(
            FileAssembler::open(&out, &evil),
            Err(Error::UnsafePath(_))
        ));
    }
}
