//! The request core: [`Core::handle`] takes a [`Request`] and returns a
//! [`Response`], with no HTTP, no sockets and no async runtime below it.
//!
//! One request, in order:
//!
//! 1. the path is canonicalised, once ([`crate::path`]), and the query and
//!    body decoded (the body within a bound on its number of values);
//! 2. the vault must be unsealed, except for the few `sys/` routes that
//!    serve a sealed vault;
//! 3. the path is routed: `sys/`, `auth/token/`, an auth method or a
//!    secrets engine (longest mount prefix), then one of the backend's
//!    routes, which folds the names the backend folds; the canonical path
//!    *built from the matched values* is what the ACL checks, and those
//!    same values are all the handler gets;
//! 4. the token is looked up (unless the route needs none), the request
//!    recorded by the audit devices (fail closed), `update` turned into
//!    `create` when the route's object does not exist, and the ACL checked
//!    (with `sudo` where the route needs it);
//! 5. a use is spent from a use-limited token (its last use revokes it when
//!    the request ends), the fields are decoded against the route's schema,
//!    the backend runs;
//! 6. a login's result becomes a token here and nowhere else (never with
//!    `root`), the response is recorded, and the metrics counted.
//!
//! The invariant this order keeps: **the path the ACL evaluated is the
//! path the backend serves**, so no spelling of a path reaches data its
//! canonical spelling is denied.

use crate::audit::{Devices, Record};
use crate::backend::{
    self, Access, Ctx, Limits, Login, Matched, Reply, Services, acl_path, match_route,
};
use crate::barrier::{Barrier, OnTamper, Unsealing};
use crate::error::Error;
use crate::fields::{Fields, parse_body};
use crate::metrics::Metrics;
use crate::mounts::{Kind, Mounts, Table};
use crate::path::{Canon, canonicalize, parse_query};
use crate::policy::PolicyStore;
use crate::request::{Body, Operation, Request, Response};
use crate::storage::Physical;
use crate::token_store::{NewToken, Spend, TokenEntry, TokenStore};
use crate::view::View;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Most JSON values (objects, lists, scalars) one request body may hold.
pub const MAX_BODY_VALUES: usize = 200_000;

/// How a core is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Whether unseal accepts storage that fails its integrity or rollback
    /// checks (the operator restored it on purpose).
    pub on_tamper: OnTamper,
    /// How often audit devices sign a checkpoint while entries arrive.
    pub checkpoint_every: Duration,
    /// Work limits per request.
    pub limits: Limits,
    /// Whether `sys/metrics` answers without a token (and while sealed),
    /// as Vault's `unauthenticated_metrics_access`.
    pub unauthenticated_metrics: bool,
    /// The directories `file` audit devices may write in (none: `file`
    /// devices are refused). A sudo token choosing any file the server can
    /// write is how CVE-2025-6000 ran code; the operator names the places.
    pub audit_file_dirs: Vec<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            on_tamper: OnTamper::Refuse,
            checkpoint_every: Duration::from_secs(1),
            limits: Limits::default(),
            unauthenticated_metrics: false,
            audit_file_dirs: Vec::new(),
        }
    }
}

/// A request after the work that happens once: the path canonicalised, the
/// body and query decoded, and whether it is heavy.
pub struct Prepared {
    operation: Operation,
    canon: Result<Canon, Error>,
    data: Result<Map<String, Value>, Error>,
    token: Option<Zeroizing<String>>,
    client: Option<std::net::IpAddr>,
    raw_path: String,
    request_id: String,
    heavy: bool,
    anonymous: bool,
    started: Instant,
}

impl Prepared {
    /// Whether it does CPU-heavy work (to run off the async workers).
    pub fn is_heavy(&self) -> bool {
        self.heavy
    }

    /// Whether its route needs no token (a login, an unseal): anyone can
    /// send it, so the HTTP layer bounds how many one client has waiting.
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }
}

/// What a request leaves for the log line, the audit and the metrics.
#[derive(Default)]
struct Trail {
    path: String,
    route: String,
    accessor: Option<String>,
    /// The token's policies and display name, for the audit entries.
    policies: Option<Vec<String>>,
    display_name: Option<String>,
    /// The audit devices' generation the request's entry went to.
    audited: Option<u64>,
}

