//! What an audit device is configured with, as `sys/audit/:path` takes it
//! and the device table (behind the barrier) keeps it.
//!
//! Two types:
//! - `file`: Vault's file device. JSON lines (Vault's request and response
//!   entries) appended to the file `file_path`, tokens and accessors as
//!   `hmac-sha256:` HMACs under a key of the device's own, kept with the
//!   table behind the barrier (`sys/audit-hash/:path` computes them).
//! - `citadel`: Citadel's tamper-evident log (a `citadel-audit` directory at
//!   `file_path`), signed checkpoints, and the storage epoch anchored in it.
//!
//! Tables written before the `file` type wrote JSON lines (no `version`)
//! named the tamper-evident log `file`: such entries are read as
//! `citadel`, so an upgraded vault keeps writing the log it wrote.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The version of the device table's entries this build writes.
const VERSION: u32 = 2;

/// The Vault JSON-lines device.
pub const FILE: &str = "file";
/// Citadel's tamper-evident log.
pub const CITADEL: &str = "citadel";

/// A file device's HMAC key (hex), zeroised when dropped, never printed.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct HmacKey(String);

impl HmacKey {
    /// A new random key.
    fn generate() -> Result<Self, String> {
        let k = citadel_crypto::random::secret_array::<32>().map_err(|e| e.to_string())?;
        Ok(Self(hex::encode(&k[..])))
    }

    /// The key's bytes.
    pub(crate) fn bytes(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        hex::decode(&self.0)
            .ok()
            .filter(|k| k.len() == 32)
            .map(zeroize::Zeroizing::new)
            .ok_or_else(|| "its stored HMAC key is damaged".to_string())
    }
}

/// One configured device.
#[derive(Clone, Serialize, Deserialize)]
pub struct Device {
    /// `file` or `citadel`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The JSON-lines file (`file`) or the log directory (`citadel`).
    pub file_path: PathBuf,
    /// `file`: the permissions of the file when the device creates it
    /// (`mode`, octal, no execute bit; 0600 when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// `file`: whether accessors are HMACed (`hmac_accessor`, default true).
    #[serde(default = "yes")]
    pub hmac_accessor: bool,
    /// `file`: the HMAC key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_key: Option<HmacKey>,
    /// The entry's version (absent in tables before version 2).
    #[serde(default)]
    pub version: u32,
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("kind", &self.kind)
            .field("file_path", &self.file_path)
            .finish_non_exhaustive()
    }
}

/// Go's `strconv.ParseBool`, which Vault's options go through.
fn parse_bool(k: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("audit option {k} must be true or false, not {v:?}")),
    }
}

impl Device {
    /// A Citadel log device at `dir` (tests and benchmarks).
    pub fn citadel(dir: impl Into<PathBuf>) -> Self {
        Self {
            kind: CITADEL.into(),
            description: String::new(),
            file_path: dir.into(),
            mode: None,
            hmac_accessor: true,
            hmac_key: None,
            version: VERSION,
        }
    }

