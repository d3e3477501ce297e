//! Full verification from the raw files: every record's framing, checksum
//! and sequence number, every entry's hash against the tree recorded when
//! it was appended, and the root at every stored (or given) checkpoint,
//! recomputed from the entries alone. Nothing derived is trusted
//! (`state.json` is not read); the high-water mark of acknowledged entries
//! (`acked`) and every checkpoint bound how short the log may be.
//!
//! [`repair`] is the way back from damage to the bookkeeping files only
//! (the mark, the copy of the newest checkpoint): it verifies everything
//! else as strictly, then accepts the entries as they stand.

use crate::checkpoint::SignedCheckpoint;
use crate::error::{Error, io};
use crate::files::{Access, LogDir};
use crate::log::{
    MAX_SMALL_FILE, checkpoint_files, open_keys, read_acked, read_kept, torn_tail, verifier_at,
};
use crate::merkle::{Hash, empty_root, leaf_hash, node_hash};
use crate::segment::{self, Record};
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
    /// Entries beyond every checkpoint with no hash recorded in the tree
    /// to compare with (`tree/00.bin` shorter or zero there: a crash
    /// before the tree was synced, or removed): nothing but a future
    /// checkpoint vouches for them.
    pub unrecorded: u64,
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
    run(&LogDir::open(dir)?, extra, false)
}

/// What [`repair`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repaired {
    /// The verification the repair rests on.
    pub report: Report,
    /// The high-water mark before (`None`: missing or damaged).
    pub mark_before: Option<u64>,
    /// Whether `LOG/checkpoint` was rewritten (or removed, without any
    /// checkpoint in `LOG/checkpoints/`).
    pub checkpoint_restored: bool,
}

/// Accepts the log as it stands after damage to its bookkeeping files:
/// verifies it like [`verify`] but without trusting the high-water mark or
/// `LOG/checkpoint` (the copy of the newest checkpoint), then sets the
/// mark to the entries found and restores the copy from
/// `LOG/checkpoints/`. Every checkpoint there is still checked, so no
/// entry they cover can be given up; entries are never changed. Holds the
/// writer's lock.
pub fn repair(path: &Path) -> Result<Repaired, Error> {
    let dir = LogDir::open(path)?;
    let keys = open_keys(&dir)?;
    let Some(_lock) = keys.try_lock(std::time::Duration::ZERO)? else {
        return Err(Error::Busy(format!(
            "{} is open for writing by another process; stop it before a repair",
            path.display()
        )));
    };
    let (report, newest) = run_with(&dir, None, true)?;
    let mark_before = read_acked(&dir).ok();
    if mark_before != Some(report.entries) {
        dir.write_atomic("acked", &crate::log::encode_acked(report.entries), 0o644)?;
    }
    let current = dir.read_opt("checkpoint", MAX_SMALL_FILE).ok().flatten();
    let checkpoint_restored = match (newest, current) {
        (Some(n), c) if c.as_ref() != Some(&n) => {
            dir.write_atomic("checkpoint", &n, 0o644)?;
            true
        }
        (None, Some(_)) => {
            dir.remove("checkpoint")?;
            true
        }
        (None, None) if dir.exists("checkpoint")? => {
            dir.remove("checkpoint")?;
            true
        }
        _ => false,
    };
    Ok(Repaired {
        report,
        mark_before,
        checkpoint_restored,
    })
}

fn run(dir: &LogDir, extra: Option<&str>, repairing: bool) -> Result<Report, Error> {
    run_with(dir, extra, repairing).map(|(r, _)| r)
}