impl Trail {
    /// Notes the client's token (when it was valid) for the audit entries.
    fn token(&mut self, e: Option<&TokenEntry>) {
        self.accessor = e.map(|e| e.accessor.clone());
        self.policies = e.map(|e| e.policies.clone());
        self.display_name = e.map(|e| e.display_name.clone());
    }
}

/// The vault.
pub struct Core {
    services: Services,
    config: Config,
}

impl Core {
    /// A vault over `storage` (named `storage_type` in status output).
    pub fn new(storage: Arc<dyn Physical>, storage_type: &str, config: Config) -> Self {
        let barrier = Arc::new(Barrier::new(storage, storage_type, config.on_tamper));
        let metrics = Arc::new(Metrics::default());
        let services = Services {
            tokens: TokenStore::new(barrier.clone()),
            policies: PolicyStore::new(View::new(barrier.clone(), "sys/policy/")),
            mounts: Mounts::new(barrier.clone()),
            audit: Devices::new(
                barrier.epoch_counter(),
                config.checkpoint_every,
                metrics.clone(),
            )
            .with_file_dirs(config.audit_file_dirs.clone()),
            metrics,
            limits: config.limits,
            barrier,
            ready: std::sync::atomic::AtomicBool::new(false),
        };
        Self { services, config }
    }

    /// The metrics (the HTTP layer adds its pool's figures).
    pub fn metrics(&self) -> &Metrics {
        &self.services.metrics
    }

    /// Whether the vault is sealed.
    pub fn is_sealed(&self) -> bool {
        self.services.is_sealed()
    }

    /// Whether the vault was initialised.
    pub fn is_initialized(&self) -> Result<bool, Error> {
        self.services.barrier.is_initialized()
    }

