//! The log on disk: append, commit, checkpoint, prove, read.
//!
//! ```text
//! LOG/log.json                 origin, segment size, sensitive fields
//! LOG/log.vkeys                the two public keys (note vkey strings)
//! LOG/keys/{ed25519,ml-dsa-65}.skey, keys/hmac.key   secrets, mode 0600
//! LOG/segments/NNN….seg        the entries (the source of truth)
//! LOG/index.bin                per entry, its offset in its segment (derived)
//! LOG/tree/LL.bin              Merkle tree levels (derived)
//! LOG/state.json               how many entries the derived files hold durably
//! LOG/acked                    the acknowledged high-water mark (fsynced)
//! LOG/checkpoint               the latest signed checkpoint
//! LOG/checkpoints/NNN….txt     every checkpoint issued
//! ```
//!
//! Invariants: an index returned by [`AuditLog::append`] is durable once
//! [`AuditLog::durable_size`] exceeds it (at once with
//! [`Durability::EveryAppend`], within the group-commit delay otherwise),
//! and the high-water mark in `LOG/acked` is fsynced before it is; opening a
//! log for writing after a crash cuts only a torn record at the tail of the
//! last segment *beyond* every acknowledged entry (the mark, and the latest
//! checkpoint's size), and rebuilds the derived files from the segments. A
//! log shorter than what was acknowledged, or damaged below it, is refused,
//! never cut. Reading ([`LogReader`], [`AuditLog::open_read`]) never changes
//! a segment.

use crate::checkpoint::{Checkpoint, LogSigner, LogVerifier, SignedCheckpoint};
use crate::error::{Error, io};
use crate::files::{Access, Lock, LogDir};
use crate::merkle::{self, Hash, NodeSource, leaf_hash};
use crate::note::{NoteSigner, NoteVerifier};
use crate::segment::{self, MAGIC, Record};
use crate::tree::TreeFiles;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// When appended entries are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `fsync` after every append: each returned index is durable at once.
    EveryAppend,
    /// Group commit: `fsync` once the oldest unsynced entry is this old
    /// (checked on each append), and on [`AuditLog::commit`].
    Group(Duration),
}

/// The log's settings (`log.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    /// Format version (1).
    pub version: u32,
    /// The checkpoint origin line and key name.
    pub origin: String,
    /// A new segment starts once the current one would exceed this size.
    pub segment_bytes: u64,
    /// Dotted paths of fields always stored as HMACs.
    #[serde(default)]
    pub sensitive: Vec<String>,
}

#[derive(Serialize, Deserialize, Default)]
struct State {
    /// Entries whose index and tree data were fsynced.
    derived: u64,
}

const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// How long opening for writing waits for the lock (a reader rebuilding
/// the derived files holds it that long).
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The largest small file of a log (settings, keys, a checkpoint) read.
pub(crate) const MAX_SMALL_FILE: u64 = 64 << 10;

fn read_text(dir: &LogDir, rel: &str) -> Result<String, Error> {
    String::from_utf8(dir.read(rel, MAX_SMALL_FILE)?).map_err(|_| Error::Corrupt {
        index: None,
        why: format!("{} is not UTF-8 text", dir.path(rel).display()),
    })
}

fn segment_rel(name: &str) -> String {
    format!("segments/{name}")
}

/// The high-water mark file: entries below the size it holds were
/// acknowledged (made durable and reported to the writer).
const ACKED: &str = "acked";

pub(crate) fn encode_acked(size: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&size.to_be_bytes());
    let crc = crc32fast::hash(&size.to_be_bytes());
    b[8..12].copy_from_slice(&crc.to_be_bytes());
    b[12..].copy_from_slice(b"ACK\n");
    b
}

/// The size in the high-water mark of the log. `init` writes it, so a
/// missing mark is damage like a garbled one.
pub(crate) fn read_acked(dir: &LogDir) -> Result<u64, Error> {
    let p = dir.path(ACKED);
    let damaged = |what: &str| Error::Corrupt {
        index: None,
        why: format!(
            "{} is {what}: how many entries were acknowledged is unknown; `citadel audit verify` checks the rest of the log, and `citadel audit repair` accepts the log as it stands",
            p.display()
        ),
    };
    let b = dir.read_opt(ACKED, 64)?.ok_or_else(|| damaged("missing"))?;
    let ok =
        b.len() == 16 && &b[12..] == b"ACK\n" && crc32fast::hash(&b[..8]).to_be_bytes() == b[8..12];
    if !ok {
        return Err(damaged("damaged"));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[..8]);
    Ok(u64::from_be_bytes(n))
}

