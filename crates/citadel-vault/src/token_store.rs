//! The token store: tokens are 192-bit random strings, kept only as HMACs
//! under the keyring's token key (a per-vault secret, as Vault salts them),
//! so a copy of the database holds no usable token and cannot even be
//! matched against a guessed one.
//!
//! Under `sys/token/`: `id/<hmac(token)>` (the entry), `accessor/<hmac(accessor)>`
//! (the accessor and the token's id), `parent/<parent id>/<child id>`
//! (the tree). Revocation walks the tree with an explicit stack, never
//! recursion, so a chain of any depth is revoked whole.
//!
//! Rules, as Vault's: a child's policies are a subset of its parent's
//! (plus `default`); a child never outlives its parent; a use-limited
//! token cannot create children; an orphan needs root or sudo; only the
//! core mints login tokens, and never with `root`.

use crate::barrier::Barrier;
use crate::error::Error;
use crate::ids::{new_accessor, new_token, now};
use crate::view::View;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Vault's (and OpenBao's) default and maximum token TTL: 768 hours.
pub const MAX_TTL: u64 = 768 * 3600;

/// Tokens whose entries [`TokenStore::census`] reads.
pub const CENSUS_LIMIT: usize = 100_000;

/// Writes per storage transaction when revoking a tree.
const REVOKE_BATCH: usize = 256;

/// A token's stored entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Policies attached (folded, sorted).
    pub policies: Vec<String>,
    /// The token's accessor (safe to log).
    pub accessor: String,
    /// Creation time, seconds since the epoch.
    pub creation_time: u64,
    /// The parent's id; `None` for an orphan.
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
    /// Whether it may be renewed.
    #[serde(default = "yes")]
    pub renewable: bool,
    /// A name for humans.
    #[serde(default)]
    pub display_name: String,
    /// Free metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// The path that created it (`auth/token/create`, `auth/userpass/login/x`).
    #[serde(default)]
    pub path: String,
    /// Its last use is being spent: no other request may use it, and it is
    /// revoked when that request ends.
    #[serde(default)]
    pub used_up: bool,
    /// Its id in storage (the HMAC); filled in on lookup, never stored.
    #[serde(skip)]
    pub id: String,
}

fn yes() -> bool {
    true
}

impl TokenEntry {
    /// Whether it carries the root policy.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// Whether its TTL has run out.
    pub fn expired(&self) -> bool {
        self.expire_time != 0 && self.expire_time <= now()
    }
}

#[derive(Serialize, Deserialize)]
struct AccessorEntry {
    accessor: String,
    id: String,
}

/// A request for a new token.
#[derive(Clone, Debug, Default)]
pub struct NewToken {
    /// Policies (folded); empty means the parent's.
    pub policies: Vec<String>,
    /// Lifetime in seconds (0: the default, or none for root).
    pub ttl: u64,
    /// Uses (0: unlimited).
    pub num_uses: u64,
    /// Without a parent.
    pub orphan: bool,
    /// Do not add the `default` policy.
    pub no_default_policy: bool,
    /// Whether it may be renewed.
    pub renewable: bool,
    /// Name for humans (prefixed by the creator).
    pub display_name: String,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
    /// The creating path.
    pub path: String,
}

/// What spending one use of a token did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spend {
    /// The token has unlimited uses (0), or this many left after this one.
    Fine(u64),
    /// That was its last use: revoke it when the request ends.
    Last,
}

/// The token store.
pub struct TokenStore {
    view: View,
    barrier: Arc<Barrier>,
    /// Tokens whose revocation is under way, with how many revocations
    /// marked each: unusable at once, and no child can be created under
    /// them, nor their entry written back. A revocation removes its marks
    /// when it ends (its entries deleted, or, after a failure, left valid
    /// for a retry).
    revoking: std::sync::RwLock<HashMap<String, usize>>,
    /// The size of `revoking`, stored under its write lock (the hot path
    /// skips the map when it is empty).
    marked: std::sync::atomic::AtomicUsize,
}

