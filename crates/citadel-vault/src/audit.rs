//! Audit devices: every request and response is recorded in a
//! tamper-evident `citadel-audit` log. The client token and its accessor
//! are recorded only as HMACs under the log's key (searchable with
//! `citadel audit search --hmac`), whatever they look like, and no request
//! or response body is recorded. If a device cannot record, requests fail
//! (fail closed), as Vault's do.
//!
//! Each device has a writer thread: requests hand it their entry through a
//! bounded queue and never wait on the disk; the writer appends, commits
//! by group (every 5 ms), and signs a checkpoint at least every
//! `checkpoint_every` (1 s by default) while entries arrive, so at most
//! that much of the log is ever unanchored. Before each checkpoint it
//! records the vault's storage epoch (see [`crate::integrity`]); at unseal
//! the vault refuses storage older than the newest epoch so anchored.
//!
//! Devices are configured with Vault's `sys/audit/:path` (`type` `file`,
//! option `file_path`: the log directory, created when missing) and kept
//! behind the barrier at `core/audit`; they are reopened at unseal.

use crate::error::Error;
use crate::metrics::Metrics;
use citadel_audit::log::{AuditLog, Durability};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Where the device table is stored (behind the barrier).
pub const TABLE: &str = "core/audit";

/// The action of a storage epoch anchor entry.
pub const ANCHOR_ACTION: &str = "vault storage epoch";

/// Entries a device's queue holds before requests are refused.
const QUEUE: usize = 65_536;
/// Group commit delay.
const GROUP: Duration = Duration::from_millis(5);
/// How far back from the end of a log unseal looks for an anchor.
const ANCHOR_SCAN: u64 = 2_000_000;

/// One configured device.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Device {
    /// `file`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The log directory.
    pub file_path: PathBuf,
}

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
}

enum Msg {
    Entry(Vec<u8>, Instant),
    Flush(SyncSender<Result<(), String>>),
    Close,
}

struct Open {
    tx: SyncSender<Msg>,
    key: Zeroizing<Vec<u8>>,
    failed: Arc<Mutex<Option<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The newest storage epoch anchored in this log when it was opened.
    anchored: u64,
}

/// The open devices.
pub struct Devices {
    open: Mutex<BTreeMap<String, Result<Open, String>>>,
    epoch: Arc<AtomicU64>,
    checkpoint_every: Duration,
    metrics: Arc<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The HMAC form of a value, as `citadel audit search --hmac` computes it.
fn hmac(key: &[u8], v: &str) -> Value {
    Value::String(citadel_audit::entry::hmac_value(
        key,
        &Value::String(v.to_string()),
    ))
}

/// The newest anchored storage epoch in `log`, looking back at most
/// [`ANCHOR_SCAN`] entries from the end.
fn newest_anchor(log: &mut AuditLog) -> Result<u64, String> {
    let size = log.size();
    let stop = size.saturating_sub(ANCHOR_SCAN);
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
                    return Ok(n);
                }
            }
        }
    }
    Ok(0)
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

#[derive(PartialEq, Eq)]
enum Control {
    Go,
    Close,
}

/// What the writer keeps between messages.
struct WriterState {
    log: AuditLog,
    key: Zeroizing<Vec<u8>>,
    failed: Arc<Mutex<Option<String>>>,
    epoch: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    anchored: u64,
    unanchored: u64,
}

impl WriterState {
    fn fail(&self, e: String) {
        self.metrics.audit_failures.fetch_add(1, Ordering::Relaxed);
        let mut f = lock(&self.failed);
        if f.is_none() {
            *f = Some(e);
        }
    }

    fn healthy(&self) -> bool {
        lock(&self.failed).is_none()
    }