/// The newest checkpoint among `LOG/checkpoint` and the highest-numbered
/// file of `LOG/checkpoints/`, verified with `v`; `None` without any. A
/// file that does not verify is damage, named in the error.
pub(crate) fn newest_checkpoint(
    dir: &LogDir,
    keys: Option<&LogDir>,
    v: &LogVerifier,
) -> Result<Option<SignedCheckpoint>, Error> {
    let mut found: Option<SignedCheckpoint> = None;
    let last = checkpoint_files(dir)?.pop();
    let kept = match keys {
        Some(k) => read_kept(k)?.map(|b| (k.path(KEPT_CHECKPOINT), b)),
        None => None,
    };
    let mut files = Vec::new();
    for rel in ["checkpoint".to_string()].into_iter().chain(last) {
        if let Some(b) = dir.read_opt(&rel, MAX_SMALL_FILE)? {
            files.push((dir.path(&rel), b));
        }
    }
    for (path, bytes) in kept.into_iter().chain(files) {
        let c = SignedCheckpoint::open(&bytes, v).map_err(|e| Error::Corrupt {
            index: None,
            why: format!(
                "{}: {e}: restore it (`LOG/checkpoint` is a copy of the newest of `LOG/checkpoints/`; `citadel audit repair` rewrites it), then run `citadel audit verify`",
                path.display()
            ),
        })?;
        if found
            .as_ref()
            .is_none_or(|f| f.checkpoint().size() < c.checkpoint().size())
        {
            found = Some(c);
        }
    }
    Ok(found)
}

/// The copy of the newest checkpoint signed, in `keys/`, where only the
/// key holder can write: nobody else can remove or replace it to make the
/// log look younger than what was signed.
pub(crate) const KEPT_CHECKPOINT: &str = "checkpoint";

/// Reads the kept copy in `keys`, `None` when missing or unreadable by
/// this user.
pub(crate) fn read_kept(keys: &LogDir) -> Result<Option<Vec<u8>>, Error> {
    match keys.read_opt(KEPT_CHECKPOINT, MAX_SMALL_FILE) {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::PermissionDenied => {
            Ok(None)
        }
        r => r,
    }
}

/// Opens the log's `keys/` once, and checks that handle: it must be this
/// user's own and writable by nobody else. Every key, the kept checkpoint
/// and the writer's lock are then read and written through it, so a
/// directory renamed into its place meanwhile is never used.
pub(crate) fn open_keys(dir: &LogDir) -> Result<LogDir, Error> {
    let k = dir.subdir("keys")?;
    k.check_private()?;
    Ok(k)
}

/// Reads a key file from the keys directory.
fn read_key(keys: &LogDir, rel: &str) -> Result<Zeroizing<String>, Error> {
    Ok(Zeroizing::new(read_text(keys, rel)?))
}

/// The files of `LOG/checkpoints/` (`checkpoints/NNN….txt`), oldest first.
pub(crate) fn checkpoint_files(dir: &LogDir) -> Result<Vec<String>, Error> {
    if !dir.exists("checkpoints")? {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = dir
        .list("checkpoints")?
        .into_iter()
        .filter(|n| n.ends_with(".txt") && !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names
        .into_iter()
        .map(|n| format!("checkpoints/{n}"))
        .collect())
}

/// How many entries of the log at `dir` were acknowledged: the largest of
/// the high-water mark and the newest checkpoint's size (verified with the
/// log's keys). Entries below it were durable when reported, so they can
/// be missing or damaged only by tampering or a failing disk.
pub fn acknowledged(dir: &Path) -> Result<u64, Error> {
    acknowledged_at(&LogDir::open(dir)?)
}

fn acknowledged_at(dir: &LogDir) -> Result<u64, Error> {
    let mark = read_acked(dir)?;
    let v = verifier_at(dir)?;
    let keys = open_keys(dir).ok();
    let covered = newest_checkpoint(dir, keys.as_ref(), &v)?.map_or(0, |c| c.checkpoint().size());
    Ok(mark.max(covered))
}

/// The public keys of the log at `dir` (from `log.vkeys`) as a verifier
/// requiring both signatures.
pub fn load_verifier(dir: &Path) -> Result<LogVerifier, Error> {
    verifier_at(&LogDir::open(dir)?)
}

pub(crate) fn verifier_at(dir: &LogDir) -> Result<LogVerifier, Error> {
    let config = load_config(dir)?;
    verifier_from_vkeys(&config.origin, &read_text(dir, "log.vkeys")?)
}

/// A verifier from the two vkey lines of a `log.vkeys` file.
pub fn verifier_from_vkeys(origin: &str, text: &str) -> Result<LogVerifier, Error> {
    let keys: Vec<NoteVerifier> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| NoteVerifier::parse(l.trim()))
        .collect::<Result<_, _>>()?;
    let [a, b] = <[NoteVerifier; 2]>::try_from(keys)
        .map_err(|_| Error::Setup("a vkeys file holds exactly two keys".into()))?;
    let (ed, ml) = if a.signature_type() == crate::note::SignatureType::Ed25519 {
        (a, b)
    } else {
        (b, a)
    };
    Ok(LogVerifier::new(origin, ed, ml)?)
}

pub(crate) fn load_config(dir: &LogDir) -> Result<Config, Error> {
    let p = dir.path("log.json");
    let Some(text) = dir.read_opt("log.json", MAX_SMALL_FILE)? else {
        return Err(Error::Setup(format!(
            "{} is not an audit log (no log.json); create one with `citadel audit init`",
            dir.root_path().display()
        )));
    };
    let c: Config =
        serde_json::from_slice(&text).map_err(|e| Error::Setup(format!("{}: {e}", p.display())))?;
    if c.version != 1 {
        return Err(Error::Setup(format!(
            "{}: unsupported version {}",
            p.display(),
            c.version
        )));
    }
    Ok(c)
}

