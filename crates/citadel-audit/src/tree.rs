//! The Merkle tree on disk: one file per level, `tree/LL.bin`, where level
//! `k` holds the 32-byte hashes of the complete subtrees of `2^k` leaves in
//! order. Appending a leaf writes one hash to level 0 and, when it
//! completes a pair, the parent above (two hashes per entry on average).
//! These files are derived from the segments and are rebuilt from them
//! after a crash; proofs read O(log n) hashes from them with positioned
//! reads, so nothing grows in memory with the log.

use crate::error::{Error, io};
use crate::merkle::{Hash, NodeSource, TreeError, node_hash};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The level files of one log.
pub struct TreeFiles {
    dir: PathBuf,
    size: u64,
    writers: Vec<BufWriter<File>>,
    readers: Vec<File>,
    /// Per level, the left sibling waiting for its pair (the level's last
    /// node when the level holds an odd number of nodes).
    pending: Vec<Option<Hash>>,
}

fn level_path(dir: &Path, level: usize) -> PathBuf {
    dir.join(format!("{level:02}.bin"))
}

/// Nodes level `level` holds for a tree of `size` leaves.
fn nodes_at(size: u64, level: usize) -> u64 {
    if level >= 64 { 0 } else { size >> level }
}

impl TreeFiles {
    /// Opens (creating) the level files in `dir`, cut back to the tree of
    /// `size` leaves; returns `None` when they hold fewer than `size` leaves
    /// (the caller then appends the missing ones).
    pub fn open(dir: &Path, size: u64) -> Result<(Self, u64), Error> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // Level 0 decides how much of the tree is usable.
        let have = std::fs::metadata(level_path(dir, 0))
            .map(|m| m.len() / 32)
            .unwrap_or(0)
            .min(size);
        let mut t = TreeFiles {
            dir: dir.to_path_buf(),
            size: have,
            writers: Vec::new(),
            readers: Vec::new(),
            pending: Vec::new(),
        };
        for level in 0..64 {
            let want = nodes_at(have, level);
            let path = level_path(dir, level);
            if want == 0 && !path.exists() && level > 0 {
                break;
            }
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io(&path))?;
            let len = f.metadata().map_err(io(&path))?.len();
            if len / 32 < want {
                return Err(Error::Corrupt {
                    index: None,
                    why: format!(
                        "{}: tree level {level} is shorter than its level 0; remove the tree directory to rebuild it",
                        dir.display()
                    ),
                });
            }
            f.set_len(want * 32).map_err(io(&path))?;
            let pending = if want % 2 == 1 {
                let mut h = [0u8; 32];
                f.read_exact_at(&mut h, (want - 1) * 32)
                    .map_err(io(&path))?;
                Some(h)
            } else {
                None
            };
            let reader = File::open(&path).map_err(io(&path))?;
            let mut w = f;
            std::io::Seek::seek(&mut w, std::io::SeekFrom::End(0)).map_err(io(&path))?;
            t.writers.push(BufWriter::with_capacity(1 << 16, w));
            t.readers.push(reader);
            t.pending.push(pending);
        }
        Ok((t, have))
    }

    fn ensure_level(&mut self, level: usize) -> Result<(), Error> {
        while self.writers.len() <= level {
            let l = self.writers.len();
            let path = level_path(&self.dir, l);
            let f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io(&path))?;
            self.readers.push(File::open(&path).map_err(io(&path))?);
            self.writers.push(BufWriter::with_capacity(1 << 16, f));
            self.pending.push(None);
        }
        Ok(())
    }

    /// Appends the hash of the next leaf.
    pub fn push(&mut self, leaf: Hash) -> Result<(), Error> {
        let mut level = 0;
        let mut hash = leaf;
        loop {
            self.ensure_level(level)?;
            let path = level_path(&self.dir, level);
            self.writers[level].write_all(&hash).map_err(io(&path))?;
            match self.pending[level].take() {
                None => {
                    self.pending[level] = Some(hash);
                    break;
                }
                Some(left) => {
                    hash = node_hash(&left, &hash);
                    level += 1;
                }
            }
        }
        self.size += 1;
        Ok(())
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Hands buffered hashes to the operating system (so reads see them).
    pub fn flush(&mut self) -> Result<(), Error> {
        for (level, w) in self.writers.iter_mut().enumerate() {
            w.flush().map_err(io(&level_path(&self.dir, level)))?;
        }
        Ok(())
    }

    /// Flushes and makes the level files durable.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.flush()?;
        for (level, w) in self.writers.iter().enumerate() {
            w.get_ref()
                .sync_data()
                .map_err(io(&level_path(&self.dir, level)))?;
        }
        Ok(())
    }
}

impl NodeSource for TreeFiles {
    fn tree_size(&self) -> u64 {
        self.size
    }

    fn node(&self, level: u32, index: u64) -> Result<Hash, TreeError> {
        let missing = TreeError::MissingNode { level, index };
        let file = self.readers.get(level as usize).ok_or(missing.clone())?;
        if index >= nodes_at(self.size, level as usize) {
            return Err(missing);
        }
        let mut h = [0u8; 32];
        file.read_exact_at(&mut h, index * 32)
            .map_err(|_| missing)?;
        Ok(h)
    }
}