    /// Records the storage epoch when it moved since the last anchor.
    fn anchor(&mut self) -> Result<(), String> {
        let now = self.epoch.load(Ordering::Acquire);
        if now != self.anchored {
            self.log
                .append_entry(anchor_entry(now), &[], &self.key)
                .map_err(|e| e.to_string())?;
            self.anchored = now;
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        self.anchor()?;
        self.log.checkpoint().map(|_| ()).map_err(|e| e.to_string())
    }

    fn on(&mut self, msg: Msg) -> Control {
        match msg {
            Msg::Entry(bytes, queued) => {
                if !self.healthy() {
                    self.metrics.audit_failures.fetch_add(1, Ordering::Relaxed);
                    return Control::Go;
                }
                match self.log.append(&bytes) {
                    Ok(_) => {
                        self.metrics.audit_append.observe(queued.elapsed());
                        self.unanchored += 1;
                    }
                    Err(e) => self.fail(format!("append: {e}")),
                }
                Control::Go
            }
            Msg::Flush(ack) => {
                let r = self.log.commit().map_err(|e| e.to_string());
                let r = r.and_then(|()| lock(&self.failed).clone().map_or(Ok(()), Err));
                let _ = ack.send(r);
                Control::Go
            }
            Msg::Close => Control::Close,
        }
    }
}

/// The writer thread of one device.
fn writer(mut w: WriterState, rx: Receiver<Msg>, checkpoint_every: Duration) {
    if let Err(e) = w
        .anchor()
        .and_then(|()| w.log.commit().map_err(|e| e.to_string()))
    {
        w.fail(e);
    }
    let mut last_checkpoint = Instant::now();
    loop {
        let mut control = match rx.recv_timeout(GROUP) {
            Ok(m) => w.on(m),
            Err(RecvTimeoutError::Timeout) => Control::Go,
            Err(RecvTimeoutError::Disconnected) => Control::Close,
        };
        // Append whatever else is queued before the next commit.
        for _ in 0..4096 {
            if control == Control::Close {
                break;
            }
            match rx.try_recv() {
                Ok(m) => control = w.on(m),
                Err(_) => break,
            }
        }
        if control == Control::Close {
            if w.healthy() {
                if let Err(e) = w.checkpoint() {
                    w.fail(e);
                }
            }
            let _ = w.log.close();
            return;
        }
        if w.log.durable_size() < w.log.size() {
            if let Err(e) = w.log.commit() {
                w.fail(format!("commit: {e}"));
            }
        }
        if w.unanchored > 0 && last_checkpoint.elapsed() >= checkpoint_every && w.healthy() {
            match w.checkpoint() {
                Ok(()) => {
                    w.unanchored = 0;
                    last_checkpoint = Instant::now();
                }
                Err(e) => w.fail(format!("checkpoint: {e}")),
            }
        }
    }
}

impl Devices {
    /// No devices yet; `epoch` is the storage epoch to anchor.
    pub fn new(epoch: Arc<AtomicU64>, checkpoint_every: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            open: Mutex::new(BTreeMap::new()),
            epoch,
            checkpoint_every,
            metrics,
        }
    }

    fn open_device(&self, d: &Device) -> Result<Open, String> {
        if d.kind != "file" {
            return Err(format!("unknown audit device type {:?}", d.kind));
        }
        if !d.file_path.join("log.json").exists() {
            AuditLog::init(&d.file_path, "citadel.vault/audit").map_err(|e| e.to_string())?;
        }
        let mut log =
            AuditLog::open(&d.file_path, Durability::Group(GROUP)).map_err(|e| e.to_string())?;
        let key = log.hmac_key().map_err(|e| e.to_string())?;
        let anchored = newest_anchor(&mut log)?;
        let (tx, rx) = sync_channel(QUEUE);
        let failed = Arc::new(Mutex::new(None));
        let state = WriterState {
            log,
            key: key.clone(),
            failed: failed.clone(),
            epoch: self.epoch.clone(),
            metrics: self.metrics.clone(),
            anchored: u64::MAX,
            unanchored: 0,
        };
        let every = self.checkpoint_every;
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(state, rx, every))
            .map_err(|e| e.to_string())?;
        Ok(Open {
            tx,
            key,
            failed,
            thread: Some(thread),
            anchored,
        })
    }

    /// Opens every device of `table` (at unseal); a device that fails to
    /// open makes every audited request fail until it is fixed.
    pub fn load(&self, table: &BTreeMap<String, Device>) {
        let opened: BTreeMap<String, Result<Open, String>> = table
            .iter()
            .map(|(p, d)| (p.clone(), self.open_device(d)))
            .collect();
        let old = std::mem::replace(&mut *lock(&self.open), opened);
        close(old);
    }

    /// The newest storage epoch anchored in any open device, and the device.
    pub fn newest_anchor(&self) -> Option<(u64, String)> {
        lock(&self.open)
            .iter()
            .filter_map(|(p, o)| o.as_ref().ok().map(|o| (o.anchored, p.clone())))
            .max()
    }

    /// Adds a device, opening it now; an error leaves nothing enabled.
    pub fn enable(&self, path: &str, d: &Device) -> Result<(), Error> {
        let o = self.open_device(d).map_err(|e| {
            Error::bad(format!(
                "cannot open audit log {}: {e}",
                d.file_path.display()
            ))
        })?;
        let old = lock(&self.open).insert(path.to_string(), Ok(o));
        if let Some(old) = old {
            close(BTreeMap::from([(String::new(), old)]));
        }
        Ok(())
    }

    /// Removes a device (its log is committed and checkpointed).
    pub fn disable(&self, path: &str) {
        let old = lock(&self.open).remove(path);
        if let Some(old) = old {
            close(BTreeMap::from([(String::new(), old)]));
        }
    }

    /// Closes every device (at seal and shutdown), after it wrote what it
    /// was given and signed a last checkpoint.
    pub fn close_all(&self) {
        let old = std::mem::take(&mut *lock(&self.open));
        close(old);
    }

    /// Whether any device is enabled.
    pub fn any(&self) -> bool {
        !lock(&self.open).is_empty()
    }

    /// How many devices are enabled.
    pub fn count(&self) -> usize {
        lock(&self.open).len()
    }

    /// Hands one entry to every device; fails (the request must not go
    /// on) if any device failed or is too far behind.
    pub fn record(&self, r: &Record<'_>) -> Result<(), Error> {
        let open = lock(&self.open);
        if open.is_empty() {
            return Ok(());
        }
        let outcome = match r.status {
            None => "pending".to_string(),
            Some(s) if s < 400 => "success".to_string(),
            Some(s) => format!("error {s}"),
        };
        for (dev, o) in open.iter() {
            let refuse = |why: String| {
                self.metrics.audit_failures.fetch_add(1, Ordering::Relaxed);
                Error::Audit(format!("audit device {dev} {why}; refusing the request"))
            };
            let o = o
                .as_ref()
                .map_err(|e| refuse(format!("is unavailable ({e})")))?;
            if let Some(e) = lock(&o.failed).clone() {
                return Err(refuse(format!("failed ({e})")));
            }
            let mut details = serde_json::Map::new();
            details.insert("operation".into(), json!(r.operation));
            if let Some(a) = r.accessor {
                details.insert("accessor".into(), hmac(&o.key, a));
            }
            if let Some(s) = r.status {
                details.insert("status".into(), json!(s));
            }
            if let Some(c) = r.client {
                details.insert("client".into(), json!(c.to_string()));
            }
            let mut entry = json!({
                "time": citadel_audit::entry::now(),
                "action": format!("{} {}", r.kind, r.operation),
                "resource": r.path,
                "outcome": outcome,
                "request_id": r.request_id,
                "details": details,
            });
            // Anything the client sent is HMACed, whatever it looks like.
            if let Some(t) = r.token.filter(|t| !t.is_empty()) {
                entry["actor"] = hmac(&o.key, t);
            }
            let bytes = citadel_audit::entry::prepare(entry, &[], &o.key)
                .map_err(|e| refuse(format!("refused the entry ({e})")))?;
            match o.tx.try_send(Msg::Entry(bytes, Instant::now())) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    return Err(refuse("is too far behind".into()));
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(refuse("stopped".into()));
                }
            }
        }
        Ok(())
    }

    /// Waits until every device has made what it was given durable.
    pub fn flush(&self) -> Result<(), Error> {
        let waits: Vec<(String, std::sync::mpsc::Receiver<Result<(), String>>)> = lock(&self.open)
            .iter()
            .filter_map(|(p, o)| {
                let o = o.as_ref().ok()?;
                let (tx, rx) = sync_channel(1);
                o.tx.send(Msg::Flush(tx)).ok()?;
                Some((p.clone(), rx))
            })
            .collect();
        for (p, rx) in waits {
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Error::Audit(format!("audit device {p}: {e}"))),
                Err(_) => return Err(Error::Audit(format!("audit device {p} stopped"))),
            }
        }
        Ok(())
    }
}