/// Verifies; also returns the text of the largest checkpoint found.
fn run_with(
    dir: &LogDir,
    extra: Option<&str>,
    repairing: bool,
) -> Result<(Report, Option<Vec<u8>>), Error> {
    let verifier = verifier_at(dir)?;
    // `keys/` must be there, and be the log owner's: a directory renamed
    // into its place hides the copy of the newest checkpoint kept there.
    let keys = dir.subdir("keys")?;
    let (log_uid, _) = dir.owner()?;
    let (keys_uid, _) = keys.owner()?;
    if keys_uid != log_uid {
        return Err(Error::Corrupt {
            index: None,
            why: format!(
                "{} belongs to uid {keys_uid}, the log to uid {log_uid}: it was replaced",
                keys.path("").display()
            ),
        });
    }
    // Every checkpoint, signatures first, one file at a time (only its
    // size and root are kept). The copies (`checkpoint`, and the one in
    // `keys/` when this user can read it) count like the others; a repair
    // skips a damaged copy, never a valid one.
    let mut checkpoints: Vec<(u64, Hash, String)> = Vec::new();
    let mut largest: Option<(u64, Vec<u8>)> = None;
    let mut sources: Vec<(&LogDir, String, bool)> = checkpoint_files(dir)?
        .into_iter()
        .map(|r| (dir, r, false))
        .collect();
    sources.push((dir, "checkpoint".into(), true));
    sources.push((&keys, String::new(), true));
    for (d, rel, copy) in sources {
        let read = if rel.is_empty() {
            read_kept(d)?
        } else {
            d.read_opt(&rel, MAX_SMALL_FILE)?
        };
        let Some(t) = read else {
            continue;
        };
        let name = d
            .path(if rel.is_empty() {
                crate::log::KEPT_CHECKPOINT
            } else {
                &rel
            })
            .display()
            .to_string();
        let c = match SignedCheckpoint::open(&t, &verifier) {
            Ok(s) => s.checkpoint().clone(),
            Err(_) if repairing && copy => continue,
            Err(e) => {
                return Err(Error::Corrupt {
                    index: None,
                    why: format!("{name}: {e}"),
                });
            }
        };
        if largest.as_ref().is_none_or(|(n, _)| *n < c.size()) {
            largest = Some((c.size(), t));
        }
        checkpoints.push((c.size(), *c.root(), name));
    }
    if let Some(t) = extra {
        let s = SignedCheckpoint::open(t.as_bytes(), &verifier).map_err(|e| Error::Corrupt {
            index: None,
            why: format!("the given checkpoint: {e}"),
        })?;
        let c = s.checkpoint();
        checkpoints.push((c.size(), *c.root(), "the given checkpoint".into()));
    }
    checkpoints.sort_by_key(|c| c.0);
    let acked = if repairing {
        read_acked(dir).unwrap_or(0)
    } else {
        read_acked(dir)?
    };
    let signed = checkpoints.last().map_or(0, |c| c.0);
    let floor = acked.max(signed);
    // The hashes recorded when entries were appended. The tree is synced
    // before every checkpoint, so below the largest checkpoint every hash
    // must be there.
    let level0_path = dir.path("tree/00.bin");
    let mut recorded = dir
        .file_opt("tree/00.bin")?
        .map(|f| BufReader::with_capacity(1 << 20, f));
    let mut unrecorded = 0u64;

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
    let segments = segment::list(dir.list("segments")?);
    let mut torn = 0;
    for (i, (first, name)) in segments.iter().enumerate() {
        let rel = format!("segments/{name}");
        let path = dir.path(&rel);
        if *first != n {
            return Err(corrupt(
                n,
                format!(
                    "{} starts at entry {first}, but entry {n} comes next (a segment was removed, added or renamed)",
                    path.display()
                ),
            ));
        }
        let file = dir.file(&rel, Access::Read)?;
        let probe = file.try_clone().map_err(io(&path))?;
        let mut r = segment::Reader::new(file, &path)?;
        loop {
            let at = r.offset;
            let (rec, entry) = r.read_record().map_err(io(&path))?;
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
                    let mut want = [0u8; 32];
                    let have = match recorded.as_mut() {
                        Some(rd) => match rd.read_exact(&mut want) {
                            Ok(()) => want != [0u8; 32],
                            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                                recorded = None;
                                false
                            }
                            Err(e) => return Err(io(&level0_path)(e)),
                        },
                        None => false,
                    };
                    if have && want != h {
                        return Err(corrupt(
                            n,
                            "its content differs from the hash recorded when it was appended (changed afterwards)",
                        ));
                    }
                    if !have {
                        if n < signed {
                            return Err(corrupt(
                                n,
                                format!(
                                    "no hash is recorded for it in {} although a checkpoint covers it (the tree is synced before every checkpoint): the tree file was truncated, zeroed or removed",
                                    level0_path.display()
                                ),
                            ));
                        }
                        unrecorded += 1;
                    }
                    range.push(h);
                    n += 1;
                    check_cps(n, &range, &mut next_cp)?;
                }
                Record::End => break,
                Record::Bad(why) => {
                    let last = i + 1 == segments.len();
                    if last && n >= floor && torn_tail(&probe, at).map_err(io(&path))? {
                        torn = probe.metadata().map_err(io(&path))?.len() - at;
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
    if n < acked && !repairing {
        return Err(corrupt(
            n,
            format!(
                "the log has {n} entries but {acked} were acknowledged (its high-water mark): entries from {n} on were removed (truncated)"
            ),
        ));
    }
    Ok((
        Report {
            entries: n,
            covered: good_cp.last().copied().unwrap_or(0),
            acknowledged: acked,
            unrecorded,
            checkpoints: good_cp,
            torn_tail_bytes: torn,
            root: range.root(),
        },
        largest.map(|(_, t)| t),
    ))
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
