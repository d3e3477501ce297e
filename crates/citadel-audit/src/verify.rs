//! Full verification from the raw files: every record's framing, checksum
//! and sequence number, every entry's hash against the tree recorded when
//! it was appended, and the root at every stored (or given) checkpoint,
//! recomputed from the entries alone. Nothing derived is trusted
//! (`state.json` is not read); the high-water mark of acknowledged entries
//! (`acked`) and every checkpoint bound how short the log may be.

use crate::checkpoint::SignedCheckpoint;
use crate::error::{Error, io};
use crate::log::load_verifier;
use crate::merkle::{Hash, empty_root, leaf_hash, node_hash};
use crate::segment::{self, Record};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// What a successful verification covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Entries checked.
    pub entries: u64,
    /// Checkpoint sizes (distinct) whose signatures and roots matched.
    pub checkpoints: Vec<u64>,
    /// Entries covered by a signed checkpoint that matched (the largest
    /// size in `checkpoints`, 0 without one): the rest are not yet.
    pub covered: u64,
    /// Entries the log's high-water mark says were acknowledged.
    pub acknowledged: u64,
    /// Bytes of a torn record at the tail (never acknowledged; the next
    /// open removes them).
    pub torn_tail_bytes: u64,
    /// The root of the whole log.
    pub root: Hash,
}

/// RFC 6962 roots of a growing prefix in O(log n) memory.
#[derive(Default)]
struct CompactRange {
    /// (height, hash), heights strictly decreasing.
    stack: Vec<(u32, Hash)>,
}