fn close(devices: BTreeMap<String, Result<Open, String>>) {
    for (_, o) in devices {
        if let Ok(Open { tx, thread, .. }) = o {
            let _ = tx.send(Msg::Close);
            drop(tx);
            if let Some(t) = thread {
                let _ = t.join();
            }
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

    fn devices(every: Duration) -> (Devices, Arc<AtomicU64>) {
        let epoch = Arc::new(AtomicU64::new(7));
        (
            Devices::new(epoch.clone(), every, Arc::new(Metrics::default())),
            epoch,
        )
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
        }
    }

    /// Finding 9: a token that looks like an HMAC is HMACed all the same,
    /// so nobody can make entries look like another user's.
    #[test]
    fn tokens_are_hmaced_whatever_they_look_like() {
        let dir = tempfile::tempdir().unwrap();
        let (d, _) = devices(Duration::from_secs(3600));
        let dev = Device {
            kind: "file".into(),
            description: String::new(),
            file_path: dir.path().join("log"),
        };
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
        let dev = Device {
            kind: "file".into(),
            description: String::new(),
            file_path: dir.path().join("log"),
        };
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
        d.load(&BTreeMap::from([("file/".to_string(), dev.clone())]));
        assert_eq!(d.newest_anchor(), Some((9, "file/".to_string())));
        d.close_all();
        // Every entry verifies against the signed checkpoint.
        let v = citadel_audit::log::load_verifier(&dev.file_path).unwrap();
        let _ = v;
    }

    #[test]
    fn a_failed_device_fails_requests() {
        let (d, _) = devices(Duration::from_secs(1));
        let dev = Device {
            kind: "file".into(),
            description: String::new(),
            file_path: PathBuf::from("/proc/citadel-cannot-write-here"),
        };
        assert!(d.enable("file/", &dev).is_err());
        d.load(&BTreeMap::from([("file/".to_string(), dev)]));
        let e = d.record(&record("t")).unwrap_err();
        assert!(e.to_string().contains("unavailable"), "{e}");
    }
}
