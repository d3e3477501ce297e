//! The physical storage interface (Vault's "physical backend"): opaque
//! blobs under string keys. Everything but the seal configuration reaches
//! it already encrypted by the barrier. SQLite is the default; the trait is
//! small so that another backend (PostgreSQL) is a drop-in.

use crate::Error;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// One change of a [`Physical::write`] batch.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// Store this value at this key.
    Put(&'a str, &'a [u8]),
    /// Remove this key (absent is fine).
    Delete(&'a str),
}

impl Change<'_> {
    /// The key it changes.
    pub fn key(&self) -> &str {
        match self {
            Change::Put(k, _) | Change::Delete(k) => k,
        }
    }
}

/// What [`Physical::scan`] calls with each key and value.
pub type ScanFn<'a> = dyn FnMut(&str, &[u8]) -> Result<(), Error> + 'a;

/// Key-value storage of encrypted blobs.
pub trait Physical: Send + Sync {
    /// The value at `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;
    /// Applies every change or none (one transaction); durable when this
    /// returns.
    fn write(&self, changes: &[Change<'_>]) -> Result<(), Error>;
    /// The keys directly under `prefix` (which ends in `/` or is empty):
    /// names of entries, and of "folders" with a trailing `/`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, Error>;
    /// Calls `f` with every key and value, in key order.
    fn scan(&self, f: &mut ScanFn<'_>) -> Result<(), Error>;
    /// Stores `value` at `key`; durable when this returns.
    fn put(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.write(&[Change::Put(key, value)])
    }
    /// Removes `key` (absent keys are fine).
    fn delete(&self, key: &str) -> Result<(), Error> {
        self.write(&[Change::Delete(key)])
    }
}

/// Turns full keys under `prefix` into Vault-style list entries.
fn children(prefix: &str, keys: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        let Some(rest) = k.strip_prefix(prefix) else {
            continue;
        };
        let child = match rest.find('/') {
            Some(i) => rest[..=i].to_string(),
            None => rest.to_string(),
        };
        if out.last() != Some(&child) && !child.is_empty() {
            out.push(child);
        }
    }
    out.dedup();
    out
}

/// In-memory storage (the dev server): lost when the process ends.
#[derive(Default)]
pub struct Memory(Mutex<BTreeMap<String, Vec<u8>>>);

impl Memory {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Physical for Memory {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.map().get(key).cloned())
    }
    fn write(&self, changes: &[Change<'_>]) -> Result<(), Error> {
        let mut map = self.map();
        for c in changes {
            match *c {
                Change::Put(k, v) => {
                    map.insert(k.to_string(), v.to_vec());
                }
                Change::Delete(k) => {
                    map.remove(k);
                }
            }
        }
        Ok(())
    }
    fn scan(&self, f: &mut ScanFn<'_>) -> Result<(), Error> {
        // A snapshot, so `f` may take its time without holding the lock.
        let all: Vec<(String, Vec<u8>)> = self
            .map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &all {
            f(k, v)?;
        }
        Ok(())
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let map = self.map();
        let keys = map
            .range(prefix.to_string()..)
            .map(|(k, _)| k.clone())
            .take_while(|k| k.starts_with(prefix));
        Ok(children(prefix, keys))
    }
}

/// SQLite storage: one table, WAL journal, `synchronous=FULL` (a put is on
/// disk when it returns). One connection writes; reads take a connection
/// from a pool, so they run in parallel with each other and with the
/// writer (WAL readers see every committed write).
pub struct Sqlite {
    path: std::path::PathBuf,
    writer: Mutex<rusqlite::Connection>,
    readers: Mutex<Vec<rusqlite::Connection>>,
}

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Readers kept open for reuse; more may be open for a moment under load.
const IDLE_READERS: usize = 8;

fn db(e: rusqlite::Error) -> Error {
    Error::Storage(e.to_string())
}

impl Sqlite {
    /// Opens (creating) the database file at `path`. The file is created
    /// with mode 0600 (its journal files inherit the mode from it), and an
    /// existing file readable by others is narrowed to 0600: it holds
    /// encrypted secrets, but also their paths and the vault's structure.
    pub fn open(path: &Path) -> Result<Self, Error> {
        restrict_mode(path)?;
        let c = rusqlite::Connection::open(path)
            .map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
        c.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        c.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        c.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        c.execute(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
            [],
        )
        .map_err(db)?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: Mutex::new(c),
            readers: Mutex::new(Vec::new()),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on a pooled read connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let c = match pooled {
            Some(c) => c,
            None => rusqlite::Connection::open_with_flags(
                &self.path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|c| c.busy_timeout(BUSY_TIMEOUT).map(|()| c))
            .map_err(|e| Error::Storage(format!("{}: {e}", self.path.display())))?,
        };
        let r = f(&c).map_err(db);
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < IDLE_READERS {
            pool.push(c);
        }
        r
    }
}

/// Creates `path` (and narrows the database's side files, when present)
/// with mode 0600 before SQLite opens it.
fn restrict_mode(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |p: &Path, e: std::io::Error| Error::Storage(format!("{}: {e}", p.display()));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| fail(path, e))?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        let p = Path::new(&name);
        if let Ok(m) = std::fs::symlink_metadata(p) {
            if m.is_file() && m.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| fail(p, e))?;
            }
        }
    }
    Ok(())
}