/// How an [`AuditLog`] was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// For appending: this process holds the writer's lock.
    Write,
    /// For reading, holding the writer's lock: the derived files may be
    /// rebuilt.
    Read,
    /// For reading while another process writes: nothing is changed, and
    /// the log ends where the derived files the writer flushed end.
    Live,
}

/// An open log, for appending and reading.
pub struct AuditLog {
    dir: LogDir,
    config: Config,
    durability: Durability,
    mode: Mode,
    /// The high-water mark file (when writing).
    acked: Option<File>,
    /// The keys directory, opened once (when writing, or reading with the
    /// lock).
    keys: Option<LogDir>,
    /// The writer's lock (when writing).
    _lock: Option<Lock>,
    segments: Vec<(u64, String)>,
    seg: BufWriter<File>,
    seg_len: u64,
    offsets: BufWriter<File>,
    offsets_reader: File,
    tree: TreeFiles,
    size: u64,
    durable: u64,
    oldest_unsynced: Option<Instant>,
    record: Vec<u8>,
}

fn busy(dir: &LogDir) -> Error {
    Error::Busy(format!(
        "{} is open for writing by another process (a running vault's audit device, or another `citadel audit` command): a log has one writer at a time; wait for it or stop it",
        dir.root_path().display()
    ))
}

impl AuditLog {
    /// Creates a log in `dir` (which must not hold one), with new Ed25519
    /// and ML-DSA-65 signing keys and an HMAC key.
    pub fn init(dir: &Path, origin: &str) -> Result<LogVerifier, Error> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let d = LogDir::open(dir)?;
        let me = rustix::process::geteuid().as_raw();
        if d.owner()?.0 != me {
            return Err(Error::Setup(format!(
                "{} must belong to the user who keeps the log (uid {me}): its keys are checked against its owner",
                dir.display()
            )));
        }
        if d.exists("log.json")? || d.exists("keys")? {
            return Err(Error::Setup(format!(
                "{} already holds an audit log",
                dir.display()
            )));
        }
        let signer = LogSigner::generate(origin)?;
        d.mkdir("keys", 0o700)?;
        let keys = open_keys(&d)?;
        let Some(_lock) = keys.try_lock(Duration::ZERO)? else {
            return Err(busy(&d));
        };
        for sub in ["segments", "tree", "checkpoints"] {
            d.mkdir(sub, 0o755)?;
        }
        keys.write_atomic("ed25519.skey", signer.ed25519().skey()?.as_bytes(), 0o600)?;
        keys.write_atomic(
            "ml-dsa-65.skey",
            signer.ml_dsa_65().skey()?.as_bytes(),
            0o600,
        )?;
        let hmac = citadel_crypto::random::secret_array::<32>()
            .map_err(|e| Error::Setup(format!("random: {e}")))?;
        keys.write_atomic(
            "hmac.key",
            Zeroizing::new(hex::encode(hmac.as_slice())).as_bytes(),
            0o600,
        )?;
        let v = signer.verifier();
        let vkeys = v
            .keys()
            .iter()
            .map(|k| format!("{}\n", k.vkey()))
            .collect::<String>();
        d.write_atomic("log.vkeys", vkeys.as_bytes(), 0o644)?;
        d.write_atomic(&segment_rel(&segment::file_name(0)), MAGIC, 0o644)?;
        d.write_atomic(
            "state.json",
            &serde_json::to_vec(&State::default()).unwrap_or_default(),
            0o644,
        )?;
        d.write_atomic(ACKED, &encode_acked(0), 0o644)?;
        let config = Config {
            version: 1,
            origin: origin.to_string(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            sensitive: Vec::new(),
        };
        let json = serde_json::to_vec_pretty(&config).map_err(|e| Error::Setup(e.to_string()))?;
        d.write_atomic("log.json", &json, 0o644)?;
        Ok(v)
    }

    /// Opens the log at `dir` for appending, recovering from a crash: a
    /// torn record at the tail of the last segment, beyond every
    /// acknowledged entry, is cut off (it was never acknowledged) and the
    /// derived index and tree are brought up to date, each rebuilt hash
    /// compared with the one recorded when its entry was appended. A log
    /// damaged or shorter below what was acknowledged, or whose entries
    /// differ from their recorded hashes, is refused and left as it is.
    ///
    /// The process holds the log's writer lock (an exclusive `flock` on
    /// its directory) until the log is dropped: a second writer gets
    /// [`Error::Busy`].
    pub fn open(dir: &Path, durability: Durability) -> Result<Self, Error> {
        Self::open_with(dir, durability, true)
    }

    /// Opens the log at `dir` for reading and proofs; appending is
    /// refused. With no writer, like [`AuditLog::open`] but a torn tail is
    /// left in place (the log ends before it), and only the derived files
    /// (index and tree, caches of the segments) may be rebuilt. While
    /// another process writes the log, nothing is changed: the log ends
    /// where the derived files that writer flushed end.
    pub fn open_read(dir: &Path) -> Result<Self, Error> {
        Self::open_with(dir, Durability::EveryAppend, false)
    }

