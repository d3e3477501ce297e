//! The vault's core: initialisation, the seal state machine and tokens.
//!
//! Storage layout: `core/seal-config` (plain JSON: shares, threshold),
//! `core/keyring` (the keyring, encrypted under the root key), and
//! everything else encrypted by the keyring. While sealed the process holds
//! no key material: no root key, no keyring.

use crate::Error;
use crate::barrier::{Keyring, open_blob, seal_blob};
use crate::shamir;
use crate::storage::Physical;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

const SEAL_CONFIG: &str = "core/seal-config";
const KEYRING: &str = "core/keyring";
const TOKENS: &str = "sys/token/id/";

/// How the root key is split (`core/seal-config`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SealConfig {
    /// Always `shamir`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unseal keys handed out.
    pub secret_shares: u8,
    /// Unseal keys needed.
    pub secret_threshold: u8,
}

/// What `sys/init` returns: shown once, never stored.
pub struct InitResult {
    /// The unseal keys.
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    /// The initial root token.
    pub root_token: Zeroizing<String>,
}

/// `sys/seal-status`.
#[derive(Clone, Debug, Serialize)]
pub struct SealStatus {
    /// `shamir`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether `sys/init` ran.
    pub initialized: bool,
    /// Whether the vault is sealed.
    pub sealed: bool,
    /// Threshold.
    pub t: u8,
    /// Shares.
    pub n: u8,
    /// Unseal keys submitted so far.
    pub progress: u8,
    /// Identifies the current unseal attempt (empty when none).
    pub nonce: String,
    /// Server version.
    pub version: String,
    /// Always false (no seal migration).
    pub migration: bool,
    /// Always false (no recovery seal).
    pub recovery_seal: bool,
    /// The storage backend's name.
    pub storage_type: String,
}

/// A token's stored entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Policies attached.
    pub policies: Vec<String>,
    /// The token's accessor (safe to log).
    pub accessor: String,
    /// Creation time, seconds since the epoch.
    pub creation_time: u64,
    /// The hash of the token (its storage id); filled in on lookup.
    #[serde(default)]
    pub id_hash: String,
    /// The parent's hash; `None` for an orphan.
    #[serde(default)]
    pub parent: Option<String>,
    /// Lifetime in seconds (0: none).
    #[serde(default)]
    pub ttl: u64,
    /// When it expires, seconds since the epoch (0: never).
    #[serde(default)]
    pub expire_time: u64,
    /// Uses left (0: unlimited).
    #[serde(default)]
    pub num_uses: u64,
    /// A name for humans.
    #[serde(default)]
    pub display_name: String,
    /// Free metadata.
    #[serde(default)]
    pub meta: std::collections::BTreeMap<String, String>,
}

struct Unsealed {
    root: Zeroizing<Vec<u8>>,
    keyring: Keyring,
    /// Parsed forms of hot configuration (mount table, policies), dropped
    /// with the keyring on seal.
    cache: std::sync::RwLock<Cache>,
}

/// Decrypted-and-parsed values by storage path. Every write or delete
/// through [`Vault`] evicts its path and bumps `generation`, so a value
/// parsed while a write raced it is never stored.
#[derive(Default)]
struct Cache {
    generation: u64,
    values: std::collections::HashMap<String, Arc<dyn std::any::Any + Send + Sync>>,
}

#[derive(Default)]
struct Progress {
    keys: Vec<Zeroizing<Vec<u8>>>,
    nonce: String,
}

/// The vault core over a physical backend.
pub struct Vault {
    storage: Arc<dyn Physical>,
    storage_type: String,
    state: RwLock<Option<Unsealed>>,
    progress: std::sync::Mutex<Progress>,
    /// The audit devices (open while unsealed).
    pub audit: crate::audit::Devices,
    /// Striped locks serialising read-modify-write cycles on one path.
    locks: Vec<std::sync::Mutex<()>>,
}

/// At most this many parsed values are cached.
const PARSED_CACHE_ENTRIES: usize = 65_536;

/// Number of lock stripes.
const LOCK_STRIPES: usize = 64;

fn random_b64url(n: usize) -> Result<String, Error> {
    let mut b = Zeroizing::new(vec![0u8; n]);
    citadel_crypto::random::fill(&mut b).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(&b[..]))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses an unseal key given as hex or base64 (as Vault accepts both).