    /// A development vault: initialised with one unseal key, unsealed, KV
    /// v2 at `secret/`. Returns the unseal key and the root token.
    pub fn init_dev(&self) -> Result<(Zeroizing<Vec<u8>>, Zeroizing<String>), Error> {
        let mut root = None;
        let r = self.services.barrier.init(1, 1, |k| {
            let (t, recs) = crate::token_store::root_token_records(k.token_key())?;
            root = Some(t);
            Ok(recs)
        })?;
        let key = r
            .keys
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal("no unseal key".into()))?;
        if self.services.barrier.unseal(&hex::encode(&key[..]))? != Unsealing::Unsealed {
            return Err(Error::Internal("the dev vault did not unseal".into()));
        }
        self.services.after_unseal()?;
        self.services.mounts.add(
            Table::Logical,
            "secret/",
            Kind::KvV2,
            "key/value secret storage",
        )?;
        let root = root.ok_or_else(|| Error::Internal("no root token".into()))?;
        Ok((key, root))
    }

    /// Makes every audit entry handed over so far durable.
    pub fn flush_audit(&self) -> Result<(), Error> {
        self.services.audit.flush()
    }

    /// Opens every `file` audit device's file again, after a log rotation
    /// moved it (the server does this on SIGHUP, as Vault does).
    pub fn reopen_audit_files(&self) {
        self.services.audit.reopen_files();
    }

    /// Closes the audit devices after their last checkpoint (at shutdown).
    pub fn shutdown(&self) {
        self.services.audit.close_all();
    }

    /// Serves one request.
    pub fn handle(&self, req: Request) -> Response {
        self.execute(self.prepare(req))
    }

    /// Canonicalises and decodes a request, once; says whether it is heavy.
    pub fn prepare(&self, req: Request) -> Prepared {
        let started = Instant::now();
        let request_id = crate::ids::uuid().unwrap_or_default();
        let canon = canonicalize(&req.path);
        let mut operation = req.operation;
        let data = parse_query(&req.query).and_then(|mut query| {
            if let Some(i) = query.iter().position(|(k, _)| k == "list") {
                let (_, v) = query.remove(i);
                if operation == Operation::Read
                    && matches!(v.as_str(), "true" | "1" | "t" | "T" | "TRUE" | "True")
                {
                    operation = Operation::List;
                }
            }
            let mut data = parse_body(&req.body, MAX_BODY_VALUES)?;
            for (k, v) in query {
                if data.contains_key(&k) {
                    return Err(Error::bad(format!(
                        "{k:?} is given both in the query and in the body"
                    )));
                }
                data.insert(k, Value::String(v));
            }
            Ok(data)
        });
        let mut p = Prepared {
            operation,
            canon,
            data,
            token: req.token,
            client: req.client,
            raw_path: req.path,
            request_id,
            heavy: false,
            anonymous: false,
            started,
        };
        (p.heavy, p.anonymous) = self.classify(&p);
        p
    }

    /// (heavy, anonymous): a scheduling hint; the request is routed again,
    /// authoritatively, when it runs.
    fn classify(&self, p: &Prepared) -> (bool, bool) {
        let (Ok(Canon::Path(c)), Ok(data)) = (&p.canon, &p.data) else {
            return (false, false);
        };
        let Ok(Some(t)) = self.services.target(c.as_str()) else {
            return (false, false);
        };
        let Some(m) = match_route(t.backend.routes(), &t.rel) else {
            return (false, false);
        };
        let heavy = t.backend.is_heavy(&t.view, &m, p.operation, data);
        (heavy, m.route.access == Access::None)
    }

    /// Answers a prepared request with `e` without running it (the HTTP
    /// layer's pool is full).
    pub fn refuse(&self, p: Prepared, e: Error) -> Response {
        let trail = Trail {
            path: match &p.canon {
                Ok(Canon::Path(c)) => c.as_str().to_string(),
                _ => String::new(),
            },
            ..Default::default()
        };
        let msg = e.public_message(&p.request_id);
        self.finish(&p, trail, e.status(), Body::Errors(vec![msg]))
    }

    /// Serves a prepared request.
    pub fn execute(&self, p: Prepared) -> Response {
        let (r, ticket) = self.execute_pending(p);
        self.recorded(r, ticket.wait())
    }

    /// A response whose audit entries could not be made durable is not
    /// given: the client gets the audit error instead.
    pub fn recorded(&self, r: Response, durable: Result<(), Error>) -> Response {
        let Err(e) = durable else {
            return r;
        };
        tracing::error!(target: "citadel_vault::request", request_id = %r.request_id, error = %e, "audit failed");
        Response {
            status: e.status(),
            body: Body::Errors(vec![e.public_message(&r.request_id)]),
            ..r
        }
    }

    /// [`Core::execute`] without waiting: the response, and the ticket
    /// that says when its audit entries are durable on every device. The
    /// response must not be given before that, nor at all if they cannot
    /// be ([`Core::recorded`]).
    pub fn execute_pending(&self, p: Prepared) -> (Response, crate::audit::Ticket) {
        let mut ticket = crate::audit::Ticket::default();
        let mut trail = Trail::default();
        let result = self.run(&p, &mut trail);
        let (status, body) = match result {
            Ok(r) => r,
            Err(e) => {
                if e.is_server_error() {
                    tracing::error!(
                        target: "citadel_vault::request",
                        request_id = %p.request_id,
                        path = %trail.path,
                        error = %e,
                        "request failed"
                    );
                }
                let msg = e.public_message(&p.request_id);
                let errors = match e {
                    Error::NotFound(ref m) if m.is_empty() => Vec::new(),
                    // As OpenBao: a 405 carries no message.
                    Error::MethodNotAllowed => Vec::new(),
                    _ => vec![msg],
                };
                (e.status(), Body::Errors(errors))
            }
        };
        // `sys/seal` closes the devices it was recorded to: like Vault, its
        // request is recorded (and covered by the devices' last
        // checkpoint) and its answer is not.
        let sealed_by_this = trail.route == "sys/ seal" && status == 204;
        if let Some(generation) = trail.audited.filter(|_| !sealed_by_this) {
            // A login or a token creation: the new token's accessor links
            // this entry to what the token does later.
            let issued = match &body {
                Body::Envelope { auth, .. } => auth["accessor"].as_str(),
                _ => None,
            };
            let error = match &body {
                Body::Errors(e) => e.first().map(String::as_str),
                _ => None,
            };
            let r = self.services.audit.record_response(
                &Record {
                    kind: "response",
                    operation: p.operation.as_str(),
                    path: &trail.path,
                    token: p.token.as_deref().map(String::as_str),
                    accessor: trail.accessor.as_deref(),
                    request_id: &p.request_id,
                    status: Some(status),
                    client: p.client,
                    issued_accessor: issued,
                    policies: trail.policies.as_deref(),
                    display_name: trail.display_name.as_deref(),
                    error,
                },
                generation,
            );
            match r {
                Ok(t) => ticket = t,
                Err(e) => {
                    // The request ran; its answer cannot be recorded, so it
                    // is not given.
                    tracing::error!(target: "citadel_vault::request", request_id = %p.request_id, error = %e, "audit failed");
                    let body = Body::Errors(vec![e.public_message(&p.request_id)]);
                    return (self.finish(&p, trail, e.status(), body), ticket);
                }
            }
        }
        (self.finish(&p, trail, status, body), ticket)
    }

    fn finish(&self, p: &Prepared, trail: Trail, status: u16, body: Body) -> Response {
        let latency = p.started.elapsed();
        let route = if trail.route.is_empty() {
            "(none)".to_string()
        } else {
            trail.route
        };
        self.services
            .metrics
            .request(&route, p.operation.as_str(), status, latency);
        Response {
            status,
            body,
            request_id: p.request_id.clone(),
            path: trail.path,
            route,
            accessor: trail.accessor,
        }
    }

    fn run(&self, p: &Prepared, trail: &mut Trail) -> Result<(u16, Body), Error> {
        let canon = match &p.canon {
            Ok(Canon::Path(c)) => c,
            Ok(Canon::Redirect(to)) => {
                trail.route = "(redirect)".into();
                return Ok((307, Body::Redirect(to.clone())));
            }
            Err(e) => {
                trail.path = p.raw_path.chars().take(256).collect();
                return Err(Error::bad(e.to_string()));
            }
        };
        let path = canon.as_str();
        trail.path = path.to_string();
        let sealed = self.services.is_sealed();
        // As OpenBao: a write names an object, never a directory.
        if canon.trailing_slash() && matches!(p.operation, Operation::Update | Operation::Patch) {
            return Err(Error::bad("cannot write to a path ending in '/'"));
        }
        // OpenBao's HTTP mux sends `/v1/sys` to `/v1/sys/`.
        if path == "sys" && !canon.trailing_slash() {
            trail.route = "(redirect)".into();
            return Ok((307, Body::Redirect("sys/".into())));
        }
        let target = match self.services.target(path) {
            Ok(Some(t)) => t,
            Ok(None) => {
                // No mount: still a 403 to whoever the ACL does not let
                // see the path, so that which mounts exist is not told to
                // anyone (OpenBao's order).
                if sealed {
                    return Err(Error::Sealed);
                }
                let token = p.token.as_deref().map(String::as_str);
                let e = match token {
                    Some(t) => self.services.tokens.lookup(t)?,
                    None => None,
                };
                trail.token(e.as_ref());
                self.audit_request(p, path, trail)?;
                return Err(self.denied_or(
                    e.as_ref(),
                    &acl_path("", path, p.operation),
                    p.operation,
                    format!("no handler for route \"{path}\". route entry not found."),
                ));
            }
            Err(Error::Sealed) => return Err(Error::Sealed),
            Err(e) => return Err(e),
        };
        let matched = match_route(target.backend.routes(), &target.rel);
        trail.route = format!(
            "{} {}",
            target.mount_path,
            matched.as_ref().map_or("(unknown)", |m| m.route.name)
        );
        let metrics_open = self.config.unauthenticated_metrics && path == "sys/metrics";
        if sealed && !(metrics_open || matched.as_ref().is_some_and(|m| m.route.sealed_ok)) {
            return Err(Error::Sealed);
        }
        let access = match &matched {
            _ if metrics_open => Access::None,
            Some(m) => m.route.access,
            None => Access::Acl,
        };
        // The token, when the route needs one.
        let token_str = p.token.as_deref().map(String::as_str);
        let entry: Option<TokenEntry> = match (access, token_str) {
            (Access::None, _) | (_, None) => None,
            (_, Some(t)) => self.services.tokens.lookup(t)?,
        };
        trail.token(entry.as_ref());
        // The unauthenticated routes that work sealed (health, init,
        // seal-status, leader, unseal) are not audited, as Vault's raw
        // handlers are not: a failed device must not stop an operator from
        // seeing the seal status or unsealing.
        if !sealed && !matched.as_ref().is_some_and(|m| m.route.sealed_ok) {
            self.audit_request(p, path, trail)?;
        }
        let data = p.data.as_ref().map_err(|e| Error::bad(e.to_string()))?;
        let Some(m) = matched else {
            return Err(self.denied_or(
                entry.as_ref(),
                &acl_path(&target.mount_path, &target.rel, p.operation),
                p.operation,
                format!("unsupported path: {path}"),
            ));
        };
        let mut op = p.operation;
        let allowed_op = |op: Operation| {
            m.route.ops.contains(&op)
                || (op == Operation::Create && m.route.ops.contains(&Operation::Update))
        };
        if op == Operation::Update
            && m.route.existence
            && !sealed
            && !target.backend.exists(&target.view, &m)?
        {
            op = Operation::Create;
        }
        let acl_path = acl_path(&target.mount_path, &m.path, op);
        trail.path = acl_path.clone();
        let mut sudo = false;
        match access {
            Access::None => {}
            Access::AnyToken => {
                entry.as_ref().ok_or(Error::PermissionDenied)?;
            }
            Access::Acl => {
                let e = entry.as_ref().ok_or(Error::PermissionDenied)?;
                let acl = self.services.policies.acl(&e.policies)?;
                let (allowed, has_sudo) = backend::permits(&acl, &target, &m, op);
                if !allowed || (m.route.sudo && !has_sudo) {
                    return Err(Error::PermissionDenied);
                }
                sudo = has_sudo;
            }
        }
        if !allowed_op(op) {
            return Err(Error::MethodNotAllowed);
        }
        let spend = match (&entry, access) {
            (Some(e), Access::Acl | Access::AnyToken) => self.services.tokens.spend(e)?,
            _ => Spend::Fine(0),
        };
        // The handler sees the token as this request left it.
        let mut entry = entry;
        if let Some(e) = entry.as_mut() {
            match spend {
                Spend::Fine(left) if e.num_uses > 0 => e.num_uses = left,
                Spend::Last => {
                    e.num_uses = 0;
                    e.used_up = true;
                }
                Spend::Fine(_) => {}
            }
        }
        let result = path_fields(&m, data)
            .and_then(|data| Fields::decode(m.route.fields, &data))
            .and_then(|fields| {
                let ctx = Ctx {
                    view: target.view.clone(),
                    mount_path: &target.mount_path,
                    op,
                    token: entry.as_ref(),
                    token_str,
                    sudo,
                    services: &self.services,
                };
                target.backend.handle(&ctx, &m, &fields)
            });
        if spend == Spend::Last {
            if let Some(e) = &entry {
                self.services.tokens.revoke(&e.id)?;
            }
        }
        let reply = result?;
        self.render(reply, target.backend.mount_type(), &target.mount_path, &m)
    }

    /// The error for a path nothing serves: 403 to whoever the ACL does not
    /// let see `acl_path` (as Vault's order, so that what exists is not
    /// told to them), else 404 with `missing`.
    fn denied_or(
        &self,
        entry: Option<&TokenEntry>,
        acl_path: &str,
        op: Operation,
        missing: String,
    ) -> Error {
        let Some(e) = entry else {
            return Error::PermissionDenied;
        };
        match self.services.policies.acl(&e.policies) {
            Ok(acl) if acl.check(acl_path, op).0 => Error::NotFound(missing),
            Ok(_) => Error::PermissionDenied,
            Err(e) => e,
        }
    }

    /// Hands the request's entry to the audit devices: before anything is
    /// decided (denials are recorded too), for every request to the
    /// unsealed vault except the unauthenticated routes that work sealed.
    /// An error fails the request.
    fn audit_request(&self, p: &Prepared, path: &str, trail: &mut Trail) -> Result<(), Error> {
        if path == "sys/health" {
            return Ok(());
        }
        let generation = self.services.audit.record_since(
            &Record {
                kind: "request",
                operation: p.operation.as_str(),
                path,
                token: p.token.as_deref().map(String::as_str),
                accessor: trail.accessor.as_deref(),
                request_id: &p.request_id,
                status: None,
                client: p.client,
                issued_accessor: None,
                policies: trail.policies.as_deref(),
                display_name: trail.display_name.as_deref(),
                error: None,
            },
            None,
        )?;
        // Sealing clears `ready` before it closes the devices: a request
        // that found them closed (recorded to nothing) sees the seal here.
        if self.services.is_sealed() {
            return Err(Error::Sealed);
        }
        trail.audited = Some(generation);
        Ok(())
    }

    /// Turns a backend's reply into a status and body; a login becomes a
    /// token here.
    fn render(
        &self,
        reply: Reply,
        mount_type: &'static str,
        mount_path: &str,
        m: &Matched,
    ) -> Result<(u16, Body), Error> {
        let env = |data: Value, auth: Value| Body::Envelope {
            data,
            auth,
            mount_type,
        };
        Ok(match reply {
            Reply::Data(d) => (200, env(d, Value::Null)),
            Reply::Status(s, d) => (s, env(d, Value::Null)),
            Reply::Auth(a) => (200, env(Value::Null, a)),
            Reply::Raw(s, v) => (s, Body::Json(v)),
            Reply::NoContent => (204, Body::Empty),
            Reply::NotFound => (404, Body::Errors(Vec::new())),
            Reply::NotFoundData(d) => (404, env(d, Value::Null)),
            Reply::Text(ct, t) => (
                200,
                Body::Text {
                    content_type: ct,
                    text: t,
                },
            ),
            Reply::Login(l) => {
                let (tok, e) = self.mint(l, &format!("{mount_path}{}", m.path))?;
                (200, env(Value::Null, backend::token::auth_json(&tok, &e)))
            }
        })
    }

    /// Mints the token of a login. Only the core does this, and never with
    /// the `root` policy (the token store refuses it without a parent).
    fn mint(&self, l: Login, path: &str) -> Result<(Zeroizing<String>, TokenEntry), Error> {
        self.services.tokens.create(
            None,
            false,
            NewToken {
                policies: l.policies,
                ttl: l.ttl,
                num_uses: l.num_uses,
                orphan: true,
                no_default_policy: false,
                renewable: true,
                display_name: l.display_name,
                meta: l.meta,
                path: path.to_string(),
            },
        )
    }
}