    fn open_with(path: &Path, durability: Durability, write: bool) -> Result<Self, Error> {
        let dir = LogDir::open(path)?;
        let config = load_config(&dir)?;
        // A reader holds the lock only while it rebuilds; a writer waits
        // that long for it.
        let wait = if write { LOCK_WAIT } else { Duration::ZERO };
        let keys = match open_keys(&dir) {
            Ok(k) => k,
            // Another user's log: read beside whoever writes it.
            Err(_) if !write => return Self::open_live(dir, config),
            Err(e) => return Err(e),
        };
        let Some(lock) = keys.try_lock(wait)? else {
            if write {
                return Err(busy(&dir));
            }
            return Self::open_live(dir, config);
        };
        let newest = newest_checkpoint(&dir, Some(&keys), &verifier_at(&dir)?)?;
        let signed = newest.as_ref().map_or(0, |c| c.checkpoint().size());
        let floor = read_acked(&dir)?.max(signed);
        let segments = segment::list(dir.list("segments")?);
        let Some((_, last_name)) = segments.last() else {
            return Err(Error::Corrupt {
                index: None,
                why: format!("{}: no segment files", dir.path("segments").display()),
            });
        };
        let last_rel = segment_rel(last_name);
        let state: State = dir
            .read_opt("state.json", MAX_SMALL_FILE)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        // Derived data is trusted only up to what was fsynced and what the
        // newest checkpoint signed (whose root it must then give), and only
        // from the start of a segment, which is where recovery rescans.
        let trusted = match &newest {
            Some(c) => state.derived.min(c.checkpoint().size()),
            None => state.derived,
        };
        let start_seg = segments
            .iter()
            .rposition(|(first, _)| *first <= trusted)
            .unwrap_or(0);
        let rescan_from = segments[start_seg].0;
        let offsets_path = dir.path("index.bin");
        let offsets_file = dir.file("index.bin", Access::Create(0o644))?;
        let have_offsets = offsets_file.metadata().map_err(io(&offsets_path))?.len() / 8;
        if have_offsets < rescan_from {
            return Err(Error::Corrupt {
                index: Some(have_offsets),
                why: "index.bin is shorter than its fsynced length; run `citadel audit verify`"
                    .into(),
            });
        }
        offsets_file
            .set_len(rescan_from * 8)
            .map_err(io(&offsets_path))?;
        let (mut tree, in_tree) = TreeFiles::open(&dir, rescan_from)?;
        if in_tree < rescan_from {
            return Err(Error::Corrupt {
                index: Some(in_tree),
                why: "the tree files are shorter than their fsynced length; remove LOG/tree and LOG/state.json to rebuild"
                    .into(),
            });
        }
        let offsets_reader = offsets_file.try_clone().map_err(io(&offsets_path))?;
        let mut offsets = BufWriter::with_capacity(1 << 16, offsets_file);
        std::io::Seek::seek(&mut offsets, std::io::SeekFrom::End(0)).map_err(io(&offsets_path))?;
        // Rescan: every segment from `start_seg`; only the last may end in
        // a torn record.
        let mut size = rescan_from;
        let mut seg_len = 0;
        for (i, (first, name)) in segments.iter().enumerate().skip(start_seg) {
            let last = i + 1 == segments.len();
            let rel = segment_rel(name);
            let path = dir.path(&rel);
            if *first != size {
                return Err(Error::Corrupt {
                    index: Some(size),
                    why: format!(
                        "{} should start at entry {size}; run `citadel audit verify`",
                        path.display()
                    ),
                });
            }
            let file = dir.file(&rel, Access::Read)?;
            let probe = file.try_clone().map_err(io(&path))?;
            let mut r = segment::Reader::new(file, &path)?;
            loop {
                let at = r.offset;
                let (rec, entry) = r.read_record().map_err(io(&path))?;
                match rec {
                    Record::Entry(ix) if ix == size => {
                        let h = leaf_hash(entry);
                        if tree.recorded(size)?.is_some_and(|want| want != h) {
                            return Err(Error::Corrupt {
                                index: Some(size),
                                why: format!(
                                    "in {}: its content differs from the hash recorded when it was appended (changed afterwards); nothing was signed or removed: restore the segment from a copy, and run `citadel audit verify`",
                                    path.display()
                                ),
                            });
                        }
                        tree.push(h)?;
                        offsets
                            .write_all(&at.to_be_bytes())
                            .map_err(io(&offsets_path))?;
                        size += 1;
                    }
                    Record::Entry(ix) => {
                        return Err(Error::Corrupt {
                            index: Some(size),
                            why: format!(
                                "found entry number {ix} where {size} belongs; run `citadel audit verify`"
                            ),
                        });
                    }
                    Record::End => break,
                    Record::Bad(why) => {
                        if size < floor {
                            return Err(Error::Corrupt {
                                index: Some(size),
                                why: format!(
                                    "{why} in {}, but {floor} entries were acknowledged: this is damage, not a torn write, and nothing was removed; restore the segment from a copy (`citadel audit verify` names the first bad entry)",
                                    path.display()
                                ),
                            });
                        }
                        if !last || !torn_tail(&probe, at).map_err(io(&path))? {
                            return Err(Error::Corrupt {
                                index: Some(size),
                                why: format!(
                                    "{why} in {}; run `citadel audit verify`",
                                    path.display()
                                ),
                            });
                        }
                        // Never acknowledged: cut it off (when writing).
                        if write {
                            let f = dir.file(&rel, Access::ReadWrite)?;
                            f.set_len(at).map_err(io(&path))?;
                            f.sync_all().map_err(io(&path))?;
                        }
                        break;
                    }
                }
            }
            seg_len = r.offset;
        }
        if size < floor {
            return Err(Error::Corrupt {
                index: Some(size),
                why: format!(
                    "the log holds {size} entries but {floor} were acknowledged: entries from {size} on were removed (truncated); nothing was changed"
                ),
            });
        }
        offsets.flush().map_err(io(&offsets_path))?;
        tree.trim()?;
        if let Some(c) = &newest {
            let c = c.checkpoint();
            if merkle::root_at(&tree, c.size())? != *c.root() {
                return Err(Error::Corrupt {
                    index: None,
                    why: format!(
                        "the tree files do not give the root signed at size {} (a tree file or an entry below it was changed): remove {} and {} to rebuild them from the segments, then run `citadel audit verify`",
                        c.size(),
                        dir.path("tree").display(),
                        dir.path("state.json").display()
                    ),
                });
            }
        }
        let (seg_file, acked) = if write {
            // Temporary files a crash left behind (a segment or checkpoint
            // being created) are removed.
            for sub in ["segments", "checkpoints"] {
                if !dir.exists(sub)? {
                    continue;
                }
                for name in dir.list(sub)? {
                    if name.ends_with(".tmp") {
                        dir.remove(&format!("{sub}/{name}"))?;
                    }
                }
            }
            // The files this open created (index, tree levels) stay.
            dir.sync_dir("tree")?;
            dir.sync_dir("")?;
            let seg_file = dir.file(&last_rel, Access::Append)?;
            // What the segment holds now counts as acknowledged from here
            // on: make it durable first.
            seg_file.sync_data().map_err(io(&dir.path(&last_rel)))?;
            let p = dir.path(ACKED);
            let f = dir.file(ACKED, Access::ReadWrite)?;
            f.write_all_at(&encode_acked(size), 0).map_err(io(&p))?;
            f.sync_data().map_err(io(&p))?;
            (seg_file, Some(f))
        } else {
            (dir.file(&last_rel, Access::Read)?, None)
        };
        Ok(Self {
            dir,
            config,
            durability,
            mode: if write { Mode::Write } else { Mode::Read },
            acked,
            keys: Some(keys),
            // A reader lets go once the derived files are rebuilt.
            _lock: write.then_some(lock),
            segments,
            seg: BufWriter::with_capacity(1 << 20, seg_file),
            seg_len,
            offsets,
            offsets_reader,
            tree,
            size,
            durable: size,
            oldest_unsynced: None,
            record: Vec::with_capacity(4096),
        })
    }