impl Physical for Sqlite {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        use rusqlite::OptionalExtension;
        self.read(|c| {
            c.prepare_cached("SELECT value FROM kv WHERE key = ?1")
                .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
        })
    }
    fn write(&self, changes: &[Change<'_>]) -> Result<(), Error> {
        let mut c = self.conn();
        let tx = c.transaction().map_err(db)?;
        for ch in changes {
            match *ch {
                Change::Put(key, value) => tx
                    .prepare_cached("INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
                    .and_then(|mut s| s.execute(rusqlite::params![key, value])),
                Change::Delete(key) => tx
                    .prepare_cached("DELETE FROM kv WHERE key = ?1")
                    .and_then(|mut s| s.execute([key])),
            }
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }
    fn scan(&self, f: &mut ScanFn<'_>) -> Result<(), Error> {
        let mut err = None;
        self.read(|c| {
            let mut s = c.prepare("SELECT key, value FROM kv ORDER BY key")?;
            let mut rows = s.query([])?;
            while let Some(r) = rows.next()? {
                let k: String = r.get(0)?;
                let v: Vec<u8> = r.get(1)?;
                if let Err(e) = f(&k, &v) {
                    err = Some(e);
                    break;
                }
            }
            Ok(())
        })?;
        err.map_or(Ok(()), Err)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let keys = self.read(|c| {
            let mut s = c.prepare_cached("SELECT key FROM kv WHERE key >= ?1 ORDER BY key")?;
            let rows = s.query_map([prefix], |r| r.get::<_, String>(0))?;
            let mut keys = Vec::new();
            for k in rows {
                let k = k?;
                if !k.starts_with(prefix) {
                    break;
                }
                keys.push(k);
            }
            Ok(keys)
        })?;
        Ok(children(prefix, keys.into_iter()))
    }
}

/// A read cache in front of a slow backend, as Vault's physical cache:
/// at most `capacity` stored (still encrypted) values, written through, an
/// arbitrary entry evicted when full. Lists always go to the backend.
pub struct Cached<P> {
    inner: P,
    capacity: usize,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    /// Bumped by every write, so a read that raced a write never caches
    /// the value it read before the write.
    generation: u64,
    values: std::collections::HashMap<String, Vec<u8>>,
}

/// Vault's default physical cache size, in entries.
pub const DEFAULT_CACHE_ENTRIES: usize = 131_072;

impl<P: Physical> Cached<P> {
    /// Caches up to `capacity` values of `inner`.
    pub fn new(inner: P, capacity: usize) -> Self {
        Self {
            inner,
            capacity,
            state: Mutex::new(CacheState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn invalidate(&self, key: &str) {
        let mut st = self.state();
        st.generation += 1;
        st.values.remove(key);
    }
}

impl<P: Physical> Physical for Cached<P> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let generation = {
            let st = self.state();
            if let Some(v) = st.values.get(key) {
                return Ok(Some(v.clone()));
            }
            st.generation
        };
        let v = self.inner.get(key)?;
        if let Some(v) = &v {
            let mut st = self.state();
            if st.generation == generation && self.capacity > 0 {
                if st.values.len() >= self.capacity {
                    if let Some(k) = st.values.keys().next().cloned() {
                        st.values.remove(&k);
                    }
                }
                st.values.insert(key.to_string(), v.clone());
            }
        }
        Ok(v)
    }
    fn write(&self, changes: &[Change<'_>]) -> Result<(), Error> {
        // Invalidate on both sides of the write: a failed write leaves no
        // stale entry, and no read in between caches the old value.
        for c in changes {
            self.invalidate(c.key());
        }
        let r = self.inner.write(changes);
        for c in changes {
            self.invalidate(c.key());
        }
        r
    }
    fn scan(&self, f: &mut ScanFn<'_>) -> Result<(), Error> {
        self.inner.scan(f)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.inner.list(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(s: &dyn Physical) {
        s.put("a/b", b"1").unwrap();
        s.put("a/c/d", b"2").unwrap();
        s.put("a/c/e", b"3").unwrap();
        s.put("b", b"4").unwrap();
        assert_eq!(s.get("a/b").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.list("a/").unwrap(), vec!["b", "c/"]);
        assert_eq!(s.list("").unwrap(), vec!["a/", "b"]);
        s.put("a/b", b"5").unwrap();
        assert_eq!(s.get("a/b").unwrap().as_deref(), Some(&b"5"[..]));
        s.delete("a/b").unwrap();
        assert_eq!(s.get("a/b").unwrap(), None);
        assert_eq!(s.list("a/").unwrap(), vec!["c/"]);
        s.write(&[
            Change::Put("t/1", b"x"),
            Change::Put("t/2", b"y"),
            Change::Delete("b"),
        ])
        .unwrap();
        let mut seen = Vec::new();
        s.scan(&mut |k, v| {
            seen.push((k.to_string(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        let keys: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a/c/d", "a/c/e", "t/1", "t/2"]);
        s.delete("t/1").unwrap();
        s.delete("t/2").unwrap();
        s.put("b", b"4").unwrap();
    }

    #[test]
    fn the_database_and_its_journal_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v.db");
        let s = Sqlite::open(&p).unwrap();
        s.put("k", b"v").unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let f = d.path().join(format!("v.db{suffix}"));
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
        drop(s);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        Sqlite::open(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn memory_and_sqlite_behave_alike() {
        exercise(&Memory::default());
        exercise(&Cached::new(Memory::default(), 2));
        exercise(&Cached::new(Memory::default(), 0));
        let d = tempfile::tempdir().unwrap();
        exercise(&Sqlite::open(&d.path().join("v.db")).unwrap());
        // Durable across reopening.
        let s = Sqlite::open(&d.path().join("v.db")).unwrap();
        assert_eq!(s.get("b").unwrap().as_deref(), Some(&b"4"[..]));
        exercise(&Cached::new(s, 16));
    }
}

#[cfg(test)]
mod cache_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any sequence of operations reads the same through a small cache
        /// as from the backend alone.
        #[test]
        fn a_cache_never_changes_what_is_read(ops in proptest::collection::vec((0u8..3, 0u8..6, any::<u8>()), 1..80)) {
            let plain = Memory::default();
            let cached = Cached::new(Memory::default(), 3);
            for (op, k, v) in ops {
                let key = format!("k/{k}");
                match op {
                    0 => { plain.put(&key, &[v]).unwrap(); cached.put(&key, &[v]).unwrap(); }
                    1 => { plain.delete(&key).unwrap(); cached.delete(&key).unwrap(); }
                    _ => prop_assert_eq!(plain.get(&key).unwrap(), cached.get(&key).unwrap()),
                }
            }
            prop_assert_eq!(plain.list("k/").unwrap(), cached.list("k/").unwrap());
        }
    }
}

/// A storage whose writes fail while `fail` is set (unit tests of the
/// layers above).
#[cfg(test)]
#[derive(Default)]
pub(crate) struct FailingWrites {
    inner: Memory,
    pub(crate) fail: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl Physical for FailingWrites {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.inner.get(key)
    }
    fn write(&self, changes: &[Change<'_>]) -> Result<(), Error> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Storage("database is locked".into()));
        }
        self.inner.write(changes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.inner.list(prefix)
    }
    fn scan(&self, f: &mut ScanFn<'_>) -> Result<(), Error> {
        self.inner.scan(f)
    }
}
