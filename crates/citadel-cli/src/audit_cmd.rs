//! `citadel audit`: the tamper-evident audit log.

use crate::VerificationFailed;
use crate::files::{OutputArgs, print_json, write_output};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use citadel_audit::checkpoint::{Checkpoint, SignedCheckpoint, TlogProof};
use citadel_audit::entry::{Filter, hmac_value, now, parse_time};
use citadel_audit::log::{AuditLog, Durability, LogReader, load_verifier, verifier_from_vkeys};
use citadel_audit::merkle::{Hash, leaf_hash, verify_consistency};
use citadel_audit::verify::{Report, verify};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Create a log: signing keys (Ed25519 + ML-DSA-65), an HMAC key for
    /// sensitive fields, and the public keys in LOG/log.vkeys.
    Init(InitArgs),
    /// Append entries: one JSON object per line on stdin. Prints each
    /// entry's index once it is durable.
    Append(AppendArgs),
    /// Sign a checkpoint of the whole log (stored as LOG/checkpoint) and print it.
    Checkpoint(CheckpointArgs),
    /// Recompute everything from the raw files; exit 1 naming the first bad
    /// entry on any tampering.
    Verify(VerifyArgs),
    /// Accept the log as it stands after damage to its bookkeeping files
    /// (LOG/acked, the high-water mark; LOG/checkpoint, the copy of the
    /// newest checkpoint): verify everything else as strictly, then rewrite
    /// them. Entries are never changed, and every checkpoint in
    /// LOG/checkpoints/ still bounds the log.
    Repair(DirArgs),
    /// Print an inclusion proof (c2sp.org/tlog-proof) of an entry against
    /// the latest checkpoint.
    Prove(ProveArgs),
    /// Print a consistency proof from an older checkpoint to the latest
    /// (base64 hashes, one per line).
    Consistency(ConsistencyArgs),
    /// Check a proof with only the public keys: an inclusion proof with its
    /// entry, or a consistency proof between two checkpoints. No log needed.
    VerifyProof(VerifyProofArgs),
    /// Show the last entries.
    Tail(TailArgs),
    /// Find entries by field.
    Search(SearchArgs),
}

