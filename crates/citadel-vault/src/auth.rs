//! Auth methods mounted under `auth/`: AppRole (role_id + secret_id) and
//! userpass (argon2id password hashes, lockout after repeated failures).
//! Enabled with Vault's `sys/auth/:path`; a login returns a token carrying
//! the role's or user's policies (no parent: it outlives no one).
//!
//! Storage under `auth/<uuid>/`: `role/<name>`, `role_id/<id>` (→ name),
//! `secret_id/<name>/<sha256>` (secret ids only as hashes),
//! `user/<name>`, `lockout/<name>`.

use crate::Error;
use crate::core::{TokenEntry, Vault, now_secs, token_hash};
use crate::tokens::{self, parse_duration, parse_policies};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Failed logins before a user is locked out.
pub const LOCKOUT_THRESHOLD: u32 = 5;
/// How long a lockout lasts, seconds.
pub const LOCKOUT_SECONDS: u64 = 15 * 60;

/// An auth method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// role_id + secret_id.
    AppRole,
    /// username + password.
    Userpass,
}

/// One enabled auth method.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthMount {
    /// The method.
    pub method: Method,
    /// Its data lives under `auth/<uuid>/`.
    pub uuid: String,
}

const TABLE: &str = "core/auth";

/// The enabled methods, by path (`approle/`).
pub fn table(v: &Vault) -> Result<BTreeMap<String, AuthMount>, Error> {
    match v.get(TABLE)? {
        None => Ok(BTreeMap::new()),
        Some(b) => {
            serde_json::from_slice(&b).map_err(|e| Error::Corrupt(format!("auth table: {e}")))
        }
    }
}

/// Enables `method` at `auth/<path>`.
pub fn enable(v: &Vault, path: &str, kind: &str) -> Result<(), Error> {
    let method = match kind {
        "approle" => Method::AppRole,
        "userpass" => Method::Userpass,
        other => {
            return Err(Error::BadRequest(format!(
                "unknown auth method type {other:?}: approle or userpass"
            )));
        }
    };
    let p = path.trim_matches('/');
    if p.is_empty() || p == "token" || p.contains("..") {
        return Err(Error::BadRequest(format!("invalid auth path {path:?}")));
    }
    let key = format!("{p}/");
    let mut t = table(v)?;
    if t.keys()
        .any(|k| k.starts_with(&key) || key.starts_with(k.as_str()))
    {
        return Err(Error::BadRequest(format!(
            "path is already in use at {key}"
        )));
    }
    let id = citadel_crypto::random::array::<16>().map_err(|e| Error::Internal(e.to_string()))?;
    t.insert(
        key,
        AuthMount {
            method,
            uuid: hex::encode(id),
        },
    );
    v.put(
        TABLE,
        &serde_json::to_vec(&t).map_err(|e| Error::Internal(e.to_string()))?,
    )
}

/// Disables `auth/<path>` and deletes its data.
pub fn disable(v: &Vault, path: &str) -> Result<(), Error> {
    let key = format!("{}/", path.trim_matches('/'));
    let mut t = table(v)?;
    if let Some(m) = t.remove(&key) {
        v.put(
            TABLE,
            &serde_json::to_vec(&t).map_err(|e| Error::Internal(e.to_string()))?,
        )?;
        v.delete_prefix(&format!("auth/{}/", m.uuid))?;
    }
    Ok(())
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Role {
    role_id: String,
    policies: Vec<String>,
    token_ttl: u64,
    token_num_uses: u64,
    secret_id_ttl: u64,
    secret_id_num_uses: u64,
    bind_secret_id: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SecretId {
    accessor: String,
    created: u64,
    expire: u64,
    uses_left: u64,
    metadata: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct User {
    hash: String,
    policies: Vec<String>,
    token_ttl: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Lockout {
    failures: u32,
    locked_until: u64,
}

fn bad(m: impl Into<String>) -> Error {
    Error::BadRequest(m.into())
}

fn name_ok(n: &str) -> Result<&str, Error> {
    if n.is_empty()
        || n.len() > 128
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(bad(format!("invalid name {n:?}")));
    }
    Ok(n)
}

struct Store<'a> {
    v: &'a Vault,
    base: String,
}

impl Store<'_> {
    fn get<T: for<'de> Deserialize<'de>>(&self, k: &str) -> Result<Option<T>, Error> {
        match self.v.get(&format!("{}{k}", self.base))? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("auth {k}: {e}"))),
        }
    }
    fn put<T: Serialize>(&self, k: &str, val: &T) -> Result<(), Error> {
        let b = serde_json::to_vec(val).map_err(|e| Error::Internal(e.to_string()))?;
        self.v.put(&format!("{}{k}", self.base), &b)
    }
    fn del(&self, k: &str) -> Result<(), Error> {
        self.v.delete(&format!("{}{k}", self.base))
    }
}

