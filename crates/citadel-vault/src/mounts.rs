//! The mount table (`sys/mounts`): which secrets engine serves which path
//! prefix. Stored behind the barrier at `core/mounts`; each mount keeps its
//! data under `logical/<uuid>/`.

use crate::Error;
use crate::core::Vault;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

const TABLE: &str = "core/mounts";

/// The engines that can be mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// Key/value, version 2.
    KvV2,
    /// Encryption as a service.
    Transit,
}

/// One mount.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mount {
    /// The engine.
    pub engine: Engine,
    /// Where its data lives: `logical/<uuid>/`.
    pub uuid: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// Normalises a mount path: no leading `/`, exactly one trailing `/`.
pub fn normalize(path: &str) -> Result<String, Error> {
    let p = path.trim_matches('/');
    if p.is_empty() || p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(Error::BadRequest(format!("invalid mount path {path:?}")));
    }
    if p == "sys" || p.starts_with("sys/") || p == "auth" || p.starts_with("auth/") {
        return Err(Error::BadRequest(format!(
            "cannot mount at reserved path {p:?}"
        )));
    }
    Ok(format!("{p}/"))
}

/// Parses Vault's engine naming: `kv-v2`, or `kv` with option version 2.
pub fn engine_from(kind: &str, version: Option<&str>) -> Result<Engine, Error> {
    match (kind, version) {
        ("kv-v2", _) | ("kv", Some("2")) => Ok(Engine::KvV2),
        ("transit", _) => Ok(Engine::Transit),
        ("kv", _) => Err(Error::BadRequest(
            "only version 2 of the kv engine is available: use type kv-v2, or options {\"version\": \"2\"}".into(),
        )),
        (other, _) => Err(Error::BadRequest(format!(
            "plugin not found in the catalog: {other}"
        ))),
    }
}

/// Reads the table (parsed once, shared until it changes).
pub fn table(v: &Vault) -> Result<Arc<BTreeMap<String, Mount>>, Error> {
    v.get_parsed(TABLE, |b| match b {
        None => Ok(BTreeMap::new()),
        Some(b) => {
            serde_json::from_slice(b).map_err(|e| Error::Corrupt(format!("mount table: {e}")))
        }
    })
}

fn store(v: &Vault, t: &BTreeMap<String, Mount>) -> Result<(), Error> {
    let json = serde_json::to_vec(t).map_err(|e| Error::Internal(e.to_string()))?;
    v.put(TABLE, &json)
}

/// Mounts `engine` at `path`.
pub fn mount(v: &Vault, path: &str, engine: Engine, description: &str) -> Result<(), Error> {
    let path = normalize(path)?;
    let _g = v.lock_path(TABLE);
    let mut t = (*table(v)?).clone();
    if t.keys()
        .any(|p| p.starts_with(&path) || path.starts_with(p.as_str()))
    {
        return Err(Error::BadRequest(format!(
            "path is already in use at {path}"
        )));
    }
    let id = citadel_crypto::random::array::<16>().map_err(|e| Error::Internal(e.to_string()))?;
    t.insert(
        path,
        Mount {
            engine,
            uuid: hex::encode(id),
            description: description.to_string(),
        },
    );
    store(v, &t)
}

/// Unmounts `path` and deletes its data.
pub fn unmount(v: &Vault, path: &str) -> Result<(), Error> {
    let path = normalize(path)?;
    let _g = v.lock_path(TABLE);
    let mut t = (*table(v)?).clone();
    let Some(m) = t.remove(&path) else {
        return Ok(());
    };
    store(v, &t)?;
    v.delete_prefix(&format!("logical/{}/", m.uuid))
}

/// The mount serving `path` (longest prefix) and the path inside it.
pub fn resolve(v: &Vault, path: &str) -> Result<Option<(String, Mount, String)>, Error> {
    let t = table(v)?;
    let mut best: Option<(String, Mount, String)> = None;
    for (p, m) in t.iter() {
        let bare = p.trim_end_matches('/');
        let rest = if path == bare {
            Some("")
        } else {
            path.strip_prefix(p.as_str())
        };
        if let Some(rest) = rest {
            if best.as_ref().is_none_or(|b| b.0.len() < p.len()) {
                best = Some((p.clone(), m.clone(), rest.to_string()));
            }
        }
    }
    Ok(best)
}