#[derive(Args)]
pub(crate) struct DirArgs {
    /// The log directory.
    #[arg(long)]
    dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct CheckpointArgs {
    /// The log directory.
    #[arg(long)]
    dir: PathBuf,
    #[command(flatten)]
    out: OutputArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct InitArgs {
    /// The log directory (created).
    #[arg(long)]
    dir: PathBuf,
    /// The log's name: the checkpoints' origin line and key name.
    #[arg(long, default_value = "citadel.audit/log")]
    origin: String,
    /// A field (dotted path, e.g. details.password) always stored as an HMAC.
    #[arg(long = "sensitive", value_name = "FIELD")]
    sensitive: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Fsync {
    /// fsync after every entry.
    Every,
    /// Group commit: one fsync for the entries of a short window.
    Group,
}

#[derive(Args)]
pub(crate) struct AppendArgs {
    /// The log directory.
    #[arg(long)]
    dir: PathBuf,
    /// Also store this field (dotted path) as an HMAC, for these entries.
    #[arg(long = "sensitive", value_name = "FIELD")]
    sensitive: Vec<String>,
    /// When entries become durable (and their index is printed).
    #[arg(long, value_enum, default_value = "group")]
    fsync: Fsync,
    /// Group commit window in milliseconds.
    #[arg(long, default_value_t = 10)]
    group_ms: u64,
    /// Print {"index": N} lines instead of bare numbers.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The log directory.
    #[arg(long)]
    dir: PathBuf,
    /// A checkpoint published earlier: the log must still contain it.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct ProveArgs {
    /// The log directory.
    #[arg(long)]
    dir: PathBuf,
    /// The entry's index.
    #[arg(long)]
    index: u64,
    /// Also write the entry's stored bytes here (what verify-proof needs;
    /// replaced only with --force).
    #[arg(long, value_name = "FILE")]
    entry_out: Option<PathBuf>,
    #[command(flatten)]
    out: OutputArgs,
    /// Print JSON: {"index", "size", "proof"} (the proof's text).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct ConsistencyArgs {
    /// The log directory.
    #[arg(long)]
    dir: PathBuf,
    /// The older checkpoint.
    #[arg(long)]
    old: PathBuf,
    /// Also write the latest checkpoint here (replaced only with --force).
    #[arg(long, value_name = "FILE")]
    new_out: Option<PathBuf>,
    #[command(flatten)]
    out: OutputArgs,
    /// Print JSON: {"old_size", "new_size", "proof"} (base64 hashes).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct VerifyProofArgs {
    /// The log's public keys (LOG/log.vkeys).
    #[arg(long)]
    vkeys: PathBuf,
    /// The log expected: checkpoints must name this origin. By default the
    /// name of the keys in --vkeys (a Citadel log names its keys after its
    /// origin); required when the two keys' names differ.
    #[arg(long)]
    origin: Option<String>,
    /// An inclusion proof (from `audit prove`), or with --old/--new, a
    /// consistency proof (from `audit consistency`).
    #[arg(long)]
    proof: PathBuf,
    /// The entry the inclusion proof is for (its stored bytes).
    #[arg(long, conflicts_with_all = ["old", "new"])]
    entry: Option<PathBuf>,
    /// The older checkpoint of a consistency proof.
    #[arg(long, requires = "new")]
    old: Option<PathBuf>,
    /// The newer checkpoint of a consistency proof.
    #[arg(long, requires = "old")]
    new: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct TailArgs {
    /// The log directory.
    #[arg(long)]
    dir: PathBuf,
    /// How many entries.
    #[arg(short = 'n', long, default_value_t = 10)]
    lines: u64,
    /// Print JSON lines with the index.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct SearchArgs {
    /// The log directory.
    #[arg(long)]
    dir: PathBuf,
    /// Entries by this actor.
    #[arg(long)]
    actor: Option<String>,
    /// Entries with this action.
    #[arg(long)]
    action: Option<String>,
    /// Entries on this resource.
    #[arg(long)]
    resource: Option<String>,
    /// Entries with this outcome.
    #[arg(long)]
    outcome: Option<String>,
    /// Entries at or after this time (RFC 3339, e.g. 2026-11-26T10:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// A field (dotted path) with this stored value: PATH=VALUE.
    #[arg(long = "field", value_name = "PATH=VALUE")]
    fields: Vec<String>,
    /// A sensitive field with this value before HMAC (needs the log's HMAC
    /// key): PATH=VALUE.
    #[arg(long = "hmac", value_name = "PATH=VALUE")]
    hmac: Vec<String>,
    /// Stop after this many matches.
    #[arg(long)]
    limit: Option<usize>,
    /// Print JSON lines with the index.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(c: AuditCommand) -> Result<()> {
    match c {
        AuditCommand::Init(a) => init(a),
        AuditCommand::Append(a) => append(a),
        AuditCommand::Checkpoint(a) => checkpoint(a),
        AuditCommand::Verify(a) => verify_cmd(a),
        AuditCommand::Repair(a) => repair(a),
        AuditCommand::Prove(a) => prove(a),
        AuditCommand::Consistency(a) => consistency(a),
        AuditCommand::VerifyProof(a) => verify_proof(a),
        AuditCommand::Tail(a) => tail(a),
        AuditCommand::Search(a) => search(a),
    }
}

/// The largest checkpoint, vkeys or consistency-proof file read.
const MAX_TEXT: u64 = citadel_audit::note::MAX_NOTE_LEN as u64;

/// Reads a file of at most `limit` bytes, without reading more than that:
/// a larger one is refused before it costs memory.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Opening a FIFO waits for a writer unless O_NONBLOCK: a pipe from
    // `<(…)` still works (reads block again below), one nobody writes to
    // reads as empty instead of hanging.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    rustix::fs::fcntl_setfl(&f, rustix::fs::OFlags::empty())
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if out.len() as u64 > limit {
        bail!(
            "{} is larger than {limit} bytes: not what was asked for",
            path.display()
        );
    }
    Ok(out)
}

/// A text file of at most [`MAX_TEXT`] bytes; an empty one is an input
/// error.
fn read(path: &Path) -> Result<String> {
    crate::files::note_input(path);
    let b = read_limited(path, MAX_TEXT)?;
    let t = String::from_utf8(b).map_err(|_| anyhow!("{} is not UTF-8 text", path.display()))?;
    if t.trim().is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(t)
}

/// A checkpoint or proof error: malformed input is an input error (exit
/// 2); a signature or proof that does not verify is a failed verification
/// (exit 1).
fn proof_failure(what: &Path, e: citadel_audit::checkpoint::CheckpointError) -> anyhow::Error {
    use citadel_audit::checkpoint::CheckpointError as C;
    use citadel_audit::note::NoteError as N;
    let verification = matches!(
        e,
        C::OriginMismatch { .. }
            | C::MissingSignature { .. }
            | C::Proof(_)
            | C::Note(N::InvalidSignature { .. } | N::NoVerifiedSignature)
    );
    if verification {
        VerificationFailed(format!(
            "the proof does not verify: {}: {e}",
            what.display()
        ))
        .into()
    } else {
        anyhow!("{}: {e}", what.display())
    }
}

fn init(a: InitArgs) -> Result<()> {
    let v = AuditLog::init(&a.dir, &a.origin)?;
    if !a.sensitive.is_empty() {
        let p = a.dir.join("log.json");
        let mut c: Value = serde_json::from_str(&read(&p)?)?;
        c["sensitive"] = json!(a.sensitive);
        crate::files::AtomicFile::write_all(&p, serde_json::to_string_pretty(&c)?.as_bytes())?;
    }
    let vkeys: Vec<String> = v.keys().iter().map(|k| k.vkey()).collect();
    if a.json {
        print_json(&json!({"dir": a.dir, "origin": a.origin, "vkeys": vkeys}));
    } else {
        crate::say!(
            "created audit log {} (origin {})",
            a.dir.display(),
            a.origin
        );
        crate::say!(
            "public keys (also in {}):",
            a.dir.join("log.vkeys").display()
        );
        for k in vkeys {
            crate::say!("  {k}");
        }
    }
    Ok(())
}

fn append(a: AppendArgs) -> Result<()> {
    let durability = match a.fsync {
        Fsync::Every => Durability::EveryAppend,
        Fsync::Group => Durability::Group(Duration::from_millis(a.group_ms)),
    };
    let mut log = AuditLog::open(&a.dir, durability)?;
    let key = log.hmac_key()?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut pending: Vec<u64> = Vec::new();
    let print = |out: &mut std::io::BufWriter<_>,
                 upto: u64,
                 pending: &mut Vec<u64>|
     -> Result<()> {
        let cut = pending.partition_point(|i| *i < upto);
        let upto_shown = upto.saturating_sub(1);
        let written = (|| -> std::io::Result<()> {
            for i in pending.drain(..cut) {
                if a.json {
                    writeln!(out, "{{\"index\":{i}}}")?;
                } else {
                    writeln!(out, "{i}")?;
                }
            }
            out.flush()
        })();
        written.with_context(|| {
                format!(
                    "cannot write acknowledgements to stdout (the entries up to index {upto_shown} are in the log)"
                )
            })
    };
    // Lines arrive through a channel so that, when the input pauses, the
    // pending entries are committed and acknowledged within the window
    // instead of waiting for the next line.
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<String>>(4096);
    std::thread::spawn(move || {
        let mut input = stdin.lock();
        loop {
            let line = read_line_limited(&mut input, MAX_LINE);
            let stop = !matches!(line, Ok(Some(_)));
            let line = match line {
                Ok(Some(l)) => Ok(l),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            if tx.send(line).is_err() || stop {
                break;
            }
        }
    });
    let window = Duration::from_millis(a.group_ms.max(1));
    let mut result = Ok(());
    let mut n = 0usize;
    loop {
        let line = match rx.recv_timeout(window) {
            Ok(Ok(line)) => line,
            // What came before is committed and acknowledged all the same.
            Ok(Err(e)) => {
                result = Err(
                    anyhow::Error::new(e).context(format!("line {}: cannot read stdin", n + 1))
                );
                break;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                log.commit().with_context(|| committing(&a.dir, n))?;
                print(&mut out, log.durable_size(), &mut pending)?;
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut v: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                result = Err(anyhow!("line {n}: not JSON: {e}"));
                break;
            }
        };
        if let Some(o) = v.as_object_mut() {
            o.entry("time").or_insert_with(|| Value::String(now()));
        }
        match log.append_entry(v, &a.sensitive, &key) {
            Ok(i) => pending.push(i),
            Err(e) => {
                result = Err(anyhow!("line {n}: {e}"));
                break;
            }
        }
        if log.durable_size() > pending.first().copied().unwrap_or(u64::MAX) {
            print(&mut out, log.durable_size(), &mut pending)?;
        }
    }
    // Entries before a bad line are kept and acknowledged; the first error
    // is the one reported.
    let ended = log
        .commit()
        .with_context(|| committing(&a.dir, n))
        .and_then(|()| print(&mut out, log.durable_size(), &mut pending))
        .and_then(|()| log.close().with_context(|| committing(&a.dir, n)));
    result.and(ended)
}

/// What failed when a commit fails after `n` lines.
fn committing(dir: &Path, n: usize) -> String {
    format!(
        "after line {n}: cannot commit the log in {} (the lines not acknowledged on stdout are not in it)",
        dir.display()
    )
}

/// Refuses outputs that exist (without `--force`), that name one file
/// twice, or that lie in the log directory (its keys and checkpoints are
/// never an output): checked before any work.
fn check_outputs(dir: &Path, force: bool, outs: &[&Option<PathBuf>]) -> Result<()> {
    let outs: Vec<&PathBuf> = outs.iter().copied().flatten().collect();
    let log =
        std::fs::canonicalize(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for (i, p) in outs.iter().enumerate() {
        if crate::files::is_stdout(p) {
            continue;
        }
        if outs[..i].contains(p) {
            bail!(
                "{} is named as two outputs; give each its own file",
                p.display()
            );
        }
        let parent = match p.parent() {
            Some(q) if !q.as_os_str().is_empty() => q,
            _ => Path::new("."),
        };
        if std::fs::canonicalize(parent).is_ok_and(|c| c.starts_with(&log)) {
            bail!(
                "{} is inside the log directory {}, whose files are the log's own; write it elsewhere",
                p.display(),
                dir.display()
            );
        }
        crate::files::check_free(p, force)?;
    }
    Ok(())
}

fn checkpoint(a: CheckpointArgs) -> Result<()> {
    check_outputs(&a.dir, a.out.force, &[&a.out.output])?;
    let mut log = AuditLog::open(&a.dir, Durability::EveryAppend)?;
    let cp = log.checkpoint()?;
    if a.json {
        let c = cp.checkpoint();
        let doc = json!({"origin": c.origin(), "size": c.size(), "root": B64.encode(c.root()), "text": cp.to_text()});
        a.out.emit(format!("{doc:#}\n").as_bytes())
    } else {
        a.out.emit(cp.to_text().as_bytes())
    }
}

fn verify_cmd(a: VerifyArgs) -> Result<()> {
    let extra = a.checkpoint.as_deref().map(read).transpose()?;
    if let (Some(t), Some(p)) = (&extra, &a.checkpoint) {
        // Malformed input is an input error, not tampering.
        let v = load_verifier(&a.dir)?;
        if let Err(e) = SignedCheckpoint::open(t.as_bytes(), &v) {
            return Err(proof_failure(p, e));
        }
    }
    let start = std::time::Instant::now();
    match verify(&a.dir, extra.as_deref()) {
        Ok(r) => {
            let secs = start.elapsed().as_secs_f64();
            let uncovered = r.entries - r.covered.min(r.entries);
            if a.json {
                print_json(
                    &json!({"ok": true, "entries": r.entries, "checkpoints": r.checkpoints,
                    "covered": r.covered, "uncovered": uncovered, "acknowledged": r.acknowledged,
                    "unrecorded": r.unrecorded,
                    "torn_tail_bytes": r.torn_tail_bytes, "root": B64.encode(r.root), "seconds": secs}),
                );
            } else {
                crate::say!("ok: {}", summary(&r));
            }
            Ok(())
        }
        Err(citadel_audit::Error::Corrupt { index, why }) => {
            if a.json {
                print_json(&json!({"ok": false, "first_bad_index": index, "error": why}));
            }
            Err(VerificationFailed(match index {
                Some(i) => format!("tampering detected: first bad entry {i}: {why}"),
                None => format!("tampering detected: {why}"),
            })
            .into())
        }
        Err(e) => Err(e.into()),
    }
}

/// One line on what a verification found.
fn summary(r: &Report) -> String {
    let uncovered = r.entries - r.covered.min(r.entries);
    let mut out = format!(
        "{} entries, {} checkpoints match, root {}",
        r.entries,
        r.checkpoints.len(),
        B64.encode(r.root)
    );
    if uncovered > 0 {
        out += &format!(
            "; the last {uncovered} are not covered by a signed checkpoint (run `citadel audit checkpoint`)"
        );
    }
    if r.unrecorded > 0 {
        out += &format!(
            "; {} of them have no hash recorded in LOG/tree to compare with (a crash before the tree was synced, or the tree was cut): only a checkpoint will vouch for them",
            r.unrecorded
        );
    }
    if r.torn_tail_bytes > 0 {
        out += &format!(
            "; a torn record of {} bytes at the tail (beyond every acknowledged entry) is removed when the log is next opened for writing",
            r.torn_tail_bytes
        );
    }
    out
}

fn repair(a: DirArgs) -> Result<()> {
    let r = match citadel_audit::verify::repair(&a.dir) {
        Ok(r) => r,
        Err(citadel_audit::Error::Corrupt { index, why }) => {
            return Err(VerificationFailed(format!(
                "not repaired: the log itself is damaged ({}{why}); restore it from a copy",
                index
                    .map(|i| format!("first bad entry {i}: "))
                    .unwrap_or_default()
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let mark = match r.mark_before {
        Some(m) if m == r.report.entries => format!("the high-water mark was right ({m})"),
        Some(m) => format!("the high-water mark said {m}, now {}", r.report.entries),
        None => format!(
            "the high-water mark was missing or damaged, now {}",
            r.report.entries
        ),
    };
    if a.json {
        print_json(
            &json!({"ok": true, "entries": r.report.entries, "mark_before": r.mark_before,
            "checkpoint_restored": r.checkpoint_restored, "covered": r.report.covered}),
        );
    } else {
        crate::say!(
            "repaired: {mark}; LOG/checkpoint {}; {}",
            if r.checkpoint_restored {
                "restored from LOG/checkpoints/"
            } else {
                "was right"
            },
            summary(&r.report)
        );
    }
    Ok(())
}

fn latest(log: &AuditLog) -> Result<SignedCheckpoint> {
    log.latest_checkpoint()?.ok_or_else(|| {
        anyhow!("the log has no checkpoint yet; run `citadel audit checkpoint` first")
    })
}

fn prove(a: ProveArgs) -> Result<()> {
    check_outputs(&a.dir, a.out.force, &[&a.entry_out, &a.out.output])?;
    let mut log = AuditLog::open_read(&a.dir)?;
    let cp = latest(&log)?;
    let size = cp.checkpoint().size();
    if a.index >= size {
        bail!(
            "entry {} is not covered by the latest checkpoint (size {size}); run `citadel audit checkpoint`",
            a.index
        );
    }
    let proof = log.inclusion_proof(a.index, size)?;
    let text = TlogProof::new(a.index, proof, &cp)?.to_text();
    if let Some(p) = &a.entry_out {
        write_output(p, &log.entry(a.index)?, false, a.out.force)?;
    }
    if a.json {
        let doc = json!({"index": a.index, "size": size, "proof": text});
        a.out.emit(format!("{doc:#}\n").as_bytes())
    } else {
        a.out.emit(text.as_bytes())
    }
}

fn consistency(a: ConsistencyArgs) -> Result<()> {
    check_outputs(&a.dir, a.out.force, &[&a.new_out, &a.out.output])?;
    let mut log = AuditLog::open_read(&a.dir)?;
    let verifier = load_verifier(&a.dir)?;
    let old = SignedCheckpoint::open(read(&a.old)?.as_bytes(), &verifier)
        .map_err(|e| proof_failure(&a.old, e))?;
    let new = latest(&log)?;
    let (o, n) = (old.checkpoint().size(), new.checkpoint().size());
    if o > n {
        bail!("the old checkpoint (size {o}) is newer than the latest (size {n})");
    }
    // A proof to a stale checkpoint would say nothing of the newer entries.
    if n < log.size() && log.is_live() {
        eprintln!(
            "citadel: the log is being written (by a running vault's audit device, say), or is another user's: the proof covers the {n} entries of its latest checkpoint, not the ones appended since"
        );
    } else if n < log.size() {
        bail!(
            "the log has {} entries but its latest checkpoint covers {n}: run `citadel audit checkpoint` first, so the proof covers them",
            log.size()
        );
    }
    if o == n && !crate::quiet() {
        eprintln!(
            "citadel: the old checkpoint is the latest (size {n}): the log has not grown, and the proof is empty"
        );
    }
    let proof: Vec<String> = log
        .consistency_proof(o, n)?
        .iter()
        .map(|h| B64.encode(h))
        .collect();
    if let Some(p) = &a.new_out {
        write_output(p, new.to_text().as_bytes(), false, a.out.force)?;
    }
    if a.json {
        let doc = json!({"old_size": o, "new_size": n, "proof": proof});
        a.out.emit(format!("{doc:#}\n").as_bytes())
    } else {
        let text: String = proof.iter().map(|h| format!("{h}\n")).collect();
        a.out.emit(text.as_bytes())
    }
}

/// The origin a proof's checkpoints must name: `--origin`, or the name of
/// the log's keys.
fn expected_origin(a: &VerifyProofArgs, vkeys: &str) -> Result<String> {
    if let Some(o) = &a.origin {
        return Ok(o.clone());
    }
    let names: std::collections::BTreeSet<&str> = vkeys
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| l.trim().split('+').next())
        .collect();
    match names.into_iter().collect::<Vec<_>>()[..] {
        [name] => Ok(name.to_string()),
        _ => bail!(
            "the keys in {} have different names: give the log's origin with --origin",
            a.vkeys.display()
        ),
    }
}

fn verify_proof(a: VerifyProofArgs) -> Result<()> {
    let vkeys = read(&a.vkeys)?;
    let origin = expected_origin(&a, &vkeys)?;
    let v = verifier_from_vkeys(&origin, &vkeys).with_context(|| {
        format!(
            "{} is not a log's public keys (LOG/log.vkeys)",
            a.vkeys.display()
        )
    })?;
    if let (Some(old), Some(new)) = (&a.old, &a.new) {
        let (old_t, new_t) = (read(old)?, read(new)?);
        let old_c =
            SignedCheckpoint::open(old_t.as_bytes(), &v).map_err(|e| proof_failure(old, e))?;
        let new_c =
            SignedCheckpoint::open(new_t.as_bytes(), &v).map_err(|e| proof_failure(new, e))?;
        let proof: Vec<Hash> = read_limited(&a.proof, MAX_TEXT)?
            .split(|b| *b == b'\n')
            .map(|l| String::from_utf8_lossy(l).trim().to_string())
            .filter(|l| !l.is_empty())
            .map(|l| {
                B64.decode(&l)
                    .ok()
                    .and_then(|b| <Hash>::try_from(b).ok())
                    .ok_or_else(|| anyhow!("{}: not a list of base64 hashes", a.proof.display()))
            })
            .collect::<Result<_>>()?;
        let (o, n) = (old_c.checkpoint(), new_c.checkpoint());
        verify_consistency(o.size(), n.size(), o.root(), n.root(), &proof).map_err(|e| {
            anyhow::Error::from(VerificationFailed(format!(
                "the proof does not verify: {e}"
            )))
        })?;
        if a.json {
            print_json(
                &json!({"ok": true, "kind": "consistency", "old_size": o.size(), "new_size": n.size(), "origin": origin}),
            );
        } else {
            crate::say!(
                "ok: the log {origin} of size {} is an extension of size {}",
                n.size(),
                o.size()
            );
        }
        return Ok(());
    }
    let entry_path = a.entry.as_ref().ok_or_else(|| {
        anyhow!(
            "give --entry FILE for an inclusion proof, or --old and --new for a consistency proof"
        )
    })?;
    let entry = read_limited(entry_path, citadel_audit::segment::MAX_ENTRY as u64)?;
    if entry.is_empty() {
        bail!(
            "{} is empty: give the entry's stored bytes (`citadel audit prove --entry-out`)",
            entry_path.display()
        );
    }
    let text = read_limited(
        &a.proof,
        citadel_audit::checkpoint::MAX_TLOG_PROOF_LEN as u64,
    )?;
    if text.iter().all(u8::is_ascii_whitespace) {
        bail!("{} is empty", a.proof.display());
    }
    let proof = TlogProof::parse(&text).map_err(|e| proof_failure(&a.proof, e))?;
    let cp = proof
        .verify(&leaf_hash(&entry), &v)
        .map_err(|e| proof_failure(&a.proof, e))?;
    let c: &Checkpoint = cp.checkpoint();
    if a.json {
        print_json(
            &json!({"ok": true, "kind": "inclusion", "index": proof.index(), "size": c.size(), "origin": c.origin()}),
        );
    } else {
        crate::say!(
            "ok: entry {} is in {} at size {} (Ed25519 and ML-DSA-65 signatures verified)",
            proof.index(),
            c.origin(),
            c.size()
        );
    }
    Ok(())
}

/// The longest input line `append` reads (an entry is at most 1 MiB
/// stored; a longer line is refused before it costs more memory).
const MAX_LINE: usize = 4 << 20;

/// One line of at most `limit` bytes without its newline; `None` at the end
/// of input.
fn read_line_limited(r: &mut impl BufRead, limit: usize) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = std::io::Read::take(&mut *r, limit as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line is longer than {limit} bytes (an entry is at most 1 MiB)"),
        ));
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "a line is not UTF-8"))
}

fn show(json_out: bool, index: u64, entry: &[u8]) {
    if json_out {
        let v: Value = serde_json::from_slice(entry).unwrap_or(Value::Null);
        crate::out!("{}", json!({"index": index, "entry": v}));
    } else {
        // Control characters (terminal escapes in an entry written into a
        // segment by hand) are shown escaped, never sent to the terminal.
        let text: String = String::from_utf8_lossy(entry)
            .chars()
            .map(|c| {
                if c.is_control() {
                    format!("\\u{{{:04x}}}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect();
        crate::out!("{index}\t{text}");
    }
}

fn tail(a: TailArgs) -> Result<()> {
    let log = LogReader::open(&a.dir)?;
    let from = log.size().saturating_sub(a.lines);
    log.scan(from, |i, e| {
        show(a.json, i, e);
        true
    })?;
    Ok(())
}

fn split_kv(s: &str) -> Result<(String, String)> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| anyhow!("'{s}' is not PATH=VALUE"))
}

fn search(a: SearchArgs) -> Result<()> {
    let log = LogReader::open(&a.dir)?;
    let mut filter = Filter {
        actor: a.actor,
        action: a.action,
        resource: a.resource,
        outcome: a.outcome,
        since: a
            .since
            .as_deref()
            .map(|s| {
                parse_time(s).ok_or_else(|| {
                    anyhow!("--since '{s}' is not an RFC 3339 time, e.g. 2026-11-26T10:00:00Z")
                })
            })
            .transpose()?,
        fields: Vec::new(),
    };
    for f in &a.fields {
        let (k, v) = split_kv(f)?;
        // A value that parses as JSON (a number, true) matches as such.
        let v = serde_json::from_str(&v).unwrap_or(Value::String(v));
        filter.fields.push((k, v));
    }
    if !a.hmac.is_empty() {
        let key = log.hmac_key()?;
        for f in &a.hmac {
            let (k, v) = split_kv(f)?;
            filter
                .fields
                .push((k, Value::String(hmac_value(&key, &Value::String(v)))));
        }
    }
    let mut left = a.limit.unwrap_or(usize::MAX);
    log.scan(0, |i, e| {
        if let Ok(v) = serde_json::from_slice::<Value>(e) {
            if filter.matches(&v) {
                show(a.json, i, e);
                left -= 1;
            }
        }
        left > 0
    })?;
    Ok(())
}
