//! The barrier: everything the vault stores is encrypted with AES-256-GCM
//! under a keyring of terms (`sys/rotate` adds one; old terms still
//! decrypt), and the seal state machine around it (init, unseal, seal).
//! The keyring is stored encrypted under the root key, which exists only in
//! memory while the vault is unsealed; the root key itself is never stored
//! (init hands it out as Shamir shares).
//!
//! Blob: `0x01 ‖ term (u32 BE) ‖ nonce (12) ‖ ciphertext ‖ tag`, with the
//! storage key as associated data, so a blob moved to another key fails to
//! decrypt. Every write also updates, in the same storage transaction, the
//! keyed digest of [`crate::integrity`], which unseal checks.
//!
//! Storage layout: `core/seal-config` (plain JSON: shares, threshold),
//! `core/keyring` (under the root key), `core/integrity`, and everything
//! else under the keyring.

use crate::error::{Error, internal};
use crate::integrity;
use crate::shamir;
use crate::storage::{Change, Physical};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
/// The plain seal configuration.
pub const SEAL_CONFIG: &str = "core/seal-config";
/// The keyring, under the root key.
pub const KEYRING: &str = "core/keyring";

/// Storage keys outside the digest of [`crate::integrity`]: the plain seal
/// configuration, the keyring (under the root key) and the digest record.
pub const UNDIGESTED: [&str; 3] = [SEAL_CONFIG, KEYRING, integrity::RECORD];

/// Whether `key` is covered by the storage digest (and writable through
/// the barrier).
pub fn digested(key: &str) -> bool {
    !UNDIGESTED.contains(&key)
}

/// Encrypts `plaintext` for storage at `path` under `key` (term `term`).
pub fn seal_blob(key: &[u8], term: u32, path: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    use citadel_crypto::aead::{AeadAlgorithm, AeadKey};
    let k = AeadKey::new(AeadAlgorithm::Aes256Gcm, key).map_err(internal)?;
    let nonce = citadel_crypto::random::array::<12>().map_err(internal)?;
    let ct = k
        .seal(&nonce, path.as_bytes(), plaintext)
        .map_err(internal)?;
    let mut out = Vec::with_capacity(17 + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// The term a blob was sealed under.
pub fn blob_term(blob: &[u8]) -> Result<u32, Error> {
    if blob.len() < 17 + 16 || blob[0] != VERSION {
        return Err(Error::Corrupt("a stored blob is malformed".into()));
    }
    Ok(u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]))
}

/// Decrypts a blob stored at `path`.
pub fn open_blob(key: &[u8], path: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    use citadel_crypto::aead::{AeadAlgorithm, AeadKey};
    blob_term(blob)?;
    let k = AeadKey::new(AeadAlgorithm::Aes256Gcm, key).map_err(internal)?;
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&blob[5..17]);
    k.open(&nonce, path.as_bytes(), &blob[17..])
        .map(Zeroizing::new)
        .map_err(|_| Error::Corrupt(format!("{path}: stored data does not authenticate")))
}

/// The keyring: every term's key (new data uses the newest), and two keys
/// that never rotate: the token key (storage ids of tokens and accessors
/// are HMACs under it) and the integrity key (the storage digest).
#[derive(Clone)]
pub struct Keyring {
    terms: Vec<Term>,
    token_key: Zeroizing<[u8; 32]>,
    integrity_key: Zeroizing<[u8; 32]>,
}

#[derive(Clone)]
struct Term {
    term: u32,
    key: Zeroizing<[u8; 32]>,
    installed: u64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    keys: Vec<StoredKey>,
    #[serde(default)]
    token_key: Option<String>,
    #[serde(default)]
    integrity_key: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    term: u32,
    key: String,
    time: u64,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn fresh_key() -> Result<Zeroizing<[u8; 32]>, Error> {
    citadel_crypto::random::secret_array::<32>().map_err(internal)
}

fn decode_key(s: &str, what: &str) -> Result<Zeroizing<[u8; 32]>, Error> {
    let raw = Zeroizing::new(
        B64.decode(s)
            .map_err(|_| Error::Corrupt(format!("keyring {what}")))?,
    );
    let key: [u8; 32] = raw[..]
        .try_into()
        .map_err(|_| Error::Corrupt(format!("keyring {what} length")))?;
    Ok(Zeroizing::new(key))
}

impl Keyring {
    /// A keyring with one fresh term and fresh token and integrity keys.
    pub fn new() -> Result<Self, Error> {
        Ok(Self {
            terms: vec![Term {
                term: 1,
                key: fresh_key()?,
                installed: now(),
            }],
            token_key: fresh_key()?,
            integrity_key: fresh_key()?,
        })
    }

