//! The Merkle tree on disk: one file per level, `tree/LL.bin`, where level
//! `k` holds the 32-byte hashes of the complete subtrees of `2^k` leaves in
//! order. Appending a leaf writes one hash to level 0 and, when it
//! completes a pair, the parent above (two hashes per entry on average).
//! These files are derived from the segments and are rebuilt from them
//! after a crash; proofs read O(log n) hashes from them with positioned
//! reads, so nothing grows in memory with the log.

use crate::error::{Error, io};
use crate::files::{Access, LogDir};
use crate::merkle::{Hash, NodeSource, TreeError, node_hash};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

/// The level files of one log.
pub struct TreeFiles {
    dir: LogDir,
    size: u64,
    writers: Vec<BufWriter<File>>,
    readers: Vec<File>,
    /// Per level, the left sibling waiting for its pair (the level's last
    /// node when the level holds an odd number of nodes).
    pending: Vec<Option<Hash>>,
    /// Leaves level 0 held when opened: the hashes from the rebuild point
    /// up to here were recorded when their entries were appended, and a
    /// rebuild compares each before overwriting it.
    recorded: u64,
}

fn level_rel(level: usize) -> String {
    format!("tree/{level:02}.bin")
}

/// Nodes level `level` holds for a tree of `size` leaves.
fn nodes_at(size: u64, level: usize) -> u64 {
    if level >= 64 { 0 } else { size >> level }
}

impl TreeFiles {
    /// Opens (creating) the level files of the log, positioned to rebuild
    /// from leaf `size` on (or from the end of level 0 when it holds
    /// fewer); returns the files and that leaf count. Nothing is cut yet:
    /// the hashes beyond are compared with [`recorded`](Self::recorded)
    /// as the rebuild overwrites them, and [`trim`](Self::trim) cuts what
    /// is left.
    pub(crate) fn open(dir: &LogDir, size: u64) -> Result<(Self, u64), Error> {
        dir.mkdir("tree", 0o755)?;
        let level0 = dir.file(&level_rel(0), Access::Create(0o644))?;
        let recorded = level0
            .metadata()
            .map_err(io(&dir.path(&level_rel(0))))?
            .len()
            / 32;
        drop(level0);
        let have = recorded.min(size);
        let mut t = TreeFiles {
            dir: dir.clone(),
            size: have,
            writers: Vec::new(),
            readers: Vec::new(),
            pending: Vec::new(),
            recorded,
        };
        for level in 0..64 {
            let want = nodes_at(have, level);
            let rel = level_rel(level);
            let path = dir.path(&rel);
            if want == 0 && level > 0 && !dir.exists(&rel)? {
                break;
            }
            let f = dir.file(&rel, Access::Create(0o644))?;
            let len = f.metadata().map_err(io(&path))?.len();
            if len / 32 < want {
                return Err(Error::Corrupt {
                    index: None,
                    why: format!(
                        "{}: tree level {level} is shorter than its level 0; remove the tree directory to rebuild it",
                        dir.path("tree").display()
                    ),
                });
            }
            let pending = if want % 2 == 1 {
                let mut h = [0u8; 32];
                f.read_exact_at(&mut h, (want - 1) * 32)
                    .map_err(io(&path))?;
                Some(h)
            } else {
                None
            };
            let reader = f.try_clone().map_err(io(&path))?;
            let mut w = f;
            w.seek(SeekFrom::Start(want * 32)).map_err(io(&path))?;
            t.writers.push(BufWriter::with_capacity(1 << 16, w));
            t.readers.push(reader);
            t.pending.push(pending);
        }
        Ok((t, have))
    }

    /// Opens the level files for reading only, changing nothing: while
    /// another process writes the log. The tree holds the leaves level 0
    /// holds; a node not written yet reads as missing.
    pub(crate) fn open_read_only(dir: &LogDir) -> Result<Self, Error> {
        let mut readers = Vec::new();
        for level in 0..64 {
            match dir.file_opt(&level_rel(level))? {
                Some(f) => readers.push(f),
                None => break,
            }
        }
        let size = match readers.first() {
            Some(f) => f.metadata().map_err(io(&dir.path(&level_rel(0))))?.len() / 32,
            None => 0,
        };
        Ok(TreeFiles {
            dir: dir.clone(),
            size,
            writers: Vec::new(),
            readers,
            pending: Vec::new(),
            recorded: 0,
        })
    }

    /// The hash level 0 held for leaf `index` when the files were opened,
    /// if one was recorded (an all-zero slot is a crash's unwritten block,
    /// not a record).
    pub(crate) fn recorded(&self, index: u64) -> Result<Option<Hash>, Error> {
        if index >= self.recorded {
            return Ok(None);
        }
        let mut h = [0u8; 32];
        self.readers[0]
            .read_exact_at(&mut h, index * 32)
            .map_err(io(&self.dir.path(&level_rel(0))))?;
        Ok((h != [0u8; 32]).then_some(h))
    }

    /// Flushes, then cuts every level to the tree's size; `true` when
    /// something was cut (hashes of entries the segments no longer hold),
    /// in which case the files are also made durable, so those hashes can
    /// never reappear after a crash beside different entries.
    pub(crate) fn trim(&mut self) -> Result<bool, Error> {
        self.flush()?;
        let mut cut = false;
        for (level, w) in self.writers.iter().enumerate() {
            let want = nodes_at(self.size, level) * 32;
            let path = self.dir.path(&level_rel(level));
            let f = w.get_ref();
            if f.metadata().map_err(io(&path))?.len() > want {
                f.set_len(want).map_err(io(&path))?;
                cut = true;
            }
        }
        self.recorded = 0;
        if cut {
            self.sync()?;
        }
        Ok(cut)
    }

    fn ensure_level(&mut self, level: usize) -> Result<(), Error> {
        while self.writers.len() <= level {
            let rel = level_rel(self.writers.len());
            let path = self.dir.path(&rel);
            let f = self.dir.file(&rel, Access::Create(0o644))?;
            f.set_len(0).map_err(io(&path))?;
            self.readers.push(f.try_clone().map_err(io(&path))?);
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
            self.writers[level]
                .write_all(&hash)
                .map_err(io(&self.dir.path(&level_rel(level))))?;
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
            w.flush().map_err(io(&self.dir.path(&level_rel(level))))?;
        }
        Ok(())
    }

    /// Flushes and makes the level files durable.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.flush()?;
        for (level, w) in self.writers.iter().enumerate() {
            w.get_ref()
                .sync_data()
                .map_err(io(&self.dir.path(&level_rel(level))))?;
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