    /// Opens a log another process writes, changing nothing.
    fn open_live(dir: LogDir, config: Config) -> Result<Self, Error> {
        let segments = segment::list(dir.list("segments")?);
        let Some((_, last_name)) = segments.last() else {
            return Err(Error::Corrupt {
                index: None,
                why: format!("{}: no segment files", dir.path("segments").display()),
            });
        };
        let seg_file = dir.file(&segment_rel(last_name), Access::Read)?;
        let offsets_path = dir.path("index.bin");
        let offsets_file = dir.file("index.bin", Access::Read)?;
        let indexed = offsets_file.metadata().map_err(io(&offsets_path))?.len() / 8;
        let tree = TreeFiles::open_read_only(&dir)?;
        let size = indexed.min(tree.size());
        Ok(Self {
            offsets_reader: offsets_file.try_clone().map_err(io(&offsets_path))?,
            offsets: BufWriter::new(offsets_file),
            dir,
            config,
            durability: Durability::EveryAppend,
            mode: Mode::Live,
            acked: None,
            keys: None,
            _lock: None,
            segments,
            seg: BufWriter::new(seg_file),
            seg_len: 0,
            tree,
            size,
            durable: size,
            oldest_unsynced: None,
            record: Vec::new(),
        })
    }

    /// Whether another process was writing the log when it was opened for
    /// reading: the log then ends where that writer's flushed derived
    /// files end, and entries may follow.
    pub fn is_live(&self) -> bool {
        self.mode == Mode::Live
    }