/// A login's outcome: the token and its entry.
pub type Login = (zeroize::Zeroizing<String>, TokenEntry);

fn issue(
    v: &Vault,
    policies: Vec<String>,
    ttl: u64,
    num_uses: u64,
    display: &str,
    meta: BTreeMap<String, String>,
) -> Result<Login, Error> {
    // Logins have no parent token; the method's configuration bounds them.
    let issuer = TokenEntry {
        policies: vec!["root".into()],
        ..Default::default()
    };
    tokens::create(
        v,
        &issuer,
        tokens::Request {
            policies,
            ttl,
            num_uses,
            no_parent: true,
            no_default_policy: false,
            display_name: display.into(),
            meta,
        },
    )
}

fn role_policies(body: &Value) -> Result<Vec<String>, Error> {
    let p = parse_policies(body.get("token_policies").unwrap_or(&Value::Null))?;
    if p.is_empty() {
        return parse_policies(body.get("policies").unwrap_or(&Value::Null));
    }
    Ok(p)
}

/// What an auth request returns.
pub enum Outcome {
    /// 200 with this `data`.
    Data(Value),
    /// 204.
    NoContent,
    /// 404.
    NotFound,
    /// 200 with this `auth` block.
    Login(Login),
}

/// Whether `path` (inside an auth mount) is a login, which needs no token.
pub fn is_login(path: &str) -> bool {
    path == "login" || path.starts_with("login/")
}

