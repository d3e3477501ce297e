//! Audit devices: every request and response is recorded, with the
//! client token and its accessor only as HMACs under the device's key,
//! whatever they look like, and no request or response body. If a device
//! cannot record, requests fail (fail closed), as Vault's do.
//!
//! Two device types ([`device`]): `file`, Vault's JSON lines appended to
//! one file ([`vault_entry`], [`lines`]), and `citadel`, a tamper-evident
//! `citadel-audit` log (searchable with `citadel audit search --hmac`).
//!
//! Each device has a writer thread: requests hand it their entry through a
//! bounded queue and never wait on the disk; the writer appends and
//! commits by group (every 5 ms). A `citadel` writer also signs a
//! checkpoint at least every `checkpoint_every` (1 s by default) while
//! entries arrive, so at most that much of the log is ever unanchored, and
//! before each checkpoint records the vault's storage epoch (see
//! [`crate::integrity`]); at unseal the vault refuses storage older than
//! the newest epoch so anchored.
//!
//! Devices are configured with Vault's `sys/audit/:path` and kept behind
//! the barrier at `core/audit`; they are reopened at unseal, and a `file`
//! device's file is reopened on [`Devices::reopen_files`] (after a log
//! rotation).

pub mod device;
mod lines;
mod vault_entry;

pub use device::Device;

use crate::error::Error;
use crate::metrics::Metrics;
use citadel_audit::log::{AuditLog, Durability};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Where the device table is stored (behind the barrier).
pub const TABLE: &str = "core/audit";

/// The action of a storage epoch anchor entry.
pub const ANCHOR_ACTION: &str = "vault storage epoch";

/// Entries a device's queue holds before requests are refused.
const QUEUE: usize = 65_536;
/// Bytes of entries a device's queue holds before requests are refused
/// (counted as allocated).
const QUEUE_BYTES: usize = 64 << 20;
/// Devices enabled at once, so that their queues bound the memory too.
const MAX_DEVICES: usize = 8;
/// Group commit delay.
const GROUP: Duration = Duration::from_millis(5);
/// How often a busy writer takes what was queued (requests hand entries
/// over without waking it, which would cost a system call each).
const DRAIN: Duration = Duration::from_millis(2);
/// A device re-anchors the storage epoch after this many entries even when
/// the epoch did not move, so that however many requests (or padding)
/// follow, the newest anchor stays within reach of the end of the log.
#[cfg(not(test))]
const ANCHOR_EVERY: u64 = 50_000;
#[cfg(test)]
const ANCHOR_EVERY: u64 = 20;
/// How far back from the end of a log unseal looks for anchors: a log
/// longer than this with no anchor in it was padded (or is not the vault's).
const ANCHOR_SCAN: u64 = 2 * ANCHOR_EVERY;

/// What one request or response entry says.
#[derive(Clone, Debug)]
pub struct Record<'a> {
    /// `request` or `response`.
    pub kind: &'static str,
    /// The operation (`read`, `update`, ...).
    pub operation: &'a str,
    /// The canonical path, or the raw one when it did not canonicalise.
    pub path: &'a str,
    /// The token the client sent (recorded as an HMAC).
    pub token: Option<&'a str>,
    /// Its accessor, when the token was valid (recorded as an HMAC).
    pub accessor: Option<&'a str>,
    /// The request id.
    pub request_id: &'a str,
    /// The response status (responses only).
    pub status: Option<u16>,
    /// The client's address.
    pub client: Option<std::net::IpAddr>,
    /// The accessor of a token the request created (a login, a token
    /// creation), recorded as an HMAC so the log links it to what the token
    /// does later.
    pub issued_accessor: Option<&'a str>,
    /// The policies of the client's token, when it was valid.
    pub policies: Option<&'a [String]>,
    /// Its display name.
    pub display_name: Option<&'a str>,
    /// A failed response's first error message.
    pub error: Option<&'a str>,
}

/// What requests hand a writer: entries, and flush or close requests.
#[derive(Default)]
struct Queue {
    entries: Vec<Queued>,
    /// The bytes of `entries`.
    bytes: usize,
    flushes: Vec<SyncSender<Result<(), String>>>,
    closing: bool,
    /// A `file` device reopens its file (after a log rotation) once it
    /// wrote the first this many entries (those queued before the ask).
    reopen: Option<usize>,
}

/// One entry handed to a writer: its bytes, when, and for a response the
/// slot its request waits on.
struct Queued {
    bytes: Vec<u8>,
    at: Instant,
    slot: Option<Arc<Slot>>,
}

/// What a request waiting for its entry to be durable is called with.
type Waiter = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Where a writer tells a request whether its entry is durable.
#[derive(Default)]
struct Slot(Mutex<SlotState>);

#[derive(Default)]
struct SlotState {
    result: Option<Result<(), String>>,
    then: Option<Waiter>,
}

impl Slot {
    /// The entry was made durable, or was lost.
    fn settle(&self, r: Result<(), String>) {
        let then = {
            let mut s = lock(&self.0);
            match s.then.take() {
                Some(t) => t,
                None => {
                    s.result.get_or_insert(r);
                    return;
                }
            }
        };
        then(r);
    }

    /// Calls `f` once the entry is settled (at once if it is).
    fn then(&self, f: Waiter) {
        let r = {
            let mut s = lock(&self.0);
            match s.result.take() {
                Some(r) => r,
                None => {
                    s.then = Some(f);
                    return;
                }
            }
        };
        f(r);
    }
}

impl Drop for Slot {
    /// An entry dropped unsettled (its writer died) was not recorded.
    fn drop(&mut self) {
        let s = self.0.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = s.then.take() {
            t(Err("its writer stopped before recording the entry".into()));
        }
    }
}

/// What a request's answer waits for: its response entry durable on every
/// device it was handed to ([`Ticket::on_durable`], [`Ticket::wait`]).
#[derive(Default)]
#[must_use = "an answer waits until its audit entries are durable"]
pub struct Ticket {
    slots: Vec<(String, Arc<Slot>)>,
}

