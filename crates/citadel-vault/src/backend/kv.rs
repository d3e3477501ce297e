//! The KV version 2 secrets engine, with Vault's paths and shapes:
//! `data/`, `metadata/`, `delete/`, `undelete/`, `destroy/`, `config`;
//! versions, check-and-set (`cas`), `max_versions`, soft delete, JSON merge
//! patch.
//!
//! Under the mount's view: `meta/<path>` (the secret's metadata and version
//! list), `data/<path>/<version>` (each version's data), `config`.

use super::{Backend, Ctx, Matched, Reply, Route, Seg};
use crate::error::Error;
use crate::fields::{Field, Fields, Ty, parse_int};
use crate::ids::now_rfc3339 as now;
use crate::request::Operation::{Delete, List, Patch, Read, Update};
use crate::view::View;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Vault's default when neither the secret nor the mount sets one.
const DEFAULT_MAX_VERSIONS: u64 = 10;

const NO_DELETE_AFTER: Ty =
    Ty::Unsupported("automatic deletion of versions is not supported by citadel; leave it at 0s");

static CONFIG_FIELDS: &[Field] = &[
    Field::opt("max_versions", Ty::Int),
    Field::opt("cas_required", Ty::Bool),
    Field::opt("delete_version_after", NO_DELETE_AFTER),
];

static DATA_FIELDS: &[Field] = &[
    Field::opt("version", Ty::Int),
    Field::opt("data", Ty::Map),
    Field::opt("options", Ty::Map),
];

static META_FIELDS: &[Field] = &[
    Field::opt("max_versions", Ty::Int),
    Field::opt("cas_required", Ty::Bool),
    Field::opt("custom_metadata", Ty::StrMap),
    Field::opt("delete_version_after", NO_DELETE_AFTER),
    Field::opt(
        "after",
        Ty::Unsupported("paginated listing is not supported by citadel"),
    ),
    Field::opt(
        "limit",
        Ty::Unsupported("paginated listing is not supported by citadel"),
    ),
];

static VERSION_FIELDS: &[Field] = &[Field::req("versions", Ty::StrList)];

static ROUTES: &[Route] = &[
    Route::new(
        "config",
        &[Seg::Lit("config")],
        &[Read, Update],
        CONFIG_FIELDS,
    ),
    Route::new(
        "data/:path",
        &[Seg::Lit("data"), Seg::Rest("path")],
        &[Read, Update, Patch, Delete],
        DATA_FIELDS,
    )
    .existence(),
    Route::new(
        "metadata/:path",
        &[Seg::Lit("metadata"), Seg::RestOpt("path")],
        &[Read, List, Update, Delete],
        META_FIELDS,
    )
    .existence(),
    Route::new(
        "delete/:path",
        &[Seg::Lit("delete"), Seg::Rest("path")],
        &[Update],
        VERSION_FIELDS,
    ),
    Route::new(
        "undelete/:path",
        &[Seg::Lit("undelete"), Seg::Rest("path")],
        &[Update],
        VERSION_FIELDS,
    ),
    Route::new(
        "destroy/:path",
        &[Seg::Lit("destroy"), Seg::Rest("path")],
        &[Update],
        VERSION_FIELDS,
    ),
];

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

fn bad(m: impl Into<String>) -> Error {
    Error::BadRequest(m.into())
}

/// The KV v2 engine.
pub struct Kv;

struct Store<'a> {
    v: &'a View,
}