    /// The log's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        self.dir.root_path()
    }

    /// Entries in the log (durable or not yet).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Entries that are durable: indexes below this survive a crash.
    pub fn durable_size(&self) -> u64 {
        self.durable
    }

    /// The HMAC key for sensitive fields (`keys/hmac.key`).
    pub fn hmac_key(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        match &self.keys {
            Some(k) => read_hmac_key(k),
            None => read_hmac_key(&open_keys(&self.dir)?),
        }
    }

    /// Checks `entry` (a JSON object), stores its sensitive fields (the
    /// log's own list plus `sensitive`) as HMACs, and appends it.
    pub fn append_entry(
        &mut self,
        entry: serde_json::Value,
        sensitive: &[String],
        hmac_key: &[u8],
    ) -> Result<u64, Error> {
        let mut fields = self.config.sensitive.clone();
        fields.extend_from_slice(sensitive);
        let bytes = crate::entry::prepare(entry, &fields, hmac_key)?;
        self.append(&bytes)
    }

    /// Appends raw entry bytes; returns the entry's index. It is durable
    /// once [`durable_size`](Self::durable_size) exceeds the index.
    pub fn append(&mut self, entry: &[u8]) -> Result<u64, Error> {
        // A file error because the directory went away is told as that.
        self.append_inner(entry)
            .map_err(|e| match (&e, self.dir.check_present()) {
                (Error::Io { .. }, Err(gone)) => gone,
                _ => e,
            })
    }

    fn append_inner(&mut self, entry: &[u8]) -> Result<u64, Error> {
        if self.mode != Mode::Write {
            return Err(Error::Setup(
                "the log was opened for reading; open it for writing to append".into(),
            ));
        }
        if entry.len() > segment::MAX_ENTRY {
            return Err(Error::InvalidEntry(format!(
                "{} bytes is over the {} byte limit",
                entry.len(),
                segment::MAX_ENTRY
            )));
        }
        let rec_len = entry.len() as u64 + segment::OVERHEAD;
        if self.seg_len + rec_len > self.config.segment_bytes && self.seg_len > MAGIC.len() as u64 {
            self.roll()?;
        }
        let index = self.size;
        self.record.clear();
        segment::encode_record(index, entry, &mut self.record);
        let seg_path = self.current_segment();
        self.seg.write_all(&self.record).map_err(io(&seg_path))?;
        self.offsets
            .write_all(&self.seg_len.to_be_bytes())
            .map_err(io(&self.dir.path("index.bin")))?;
        self.tree.push(leaf_hash(entry))?;
        self.seg_len += rec_len;
        self.size += 1;
        match self.durability {
            Durability::EveryAppend => self.commit()?,
            Durability::Group(delay) => {
                let oldest = *self.oldest_unsynced.get_or_insert_with(Instant::now);
                if oldest.elapsed() >= delay {
                    self.commit()?;
                }
            }
        }
        Ok(index)
    }

    /// The path of the segment being written, for messages.
    fn current_segment(&self) -> PathBuf {
        let name = self.segments.last().map_or("", |(_, n)| n.as_str());
        self.dir.path(&segment_rel(name))
    }

    /// Seals the current segment and starts the next.
    fn roll(&mut self) -> Result<(), Error> {
        self.commit()?;
        let name = segment::file_name(self.size);
        let rel = segment_rel(&name);
        self.dir.write_atomic(&rel, MAGIC, 0o644)?;
        let f = self.dir.file(&rel, Access::Append)?;
        self.seg = BufWriter::with_capacity(1 << 20, f);
        self.seg_len = MAGIC.len() as u64;
        self.segments.push((self.size, name));
        Ok(())
    }

    /// Makes every appended entry durable (one `fdatasync` of the segment).
    pub fn commit(&mut self) -> Result<(), Error> {
        self.commit_inner()
            .map_err(|e| match (&e, self.dir.check_present()) {
                (Error::Io { .. }, Err(gone)) => gone,
                _ => e,
            })
    }

    fn commit_inner(&mut self) -> Result<(), Error> {
        let seg_path = self.current_segment();
        self.seg.flush().map_err(io(&seg_path))?;
        if self.durable < self.size {
            self.seg.get_ref().sync_data().map_err(io(&seg_path))?;
            // Only now can nothing reach the new entries but their files.
            self.dir.check_present()?;
            // The mark only ever follows data already durable.
            if let Some(f) = &self.acked {
                let p = self.dir.path(ACKED);
                f.write_all_at(&encode_acked(self.size), 0)
                    .map_err(io(&p))?;
                f.sync_data().map_err(io(&p))?;
            }
        }
        self.offsets
            .flush()
            .map_err(io(&self.dir.path("index.bin")))?;
        self.tree.flush()?;
        self.durable = self.size;
        self.oldest_unsynced = None;
        Ok(())
    }

    /// Commits and also makes the derived files durable, so the next open
    /// need not rebuild them.
    pub fn close(mut self) -> Result<(), Error> {
        self.sync_all()
    }

    fn sync_all(&mut self) -> Result<(), Error> {
        self.commit()?;
        if self.mode != Mode::Write {
            return Ok(());
        }
        self.dir.check_present()?;
        let ip = self.dir.path("index.bin");
        self.offsets.get_ref().sync_data().map_err(io(&ip))?;
        self.tree.sync()?;
        let state = State { derived: self.size };
        self.dir.write_atomic(
            "state.json",
            &serde_json::to_vec(&state).unwrap_or_default(),
            0o644,
        )
    }

    /// The root hash of the first `size` entries.
    pub fn root(&mut self, size: u64) -> Result<Hash, Error> {
        self.commit()?;
        Ok(merkle::root_at(&self.tree, size)?)
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&mut self, index: u64, size: u64) -> Result<Vec<Hash>, Error> {
        self.commit()?;
        Ok(merkle::prove_inclusion(&self.tree, index, size)?)
    }

    /// The consistency proof between tree sizes `old` and `new`.
    pub fn consistency_proof(&mut self, old: u64, new: u64) -> Result<Vec<Hash>, Error> {
        self.commit()?;
        Ok(merkle::prove_consistency(&self.tree, old, new)?)
    }

    /// The tree, for proofs without the commit (call [`commit`](Self::commit) first).
    pub fn tree(&self) -> &impl NodeSource {
        &self.tree
    }

    /// The stored bytes of entry `index`.
    pub fn entry(&mut self, index: u64) -> Result<Vec<u8>, Error> {
        if index >= self.size {
            return Err(Error::OutOfRange(format!(
                "entry {index} does not exist; the log has {} entries",
                self.size
            )));
        }
        self.commit()?;
        let mut off = [0u8; 8];
        let ip = self.dir.path("index.bin");
        self.offsets_reader
            .read_exact_at(&mut off, index * 8)
            .map_err(io(&ip))?;
        let offset = u64::from_be_bytes(off);
        let seg = self.segments.partition_point(|(first, _)| *first <= index);
        let (_, name) = &self.segments[seg.saturating_sub(1)];
        let rel = segment_rel(name);
        let path = &self.dir.path(&rel);
        let f = self.dir.file(&rel, Access::Read)?;
        let mut head = [0u8; 12];
        f.read_exact_at(&mut head, offset).map_err(io(path))?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let mut ix = [0u8; 8];
        ix.copy_from_slice(&head[4..]);
        if len > segment::MAX_ENTRY || u64::from_be_bytes(ix) != index {
            return Err(Error::Corrupt {
                index: Some(index),
                why: "the index points at the wrong record; run `citadel audit verify`".into(),
            });
        }
        let mut rec = vec![0u8; 12 + len + 4];
        f.read_exact_at(&mut rec, offset).map_err(io(path))?;
        let crc = u32::from_be_bytes([rec[12 + len], rec[13 + len], rec[14 + len], rec[15 + len]]);
        if crc32fast::hash(&rec[..12 + len]) != crc {
            return Err(Error::Corrupt {
                index: Some(index),
                why: "the record's checksum does not match".into(),
            });
        }
        Ok(rec[12..12 + len].to_vec())
    }

    /// Calls `f(index, entry)` for entries from `from` on, in order, until
    /// it returns `false`.
    pub fn scan(&mut self, from: u64, f: impl FnMut(u64, &[u8]) -> bool) -> Result<(), Error> {
        self.commit()?;
        scan_segments(&self.dir, &self.segments, self.size, from, f)
    }

    /// Signs a checkpoint of the whole log with both keys, stores it as
    /// `checkpoint` and under `checkpoints/`, and returns it. The tree must
    /// extend the newest checkpoint already issued (its root at that size
    /// is the one signed then): a log whose earlier entries changed is
    /// refused, never signed.
    pub fn checkpoint(&mut self) -> Result<SignedCheckpoint, Error> {
        // A file error because the directory went away is told as that.
        self.checkpoint_inner()
            .map_err(|e| match (&e, self.dir.check_present()) {
                (Error::Io { .. }, Err(gone)) => gone,
                _ => e,
            })
    }

    fn checkpoint_inner(&mut self) -> Result<SignedCheckpoint, Error> {
        if self.mode != Mode::Write {
            return Err(Error::Setup(
                "the log was opened for reading; open it for writing to sign a checkpoint".into(),
            ));
        }
        self.sync_all()?;
        if let Some(prev) = self.latest_checkpoint()? {
            let c = prev.checkpoint();
            if c.size() > self.size || merkle::root_at(&self.tree, c.size())? != *c.root() {
                return Err(Error::Corrupt {
                    index: None,
                    why: format!(
                        "the log no longer extends its checkpoint of size {} (entries below it were changed or removed); nothing was signed: run `citadel audit verify`",
                        c.size()
                    ),
                });
            }
        }
        let keys = self.keys.as_ref().ok_or_else(|| {
            Error::Setup(
                "the log was opened for reading; open it for writing to sign a checkpoint".into(),
            )
        })?;
        let ed = NoteSigner::parse(&read_key(keys, "ed25519.skey")?)?;
        let ml = NoteSigner::parse(&read_key(keys, "ml-dsa-65.skey")?)?;
        let signer = LogSigner::new(ed, ml)?;
        let root = merkle::root_at(&self.tree, self.size)?;
        let cp = Checkpoint::new(&self.config.origin, self.size, root)?;
        let signed = SignedCheckpoint::sign(cp, &signer)?;
        let text = signed.to_text();
        self.dir.mkdir("checkpoints", 0o755)?;
        self.dir.write_atomic(
            &format!("checkpoints/{:020}.txt", self.size),
            text.as_bytes(),
            0o644,
        )?;
        self.dir
            .write_atomic("checkpoint", text.as_bytes(), 0o644)?;
        keys.write_atomic(KEPT_CHECKPOINT, text.as_bytes(), 0o600)?;
        Ok(signed)
    }

    /// The newest stored checkpoint (of `checkpoint` and the files of
    /// `checkpoints/`), verified with the log's public keys.
    pub fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, Error> {
        newest_checkpoint(&self.dir, self.keys.as_ref(), &verifier_at(&self.dir)?)
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        // Acknowledged entries were committed already; this only saves the
        // next open a rebuild. Errors here cannot be reported.
        let _ = self.commit();
    }
}

