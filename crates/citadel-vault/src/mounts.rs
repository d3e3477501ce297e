//! The mount tables: which secrets engine serves which path prefix
//! (`sys/mounts`, stored at `core/mounts`) and which auth method serves
//! which `auth/` prefix (`sys/auth`, at `core/auth`). Each mount keeps its
//! data under `logical/<uuid>/` or `auth/<uuid>/`. `sys/` and
//! `auth/token/` are built in.
//!
//! A table changes by copy, persist, swap: the new table is built on a
//! copy and stored; only a stored table is ever served (the live one is
//! the parsed-value cache of the stored one), so a failed write leaves the
//! old table in force. Changes are serialised by one lock per table.

use crate::barrier::Barrier;
use crate::error::{Error, internal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

const LOGICAL: &str = "core/mounts";
const AUTH: &str = "core/auth";

/// What a mount serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Key/value, version 2.
    KvV2,
    /// Encryption as a service.
    Transit,
    /// Username and password logins.
    Userpass,
    /// Role id and secret id logins.
    Approle,
}

impl Kind {
    /// The `type` Vault shows.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::KvV2 => "kv",
            Kind::Transit => "transit",
            Kind::Userpass => "userpass",
            Kind::Approle => "approle",
        }
    }

    /// Whether it is an auth method.
    pub fn is_auth(self) -> bool {
        matches!(self, Kind::Userpass | Kind::Approle)
    }
}

/// One mount.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mount {
    /// What it serves.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Its data lives under `logical/<uuid>/` (`auth/<uuid>/`).
    pub uuid: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

impl Mount {
    /// The storage prefix of its data.
    pub fn storage_prefix(&self) -> String {
        if self.kind.is_auth() {
            format!("auth/{}/", self.uuid)
        } else {
            format!("logical/{}/", self.uuid)
        }
    }

    /// Its accessor, as Vault shows it (`kv_1fec5287`).
    pub fn accessor(&self) -> String {
        format!(
            "{}_{}",
            if self.kind.is_auth() {
                format!("auth_{}", self.kind.type_name())
            } else {
                self.kind.type_name().to_string()
            },
            &self.uuid[..8.min(self.uuid.len())]
        )
    }
}

/// Parses Vault's engine naming: `kv-v2`, or `kv` with option version 2.
pub fn engine_from(kind: &str, version: Option<&str>) -> Result<Kind, Error> {
    match (kind, version) {
        ("kv-v2", _) | ("kv", Some("2")) => Ok(Kind::KvV2),
        ("transit", _) => Ok(Kind::Transit),
        ("kv", _) => Err(Error::bad(
            "only version 2 of the kv engine is available: use type kv-v2, or options {\"version\": \"2\"}",
        )),
        (other, _) => Err(Error::bad(format!(
            "plugin not found in the catalog: {other}"
        ))),
    }
}

/// Parses an auth method type.
pub fn method_from(kind: &str) -> Result<Kind, Error> {
    match kind {
        "userpass" => Ok(Kind::Userpass),
        "approle" => Ok(Kind::Approle),
        other => Err(Error::bad(format!(
            "unknown auth method type {other:?}: approle or userpass"
        ))),
    }
}

/// Which table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// Secrets engines (`sys/mounts`).
    Logical,
    /// Auth methods (`sys/auth`), relative to `auth/`.
    Auth,
}

impl Table {
    fn key(self) -> &'static str {
        match self {
            Table::Logical => LOGICAL,
            Table::Auth => AUTH,
        }
    }
}

/// A path resolved to its mount.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The mount's path with its trailing `/` (`secret/`, or `userpass/`
    /// for an auth method).
    pub path: String,
    /// The mount.
    pub mount: Mount,
    /// The path inside the mount (no leading `/`).
    pub rest: String,
}

/// The two tables.
pub struct Mounts {
    barrier: Arc<Barrier>,
}

/// A mount path as stored: no leading `/`, one trailing `/`; each segment
/// non-empty; reserved prefixes refused.
pub fn normalize(table: Table, path: &str) -> Result<String, Error> {
    let p = path.trim_matches('/');
    if p.is_empty() || p.len() > 256 || p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(Error::bad(format!("invalid mount path {path:?}")));
    }
    let reserved: &[&str] = match table {
        Table::Logical => &["sys", "auth"],
        Table::Auth => &["token"],
    };
    if reserved
        .iter()
        .any(|r| p == *r || p.starts_with(&format!("{r}/")))
    {
        return Err(Error::bad(format!("cannot mount at reserved path {p:?}")));
    }
    Ok(format!("{p}/"))
}

impl Mounts {
    /// The tables stored behind `barrier`.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self { barrier }
    }

    /// A table (parsed once, shared until it changes).
    pub fn table(&self, t: Table) -> Result<Arc<BTreeMap<String, Mount>>, Error> {
        self.barrier.get_parsed(t.key(), |b| match b {
            None => Ok(BTreeMap::new()),
            Some(b) => {
                serde_json::from_slice(b).map_err(|e| Error::Corrupt(format!("mount table: {e}")))
            }
        })
    }

    /// Adds a mount of `kind` at `path` (already normalised).
    pub fn add(&self, t: Table, path: &str, kind: Kind, description: &str) -> Result<(), Error> {
        let _g = self.barrier.lock_path(t.key());
        let mut next = (*self.table(t)?).clone();
        if next
            .keys()
            .any(|p| p.starts_with(path) || path.starts_with(p.as_str()))
        {
            return Err(Error::bad(format!("path is already in use at {path}")));
        }
        let id = citadel_crypto::random::array::<16>().map_err(internal)?;
        next.insert(
            path.to_string(),
            Mount {
                kind,
                uuid: hex::encode(id),
                description: description.to_string(),
            },
        );
        self.store(t, &next)
    }

    /// Removes the mount at `path` (already normalised) and then its data;
    /// returns whether there was one.
    pub fn remove(&self, t: Table, path: &str) -> Result<bool, Error> {
        let removed = {
            let _g = self.barrier.lock_path(t.key());
            let mut next = (*self.table(t)?).clone();
            let Some(m) = next.remove(path) else {
                return Ok(false);
            };
            self.store(t, &next)?;
            m
        };
        // The mount is gone from the table (nothing reaches its data any
        // more) before its data is deleted.
        self.barrier.delete_prefix(&removed.storage_prefix())?;
        Ok(true)
    }

    fn store(&self, t: Table, table: &BTreeMap<String, Mount>) -> Result<(), Error> {
        let json = serde_json::to_vec(table).map_err(internal)?;
        self.barrier.put(t.key(), &json)
    }

    /// The mount serving `path` (longest prefix) in table `t`, and the path
    /// inside it. `path` is canonical (no trailing `/`); for the auth table
    /// it is relative to `auth/`.
    pub fn resolve(&self, t: Table, path: &str) -> Result<Option<Resolved>, Error> {
        let table = self.table(t)?;
        let mut best: Option<(&String, &Mount, &str)> = None;
        for (p, m) in table.iter() {
            let bare = p.trim_end_matches('/');
            let rest = if path == bare {
                Some("")
            } else {
                path.strip_prefix(p.as_str())
            };
            if let Some(rest) = rest {
                if best.is_none_or(|b| b.0.len() < p.len()) {
                    best = Some((p, m, rest));
                }
            }
        }
        Ok(best.map(|(p, m, rest)| Resolved {
            path: p.clone(),
            mount: m.clone(),
            rest: rest.to_string(),
        }))
    }
}