impl Store<'_> {
    fn record(&self, p: &str) -> Result<Option<Record>, Error> {
        self.v.get_json(&format!("meta/{p}"))
    }

    fn config(&self) -> Result<Config, Error> {
        Ok(self.v.get_json("config")?.unwrap_or_default())
    }

    fn max_versions(&self, r: &Record) -> Result<u64, Error> {
        let c = self.config()?;
        Ok([r.max_versions, c.max_versions]
            .into_iter()
            .find(|m| *m > 0)
            .unwrap_or(DEFAULT_MAX_VERSIONS))
    }

    fn metadata_json(r: &Record) -> Value {
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

    fn version_json(r: &Record, n: u64, m: &VersionMeta) -> Value {
        json!({
            "created_time": m.created_time, "custom_metadata": r.custom_metadata,
            "deletion_time": m.deletion_time, "destroyed": m.destroyed, "version": n,
        })
    }

    /// Reads a version without the secret's lock: the record and the data
    /// are two reads, and a write may trim or destroy the version in
    /// between. Then the record is read again; a version still listed but
    /// missing three times over is corrupt storage.
    fn read_data(&self, p: &str, version: Option<i64>) -> Result<Reply, Error> {
        let want = match version {
            None | Some(0) => None,
            Some(n) => Some(u64::try_from(n).map_err(|_| bad("version must not be negative"))?),
        };
        // Lock-free first; a version trimmed between the two reads sends
        // the second attempt under the secret's lock, where every write
        // leaves the metadata and the data consistent.
        for attempt in 0..2 {
            let _g = (attempt > 0).then(|| self.v.lock(&format!("meta/{p}")));
            let Some(r) = self.record(p)? else {
                return Ok(Reply::NotFound);
            };
            let n = want.unwrap_or(r.current_version);
            let Some(m) = r.versions.get(&n) else {
                return Ok(Reply::NotFound);
            };
            let meta = Self::version_json(&r, n, m);
            if m.destroyed || !m.deletion_time.is_empty() {
                return Ok(Reply::NotFoundData(json!({"data": null, "metadata": meta})));
            }
            if let Some(data) = self.v.get_json::<Value>(&format!("data/{p}/{n}"))? {
                return Ok(Reply::Data(json!({"data": data, "metadata": meta})));
            }
        }
        Err(Error::Corrupt(format!(
            "kv {p}: a listed version is missing"
        )))
    }

    /// Writes a new version; the secret's lock is held by the caller.
    fn write_data_locked(&self, p: &str, data: &Value, cas: Option<u64>) -> Result<Reply, Error> {
        let mut r = self.record(p)?.unwrap_or_default();
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
        let m = VersionMeta {
            created_time: t,
            ..Default::default()
        };
        r.versions.insert(n, m.clone());
        let max = self.max_versions(&r)?;
        let mut trimmed = Vec::new();
        while r.versions.len() as u64 > max {
            if let Some((&old, _)) = r.versions.iter().next() {
                r.versions.remove(&old);
                trimmed.push(format!("data/{p}/{old}"));
            }
        }
        // As Vault: 0 until versions are trimmed, then the oldest kept.
        if r.versions.keys().next().copied().unwrap_or(0) > 1 {
            r.oldest_version = r.versions.keys().next().copied().unwrap_or(0);
        }
        let data_bytes =
            zeroize::Zeroizing::new(serde_json::to_vec(data).map_err(crate::error::internal)?);
        let meta_bytes = serde_json::to_vec(&r).map_err(crate::error::internal)?;
        let data_key = format!("data/{p}/{n}");
        let meta_key = format!("meta/{p}");
        // The version, its record and the trimming in one transaction.
        let mut writes: Vec<(&str, Option<&[u8]>)> = vec![
            (&data_key, Some(&data_bytes)),
            (&meta_key, Some(&meta_bytes)),
        ];
        writes.extend(trimmed.iter().map(|k| (k.as_str(), None)));
        self.v.write(&writes)?;
        Ok(Reply::Data(Self::version_json(&r, n, &m)))
    }

    fn cas(f: &Fields) -> Result<Option<u64>, Error> {
        match f.json("options").and_then(|o| o.get("cas")) {
            None | Some(Value::Null) => Ok(None),
            Some(c) => parse_int(c)
                .and_then(|n| u64::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| bad("cas must be a non-negative integer")),
        }
    }

    fn check_options(f: &Fields) -> Result<(), Error> {
        if let Some(o) = f.json("options").and_then(Value::as_object) {
            if let Some(k) = o.keys().find(|k| *k != "cas") {
                return Err(bad(format!(
                    "unknown option {k:?}: data writes take options.cas only"
                )));
            }
        }
        Ok(())
    }

    /// PATCH `data/<p>`: merges `data` into the current version (RFC 7386:
    /// `null` removes a key) and writes the result as a new version,
    /// honouring `options.cas`. The current version must be readable.
    fn patch_data(&self, p: &str, patch: &Value, cas: Option<u64>) -> Result<Reply, Error> {
        let _g = self.v.lock(&format!("meta/{p}"));
        let Some(r) = self.record(p)? else {
            return Ok(Reply::NotFound);
        };
        let n = r.current_version;
        match r.versions.get(&n) {
            Some(m) if !m.destroyed && m.deletion_time.is_empty() => {}
            _ => return Ok(Reply::NotFound),
        }
        let mut data: Value = self
            .v
            .get_json(&format!("data/{p}/{n}"))?
            .ok_or_else(|| Error::Corrupt(format!("kv {p} version {n} is missing")))?;
        merge_patch(&mut data, patch);
        self.write_data_locked(p, &data, cas)
    }

    fn change_versions(&self, p: &str, versions: &[u64], op: &str) -> Result<Reply, Error> {
        let _g = self.v.lock(&format!("meta/{p}"));
        let Some(mut r) = self.record(p)? else {
            return Ok(Reply::NoContent);
        };
        let t = now();
        let mut destroyed = Vec::new();
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
                    destroyed.push(format!("data/{p}/{n}"));
                }
                _ => {}
            }
        }
        r.updated_time = t;
        let meta = serde_json::to_vec(&r).map_err(crate::error::internal)?;
        let meta_key = format!("meta/{p}");
        let mut writes: Vec<(&str, Option<&[u8]>)> = vec![(&meta_key, Some(&meta))];
        writes.extend(destroyed.iter().map(|k| (k.as_str(), None)));
        self.v.write(&writes)?;
        Ok(Reply::NoContent)
    }

    fn list(&self, p: &str) -> Result<Reply, Error> {
        let prefix = if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        };
        let keys = self.v.list(&format!("meta/{prefix}"))?;
        if keys.is_empty() {
            return Ok(Reply::NotFound);
        }
        Ok(Reply::Data(json!({"keys": keys})))
    }
}