/// Calls `f(index, entry)` for the entries `from..size` of `segments`, in
/// order, until it returns `false`; a bad record at the end of the log (a
/// torn tail left in place) ends it, anywhere else it is an error.
fn scan_segments(
    dir: &LogDir,
    segments: &[(u64, String)],
    size: u64,
    from: u64,
    mut f: impl FnMut(u64, &[u8]) -> bool,
) -> Result<(), Error> {
    let start = segments
        .partition_point(|(first, _)| *first <= from)
        .saturating_sub(1);
    for (first, name) in &segments[start..] {
        let mut next = *first;
        let rel = segment_rel(name);
        let path = &dir.path(&rel);
        let mut r = segment::Reader::new(dir.file(&rel, Access::Read)?, path)?;
        loop {
            match r.read_record().map_err(io(path))? {
                (Record::Entry(ix), _) if ix >= size => return Ok(()),
                (Record::Entry(ix), e) => {
                    next = ix + 1;
                    if ix >= from && !f(ix, e) {
                        return Ok(());
                    }
                }
                (Record::End, _) => break,
                (Record::Bad(_), _) if next >= size => return Ok(()),
                (Record::Bad(why), _) => {
                    return Err(Error::Corrupt {
                        index: Some(next),
                        why: format!("{why} in {}", path.display()),
                    });
                }
            }
        }
    }
    Ok(())
}