/// Serves a request to an auth mount. `op`: "read", "write", "delete", "list".
pub fn handle(
    v: &Vault,
    m: &AuthMount,
    op: &str,
    path: &str,
    body: &Value,
) -> Result<Outcome, Error> {
    let s = Store {
        v,
        base: format!("auth/{}/", m.uuid),
    };
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match (m.method, segs.as_slice(), op) {
        (Method::AppRole, ["role"], "list") => {
            let keys = v.list(&format!("{}role/", s.base))?;
            Ok(if keys.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Data(json!({"keys": keys}))
            })
        }
        (Method::AppRole, ["role", name], "write") => {
            let name = name_ok(name)?;
            let mut r: Role = s.get(&format!("role/{name}"))?.unwrap_or_else(|| Role {
                bind_secret_id: true,
                ..Default::default()
            });
            if r.role_id.is_empty() {
                r.role_id = crate::core::uuid()?;
                s.put(&format!("role_id/{}", r.role_id), &name)?;
            }
            if body.get("token_policies").is_some() || body.get("policies").is_some() {
                r.policies = role_policies(body)?;
            }
            for (k, slot) in [
                ("token_ttl", &mut r.token_ttl),
                ("secret_id_ttl", &mut r.secret_id_ttl),
            ] {
                if let Some(x) = body.get(k) {
                    *slot = parse_duration(x)?;
                }
            }
            for (k, slot) in [
                ("token_num_uses", &mut r.token_num_uses),
                ("secret_id_num_uses", &mut r.secret_id_num_uses),
            ] {
                if let Some(x) = body.get(k) {
                    *slot = x
                        .as_u64()
                        .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                        .ok_or_else(|| bad(format!("{k} must be a number")))?;
                }
            }
            if let Some(b) = body.get("bind_secret_id") {
                r.bind_secret_id = b
                    .as_bool()
                    .ok_or_else(|| bad("bind_secret_id must be a boolean"))?;
            }
            if !r.bind_secret_id {
                return Err(bad(
                    "bind_secret_id must stay true: a role without secret ids would log in with its role_id alone",
                ));
            }
            s.put(&format!("role/{name}"), &r)?;
            Ok(Outcome::NoContent)
        }
        (Method::AppRole, ["role", name], "read") => {
            Ok(match s.get::<Role>(&format!("role/{name}"))? {
                None => Outcome::NotFound,
                Some(r) => Outcome::Data(json!({
                    "token_policies": r.policies, "policies": r.policies, "token_ttl": r.token_ttl,
                    "token_num_uses": r.token_num_uses, "secret_id_ttl": r.secret_id_ttl,
                    "secret_id_num_uses": r.secret_id_num_uses, "bind_secret_id": r.bind_secret_id,
                })),
            })
        }
        (Method::AppRole, ["role", name], "delete") => {
            if let Some(r) = s.get::<Role>(&format!("role/{name}"))? {
                s.del(&format!("role_id/{}", r.role_id))?;
                v.delete_prefix(&format!("{}secret_id/{name}/", s.base))?;
                s.del(&format!("role/{name}"))?;
            }
            Ok(Outcome::NoContent)
        }
        (Method::AppRole, ["role", name, "role-id"], "read") => {
            match s.get::<Role>(&format!("role/{name}"))? {
                None => Ok(Outcome::NotFound),
                Some(r) => Ok(Outcome::Data(json!({"role_id": r.role_id}))),
            }
        }
        (Method::AppRole, ["role", name, "secret-id"], "write") => {
            let r: Role = s
                .get(&format!("role/{name}"))?
                .ok_or_else(|| bad(format!("role {name:?} does not exist")))?;
            let secret = zeroize::Zeroizing::new(crate::core::uuid()?);
            let mut metadata = BTreeMap::new();
            if let Some(Value::String(m)) = body.get("metadata") {
                if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(m) {
                    for (k, v) in o {
                        metadata.insert(k, v.as_str().unwrap_or_default().to_string());
                    }
                }
            }
            let now = now_secs();
            let entry = SecretId {
                accessor: crate::core::uuid()?,
                created: now,
                expire: if r.secret_id_ttl > 0 {
                    now + r.secret_id_ttl
                } else {
                    0
                },
                uses_left: r.secret_id_num_uses,
                metadata,
            };
            s.put(&format!("secret_id/{name}/{}", token_hash(&secret)), &entry)?;
            Ok(Outcome::Data(json!({
                "secret_id": secret.as_str(), "secret_id_accessor": entry.accessor,
                "secret_id_ttl": r.secret_id_ttl, "secret_id_num_uses": r.secret_id_num_uses,
            })))
        }
        (Method::AppRole, ["login"], "write") => {
            let denied = || Error::BadRequest("invalid role or secret ID".into());
            let role_id = body
                .get("role_id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("missing role_id"))?;
            let secret = body
                .get("secret_id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("missing secret_id"))?;
            if role_id.contains('/') {
                return Err(denied());
            }
            let name: String = s.get(&format!("role_id/{role_id}"))?.ok_or_else(denied)?;
            let r: Role = s.get(&format!("role/{name}"))?.ok_or_else(denied)?;
            let key = format!("secret_id/{name}/{}", token_hash(secret));
            let mut sid: SecretId = s.get(&key)?.ok_or_else(denied)?;
            if sid.expire != 0 && sid.expire <= now_secs() {
                s.del(&key)?;
                return Err(denied());
            }
            match sid.uses_left {
                0 => {}
                1 => s.del(&key)?,
                _ => {
                    sid.uses_left -= 1;
                    s.put(&key, &sid)?;
                }
            }
            let mut meta = sid.metadata.clone();
            meta.insert("role_name".into(), name.clone());
            Ok(Outcome::Login(issue(
                v,
                r.policies,
                r.token_ttl,
                r.token_num_uses,
                &format!("approle-{name}"),
                meta,
            )?))
        }
        (Method::Userpass, ["users"], "list") => {
            let keys = v.list(&format!("{}user/", s.base))?;
            Ok(if keys.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Data(json!({"keys": keys}))
            })
        }
        (Method::Userpass, ["users", name], "write") => {
            let name = name_ok(&name.to_lowercase())?.to_string();
            let mut u: User = s.get(&format!("user/{name}"))?.unwrap_or_default();
            if let Some(p) = body.get("password") {
                let p = p
                    .as_str()
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| bad("password must be a non-empty string"))?;
                u.hash = hash_password(p)?;
            }
            if u.hash.is_empty() {
                return Err(bad("missing password"));
            }
            if body.get("token_policies").is_some() || body.get("policies").is_some() {
                u.policies = role_policies(body)?;
            }
            if let Some(x) = body.get("token_ttl") {
                u.token_ttl = parse_duration(x)?;
            }
            s.put(&format!("user/{name}"), &u)?;
            Ok(Outcome::NoContent)
        }
        (Method::Userpass, ["users", name], "read") => Ok(
            match s.get::<User>(&format!("user/{}", name.to_lowercase()))? {
                None => Outcome::NotFound,
                Some(u) => Outcome::Data(
                    json!({"token_policies": u.policies, "policies": u.policies, "token_ttl": u.token_ttl}),
                ),
            },
        ),
        (Method::Userpass, ["users", name], "delete") => {
            s.del(&format!("user/{}", name.to_lowercase()))?;
            s.del(&format!("lockout/{}", name.to_lowercase()))?;
            Ok(Outcome::NoContent)
        }
        (Method::Userpass, ["login", name], "write") => {
            let name = name.to_lowercase();
            let denied = || Error::BadRequest("invalid username or password".into());
            let now = now_secs();
            let mut lock: Lockout = s.get(&format!("lockout/{name}"))?.unwrap_or_default();
            if lock.locked_until > now {
                return Err(Error::PermissionDenied);
            }
            let password = body
                .get("password")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let user: Option<User> = s.get(&format!("user/{name}"))?;
            // Hash even for unknown users, so timing does not tell them apart.
            let ok = match &user {
                Some(u) => verify_password(password, &u.hash),
                None => {
                    let _ = hash_password(password);
                    false
                }
            };
            if !ok {
                if user.is_some() {
                    lock.failures += 1;
                    if lock.failures >= LOCKOUT_THRESHOLD {
                        lock.locked_until = now + LOCKOUT_SECONDS;
                        lock.failures = 0;
                    }
                    s.put(&format!("lockout/{name}"), &lock)?;
                }
                return Err(denied());
            }
            s.del(&format!("lockout/{name}"))?;
            let u = user.ok_or_else(denied)?;
            let meta = BTreeMap::from([("username".to_string(), name.clone())]);
            Ok(Outcome::Login(issue(
                v,
                u.policies,
                u.token_ttl,
                0,
                &format!("userpass-{name}"),
                meta,
            )?))
        }
        _ => Err(Error::NotFound(format!(
            "unsupported path or operation: {path}"
        ))),
    }
}

fn hash_password(p: &str) -> Result<String, Error> {
    let salt_bytes =
        citadel_crypto::random::array::<16>().map_err(|e| Error::Internal(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| Error::Internal(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(p.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(e.to_string()))
}

fn verify_password(p: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(p.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}