impl Ticket {
    /// Calls `f` once every device made the entry durable (`Ok`), or as
    /// soon as one could not (the error names it). `f` runs on a device's
    /// writer thread or on this one: it must not block.
    pub fn on_durable(self, f: impl FnOnce(Result<(), Error>) + Send + 'static) {
        if self.slots.is_empty() {
            return f(Ok(()));
        }
        struct Join<F> {
            left: AtomicU64,
            f: Mutex<Option<F>>,
        }
        let join = Arc::new(Join {
            left: AtomicU64::new(self.slots.len() as u64),
            f: Mutex::new(Some(f)),
        });
        for (dev, slot) in self.slots {
            let join = join.clone();
            slot.then(Box::new(move |r| {
                let done = match r {
                    Err(e) => Some(Err(Error::Audit(format!(
                        "audit device {dev} did not record the answer ({e}); it is not given"
                    )))),
                    Ok(()) if join.left.fetch_sub(1, Ordering::AcqRel) == 1 => Some(Ok(())),
                    Ok(()) => None,
                };
                if let Some(r) = done {
                    if let Some(f) = lock(&join.f).take() {
                        f(r);
                    }
                }
            }));
        }
    }

    /// Waits until the entry is durable on every device (or could not be).
    pub fn wait(self) -> Result<(), Error> {
        let (tx, rx) = sync_channel(1);
        self.on_durable(move |r| {
            let _ = tx.send(r);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(Error::Audit("the audit writer stopped".into())))
    }
}

/// The queue between the requests and one device's writer thread.
#[derive(Default)]
struct Mailbox {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Set by the writer before it sleeps without a deadline; the next
    /// entry wakes it.
    idle: AtomicBool,
}

impl Mailbox {
    fn wake_writer(&self) {
        self.wake.notify_one();
    }
}

/// How a device writes its entries.
#[derive(Clone)]
enum Format {
    /// A `citadel-audit` log's canonical JSON entries.
    Citadel,
    /// Vault's JSON lines.
    Vault { hmac_accessor: bool },
}

struct Open {
    mailbox: Arc<Mailbox>,
    key: Zeroizing<Vec<u8>>,
    format: Format,
    failed: Arc<Mutex<Option<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The newest storage epoch anchored in this log when it was opened
    /// (`None` for a `file` device, which anchors nothing).
    anchored: Option<u64>,
}

/// The open devices.
pub struct Devices {
    open: std::sync::RwLock<BTreeMap<String, Result<Open, String>>>,
    /// Bumped (under the write lock) each time the devices are reloaded or
    /// closed, so a response is never recorded to nothing, or to devices
    /// other than those its request went to.
    generation: AtomicU64,
    /// Set (under the write lock) when the devices are closed at seal, and
    /// cleared when they are loaded at unseal: an enable racing a seal
    /// must not leave a device open behind the seal.
    closed: AtomicBool,
    epoch: Arc<AtomicU64>,
    checkpoint_every: Duration,
    metrics: Arc<Metrics>,
    /// Where `file` devices may write.
    file_dirs: Vec<std::path::PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The HMAC form of a string, as `citadel audit search --hmac` computes it.
fn hmac_string(key: &[u8], v: &str) -> String {
    format!(
        "{}{}",
        citadel_audit::entry::HMAC_PREFIX,
        hex::encode(citadel_crypto::kdf::hmac_sha256(key, v.as_bytes()))
    )
}

#[cfg(test)]
fn hmac(key: &[u8], v: &str) -> Value {
    Value::String(hmac_string(key, v))
}

/// An entry as stored: fields in sorted order, so that serde's output is
/// the canonical JSON `citadel-audit` expects.
#[derive(Serialize)]
struct EntryOut<'a> {
    action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    details: DetailsOut<'a>,
    outcome: &'a str,
    request_id: &'a str,
    resource: &'a str,
    time: &'a str,
}

#[derive(Serialize)]
struct DetailsOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    accessor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_accessor: Option<String>,
    operation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
}

/// The newest anchored storage epoch in `log`: the largest epoch anchored
/// in its last [`ANCHOR_SCAN`] entries (epochs only grow, so an anchor
/// appended later with an older epoch cannot lower it). A log longer than
/// that with no anchor in it is refused: the vault writes one every
/// [`ANCHOR_EVERY`] entries, so its absence means the log was padded to
/// push the anchors out of reach.
fn newest_anchor(log: &mut AuditLog) -> Result<u64, String> {
    let size = log.size();
    let stop = size.saturating_sub(ANCHOR_SCAN);
    let mut newest = None;
    let mut i = size;
    while i > stop {
        i -= 1;
        let e = log.entry(i).map_err(|e| e.to_string())?;
        if e.windows(ANCHOR_ACTION.len())
            .any(|w| w == ANCHOR_ACTION.as_bytes())
        {
            let v: Value = serde_json::from_slice(&e).map_err(|e| e.to_string())?;
            if v["action"] == ANCHOR_ACTION {
                if let Some(n) = v["details"]["epoch"].as_u64() {
                    newest = newest.max(Some(n));
                }
            }
        }
    }
    match newest {
        Some(n) => Ok(n),
        None if size > ANCHOR_SCAN => Err(format!(
            "the last {ANCHOR_SCAN} entries of the audit log hold no storage epoch \
             anchor (the vault writes one every {ANCHOR_EVERY}): the log was padded \
             or is not this vault's; check it with `citadel audit verify`"
        )),
        None => Ok(0),
    }
}

fn anchor_entry(epoch: u64) -> Value {
    json!({
        "time": citadel_audit::entry::now(),
        "action": ANCHOR_ACTION,
        "resource": crate::integrity::RECORD,
        "outcome": "anchored",
        "details": {"epoch": epoch},
    })
}