/// The body without the route's path parameters. Clients repeat them in
/// the body (hvac sends `name`), which Vault accepts because the path wins;
/// here a repeated parameter must name the same thing as the path, or the
/// request is refused: the path is what the ACL checked.
fn path_fields<'a>(
    m: &Matched,
    data: &'a Map<String, Value>,
) -> Result<std::borrow::Cow<'a, Map<String, Value>>, Error> {
    if !m
        .params
        .iter()
        .any(|(n, v)| !v.is_empty() && data.contains_key(*n))
    {
        return Ok(std::borrow::Cow::Borrowed(data));
    }
    let mut d = data.clone();
    for (name, value) in &m.params {
        // An optional segment the path left out is not a path parameter.
        if value.is_empty() {
            continue;
        }
        let Some(v) = d.remove(*name) else {
            continue;
        };
        let given = match &v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let same = given == *value
            || m.route.pattern.iter().any(|s| match s {
                backend::Seg::Name(n, fold) => {
                    n == name && fold(&given).as_deref() == Some(value.as_str())
                }
                _ => false,
            });
        if !same {
            return Err(Error::bad(format!(
                "{name} in the body ({given:?}) is not the {name} of the path ({value:?})"
            )));
        }
    }
    Ok(std::borrow::Cow::Owned(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Operation;

    /// A development vault in memory: the core, its unseal key and root token.
    fn dev_core() -> (Core, Zeroizing<Vec<u8>>, Zeroizing<String>) {
        let core = Core::new(
            Arc::new(crate::storage::Memory::default()),
            "inmem",
            Config::default(),
        );
        let (key, root) = core.init_dev().unwrap();
        (core, key, root)
    }

    /// Enables a file audit device logging to `dir`.
    fn enable_audit(core: &Core, root: &str, dir: &std::path::Path) {
        let body = serde_json::json!({"type": "citadel", "options": {"file_path": dir}});
        let r = core.handle(
            Request::new(Operation::Update, "sys/audit/citadel")
                .token(root)
                .json(&body),
        );
        assert_eq!(r.status, 204);
    }

    /// A vault upgraded from a build whose `file` device wrote a citadel
    /// log (a table without `version`) keeps writing that log after
    /// unseal: the old entry reads as a `citadel` device.
    #[test]
    fn an_old_file_device_stays_a_citadel_log() {
        let dir = tempfile::tempdir().unwrap();
        let (core, _, root) = dev_core();
        let log = dir.path().join("a");
        enable_audit(&core, &root, &log);
        core.services.audit.close_all();
        let old =
            serde_json::json!({"citadel/": {"type": "file", "description": "", "file_path": log}});
        core.services
            .barrier
            .put(crate::audit::TABLE, &serde_json::to_vec(&old).unwrap())
            .unwrap();
        core.services.after_unseal().unwrap();
        let r = core.handle(Request::new(Operation::Read, "sys/audit").token(&root));
        assert_eq!(
            r.json_body().unwrap()["data"]["citadel/"]["type"],
            "citadel"
        );
        let before = citadel_audit::verify::verify(&log, None).unwrap().entries;
        let r = core.handle(Request::new(Operation::Read, "sys/mounts").token(&root));
        assert_eq!(r.status, 200);
        core.shutdown();
        let after = citadel_audit::verify::verify(&log, None).unwrap().entries;
        assert!(after >= before + 2, "{before} -> {after}");
    }

    /// Found by helper-23: with two failed devices neither could be
    /// disabled (each refused the other's removal). Disabling a device is
    /// never refused by a failed one.
    #[test]
    fn failed_devices_can_all_be_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let (core, _, root) = dev_core();
        for name in ["a", "b"] {
            let body = serde_json::json!({"type": "citadel", "options": {"file_path": dir.path().join(name)}});
            let r = core.handle(
                Request::new(Operation::Update, format!("sys/audit/{name}"))
                    .token(&root)
                    .json(&body),
            );
            assert_eq!(r.status, 204);
        }
        core.services.audit.fail_all("disk full");
        let r = core.handle(Request::new(Operation::Read, "sys/mounts").token(&root));
        assert_eq!(r.status, 500);
        for name in ["a", "b"] {
            let r = core
                .handle(Request::new(Operation::Delete, format!("sys/audit/{name}")).token(&root));
            assert_eq!(r.status, 204, "{name}: {:?}", r.json_body());
        }
        let r = core.handle(Request::new(Operation::Read, "sys/mounts").token(&root));
        assert_eq!(r.status, 200);
    }

    /// Found by the races review: with a failed audit device, seal-status,
    /// health, leader and unseal answered 500, so an operator could not
    /// even see the seal state. They are not audited (as Vault's raw
    /// handlers are not); everything else still fails closed.
    #[test]
    fn a_failed_audit_device_leaves_the_sealed_routes_working() {
        let dir = tempfile::tempdir().unwrap();
        let (core, _, root) = dev_core();
        enable_audit(&core, &root, &dir.path().join("a"));
        core.services.audit.fail_all("disk full");
        for path in ["sys/seal-status", "sys/health", "sys/leader", "sys/init"] {
            let r = core.handle(Request::new(Operation::Read, path));
            assert_eq!(r.status, 200, "{path}: {:?}", r.json_body());
        }
        let r = core.handle(Request::new(Operation::Read, "sys/mounts").token(&root));
        assert_eq!(r.status, 500, "{:?}", r.json_body());
    }

    /// Found by the races review: between the barrier's unseal and the
    /// audit devices' reopening (and the rollback check), requests were
    /// served unaudited from storage not yet checked. Until `after_unseal`
    /// finishes, the vault answers as sealed.
    #[test]
    fn requests_wait_for_the_whole_unseal() {
        let (core, key, root) = dev_core();
        let get = || core.handle(Request::new(Operation::Read, "sys/mounts").token(&root));
        assert_eq!(get().status, 200);
        core.services.seal();
        assert_eq!(
            core.services
                .barrier
                .unseal(&hex::encode(&key[..]))
                .unwrap(),
            Unsealing::Unsealed
        );
        assert!(!core.services.barrier.is_sealed());
        assert_eq!(get().status, 503);
        let r = core.handle(Request::new(Operation::Read, "sys/seal-status"));
        assert_eq!(r.json_body().unwrap()["sealed"], true);
        core.services.after_unseal().unwrap();
        assert_eq!(get().status, 200);
        // A response is not recorded to devices other than its request's.
        let dir = tempfile::tempdir().unwrap();
        enable_audit(&core, &root, &dir.path().join("a"));
        let rec = crate::audit::Record {
            kind: "request",
            operation: "read",
            path: "sys/mounts",
            token: None,
            accessor: None,
            request_id: "r",
            status: None,
            client: None,
            issued_accessor: None,
            policies: None,
            display_name: None,
            error: None,
        };
        let g = core.services.audit.record_since(&rec, None).unwrap();
        core.services.audit.close_all();
        assert!(core.services.audit.record_since(&rec, Some(g)).is_err());
    }
}