    /// The active term.
    pub fn term(&self) -> u32 {
        self.terms.last().map(|t| t.term).unwrap_or(0)
    }

    /// When the active term was installed (seconds since the epoch).
    pub fn installed(&self) -> u64 {
        self.terms.last().map(|t| t.installed).unwrap_or(0)
    }

    /// Adds a term and makes it active; returns it.
    pub fn rotate(&mut self) -> Result<u32, Error> {
        let term = self
            .term()
            .checked_add(1)
            .ok_or_else(|| Error::Internal("the keyring term would overflow".into()))?;
        self.terms.push(Term {
            term,
            key: fresh_key()?,
            installed: now(),
        });
        Ok(term)
    }

    /// The key under which token and accessor storage ids are HMACs.
    pub fn token_key(&self) -> &[u8] {
        &self.token_key[..]
    }

    fn integrity_key(&self) -> &[u8] {
        &self.integrity_key[..]
    }

    /// Encrypts for storage at `path` with the active term.
    pub fn seal(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let t = self
            .terms
            .last()
            .ok_or_else(|| Error::Internal("empty keyring".into()))?;
        seal_blob(&t.key[..], t.term, path, plaintext)
    }

    /// Decrypts a blob stored at `path`, whatever its term.
    pub fn open(&self, path: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let term = blob_term(blob)?;
        let t =
            self.terms.iter().find(|t| t.term == term).ok_or_else(|| {
                Error::Corrupt(format!("{path}: sealed under unknown term {term}"))
            })?;
        open_blob(&t.key[..], path, blob)
    }

    /// Serialises (for encryption under the root key).
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let s = Stored {
            keys: self
                .terms
                .iter()
                .map(|t| StoredKey {
                    term: t.term,
                    key: B64.encode(&t.key[..]),
                    time: t.installed,
                })
                .collect(),
            token_key: Some(B64.encode(&self.token_key[..])),
            integrity_key: Some(B64.encode(&self.integrity_key[..])),
        };
        serde_json::to_vec(&s).map(Zeroizing::new).map_err(internal)
    }

    /// Parses what [`to_bytes`](Self::to_bytes) wrote; also says whether
    /// keys were missing (a keyring written before they existed) and were
    /// generated, so the caller stores it again.
    pub fn from_bytes(b: &[u8]) -> Result<(Self, bool), Error> {
        let s: Stored =
            serde_json::from_slice(b).map_err(|e| Error::Corrupt(format!("keyring: {e}")))?;
        let mut terms = Vec::new();
        for k in &s.keys {
            terms.push(Term {
                term: k.term,
                key: decode_key(&k.key, "key")?,
                installed: k.time,
            });
        }
        terms.sort_by_key(|t| t.term);
        if terms.is_empty() {
            return Err(Error::Corrupt("empty keyring".into()));
        }
        let mut upgraded = false;
        let mut extra = |v: &Option<String>, what: &str| -> Result<Zeroizing<[u8; 32]>, Error> {
            match v {
                Some(s) => decode_key(s, what),
                None => {
                    upgraded = true;
                    fresh_key()
                }
            }
        };
        let token_key = extra(&s.token_key, "token key")?;
        let integrity_key = extra(&s.integrity_key, "integrity key")?;
        Ok((
            Self {
                terms,
                token_key,
                integrity_key,
            },
            upgraded,
        ))
    }
}

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
}

/// The seal state as `sys/seal-status` shows it.
#[derive(Clone, Debug)]
pub struct SealStatus {
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
}

/// What an unseal attempt did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsealing {
    /// More keys are needed (or the vault was unsealed already).
    Progress,
    /// This key completed the threshold: the vault is now unsealed.
    Unsealed,
}

/// How unseal treats a storage digest that does not match the rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnTamper {
    /// Refuse to unseal (the default).
    #[default]
    Refuse,
    /// Accept the rows as they are: record a new digest (the operator
    /// restored or repaired the storage on purpose).
    Accept,
}

struct Unsealed {
    root: Zeroizing<Vec<u8>>,
    keyring: Keyring,
    /// Parsed forms of hot configuration (mount table, policies, token
    /// entries), dropped with the keyring on seal.
    cache: RwLock<Cache>,
    /// The storage digest and epoch; its lock serialises writes.
    integrity: Mutex<integrity::Record>,
}

/// Decrypted-and-parsed values by storage path. Every write or delete
/// evicts its path and bumps `generation`, so a value parsed while a write
/// raced it is never stored.
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

