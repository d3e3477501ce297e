//! A storage view: the barrier seen under one prefix (a mount's
//! `logical/<uuid>/`, an auth method's `auth/<uuid>/`, the token store's
//! `sys/token/`). Backends get a view and nothing wider, so a key a client
//! chose can only ever name something under its own mount: keys are plain
//! strings appended to the prefix, never interpreted as paths.

use crate::barrier::{Barrier, PathGuard, Write};
use crate::error::{Error, internal};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The barrier under a prefix.
#[derive(Clone)]
pub struct View {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl View {
    /// The view of `barrier` under `prefix` (empty, or ending in `/`).
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> Self {
        Self {
            barrier,
            prefix: prefix.into(),
        }
    }

    /// A narrower view, under `sub` (ending in `/`) inside this one.
    pub fn sub(&self, sub: &str) -> Self {
        Self {
            barrier: self.barrier.clone(),
            prefix: format!("{}{sub}", self.prefix),
        }
    }

    /// The prefix of this view in storage.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    /// The decrypted value at `k`.
    pub fn get(&self, k: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        self.barrier.get(&self.key(k))
    }

    /// The value at `k`, parsed from JSON.
    pub fn get_json<T: DeserializeOwned>(&self, k: &str) -> Result<Option<T>, Error> {
        match self.get(k)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", self.key(k)))),
        }
    }

    /// The value at `k` through the barrier's parsed-value cache (small,
    /// hot, rarely written values).
    pub fn get_parsed<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        k: &str,
    ) -> Result<Arc<Option<T>>, Error> {
        let full = self.key(k);
        self.barrier.get_parsed(&full, |b| match b {
            None => Ok(None),
            Some(b) => serde_json::from_slice(b)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("{full}: {e}"))),
        })
    }

    /// The value at `k` through the parsed-value cache, parsed by `parse`.
    pub fn get_parsed_with<T: Send + Sync + 'static>(
        &self,
        k: &str,
        parse: impl FnOnce(Option<&[u8]>) -> Result<T, Error>,
    ) -> Result<Arc<T>, Error> {
        self.barrier.get_parsed(&self.key(k), parse)
    }

    /// Stores `value` at `k` (durable on return).
    pub fn put(&self, k: &str, value: &[u8]) -> Result<(), Error> {
        self.barrier.put(&self.key(k), value)
    }

    /// Stores `value` as JSON at `k`.
    pub fn put_json<T: Serialize>(&self, k: &str, value: &T) -> Result<(), Error> {
        let b = Zeroizing::new(serde_json::to_vec(value).map_err(internal)?);
        self.put(k, &b)
    }

    /// Deletes `k`.
    pub fn delete(&self, k: &str) -> Result<(), Error> {
        self.barrier.delete(&self.key(k))
    }

    /// Applies puts and deletes (keys relative to the view) in one
    /// transaction.
    pub fn write(&self, writes: &[(&str, Option<&[u8]>)]) -> Result<(), Error> {
        let keys: Vec<String> = writes.iter().map(|(k, _)| self.key(k)).collect();
        let ws: Vec<Write<'_>> = keys
            .iter()
            .zip(writes)
            .map(|(k, (_, v))| match v {
                Some(v) => Write::Put(k, v),
                None => Write::Delete(k),
            })
            .collect();
        self.barrier.write(&ws)
    }

    /// The children of `dir` (empty or ending in `/`): names, and folders
    /// with a trailing `/`.
    pub fn list(&self, dir: &str) -> Result<Vec<String>, Error> {
        self.barrier.list(&self.key(dir))
    }

    /// Deletes everything under `dir` (without recursion).
    pub fn delete_prefix(&self, dir: &str) -> Result<(), Error> {
        self.barrier.delete_prefix(&self.key(dir))
    }

    /// Serialises slow work on `k` (a login of one user) while the guard
    /// lives, on locks no storage write waits for.
    pub fn lock_slow(&self, k: &str) -> PathGuard<'_> {
        self.barrier.lock_slow(&self.key(k))
    }

    /// Serialises read-modify-write cycles on `k` while the guard lives.
    pub fn lock(&self, k: &str) -> PathGuard<'_> {
        self.barrier.lock_path(&self.key(k))
    }
}
