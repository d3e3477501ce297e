//! The AppRole auth method: roles, their role ids, secret ids with TTL and
//! use limits, and logins with both.
//!
//! Role names are folded to lower case by the router, before the ACL check
//! (as OpenBao). Role ids and secret ids are stored only as HMACs under a
//! per-mount random key (`salt`), so the storage holds nothing that logs
//! in. Secret ids belong to the role's id (random, new for every role that
//! is created), not to its name, and are minted under the role's lock: when
//! a role is deleted, none of its secret ids logs in to a role created
//! later under the same name. A login checks and spends a secret id's use
//! under its lock.
//!
//! Under the mount's view: `salt`, `role/<name>`, `role_id/<hmac>` (→ name),
//! `secret_id/<hmac(role id)>/<hmac(secret id)>`.

use super::{
    Access, Backend, CIDRS, Ctx, Login, MAX_TTL, Matched, PERIOD, Reply, Route, Seg,
    check_token_type, folded_name, policies_of,
};
use crate::error::{Error, internal};
use crate::fields::{Field, Fields, Ty};
use crate::ids::{now, uuid};
use crate::request::Operation::{Delete, List, Read, Update};
use crate::view::View;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

static ROLE_FIELDS: &[Field] = &[
    Field::opt("policies", Ty::StrList),
    Field::opt("token_policies", Ty::StrList),
    Field::opt("token_ttl", Ty::Duration),
    Field::opt("token_num_uses", Ty::Int),
    Field::opt("token_no_default_policy", Ty::Bool),
    Field::opt("token_type", Ty::Str),
    Field::opt("secret_id_ttl", Ty::Duration),
    Field::opt("secret_id_num_uses", Ty::Int),
    Field::opt("bind_secret_id", Ty::Bool),
    Field::opt("token_max_ttl", MAX_TTL),
    Field::opt("token_explicit_max_ttl", MAX_TTL),
    Field::opt("token_period", PERIOD),
    Field::opt("period", PERIOD),
    Field::opt("token_bound_cidrs", CIDRS),
    Field::opt("secret_id_bound_cidrs", CIDRS),
    Field::opt("bound_cidr_list", CIDRS),
    Field::opt(
        "local_secret_ids",
        Ty::Unsupported("local secret ids are not supported by citadel"),
    ),
    Field::opt(
        "role_id",
        Ty::Unsupported(
            "custom role ids are not supported by citadel; read role-id for the generated one",
        ),
    ),
];

static SECRET_ID_FIELDS: &[Field] = &[
    Field::opt("metadata", Ty::Str),
    Field::opt("cidr_list", CIDRS),
    Field::opt("token_bound_cidrs", CIDRS),
    Field::opt(
        "ttl",
        Ty::Unsupported(
            "per-secret-id TTLs are not supported by citadel; set secret_id_ttl on the role",
        ),
    ),
    Field::opt(
        "num_uses",
        Ty::Unsupported(
            "per-secret-id use limits are not supported by citadel; set secret_id_num_uses on the role",
        ),
    ),
];

static LOGIN_FIELDS: &[Field] = &[
    Field::req("role_id", Ty::Str),
    Field::opt("secret_id", Ty::Str),
];