/// Tells the callers of a flush whether the device is healthy.
fn answer(failed: &Mutex<Option<String>>, flushes: Vec<SyncSender<Result<(), String>>>) {
    if flushes.is_empty() {
        return;
    }
    let r = lock(failed).clone().map_or(Ok(()), Err);
    for f in flushes {
        let _ = f.send(r.clone());
    }
}

/// An entry that makes the writer panic, to test what a dead writer does.
#[cfg(test)]
const PANIC_FOR_TESTS: &[u8] = b"\xffpanic";

/// A `citadel` device's log, and what it anchored.
struct LogSink {
    log: AuditLog,
    key: Zeroizing<Vec<u8>>,
    epoch: Arc<AtomicU64>,
    anchored: u64,
    unanchored: u64,
    /// Entries appended since the last anchor.
    since_anchor: u64,
}

impl LogSink {
    /// Records the storage epoch when it moved since the last anchor, or
    /// when [`ANCHOR_EVERY`] entries were appended since.
    fn anchor(&mut self) -> Result<(), String> {
        let now = self.epoch.load(Ordering::Acquire);
        if now != self.anchored || self.since_anchor >= ANCHOR_EVERY {
            self.log
                .append_entry(anchor_entry(now), &[], &self.key)
                .map_err(|e| e.to_string())?;
            self.anchored = now;
            self.since_anchor = 0;
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        self.anchor()?;
        self.log
            .checkpoint()
            .map(|_| ())
            .map_err(|e| e.to_string())?;
        self.unanchored = 0;
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.log.append(bytes).map_err(|e| format!("append: {e}"))?;
        self.unanchored += 1;
        self.since_anchor += 1;
        if self.since_anchor >= ANCHOR_EVERY {
            self.anchor().map_err(|e| format!("anchor: {e}"))?;
        }
        Ok(())
    }
}

/// Where a writer puts entries.
enum Sink {
    Log(Box<LogSink>),
    Lines(lines::LinesFile),
}

/// What the writer keeps between messages.
struct WriterState {
    sink: Sink,
    failed: Arc<Mutex<Option<String>>>,
    metrics: Arc<Metrics>,
    /// How many times the device failed: an entry appended before a
    /// failure is lost even if the device recovers before the commit.
    failures: u64,
}

impl WriterState {
    fn fail(&mut self, e: String) {
        self.failures += 1;
        self.metrics.audit_failures.fetch_add(1, Ordering::Relaxed);
        let mut f = lock(&self.failed);
        if f.is_none() {
            *f = Some(e);
        }
    }

    fn healthy(&self) -> bool {
        lock(&self.failed).is_none()
    }

    /// Before the first entry: a log anchors the storage epoch.
    fn start(&mut self) -> Result<(), String> {
        match &mut self.sink {
            Sink::Log(l) => l
                .anchor()
                .and_then(|()| l.log.commit().map_err(|e| e.to_string())),
            Sink::Lines(_) => Ok(()),
        }
    }

    /// Whether nothing waits to be made durable or anchored.
    fn idle(&self) -> bool {
        match &self.sink {
            Sink::Log(l) => l.log.durable_size() == l.log.size() && l.unanchored == 0,
            Sink::Lines(f) => !f.pending(),
        }
    }

    fn append(&mut self, bytes: &[u8], queued: Instant) {
        #[cfg(test)]
        if bytes == PANIC_FOR_TESTS {
            panic!("the writer died (a test)");
        }
        let r = match &mut self.sink {
            Sink::Log(l) => l.append(bytes),
            Sink::Lines(f) => {
                f.push(bytes);
                Ok(())
            }
        };
        match r {
            Ok(()) => self.metrics.audit_append.observe(queued.elapsed()),
            Err(e) => self.fail(e),
        }
    }

    /// Makes what was appended durable.
    fn commit(&mut self) {
        let r = match &mut self.sink {
            Sink::Log(l) if l.log.durable_size() < l.log.size() => {
                l.log.commit().map_err(|e| format!("commit: {e}"))
            }
            Sink::Log(_) => Ok(()),
            Sink::Lines(f) => f.commit(),
        };
        if let Err(e) = r {
            self.fail(e);
        }
    }

    /// Whether a log holds entries no checkpoint covers.
    fn unanchored(&self) -> bool {
        matches!(&self.sink, Sink::Log(l) if l.unanchored > 0)
    }

    /// Signs a checkpoint over what a log holds.
    fn checkpoint(&mut self) {
        if let Sink::Log(l) = &mut self.sink {
            if let Err(e) = l.checkpoint() {
                self.fail(format!("checkpoint: {e}"));
            }
        }
    }

    /// Opens a `file` device's file again. A failed device that reopens
    /// its file is healthy again (the entries lost meanwhile belonged to
    /// requests that were refused).
    fn reopen(&mut self) {
        if let Sink::Lines(f) = &mut self.sink {
            match f.reopen() {
                Ok(()) => *lock(&self.failed) = None,
                Err(e) => self.fail(format!("reopen: {e}")),
            }
        }
    }

    /// The last checkpoint and commit.
    fn finish(&mut self) {
        if self.healthy() {
            match &mut self.sink {
                Sink::Log(l) => {
                    let r = l.checkpoint();
                    if let Err(e) = r {
                        self.fail(e);
                    }
                }
                Sink::Lines(_) => self.commit(),
            }
        }
    }

    /// Closes a log (its derived files made durable too).
    fn end(self) {
        if let Sink::Log(l) = self.sink {
            let _ = l.log.close();
        }
    }
}

/// Fails a device whose writer thread dies (a panic): requests are refused
/// and every flush waiting on it is answered, instead of waiting forever.
struct Dying<'a> {
    mailbox: &'a Mailbox,
    failed: Arc<Mutex<Option<String>>>,
}