impl CompactRange {
    fn push(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(h, left)) = self.stack.last() {
            if h != node.0 {
                break;
            }
            self.stack.pop();
            node = (h + 1, node_hash(&left, &node.1));
        }
        self.stack.push(node);
    }

    fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(&(_, mut acc)) = it.next() else {
            return empty_root();
        };
        for (_, left) in it {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

fn corrupt(index: u64, why: impl Into<String>) -> Error {
    Error::Corrupt {
        index: Some(index),
        why: why.into(),
    }
}

/// Verifies the log at `dir` from its raw files, checking the stored
/// checkpoints and `extra` (the text of a checkpoint published earlier, to
/// detect truncation or rewriting behind it). The error names the first
/// bad entry where one can be named.
pub fn verify(dir: &Path, extra: Option<&str>) -> Result<Report, Error> {
    let verifier = load_verifier(dir)?;
    // Every checkpoint, signatures first.
    let mut checkpoints: Vec<(u64, Hash, String)> = Vec::new();
    let mut texts: Vec<(String, String)> = Vec::new();
    let cdir = dir.join("checkpoints");
    if let Ok(rd) = std::fs::read_dir(&cdir) {
        for e in rd.flatten() {
            let p = e.path();
            let t = std::fs::read_to_string(&p).map_err(io(&p))?;
            texts.push((p.display().to_string(), t));
        }
    }
    let latest = dir.join("checkpoint");
    if latest.exists() {
        texts.push((
            latest.display().to_string(),
            std::fs::read_to_string(&latest).map_err(io(&latest))?,
        ));
    }
    if let Some(t) = extra {
        texts.push(("the given checkpoint".into(), t.to_string()));
    }
    for (name, t) in texts {
        let s = SignedCheckpoint::open(t.as_bytes(), &verifier).map_err(|e| Error::Corrupt {
            index: None,
            why: format!("{name}: {e}"),
        })?;
        let c = s.checkpoint();
        checkpoints.push((c.size(), *c.root(), name));
    }
    checkpoints.sort_by_key(|c| c.0);
    let acked = crate::log::read_acked(dir)?;
    let floor = acked.max(checkpoints.last().map_or(0, |c| c.0));
    let level0 = dir.join("tree/00.bin");
    let mut recorded = File::open(&level0)
        .ok()
        .map(|f| BufReader::with_capacity(1 << 20, f));

    let mut range = CompactRange::default();
    let mut n: u64 = 0;
    let mut next_cp = 0usize;
    let mut good_cp: Vec<u64> = Vec::new();
    let mut last_good = 0u64;
    let mut check_cps = |n: u64, range: &CompactRange, next_cp: &mut usize| -> Result<(), Error> {
        while let Some((size, root, name)) = checkpoints.get(*next_cp) {
            if *size != n {
                break;
            }
            if range.root() != *root {
                return Err(corrupt(
                    last_good,
                    format!(
                        "the entries no longer match {name} (size {size}); the checkpoint before it that matched covers {last_good} entries, so an entry in [{last_good}, {size}) was changed, inserted or removed"
                    ),
                ));
            }
            if good_cp.last() != Some(size) {
                good_cp.push(*size);
            }
            last_good = *size;
            *next_cp += 1;
        }
        Ok(())
    };
    check_cps(0, &range, &mut next_cp)?;
    let segments = segment::list(&dir.join("segments"))?;
    let mut torn = 0;
    for (i, (first, path)) in segments.iter().enumerate() {
        if *first != n {
            return Err(corrupt(
                n,
                format!(
                    "{} starts at entry {first}, but entry {n} comes next (a segment was removed, added or renamed)",
                    path.display()
                ),
            ));
        }
        let mut r = segment::Reader::open(path)?;
        loop {
            let at = r.offset;
            let (rec, entry) = r.read_record().map_err(io(path))?;
            match rec {
                Record::Entry(ix) => {
                    if ix != n {
                        return Err(corrupt(
                            n,
                            format!(
                                "found entry number {ix} here (entries were removed, inserted, duplicated or reordered)"
                            ),
                        ));
                    }
                    let h = leaf_hash(entry);
                    // Every hash the tree recorded is compared, whatever
                    // the cache state says (an all-zero slot is a crash's
                    // unwritten block, not a record).
                    if let Some(rd) = recorded.as_mut() {
                        let mut want = [0u8; 32];
                        if rd.read_exact(&mut want).is_err() {
                            recorded = None;
                        } else if want != [0u8; 32] && want != h {
                            return Err(corrupt(
                                n,
                                "its content differs from the hash recorded when it was appended (changed afterwards)",
                            ));
                        }
                    }
                    range.push(h);
                    n += 1;
                    check_cps(n, &range, &mut next_cp)?;
                }
                Record::End => break,
                Record::Bad(why) => {
                    let len = std::fs::metadata(path).map_err(io(path))?.len();
                    let rest = len - at;
                    let last = i + 1 == segments.len();
                    let claimed = {
                        let mut h = [0u8; 4];
                        File::open(path)
                            .and_then(|f| {
                                use std::os::unix::fs::FileExt;
                                f.read_exact_at(&mut h, at)
                            })
                            .map(|_| u32::from_be_bytes(h) as u64 + segment::OVERHEAD)
                            .unwrap_or(0)
                    };
                    if last && n >= floor && (rest < 12 || claimed > rest) {
                        torn = rest;
                        break;
                    }
                    if n < floor {
                        return Err(corrupt(
                            n,
                            format!(
                                "{why} in {}, below the {floor} entries acknowledged: damage, not a torn write",
                                path.display()
                            ),
                        ));
                    }
                    return Err(corrupt(n, format!("{why} in {}", path.display())));
                }
            }
        }
    }
    if let Some((size, _, name)) = checkpoints.get(next_cp) {
        return Err(corrupt(
            n,
            format!(
                "the log has {n} entries but {name} covers {size}: entries from {n} on were removed (truncated)"
            ),
        ));
    }
    if n < acked {
        return Err(corrupt(
            n,
            format!(
                "the log has {n} entries but {acked} were acknowledged (its high-water mark): entries from {n} on were removed (truncated)"
            ),
        ));
    }
    Ok(Report {
        entries: n,
        covered: good_cp.last().copied().unwrap_or(0),
        acknowledged: acked,
        checkpoints: good_cp,
        torn_tail_bytes: torn,
        root: range.root(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::MemoryTree;

    #[test]
    fn compact_range_roots_match_the_tree_at_every_size() {
        let mut t = MemoryTree::new();
        let mut r = CompactRange::default();
        assert_eq!(r.root(), empty_root());
        for i in 0u32..300 {
            let h = leaf_hash(&i.to_be_bytes());
            t.push_leaf_hash(h);
            r.push(h);
            assert_eq!(r.root(), t.current_root(), "size {}", i + 1);
        }
    }
}