pub fn parse_key(s: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let s = s.trim();
    if let Ok(b) = hex::decode(s) {
        if !b.is_empty() {
            return Ok(Zeroizing::new(b));
        }
    }
    B64.decode(s)
        .ok()
        .filter(|b| !b.is_empty())
        .map(Zeroizing::new)
        .ok_or_else(|| Error::BadRequest("'key' must be a valid hex or base64 string".into()))
}

impl Vault {
    /// A vault over `storage` (named `storage_type` in status output).
    pub fn new(storage: Arc<dyn Physical>, storage_type: &str) -> Self {
        Self {
            storage,
            storage_type: storage_type.to_string(),
            state: RwLock::new(None),
            progress: Default::default(),
            audit: Default::default(),
            locks: (0..LOCK_STRIPES)
                .map(|_| std::sync::Mutex::new(()))
                .collect(),
        }
    }

    fn seal_config(&self) -> Result<Option<SealConfig>, Error> {
        match self.storage.get(SEAL_CONFIG)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("seal config: {e}"))),
        }
    }

    /// Whether `sys/init` ran.
    pub fn is_initialized(&self) -> Result<bool, Error> {
        Ok(self.seal_config()?.is_some())
    }

    /// Whether the vault is sealed.
    pub fn is_sealed(&self) -> bool {
        self.state.read().map(|s| s.is_none()).unwrap_or(true)
    }

    /// Initialises: a new root key split into `shares` unseal keys
    /// (`threshold` needed), a keyring, and a root token. The vault stays
    /// sealed.
    pub fn init(&self, shares: u8, threshold: u8) -> Result<InitResult, Error> {
        let bad = |m: &str| {
            Err(Error::BadRequest(format!(
                "invalid seal configuration: {m}"
            )))
        };
        if shares < 1 {
            return bad("shares must be at least one");
        }
        if threshold < 1 {
            return bad("threshold must be at least one");
        }
        if shares > 1 && threshold == 1 {
            return bad("threshold must be greater than one for multiple shares");
        }
        if threshold > shares {
            return bad("threshold cannot be larger than shares");
        }
        if self.is_initialized()? {
            return Err(Error::BadRequest("Vault is already initialized".into()));
        }
        let root = citadel_crypto::random::secret_array::<32>()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let keys = if shares == 1 {
            vec![Zeroizing::new(root.to_vec())]
        } else {
            shamir::split(&root[..], shares, threshold)?
        };
        let keyring = Keyring::new()?;
        let root_token = new_token()?;
        // The keyring first, the seal config last: a crash in between leaves
        // an uninitialised vault, never one whose keys were lost.
        self.storage.put(
            KEYRING,
            &seal_blob(&root[..], 0, KEYRING, &keyring.to_bytes())?,
        )?;
        let entry = TokenEntry {
            policies: vec!["root".into()],
            accessor: random_b64url(18)?,
            creation_time: now(),
            display_name: "root".into(),
            ..Default::default()
        };
        let hash = token_hash(&root_token);
        for (path, value) in [
            (
                format!("{TOKENS}{hash}"),
                serde_json::to_vec(&entry).map_err(|e| Error::Internal(e.to_string()))?,
            ),
            (
                format!("sys/token/accessor/{}", entry.accessor),
                hash.into_bytes(),
            ),
        ] {
            self.storage.put(&path, &keyring.seal(&path, &value)?)?;
        }
        let config = SealConfig {
            kind: "shamir".into(),
            secret_shares: shares,
            secret_threshold: threshold,
        };
        let json = serde_json::to_vec(&config).map_err(|e| Error::Internal(e.to_string()))?;
        self.storage.put(SEAL_CONFIG, &json)?;
        Ok(InitResult { keys, root_token })
    }

    /// The seal status.
    pub fn seal_status(&self) -> Result<SealStatus, Error> {
        let config = self.seal_config()?;
        let progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        Ok(SealStatus {
            kind: "shamir".into(),
            initialized: config.is_some(),
            sealed: self.is_sealed(),
            t: config.as_ref().map(|c| c.secret_threshold).unwrap_or(0),
            n: config.as_ref().map(|c| c.secret_shares).unwrap_or(0),
            progress: progress.keys.len() as u8,
            nonce: progress.nonce.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            migration: false,
            recovery_seal: false,
            storage_type: self.storage_type.clone(),
        })
    }

    /// Submits one unseal key (or resets the attempt). Unseals once the
    /// threshold is reached and the keys open the keyring.
    pub fn unseal(&self, key: Option<&str>, reset: bool) -> Result<SealStatus, Error> {
        let config = self.seal_config()?.ok_or(Error::NotInitialized)?;
        if reset {
            if !self.is_sealed() {
                return Err(Error::BadRequest("vault is unsealed".into()));
            }
            *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = Progress::default();
            return self.seal_status();
        }
        let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
            Error::BadRequest(
                "'key' must be specified in request body as JSON, or 'reset' set to true".into(),
            )
        })?;
        if !self.is_sealed() {
            return self.seal_status();
        }
        let key = parse_key(key)?;
        let root = {
            let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            if p.keys.iter().any(|k| k[..] == key[..]) {
                drop(p);
                return self.seal_status();
            }
            if p.keys.is_empty() {
                p.nonce = uuid()?;
            }
            p.keys.push(key);
            if p.keys.len() < usize::from(config.secret_threshold) {
                drop(p);
                return self.seal_status();
            }
            let keys = std::mem::take(&mut *p);
            if config.secret_shares == 1 {
                keys.keys.into_iter().next().unwrap_or_default()
            } else {
                shamir::combine(&keys.keys)?
            }
        };
        let blob = self
            .storage
            .get(KEYRING)?
            .ok_or_else(|| Error::Corrupt("the keyring is missing".into()))?;
        let keyring = open_blob(&root[..], KEYRING, &blob)
            .map_err(|_| Error::BadRequest("the unseal keys do not open this vault (wrong or mismatched keys); the attempt was reset".into()))
            .and_then(|b| Keyring::from_bytes(&b))?;
        *self
            .state
            .write()
            .map_err(|_| Error::Internal("lock".into()))? = Some(Unsealed {
            root,
            keyring,
            cache: Default::default(),
        });
        // Audit devices reopen with the vault; one that cannot is kept as
        // failed, so audited requests fail closed until it is fixed.
        self.audit.load(&self.audit_table()?);
        self.seal_status()
    }

    /// The configured audit devices.
    pub fn audit_table(
        &self,
    ) -> Result<std::collections::BTreeMap<String, crate::audit::Device>, Error> {
        match self.get(crate::audit::TABLE)? {
            None => Ok(Default::default()),
            Some(b) => {
                serde_json::from_slice(&b).map_err(|e| Error::Corrupt(format!("audit table: {e}")))
            }
        }
    }

    /// Stores the audit device table.
    pub fn set_audit_table(
        &self,
        t: &std::collections::BTreeMap<String, crate::audit::Device>,
    ) -> Result<(), Error> {
        let b = serde_json::to_vec(t).map_err(|e| Error::Internal(e.to_string()))?;
        self.put(crate::audit::TABLE, &b)
    }

    /// Seals: forgets the keyring (the keys are zeroized on drop).
    pub fn seal(&self) {
        self.audit.close_all();
        if let Ok(mut s) = self.state.write() {
            *s = None;
        }
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = Progress::default();
    }

    fn with_keyring<T>(&self, f: impl FnOnce(&Keyring) -> Result<T, Error>) -> Result<T, Error> {
        let s = self
            .state
            .read()
            .map_err(|_| Error::Internal("lock".into()))?;
        let u = s.as_ref().ok_or(Error::Sealed)?;
        f(&u.keyring)
    }

    /// Reads and decrypts a stored value.
    pub fn get(&self, path: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        self.with_keyring(|k| match self.storage.get(path)? {
            None => Ok(None),
            Some(b) => k.open(path, &b).map(Some),
        })
    }

    /// Holds the lock for `path` while the guard lives: a read-modify-write
    /// of one stored value (a KV secret's metadata, a transit key, a token's
    /// use count, the mount table) runs under it so concurrent writers do
    /// not lose each other's changes. Never take two at once.
    pub fn lock_path(&self, path: &str) -> std::sync::MutexGuard<'_, ()> {
        use std::hash::BuildHasher;
        static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        let h = KEYS.get_or_init(Default::default).hash_one(path);
        let i = (h % LOCK_STRIPES as u64) as usize;
        self.locks[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads a stored value through the cache of parsed values: `parse`
    /// runs on a miss (with the decrypted bytes, or `None` when absent) and
    /// its result is shared until the path is written or deleted. For
    /// small, hot, rarely written values only (mount table, policies).
    pub fn get_parsed<T: std::any::Any + Send + Sync>(
        &self,
        path: &str,
        parse: impl FnOnce(Option<&[u8]>) -> Result<T, Error>,
    ) -> Result<Arc<T>, Error> {
        let s = self
            .state
            .read()
            .map_err(|_| Error::Internal("lock".into()))?;
        let u = s.as_ref().ok_or(Error::Sealed)?;
        let generation = {
            let c = u.cache.read().map_err(|_| Error::Internal("lock".into()))?;
            if let Some(hit) = c.values.get(path) {
                if let Ok(t) = hit.clone().downcast::<T>() {
                    return Ok(t);
                }
            }
            c.generation
        };
        let raw = match self.storage.get(path)? {
            None => None,
            Some(b) => Some(u.keyring.open(path, &b)?),
        };
        let value = Arc::new(parse(raw.as_deref().map(|v| &v[..]))?);
        let mut c = u
            .cache
            .write()
            .map_err(|_| Error::Internal("lock".into()))?;
        if c.generation == generation {
            // Bounded: past the limit an arbitrary entry makes room.
            if c.values.len() >= PARSED_CACHE_ENTRIES {
                if let Some(k) = c.values.keys().next().cloned() {
                    c.values.remove(&k);
                }
            }
            c.values.insert(path.to_string(), value.clone());
        }
        Ok(value)
    }

    /// Evicts `path` from the parsed-value cache.
    fn evict(&self, u: &Unsealed, path: &str) {
        if let Ok(mut c) = u.cache.write() {
            c.generation += 1;
            c.values.remove(path);
        }
    }

    /// Encrypts and stores a value (durable on return).
    pub fn put(&self, path: &str, value: &[u8]) -> Result<(), Error> {
        let s = self
            .state
            .read()
            .map_err(|_| Error::Internal("lock".into()))?;
        let u = s.as_ref().ok_or(Error::Sealed)?;
        let r = self.storage.put(path, &u.keyring.seal(path, value)?);
        self.evict(u, path);
        r
    }

    /// Deletes a stored value.
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        let s = self
            .state
            .read()
            .map_err(|_| Error::Internal("lock".into()))?;
        let u = s.as_ref().ok_or(Error::Sealed)?;
        let r = self.storage.delete(path);
        self.evict(u, path);
        r
    }

    /// Lists the children of a storage prefix (names; folders end in `/`).
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.with_keyring(|_| self.storage.list(prefix))
    }

    /// Deletes everything under a prefix.
    pub fn delete_prefix(&self, prefix: &str) -> Result<(), Error> {
        for child in self.list(prefix)? {
            let full = format!("{prefix}{child}");
            if child.ends_with('/') {
                self.delete_prefix(&full)?;
            } else {
                self.delete(&full)?;
            }
        }
        Ok(())
    }

    /// Looks a token up; `None` if unknown or expired.
    pub fn lookup_token(&self, token: &str) -> Result<Option<TokenEntry>, Error> {
        if token.is_empty() {
            return Ok(None);
        }
        self.lookup_hash(&token_hash(token))
    }

    /// Looks a token up by its hash; `None` if unknown or expired.
    pub fn lookup_hash(&self, hash: &str) -> Result<Option<TokenEntry>, Error> {
        // Token entries hold hashes and policies, no secret: they go through
        // the parsed-value cache (every change to one is a write, which
        // evicts it; expiry is checked on every lookup).
        let cached = self.get_parsed(&format!("{TOKENS}{hash}"), |b| match b {
            None => Ok(None),
            Some(b) => serde_json::from_slice::<TokenEntry>(b)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("token entry: {e}"))),
        })?;
        let Some(e) = cached.as_ref() else {
            return Ok(None);
        };
        let mut e = e.clone();
        e.id_hash = hash.to_string();
        if e.expire_time != 0 && e.expire_time <= now() {
            crate::tokens::revoke(self, hash)?;
            return Ok(None);
        }
        Ok(Some(e))
    }

    /// Rotates the barrier keyring (`sys/rotate`): a new term encrypts new
    /// writes; older terms still decrypt. Returns the new term.
    pub fn rotate(&self) -> Result<u32, Error> {
        let mut s = self
            .state
            .write()
            .map_err(|_| Error::Internal("lock".into()))?;
        let u = s.as_mut().ok_or(Error::Sealed)?;
        let term = u.keyring.rotate()?;
        let blob = seal_blob(&u.root[..], 0, KEYRING, &u.keyring.to_bytes())?;
        self.storage.put(KEYRING, &blob)?;
        Ok(term)
    }

    /// The barrier's active term.
    pub fn term(&self) -> Result<u32, Error> {
        self.with_keyring(|k| Ok(k.term()))
    }
}