fn id_of(key: &[u8], token: &str) -> String {
    let mut m = b"token\0".to_vec();
    m.extend_from_slice(token.as_bytes());
    hex::encode(citadel_crypto::kdf::hmac_sha256(key, &m))
}

fn accessor_id(key: &[u8], accessor: &str) -> String {
    let mut m = b"accessor\0".to_vec();
    m.extend_from_slice(accessor.as_bytes());
    hex::encode(citadel_crypto::kdf::hmac_sha256(key, &m))
}

/// Storage records: path and plaintext value.
pub type Records = Vec<(String, Zeroizing<Vec<u8>>)>;

/// The records of the root token minted at init, and the token: the
/// entry and its accessor, under `sys/token/`.
pub fn root_token_records(token_key: &[u8]) -> Result<(Zeroizing<String>, Records), Error> {
    let token = new_token()?;
    let entry = TokenEntry {
        policies: vec!["root".into()],
        accessor: new_accessor()?,
        creation_time: now(),
        display_name: "root".into(),
        path: "auth/token/root".into(),
        renewable: false,
        ..Default::default()
    };
    let id = id_of(token_key, &token);
    let acc = AccessorEntry {
        accessor: entry.accessor.clone(),
        id: id.clone(),
    };
    Ok((
        token,
        vec![
            (format!("sys/token/id/{id}"), to_json(&entry)?),
            (
                format!(
                    "sys/token/accessor/{}",
                    accessor_id(token_key, &entry.accessor)
                ),
                to_json(&acc)?,
            ),
        ],
    ))
}

fn to_json<T: Serialize>(v: &T) -> Result<Zeroizing<Vec<u8>>, Error> {
    serde_json::to_vec(v)
        .map(Zeroizing::new)
        .map_err(crate::error::internal)
}

