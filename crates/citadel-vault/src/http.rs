//! The HTTP API: Vault's paths, JSON shapes, status codes and
//! `{"errors": [...]}` bodies (with `Content-Type: application/json`
//! exactly, which hvac needs to read them).

use crate::Error;
use crate::core::{TokenEntry, Vault};
use crate::policy::Acl;
use crate::tokens;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The router for a vault.
pub fn router(vault: Arc<Vault>) -> Router {
    Router::new()
        .route("/v1/sys/health", get(health).head(health))
        .route("/v1/sys/init", any(init))
        .route("/v1/sys/seal-status", get(seal_status))
        .route("/v1/sys/leader", get(leader))
        .route("/v1/sys/unseal", any(unseal))
        .route("/v1/sys/seal", any(seal))
        .route("/v1/sys/rotate", any(rotate))
        .route("/v1/auth/token/{op}", any(token_op))
        .route("/v1/sys/policy", get(list_policies_legacy))
        .route("/v1/sys/policy/{name}", any(policy_legacy))
        .route("/v1/sys/policies/acl", any(list_policies_acl))
        .route("/v1/sys/policies/acl/{name}", any(policy_acl))
        .route("/v1/sys/mounts", get(list_mounts))
        .route("/v1/sys/mounts/{*path}", any(mount_path))
        .route("/v1/sys/auth", get(list_auth))
        .route("/v1/sys/auth/{*path}", any(auth_path))
        .route("/v1/sys/audit", get(list_audit))
        .route("/v1/sys/audit/{*path}", any(audit_path))
        .route("/v1/sys/internal/ui/mounts/{*path}", get(ui_mount))
        .fallback(fallback)
        .method_not_allowed_fallback(|| async { json_response(405, &json!({"errors": []})) })
        .layer(axum::middleware::from_fn_with_state(
            vault.clone(),
            audit_layer,
        ))
        .with_state(vault)
}

/// Records every request before it runs and its response after, when an
/// audit device is enabled; a device that cannot be written fails the
/// request (fail closed).
async fn audit_layer(
    State(v): State<Arc<Vault>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().trim_start_matches("/v1/").to_string();
    if v.is_sealed() || !v.audit.any() || path == "sys/health" {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let tok = token(req.headers());
    let id = request_id();
    if let Err(e) = v.audit.record("request", &method, &path, &tok, &id, None) {
        return e.into_response();
    }
    let resp = next.run(req).await;
    // Durability by group commit: `serve` commits the devices every few
    // milliseconds (one fsync for all the requests of that window).
    let recorded = v.audit.record(
        "response",
        &method,
        &path,
        &tok,
        &id,
        Some(resp.status().as_u16()),
    );
    match recorded {
        Ok(()) => resp,
        Err(e) => e.into_response(),
    }
}

async fn list_audit(State(v): State<Arc<Vault>>, headers: HeaderMap) -> Response {
    let r = authorize(&v, &headers, "sys/audit", "sudo").and_then(|_| v.audit_table());
    match r {
        Ok(t) => {
            let mut data = serde_json::Map::new();
            for (path, d) in t {
                data.insert(
                    path.clone(),
                    json!({"type": d.kind, "description": d.description, "path": path,
                           "options": {"file_path": d.file_path}, "local": false}),
                );
            }
            sys_listing(data)
        }
        Err(e) => e.into_response(),
    }
}

async fn audit_path(
    State(v): State<Arc<Vault>>,
    method: Method,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = format!("{}/", path.trim_matches('/'));
    let r = authorize(&v, &headers, &format!("sys/audit/{}", path.trim_end_matches('/')), "sudo").and_then(|_| {
        let mut table = v.audit_table()?;
        match method {
            Method::PUT | Method::POST => {
                let b: Value = body(&raw)?;
                let kind = b.get("type").and_then(Value::as_str).unwrap_or_default();
                if kind != "file" {
                    return Err(Error::BadRequest(format!("unknown audit backend type {kind:?}: use \"file\" (a citadel-audit log directory)")));
                }
                let file_path = b
                    .get("options")
                    .and_then(|o| o.get("file_path"))
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty() && *p != "stdout" && *p != "discard")
                    .ok_or_else(|| Error::BadRequest("options.file_path must name the audit log directory".into()))?;
                if table.contains_key(&path) {
                    return Err(Error::BadRequest(format!("path already in use at {path}")));
                }
                let d = crate::audit::Device {
                    kind: kind.into(),
                    description: b.get("description").and_then(Value::as_str).unwrap_or_default().into(),
                    file_path: file_path.into(),
                };
                v.audit.enable(&path, &d)?;
                table.insert(path.clone(), d);
                v.set_audit_table(&table)
            }
            Method::DELETE => {
                table.remove(&path);
                v.set_audit_table(&table)?;
                v.audit.disable(&path);
                Ok(())
            }
            _ => Err(Error::BadRequest("unsupported operation".into())),
        }
    });
    match r {
        Ok(()) => no_content(),
        Err(e) => e.into_response(),
    }
}