/// The storage id of a token: SHA-256 of it, hex. Tokens themselves are
/// never stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(citadel_crypto::hash::sha256(token.as_bytes()))
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    now()
}

/// A new random token string (192 bits).
pub fn new_token() -> Result<Zeroizing<String>, Error> {
    Ok(Zeroizing::new(format!("hvs.{}", random_b64url(24)?)))
}

/// A new random accessor.
pub fn new_accessor() -> Result<String, Error> {
    random_b64url(18)
}

/// A random identifier in UUID form (request ids, role ids, nonces).
pub fn uuid() -> Result<String, Error> {
    let b = citadel_crypto::random::array::<16>().map_err(|e| Error::Internal(e.to_string()))?;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Memory;

    #[test]
    fn parsed_values_are_cached_until_written_and_forgotten_on_seal() {
        let v = Vault::new(Arc::new(Memory::default()), "inmem");
        let r = v.init(1, 1).unwrap();
        v.unseal(Some(&hex::encode(&r.keys[0][..])), false).unwrap();
        let parses = std::sync::atomic::AtomicUsize::new(0);
        let read = || {
            v.get_parsed("sys/x", |b| {
                parses.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(b.map(<[u8]>::to_vec))
            })
            .unwrap()
        };
        assert_eq!(*read(), None);
        v.put("sys/x", b"one").unwrap();
        assert_eq!(read().as_deref(), Some(&b"one"[..]));
        assert_eq!(read().as_deref(), Some(&b"one"[..]));
        assert_eq!(
            parses.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "the second read hit the cache"
        );
        v.put("sys/x", b"two").unwrap();
        assert_eq!(read().as_deref(), Some(&b"two"[..]));
        v.delete("sys/x").unwrap();
        assert_eq!(*read(), None);
        v.seal();
        assert!(matches!(
            v.get_parsed("sys/x", |_| Ok(())),
            Err(Error::Sealed)
        ));
    }

    #[test]
    fn init_unseal_seal_cycle() {
        let v = Vault::new(Arc::new(Memory::default()), "inmem");
        assert!(!v.is_initialized().unwrap());
        assert!(v.init(3, 5).is_err());
        let r = v.init(5, 3).unwrap();
        assert_eq!(r.keys.len(), 5);
        assert!(v.init(5, 3).is_err(), "only once");
        assert!(v.is_sealed());
        assert!(matches!(v.lookup_token(&r.root_token), Err(Error::Sealed)));
        let hexes: Vec<String> = r.keys.iter().map(|k| hex::encode(&k[..])).collect();
        let s = v.unseal(Some(&hexes[4]), false).unwrap();
        assert_eq!((s.sealed, s.progress, s.t, s.n), (true, 1, 3, 5));
        v.unseal(Some(&B64.encode(&r.keys[1][..])), false).unwrap();
        let s = v.unseal(Some(&hexes[2]), false).unwrap();
        assert!(!s.sealed);
        assert_eq!(s.progress, 0);
        let t = v.lookup_token(&r.root_token).unwrap().unwrap();
        assert_eq!(t.policies, vec!["root"]);
        assert!(v.lookup_token("hvs.nope").unwrap().is_none());
        assert_eq!(v.rotate().unwrap(), 2);
        v.put("secret/x", b"after rotation").unwrap();
        v.seal();
        assert!(v.is_sealed());
        for k in &hexes[..3] {
            v.unseal(Some(k), false).unwrap();
        }
        assert_eq!(v.term().unwrap(), 2, "the rotated keyring was stored");
        assert_eq!(&v.get("secret/x").unwrap().unwrap()[..], b"after rotation");
        assert!(
            v.lookup_token(&r.root_token).unwrap().is_some(),
            "term 1 data opens"
        );
        v.seal();
        // Keys from another vault (valid shares, wrong secret) are refused
        // and the attempt resets.
        let other = Vault::new(Arc::new(Memory::default()), "inmem");
        let o = other.init(5, 3).unwrap();
        for k in &o.keys[..2] {
            v.unseal(Some(&hex::encode(&k[..])), false).unwrap();
        }
        assert!(v.unseal(Some(&hex::encode(&o.keys[2][..])), false).is_err());
        assert_eq!(v.seal_status().unwrap().progress, 0);
        assert!(v.is_sealed());
    }

    #[test]
    fn one_share_is_the_root_key() {
        let v = Vault::new(Arc::new(Memory::default()), "inmem");
        let r = v.init(1, 1).unwrap();
        assert_eq!(r.keys[0].len(), 32);
        assert!(
            !v.unseal(Some(&hex::encode(&r.keys[0][..])), false)
                .unwrap()
                .sealed
        );
    }
}
