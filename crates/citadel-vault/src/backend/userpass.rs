//! The userpass auth method: users with argon2id password hashes, and a
//! lockout after [`LOCKOUT_THRESHOLD`] failed logins in a row.
//!
//! Usernames are folded to lower case by the router, before the ACL check,
//! so `users/ADMIN` is `users/admin` to the policy and to storage. A login
//! reads the failure count, checks the password and records the outcome
//! under the user's lock, so concurrent guesses are counted one by one.
//! Unknown, locked and wrong-password answers are the same 400 after the
//! same argon2 work, so neither the answer nor its timing tells whether a
//! name exists.
//!
//! Under the mount's view: `user/<name>`, `lockout/<name>`.

use super::{
    Access, Backend, CIDRS, Ctx, Login, MAX_TTL, Matched, PERIOD, Reply, Route, Seg,
    check_token_type, folded_name, policies_of,
};
use crate::error::{Error, internal};
use crate::fields::{Field, Fields, Ty};
use crate::ids::now;
use crate::request::Operation::{Delete, List, Read, Update};
use crate::view::View;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// Failed logins before a user is locked out.
pub const LOCKOUT_THRESHOLD: u32 = 5;
/// How long a lockout lasts, seconds.
pub const LOCKOUT_SECONDS: u64 = 15 * 60;

static USER_FIELDS: &[Field] = &[
    Field::opt("password", Ty::Str),
    Field::opt("policies", Ty::StrList),
    Field::opt("token_policies", Ty::StrList),
    Field::opt("token_ttl", Ty::Duration),
    Field::opt("ttl", Ty::Duration),
    Field::opt("token_num_uses", Ty::Int),
    Field::opt("token_no_default_policy", Ty::Bool),
    Field::opt("token_type", Ty::Str),
    Field::opt("token_max_ttl", MAX_TTL),
    Field::opt("max_ttl", MAX_TTL),
    Field::opt("token_explicit_max_ttl", MAX_TTL),
    Field::opt("token_period", PERIOD),
    Field::opt("token_bound_cidrs", CIDRS),
    Field::opt("bound_cidrs", CIDRS),
];

static PASSWORD_FIELDS: &[Field] = &[Field::req("password", Ty::Str)];

static POLICY_FIELDS: &[Field] = &[
    Field::opt("policies", Ty::StrList),
    Field::opt("token_policies", Ty::StrList),
];