fn json_response(status: u16, body: &Value) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body.to_string(),
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn no_content() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        json_response(self.status(), &json!({"errors": [self.to_string()]}))
    }
}

fn method_not_allowed() -> Response {
    json_response(405, &json!({"errors": ["unsupported operation"]}))
}

/// Parses a JSON body as Vault does: empty means `{}`.
fn body<T: for<'de> Deserialize<'de>>(b: &Bytes) -> Result<T, Error> {
    let b: &[u8] = if b.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        b
    };
    serde_json::from_slice(b)
        .map_err(|e| Error::BadRequest(format!("failed to parse JSON input: {e}")))
}

fn token(headers: &HeaderMap) -> String {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return t.to_string();
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string()
}

/// Checks the request's token against its policies for `capability` on
/// `path` (deny by default), counts a use, and returns the token's entry.
fn authorize(
    vault: &Vault,
    headers: &HeaderMap,
    path: &str,
    capability: &str,
) -> Result<TokenEntry, Error> {
    let entry = vault
        .lookup_token(&token(headers))?
        .ok_or(Error::PermissionDenied)?;
    let acl = Acl::new(entry.policies.iter().map(String::as_str), |n| {
        crate::policy::load(vault, n)
    });
    if !acl.allows(path, capability) {
        return Err(Error::PermissionDenied);
    }
    tokens::spend(vault, &entry)?;
    Ok(entry)
}