    /// A device from `sys/audit/:path`'s `type`, `description` and
    /// `options` (Vault's option values are strings; anything else is
    /// refused, as is an option this build does not implement). A `file`
    /// device gets a new HMAC key.
    pub fn from_request(
        kind: &str,
        description: &str,
        options: Option<&Map<String, Value>>,
    ) -> Result<Self, String> {
        if kind != FILE && kind != CITADEL {
            return Err(format!(
                "unknown audit backend type {kind:?}: use \"file\" (Vault's JSON lines in one file) or \"citadel\" (a tamper-evident citadel-audit log directory)"
            ));
        }
        let empty = Map::new();
        let options = options.unwrap_or(&empty);
        let mut d = Self::citadel(PathBuf::new());
        d.kind = kind.into();
        d.description = description.into();
        let mut file_path = None;
        for (k, v) in options {
            let v = v
                .as_str()
                .ok_or_else(|| format!("audit option {k} must be a string, as Vault's are"))?;
            match (kind, k.as_str()) {
                (_, "file_path") => file_path = Some(v),
                (FILE, "mode") => {
                    let m = Some(v)
                        .filter(|v| !v.is_empty() && v.bytes().all(|b| (b'0'..=b'7').contains(&b)))
                        .and_then(|v| u32::from_str_radix(v, 8).ok())
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| {
                            format!(
                                "audit option mode must be octal permissions such as 0600, not {v:?}"
                            )
                        })?;
                    // As Vault since 1.20.1 (CVE-2025-6000): an audit file
                    // is never made executable.
                    if m & 0o111 != 0 {
                        return Err(format!(
                            "audit option mode {v} has an execute bit; an audit file is never executable (use 0600 or 0640)"
                        ));
                    }
                    d.mode = Some(m);
                }
                (FILE, "prefix") => {
                    return Err(
                        "audit option prefix is refused: it would let a token write text of its choosing into any file the server can write (Vault 1.20.1 allows it only with allow_audit_log_prefixing in the server configuration)".into(),
                    );
                }
                (FILE, "hmac_accessor") => d.hmac_accessor = parse_bool(k, v)?,
                (FILE, "format") if v == "json" => {}
                (FILE, "log_raw") if !parse_bool(k, v)? => {}
                (FILE, _) => {
                    return Err(format!(
                        "audit option {k:?} is not supported by citadel: file devices take file_path, mode, hmac_accessor and format=json (log_raw is refused: tokens are always HMACed)"
                    ));
                }
                _ => {
                    return Err(format!(
                        "audit option {k:?} is not supported by citadel devices; they take file_path"
                    ));
                }
            }
        }
        let file_path = file_path.filter(|p| !p.is_empty()).ok_or_else(|| {
            if kind == FILE {
                "options.file_path must name the audit file (e.g. /var/log/vault/audit.log)"
            } else {
                "options.file_path must name the audit log directory"
            }
            .to_string()
        })?;
        if kind == FILE && matches!(file_path, "stdout" | "discard") {
            return Err(format!(
                "file_path {file_path:?} is not supported by citadel: a file device writes a file it can make durable; give its path"
            ));
        }
        if kind == FILE && !file_path.starts_with('/') {
            return Err(format!(
                "file_path {file_path:?} is relative; give the audit file's absolute path"
            ));
        }
        d.file_path = file_path.into();
        if kind == FILE {
            d.hmac_key = Some(HmacKey::generate()?);
        }
        Ok(d)
    }

    /// Reads an entry of a stored table: one from before version 2 named
    /// the tamper-evident log `file`.
    pub fn migrated(mut self) -> Self {
        if self.version < VERSION && self.kind == FILE {
            self.kind = CITADEL.into();
        }
        self.version = VERSION;
        self
    }

    /// The options as `sys/audit` lists them (strings, as Vault's).
    pub fn options(&self) -> Value {
        let mut o = json!({"file_path": self.file_path});
        if self.kind == FILE {
            o["format"] = json!("json");
            o["hmac_accessor"] = json!(self.hmac_accessor.to_string());
            if let Some(m) = self.mode {
                o["mode"] = json!(format!("{m:04o}"));
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn options_are_strings_and_known() {
        let d = Device::from_request(
            FILE,
            "",
            Some(&opts(json!({"file_path": "/tmp/a.log", "mode": "0640",
                               "hmac_accessor": "false"}))),
        )
        .unwrap();
        assert_eq!(d.mode, Some(0o640));
        assert!(!d.hmac_accessor);
        assert_eq!(d.hmac_key.as_ref().unwrap().bytes().unwrap().len(), 32);
        assert_eq!(d.options()["mode"], "0640");
        for (o, want) in [
            (
                json!({"file_path": "/tmp/a", "hmac_accessor": false}),
                "must be a string",
            ),
            (json!({"file_path": "/tmp/a", "mode": "0999"}), "octal"),
            (json!({"file_path": "/tmp/a", "mode": "01777"}), "octal"),
            (json!({"file_path": "/tmp/a", "mode": "+644"}), "octal"),
            (
                json!({"file_path": "/tmp/a", "mode": "0700"}),
                "execute bit",
            ),
            (
                json!({"file_path": "/tmp/a", "mode": "0644", "prefix": "x"}),
                "prefix is refused",
            ),
            (json!({"file_path": "a.log"}), "relative"),
            (
                json!({"file_path": "/tmp/a", "log_raw": "true"}),
                "log_raw is refused",
            ),
            (
                json!({"file_path": "/tmp/a", "format": "jsonx"}),
                "not supported",
            ),
            (json!({"file_path": "stdout"}), "not supported"),
            (json!({}), "must name the audit file"),
            (json!({"file_path": ""}), "must name"),
        ] {
            let e = Device::from_request(FILE, "", Some(&opts(o.clone()))).unwrap_err();
            assert!(e.contains(want), "{o}: {e}");
        }
        let e = Device::from_request(
            CITADEL,
            "",
            Some(&opts(json!({"file_path": "d", "mode": "0600"}))),
        )
        .unwrap_err();
        assert!(e.contains("take file_path"), "{e}");
        let e = Device::from_request("syslog", "", None).unwrap_err();
        assert!(e.contains("unknown audit backend type"), "{e}");
    }

    /// A table written before version 2 named the tamper-evident log
    /// `file`; it stays a citadel log. A version-2 `file` stays a file.
    #[test]
    fn old_file_devices_are_citadel_logs() {
        let old: Device =
            serde_json::from_str(r#"{"type":"file","description":"","file_path":"audit"}"#)
                .unwrap();
        let d = old.migrated();
        assert_eq!(d.kind, CITADEL);
        let again: Device = serde_json::from_slice(&serde_json::to_vec(&d).unwrap()).unwrap();
        assert_eq!(again.migrated().kind, CITADEL);
        let new =
            Device::from_request(FILE, "", Some(&opts(json!({"file_path": "/a.log"})))).unwrap();
        let back: Device = serde_json::from_slice(&serde_json::to_vec(&new).unwrap()).unwrap();
        assert_eq!(back.migrated().kind, FILE);
        assert!(!format!("{new:?}").contains(&new.hmac_key.as_ref().unwrap().0));
    }
}