static ROUTES: &[Route] = &[
    Route::new("users", &[Seg::Lit("users")], &[List], &[]),
    Route::new(
        "users/:username",
        &[Seg::Lit("users"), Seg::Name("username", folded_name)],
        &[Read, Update, Delete],
        USER_FIELDS,
    )
    .existence(),
    Route::new(
        "users/:username/password",
        &[
            Seg::Lit("users"),
            Seg::Name("username", folded_name),
            Seg::Lit("password"),
        ],
        &[Update],
        PASSWORD_FIELDS,
    ),
    Route::new(
        "users/:username/policies",
        &[
            Seg::Lit("users"),
            Seg::Name("username", folded_name),
            Seg::Lit("policies"),
        ],
        &[Update],
        POLICY_FIELDS,
    ),
    Route::new(
        "login/:username",
        &[Seg::Lit("login"), Seg::Name("username", folded_name)],
        &[Update],
        PASSWORD_FIELDS,
    )
    .access(Access::None)
    .heavy(),
];

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct User {
    hash: String,
    policies: Vec<String>,
    token_ttl: u64,
    #[serde(default)]
    token_num_uses: u64,
    #[serde(default)]
    no_default_policy: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Lockout {
    failures: u32,
    locked_until: u64,
}

fn bad(m: impl Into<String>) -> Error {
    Error::BadRequest(m.into())
}

fn hash_password(p: &str) -> Result<String, Error> {
    let salt_bytes = citadel_crypto::random::array::<16>().map_err(internal)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(internal)?;
    argon2::Argon2::default()
        .hash_password(p.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(internal)
}

/// The hash of the request's `password`, if it has one: computed before
/// the user's lock is taken (storage locks are never held while hashing).
fn new_hash(f: &Fields) -> Result<Option<String>, Error> {
    match f.str("password") {
        None => Ok(None),
        Some("") => Err(bad("password must not be empty")),
        Some(p) => hash_password(p).map(Some),
    }
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

/// The userpass method.
pub struct Userpass;

impl Userpass {
    fn login(&self, view: &View, name: &str, password: &str) -> Result<Reply, Error> {
        let denied = || bad("invalid username or password");
        let lock_key = format!("lockout/{name}");
        // One login of a user at a time: the failure count is read and
        // written under this lock (a slow lock: it is held while hashing).
        let _g = view.lock_slow(&lock_key);
        let now = now();
        let mut lock: Lockout = view.get_json(&lock_key)?.unwrap_or_default();
        let user: Option<User> = view.get_json(&format!("user/{name}"))?;
        let exists = user.is_some();
        if lock.locked_until > now {
            // Same work and answer as an unknown user.
            let _ = hash_password(password);
            return Err(denied());
        }
        let ok = match &user {
            Some(u) => verify_password(password, &u.hash),
            None => {
                let _ = hash_password(password);
                false
            }
        };
        let Some(u) = user.filter(|_| ok) else {
            // Failures of unknown users are not stored: that would let
            // anyone grow the storage with made-up names.
            if exists {
                lock.failures += 1;
                if lock.failures >= LOCKOUT_THRESHOLD {
                    lock.locked_until = now + LOCKOUT_SECONDS;
                    lock.failures = 0;
                }
                view.put_json(&lock_key, &lock)?;
            }
            return Err(denied());
        };
        if lock.failures > 0 || lock.locked_until > 0 {
            view.delete(&lock_key)?;
        }
        let meta = BTreeMap::from([("username".to_string(), name.to_string())]);
        let mut policies = u.policies;
        if u.no_default_policy {
            policies.retain(|p| p != "default");
        }
        Ok(Reply::Login(Login {
            policies,
            ttl: u.token_ttl,
            num_uses: u.token_num_uses,
            display_name: format!("userpass-{name}"),
            meta,
        }))
    }
}

impl Backend for Userpass {
    fn routes(&self) -> &'static [Route] {
        ROUTES
    }

    fn mount_type(&self) -> &'static str {
        "userpass"
    }

    fn exists(&self, view: &View, m: &Matched) -> Result<bool, Error> {
        Ok(view
            .get(&format!("user/{}", m.param("username")))?
            .is_some())
    }

    fn handle(&self, ctx: &Ctx<'_>, m: &Matched, f: &Fields) -> Result<Reply, Error> {
        let view = &ctx.view;
        let name = m.param("username");
        let key = format!("user/{name}");
        match (m.route.name, ctx.op) {
            ("users", _) => {
                let keys = view.list("user/")?;
                Ok(if keys.is_empty() {
                    Reply::NotFound
                } else {
                    Reply::Data(json!({"keys": keys}))
                })
            }
            ("users/:username", Read) => Ok(match view.get_json::<User>(&key)? {
                None => Reply::NotFound,
                Some(u) => Reply::Data(json!({
                    "token_policies": u.policies, "policies": u.policies,
                    "token_ttl": u.token_ttl, "token_num_uses": u.token_num_uses,
                    "token_no_default_policy": u.no_default_policy, "token_type": "default",
                })),
            }),
            ("users/:username", Delete) => {
                view.write(&[(&key, None), (&format!("lockout/{name}"), None)])?;
                Ok(Reply::NoContent)
            }
            ("users/:username", _) => {
                check_token_type(f)?;
                let hash = new_hash(f)?;
                let _g = view.lock(&key);
                super::created_meanwhile(ctx, &key)?;
                let mut u: User = view.get_json(&key)?.unwrap_or_default();
                if let Some(h) = hash {
                    u.hash = h;
                }
                if u.hash.is_empty() {
                    return Err(bad("missing password"));
                }
                if let Some(p) = policies_of(f)? {
                    u.policies = p;
                }
                if let Some(t) = f.secs("token_ttl").or_else(|| f.secs("ttl")) {
                    u.token_ttl = t;
                }
                if let Some(n) = f.uint("token_num_uses")? {
                    u.token_num_uses = n;
                }
                if let Some(b) = f.bool("token_no_default_policy") {
                    u.no_default_policy = b;
                }
                view.put_json(&key, &u)?;
                Ok(Reply::NoContent)
            }
            ("users/:username/password" | "users/:username/policies", _) => {
                let hash = new_hash(f)?;
                let _g = view.lock(&key);
                let mut u: User = view
                    .get_json(&key)?
                    .ok_or_else(|| bad(format!("username {name:?} does not exist")))?;
                if let Some(h) = hash {
                    u.hash = h;
                }
                if m.route.name.ends_with("policies") {
                    u.policies = policies_of(f)?.unwrap_or_default();
                }
                view.put_json(&key, &u)?;
                Ok(Reply::NoContent)
            }
            ("login/:username", _) => self.login(view, name, f.str("password").unwrap_or_default()),
            _ => Err(Error::MethodNotAllowed),
        }
    }
}
