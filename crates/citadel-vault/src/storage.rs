//! The physical storage interface (Vault's "physical backend"): opaque
//! blobs under string keys. Everything but the seal configuration reaches
//! it already encrypted by the barrier. SQLite is the default; the trait is
//! small so that another backend (PostgreSQL) is a drop-in.

use crate::Error;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// Key-value storage of encrypted blobs.
pub trait Physical: Send + Sync {
    /// The value at `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;
    /// Stores `value` at `key`; durable when this returns.
    fn put(&self, key: &str, value: &[u8]) -> Result<(), Error>;
    /// Removes `key` (absent keys are fine).
    fn delete(&self, key: &str) -> Result<(), Error>;
    /// The keys directly under `prefix` (which ends in `/` or is empty):
    /// names of entries, and of "folders" with a trailing `/`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, Error>;
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
    fn put(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.map().insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &str) -> Result<(), Error> {
        self.map().remove(key);
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
/// disk when it returns).
pub struct Sqlite(Mutex<rusqlite::Connection>);

fn db(e: rusqlite::Error) -> Error {
    Error::Storage(e.to_string())
}

impl Sqlite {
    /// Opens (creating) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let c = rusqlite::Connection::open(path)
            .map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
        c.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        c.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        c.execute(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
            [],
        )
        .map_err(db)?;
        Ok(Self(Mutex::new(c)))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Physical for Sqlite {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        use rusqlite::OptionalExtension;
        self.conn()
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(db)
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.conn()
            .prepare_cached("INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .and_then(|mut s| s.execute(rusqlite::params![key, value]))
            .map(|_| ())
            .map_err(db)
    }
    fn delete(&self, key: &str) -> Result<(), Error> {
        self.conn()
            .prepare_cached("DELETE FROM kv WHERE key = ?1")
            .and_then(|mut s| s.execute([key]))
            .map(|_| ())
            .map_err(db)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let c = self.conn();
        let mut s = c
            .prepare_cached("SELECT key FROM kv WHERE key >= ?1 ORDER BY key")
            .map_err(db)?;
        let rows = s
            .query_map([prefix], |r| r.get::<_, String>(0))
            .map_err(db)?;
        let mut keys = Vec::new();
        for k in rows {
            let k = k.map_err(db)?;
            if !k.starts_with(prefix) {
                break;
            }
            keys.push(k);
        }
        Ok(children(prefix, keys.into_iter()))
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
    }

    #[test]
    fn memory_and_sqlite_behave_alike() {
        exercise(&Memory::default());
        let d = tempfile::tempdir().unwrap();
        exercise(&Sqlite::open(&d.path().join("v.db")).unwrap());
        // Durable across reopening.
        let s = Sqlite::open(&d.path().join("v.db")).unwrap();
        assert_eq!(s.get("b").unwrap().as_deref(), Some(&b"4"[..]));
    }
}