/// At most this many parsed values are cached.
const PARSED_CACHE_ENTRIES: usize = 65_536;
/// A held path lock (see [`Barrier::lock_path`]).
pub struct PathGuard<'a> {
    _guard: MutexGuard<'a, ()>,
    held: &'static std::thread::LocalKey<std::cell::Cell<bool>>,
}

impl Drop for PathGuard<'_> {
    fn drop(&mut self) {
        self.held.with(|h| h.set(false));
    }
}

thread_local! {
    static HOLDS_PATH_LOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static HOLDS_SLOW_LOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The stripe of `locks` that guards `path` (a keyed hash, so clients
/// cannot pick names that share a stripe on purpose). A thread holds at
/// most one stripe of a set: two could be the same stripe, and a second
/// lock of it never returns. Debug builds (every test) check it.
fn stripe<'a>(
    locks: &'a [Mutex<()>],
    held: &'static std::thread::LocalKey<std::cell::Cell<bool>>,
    path: &str,
) -> PathGuard<'a> {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    debug_assert!(
        !held.with(std::cell::Cell::get),
        "two path locks of one set held at once (taking {path})"
    );
    let h = KEYS.get_or_init(Default::default).hash_one(path);
    let guard = lock(&locks[(h % locks.len() as u64) as usize]);
    held.with(|h| h.set(true));
    PathGuard {
        _guard: guard,
        held,
    }
}

/// Number of path lock stripes.
const LOCK_STRIPES: usize = 64;
/// Keys deleted per storage transaction by [`Barrier::delete_prefix`].
const DELETE_BATCH: usize = 256;

/// One change through the barrier: a value to seal and store, or a delete.
#[derive(Clone, Copy, Debug)]
pub enum Write<'a> {
    /// Store this plaintext at this path.
    Put(&'a str, &'a [u8]),
    /// Delete this path.
    Delete(&'a str),
}

/// The encrypted store and its seal state.
pub struct Barrier {
    storage: Arc<dyn Physical>,
    storage_type: String,
    state: RwLock<Option<Unsealed>>,
    progress: Mutex<Progress>,
    /// Serialises init, unseal, seal and rotate.
    transition: Mutex<()>,
    locks: Vec<Mutex<()>>,
    /// Stripes for locks held during slow work (password hashing), apart
    /// from `locks`, so that no storage write waits on them.
    slow_locks: Vec<Mutex<()>>,
    /// The epoch of the last committed write batch, shared with whoever
    /// anchors it elsewhere (the audit devices).
    epoch: Arc<AtomicU64>,
    on_tamper: OnTamper,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
        .ok_or_else(|| Error::bad("'key' must be a valid hex or base64 string"))
}

impl Barrier {
    /// A barrier over `storage` (named `storage_type` in status output).
    pub fn new(storage: Arc<dyn Physical>, storage_type: &str, on_tamper: OnTamper) -> Self {
        Self {
            storage,
            storage_type: storage_type.to_string(),
            state: RwLock::new(None),
            progress: Default::default(),
            transition: Mutex::new(()),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            slow_locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            epoch: Arc::new(AtomicU64::new(0)),
            on_tamper,
        }
    }

    /// The storage backend's name.
    pub fn storage_type(&self) -> &str {
        &self.storage_type
    }