async fn health(
    State(v): State<Arc<Vault>>,
    method: Method,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let code = |name: &str, default: u16| -> Result<u16, Error> {
        match q.get(name) {
            None => Ok(default),
            Some(s) => s
                .parse::<u16>()
                .map_err(|_| Error::BadRequest(format!("unable to parse {name} code: {s}"))),
        }
    };
    let initialized = match v.is_initialized() {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let sealed = v.is_sealed();
    let status = if !initialized {
        code("uninitcode", 501)
    } else if sealed {
        code("sealedcode", 503)
    } else {
        code("activecode", 200)
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut r = json_response(
        status,
        &json!({
            "initialized": initialized, "sealed": sealed, "standby": false,
            "performance_standby": false, "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled", "server_time_utc": now,
            "version": env!("CARGO_PKG_VERSION"),
        }),
    );
    if method == Method::HEAD {
        *r.body_mut() = axum::body::Body::empty();
    }
    r
}

#[derive(Deserialize)]
struct InitRequest {
    secret_shares: Option<u16>,
    secret_threshold: Option<u16>,
    #[serde(default)]
    pgp_keys: Option<Vec<String>>,
    #[serde(default)]
    stored_shares: Option<u16>,
}

async fn init(State(v): State<Arc<Vault>>, method: Method, raw: Bytes) -> Response {
    match method {
        Method::GET => match v.is_initialized() {
            Ok(i) => json_response(200, &json!({"initialized": i})),
            Err(e) => e.into_response(),
        },
        Method::PUT | Method::POST => {
            let r = (|| {
                let req: InitRequest = body(&raw)?;
                if req.pgp_keys.as_ref().is_some_and(|k| !k.is_empty()) {
                    return Err(Error::BadRequest(
                        "PGP-encrypted unseal keys are not supported".into(),
                    ));
                }
                if req.stored_shares.unwrap_or(0) > 0 {
                    return Err(Error::BadRequest(
                        "stored shares are not supported (Shamir seal)".into(),
                    ));
                }
                let to_u8 = |n: Option<u16>, what: &str| -> Result<u8, Error> {
                    u8::try_from(n.unwrap_or(0))
                        .ok()
                        .filter(|n| *n < 255)
                        .ok_or_else(|| {
                            Error::BadRequest(format!(
                                "invalid seal configuration: {what} must be less than 256"
                            ))
                        })
                };
                let shares = to_u8(req.secret_shares, "shares")?;
                let threshold = to_u8(req.secret_threshold, "threshold")?;
                v.init(shares, threshold)
            })();
            match r {
                Ok(res) => {
                    let hexes: Vec<String> = res.keys.iter().map(|k| hex::encode(&k[..])).collect();
                    let b64s: Vec<String> = res.keys.iter().map(|k| B64.encode(&k[..])).collect();
                    json_response(
                        200,
                        &json!({"keys": hexes, "keys_base64": b64s, "root_token": res.root_token.as_str()}),
                    )
                }
                Err(e) => e.into_response(),
            }
        }
        _ => method_not_allowed(),
    }
}

async fn seal_status(State(v): State<Arc<Vault>>) -> Response {
    match v.seal_status() {
        Ok(s) => json_response(200, &serde_json::to_value(s).unwrap_or_default()),
        Err(e) => e.into_response(),
    }
}

/// `sys/leader`: a single node without high availability (what `vault
/// status` asks after the seal status). Like Vault with storage that has no
/// HA, it answers the same sealed or not, and needs no token.
async fn leader() -> Response {
    json_response(
        200,
        &json!({"ha_enabled": false, "is_self": false, "active_time": "0001-01-01T00:00:00Z",
                "leader_address": "", "leader_cluster_address": "",
                "performance_standby": false, "performance_standby_last_remote_wal": 0}),
    )
}

#[derive(Deserialize)]
struct UnsealRequest {
    key: Option<String>,
    #[serde(default)]
    reset: bool,
    #[serde(default)]
    migrate: bool,
}

async fn unseal(State(v): State<Arc<Vault>>, method: Method, raw: Bytes) -> Response {
    if method != Method::PUT && method != Method::POST {
        return method_not_allowed();
    }
    let r = body::<UnsealRequest>(&raw).and_then(|req| {
        if req.migrate {
            return Err(Error::BadRequest("seal migration is not supported".into()));
        }
        v.unseal(req.key.as_deref(), req.reset)
    });
    match r {
        Ok(s) => json_response(200, &serde_json::to_value(s).unwrap_or_default()),
        Err(Error::NotInitialized) => {
            Error::BadRequest("Vault is not initialized".into()).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn seal(State(v): State<Arc<Vault>>, method: Method, headers: HeaderMap) -> Response {
    if method != Method::PUT && method != Method::POST {
        return method_not_allowed();
    }
    match authorize(&v, &headers, "sys/seal", "sudo") {
        Ok(_) => {
            v.seal();
            no_content()
        }
        Err(e) => e.into_response(),
    }
}

async fn rotate(State(v): State<Arc<Vault>>, method: Method, headers: HeaderMap) -> Response {
    if method != Method::PUT && method != Method::POST {
        return method_not_allowed();
    }
    match authorize(&v, &headers, "sys/rotate", "sudo").and_then(|_| v.rotate()) {
        Ok(_) => no_content(),
        Err(e) => e.into_response(),
    }
}

fn str_field<'a>(b: &'a Value, k: &str) -> &'a str {
    b.get(k).and_then(Value::as_str).unwrap_or_default()
}

async fn token_op(
    State(v): State<Arc<Vault>>,
    method: Method,
    axum::extract::Path(op): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let r = (|| -> Result<Response, Error> {
        let b: Value = if method == Method::GET {
            json!(q)
        } else {
            body(&raw)?
        };
        let path = format!("auth/token/{op}");
        let bad_token = || json_response(403, &json!({"errors": ["bad token"]}));
        match op.as_str() {
            "lookup-self" => {
                let tok = token(&headers);
                let Some(e) = v.lookup_token(&tok)? else {
                    return Err(Error::PermissionDenied);
                };
                authorize(&v, &headers, &path, "read")?;
                Ok(json_response(
                    200,
                    &envelope(tokens::lookup_json(&e, &tok), "token"),
                ))
            }
            "create" | "create-orphan" => {
                let parent = authorize(&v, &headers, &path, "update")?;
                let mut meta = std::collections::BTreeMap::new();
                if let Some(m) = b.get("meta").and_then(Value::as_object) {
                    for (k, val) in m {
                        meta.insert(k.clone(), val.as_str().unwrap_or_default().to_string());
                    }
                }
                let req = tokens::Request {
                    policies: tokens::parse_policies(b.get("policies").unwrap_or(&Value::Null))?,
                    ttl: tokens::parse_duration(b.get("ttl").unwrap_or(&Value::Null))?,
                    num_uses: b.get("num_uses").and_then(Value::as_u64).unwrap_or(0),
                    no_parent: op == "create-orphan"
                        || b.get("no_parent").and_then(Value::as_bool).unwrap_or(false),
                    no_default_policy: b
                        .get("no_default_policy")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    display_name: str_field(&b, "display_name").to_string(),
                    meta,
                };
                let (tok, e) = tokens::create(&v, &parent, req)?;
                let mut env = envelope(Value::Null, "token");
                env["auth"] = tokens::auth_json(&tok, &e);
                Ok(json_response(200, &env))
            }
            "lookup" => {
                authorize(&v, &headers, &path, "update")?;
                match v.lookup_token(str_field(&b, "token"))? {
                    Some(e) => Ok(json_response(
                        200,
                        &envelope(tokens::lookup_json(&e, str_field(&b, "token")), "token"),
                    )),
                    None => Ok(bad_token()),
                }
            }
            "lookup-accessor" => {
                authorize(&v, &headers, &path, "update")?;
                let hash = tokens::by_accessor(&v, str_field(&b, "accessor"))?;
                match hash.map(|h| v.lookup_hash(&h)).transpose()?.flatten() {
                    Some(e) => Ok(json_response(
                        200,
                        &envelope(tokens::lookup_json(&e, ""), "token"),
                    )),
                    None => Ok(bad_token()),
                }
            }
            "revoke" | "revoke-self" | "revoke-accessor" => {
                let me = authorize(&v, &headers, &path, "update")?;
                let target = match op.as_str() {
                    "revoke-self" => Some(me.id_hash),
                    "revoke" => v.lookup_token(str_field(&b, "token"))?.map(|e| e.id_hash),
                    _ => tokens::by_accessor(&v, str_field(&b, "accessor"))?,
                };
                if let Some(h) = target {
                    tokens::revoke(&v, &h)?;
                }
                Ok(no_content())
            }
            "renew-self" | "renew" => {
                let me = authorize(&v, &headers, &path, "update")?;
                let (tok, target) = if op == "renew" {
                    let t = str_field(&b, "token").to_string();
                    let e = v.lookup_token(&t)?;
                    (t, e)
                } else {
                    (token(&headers), Some(me))
                };
                let Some(e) = target else {
                    return Ok(bad_token());
                };
                let inc = tokens::parse_duration(b.get("increment").unwrap_or(&Value::Null))?;
                let e = tokens::renew(&v, &e, inc)?;
                let mut env = envelope(Value::Null, "token");
                env["auth"] = tokens::auth_json(&tok, &e);
                Ok(json_response(200, &env))
            }
            _ => Err(Error::NotFound(format!(
                "no handler for route \"{path}\". route entry not found."
            ))),
        }
    })();
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn list_policies_legacy(State(v): State<Arc<Vault>>, headers: HeaderMap) -> Response {
    match authorize(&v, &headers, "sys/policy", "read").and_then(|_| crate::policy::list(&v)) {
        Ok(names) => json_response(
            200,
            &json!({"policies": names, "keys": names, "data": {"policies": names, "keys": names}}),
        ),
        Err(e) => e.into_response(),
    }
}

async fn list_policies_acl(
    State(v): State<Arc<Vault>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if method.as_str() != "LIST" && method != Method::GET {
        return method_not_allowed();
    }
    match authorize(&v, &headers, "sys/policies/acl", "list").and_then(|_| crate::policy::list(&v))
    {
        Ok(names) => json_response(
            200,
            &envelope(json!({"keys": names, "policies": names}), "system"),
        ),
        Err(e) => e.into_response(),
    }
}

/// Read, write or delete a policy at `sys/policy/NAME` (legacy shape) or
/// `sys/policies/acl/NAME`.
fn policy_op(
    v: &Vault,
    method: &Method,
    headers: &HeaderMap,
    prefix: &str,
    name: &str,
    raw: &Bytes,
    legacy: bool,
) -> Result<Response, Error> {
    let path = format!("{prefix}/{name}");
    let name = crate::policy::check_name(name)?;
    match *method {
        Method::GET => {
            authorize(v, headers, &path, "read")?;
            let Some(text) = crate::policy::read_text(v, &name)? else {
                return Ok(json_response(404, &json!({"errors": []})));
            };
            Ok(if legacy {
                json_response(
                    200,
                    &json!({"name": name, "rules": text, "data": {"name": name, "rules": text}}),
                )
            } else {
                json_response(
                    200,
                    &envelope(json!({"name": name, "policy": text}), "system"),
                )
            })
        }
        Method::PUT | Method::POST => {
            authorize(v, headers, &path, "update")?;
            let b: Value = body(raw)?;
            let text = b
                .get("policy")
                .or_else(|| b.get("rules"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Error::BadRequest("'policy' parameter not supplied or empty".into())
                })?;
            crate::policy::write(v, &name, text)?;
            Ok(no_content())
        }
        Method::DELETE => {
            authorize(v, headers, &path, "delete")?;
            crate::policy::delete(v, &name)?;
            Ok(no_content())
        }
        _ => Ok(method_not_allowed()),
    }
}

async fn policy_legacy(
    State(v): State<Arc<Vault>>,
    method: Method,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    policy_op(&v, &method, &headers, "sys/policy", &name, &raw, true)
        .unwrap_or_else(IntoResponse::into_response)
}

async fn policy_acl(
    State(v): State<Arc<Vault>>,
    method: Method,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    policy_op(
        &v,
        &method,
        &headers,
        "sys/policies/acl",
        &name,
        &raw,
        false,
    )
    .unwrap_or_else(IntoResponse::into_response)
}

/// A `sys/` listing: Vault puts the entries at the top level and again
/// under `data`.
fn sys_listing(data: serde_json::Map<String, Value>) -> Response {
    let mut body = Value::Object(data.clone());
    body["data"] = Value::Object(data);
    json_response(200, &body)
}

/// Vault's response envelope around `data`.
fn envelope(data: Value, mount_type: &str) -> Value {
    json!({
        "request_id": request_id(), "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": data, "wrap_info": null, "warnings": null, "auth": null, "mount_type": mount_type,
    })
}

fn request_id() -> String {
    crate::core::uuid().unwrap_or_default()
}

async fn list_mounts(State(v): State<Arc<Vault>>, headers: HeaderMap) -> Response {
    let r = authorize(&v, &headers, "sys/mounts", "read").and_then(|_| crate::mounts::table(&v));
    match r {
        Ok(t) => {
            let mut data = serde_json::Map::new();
            for (path, m) in t.iter() {
                data.insert(path.clone(), mount_json(m));
            }
            sys_listing(data)
        }
        Err(e) => e.into_response(),
    }
}

/// Vault's (and OpenBao's) default and maximum lease TTL: 768 hours.
pub(crate) const DEFAULT_LEASE_TTL: u64 = 768 * 3600;

fn mount_kind(m: &crate::mounts::Mount) -> (&'static str, Value) {
    match m.engine {
        crate::mounts::Engine::KvV2 => ("kv", json!({"version": "2"})),
        crate::mounts::Engine::Transit => ("transit", json!({})),
    }
}

/// A mount as `sys/mounts` shows it.
fn mount_json(m: &crate::mounts::Mount) -> Value {
    let (kind, options) = mount_kind(m);
    json!({"type": kind, "options": options, "description": m.description,
           "accessor": format!("{kind}_{}", &m.uuid[..8]), "uuid": m.uuid,
           "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false},
           "local": false, "seal_wrap": false, "external_entropy_access": false,
           "plugin_version": "", "running_plugin_version": "", "running_sha256": ""})
}

/// `sys/internal/ui/mounts/:path`: the mount serving a path, which Vault's
/// CLI asks to learn a KV mount's version. Any valid token may ask.
async fn ui_mount(
    State(v): State<Arc<Vault>>,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let r = (|| -> Result<Response, Error> {
        if v.is_sealed() {
            return Err(Error::Sealed);
        }
        let Some(entry) = v.lookup_token(&token(&headers))? else {
            return Err(Error::PermissionDenied);
        };
        // As Vault: the same 403 whether the mount is missing or the
        // token's policies reach nothing under it.
        let denied = || {
            json_response(
                403,
                &json!({"errors": [format!("preflight capability check returned 403, please ensure client's policies grant access to path \"{}/\"", path.trim_matches('/'))]}),
            )
        };
        let Some((mpath, m, _)) = crate::mounts::resolve(&v, path.trim_matches('/'))? else {
            return Ok(denied());
        };
        let acl = Acl::new(entry.policies.iter().map(String::as_str), |n| {
            crate::policy::load(&v, n)
        });
        if !acl.reaches_under(&mpath) {
            return Ok(denied());
        }
        let mut data = mount_json(&m);
        data["path"] = json!(mpath);
        Ok(json_response(200, &envelope(data, "system")))
    })();
    r.unwrap_or_else(IntoResponse::into_response)
}

/// `GET sys/mounts/:path/tune`.
fn mount_tune(v: &Vault, headers: &HeaderMap, path: &str) -> Result<Response, Error> {
    authorize(v, headers, &format!("sys/mounts/{path}/tune"), "read")?;
    let t = crate::mounts::table(v)?;
    let key = format!("{}/", path.trim_matches('/'));
    let m = t
        .get(&key)
        .ok_or_else(|| Error::BadRequest(format!("cannot fetch sysview for path \"{key}\"")))?;
    let (_, options) = mount_kind(m);
    let data = json!({"default_lease_ttl": DEFAULT_LEASE_TTL, "max_lease_ttl": DEFAULT_LEASE_TTL,
                      "description": m.description, "force_no_cache": false, "options": options});
    let mut env = envelope(data.clone(), "system");
    if let (Value::Object(e), Value::Object(d)) = (&mut env, data) {
        e.extend(d);
    }
    Ok(json_response(200, &env))
}

#[derive(Deserialize)]
struct MountRequest {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    options: Option<HashMap<String, Value>>,
}

async fn mount_path(
    State(v): State<Arc<Vault>>,
    method: Method,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if let Some(mount) = path.strip_suffix("/tune") {
        return match method {
            Method::GET => mount_tune(&v, &headers, mount).unwrap_or_else(IntoResponse::into_response),
            _ => Error::BadRequest(
                "tuning mounts is not supported by citadel: disable and enable the mount with the options you need".into(),
            )
            .into_response(),
        };
    }
    let cap = match method {
        Method::DELETE => "delete",
        _ => "update",
    };
    let r =
        authorize(&v, &headers, &format!("sys/mounts/{path}"), cap).and_then(|_| match method {
            Method::POST | Method::PUT => {
                let req: MountRequest = body(&raw)?;
                let version = req
                    .options
                    .as_ref()
                    .and_then(|o| o.get("version"))
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    });
                let engine = crate::mounts::engine_from(&req.kind, version.as_deref())?;
                crate::mounts::mount(&v, &path, engine, req.description.as_deref().unwrap_or(""))
            }
            Method::DELETE => crate::mounts::unmount(&v, &path),
            _ => Err(Error::BadRequest("unsupported operation".into())),
        });
    match r {
        Ok(()) => no_content(),
        Err(e) => e.into_response(),
    }
}

async fn fallback(
    State(v): State<Arc<Vault>>,
    method: Method,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if v.is_sealed() {
        return Error::Sealed.into_response();
    }
    let path = uri.path().trim_start_matches("/v1/").to_string();
    let r = (|| -> Result<Response, Error> {
        let no_route = || {
            Error::NotFound(format!(
                "no handler for route \"{path}\". route entry not found."
            ))
        };
        if let Some(inner) = path.strip_prefix("auth/") {
            return auth_request(&v, &method, &q, &headers, &raw, inner, &path);
        }
        let Some((_, mount, rest)) = crate::mounts::resolve(&v, &path)? else {
            return Err(no_route());
        };
        let op = match method.as_str() {
            "GET" if q.get("list").is_some_and(|l| l == "true") => crate::kv::Op::List,
            "GET" => crate::kv::Op::Read,
            "LIST" => crate::kv::Op::List,
            "PUT" | "POST" => crate::kv::Op::Write,
            "DELETE" => crate::kv::Op::Delete,
            "PATCH" => {
                let ctype = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|c| c.to_str().ok())
                    .unwrap_or_default();
                if !ctype.starts_with("application/merge-patch+json") {
                    return Ok(json_response(
                        415,
                        &json!({"errors": [format!("PATCH requires Content-Type of application/merge-patch+json, provided {ctype}")]}),
                    ));
                }
                crate::kv::Op::Patch
            }
            _ => return Ok(method_not_allowed()),
        };
        let body_json: Value = if matches!(op, crate::kv::Op::Write | crate::kv::Op::Patch) {
            body(&raw)?
        } else {
            Value::Null
        };
        let base = format!("logical/{}/", mount.uuid);
        // Deny by default: the token's policies must grant the capability.
        let cap = match op {
            crate::kv::Op::Read => "read",
            crate::kv::Op::List => "list",
            crate::kv::Op::Delete => "delete",
            crate::kv::Op::Patch => "patch",
            crate::kv::Op::Write
                if match mount.engine {
                    crate::mounts::Engine::KvV2 => crate::kv::exists(&v, &base, &rest)?,
                    crate::mounts::Engine::Transit => crate::transit::exists(&v, &base, &rest)?,
                } =>
            {
                "update"
            }
            crate::kv::Op::Write => "create",
        };
        authorize(&v, &headers, path.trim_end_matches('/'), cap)?;
        let reply = match mount.engine {
            crate::mounts::Engine::KvV2 => crate::kv::handle(&v, &base, op, &rest, &q, &body_json)?,
            crate::mounts::Engine::Transit => {
                crate::transit::handle(&v, &base, op, &rest, &body_json, true)?
            }
        };
        let mount_type = match mount.engine {
            crate::mounts::Engine::KvV2 => "kv",
            crate::mounts::Engine::Transit => "transit",
        };
        Ok(match reply {
            crate::kv::Reply::Data(d) => json_response(200, &envelope(d, mount_type)),
            crate::kv::Reply::NoContent => no_content(),
            crate::kv::Reply::NotFound(None) => json_response(404, &json!({"errors": []})),
            crate::kv::Reply::NotFound(Some(d)) => json_response(404, &envelope(d, mount_type)),
            crate::kv::Reply::Status(code, d) => json_response(code, &envelope(d, mount_type)),
        })
    })();
    r.unwrap_or_else(IntoResponse::into_response)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    vault: Arc<Vault>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let flusher = audit_flusher(vault.clone());
    let r = axum::serve(listener, router(vault.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    flusher.abort();
    let _ = vault.audit.commit();
    r
}

/// Commits the audit devices' group every 5 ms, off the request path.
fn audit_flusher(vault: Arc<Vault>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(5));
        loop {
            tick.tick().await;
            let v = vault.clone();
            // A failure here resurfaces on the next append (fail closed).
            let _ = tokio::task::spawn_blocking(move || v.audit.commit()).await;
        }
    })
}

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a connection may take to send a request's headers (and, idle
/// between requests, to start the next one).
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the API over TLS on `listener` until `shutdown` completes. The
/// `tls` config decides who may connect: built by `citadel-tls`, it is
/// either mutual post-quantum TLS or server-authenticated TLS with
/// X25519MLKEM768 key exchange. A failed handshake closes that connection
/// only.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    vault: Arc<Vault>,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let flusher = audit_flusher(vault.clone());
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let app = router(vault.clone());
    let mut shutdown = std::pin::pin!(shutdown);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let tcp = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(_) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            let _ = watcher.watch(conn).await;
        });
    }
    // Stop accepting; let requests in flight finish (bounded).
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    flusher.abort();
    let _ = vault.audit.commit();
    Ok(())
}

