//! The HTTP API: Vault's paths, JSON shapes, status codes and
//! `{"errors": [...]}` bodies (with `Content-Type: application/json`
//! exactly, which hvac needs to read them).

use crate::Error;
use crate::core::Vault;
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
        .route("/v1/sys/unseal", any(unseal))
        .route("/v1/sys/seal", any(seal))
        .route("/v1/sys/rotate", any(rotate))
        .route("/v1/auth/token/lookup-self", any(lookup_self))
        .route("/v1/sys/mounts", get(list_mounts))
        .route("/v1/sys/mounts/{*path}", any(mount_path))
        .fallback(fallback)
        .with_state(vault)
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

/// Requires a token carrying the root policy.
fn require_root(vault: &Vault, headers: &HeaderMap) -> Result<(), Error> {
    match vault.lookup_token(&token(headers))? {
        Some(t) if t.policies.iter().any(|p| p == "root") => Ok(()),
        _ => Err(Error::PermissionDenied),
    }
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
    match require_root(&v, &headers) {
        Ok(()) => {
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
    match require_root(&v, &headers).and_then(|()| v.rotate()) {
        Ok(_) => no_content(),
        Err(e) => e.into_response(),
    }
}

async fn lookup_self(State(v): State<Arc<Vault>>, headers: HeaderMap) -> Response {
    match v.lookup_token(&token(&headers)) {
        Ok(Some(t)) => json_response(
            200,
            &json!({
                "request_id": "", "lease_id": "", "renewable": false, "lease_duration": 0,
                "data": {"policies": t.policies, "accessor": t.accessor, "creation_time": t.creation_time,
                          "ttl": 0, "renewable": false, "type": "service", "orphan": true},
                "wrap_info": null, "warnings": null, "auth": null,
            }),
        ),
        Ok(None) => json_response(
            403,
            &json!({"errors": ["permission denied", "invalid token"]}),
        ),
        Err(e) => e.into_response(),
    }
}

/// Vault's response envelope around `data`.
fn envelope(data: Value, mount_type: &str) -> Value {
    json!({
        "request_id": request_id(), "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": data, "wrap_info": null, "warnings": null, "auth": null, "mount_type": mount_type,
    })
}

fn request_id() -> String {
    let b = citadel_crypto::random::array::<16>().unwrap_or_default();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

async fn list_mounts(State(v): State<Arc<Vault>>, headers: HeaderMap) -> Response {
    let r = require_root(&v, &headers).and_then(|()| crate::mounts::table(&v));
    match r {
        Ok(t) => {
            let mut data = serde_json::Map::new();
            for (path, m) in t {
                let (kind, options) = match m.engine {
                    crate::mounts::Engine::KvV2 => ("kv", json!({"version": "2"})),
                };
                data.insert(
                    path,
                    json!({"type": kind, "options": options, "description": m.description,
                           "accessor": format!("{kind}_{}", &m.uuid[..8]), "uuid": m.uuid,
                           "config": {"default_lease_ttl": 0, "max_lease_ttl": 0}, "local": false, "seal_wrap": false}),
                );
            }
            let mut body = Value::Object(data.clone());
            body["data"] = Value::Object(data);
            json_response(200, &body)
        }
        Err(e) => e.into_response(),
    }
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
    let r = require_root(&v, &headers).and_then(|()| match method {
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
        let Some((_, mount, rest)) = crate::mounts::resolve(&v, &path)? else {
            return Err(no_route());
        };
        // Deny by default: until policies exist, only the root token.
        require_root(&v, &headers)?;
        let op = match method.as_str() {
            "GET" if q.get("list").is_some_and(|l| l == "true") => crate::kv::Op::List,
            "GET" => crate::kv::Op::Read,
            "LIST" => crate::kv::Op::List,
            "PUT" | "POST" => crate::kv::Op::Write,
            "DELETE" => crate::kv::Op::Delete,
            _ => return Ok(method_not_allowed()),
        };
        let body_json: Value = if op == crate::kv::Op::Write {
            body(&raw)?
        } else {
            Value::Null
        };
        let base = format!("logical/{}/", mount.uuid);
        let reply = match mount.engine {
            crate::mounts::Engine::KvV2 => crate::kv::handle(&v, &base, op, &rest, &q, &body_json)?,
        };
        Ok(match reply {
            crate::kv::Reply::Data(d) => json_response(200, &envelope(d, "kv")),
            crate::kv::Reply::NoContent => no_content(),
            crate::kv::Reply::NotFound(None) => json_response(404, &json!({"errors": []})),
            crate::kv::Reply::NotFound(Some(d)) => {
                let mut e = envelope(d, "kv");
                e["errors"] = json!([]);
                json_response(404, &e)
            }
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
    axum::serve(listener, router(vault))
        .with_graceful_shutdown(shutdown)
        .await
}