    /// The epoch of the last committed write batch (0 while sealed).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The shared epoch counter (see [`Barrier::epoch`]).
    pub fn epoch_counter(&self) -> Arc<AtomicU64> {
        self.epoch.clone()
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
    /// (`threshold` needed) and a keyring; `initial` receives the keyring
    /// and returns the first records to store (the root token). Everything
    /// is written in one storage transaction, and under the transition
    /// lock: of two concurrent calls, the second finds the vault
    /// initialised. The vault stays sealed.
    pub fn init(
        &self,
        shares: u8,
        threshold: u8,
        initial: impl FnOnce(&Keyring) -> Result<Vec<(String, Zeroizing<Vec<u8>>)>, Error>,
    ) -> Result<InitResult, Error> {
        let bad = |m: &str| Err(Error::bad(format!("invalid seal configuration: {m}")));
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
        let _t = lock(&self.transition);
        if self.is_initialized()? {
            return Err(Error::bad("Vault is already initialized"));
        }
        let root = citadel_crypto::random::secret_array::<32>().map_err(internal)?;
        let keys = if shares == 1 {
            vec![Zeroizing::new(root.to_vec())]
        } else {
            shamir::split(&root[..], shares, threshold)?
        };
        let keyring = Keyring::new()?;
        let keyring_blob = seal_blob(&root[..], 0, KEYRING, &keyring.to_bytes()?)?;
        let mut sealed: Vec<(String, Vec<u8>)> = Vec::new();
        let mut record = integrity::Record::default();
        for (path, value) in initial(&keyring)? {
            let blob = keyring.seal(&path, &value)?;
            integrity::fold(
                &mut record.digest,
                &integrity::term(keyring.integrity_key(), &path, &blob),
            );
            sealed.push((path, blob));
        }
        record.epoch = 1;
        let record_blob = keyring.seal(
            integrity::RECORD,
            &serde_json::to_vec(&record).map_err(internal)?,
        )?;
        let config = serde_json::to_vec(&SealConfig {
            kind: "shamir".into(),
            secret_shares: shares,
            secret_threshold: threshold,
        })
        .map_err(internal)?;
        let mut changes = vec![Change::Put(KEYRING, &keyring_blob)];
        changes.extend(sealed.iter().map(|(p, b)| Change::Put(p, b)));
        changes.push(Change::Put(integrity::RECORD, &record_blob));
        // The seal configuration marks the vault initialised: last.
        changes.push(Change::Put(SEAL_CONFIG, &config));
        self.storage.write(&changes)?;
        Ok(InitResult { keys })
    }

    /// The seal status.
    pub fn seal_status(&self) -> Result<SealStatus, Error> {
        let config = self.seal_config()?;
        let progress = lock(&self.progress);
        Ok(SealStatus {
            initialized: config.is_some(),
            sealed: self.is_sealed(),
            t: config.as_ref().map(|c| c.secret_threshold).unwrap_or(0),
            n: config.as_ref().map(|c| c.secret_shares).unwrap_or(0),
            progress: u8::try_from(progress.keys.len()).unwrap_or(u8::MAX),
            nonce: progress.nonce.clone(),
        })
    }

    /// Forgets the unseal keys entered so far.
    pub fn reset_unseal(&self) -> Result<(), Error> {
        self.seal_config()?.ok_or(Error::NotInitialized)?;
        if !self.is_sealed() {
            return Err(Error::bad("vault is unsealed"));
        }
        *lock(&self.progress) = Progress::default();
        Ok(())
    }

    /// Submits one unseal key. Unseals once the threshold is reached, the
    /// keys open the keyring and the storage digest matches its rows.
    pub fn unseal(&self, key: &str) -> Result<Unsealing, Error> {
        let config = self.seal_config()?.ok_or(Error::NotInitialized)?;
        let _t = lock(&self.transition);
        if !self.is_sealed() {
            return Ok(Unsealing::Progress);
        }
        let key = parse_key(key)?;
        let root = {
            let mut p = lock(&self.progress);
            if p.keys.iter().any(|k| k[..] == key[..]) {
                return Ok(Unsealing::Progress);
            }
            if p.keys.is_empty() {
                p.nonce = crate::ids::uuid()?;
            }
            // Bounded: never more keys than the threshold are held.
            p.keys.push(key);
            if p.keys.len() < usize::from(config.secret_threshold) {
                return Ok(Unsealing::Progress);
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
        let plain = open_blob(&root[..], KEYRING, &blob).map_err(|_| {
            Error::bad(
                "the unseal keys do not open this vault (wrong or mismatched keys); the attempt was reset",
            )
        })?;
        let (keyring, upgraded) = Keyring::from_bytes(&plain)?;
        if upgraded {
            let blob = seal_blob(&root[..], 0, KEYRING, &keyring.to_bytes()?)?;
            self.storage.put(KEYRING, &blob)?;
        }
        // A keyring that already held the integrity key has a digest
        // record beside it; only a keyring written before the digest
        // existed may come without one.
        let record = self.check_integrity(&keyring, !upgraded)?;
        self.epoch.store(record.epoch, Ordering::Release);
        *self
            .state
            .write()
            .map_err(|_| Error::Internal("lock".into()))? = Some(Unsealed {
            root,
            keyring,
            cache: Default::default(),
            integrity: Mutex::new(record),
        });
        Ok(Unsealing::Unsealed)
    }

    /// Recomputes the storage digest from the rows and compares it with the
    /// sealed record (see [`crate::integrity`]).
    fn check_integrity(
        &self,
        keyring: &Keyring,
        record_required: bool,
    ) -> Result<integrity::Record, Error> {
        let mut digest = [0u8; 32];
        let mut rows = 0u64;
        self.storage.scan(&mut |k, v| {
            if digested(k) {
                integrity::fold(&mut digest, &integrity::term(keyring.integrity_key(), k, v));
                rows += 1;
            }
            Ok(())
        })?;
        let stored = match self.storage.get(integrity::RECORD)? {
            Some(b) => Some(keyring.open(integrity::RECORD, &b).and_then(|p| {
                serde_json::from_slice::<integrity::Record>(&p)
                    .map_err(|e| Error::Corrupt(format!("integrity record: {e}")))
            })?),
            None => None,
        };
        match stored {
            Some(r) if r.digest == digest => Ok(r),
            None if record_required && self.on_tamper == OnTamper::Refuse => Err(Error::Corrupt(
                "storage integrity check failed: the digest record (core/integrity) is missing, so rows changed outside the vault cannot be told from the rest; the vault stays sealed. Restore the storage from a backup, or start the server with --accept-storage-changes to accept the rows as they are".into(),
            )),
            Some(r) if self.on_tamper == OnTamper::Refuse => Err(Error::Corrupt(format!(
                "storage integrity check failed: the {rows} stored rows do not match the digest sealed at epoch {} (rows were restored to older versions, deleted, brought back or added outside the vault); the vault stays sealed. Restore the storage from a backup, or start the server with --accept-storage-changes to accept the rows as they are",
                r.epoch
            ))),
            other => {
                // No record (a vault created before the digest existed), or
                // the operator accepts the rows: record them as they are.
                let record = integrity::Record {
                    epoch: other.map(|r| r.epoch).unwrap_or(0) + 1,
                    digest,
                };
                let blob = keyring.seal(
                    integrity::RECORD,
                    &serde_json::to_vec(&record).map_err(internal)?,
                )?;
                self.storage.put(integrity::RECORD, &blob)?;
                Ok(record)
            }
        }
    }

    /// Seals: forgets the keyring (its keys are zeroized on drop) and the
    /// unseal keys entered so far.
    pub fn seal(&self) {
        let _t = lock(&self.transition);
        if let Ok(mut s) = self.state.write() {
            *s = None;
        }
        *lock(&self.progress) = Progress::default();
    }

    fn unsealed<T>(&self, f: impl FnOnce(&Unsealed) -> Result<T, Error>) -> Result<T, Error> {
        let s = self
            .state
            .read()
            .map_err(|_| Error::Internal("lock".into()))?;
        let u = s.as_ref().ok_or(Error::Sealed)?;
        f(u)
    }

    /// Runs `f` with the keyring (for HMACs under the token key).
    pub fn with_keyring<T>(
        &self,
        f: impl FnOnce(&Keyring) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.unsealed(|u| f(&u.keyring))
    }

    /// Reads and decrypts a stored value.
    pub fn get(&self, path: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        self.unsealed(|u| match self.storage.get(path)? {
            None => Ok(None),
            Some(b) => u.keyring.open(path, &b).map(Some),
        })
    }

    /// Holds the lock for `path` while the guard lives: a read-modify-write
    /// of one stored value (a KV secret's metadata, a transit key, a token's
    /// use count, the mount table) runs under it so concurrent writers do
    /// not lose each other's changes. Never take two at once.
    pub fn lock_path(&self, path: &str) -> PathGuard<'_> {
        stripe(&self.locks, &HOLDS_PATH_LOCK, path)
    }

    /// Like [`Barrier::lock_path`], for locks held during slow work (a
    /// login's password hash), on stripes no storage write uses.
    pub fn lock_slow(&self, path: &str) -> PathGuard<'_> {
        stripe(&self.slow_locks, &HOLDS_SLOW_LOCK, path)
    }

    /// Reads a stored value through the cache of parsed values: `parse`
    /// runs on a miss (with the decrypted bytes, or `None` when absent) and
    /// its result is shared until the path is written or deleted. For
    /// small, hot, rarely written values only.
    pub fn get_parsed<T: std::any::Any + Send + Sync>(
        &self,
        path: &str,
        parse: impl FnOnce(Option<&[u8]>) -> Result<T, Error>,
    ) -> Result<Arc<T>, Error> {
        self.unsealed(|u| {
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
                if c.values.len() >= PARSED_CACHE_ENTRIES {
                    if let Some(k) = c.values.keys().next().cloned() {
                        c.values.remove(&k);
                    }
                }
                c.values.insert(path.to_string(), value.clone());
            }
            Ok(value)
        })
    }

