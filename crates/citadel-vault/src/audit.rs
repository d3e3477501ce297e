//! Audit devices: every request and response is appended to a
//! tamper-evident `citadel-audit` log before the request runs and after it
//! answered. The client token is recorded only as an HMAC under the log's
//! key (searchable with `citadel audit search --hmac`), never in clear, and
//! no request or response body is recorded. If a device cannot be written
//! the request fails (fail closed), as Vault does.
//!
//! Devices are configured with Vault's `sys/audit/:path` (`type` `file`,
//! option `file_path`: the log directory, created when missing) and kept
//! behind the barrier at `core/audit`; they are reopened at unseal.

use crate::Error;
use citadel_audit::log::{AuditLog, Durability};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use zeroize::Zeroizing;

/// Where the device table is stored (behind the barrier).
pub const TABLE: &str = "core/audit";

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

struct Open {
    log: AuditLog,
    key: Zeroizing<Vec<u8>>,
}

/// The open devices.
#[derive(Default)]
pub struct Devices {
    open: Mutex<BTreeMap<String, Result<Open, String>>>,
}

/// Opens (creating when missing) the log of a device.
fn open_device(d: &Device) -> Result<Open, String> {
    if !d.file_path.join("log.json").exists() {
        AuditLog::init(&d.file_path, "citadel.vault/audit").map_err(|e| e.to_string())?;
    }
    let log = AuditLog::open(&d.file_path, Durability::Group(Duration::from_millis(5)))
        .map_err(|e| e.to_string())?;
    let key = log.hmac_key().map_err(|e| e.to_string())?;
    Ok(Open { log, key })
}

impl Devices {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Result<Open, String>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens every device of `table` (at unseal); a device that fails to
    /// open makes every audited request fail until it is fixed.
    pub fn load(&self, table: &BTreeMap<String, Device>) {
        let mut open = self.lock();
        open.clear();
        for (path, d) in table {
            open.insert(path.clone(), open_device(d));
        }
    }

    /// Adds a device, opening it now; an error leaves nothing enabled.
    pub fn enable(&self, path: &str, d: &Device) -> Result<(), Error> {
        let o = open_device(d).map_err(|e| {
            Error::BadRequest(format!(
                "cannot open audit log {}: {e}",
                d.file_path.display()
            ))
        })?;
        self.lock().insert(path.to_string(), Ok(o));
        Ok(())
    }

    /// Removes a device.
    pub fn disable(&self, path: &str) {
        if let Some(Ok(o)) = self.lock().remove(path) {
            let _ = o.log.close();
        }
    }

    /// Forgets every device (at seal), committing what was written.
    pub fn close_all(&self) {
        let mut open = self.lock();
        for (_, o) in std::mem::take(&mut *open) {
            if let Ok(o) = o {
                let _ = o.log.close();
            }
        }
    }

    /// Whether any device is enabled.
    pub fn any(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Appends one entry to every device; fails if any device fails.
    /// `token` is recorded as `hmac-sha256:…` under each log's own key.
    pub fn record(
        &self,
        kind: &str,
        method: &str,
        path: &str,
        token: &str,
        request_id: &str,
        status: Option<u16>,
    ) -> Result<(), Error> {
        let mut open = self.lock();
        for (dev, o) in open.iter_mut() {
            let o = o.as_mut().map_err(|e| {
                Error::Internal(format!(
                    "audit device {dev} is unavailable ({e}); refusing the request"
                ))
            })?;
            let outcome = match status {
                None => "pending".to_string(),
                Some(s) if s < 400 => "success".to_string(),
                Some(s) => format!("error {s}"),
            };
            let mut entry = json!({
                "time": citadel_audit::entry::now(),
                "action": format!("{kind} {method}"),
                "resource": path,
                "outcome": outcome,
                "request_id": request_id,
            });
            if !token.is_empty() {
                entry["actor"] = Value::String(token.to_string());
            }
            o.log
                .append_entry(entry, &["actor".to_string()], &o.key)
                .map_err(|e| {
                    Error::Internal(format!(
                        "audit device {dev} failed ({e}); refusing the request"
                    ))
                })?;
        }
        Ok(())
    }

    /// Makes every appended entry durable.
    pub fn commit(&self) -> Result<(), Error> {
        for (dev, o) in self.lock().iter_mut() {
            if let Ok(o) = o {
                o.log
                    .commit()
                    .map_err(|e| Error::Internal(format!("audit device {dev} failed: {e}")))?;
            }
        }
        Ok(())
    }
}