static ROUTES: &[Route] = &[
    Route::new("role", &[Seg::Lit("role")], &[List], &[]),
    Route::new(
        "role/:role_name",
        &[Seg::Lit("role"), Seg::Name("role_name", folded_name)],
        &[Read, Update, Delete],
        ROLE_FIELDS,
    )
    .existence(),
    Route::new(
        "role/:role_name/role-id",
        &[
            Seg::Lit("role"),
            Seg::Name("role_name", folded_name),
            Seg::Lit("role-id"),
        ],
        &[Read],
        &[],
    ),
    Route::new(
        "role/:role_name/secret-id",
        &[
            Seg::Lit("role"),
            Seg::Name("role_name", folded_name),
            Seg::Lit("secret-id"),
        ],
        &[Update],
        SECRET_ID_FIELDS,
    ),
    Route::new("login", &[Seg::Lit("login")], &[Update], LOGIN_FIELDS).access(Access::None),
];

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Role {
    role_id: String,
    policies: Vec<String>,
    token_ttl: u64,
    token_num_uses: u64,
    #[serde(default)]
    no_default_policy: bool,
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

fn bad(m: impl Into<String>) -> Error {
    Error::BadRequest(m.into())
}

/// The AppRole method.
pub struct Approle;

/// The mount's HMAC key, made on first use. It takes the `salt` lock: call
/// it before taking any other lock (two stripes held at once can be the
/// same stripe, which would deadlock).
fn salt(view: &View) -> Result<Zeroizing<Vec<u8>>, Error> {
    if let Some(s) = view.get("salt")? {
        return Ok(s);
    }
    let _g = view.lock("salt");
    if let Some(s) = view.get("salt")? {
        return Ok(s);
    }
    let s = citadel_crypto::random::secret_array::<32>().map_err(internal)?;
    view.put("salt", &s[..])?;
    Ok(Zeroizing::new(s.to_vec()))
}

fn mac(key: &[u8], kind: &str, v: &str) -> String {
    let mut m = kind.as_bytes().to_vec();
    m.push(0);
    m.extend_from_slice(v.as_bytes());
    hex::encode(citadel_crypto::kdf::hmac_sha256(key, &m))
}

impl Approle {
    fn login(&self, view: &View, f: &Fields) -> Result<Reply, Error> {
        let denied = || bad("invalid role or secret ID");
        let role_id = f.str("role_id").unwrap_or_default();
        let secret = f.str("secret_id").unwrap_or_default();
        if role_id.is_empty() || role_id.len() > 256 || secret.len() > 256 {
            return Err(denied());
        }
        let key = salt(view)?;
        let name: String = view
            .get_json(&format!("role_id/{}", mac(&key, "role_id", role_id)))?
            .ok_or_else(denied)?;
        let r: Role = view.get_json(&format!("role/{name}"))?.ok_or_else(denied)?;
        if r.role_id != role_id {
            return Err(denied());
        }
        let sid_key = format!(
            "secret_id/{}/{}",
            mac(&key, "role_id", &r.role_id),
            mac(&key, "secret_id", secret)
        );
        let _g = view.lock(&sid_key);
        let mut sid: SecretId = view.get_json(&sid_key)?.ok_or_else(denied)?;
        if sid.expire != 0 && sid.expire <= now() {
            view.delete(&sid_key)?;
            return Err(denied());
        }
        match sid.uses_left {
            0 => {}
            1 => view.delete(&sid_key)?,
            _ => {
                sid.uses_left -= 1;
                view.put_json(&sid_key, &sid)?;
            }
        }
        let mut meta = sid.metadata.clone();
        meta.insert("role_name".into(), name.clone());
        let mut policies = r.policies;
        if r.no_default_policy {
            policies.retain(|p| p != "default");
        }
        Ok(Reply::Login(Login {
            policies,
            ttl: r.token_ttl,
            num_uses: r.token_num_uses,
            display_name: format!("approle-{name}"),
            meta,
        }))
    }
}

impl Backend for Approle {
    fn routes(&self) -> &'static [Route] {
        ROUTES
    }

    fn mount_type(&self) -> &'static str {
        "approle"
    }

    fn exists(&self, view: &View, m: &Matched) -> Result<bool, Error> {
        Ok(view
            .get(&format!("role/{}", m.param("role_name")))?
            .is_some())
    }

    fn handle(&self, ctx: &Ctx<'_>, m: &Matched, f: &Fields) -> Result<Reply, Error> {
        let view = &ctx.view;
        let name = m.param("role_name");
        let role_key = format!("role/{name}");
        match (m.route.name, ctx.op) {
            ("role", _) => {
                let keys = view.list("role/")?;
                Ok(if keys.is_empty() {
                    Reply::NotFound
                } else {
                    Reply::Data(json!({"keys": keys}))
                })
            }
            ("role/:role_name", Read) => Ok(match view.get_json::<Role>(&role_key)? {
                None => Reply::NotFound,
                Some(r) => Reply::Data(json!({
                    "token_policies": r.policies, "policies": r.policies, "token_ttl": r.token_ttl,
                    "token_num_uses": r.token_num_uses, "secret_id_ttl": r.secret_id_ttl,
                    "secret_id_num_uses": r.secret_id_num_uses, "bind_secret_id": r.bind_secret_id,
                    "token_no_default_policy": r.no_default_policy, "token_type": "default",
                })),
            }),
            ("role/:role_name", Delete) => {
                let key = salt(view)?;
                let _g = view.lock(&role_key);
                if let Some(r) = view.get_json::<Role>(&role_key)? {
                    view.delete_prefix(&format!(
                        "secret_id/{}/",
                        mac(&key, "role_id", &r.role_id)
                    ))?;
                    view.write(&[
                        (
                            &format!("role_id/{}", mac(&key, "role_id", &r.role_id)),
                            None,
                        ),
                        (&role_key, None),
                    ])?;
                }
                Ok(Reply::NoContent)
            }
            ("role/:role_name", _) => {
                check_token_type(f)?;
                let key = salt(view)?;
                let _g = view.lock(&role_key);
                super::created_meanwhile(ctx, &role_key)?;
                let existing: Option<Role> = view.get_json(&role_key)?;
                let mut r = existing.clone().unwrap_or_else(|| Role {
                    bind_secret_id: true,
                    ..Default::default()
                });
                if let Some(p) = policies_of(f)? {
                    r.policies = p;
                }
                if let Some(t) = f.secs("token_ttl") {
                    r.token_ttl = t;
                }
                if let Some(t) = f.secs("secret_id_ttl") {
                    r.secret_id_ttl = t;
                }
                if let Some(n) = f.uint("token_num_uses")? {
                    r.token_num_uses = n;
                }
                if let Some(n) = f.uint("secret_id_num_uses")? {
                    r.secret_id_num_uses = n;
                }
                if let Some(b) = f.bool("token_no_default_policy") {
                    r.no_default_policy = b;
                }
                if let Some(b) = f.bool("bind_secret_id") {
                    r.bind_secret_id = b;
                }
                if !r.bind_secret_id {
                    return Err(bad(
                        "bind_secret_id must stay true: a role without secret ids would log in with its role_id alone",
                    ));
                }
                let role_json = serde_json::to_vec(&r).map_err(internal)?;
                if existing.is_none() {
                    r.role_id = uuid()?;
                    let role_json = serde_json::to_vec(&r).map_err(internal)?;
                    let name_json = serde_json::to_vec(&name).map_err(internal)?;
                    view.write(&[
                        (&role_key, Some(&role_json)),
                        (
                            &format!("role_id/{}", mac(&key, "role_id", &r.role_id)),
                            Some(&name_json),
                        ),
                    ])?;
                } else {
                    view.put(&role_key, &role_json)?;
                }
                Ok(Reply::NoContent)
            }
            ("role/:role_name/role-id", _) => match view.get_json::<Role>(&role_key)? {
                None => Ok(Reply::NotFound),
                Some(r) => Ok(Reply::Data(json!({"role_id": r.role_id}))),
            },
            ("role/:role_name/secret-id", _) => {
                // Under the role's lock: a deletion running now either
                // finishes first (the role is gone) or sees this secret id.
                let key = salt(view)?;
                let _g = view.lock(&role_key);
                let r: Role = view
                    .get_json(&role_key)?
                    .ok_or_else(|| bad(format!("role {name:?} does not exist")))?;
                let mut metadata = BTreeMap::new();
                if let Some(m) = f.str("metadata").filter(|m| !m.is_empty()) {
                    let parsed: serde_json::Map<String, Value> =
                        serde_json::from_str(m).map_err(|_| {
                            bad("metadata must be a JSON object of strings, as a string")
                        })?;
                    for (k, v) in parsed {
                        let Value::String(v) = v else {
                            return Err(bad(
                                "metadata must be a JSON object of strings, as a string",
                            ));
                        };
                        metadata.insert(k, v);
                    }
                }
                let secret = Zeroizing::new(uuid()?);
                let now = now();
                let entry = SecretId {
                    accessor: uuid()?,
                    created: now,
                    expire: if r.secret_id_ttl > 0 {
                        now.saturating_add(r.secret_id_ttl)
                    } else {
                        0
                    },
                    uses_left: r.secret_id_num_uses,
                    metadata,
                };
                view.put_json(
                    &format!(
                        "secret_id/{}/{}",
                        mac(&key, "role_id", &r.role_id),
                        mac(&key, "secret_id", &secret)
                    ),
                    &entry,
                )?;
                Ok(Reply::Data(json!({
                    "secret_id": secret.as_str(), "secret_id_accessor": entry.accessor,
                    "secret_id_ttl": r.secret_id_ttl, "secret_id_num_uses": r.secret_id_num_uses,
                })))
            }
            ("login", _) => self.login(view, f),
            _ => Err(Error::MethodNotAllowed),
        }
    }
}