    /// Applies `writes` in one storage transaction (durable on return),
    /// with the storage digest and epoch updated in the same transaction.
    pub fn write(&self, writes: &[Write<'_>]) -> Result<(), Error> {
        if writes.is_empty() {
            return Ok(());
        }
        self.unsealed(|u| {
            for w in writes {
                let p = match w {
                    Write::Put(p, _) | Write::Delete(p) => p,
                };
                if !digested(p) {
                    return Err(Error::Internal(format!("{p} is not writable")));
                }
            }
            let mut record = lock(&u.integrity);
            let mut next = *record;
            let k = u.keyring.integrity_key();
            let mut blobs: Vec<(&str, Option<Vec<u8>>)> = Vec::with_capacity(writes.len());
            for w in writes {
                let (path, value) = match *w {
                    Write::Put(p, v) => (p, Some(v)),
                    Write::Delete(p) => (p, None),
                };
                // The row as it is now: written earlier in this batch, or
                // stored.
                let old = match blobs.iter().rev().find(|(p, _)| *p == path) {
                    Some((_, b)) => b.clone(),
                    None => self.storage.get(path)?,
                };
                if let Some(old) = &old {
                    integrity::fold(&mut next.digest, &integrity::term(k, path, old));
                }
                let new = value.map(|v| u.keyring.seal(path, v)).transpose()?;
                if let Some(new) = &new {
                    integrity::fold(&mut next.digest, &integrity::term(k, path, new));
                }
                blobs.push((path, new));
            }
            next.epoch += 1;
            let record_blob = u.keyring.seal(
                integrity::RECORD,
                &serde_json::to_vec(&next).map_err(internal)?,
            )?;
            let mut changes: Vec<Change<'_>> = blobs
                .iter()
                .map(|(p, b)| match b {
                    Some(b) => Change::Put(p, b),
                    None => Change::Delete(p),
                })
                .collect();
            changes.push(Change::Put(integrity::RECORD, &record_blob));
            let r = self.storage.write(&changes);
            if let Ok(mut c) = u.cache.write() {
                c.generation += 1;
                for (p, _) in &blobs {
                    c.values.remove(*p);
                }
            }
            r?;
            *record = next;
            self.epoch.store(next.epoch, Ordering::Release);
            Ok(())
        })
    }

    /// Whether unseal accepts storage that fails its checks.
    pub fn on_tamper(&self) -> OnTamper {
        self.on_tamper
    }

    /// Raises the storage epoch to at least `to` (after the operator
    /// accepted storage older than an anchor).
    pub fn raise_epoch(&self, to: u64) -> Result<(), Error> {
        self.unsealed(|u| {
            let mut record = lock(&u.integrity);
            if record.epoch >= to {
                return Ok(());
            }
            let next = integrity::Record {
                epoch: to,
                digest: record.digest,
            };
            let blob = u.keyring.seal(
                integrity::RECORD,
                &serde_json::to_vec(&next).map_err(internal)?,
            )?;
            self.storage.put(integrity::RECORD, &blob)?;
            *record = next;
            self.epoch.store(to, Ordering::Release);
            Ok(())
        })
    }

    /// Encrypts and stores a value (durable on return).
    pub fn put(&self, path: &str, value: &[u8]) -> Result<(), Error> {
        self.write(&[Write::Put(path, value)])
    }

    /// Deletes a stored value.
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        self.write(&[Write::Delete(path)])
    }