impl TokenStore {
    /// The store under `sys/token/` of `barrier`.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self {
            view: View::new(barrier.clone(), "sys/token/"),
            barrier,
            revoking: Default::default(),
            marked: Default::default(),
        }
    }

    fn id(&self, token: &str) -> Result<String, Error> {
        self.barrier
            .with_keyring(|k| Ok(id_of(k.token_key(), token)))
    }

    fn accessor_key(&self, accessor: &str) -> Result<String, Error> {
        self.barrier
            .with_keyring(|k| Ok(format!("accessor/{}", accessor_id(k.token_key(), accessor))))
    }

    /// Whether a revocation of this token is under way. Callers about to
    /// write a token's entry back ask this under the token's lock *before*
    /// they read the entry: a mark is removed only after the entry is
    /// deleted, so either they see the mark or they find no entry.
    fn is_revoking(&self, id: &str) -> bool {
        self.marked.load(std::sync::atomic::Ordering::Acquire) > 0
            && self
                .revoking
                .read()
                .map(|s| s.contains_key(id))
                .unwrap_or(true)
    }

    fn save(&self, e: &TokenEntry) -> Result<(), Error> {
        self.view.put_json(&format!("id/{}", e.id), e)
    }

    /// The entry of a token, if it is valid: not unknown, not expired
    /// (an expired one is revoked on the spot) and not being used up.
    pub fn lookup(&self, token: &str) -> Result<Option<TokenEntry>, Error> {
        if token.is_empty() || token.len() > 1024 {
            return Ok(None);
        }
        let id = self.id(token)?;
        self.lookup_id(&id)
    }

    /// [`TokenStore::lookup`] by id.
    pub fn lookup_id(&self, id: &str) -> Result<Option<TokenEntry>, Error> {
        // Token entries hold HMACs and policies, no secret: they go through
        // the parsed-value cache (every change is a write, which evicts).
        let cached = self.view.get_parsed::<TokenEntry>(&format!("id/{id}"))?;
        let Some(e) = cached.as_ref() else {
            return Ok(None);
        };
        let mut e = e.clone();
        e.id = id.to_string();
        if e.used_up || self.is_revoking(id) {
            return Ok(None);
        }
        if e.expired() {
            // Its descendants expired with it (none outlives its parent):
            // each is removed when it is next looked up, so an expiry never
            // walks a tree on the request path.
            self.forget(&e)?;
            return Ok(None);
        }
        Ok(Some(e))
    }

    /// The entry behind an accessor.
    pub fn by_accessor(&self, accessor: &str) -> Result<Option<TokenEntry>, Error> {
        if accessor.is_empty() || accessor.len() > 256 {
            return Ok(None);
        }
        let Some(a) = self
            .view
            .get_json::<AccessorEntry>(&self.accessor_key(accessor)?)?
        else {
            return Ok(None);
        };
        self.lookup_id(&a.id)
    }

    /// Every accessor (`auth/token/accessors`).
    pub fn accessors(&self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for k in self.view.list("accessor/")? {
            if let Some(a) = self
                .view
                .get_json::<AccessorEntry>(&format!("accessor/{k}"))?
            {
                out.push(a.accessor);
            }
        }
        out.sort();
        Ok(out)
    }

    /// How many tokens are stored (for metrics).
    pub fn count(&self) -> Result<usize, Error> {
        Ok(self.view.list("id/")?.len())
    }

    /// How many tokens are stored, and how many of them expire (Vault's
    /// token leases). Entries are read through the parsed-value cache; past
    /// [`CENSUS_LIMIT`] tokens only the count is exact and the lease count
    /// covers the first ones.
    pub fn census(&self) -> Result<(u64, u64), Error> {
        let ids = self.view.list("id/")?;
        let mut leases = 0u64;
        for id in ids.iter().take(CENSUS_LIMIT) {
            if let Some(e) = self
                .view
                .get_parsed::<TokenEntry>(&format!("id/{id}"))?
                .as_ref()
            {
                if e.expire_time != 0 {
                    leases += 1;
                }
            }
        }
        Ok((ids.len() as u64, leases))
    }

    /// Creates a token as a child of `parent` (or, for a login, with no
    /// parent); `parent_sudo` says whether the parent may create orphans.
    pub fn create(
        &self,
        parent: Option<&TokenEntry>,
        parent_sudo: bool,
        req: NewToken,
    ) -> Result<(Zeroizing<String>, TokenEntry), Error> {
        let mut policies = req.policies;
        for p in &policies {
            if crate::policy::fold_name(p).as_deref() != Some(p.as_str()) {
                return Err(Error::bad(format!("invalid policy name {p:?}")));
            }
        }
        if let Some(parent) = parent {
            if parent.num_uses > 0 || parent.used_up {
                return Err(Error::bad(
                    "restricted use token cannot generate child tokens",
                ));
            }
            if policies.is_empty() {
                policies = parent.policies.clone();
            }
            if !parent.is_root() {
                if let Some(p) = policies
                    .iter()
                    .find(|p| *p != "default" && !parent.policies.contains(p))
                {
                    return Err(Error::bad(format!(
                        "child policies must be subset of parent: {p} is not among the parent's"
                    )));
                }
                if req.orphan && !parent_sudo {
                    return Err(Error::bad(
                        "root or sudo privileges required to create orphan token",
                    ));
                }
            }
        } else if policies.iter().any(|p| p == "root") {
            // A login: only the core calls this without a parent.
            return Err(Error::bad("auth methods cannot create root tokens"));
        }
        if policies.iter().any(|p| p == "root") {
            policies = vec!["root".into()];
        } else if !req.no_default_policy && !policies.iter().any(|p| p == "default") {
            policies.push("default".into());
        }
        policies.sort();
        policies.dedup();
        let now = now();
        let root = policies.iter().any(|p| p == "root");
        // As Vault: only a root token may live forever; others get the
        // default TTL when they ask for none, and at most the maximum.
        let ttl = if req.ttl == 0 && !root {
            MAX_TTL
        } else {
            req.ttl.min(MAX_TTL)
        };
        let mut expire = if ttl > 0 { now.saturating_add(ttl) } else { 0 };
        let orphan = req.orphan || parent.is_none();
        if let Some(parent) = parent.filter(|_| !orphan) {
            // A child never outlives its parent.
            if parent.expire_time != 0 && (expire == 0 || expire > parent.expire_time) {
                expire = parent.expire_time;
            }
        }
        let token = new_token()?;
        let entry = TokenEntry {
            policies,
            accessor: new_accessor()?,
            creation_time: now,
            parent: if orphan {
                None
            } else {
                parent.map(|p| p.id.clone())
            },
            ttl,
            expire_time: expire,
            num_uses: req.num_uses,
            renewable: req.renewable && expire != 0,
            display_name: req.display_name,
            meta: req.meta,
            path: req.path,
            used_up: false,
            id: self.id(&token)?,
        };
        let entry_json =
            Zeroizing::new(serde_json::to_vec(&entry).map_err(crate::error::internal)?);
        let acc = serde_json::to_vec(&AccessorEntry {
            accessor: entry.accessor.clone(),
            id: entry.id.clone(),
        })
        .map_err(crate::error::internal)?;
        let id_key = format!("id/{}", entry.id);
        let acc_key = self.accessor_key(&entry.accessor)?;
        let parent_key = entry
            .parent
            .as_ref()
            .map(|p| format!("parent/{p}/{}", entry.id));
        let mut writes: Vec<(&str, Option<&[u8]>)> =
            vec![(&id_key, Some(&entry_json)), (&acc_key, Some(&acc))];
        if let Some(k) = &parent_key {
            writes.push((k, Some(b"")));
        }
        // The parent may be being revoked: create under its lock, after
        // checking that it still exists and that no revocation has marked
        // it (a revocation marks each token under its lock before it lists
        // the token's children, so a child is either listed or refused).
        let _g = parent
            .filter(|_| !orphan)
            .map(|p| self.view.lock(&format!("id/{}", p.id)));
        if let Some(p) = parent.filter(|_| !orphan) {
            if self.is_revoking(&p.id) || self.view.get(&format!("id/{}", p.id))?.is_none() {
                return Err(Error::PermissionDenied);
            }
        }
        self.view.write(&writes)?;
        Ok((token, entry))
    }

    /// Spends one use of a use-limited token, under its lock: concurrent
    /// requests each spend one, and once the last is taken no other
    /// request can use the token.
    pub fn spend(&self, e: &TokenEntry) -> Result<Spend, Error> {
        if e.num_uses == 0 {
            return Ok(Spend::Fine(0));
        }
        let key = format!("id/{}", e.id);
        let _g = self.view.lock(&key);
        if self.is_revoking(&e.id) {
            return Err(Error::PermissionDenied);
        }
        let Some(mut cur) = self.view.get_json::<TokenEntry>(&key)? else {
            return Err(Error::PermissionDenied);
        };
        cur.id = e.id.clone();
        if cur.used_up || cur.num_uses == 0 || cur.expired() {
            return Err(Error::PermissionDenied);
        }
        let spend = if cur.num_uses == 1 {
            cur.used_up = true;
            Spend::Last
        } else {
            cur.num_uses -= 1;
            Spend::Fine(cur.num_uses)
        };
        self.save(&cur)?;
        Ok(spend)
    }

    /// Removes one token's records (an expired token).
    /// Under the token's lock, and only if its stored entry is still
    /// expired: a renewal that got the lock first has extended it.
    fn forget(&self, e: &TokenEntry) -> Result<(), Error> {
        let _g = self.view.lock(&format!("id/{}", e.id));
        match self.view.get_json::<TokenEntry>(&format!("id/{}", e.id))? {
            Some(cur) if cur.expired() => {}
            _ => return Ok(()),
        }
        let mut keys = vec![format!("id/{}", e.id), self.accessor_key(&e.accessor)?];
        if let Some(p) = &e.parent {
            keys.push(format!("parent/{p}/{}", e.id));
        }
        self.delete_keys(&keys)
    }

    /// Revokes the token with this id and every descendant, without
    /// recursion. Each token is first marked, under its lock, as being
    /// revoked (from then on it is refused, gets no new child, and cannot
    /// be written back by a renewal or a spent use), then its children are
    /// listed; then everything is deleted, children before parents.
    pub fn revoke(&self, id: &str) -> Result<(), Error> {
        let mut marked = Vec::new();
        let r = self.revoke_marked(id, &mut marked);
        // Success or failure, this revocation's marks go: after a failure
        // (a 500), the tokens it did not delete stay valid, whole (a
        // token's records go in one transaction), and a retry revokes them.
        let mut set = self
            .revoking
            .write()
            .map_err(|_| Error::Internal("lock".into()))?;
        for h in &marked {
            if let Some(n) = set.get_mut(h) {
                *n -= 1;
                if *n == 0 {
                    set.remove(h);
                }
            }
        }
        self.marked
            .store(set.len(), std::sync::atomic::Ordering::Release);
        r
    }

    /// Marks (adding each id to `marked`) and deletes the tree under `id`.
    fn revoke_marked(&self, id: &str, marked: &mut Vec<String>) -> Result<(), Error> {
        let mut order: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut stack = vec![id.to_string()];
        while let Some(h) = stack.pop() {
            if !seen.insert(h.clone()) {
                continue;
            }
            {
                let _g = self.view.lock(&format!("id/{h}"));
                let mut set = self
                    .revoking
                    .write()
                    .map_err(|_| Error::Internal("lock".into()))?;
                *set.entry(h.clone()).or_insert(0) += 1;
                marked.push(h.clone());
                self.marked
                    .store(set.len(), std::sync::atomic::Ordering::Release);
            }
            for c in self.view.list(&format!("parent/{h}/"))? {
                stack.push(c.trim_end_matches('/').to_string());
            }
            order.push(h);
        }
        let mut keys: Vec<String> = Vec::new();
        for h in order.iter().rev() {
            let entry = self.view.get_json::<TokenEntry>(&format!("id/{h}"))?;
            if let Some(e) = &entry {
                keys.push(self.accessor_key(&e.accessor)?);
                if let Some(p) = &e.parent {
                    keys.push(format!("parent/{p}/{h}"));
                }
            }
            keys.push(format!("id/{h}"));
            if keys.len() >= REVOKE_BATCH {
                self.delete_keys(&keys)?;
                keys.clear();
            }
        }
        self.delete_keys(&keys)?;
        // Links of children whose entries were already gone.
        for h in &order {
            self.view.delete_prefix(&format!("parent/{h}/"))?;
        }
        Ok(())
    }

    fn delete_keys(&self, keys: &[String]) -> Result<(), Error> {
        let writes: Vec<(&str, Option<&[u8]>)> = keys.iter().map(|k| (k.as_str(), None)).collect();
        self.view.write(&writes)
    }

    /// Extends a token's life to `increment` seconds from now (0: its own
    /// TTL), never past its parent nor past [`MAX_TTL`] from its creation,
    /// and never shorter than it was.
    pub fn renew(&self, e: &TokenEntry, increment: u64) -> Result<TokenEntry, Error> {
        if e.expire_time == 0 || !e.renewable {
            return Err(Error::bad("lease is not renewable"));
        }
        let key = format!("id/{}", e.id);
        let _g = self.view.lock(&key);
        if self.is_revoking(&e.id) {
            return Err(Error::bad("lease not found"));
        }
        let Some(mut cur) = self.view.get_json::<TokenEntry>(&key)? else {
            return Err(Error::bad("lease not found"));
        };
        // An expired token is being forgotten; writing it back with a new
        // expiry would leave it without its accessor and parent link.
        if cur.expired() {
            return Err(Error::bad("lease not found"));
        }
        cur.id = e.id.clone();
        let inc = if increment > 0 { increment } else { cur.ttl };
        let limit = cur.creation_time.saturating_add(MAX_TTL);
        let mut expire = now().saturating_add(inc).min(limit);
        if let Some(p) = &cur.parent {
            // A parent gone (revoked or expired) takes its children with it.
            let Some(pe) = self.view.get_json::<TokenEntry>(&format!("id/{p}"))? else {
                return Err(Error::bad("lease not found"));
            };
            if pe.expire_time != 0 {
                expire = expire.min(pe.expire_time);
            }
        }
        // Never earlier than now: a child's life was capped at its
        // parent's when it was made, and a parent that could shorten its
        // own would leave its children behind when it expires.
        cur.expire_time = expire.max(cur.expire_time);
        self.save(&cur)?;
        Ok(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::{Barrier, OnTamper, Unsealing};
    use crate::storage::Memory;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// An unsealed token store on `storage`, and its root token.
    fn store_on(
        storage: Arc<dyn crate::storage::Physical>,
    ) -> (Arc<TokenStore>, Zeroizing<String>) {
        let b = Arc::new(Barrier::new(storage, "inmem", OnTamper::Refuse));
        let mut root = None;
        let r = b
            .init(1, 1, |k| {
                let (t, recs) = root_token_records(k.token_key())?;
                root = Some(t);
                Ok(recs)
            })
            .unwrap();
        assert_eq!(
            b.unseal(&hex::encode(&r.keys[0][..])).unwrap(),
            Unsealing::Unsealed
        );
        (Arc::new(TokenStore::new(b)), root.unwrap())
    }

    fn store() -> (Arc<TokenStore>, Zeroizing<String>) {
        store_on(Arc::new(Memory::default()))
    }

    /// A store and its root token's entry.
    fn store_with_root() -> (Arc<TokenStore>, TokenEntry) {
        let (s, root) = store();
        let top = s.lookup(&root).unwrap().unwrap();
        (s, top)
    }

    fn child(s: &TokenStore, parent: &TokenEntry, uses: u64) -> (Zeroizing<String>, TokenEntry) {
        s.create(
            Some(parent),
            false,
            NewToken {
                num_uses: uses,
                renewable: true,
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn tokens_are_stored_as_keyed_hmacs() {
        let (s, root) = store();
        let e = s.lookup(&root).unwrap().unwrap();
        assert!(e.is_root());
        // Not the plain SHA-256 an attacker could compute.
        let plain = hex::encode(citadel_crypto::hash::sha256(root.as_bytes()));
        assert_ne!(e.id, plain);
        assert!(s.view.get(&format!("id/{plain}")).unwrap().is_none());
        assert!(s.by_accessor(&e.accessor).unwrap().is_some());
        assert_eq!(s.accessors().unwrap(), vec![e.accessor.clone()]);
    }

    /// Finding 6: a chain of 20,000 generations is revoked whole, without
    /// recursion.
    #[test]
    fn deep_chains_revoke_without_recursion() {
        let (s, root) = store();
        let top = s.lookup(&root).unwrap().unwrap();
        let (first, mut e) = child(&s, &top, 0);
        for _ in 0..20_000 {
            e = child(&s, &e, 0).1;
        }
        let last = e;
        let first_e = s.lookup(&first).unwrap().unwrap();
        // Run on a small stack, as a tokio worker has.
        let s = Arc::new(s);
        let s2 = s.clone();
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || s2.revoke(&first_e.id).unwrap())
            .unwrap()
            .join()
            .unwrap();
        assert!(s.lookup_id(&last.id).unwrap().is_none());
        assert!(s.lookup(&root).unwrap().is_some());
        assert_eq!(s.count().unwrap(), 1);
    }

    /// Finding 7: a use-limited token cannot create children.
    #[test]
    fn use_limited_tokens_have_no_children() {
        let (s, root) = store();
        let top = s.lookup(&root).unwrap().unwrap();
        let (t, e) = child(&s, &top, 1);
        let e2 = s.lookup(&t).unwrap().unwrap();
        let err = s
            .create(Some(&e2), false, NewToken::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("restricted use token"), "{err}");
        assert_eq!(s.spend(&e).unwrap(), Spend::Last);
        assert!(s.lookup(&t).unwrap().is_none(), "used up");
        assert!(s.spend(&e).is_err());
    }

    #[test]
    fn logins_never_mint_root() {
        let (s, _) = store();
        let err = s
            .create(
                None,
                false,
                NewToken {
                    policies: vec!["root".into()],
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("auth methods cannot create root tokens")
        );
    }

    #[test]
    fn concurrent_spends_each_take_one_use() {
        let (s, root) = store();
        let top = s.lookup(&root).unwrap().unwrap();
        let (_, e) = child(&s, &top, 5);
        let s = Arc::new(s);
        let ok: usize = (0..16)
            .map(|_| {
                let (s, e) = (s.clone(), e.clone());
                std::thread::spawn(move || s.spend(&e).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(ok, 5);
    }

    /// A renewal or a spent use that read the entry just before a
    /// revocation deleted it must not write it back (found by attack 02:
    /// the entry was read, the revocation deleted it and removed its
    /// mark, then the write-back passed the mark check).
    #[test]
    fn write_backs_racing_a_revocation_never_revive_the_token() {
        let (s, top) = store_with_root();
        for round in 0..300 {
            let (t, e) = s
                .create(
                    Some(&top),
                    false,
                    NewToken {
                        ttl: 3600,
                        renewable: true,
                        num_uses: if round % 2 == 0 { 0 } else { 1_000_000 },
                        ..Default::default()
                    },
                )
                .unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let (s, t, stop) = (s.clone(), t.clone(), stop.clone());
                    std::thread::spawn(move || {
                        while !stop.load(Ordering::SeqCst) {
                            if let Ok(Some(e)) = s.lookup(&t) {
                                let _ = s.renew(&e, 0);
                                let _ = s.spend(&e);
                            }
                        }
                    })
                })
                .collect();
            std::thread::yield_now();
            s.revoke(&e.id).unwrap();
            stop.store(true, Ordering::SeqCst);
            for w in workers {
                w.join().unwrap();
            }
            assert!(
                s.view.get(&format!("id/{}", e.id)).unwrap().is_none(),
                "round {round}: the revoked entry was written back"
            );
            assert!(s.lookup(&t).unwrap().is_none(), "round {round}");
        }
        assert_eq!(s.marked.load(Ordering::SeqCst), 0, "marks are removed");
    }

    /// Found by a review of the fix above: a renewal holding an entry read
    /// before expiry wrote it back after the expiry cleanup deleted its
    /// accessor and parent link, leaving a live token that revoking its
    /// parent or its accessor no longer reached.
    #[test]
    fn an_expired_token_is_never_renewed_back_to_life() {
        let (s, top) = store_with_root();
        let (t, e) = s
            .create(
                Some(&top),
                false,
                NewToken {
                    ttl: 3600,
                    renewable: true,
                    ..Default::default()
                },
            )
            .unwrap();
        // The renewing request looked the token up while it was valid...
        let seen = s.lookup(&t).unwrap().unwrap();
        // ...then it expired, and another request's lookup forgot it.
        let mut stored: TokenEntry = s.view.get_json(&format!("id/{}", e.id)).unwrap().unwrap();
        stored.expire_time = now() - 1;
        s.view.put_json(&format!("id/{}", e.id), &stored).unwrap();
        assert!(s.lookup(&t).unwrap().is_none());
        assert!(s.renew(&seen, 0).is_err());
        assert!(s.view.get(&format!("id/{}", e.id)).unwrap().is_none());
        // Expired but not yet forgotten: renewal refuses too.
        let (t2, e2) = s
            .create(
                Some(&top),
                false,
                NewToken {
                    ttl: 3600,
                    renewable: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let seen = s.lookup(&t2).unwrap().unwrap();
        let mut stored: TokenEntry = s.view.get_json(&format!("id/{}", e2.id)).unwrap().unwrap();
        stored.expire_time = now() - 1;
        s.view.put_json(&format!("id/{}", e2.id), &stored).unwrap();
        assert!(s.renew(&seen, 0).is_err());
        assert!(s.spend(&seen).is_ok(), "no use limit: nothing to spend");
    }

    /// Found by the third review: a parent renewed with a short increment
    /// expired before its child, and its expiry cleanup left the child
    /// valid and out of reach of any revocation above it.
    #[test]
    fn a_renewal_never_shortens_a_token_below_its_children() {
        let (s, top) = store_with_root();
        let day = NewToken {
            ttl: 86_400,
            renewable: true,
            ..Default::default()
        };
        let (pt, _) = s.create(Some(&top), false, day.clone()).unwrap();
        let parent = s.lookup(&pt).unwrap().unwrap();
        let (ct, _) = s.create(Some(&parent), false, day).unwrap();
        let child = s.lookup(&ct).unwrap().unwrap();
        let renewed = s.renew(&parent, 1).unwrap();
        assert!(renewed.expire_time >= child.expire_time, "{renewed:?}");
        assert!(renewed.expire_time > now() + 3600);
    }

    /// A child whose parent is gone cannot be renewed past it.
    #[test]
    fn a_child_of_a_vanished_parent_is_not_renewed() {
        let (s, top) = store_with_root();
        let (pt, pe) = s
            .create(
                Some(&top),
                false,
                NewToken {
                    ttl: 3600,
                    renewable: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let parent = s.lookup(&pt).unwrap().unwrap();
        let (ct, _) = s
            .create(
                Some(&parent),
                false,
                NewToken {
                    ttl: 60,
                    renewable: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let child = s.lookup(&ct).unwrap().unwrap();
        s.view.delete(&format!("id/{}", pe.id)).unwrap();
        assert!(s.renew(&child, 0).is_err());
    }

    /// A revocation that fails leaves the tokens it did not delete valid
    /// and unmarked (an earlier version kept them marked in memory, so a
    /// retry could not find them and answered success while they stayed
    /// in storage, valid again after a restart), and a retry finishes it.
    /// The marks of an overlapping revocation stay.
    #[test]
    fn a_failed_revocation_can_be_retried() {
        let storage = Arc::new(crate::storage::FailingWrites::default());
        let (s, root) = store_on(storage.clone());
        let top = s.lookup(&root).unwrap().unwrap();
        let (t, e) = s.create(Some(&top), false, NewToken::default()).unwrap();
        storage.fail.store(true, Ordering::SeqCst);
        assert!(s.revoke(&e.id).is_err());
        storage.fail.store(false, Ordering::SeqCst);
        assert_eq!(s.marked.load(Ordering::SeqCst), 0, "no mark left behind");
        let found = s.lookup(&t).unwrap().expect("still valid, for a retry");
        s.revoke(&found.id).unwrap();
        assert!(s.lookup(&t).unwrap().is_none());
        assert!(s.view.get(&format!("id/{}", e.id)).unwrap().is_none());
        // Overlapping revocations: a mark stays while another holds it.
        let (t2, e2) = s.create(Some(&top), false, NewToken::default()).unwrap();
        {
            let mut set = s.revoking.write().unwrap();
            set.insert(e2.id.clone(), 1);
            s.marked.store(set.len(), Ordering::SeqCst);
        }
        storage.fail.store(true, Ordering::SeqCst);
        assert!(s.revoke(&e2.id).is_err());
        storage.fail.store(false, Ordering::SeqCst);
        assert!(s.lookup(&t2).unwrap().is_none(), "the other's mark holds");
    }
}