/// A request to an auth method mounted under `auth/`.
fn auth_request(
    v: &Vault,
    method: &Method,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    raw: &Bytes,
    inner: &str,
    full: &str,
) -> Result<Response, Error> {
    let table = crate::auth::table(v)?;
    let Some((mpath, m)) = table
        .iter()
        .find(|(p, _)| inner.starts_with(p.as_str()) || inner == p.trim_end_matches('/'))
    else {
        return Err(Error::NotFound(format!(
            "no handler for route \"{full}\". route entry not found."
        )));
    };
    let rest = inner.strip_prefix(mpath.as_str()).unwrap_or_default();
    let op = match method.as_str() {
        "GET" if q.get("list").is_some_and(|l| l == "true") => "list",
        "GET" => "read",
        "LIST" => "list",
        "PUT" | "POST" => "write",
        "DELETE" => "delete",
        _ => return Ok(method_not_allowed()),
    };
    if !crate::auth::is_login(rest) {
        let cap = match op {
            "write" => "update",
            other => other,
        };
        authorize(v, headers, full.trim_end_matches('/'), cap)?;
    }
    let b: Value = if op == "write" {
        body(raw)?
    } else {
        Value::Null
    };
    Ok(match crate::auth::handle(v, m, op, rest, &b)? {
        crate::auth::Outcome::Data(d) => json_response(200, &envelope(d, "auth")),
        crate::auth::Outcome::NoContent => no_content(),
        crate::auth::Outcome::NotFound => json_response(404, &json!({"errors": []})),
        crate::auth::Outcome::Login((tok, e)) => {
            let mut env = envelope(Value::Null, "auth");
            env["auth"] = tokens::auth_json(&tok, &e);
            json_response(200, &env)
        }
    })
}