    /// Lists the children of a storage prefix (names; folders end in `/`).
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.unsealed(|_| self.storage.list(prefix))
    }

    /// Every key under `prefix`, walked without recursion.
    pub fn keys_under(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut dirs = vec![prefix.to_string()];
        while let Some(dir) = dirs.pop() {
            for child in self.list(&dir)? {
                let full = format!("{dir}{child}");
                if child.ends_with('/') {
                    dirs.push(full);
                } else {
                    out.push(full);
                }
            }
        }
        Ok(out)
    }

    /// Deletes everything under a prefix, in batches, without recursion.
    pub fn delete_prefix(&self, prefix: &str) -> Result<(), Error> {
        let keys = self.keys_under(prefix)?;
        for chunk in keys.chunks(DELETE_BATCH) {
            let writes: Vec<Write<'_>> = chunk.iter().map(|k| Write::Delete(k)).collect();
            self.write(&writes)?;
        }
        Ok(())
    }

    /// Rotates the keyring (`sys/rotate`): a new term encrypts new writes;
    /// older terms still decrypt. The new keyring is built on a copy and
    /// stored before it replaces the live one, so a failed write leaves the
    /// vault as it was. Returns the new term.
    pub fn rotate(&self) -> Result<u32, Error> {
        let _t = lock(&self.transition);
        let mut s = self
            .state
            .write()
            .map_err(|_| Error::Internal("lock".into()))?;
        let u = s.as_mut().ok_or(Error::Sealed)?;
        let mut next = u.keyring.clone();
        let term = next.rotate()?;
        let blob = seal_blob(&u.root[..], 0, KEYRING, &next.to_bytes()?)?;
        self.storage.put(KEYRING, &blob)?;
        u.keyring = next;
        Ok(term)
    }

    /// The active term and when it was installed.
    pub fn key_status(&self) -> Result<(u32, u64), Error> {
        self.with_keyring(|k| Ok((k.term(), k.installed())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Memory;

    #[test]
    fn blobs_are_bound_to_their_path_and_old_terms_still_open() {
        let mut k = Keyring::new().unwrap();
        let b1 = k.seal("secret/a", b"one").unwrap();
        assert!(k.open("secret/b", &b1).is_err(), "moved blob");
        k.rotate().unwrap();
        let b2 = k.seal("secret/a", b"two").unwrap();
        assert_eq!(blob_term(&b2).unwrap(), 2);
        let (k2, upgraded) = Keyring::from_bytes(&k.to_bytes().unwrap()).unwrap();
        assert!(!upgraded);
        assert_eq!(&k2.open("secret/a", &b1).unwrap()[..], b"one");
        assert_eq!(&k2.open("secret/a", &b2).unwrap()[..], b"two");
        assert_eq!(k2.token_key(), k.token_key());
        let mut bad = b2.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(k2.open("secret/a", &bad).is_err());
    }

    fn unsealed(storage: Arc<dyn Physical>, on_tamper: OnTamper) -> (Barrier, String) {
        let b = Barrier::new(storage, "inmem", on_tamper);
        let r = b.init(1, 1, |_| Ok(vec![])).unwrap();
        let key = hex::encode(&r.keys[0][..]);
        assert_eq!(b.unseal(&key).unwrap(), Unsealing::Unsealed);
        (b, key)
    }

    #[test]
    fn init_unseal_seal_rotate() {
        let b = Barrier::new(Arc::new(Memory::default()), "inmem", OnTamper::Refuse);
        assert!(!b.is_initialized().unwrap());
        assert!(b.init(3, 5, |_| Ok(vec![])).is_err());
        let r = b
            .init(5, 3, |_| {
                Ok(vec![("sys/first".into(), Zeroizing::new(b"1".to_vec()))])
            })
            .unwrap();
        assert_eq!(r.keys.len(), 5);
        assert!(b.init(5, 3, |_| Ok(vec![])).is_err(), "only once");
        assert!(b.is_sealed());
        assert!(matches!(b.get("sys/first"), Err(Error::Sealed)));
        let hexes: Vec<String> = r.keys.iter().map(|k| hex::encode(&k[..])).collect();
        assert_eq!(b.unseal(&hexes[4]).unwrap(), Unsealing::Progress);
        let s = b.seal_status().unwrap();
        assert_eq!((s.sealed, s.progress, s.t, s.n), (true, 1, 3, 5));
        b.unseal(&B64.encode(&r.keys[1][..])).unwrap();
        assert_eq!(b.unseal(&hexes[2]).unwrap(), Unsealing::Unsealed);
        assert_eq!(&b.get("sys/first").unwrap().unwrap()[..], b"1");
        assert_eq!(b.rotate().unwrap(), 2);
        b.put("secret/x", b"after rotation").unwrap();
        b.seal();
        for k in &hexes[..3] {
            b.unseal(k).unwrap();
        }
        assert_eq!(
            b.key_status().unwrap().0,
            2,
            "the rotated keyring was stored"
        );
        assert_eq!(&b.get("secret/x").unwrap().unwrap()[..], b"after rotation");
        b.seal();
        // Keys from another vault (valid shares, wrong secret) are refused
        // and the attempt resets.
        let other = Barrier::new(Arc::new(Memory::default()), "inmem", OnTamper::Refuse);
        let o = other.init(5, 3, |_| Ok(vec![])).unwrap();
        for k in &o.keys[..2] {
            b.unseal(&hex::encode(&k[..])).unwrap();
        }
        assert!(b.unseal(&hex::encode(&o.keys[2][..])).is_err());
        assert_eq!(b.seal_status().unwrap().progress, 0);
        assert!(b.is_sealed());
    }

    #[test]
    fn parsed_values_are_cached_until_written_and_forgotten_on_seal() {
        let (v, _) = unsealed(Arc::new(Memory::default()), OnTamper::Refuse);
        let parses = std::sync::atomic::AtomicUsize::new(0);
        let read = || {
            v.get_parsed("sys/x", |b| {
                parses.fetch_add(1, Ordering::SeqCst);
                Ok(b.map(<[u8]>::to_vec))
            })
            .unwrap()
        };
        assert_eq!(*read(), None);
        v.put("sys/x", b"one").unwrap();
        assert_eq!(read().as_deref(), Some(&b"one"[..]));
        assert_eq!(read().as_deref(), Some(&b"one"[..]));
        assert_eq!(
            parses.load(Ordering::SeqCst),
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

    /// Finding 13: a rotate whose keyring write fails must not leave the
    /// live keyring on a term that was never stored.
    #[test]
    fn a_failed_rotate_keeps_the_stored_keyring_live() {
        let storage = Arc::new(crate::storage::FailingWrites::default());
        let (b, key) = unsealed(storage.clone(), OnTamper::Refuse);
        storage.fail.store(true, Ordering::SeqCst);
        assert!(b.rotate().is_err());
        storage.fail.store(false, Ordering::SeqCst);
        assert_eq!(b.key_status().unwrap().0, 1);
        b.put("secret/acknowledged", b"kept").unwrap();
        b.seal();
        b.unseal(&key).unwrap();
        assert_eq!(&b.get("secret/acknowledged").unwrap().unwrap()[..], b"kept");
    }

    /// Finding 24: rows restored to an older version, deleted or brought
    /// back with the server stopped are found at unseal.
    #[test]
    fn rolled_back_rows_are_found_at_unseal() {
        let storage = Arc::new(Memory::default());
        let (b, key) = unsealed(storage.clone(), OnTamper::Refuse);
        b.put("logical/a/secret", b"v1").unwrap();
        b.put("sys/token/id/x", b"token").unwrap();
        let old_secret = storage.get("logical/a/secret").unwrap().unwrap();
        let old_token = storage.get("sys/token/id/x").unwrap().unwrap();
        b.put("logical/a/secret", b"v2").unwrap();
        b.delete("sys/token/id/x").unwrap();
        b.seal();
        // Untouched: unseals.
        b.unseal(&key).unwrap();
        b.seal();
        for (what, tamper) in [
            (
                "old version",
                vec![Change::Put("logical/a/secret", &old_secret[..])],
            ),
            (
                "revoked token back",
                vec![Change::Put("sys/token/id/x", &old_token[..])],
            ),
            ("row deleted", vec![Change::Delete("logical/a/secret")]),
        ] {
            let saved = storage.get("logical/a/secret").unwrap().unwrap();
            storage.write(&tamper).unwrap();
            let e = b
                .unseal(&key)
                .err()
                .unwrap_or_else(|| panic!("{what}: unsealed"));
            assert!(
                e.to_string().contains("integrity check failed"),
                "{what}: {e}"
            );
            assert!(b.is_sealed());
            storage
                .write(&[
                    Change::Put("logical/a/secret", &saved),
                    Change::Delete("sys/token/id/x"),
                ])
                .unwrap();
            b.unseal(&key).unwrap();
            b.seal();
        }
        // The operator may accept the rows as they are.
        storage
            .write(&[Change::Put("logical/a/secret", &old_secret[..])])
            .unwrap();
        let lenient = Barrier::new(storage.clone(), "inmem", OnTamper::Accept);
        lenient.unseal(&key).unwrap();
        assert_eq!(
            &lenient.get("logical/a/secret").unwrap().unwrap()[..],
            b"v1"
        );
        lenient.seal();
        b.unseal(&key).unwrap();
    }

    #[test]
    fn concurrent_inits_yield_one_vault() {
        let b = Arc::new(Barrier::new(
            Arc::new(Memory::default()),
            "inmem",
            OnTamper::Refuse,
        ));
        let wins: Vec<_> = (0..8)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || b.init(1, 1, |_| Ok(vec![])).ok().map(|r| r.keys))
            })
            .collect();
        let keys: Vec<_> = wins.into_iter().filter_map(|t| t.join().unwrap()).collect();
        assert_eq!(keys.len(), 1, "exactly one init succeeds");
        assert_eq!(
            b.unseal(&hex::encode(&keys[0][0][..])).unwrap(),
            Unsealing::Unsealed
        );
    }

    #[test]
    fn delete_prefix_walks_deep_trees_without_recursion() {
        let (b, _) = unsealed(Arc::new(Memory::default()), OnTamper::Refuse);
        let mut path = String::from("logical/t/");
        for i in 0..2000 {
            path.push_str(&format!("{i}/"));
        }
        b.put(&format!("{path}leaf"), b"x").unwrap();
        b.put("logical/t/a", b"y").unwrap();
        b.delete_prefix("logical/t/").unwrap();
        assert!(b.keys_under("logical/t/").unwrap().is_empty());
    }
}