impl Drop for Dying<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        lock(&self.failed).get_or_insert_with(|| "its writer stopped unexpectedly".into());
        let (flushes, entries) = {
            let mut q = lock(&self.mailbox.queue);
            q.closing = true;
            (
                std::mem::take(&mut q.flushes),
                std::mem::take(&mut q.entries),
            )
        };
        answer(&self.failed, flushes);
        // Their slots tell the waiting requests the entries were lost.
        drop(entries);
    }
}

/// The writer thread of one device.
fn writer(mut w: WriterState, mailbox: Arc<Mailbox>, checkpoint_every: Duration) {
    let _dying = Dying {
        mailbox: &mailbox,
        failed: w.failed.clone(),
    };
    if let Err(e) = w.start() {
        w.fail(e);
    }
    let mut last_checkpoint = Instant::now();
    loop {
        // Take what was queued: wait briefly while busy, or until woken
        // (or the next checkpoint is due) while idle.
        let taken = {
            let mut q = lock(&mailbox.queue);
            if q.entries.is_empty() && q.flushes.is_empty() && !q.closing && q.reopen.is_none() {
                let idle = w.idle();
                let wait = if idle {
                    checkpoint_every.max(GROUP)
                } else {
                    DRAIN
                };
                mailbox.idle.store(idle, Ordering::Release);
                q = mailbox
                    .wake
                    .wait_timeout(q, wait)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
                mailbox.idle.store(false, Ordering::Release);
            }
            std::mem::take(&mut *q)
        };
        let n = taken.entries.len();
        // The slots of the entries appended, with the failure count then.
        let mut slots = Vec::new();
        for (i, e) in taken.entries.into_iter().enumerate() {
            if taken.reopen == Some(i) {
                w.reopen();
            }
            if let Some(why) = lock(&w.failed).clone() {
                // Skipped: its request is told now, whatever follows.
                w.metrics.audit_failures.fetch_add(1, Ordering::Relaxed);
                if let Some(slot) = e.slot {
                    slot.settle(Err(why));
                }
                continue;
            }
            w.append(&e.bytes, e.at);
            slots.extend(e.slot.map(|s| (s, w.failures)));
        }
        // Once the batch is committed: durable only if the device did not
        // fail since the entry was appended.
        let settle = |w: &WriterState, slots: Vec<(Arc<Slot>, u64)>| {
            let failed = lock(&w.failed).clone();
            for (slot, failures) in slots {
                slot.settle(match &failed {
                    Some(e) => Err(e.clone()),
                    None if failures != w.failures => {
                        Err("the device failed before the entry was durable".into())
                    }
                    None => Ok(()),
                });
            }
        };
        if taken.closing {
            w.finish();
            settle(&w, slots);
            let failed = w.failed.clone();
            w.end();
            answer(&failed, taken.flushes);
            return;
        }
        if taken.reopen.is_some_and(|i| i >= n) {
            w.reopen();
        }
        w.commit();
        settle(&w, slots);
        answer(&w.failed, taken.flushes);
        if w.unanchored() && last_checkpoint.elapsed() >= checkpoint_every && w.healthy() {
            w.checkpoint();
            last_checkpoint = Instant::now();
        }
    }
}