async fn list_auth(State(v): State<Arc<Vault>>, headers: HeaderMap) -> Response {
    let r = authorize(&v, &headers, "sys/auth", "read").and_then(|_| crate::auth::table(&v));
    match r {
        Ok(t) => {
            let mut data = serde_json::Map::new();
            data.insert(
                "token/".into(),
                json!({"type": "token", "description": "token based credentials"}),
            );
            for (path, m) in t {
                let kind = match m.method {
                    crate::auth::Method::AppRole => "approle",
                    crate::auth::Method::Userpass => "userpass",
                };
                data.insert(path, json!({"type": kind, "accessor": format!("auth_{kind}_{}", &m.uuid[..8]), "description": ""}));
            }
            sys_listing(data)
        }
        Err(e) => e.into_response(),
    }
}

async fn auth_path(
    State(v): State<Arc<Vault>>,
    method: Method,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let r = authorize(
        &v,
        &headers,
        &format!("sys/auth/{}", path.trim_matches('/')),
        "sudo",
    )
    .and_then(|_| match method {
        Method::POST | Method::PUT => {
            let b: Value = body(&raw)?;
            let kind = b.get("type").and_then(Value::as_str).unwrap_or_default();
            crate::auth::enable(&v, &path, kind)
        }
        Method::DELETE => crate::auth::disable(&v, &path),
        _ => Err(Error::BadRequest("unsupported operation".into())),
    });
    match r {
        Ok(()) => no_content(),
        Err(e) => e.into_response(),
    }
}
