//! Backends: `sys`, `auth/token`, the auth methods (userpass, AppRole) and
//! the secrets engines (KV v2, transit), behind one trait.
//!
//! Each backend declares its routes: a pattern of segments, the operations
//! it serves, its typed fields, and whether it needs `sudo`, checks
//! existence (to tell `create` from `update`), needs no token (logins) or
//! does heavy work. The router ([`match_route`]) matches a canonical path
//! against the patterns and folds the segments a backend folds (policy,
//! user and role names) — so the path the ACL checks is built from the same
//! values the handler receives, and handlers never normalise.
//!
//! Every backend gets a storage [`View`] scoped to its mount; only `sys`
//! and `auth/token` reach the stores in [`Services`].

pub mod approle;
pub mod kv;
pub mod sys;
pub mod token;
pub mod transit;
pub mod userpass;

use crate::audit::Devices;
use crate::barrier::Barrier;
use crate::error::Error;
use crate::fields::{Field, Fields, Ty};
use crate::metrics::Metrics;
use crate::mounts::Mounts;
use crate::policy::PolicyStore;
use crate::request::Operation;
use crate::token_store::{TokenEntry, TokenStore};
use crate::view::View;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One segment of a route pattern.
#[derive(Clone, Copy, Debug)]
pub enum Seg {
    /// Exactly this text.
    Lit(&'static str),
    /// One segment, folded by the function (trimmed, lowercased) and kept
    /// only if the function accepts it; the folded value is the one the
    /// ACL sees and the handler gets.
    Name(&'static str, fn(&str) -> Option<String>),
    /// One segment, kept as sent if the function accepts it.
    Key(&'static str, fn(&str) -> bool),
    /// One or more segments: the rest of the path.
    Rest(&'static str),
    /// One or more segments, the rest of the path, folded as a whole by
    /// the function (policy names: OpenBao lowercases everything after
    /// `sys/policies/acl/`); the handler checks what it got.
    FoldedRest(&'static str, fn(&str) -> String),
    /// Zero or more segments: the rest of the path.
    RestOpt(&'static str),
    /// Zero or more segments at the end that choose *how* (an algorithm),
    /// not *what*: a rule that forbids the path without them forbids it
    /// with them too.
    Variant(&'static str),
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A token whose policies grant the operation's capability (and
    /// `sudo`, when [`Route::sudo`]).
    Acl,
    /// Any valid token (the route checks what it shows).
    AnyToken,
    /// No token (health, seal status, init, unseal, logins).
    None,
}

/// A route of a backend.
#[derive(Debug)]
pub struct Route {
    /// Names the handler, and the route in metrics.
    pub name: &'static str,
    /// The pattern.
    pub pattern: &'static [Seg],
    /// The operations served (`Update` also serves `Create`).
    pub ops: &'static [Operation],
    /// The fields it takes.
    pub fields: &'static [Field],
    /// Whether an `Update` of a missing object is a `Create` (the
    /// `create` capability then decides).
    pub existence: bool,
    /// Whether `sudo` is needed besides the operation's capability.
    pub sudo: bool,
    /// Who may call it.
    pub access: Access,
    /// Whether it does CPU-heavy work (run off the async workers).
    pub heavy: bool,
    /// Whether it may be served while sealed.
    pub sealed_ok: bool,
}

impl Route {
    /// A route with the defaults: ACL-checked, not sudo, no existence
    /// check, light, unsealed only.
    pub const fn new(
        name: &'static str,
        pattern: &'static [Seg],
        ops: &'static [Operation],
        fields: &'static [Field],
    ) -> Self {
        Self {
            name,
            pattern,
            ops,
            fields,
            existence: false,
            sudo: false,
            access: Access::Acl,
            heavy: false,
            sealed_ok: false,
        }
    }

    /// With an existence check.
    pub const fn existence(mut self) -> Self {
        self.existence = true;
        self
    }

    /// Needing `sudo`.
    pub const fn sudo(mut self) -> Self {
        self.sudo = true;
        self
    }

    /// With this access rule.
    pub const fn access(mut self, a: Access) -> Self {
        self.access = a;
        self
    }

    /// Doing heavy work.
    pub const fn heavy(mut self) -> Self {
        self.heavy = true;
        self
    }

    /// Served while sealed.
    pub const fn sealed_ok(mut self) -> Self {
        self.sealed_ok = true;
        self
    }
}

/// A path matched to a route.
#[derive(Debug)]
pub struct Matched {
    /// The route.
    pub route: &'static Route,
    /// The values of its named segments (folded where the pattern folds).
    pub params: Vec<(&'static str, String)>,
    /// The canonical path inside the mount, built from those values.
    pub path: String,
    /// The same without a [`Seg::Variant`] (equal to `path` when the
    /// request names none): the object the request acts on.
    pub object_path: String,
}

impl Matched {
    /// A named segment's value (empty when the pattern has no such name or
    /// an optional rest was empty).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }
}

/// Matches `rel` (a canonical path inside a mount, possibly empty) to the
/// first route whose pattern fits.
pub fn match_route(routes: &'static [Route], rel: &str) -> Option<Matched> {
    let segs: Vec<&str> = if rel.is_empty() {
        Vec::new()
    } else {
        rel.split('/').collect()
    };
    'route: for route in routes {
        let mut params = Vec::new();
        let mut out: Vec<String> = Vec::new();
        let mut object_len = None;
        let mut i = 0;
        for (k, seg) in route.pattern.iter().enumerate() {
            let last = k + 1 == route.pattern.len();
            match *seg {
                Seg::Lit(l) => {
                    if segs.get(i) != Some(&l) {
                        continue 'route;
                    }
                    out.push(l.to_string());
                    i += 1;
                }
                Seg::Name(n, fold) => {
                    let Some(v) = segs.get(i).and_then(|s| fold(s)) else {
                        continue 'route;
                    };
                    out.push(v.clone());
                    params.push((n, v));
                    i += 1;
                }
                Seg::Key(n, ok) => {
                    let Some(v) = segs.get(i).filter(|s| ok(s)) else {
                        continue 'route;
                    };
                    out.push(v.to_string());
                    params.push((n, v.to_string()));
                    i += 1;
                }
                Seg::FoldedRest(n, fold) => {
                    if !last || i >= segs.len() {
                        continue 'route;
                    }
                    let v = fold(&segs[i..].join("/"));
                    out.push(v.clone());
                    params.push((n, v));
                    i = segs.len();
                }
                Seg::Rest(n) | Seg::RestOpt(n) | Seg::Variant(n) => {
                    if !last || (matches!(seg, Seg::Rest(_)) && i >= segs.len()) {
                        continue 'route;
                    }
                    if matches!(seg, Seg::Variant(_)) {
                        object_len = Some(out.len());
                    }
                    let v = segs[i.min(segs.len())..].join("/");
                    if !v.is_empty() {
                        out.push(v.clone());
                    }
                    params.push((n, v));
                    i = segs.len();
                }
            }
        }
        if i != segs.len() {
            continue;
        }
        let object_path = out[..object_len.unwrap_or(out.len())].join("/");
        return Some(Matched {
            route,
            params,
            path: out.join("/"),
            object_path,
        });
    }
    None
}

/// Where a path goes: the backend, its mount, the mount's storage and the
/// path inside the mount (canonical, not yet folded).
pub(crate) struct Target {
    pub backend: &'static dyn Backend,
    pub mount_path: String,
    pub view: View,
    pub rel: String,
}

/// The path the ACL checks for an operation: the mount path and the
/// canonical path inside it; a list names the directory, with a trailing
/// `/`.
pub(crate) fn acl_path(mount_path: &str, rel: &str, op: Operation) -> String {
    let mut p = if rel.is_empty() {
        mount_path.trim_end_matches('/').to_string()
    } else {
        format!("{mount_path}{rel}")
    };
    if op == Operation::List {
        p.push('/');
    }
    p
}

/// Whether a rule forbids `op` on another spelling of the routed request:
/// the name as sent, where the route folds it (an exact rule written for
/// that spelling), or the object without its [`Seg::Variant`] (any rule).
fn another_spelling_forbids(
    acl: &crate::policy::Acl,
    t: &Target,
    m: &Matched,
    op: Operation,
) -> bool {
    let path = acl_path(&t.mount_path, &m.path, op);
    let as_sent = acl_path(&t.mount_path, &t.rel, op);
    let object = acl_path(&t.mount_path, &m.object_path, op);
    (as_sent != path && acl.forbids(&as_sent, op, true))
        || (object != path && acl.forbids(&object, op, false))
}

/// Whether `acl` lets `op` through on a routed request: the ACL decides on
/// the path built from the matched (folded) values, and no rule may forbid
/// another spelling of the same request. Returns (allowed, sudo).
pub(crate) fn permits(
    acl: &crate::policy::Acl,
    t: &Target,
    m: &Matched,
    op: Operation,
) -> (bool, bool) {
    let (allowed, sudo) = acl.check(&acl_path(&t.mount_path, &m.path, op), op);
    if !allowed || another_spelling_forbids(acl, t, m, op) {
        return (false, false);
    }
    (true, sudo)
}

/// `sys/capabilities` of a routed path: what [`permits`] would let
/// through, by capability name.
pub(crate) fn capabilities(acl: &crate::policy::Acl, t: &Target, m: &Matched) -> Vec<&'static str> {
    let mut caps = acl.capabilities(&acl_path(&t.mount_path, &m.path, Operation::Read));
    caps.retain(|c| {
        crate::policy::operation_of(c).is_none_or(|op| !another_spelling_forbids(acl, t, m, op))
    });
    if caps.iter().all(|c| *c == "sudo") {
        return vec!["deny"];
    }
    caps
}

/// A name as transit keys and KV paths take it: letters, digits, `-`, `_`,
/// `.`, `@`; kept as sent (the path's own limit bounds its length).
pub fn key_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= crate::path::MAX_PATH
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

/// A user or role name, folded as OpenBao folds it (lowercased); letters,
/// digits, `-`, `_`, `.`, `@`.
pub fn folded_name(s: &str) -> Option<String> {
    let n = s.to_lowercase();
    key_name(&n).then_some(n)
}

/// Field types the auth methods refuse alike.
pub(crate) const CIDRS: Ty = Ty::Unsupported("CIDR bindings are not supported by citadel");
pub(crate) const MAX_TTL: Ty =
    Ty::Unsupported("a per-role maximum TTL is not supported by citadel; tokens live at most 768h");
pub(crate) const PERIOD: Ty = Ty::Unsupported("periodic tokens are not supported by citadel");

/// Policies given as `token_policies` or `policies`, folded and checked.
pub(crate) fn policies_of(f: &Fields) -> Result<Option<Vec<String>>, Error> {
    let list = f.list("token_policies").or_else(|| f.list("policies"));
    let Some(list) = list else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for p in list {
        out.push(
            crate::policy::fold_name(p)
                .ok_or_else(|| Error::bad(format!("invalid policy name {p:?}")))?,
        );
    }
    out.sort();
    out.dedup();
    Ok(Some(out))
}

/// Only service tokens exist.
pub(crate) fn check_token_type(f: &Fields) -> Result<(), Error> {
    match f.str("token_type") {
        None | Some("" | "default" | "service" | "default-service") => Ok(()),
        Some(t) => Err(Error::bad(format!(
            "token_type {t:?} is not supported by citadel: only service tokens are issued"
        ))),
    }
}

/// What a login produced: the core mints the token.
#[derive(Clone, Debug, Default)]
pub struct Login {
    /// Policies for the token (never `root`: the core refuses it).
    pub policies: Vec<String>,
    /// Lifetime in seconds (0: the default).
    pub ttl: u64,
    /// Uses (0: unlimited).
    pub num_uses: u64,
    /// Display name.
    pub display_name: String,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
}

/// A backend's answer.
#[derive(Debug)]
pub enum Reply {
    /// 200 with a Vault envelope around this `data`.
    Data(Value),
    /// This status with an envelope around `data` (a batch with failures).
    Status(u16, Value),
    /// 200 with an envelope whose `auth` block is this.
    Auth(Value),
    /// This status with this JSON as it is.
    Raw(u16, Value),
    /// 204.
    NoContent,
    /// 404 `{"errors": []}`.
    NotFound,
    /// 404 with an envelope around `data` (a deleted KV version).
    NotFoundData(Value),
    /// A login: the core mints the token and answers with its `auth`.
    Login(Login),
    /// Plain text (Prometheus).
    Text(&'static str, String),
}

/// Limits on the work one request may ask for.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most items in a `batch_input`.
    pub max_batch_items: usize,
    /// Most estimated CPU time one request may ask for, in microseconds.
    pub work_budget_us: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_batch_items: 4096,
            work_budget_us: 10_000_000,
        }
    }
}

/// The stores and services of a vault, for the backends that manage them.
pub struct Services {
    /// The encrypted store and seal state.
    pub barrier: Arc<Barrier>,
    /// Tokens.
    pub tokens: TokenStore,
    /// Policies.
    pub policies: PolicyStore,
    /// Mount tables.
    pub mounts: Mounts,
    /// Audit devices.
    pub audit: Devices,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Work limits.
    pub limits: Limits,
    /// Set once [`Services::after_unseal`] has reopened the audit devices
    /// and checked the storage epoch, cleared first when sealing: until
    /// then the vault answers as sealed, so no request is served unaudited
    /// or from storage the rollback check has not passed.
    pub ready: std::sync::atomic::AtomicBool,
}

impl Services {
    /// Whether requests are refused as sealed: the barrier is sealed, or
    /// the unseal has not finished (audit devices, rollback check).
    pub fn is_sealed(&self) -> bool {
        !self.ready.load(std::sync::atomic::Ordering::Acquire) || self.barrier.is_sealed()
    }

    /// Finds the backend and mount serving `path` (canonical).
    pub(crate) fn target(&self, path: &str) -> Result<Option<Target>, Error> {
        let b = &self.barrier;
        if path == "sys" || path.starts_with("sys/") {
            return Ok(Some(Target {
                backend: &sys::Sys,
                mount_path: "sys/".into(),
                view: View::new(b.clone(), ""),
                rel: path.strip_prefix("sys/").unwrap_or("").into(),
            }));
        }
        if path == "auth/token" || path.starts_with("auth/token/") {
            return Ok(Some(Target {
                backend: &token::TokenBackend,
                mount_path: "auth/token/".into(),
                view: View::new(b.clone(), "sys/token/"),
                rel: path.strip_prefix("auth/token/").unwrap_or("").into(),
            }));
        }
        let (table, inner, prefix) = match path.strip_prefix("auth/") {
            Some(inner) => (crate::mounts::Table::Auth, inner, "auth/"),
            None => (crate::mounts::Table::Logical, path, ""),
        };
        let Some(r) = self.mounts.resolve(table, inner)? else {
            return Ok(None);
        };
        let backend: &'static dyn Backend = match r.mount.kind {
            crate::mounts::Kind::KvV2 => &kv::Kv,
            crate::mounts::Kind::Transit => &transit::Transit,
            crate::mounts::Kind::Userpass => &userpass::Userpass,
            crate::mounts::Kind::Approle => &approle::Approle,
        };
        Ok(Some(Target {
            backend,
            mount_path: format!("{prefix}{}", r.path),
            view: View::new(b.clone(), r.mount.storage_prefix()),
            rel: r.rest,
        }))
    }

    /// The configured audit devices.
    pub fn audit_table(&self) -> Result<BTreeMap<String, crate::audit::Device>, Error> {
        match self.barrier.get(crate::audit::TABLE)? {
            None => Ok(BTreeMap::new()),
            Some(b) => serde_json::from_slice::<BTreeMap<String, crate::audit::Device>>(&b)
                .map(|t| t.into_iter().map(|(p, d)| (p, d.migrated())).collect())
                .map_err(|e| Error::Corrupt(format!("audit table: {e}"))),
        }
    }

    /// Seals: closes the audit devices (after their last checkpoint),
    /// forgets the merged ACLs, then the keys.
    pub fn seal(&self) {
        self.ready
            .store(false, std::sync::atomic::Ordering::Release);
        self.audit.close_all();
        self.policies.forget();
        self.barrier.seal();
    }

    /// What follows a successful unseal: the audit devices reopen, and the
    /// storage must not be older than the newest storage epoch anchored in
    /// them (a rolled-back store seals again, unless the operator accepts
    /// storage changes).
    pub fn after_unseal(&self) -> Result<(), Error> {
        let table = match self.audit_table() {
            Ok(t) => t,
            Err(e) => {
                self.seal();
                return Err(e);
            }
        };
        let accept = self.barrier.on_tamper() == crate::barrier::OnTamper::Accept;
        self.audit.load(&table, accept);
        // A device that cannot be opened cannot vouch for the storage's
        // epoch: stay sealed rather than serve what may be an old copy.
        if let Some((device, why)) = self.audit.unavailable().into_iter().next() {
            self.seal();
            return Err(Error::Audit(format!(
                "audit device {device} cannot be opened ({why}); the vault stays sealed rather than serve requests it cannot record, or storage it cannot check against the epochs anchored in a citadel log. Restore the device's file or log, or start the server with --accept-storage-changes to begin a new log"
            )));
        }
        let epoch = self.barrier.epoch();
        if let Some((anchored, device)) = self.audit.newest_anchor() {
            if anchored > epoch {
                if self.barrier.on_tamper() == crate::barrier::OnTamper::Accept {
                    if let Err(e) = self.barrier.raise_epoch(anchored + 1) {
                        self.seal();
                        return Err(e);
                    }
                    self.ready.store(true, std::sync::atomic::Ordering::Release);
                    return Ok(());
                }
                self.seal();
                return Err(Error::Corrupt(format!(
                    "storage rollback detected: the storage is at epoch {epoch}, but audit device {device} recorded epoch {anchored}; the storage was restored from an older copy, so revoked tokens and old secrets would come back. The vault stays sealed: restore the newest storage, or start the server with --accept-storage-changes to continue from this copy"
                )));
            }
        }
        self.ready.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// The gauges of `sys/metrics`.
    pub fn gauges(&self) -> crate::metrics::Gauges {
        let sealed = self.is_sealed();
        let (tokens, leases) = if sealed {
            (0, 0)
        } else {
            self.tokens.census().unwrap_or((0, 0))
        };
        crate::metrics::Gauges {
            sealed,
            initialized: self.barrier.is_initialized().unwrap_or(false),
            tokens,
            leases,
            audit_devices: self.audit.count() as u64,
            epoch: self.barrier.epoch(),
        }
    }
}

/// What a handler gets besides its route and fields.
pub struct Ctx<'a> {
    /// The mount's storage.
    pub view: View,
    /// The mount's path (`secret/`, `auth/userpass/`, `sys/`).
    pub mount_path: &'a str,
    /// The operation (after the existence check).
    pub op: Operation,
    /// The caller's token entry, when the route needs a token.
    pub token: Option<&'a TokenEntry>,
    /// The token the caller sent (`auth/token/lookup-self` shows it).
    pub token_str: Option<&'a str>,
    /// Whether the caller's policies grant `sudo` on this path.
    pub sudo: bool,
    /// The stores.
    pub services: &'a Services,
}

/// A backend.
pub trait Backend: Send + Sync {
    /// Its routes, tried in order.
    fn routes(&self) -> &'static [Route];
    /// The `mount_type` its envelopes carry.
    fn mount_type(&self) -> &'static str;
    /// Whether the object an `Update` on `m` targets exists.
    fn exists(&self, _view: &View, _m: &Matched) -> Result<bool, Error> {
        Ok(true)
    }
    /// Whether this request runs on the heavy-work pool (by default, what
    /// its route declares; a backend may look at the body and the stored
    /// object).
    fn is_heavy(
        &self,
        _view: &View,
        m: &Matched,
        _op: crate::request::Operation,
        _body: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        m.route.heavy
    }
    /// Serves a request.
    fn handle(&self, ctx: &Ctx<'_>, m: &Matched, f: &Fields) -> Result<Reply, Error>;
}

/// A write the ACL allowed as a *create* (what it writes did not exist when
/// checked) is refused, under the lock of `key`, if `key` exists now:
/// another request created it in between, and a token that may only
/// create must not overwrite it. Sent again, the write is checked as an
/// update.
pub(crate) fn created_meanwhile(ctx: &Ctx<'_>, key: &str) -> Result<(), Error> {
    if ctx.op == crate::request::Operation::Create && ctx.view.get(key)?.is_some() {
        return Err(Error::bad(
            "it was created by another request while this one was being checked; send it again",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::Ty;

    static ROUTES: &[Route] = &[
        Route::new(
            "policy",
            &[
                Seg::Lit("policies"),
                Seg::Lit("acl"),
                Seg::Name("name", crate::policy::fold_name),
            ],
            &[Operation::Read],
            &[],
        ),
        Route::new(
            "data",
            &[Seg::Lit("data"), Seg::Rest("path")],
            &[Operation::Read],
            &[Field::opt("version", Ty::Int)],
        ),
        Route::new(
            "list",
            &[Seg::Lit("metadata"), Seg::RestOpt("path")],
            &[Operation::List],
            &[],
        ),
    ];

    #[test]
    fn routes_fold_names_into_the_canonical_path() {
        let m = match_route(ROUTES, "policies/acl/ OPS ").unwrap();
        assert_eq!(
            (m.route.name, m.path.as_str(), m.param("name")),
            ("policy", "policies/acl/ops", "ops")
        );
        assert!(match_route(ROUTES, "policies/acl/a b").is_none());
        assert!(match_route(ROUTES, "policies/acl").is_none());
        let m = match_route(ROUTES, "data/a/B/c").unwrap();
        assert_eq!((m.path.as_str(), m.param("path")), ("data/a/B/c", "a/B/c"));
        assert!(match_route(ROUTES, "data").is_none());
        let m = match_route(ROUTES, "metadata").unwrap();
        assert_eq!((m.path.as_str(), m.param("path")), ("metadata", ""));
        assert!(match_route(ROUTES, "other").is_none());
    }
}
