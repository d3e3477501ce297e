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
use crate::merkle::{self, Hash, NodeSource, leaf_hash};
use crate::note::{NoteSigner, NoteVerifier};
use crate::segment::{self, MAGIC, Record};
use crate::tree::TreeFiles;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
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

fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn read_text(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(io(path))
}

/// The high-water mark file: entries below the size it holds were
/// acknowledged (made durable and reported to the writer).
const ACKED: &str = "acked";

fn encode_acked(size: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&size.to_be_bytes());
    let crc = crc32fast::hash(&size.to_be_bytes());
    b[8..12].copy_from_slice(&crc.to_be_bytes());
    b[12..].copy_from_slice(b"ACK\n");
    b
}

/// The size in the high-water mark of the log at `dir` (0 when there is
/// none: a log made before it existed, or never appended to).
pub(crate) fn read_acked(dir: &Path) -> Result<u64, Error> {
    let p = dir.join(ACKED);
    let b = match fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(&p)(e)),
    };
    let ok =
        b.len() == 16 && &b[12..] == b"ACK\n" && crc32fast::hash(&b[..8]).to_be_bytes() == b[8..12];
    if !ok {
        return Err(Error::Corrupt {
            index: None,
            why: format!(
                "{} is damaged: the number of acknowledged entries is unknown; run `citadel audit verify`",
                p.display()
            ),
        });
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[..8]);
    Ok(u64::from_be_bytes(n))
}

/// How many entries of the log at `dir` were acknowledged: the largest of
/// the high-water mark and the latest checkpoint's size (verified with the
/// log's keys). Entries below it were durable when reported, so they can
/// be missing or damaged only by tampering or a failing disk.
pub fn acknowledged(dir: &Path) -> Result<u64, Error> {
    let mark = read_acked(dir)?;
    let p = dir.join("checkpoint");
    let covered = if p.exists() {
        let v = load_verifier(dir)?;
        SignedCheckpoint::open(read_text(&p)?.as_bytes(), &v)
            .map_err(|e| Error::Corrupt {
                index: None,
                why: format!("{}: {e}", p.display()),
            })?
            .checkpoint()
            .size()
    } else {
        0
    };
    Ok(mark.max(covered))
}