/// Applies a JSON merge patch (RFC 7386) to `target`. It recurses once per
/// level of the patch, which the JSON parser bounds at 128 levels.
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

fn versions(f: &Fields) -> Result<Vec<u64>, Error> {
    let v = f.list("versions").unwrap_or_default();
    if v.is_empty() {
        return Err(bad("no version number provided"));
    }
    v.iter()
        .map(|x| {
            x.parse::<u64>()
                .map_err(|_| bad("versions must be numbers"))
        })
        .collect()
}

impl Backend for Kv {
    fn routes(&self) -> &'static [Route] {
        ROUTES
    }

    fn mount_type(&self) -> &'static str {
        "kv"
    }

    fn exists(&self, view: &View, m: &Matched) -> Result<bool, Error> {
        let p = m.param("path");
        if p.is_empty() {
            return Ok(true);
        }
        Ok(view.get(&format!("meta/{p}"))?.is_some())
    }

    fn handle(&self, ctx: &Ctx<'_>, m: &Matched, f: &Fields) -> Result<Reply, Error> {
        let kv = Store { v: &ctx.view };
        let p = m.param("path");
        match (m.route.name, ctx.op) {
            ("config", Read) => {
                let c = kv.config()?;
                Ok(Reply::Data(
                    json!({"max_versions": c.max_versions, "cas_required": c.cas_required, "delete_version_after": "0s"}),
                ))
            }
            ("config", _) => {
                let _g = ctx.view.lock("config");
                let mut c = kv.config()?;
                if let Some(n) = f.uint("max_versions")? {
                    c.max_versions = n;
                }
                if let Some(b) = f.bool("cas_required") {
                    c.cas_required = b;
                }
                ctx.view.put_json("config", &c)?;
                Ok(Reply::NoContent)
            }
            ("data/:path", Read) => kv.read_data(p, f.int("version")),
            ("data/:path", Patch) => {
                Store::check_options(f)?;
                let data = f.json("data").ok_or_else(|| bad("no data provided"))?;
                kv.patch_data(p, data, Store::cas(f)?)
            }
            ("data/:path", Delete) => {
                let current = kv.record(p)?.map(|r| r.current_version);
                match current {
                    Some(n) => kv.change_versions(p, &[n], "delete"),
                    None => Ok(Reply::NoContent),
                }
            }
            ("data/:path", _) => {
                Store::check_options(f)?;
                let data = f.json("data").ok_or_else(|| bad("no data provided"))?;
                let _g = ctx.view.lock(&format!("meta/{p}"));
                super::created_meanwhile(ctx, &format!("meta/{p}"))?;
                kv.write_data_locked(p, data, Store::cas(f)?)
            }
            ("metadata/:path", List) => kv.list(p),
            ("metadata/:path", _) if p.is_empty() => Err(Error::MethodNotAllowed),
            ("metadata/:path", Read) => Ok(match kv.record(p)? {
                None => Reply::NotFound,
                Some(r) => Reply::Data(Store::metadata_json(&r)),
            }),
            ("metadata/:path", Delete) => {
                let _g = ctx.view.lock(&format!("meta/{p}"));
                if let Some(r) = kv.record(p)? {
                    let keys: Vec<String> = r
                        .versions
                        .keys()
                        .map(|n| format!("data/{p}/{n}"))
                        .chain([format!("meta/{p}")])
                        .collect();
                    let writes: Vec<(&str, Option<&[u8]>)> =
                        keys.iter().map(|k| (k.as_str(), None)).collect();
                    ctx.view.write(&writes)?;
                }
                Ok(Reply::NoContent)
            }
            ("metadata/:path", _) => {
                let _g = ctx.view.lock(&format!("meta/{p}"));
                super::created_meanwhile(ctx, &format!("meta/{p}"))?;
                let mut r = kv.record(p)?.unwrap_or_default();
                if let Some(n) = f.uint("max_versions")? {
                    r.max_versions = n;
                }
                if let Some(b) = f.bool("cas_required") {
                    r.cas_required = b;
                }
                if let Some(c) = f.json("custom_metadata") {
                    r.custom_metadata = c.as_object().cloned();
                }
                let t = now();
                if r.created_time.is_empty() {
                    r.created_time = t.clone();
                }
                r.updated_time = t;
                ctx.view.put_json(&format!("meta/{p}"), &r)?;
                Ok(Reply::NoContent)
            }
            (op @ ("delete/:path" | "undelete/:path" | "destroy/:path"), _) => {
                let verb = op.split('/').next().unwrap_or_default();
                kv.change_versions(p, &versions(f)?, verb)
            }
            _ => Err(Error::MethodNotAllowed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        // RFC 7386 appendix A.
        for (target, patch, want) in [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
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
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
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
