//! The KV version 2 secrets engine, with Vault's paths and shapes:
//! `data/`, `metadata/`, `delete/`, `undelete/`, `destroy/`, `config`;
//! versions, check-and-set (`cas`), `max_versions`, soft delete.
//!
//! Under the mount's prefix: `meta/<path>` (the secret's metadata and
//! version list) and `data/<path>/<version>` (each version's data), both
//! encrypted by the barrier.

use crate::Error;
use crate::core::Vault;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

/// Vault's default when neither the secret nor the mount sets one.
const DEFAULT_MAX_VERSIONS: u64 = 10;

/// What a request does (from the HTTP method).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// GET.
    Read,
    /// PUT or POST.
    Write,
    /// DELETE.
    Delete,
    /// LIST, or GET with `?list=true`.
    List,
    /// PATCH (JSON merge patch, RFC 7386).
    Patch,
}

/// An engine's answer.
#[derive(Debug)]
pub enum Reply {
    /// 200 with this `data`.
    Data(Value),
    /// 204.
    NoContent,
    /// 404, with this `data` when there is something to say (a deleted
    /// version's metadata), as Vault does.
    NotFound(Option<Value>),
    /// This status with this `data` (a batch in which some items failed).
    Status(u16, Value),
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct VersionMeta {
    created_time: String,
    deletion_time: String,
    destroyed: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Record {
    created_time: String,
    updated_time: String,
    current_version: u64,
    oldest_version: u64,
    max_versions: u64,
    cas_required: bool,
    custom_metadata: Option<Map<String, Value>>,
    versions: BTreeMap<u64, VersionMeta>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Config {
    max_versions: u64,
    cas_required: bool,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn bad(m: impl Into<String>) -> Error {
    Error::BadRequest(m.into())
}

fn check_path(p: &str) -> Result<&str, Error> {
    let p = p.trim_start_matches('/');
    if p.is_empty() || p.split('/').any(|c| c == "." || c == "..") {
        return Err(bad(format!("invalid secret path {p:?}")));
    }
    Ok(p)
}

struct Kv<'a> {
    v: &'a Vault,
    base: &'a str,
}

impl Kv<'_> {
    fn load<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.v.get(&format!("{}{key}", self.base))? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("kv {key}: {e}"))),
        }
    }

    fn save<T: Serialize>(&self, key: &str, value: &T) -> Result<(), Error> {
        let b = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
        self.v.put(&format!("{}{key}", self.base), &b)
    }

    fn remove(&self, key: &str) -> Result<(), Error> {
        self.v.delete(&format!("{}{key}", self.base))
    }

    fn config(&self) -> Result<Config, Error> {
        Ok(self.load("config")?.unwrap_or_default())
    }

    fn max_versions(&self, r: &Record) -> Result<u64, Error> {
        let c = self.config()?;
        Ok([r.max_versions, c.max_versions]
            .into_iter()
            .find(|m| *m > 0)
            .unwrap_or(DEFAULT_MAX_VERSIONS))
    }

    fn metadata_json(&self, r: &Record) -> Value {
        let versions: Map<String, Value> = r
            .versions
            .iter()
            .map(|(n, m)| (n.to_string(), json!(m)))
            .collect();
        json!({
            "cas_required": r.cas_required, "created_time": r.created_time,
            "current_version": r.current_version, "custom_metadata": r.custom_metadata,
            "delete_version_after": "0s", "max_versions": r.max_versions,
            "oldest_version": r.oldest_version, "updated_time": r.updated_time,
            "versions": versions,
        })
    }

    fn version_json(&self, r: &Record, n: u64, m: &VersionMeta) -> Value {
        json!({
            "created_time": m.created_time, "custom_metadata": r.custom_metadata,
            "deletion_time": m.deletion_time, "destroyed": m.destroyed, "version": n,
        })
    }

    fn read_data(&self, p: &str, q: &HashMap<String, String>) -> Result<Reply, Error> {
        let Some(r) = self.load::<Record>(&format!("meta/{p}"))? else {
            return Ok(Reply::NotFound(None));
        };
        let n = match q.get("version").map(|s| s.parse::<u64>()) {
            None | Some(Ok(0)) => r.current_version,
            Some(Ok(n)) => n,
            Some(Err(_)) => return Err(bad("version must be a number")),
        };
        let Some(m) = r.versions.get(&n) else {
            return Ok(Reply::NotFound(None));
        };
        let meta = self.version_json(&r, n, m);
        if m.destroyed || !m.deletion_time.is_empty() {
            return Ok(Reply::NotFound(Some(
                json!({"data": null, "metadata": meta}),
            )));
        }
        let data: Value = self
            .load(&format!("data/{p}/{n}"))?
            .ok_or_else(|| Error::Corrupt(format!("kv {p} version {n} is missing")))?;
        Ok(Reply::Data(json!({"data": data, "metadata": meta})))
    }

    fn write_data(&self, p: &str, body: &Value) -> Result<Reply, Error> {
        let _g = self.v.lock_path(&format!("{}meta/{p}", self.base));
        self.write_data_locked(p, body)
    }

    /// [`Kv::write_data`] with the secret's lock held.
    fn write_data_locked(&self, p: &str, body: &Value) -> Result<Reply, Error> {
        let data = body
            .get("data")
            .filter(|d| d.is_object())
            .ok_or_else(|| bad("no data provided"))?;
        let cas = match body.get("options").and_then(|o| o.get("cas")) {
            None | Some(Value::Null) => None,
            Some(c) => Some(
                c.as_u64()
                    .ok_or_else(|| bad("cas must be a non-negative integer"))?,
            ),
        };
        let mut r = self
            .load::<Record>(&format!("meta/{p}"))?
            .unwrap_or_default();
        let config = self.config()?;
        if (r.cas_required || config.cas_required) && cas.is_none() {
            return Err(bad("check-and-set parameter required for this call"));
        }
        if let Some(c) = cas {
            if c != r.current_version {
                return Err(bad(
                    "check-and-set parameter did not match the current version",
                ));
            }
        }
        let t = now();
        if r.created_time.is_empty() {
            r.created_time = t.clone();
        }
        r.updated_time = t.clone();
        r.current_version += 1;
        let n = r.current_version;
        // Data first, then the record that points at it.
        self.save(&format!("data/{p}/{n}"), data)?;
        let m = VersionMeta {
            created_time: t,
            ..Default::default()
        };
        r.versions.insert(n, m.clone());
        let max = self.max_versions(&r)?;
        while r.versions.len() as u64 > max {
            if let Some((&old, _)) = r.versions.iter().next() {
                r.versions.remove(&old);
                self.remove(&format!("data/{p}/{old}"))?;
            }
        }
        // As Vault: 0 until versions are trimmed, then the oldest kept.
        if r.versions.keys().next().copied().unwrap_or(0) > 1 {
            r.oldest_version = r.versions.keys().next().copied().unwrap_or(0);
        }
        self.save(&format!("meta/{p}"), &r)?;
        Ok(Reply::Data(self.version_json(&r, n, &m)))
    }

    /// PATCH `data/<p>`: merges `body.data` into the current version (RFC
    /// 7386: `null` removes a key) and writes the result as a new version,
    /// honouring `options.cas`. The current version must be readable.
    fn patch_data(&self, p: &str, body: &Value) -> Result<Reply, Error> {
        let patch = body
            .get("data")
            .filter(|d| d.is_object())
            .ok_or_else(|| bad("no data provided"))?;
        let _g = self.v.lock_path(&format!("{}meta/{p}", self.base));
        let Some(r) = self.load::<Record>(&format!("meta/{p}"))? else {
            return Ok(Reply::NotFound(None));
        };
        let n = r.current_version;
        match r.versions.get(&n) {
            Some(m) if !m.destroyed && m.deletion_time.is_empty() => {}
            _ => return Ok(Reply::NotFound(None)),
        }
        let mut data: Value = self
            .load(&format!("data/{p}/{n}"))?
            .ok_or_else(|| Error::Corrupt(format!("kv {p} version {n} is missing")))?;
        merge_patch(&mut data, patch);
        let mut next = json!({"data": data});
        if let Some(o) = body.get("options") {
            next["options"] = o.clone();
        }
        self.write_data_locked(p, &next)
    }

    fn versions_arg(body: &Value) -> Result<Vec<u64>, Error> {
        let v = body
            .get("versions")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad("no version number provided"))?;
        v.iter()
            .map(|x| {
                x.as_u64()
                    .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| bad("versions must be numbers"))
            })
            .collect()
    }

    fn change_versions(&self, p: &str, versions: &[u64], op: &str) -> Result<Reply, Error> {
        let _g = self.v.lock_path(&format!("{}meta/{p}", self.base));
        let Some(mut r) = self.load::<Record>(&format!("meta/{p}"))? else {
            return Ok(Reply::NoContent);
        };
        let t = now();
        for n in versions {
            let Some(m) = r.versions.get_mut(n) else {
                continue;
            };
            match op {
                "delete" if !m.destroyed && m.deletion_time.is_empty() => {
                    m.deletion_time = t.clone()
                }
                "undelete" if !m.destroyed => m.deletion_time.clear(),
                "destroy" if !m.destroyed => {
                    m.destroyed = true;
                    self.remove(&format!("data/{p}/{n}"))?;
                }
                _ => {}
            }
        }
        r.updated_time = t;
        self.save(&format!("meta/{p}"), &r)?;
        Ok(Reply::NoContent)
    }

    fn metadata(&self, op: Op, p: &str, body: &Value) -> Result<Reply, Error> {
        match op {
            Op::List => self.list(p),
            Op::Read => {
                let p = check_path(p)?;
                Ok(match self.load::<Record>(&format!("meta/{p}"))? {
                    None => Reply::NotFound(None),
                    Some(r) => Reply::Data(self.metadata_json(&r)),
                })
            }
            Op::Write => {
                let p = check_path(p)?;
                let _g = self.v.lock_path(&format!("{}meta/{p}", self.base));
                let mut r = self
                    .load::<Record>(&format!("meta/{p}"))?
                    .unwrap_or_default();
                if let Some(m) = body.get("max_versions") {
                    r.max_versions = m
                        .as_u64()
                        .ok_or_else(|| bad("max_versions must be a number"))?;
                }
                if let Some(c) = body.get("cas_required") {
                    r.cas_required = c
                        .as_bool()
                        .ok_or_else(|| bad("cas_required must be a boolean"))?;
                }
                if let Some(c) = body.get("custom_metadata") {
                    r.custom_metadata = match c {
                        Value::Null => None,
                        Value::Object(o) if o.values().all(Value::is_string) => Some(o.clone()),
                        _ => return Err(bad("custom_metadata must map strings to strings")),
                    };
                }
                let t = now();
                if r.created_time.is_empty() {
                    r.created_time = t.clone();
                }
                r.updated_time = t;
                self.save(&format!("meta/{p}"), &r)?;
                Ok(Reply::NoContent)
            }
            Op::Delete => {
                let p = check_path(p)?;
                let _g = self.v.lock_path(&format!("{}meta/{p}", self.base));
                if let Some(r) = self.load::<Record>(&format!("meta/{p}"))? {
                    for n in r.versions.keys() {
                        self.remove(&format!("data/{p}/{n}"))?;
                    }
                    self.remove(&format!("meta/{p}"))?;
                }
                Ok(Reply::NoContent)
            }
            Op::Patch => Err(bad(
                "patching metadata is not supported by citadel: write metadata/<path> with the fields to change",
            )),
        }
    }

    fn list(&self, p: &str) -> Result<Reply, Error> {
        let p = p.trim_start_matches('/');
        let prefix = if p.is_empty() || p.ends_with('/') {
            p.to_string()
        } else {
            format!("{p}/")
        };
        let keys = self.v.list(&format!("{}meta/{prefix}", self.base))?;
        if keys.is_empty() {
            return Ok(Reply::NotFound(None));
        }
        Ok(Reply::Data(json!({"keys": keys})))
    }
}