/// The public keys of the log at `dir` (from `log.vkeys`) as a verifier
/// requiring both signatures.
pub fn load_verifier(dir: &Path) -> Result<LogVerifier, Error> {
    let config = load_config(dir)?;
    verifier_from_vkeys(&config.origin, &read_text(&dir.join("log.vkeys"))?)
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

fn load_config(dir: &Path) -> Result<Config, Error> {
    let p = dir.join("log.json");
    let text = fs::read(&p).map_err(|_| {
        Error::Setup(format!(
            "{} is not an audit log (no log.json); create one with `citadel audit init`",
            dir.display()
        ))
    })?;
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

/// An open log, for appending and reading.
pub struct AuditLog {
    dir: PathBuf,
    config: Config,
    durability: Durability,
    /// The high-water mark file; `None` when opened for reading.
    acked: Option<File>,
    segments: Vec<(u64, PathBuf)>,
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

impl AuditLog {
    /// Creates a log in `dir` (which must not hold one), with new Ed25519
    /// and ML-DSA-65 signing keys and an HMAC key.
    pub fn init(dir: &Path, origin: &str) -> Result<LogVerifier, Error> {
        if dir.join("log.json").exists() {
            return Err(Error::Setup(format!(
                "{} already holds an audit log",
                dir.display()
            )));
        }
        let signer = LogSigner::generate(origin)?;
        for sub in ["keys", "segments", "tree", "checkpoints"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        let keys = dir.join("keys");
        write_atomic(
            &keys.join("ed25519.skey"),
            signer.ed25519().skey()?.as_bytes(),
            0o600,
        )?;
        write_atomic(
            &keys.join("ml-dsa-65.skey"),
            signer.ml_dsa_65().skey()?.as_bytes(),
            0o600,
        )?;
        let hmac = citadel_crypto::random::secret_array::<32>()
            .map_err(|e| Error::Setup(format!("random: {e}")))?;
        write_atomic(
            &keys.join("hmac.key"),
            Zeroizing::new(hex::encode(hmac.as_slice())).as_bytes(),
            0o600,
        )?;
        let v = signer.verifier();
        let vkeys = v
            .keys()
            .iter()
            .map(|k| format!("{}\n", k.vkey()))
            .collect::<String>();
        write_atomic(&dir.join("log.vkeys"), vkeys.as_bytes(), 0o644)?;
        let first = dir.join("segments").join(segment::file_name(0));
        write_atomic(&first, MAGIC, 0o644)?;
        write_atomic(
            &dir.join("state.json"),
            &serde_json::to_vec(&State::default()).unwrap_or_default(),
            0o644,
        )?;
        write_atomic(&dir.join(ACKED), &encode_acked(0), 0o644)?;
        let config = Config {
            version: 1,
            origin: origin.to_string(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            sensitive: Vec::new(),
        };
        let json = serde_json::to_vec_pretty(&config).map_err(|e| Error::Setup(e.to_string()))?;
        write_atomic(&dir.join("log.json"), &json, 0o644)?;
        Ok(v)
    }

    /// Opens the log at `dir` for appending, recovering from a crash: a
    /// torn record at the tail of the last segment, beyond every
    /// acknowledged entry, is cut off (it was never acknowledged) and the
    /// derived index and tree are brought up to date. A log damaged or
    /// shorter below what was acknowledged is refused and left as it is.
    pub fn open(dir: &Path, durability: Durability) -> Result<Self, Error> {
        Self::open_with(dir, durability, true)
    }

    /// Opens the log at `dir` for reading and proofs: like
    /// [`AuditLog::open`], but a torn tail is left in place (the log ends
    /// before it) and appending is refused. Only the derived files (index
    /// and tree, caches of the segments) may be rebuilt.
    pub fn open_read(dir: &Path) -> Result<Self, Error> {
        Self::open_with(dir, Durability::EveryAppend, false)
    }

    fn open_with(dir: &Path, durability: Durability, write: bool) -> Result<Self, Error> {
        let config = load_config(dir)?;
        let floor = acknowledged(dir)?;
        let seg_dir = dir.join("segments");
        let segments = segment::list(&seg_dir)?;
        let Some(&(last_first, ref last_path)) = segments.last() else {
            return Err(Error::Corrupt {
                index: None,
                why: format!("{}: no segment files", seg_dir.display()),
            });
        };
        let state: State = fs::read(dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        // Derived data is trusted only up to what was fsynced, and only
        // from the start of a segment, which is where recovery rescans.
        let start_seg = segments
            .iter()
            .rposition(|(first, _)| *first <= state.derived)
            .unwrap_or(0);
        let rescan_from = segments[start_seg].0;
        let offsets_path = dir.join("index.bin");
        let offsets_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&offsets_path)
            .map_err(io(&offsets_path))?;
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
        let (mut tree, in_tree) = TreeFiles::open(&dir.join("tree"), rescan_from)?;
        if in_tree < rescan_from {
            return Err(Error::Corrupt {
                index: Some(in_tree),
                why: "the tree files are shorter than their fsynced length; remove LOG/tree and LOG/state.json to rebuild"
                    .into(),
            });
        }
        let mut offsets = BufWriter::with_capacity(1 << 16, offsets_file);
        std::io::Seek::seek(&mut offsets, std::io::SeekFrom::End(0)).map_err(io(&offsets_path))?;
        // Rescan: every segment from `start_seg`; only the last may end in
        // a torn record.
        let mut size = rescan_from;
        let mut seg_len = 0;
        for (i, (first, path)) in segments.iter().enumerate().skip(start_seg) {
            let last = i + 1 == segments.len();
            if *first != size {
                return Err(Error::Corrupt {
                    index: Some(size),
                    why: format!(
                        "{} should start at entry {size}; run `citadel audit verify`",
                        path.display()
                    ),
                });
            }
            let mut r = segment::Reader::open(path)?;
            loop {
                let at = r.offset;
                let (rec, entry) = r.read_record().map_err(io(path))?;
                match rec {
                    Record::Entry(ix) if ix == size => {
                        tree.push(leaf_hash(entry))?;
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
                        let len = fs::metadata(path).map_err(io(path))?.len();
                        if !last || !torn_tail(path, at, len)? {
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
                            let f = OpenOptions::new()
                                .write(true)
                                .open(path)
                                .map_err(io(path))?;
                            f.set_len(at).map_err(io(path))?;
                            f.sync_all().map_err(io(path))?;
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
        tree.flush()?;
        let seg_file = OpenOptions::new()
            .append(true)
            .open(last_path)
            .map_err(io(last_path))?;
        let _ = last_first;
        let offsets_reader = File::open(&offsets_path).map_err(io(&offsets_path))?;
        let acked = if write {
            // What the segment holds now counts as acknowledged from here
            // on: make it durable first.
            seg_file.sync_data().map_err(io(last_path))?;
            let p = dir.join(ACKED);
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&p)
                .map_err(io(&p))?;
            f.write_all_at(&encode_acked(size), 0).map_err(io(&p))?;
            f.sync_data().map_err(io(&p))?;
            Some(f)
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            durability,
            acked,
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

    /// The log's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
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
        read_hmac_key(&self.dir)
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
        if self.acked.is_none() {
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
        let seg_path = self.current_segment().to_path_buf();
        self.seg.write_all(&self.record).map_err(io(&seg_path))?;
        self.offsets
            .write_all(&self.seg_len.to_be_bytes())
            .map_err(io(&self.dir.join("index.bin")))?;
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

    fn current_segment(&self) -> &Path {
        self.segments
            .last()
            .map(|(_, p)| p.as_path())
            .unwrap_or(Path::new("segment"))
    }

    /// Seals the current segment and starts the next.
    fn roll(&mut self) -> Result<(), Error> {
        self.commit()?;
        let path = self
            .dir
            .join("segments")
            .join(segment::file_name(self.size));
        write_atomic(&path, MAGIC, 0o644)?;
        let f = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        self.seg = BufWriter::with_capacity(1 << 20, f);
        self.seg_len = MAGIC.len() as u64;
        self.segments.push((self.size, path));
        Ok(())
    }

    /// Makes every appended entry durable (one `fdatasync` of the segment).
    pub fn commit(&mut self) -> Result<(), Error> {
        let seg_path = self.current_segment().to_path_buf();
        self.seg.flush().map_err(io(&seg_path))?;
        if self.durable < self.size {
            self.seg.get_ref().sync_data().map_err(io(&seg_path))?;
            // The mark only ever follows data already durable.
            if let Some(f) = &self.acked {
                let p = self.dir.join(ACKED);
                f.write_all_at(&encode_acked(self.size), 0)
                    .map_err(io(&p))?;
                f.sync_data().map_err(io(&p))?;
            }
        }
        self.offsets
            .flush()
            .map_err(io(&self.dir.join("index.bin")))?;
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
        if self.acked.is_none() {
            return Ok(());
        }
        let ip = self.dir.join("index.bin");
        self.offsets.get_ref().sync_data().map_err(io(&ip))?;
        self.tree.sync()?;
        let state = State { derived: self.size };
        write_atomic(
            &self.dir.join("state.json"),
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
        let ip = self.dir.join("index.bin");
        self.offsets_reader
            .read_exact_at(&mut off, index * 8)
            .map_err(io(&ip))?;
        let offset = u64::from_be_bytes(off);
        let seg = self.segments.partition_point(|(first, _)| *first <= index);
        let (_, path) = &self.segments[seg.saturating_sub(1)];
        let f = File::open(path).map_err(io(path))?;
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
        scan_segments(&self.segments, self.size, from, f)
    }

    /// Signs a checkpoint of the whole log with both keys, stores it as
    /// `checkpoint` and under `checkpoints/`, and returns it.
    pub fn checkpoint(&mut self) -> Result<SignedCheckpoint, Error> {
        if self.acked.is_none() {
            return Err(Error::Setup(
                "the log was opened for reading; open it for writing to sign a checkpoint".into(),
            ));
        }
        self.sync_all()?;
        let keys = self.dir.join("keys");
        let ed = NoteSigner::parse(&Zeroizing::new(read_text(&keys.join("ed25519.skey"))?))?;
        let ml = NoteSigner::parse(&Zeroizing::new(read_text(&keys.join("ml-dsa-65.skey"))?))?;
        let signer = LogSigner::new(ed, ml)?;
        let root = merkle::root_at(&self.tree, self.size)?;
        let cp = Checkpoint::new(&self.config.origin, self.size, root)?;
        let signed = SignedCheckpoint::sign(cp, &signer)?;
        let text = signed.to_text();
        write_atomic(
            &self
                .dir
                .join("checkpoints")
                .join(format!("{:020}.txt", self.size)),
            text.as_bytes(),
            0o644,
        )?;
        write_atomic(&self.dir.join("checkpoint"), text.as_bytes(), 0o644)?;
        Ok(signed)
    }

    /// The latest stored checkpoint, verified with the log's public keys.
    pub fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, Error> {
        let p = self.dir.join("checkpoint");
        if !p.exists() {
            return Ok(None);
        }
        let v = load_verifier(&self.dir)?;
        Ok(Some(SignedCheckpoint::open(read_text(&p)?.as_bytes(), &v)?))
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
    segments: &[(u64, PathBuf)],
    size: u64,
    from: u64,
    mut f: impl FnMut(u64, &[u8]) -> bool,
) -> Result<(), Error> {
    let start = segments
        .partition_point(|(first, _)| *first <= from)
        .saturating_sub(1);
    for (first, path) in &segments[start..] {
        let mut next = *first;
        let mut r = segment::Reader::open(path)?;
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
    dir: PathBuf,
    segments: Vec<(u64, PathBuf)>,
    size: u64,
}

impl LogReader {
    /// Opens the log at `dir` for reading. The log ends at its last whole
    /// record (a torn tail beyond every acknowledged entry is skipped, not
    /// removed); a log shorter than what was acknowledged is refused.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        load_config(dir)?;
        let seg_dir = dir.join("segments");
        let segments = segment::list(&seg_dir)?;
        let Some((last_first, last_path)) = segments.last() else {
            return Err(Error::Corrupt {
                index: None,
                why: format!("{}: no segment files", seg_dir.display()),
            });
        };
        let mut size = *last_first;
        let mut r = segment::Reader::open(last_path)?;
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
        let floor = acknowledged(dir)?;
        if size < floor {
            return Err(Error::Corrupt {
                index: Some(size),
                why: format!(
                    "the log holds {size} readable entries but {floor} were acknowledged (entries removed, or damaged); run `citadel audit verify`"
                ),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
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
        read_hmac_key(&self.dir)
    }

    /// Calls `f(index, entry)` for entries from `from` on, in order, until
    /// it returns `false`.
    pub fn scan(&self, from: u64, f: impl FnMut(u64, &[u8]) -> bool) -> Result<(), Error> {
        scan_segments(&self.segments, self.size, from, f)
    }
}

fn read_hmac_key(dir: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    let p = dir.join("keys/hmac.key");
    let text = Zeroizing::new(read_text(&p)?);
    hex::decode(text.trim())
        .map(Zeroizing::new)
        .map_err(|_| Error::Setup(format!("{}: not a hex key", p.display())))
}

/// Whether the bytes from `at` to the end of a segment are a torn write
/// (one partial record, possibly followed by zeros a crash left behind)
/// rather than damage followed by more records.
fn torn_tail(path: &Path, at: u64, len: u64) -> Result<bool, Error> {
    let f = File::open(path).map_err(io(path))?;
    let rest = len.saturating_sub(at);
    let mut tail = vec![0u8; rest.min(segment::MAX_ENTRY as u64 + 64) as usize];
    f.read_exact_at(&mut tail, at).map_err(io(path))?;
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