impl Devices {
    fn read_open(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Result<Open, String>>> {
        self.open.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_open(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Result<Open, String>>> {
        self.open.write().unwrap_or_else(|p| p.into_inner())
    }

    /// No devices yet; `epoch` is the storage epoch to anchor.
    pub fn new(epoch: Arc<AtomicU64>, checkpoint_every: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            open: std::sync::RwLock::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            epoch,
            checkpoint_every,
            metrics,
            file_dirs: Vec::new(),
        }
    }

    /// Lets `file` devices write in `dirs` (and below), and nowhere else;
    /// each is resolved once, here (a directory that does not resolve is
    /// dropped), so that retargeting a link the operator named later
    /// moves nothing.
    pub fn with_file_dirs(mut self, dirs: Vec<std::path::PathBuf>) -> Self {
        self.file_dirs = dirs.iter().filter_map(|d| d.canonicalize().ok()).collect();
        self
    }

    /// The configured directory a `file` device's path lies below (by its
    /// spelling: the file is then opened component by component without
    /// following a link, see [`lines`]).
    fn file_root(&self, path: &std::path::Path) -> Result<&std::path::Path, String> {
        if self.file_dirs.is_empty() {
            return Err(
                "file audit devices are off on this server: start it with --audit-file-dir DIR (or [audit] file_directories in its configuration) naming where they may write"
                    .into(),
            );
        }
        self.file_dirs
            .iter()
            .find(|d| path.starts_with(d))
            .map(|d| d.as_path())
            .ok_or_else(|| {
                let dirs: Vec<String> = self
                    .file_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect();
                format!(
                    "{} is outside the directories file audit devices may write in ({})",
                    path.display(),
                    dirs.join(", ")
                )
            })
    }

    /// Opens a device. For a `citadel` device, `create` makes a new log
    /// when there is none (when the device is enabled, or the operator
    /// accepted storage changes), never otherwise: a log that vanished must
    /// not be replaced silently, or the storage epochs anchored in it would
    /// go unchecked. A `file` device's file is created when missing, as
    /// Vault's is.
    fn open_device(&self, d: &Device, create: bool) -> Result<Open, String> {
        let (sink, key, format, anchored) = match d.kind.as_str() {
            device::CITADEL => {
                if !d.file_path.join("log.json").exists() {
                    if !create {
                        return Err(format!(
                            "{} holds no audit log (moved or deleted?)",
                            d.file_path.display()
                        ));
                    }
                    AuditLog::init(&d.file_path, "citadel.vault/audit")
                        .map_err(|e| e.to_string())?;
                }
                let mut log = AuditLog::open(&d.file_path, Durability::Group(GROUP))
                    .map_err(|e| e.to_string())?;
                let key = log.hmac_key().map_err(|e| e.to_string())?;
                let anchored = newest_anchor(&mut log)?;
                let sink = Sink::Log(Box::new(LogSink {
                    log,
                    key: key.clone(),
                    epoch: self.epoch.clone(),
                    anchored: u64::MAX,
                    unanchored: 0,
                    since_anchor: 0,
                }));
                (sink, key, Format::Citadel, Some(anchored))
            }
            device::FILE => {
                let key = d
                    .hmac_key
                    .as_ref()
                    .ok_or("its HMAC key is missing from the device table")?
                    .bytes()?;
                let root = self.file_root(&d.file_path)?;
                let file = lines::LinesFile::open(root, &d.file_path, d.mode)?;
                let format = Format::Vault {
                    hmac_accessor: d.hmac_accessor,
                };
                (Sink::Lines(file), key, format, None)
            }
            other => return Err(format!("unknown audit device type {other:?}")),
        };
        let mailbox = Arc::new(Mailbox::default());
        let failed = Arc::new(Mutex::new(None));
        let state = WriterState {
            sink,
            failed: failed.clone(),
            metrics: self.metrics.clone(),
            failures: 0,
        };
        let every = self.checkpoint_every;
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn({
                let mailbox = mailbox.clone();
                move || writer(state, mailbox, every)
            })
            .map_err(|e| e.to_string())?;
        Ok(Open {
            mailbox,
            key,
            format,
            failed,
            thread: Some(thread),
            anchored,
        })
    }

    /// Opens every device of `table` (at unseal); a device that fails to
    /// open makes every audited request fail until it is fixed.
    pub fn load(&self, table: &BTreeMap<String, Device>, create_missing: bool) {
        let opened: BTreeMap<String, Result<Open, String>> = table
            .iter()
            .map(|(p, d)| (p.clone(), self.open_device(d, create_missing)))
            .collect();
        let old = {
            let mut open = self.write_open();
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.closed.store(false, Ordering::Release);
            std::mem::replace(&mut *open, opened)
        };
        close(old.into_values());
    }

    /// Marks every open device failed, as a write error would (tests).
    #[cfg(test)]
    pub(crate) fn fail_all(&self, why: &str) {
        for o in self.read_open().values().flatten() {
            *lock(&o.failed) = Some(why.to_string());
        }
    }

    /// The devices that could not be opened, and why.
    pub fn unavailable(&self) -> Vec<(String, String)> {
        self.read_open()
            .iter()
            .filter_map(|(p, o)| o.as_ref().err().map(|e| (p.clone(), e.clone())))
            .collect()
    }

    /// The newest storage epoch anchored in any open device, and the device.
    pub fn newest_anchor(&self) -> Option<(u64, String)> {
        self.read_open()
            .iter()
            .filter_map(|(p, o)| Some((o.as_ref().ok()?.anchored?, p.clone())))
            .max()
    }

    /// Asks every `file` device to open its file again (after a log
    /// rotation moved it); a device that cannot fails, and requests are
    /// refused until it is fixed.
    pub fn reopen_files(&self) {
        for o in self.read_open().values().flatten() {
            if matches!(o.format, Format::Vault { .. }) {
                let mut q = lock(&o.mailbox.queue);
                let queued = q.entries.len();
                q.reopen.get_or_insert(queued);
                drop(q);
                o.mailbox.wake_writer();
            }
        }
    }

    /// The HMAC of `input` under the key of the device at `path` (Vault's
    /// `sys/audit-hash/:path`), so an operator can find a token's entries;
    /// `None` when no device is there.
    pub fn hash(&self, path: &str, input: &str) -> Option<String> {
        let open = self.read_open();
        let o = open.get(path)?.as_ref().ok()?;
        Some(hmac_string(&o.key, input))
    }

    /// Adds a device, opening it now; an error leaves nothing enabled.
    pub fn enable(&self, path: &str, d: &Device) -> Result<(), Error> {
        let o = self.open_device(d, true).map_err(|e| {
            Error::bad(format!(
                "cannot open audit log {}: {e}",
                d.file_path.display()
            ))
        })?;
        let mut open = self.write_open();
        if self.closed.load(Ordering::Acquire) {
            drop(open);
            close([Ok(o)]);
            return Err(Error::Sealed);
        }
        if open.len() >= MAX_DEVICES && !open.contains_key(path) {
            drop(open);
            close([Ok(o)]);
            return Err(Error::bad(format!(
                "at most {MAX_DEVICES} audit devices can be enabled; disable one first"
            )));
        }
        let old = open.insert(path.to_string(), Ok(o));
        drop(open);
        close(old);
        Ok(())
    }

    /// Removes a device (its log is committed and checkpointed).
    pub fn disable(&self, path: &str) {
        let old = self.write_open().remove(path);
        close(old);
    }

    /// Closes every device (at seal and shutdown), after it wrote what it
    /// was given and signed a last checkpoint.
    pub fn close_all(&self) {
        let old = {
            let mut open = self.write_open();
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut *open)
        };
        close(old.into_values());
    }

    /// Whether any device is enabled.
    pub fn any(&self) -> bool {
        !self.read_open().is_empty()
    }

    /// How many devices are enabled.
    pub fn count(&self) -> usize {
        self.read_open().len()
    }

    /// Hands one entry to every device; fails (the request must not go
    /// on) if any device failed or is too far behind.
    pub fn record(&self, r: &Record<'_>) -> Result<(), Error> {
        self.record_since(r, None).map(|_| ())
    }

    /// [`Devices::record_since`] for a response: also returns the ticket
    /// its answer waits on.
    pub fn record_response(&self, r: &Record<'_>, since: u64) -> Result<Ticket, Error> {
        self.record_inner(r, Some(since), true).map(|(_, t)| t)
    }

    /// [`Devices::record`], failing when the devices were reloaded or
    /// closed since generation `since` (the one a request's entry went
    /// to: a vault sealed while the request ran cannot record its answer,
    /// so the answer is not given). Returns the generation recorded to.
    pub fn record_since(&self, r: &Record<'_>, since: Option<u64>) -> Result<u64, Error> {
        self.record_inner(r, since, false).map(|(g, _)| g)
    }

    fn record_inner(
        &self,
        r: &Record<'_>,
        since: Option<u64>,
        ticket: bool,
    ) -> Result<(u64, Ticket), Error> {
        let open = self.read_open();
        let generation = self.generation.load(Ordering::Acquire);
        if since.is_some_and(|g| g != generation) {
            self.metrics.audit_failures.fetch_add(1, Ordering::Relaxed);
            return Err(Error::Audit(
                "the audit devices were closed while the request ran (the vault sealed); its answer cannot be recorded, so it is not given".into(),
            ));
        }
        if open.is_empty() {
            return Ok((generation, Ticket::default()));
        }
        // Disabling a device is recorded by the devices that can: a
        // failed device refuses nothing there, so an operator can always
        // remove broken devices, one after the other.
        let removing = r.operation == "delete" && r.path.starts_with("sys/audit/");
        let mut out = Ticket::default();
        let outcome = match r.status {
            None => "pending".to_string(),
            Some(s) if s < 400 => "success".to_string(),
            Some(s) => format!("error {s}"),
        };
        let time = citadel_audit::entry::now();
        let action = format!("{} {}", r.kind, r.operation);
        let client = r.client.map(|c| c.to_string());
        for (dev, o) in open.iter() {
            let refuse = |why: String| {
                self.metrics.audit_failures.fetch_add(1, Ordering::Relaxed);
                Error::Audit(format!("audit device {dev} {why}; refusing the request"))
            };
            let broken = match o {
                Err(e) => Some(format!("is unavailable ({e})")),
                Ok(o) => lock(&o.failed).clone().map(|e| format!("failed ({e})")),
            };
            if let Some(why) = broken {
                if removing {
                    continue;
                }
                return Err(refuse(why));
            }
            let Ok(o) = o else { continue };
            let bytes = match &o.format {
                Format::Citadel => {
                    // Canonical JSON (keys sorted, compact), as
                    // citadel-audit stores entries; anything the client
                    // sent is HMACed, whatever it looks like.
                    let entry = EntryOut {
                        action: &action,
                        actor: r
                            .token
                            .filter(|t| !t.is_empty())
                            .map(|t| hmac_string(&o.key, t)),
                        details: DetailsOut {
                            accessor: r.accessor.map(|a| hmac_string(&o.key, a)),
                            client: client.as_deref(),
                            issued_accessor: r.issued_accessor.map(|a| hmac_string(&o.key, a)),
                            operation: r.operation,
                            status: r.status,
                        },
                        outcome: &outcome,
                        request_id: r.request_id,
                        resource: r.path,
                        time: &time,
                    };
                    serde_json::to_vec(&entry)
                }
                Format::Vault { hmac_accessor } => {
                    vault_entry::line(r, &|v| hmac_string(&o.key, v), *hmac_accessor, &time)
                }
            }
            .map_err(|e| refuse(format!("refused the entry ({e})")))?;
            let mut q = lock(&o.mailbox.queue);
            if q.closing {
                return Err(refuse("stopped".into()));
            }
            if q.entries.len() >= QUEUE || q.bytes + bytes.capacity() > QUEUE_BYTES {
                return Err(refuse("is too far behind".into()));
            }
            let slot = ticket.then(|| Arc::new(Slot::default()));
            if let Some(slot) = &slot {
                out.slots.push((dev.clone(), slot.clone()));
            }
            q.bytes += bytes.capacity() + std::mem::size_of::<Queued>();
            q.entries.push(Queued {
                bytes,
                at: Instant::now(),
                slot,
            });
            drop(q);
            if o.mailbox.idle.load(Ordering::Acquire) {
                o.mailbox.wake_writer();
            }
        }
        Ok((generation, out))
    }

    /// Waits until every device has made what it was given durable.
    pub fn flush(&self) -> Result<(), Error> {
        type Wait = (
            String,
            std::sync::mpsc::Receiver<Result<(), String>>,
            Arc<Mutex<Option<String>>>,
        );
        let waits: Vec<Wait> = self
            .read_open()
            .iter()
            .filter_map(|(p, o)| {
                let o = o.as_ref().ok()?;
                let (tx, rx) = sync_channel(1);
                let mut q = lock(&o.mailbox.queue);
                if q.closing {
                    // No writer will answer.
                    let _ = tx.send(Err("is stopping".into()));
                } else {
                    q.flushes.push(tx);
                }
                drop(q);
                o.mailbox.wake_writer();
                Some((p.clone(), rx, o.failed.clone()))
            })
            .collect();
        for (p, rx, failed) in waits {
            // Unanswered: the writer died holding the request; its failure
            // says why.
            let r = rx
                .recv()
                .unwrap_or_else(|_| Err(lock(&failed).clone().unwrap_or_else(|| "stopped".into())));
            if let Err(e) = r {
                return Err(Error::Audit(format!("audit device {p}: {e}")));
            }
        }
        Ok(())
    }
}

fn close(devices: impl IntoIterator<Item = Result<Open, String>>) {
    for Open {
        mailbox, thread, ..
    } in devices.into_iter().flatten()
    {
        lock(&mailbox.queue).closing = true;
        mailbox.wake_writer();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Devices {
    fn drop(&mut self) {
        self.close_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn devices(every: Duration) -> (Devices, Arc<AtomicU64>) {
        let epoch = Arc::new(AtomicU64::new(7));
        (
            Devices::new(epoch.clone(), every, Arc::new(Metrics::default()))
                .with_file_dirs(vec!["/".into()]),
            epoch,
        )
    }

    fn file_device(file_path: PathBuf) -> Device {
        Device::citadel(file_path)
    }

    /// A `file` (JSON lines) device writing `path`, enabled as `file/`.
    fn enable_lines(d: &Devices, path: &std::path::Path) {
        let options = serde_json::json!({"file_path": path});
        let dev = Device::from_request(device::FILE, "", options.as_object()).unwrap();
        d.enable("file/", &dev).unwrap();
    }

    /// Hands the writer of device `dev` an entry that makes it panic.
    fn kill_writer(d: &Devices, dev: &str) {
        let open = d.read_open();
        let o = open[dev].as_ref().unwrap();
        lock(&o.mailbox.queue).entries.push(Queued {
            bytes: PANIC_FOR_TESTS.to_vec(),
            at: Instant::now(),
            slot: None,
        });
        o.mailbox.wake_writer();
    }

    fn record<'a>(token: &'a str) -> Record<'a> {
        Record {
            kind: "request",
            operation: "read",
            path: "secret/data/x",
            token: Some(token),
            accessor: None,
            request_id: "r1",
            status: None,
            client: None,
            issued_accessor: None,
            policies: None,
            display_name: None,
            error: None,
        }
    }

    /// Finding 9: a token that looks like an HMAC is HMACed all the same,
    /// so nobody can make entries look like another user's.
    #[test]
    fn tokens_are_hmaced_whatever_they_look_like() {
        let dir = tempfile::tempdir().unwrap();
        let (d, _) = devices(Duration::from_secs(3600));
        let dev = file_device(dir.path().join("log"));
        d.enable("file/", &dev).unwrap();
        let forged = "hmac-sha256:0000000000000000000000000000000000000000000000000000000000000000";
        d.record(&record(forged)).unwrap();
        d.close_all();
        let mut log = AuditLog::open(&dev.file_path, Durability::EveryAppend).unwrap();
        let mut actors = Vec::new();
        log.scan(0, |_, e| {
            let v: Value = serde_json::from_slice(e).unwrap();
            if let Some(a) = v["actor"].as_str() {
                actors.push(a.to_string());
            }
            true
        })
        .unwrap();
        assert_eq!(actors.len(), 1);
        assert_ne!(actors[0], forged);
        let key = log.hmac_key().unwrap();
        assert_eq!(Value::String(actors[0].clone()), hmac(&key, forged));
    }

    /// Finding 12: the device signs checkpoints while entries arrive, and
    /// anchors the storage epoch in the log.
    #[test]
    fn checkpoints_are_signed_while_entries_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let (d, epoch) = devices(Duration::from_millis(50));
        let dev = file_device(dir.path().join("log"));
        d.enable("file/", &dev).unwrap();
        for _ in 0..5 {
            d.record(&record("t")).unwrap();
            std::thread::sleep(Duration::from_millis(60));
        }
        d.flush().unwrap();
        let cp = std::fs::read_to_string(dev.file_path.join("checkpoint")).unwrap();
        let size: u64 = cp.lines().nth(1).unwrap().parse().unwrap();
        assert!(size >= 4, "a checkpoint covers the entries written: {cp}");
        epoch.store(9, Ordering::SeqCst);
        d.close_all();
        d.load(&BTreeMap::from([("file/".to_string(), dev.clone())]), false);
        assert_eq!(d.newest_anchor(), Some((9, "file/".to_string())));
        d.close_all();
        // Every entry verifies against the signed checkpoint.
        let v = citadel_audit::log::load_verifier(&dev.file_path).unwrap();
        let _ = v;
    }

    /// Found by the races review: a million requests pushed the last
    /// anchor out of the window unseal reads, and a rolled-back database
    /// then unsealed. The writer re-anchors every ANCHOR_EVERY entries, and
    /// a log padded past the window without an anchor is refused.
    #[test]
    fn anchors_stay_within_reach_of_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (d, _) = devices(Duration::from_secs(3600));
        let dev = file_device(dir.path().join("log"));
        d.enable("file/", &dev).unwrap();
        for _ in 0..(ANCHOR_EVERY * 5 + 3) {
            d.record(&record("t")).unwrap();
        }
        d.close_all();
        let mut log = AuditLog::open(&dev.file_path, Durability::EveryAppend).unwrap();
        let mut anchors = Vec::new();
        log.scan(0, |i, e| {
            let v: Value = serde_json::from_slice(e).unwrap();
            if v["action"] == ANCHOR_ACTION {
                anchors.push(i);
            }
            true
        })
        .unwrap();
        assert!(anchors.len() >= 5, "{anchors:?}");
        for w in anchors.windows(2) {
            assert!(w[1] - w[0] <= ANCHOR_EVERY + 1, "{anchors:?}");
        }
        assert!(log.size() - anchors.last().unwrap() <= ANCHOR_EVERY + 1);
        assert_eq!(newest_anchor(&mut log).unwrap(), 7);
        // An older epoch appended later does not lower the anchor.
        log.append_entry(anchor_entry(3), &[], &log.hmac_key().unwrap())
            .unwrap();
        assert_eq!(newest_anchor(&mut log).unwrap(), 7);
        // Padding past the window without an anchor is refused.
        for _ in 0..=ANCHOR_SCAN {
            log.append(br#"{"action":"pad"}"#).unwrap();
        }
        let e = newest_anchor(&mut log).unwrap_err();
        assert!(e.contains("padded"), "{e}");
    }

    /// Found by helper-22: answers were given before their entries were
    /// written, so a crash or a full disk lost entries of answered
    /// requests. A response's ticket settles only once its entry is
    /// durable, and with an error (never a hang) when its writer dies.
    #[test]
    fn a_response_waits_until_its_entry_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (d, _) = devices(Duration::from_secs(3600));
        let path = dir.path().join("a.log");
        enable_lines(&d, &path);
        let generation = d.record_since(&record("t"), None).unwrap();
        for i in 0..50 {
            let id = format!("response-{i}");
            let mut r = record("t");
            r.kind = "response";
            r.request_id = &id;
            r.status = Some(200);
            d.record_response(&r, generation).unwrap().wait().unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains(&format!("\"{id}\"")), "entry {i} not written");
        }
        let mut r = record("t");
        r.kind = "response";
        kill_writer(&d, "file/");
        let ticket = d.record_response(&r, generation).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(ticket.wait()));
        let e = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a ticket waited 5 s on a dead writer")
            .unwrap_err();
        assert!(e.to_string().contains("did not record"), "{e}");
        d.close_all();
    }

    /// Found by helper-23: entries skipped while a device was failed were
    /// told "durable" when the device recovered later in the same batch
    /// (a SIGHUP), so their requests were answered with no entry at all.
    /// And an enable racing a seal left a device open behind it.
    #[test]
    fn skipped_entries_fail_even_if_the_device_recovers_and_a_sealed_set_takes_no_device() {
        let dir = tempfile::tempdir().unwrap();
        let (d, _) = devices(Duration::from_secs(3600));
        let path = dir.path().join("a.log");
        enable_lines(&d, &path);
        d.fail_all("disk full");
        let slot = Arc::new(Slot::default());
        {
            let open = d.read_open();
            let o = open["file/"].as_ref().unwrap();
            let mut q = lock(&o.mailbox.queue);
            q.entries.push(Queued {
                bytes: b"{\"skipped\":1}".to_vec(),
                at: Instant::now(),
                slot: Some(slot.clone()),
            });
            // The reopen (which succeeds) comes after the entry.
            q.reopen = Some(1);
            drop(q);
            o.mailbox.wake_writer();
        }
        let ticket = Ticket {
            slots: vec![("file/".into(), slot)],
        };
        let e = ticket.wait().unwrap_err().to_string();
        assert!(e.contains("disk full"), "{e}");
        assert!(!std::fs::read_to_string(&path).unwrap().contains("skipped"));
        d.flush().unwrap();
        // Sealed: an enable that arrives now opens nothing.
        d.close_all();
        let e = d.enable("late/", &Device::citadel(dir.path().join("late")));
        assert!(matches!(e, Err(Error::Sealed)), "{e:?}");
        assert_eq!(d.count(), 0);
    }

    /// Found by helper-24: a stored file device outside the directories
    /// the server now allows kept writing after a restart, and a link the
    /// operator named as the directory could be retargeted later.
    #[test]
    fn stored_devices_and_retargeted_links_stay_inside_the_allowed_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, outside) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("out"),
        );
        for d in [&a, &b, &outside] {
            std::fs::create_dir(d).unwrap();
        }
        let metrics = Arc::new(Metrics::default());
        let epoch = Arc::new(AtomicU64::new(1));
        let first = Devices::new(epoch.clone(), Duration::from_secs(3600), metrics.clone())
            .with_file_dirs(vec![a.clone()]);
        let options = serde_json::json!({"file_path": a.join("x.log")});
        let dev = Device::from_request(device::FILE, "", options.as_object()).unwrap();
        first.enable("file/", &dev).unwrap();
        first.close_all();
        let later = Devices::new(epoch.clone(), Duration::from_secs(3600), metrics.clone())
            .with_file_dirs(vec![b.clone()]);
        later.load(&BTreeMap::from([("file/".to_string(), dev)]), false);
        let (_, why) = later.unavailable().pop().expect("refused at load");
        assert!(why.contains("outside"), "{why}");
        let link = dir.path().join("named");
        std::os::unix::fs::symlink(&b, &link).unwrap();
        let linked = Devices::new(epoch, Duration::from_secs(3600), metrics)
            .with_file_dirs(vec![link.clone()]);
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        for p in [outside.join("c.log"), link.join("c.log")] {
            let options = serde_json::json!({"file_path": p});
            let dev = Device::from_request(device::FILE, "", options.as_object()).unwrap();
            assert!(linked.enable("c/", &dev).is_err(), "{}", p.display());
        }
        assert!(!outside.join("c.log").exists());
    }

    #[test]
    fn a_failed_device_fails_requests() {
        let (d, _) = devices(Duration::from_secs(1));
        let dev = Device::citadel("/proc/citadel-cannot-write-here");
        assert!(d.enable("file/", &dev).is_err());
        d.load(&BTreeMap::from([("file/".to_string(), dev)]), false);
        let e = d.record(&record("t")).unwrap_err();
        assert!(e.to_string().contains("unavailable"), "{e}");
    }

    /// Issue 13's sweep: the writer failing (its directory removed, so
    /// the next checkpoint cannot be written) or dying (a panic) fails the
    /// device at once: flushes are answered with the error, never left
    /// waiting, and later requests are refused.
    #[test]
    fn a_failed_or_dead_writer_answers_everyone() {
        for dies in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (d, _) = devices(Duration::from_millis(10));
            let d = Arc::new(d);
            let dev = file_device(dir.path().join("log"));
            d.enable("file/", &dev).unwrap();
            d.record(&record("t")).unwrap();
            d.flush().unwrap();
            if dies {
                kill_writer(&d, "file/");
            } else {
                std::fs::remove_dir_all(&dev.file_path).unwrap();
                d.record(&record("t")).unwrap();
            }
            // A flush on a thread of its own, so a hang fails the test.
            let flush = |d: &Arc<Devices>| {
                let (tx, rx) = std::sync::mpsc::channel();
                let d = d.clone();
                std::thread::spawn(move || tx.send(d.flush()));
                rx.recv_timeout(Duration::from_secs(5))
                    .expect("a flush waited 5 s")
            };
            let t = Instant::now();
            let e = loop {
                match flush(&d) {
                    Err(e) => break e,
                    Ok(()) if t.elapsed() < Duration::from_secs(5) => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Ok(()) => panic!("the device never failed"),
                }
            };
            let e = e.to_string();
            if dies {
                assert!(e.contains("stopped unexpectedly"), "{e}");
            } else {
                // The log notices its directory went (at its next commit).
                assert!(e.contains("was removed"), "{e}");
            }
            let e = d.record(&record("t")).unwrap_err().to_string();
            assert!(e.contains("refusing the request"), "{e}");
            // Closing does not wait on the dead writer either.
            d.close_all();
        }
    }
}