/// Applies a JSON merge patch (RFC 7386) to `target`.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Serves one request to a KV v2 mount whose data lives under `base`.
pub fn handle(
    v: &Vault,
    base: &str,
    op: Op,
    path: &str,
    query: &HashMap<String, String>,
    body: &Value,
) -> Result<Reply, Error> {
    let kv = Kv { v, base };
    let (head, rest) = path.split_once('/').unwrap_or((path, ""));
    match (head, op) {
        ("config", Op::Read) if rest.is_empty() => {
            let c = kv.config()?;
            Ok(Reply::Data(
                json!({"max_versions": c.max_versions, "cas_required": c.cas_required, "delete_version_after": "0s"}),
            ))
        }
        ("config", Op::Write) if rest.is_empty() => {
            let mut c = kv.config()?;
            if let Some(m) = body.get("max_versions") {
                c.max_versions = m
                    .as_u64()
                    .ok_or_else(|| bad("max_versions must be a number"))?;
            }
            if let Some(b) = body.get("cas_required") {
                c.cas_required = b
                    .as_bool()
                    .ok_or_else(|| bad("cas_required must be a boolean"))?;
            }
            kv.save("config", &c)?;
            Ok(Reply::NoContent)
        }
        ("data", Op::Read) => kv.read_data(check_path(rest)?, query),
        ("data", Op::Write) => kv.write_data(check_path(rest)?, body),
        ("data", Op::Patch) => kv.patch_data(check_path(rest)?, body),
        ("data", Op::Delete) => {
            let p = check_path(rest)?;
            let current = kv
                .load::<Record>(&format!("meta/{p}"))?
                .map(|r| r.current_version);
            match current {
                Some(n) => kv.change_versions(p, &[n], "delete"),
                None => Ok(Reply::NoContent),
            }
        }
        ("delete" | "undelete" | "destroy", Op::Write) => {
            kv.change_versions(check_path(rest)?, &Kv::versions_arg(body)?, head)
        }
        ("metadata", op) => kv.metadata(op, rest, body),
        _ => Err(Error::NotFound(format!(
            "unsupported path or operation: {path}"
        ))),
    }
}

/// Whether a write to `path` (inside a KV v2 mount) updates something that
/// exists (the `update` capability) or creates it (`create`).
pub fn exists(v: &Vault, base: &str, path: &str) -> Result<bool, Error> {
    let (head, rest) = path.split_once('/').unwrap_or((path, ""));
    match head {
        "data" | "metadata" | "delete" | "undelete" | "destroy" if !rest.is_empty() => {
            let kv = Kv { v, base };
            Ok(kv
                .load::<Record>(&format!("meta/{}", rest.trim_start_matches('/')))?
                .is_some())
        }
        _ => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        // RFC 7386 appendix A, a selection.
        for (target, patch, want) in [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ] {
            let mut t = target.clone();
            merge_patch(&mut t, &patch);
            assert_eq!(t, want, "{target} + {patch}");
        }
    }
}