/// A log read straight from its segments, changing nothing on disk (not
/// even the derived files): for `tail` and `search`, also on a read-only
/// copy.
pub struct LogReader {
    dir: LogDir,
    segments: Vec<(u64, String)>,
    size: u64,
}

impl LogReader {
    /// Opens the log at `dir` for reading. The log ends at its last whole
    /// record (a torn tail beyond every acknowledged entry is skipped, not
    /// removed); a log shorter than what was acknowledged is refused.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let dir = LogDir::open(path)?;
        load_config(&dir)?;
        // What was acknowledged before the segments are read: a writer
        // appending meanwhile only adds to them.
        let floor = acknowledged_at(&dir)?;
        let segments = segment::list(dir.list("segments")?);
        let Some((last_first, last_name)) = segments.last() else {
            return Err(Error::Corrupt {
                index: None,
                why: format!("{}: no segment files", dir.path("segments").display()),
            });
        };
        let mut size = *last_first;
        let last_rel = segment_rel(last_name);
        let last_path = &dir.path(&last_rel);
        let mut r = segment::Reader::new(dir.file(&last_rel, Access::Read)?, last_path)?;
        loop {
            match r.read_record().map_err(io(last_path))? {
                (Record::Entry(ix), _) if ix == size => size += 1,
                (Record::Entry(ix), _) => {
                    return Err(Error::Corrupt {
                        index: Some(size),
                        why: format!(
                            "found entry number {ix} where {size} belongs; run `citadel audit verify`"
                        ),
                    });
                }
                (Record::End, _) | (Record::Bad(_), _) => break,
            }
        }
        if size < floor {
            return Err(Error::Corrupt {
                index: Some(size),
                why: format!(
                    "the log holds {size} readable entries but {floor} were acknowledged (entries removed, or damaged); run `citadel audit verify`"
                ),
            });
        }
        Ok(Self {
            dir,
            segments,
            size,
        })
    }

    /// Entries in the log.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The HMAC key for sensitive fields (`keys/hmac.key`).
    pub fn hmac_key(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        read_hmac_key(&open_keys(&self.dir)?)
    }

    /// Calls `f(index, entry)` for entries from `from` on, in order, until
    /// it returns `false`.
    pub fn scan(&self, from: u64, f: impl FnMut(u64, &[u8]) -> bool) -> Result<(), Error> {
        scan_segments(&self.dir, &self.segments, self.size, from, f)
    }
}

fn read_hmac_key(keys: &LogDir) -> Result<Zeroizing<Vec<u8>>, Error> {
    let rel = "hmac.key";
    let dir = keys;
    let text = read_key(keys, rel)?;
    hex::decode(text.trim())
        .map(Zeroizing::new)
        .map_err(|_| Error::Setup(format!("{}: not a hex key", dir.path(rel).display())))
}

/// Whether the bytes from `at` to the end of the segment `f` are a torn
/// write (one partial record, or zeros a crash left behind where blocks
/// were allocated but not written) rather than damage followed by more
/// records. Opening for writing cuts them; verification reports them.
pub(crate) fn torn_tail(f: &File, at: u64) -> std::io::Result<bool> {
    let len = f.metadata()?.len();
    let rest = len.saturating_sub(at);
    let mut tail = vec![0u8; rest.min(segment::MAX_ENTRY as u64 + 64) as usize];
    f.read_exact_at(&mut tail, at)?;
    if rest > tail.len() as u64 {
        return Ok(false);
    }
    if tail.len() < 12 {
        return Ok(true);
    }
    let claimed =
        u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64 + segment::OVERHEAD;
    // A whole record with a bad checksum is damage, not a torn write: an
    // acknowledged record was fsynced and cannot tear afterwards.
    Ok(claimed > rest || tail.iter().all(|b| *b == 0))
}
