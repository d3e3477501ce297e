//! `auth/token/`: create (child and orphan tokens), look up, renew and
//! revoke tokens, by themselves, by token or by accessor; list accessors.
//! The rules on who may create what live in the token store.

use super::{Backend, Ctx, Matched, Reply, Route, Seg, key_name};
use crate::error::Error;
use crate::fields::{Field, Fields, Ty};
use crate::ids::{now, rfc3339};
use crate::request::Operation::{List, Read, Update};
use crate::token_store::{NewToken, TokenEntry};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const MAX_TTL: Ty =
    Ty::Unsupported("explicit_max_ttl is not supported by citadel; tokens live at most 768h");

static CREATE_FIELDS: &[Field] = &[
    Field::opt("policies", Ty::StrList),
    Field::opt("ttl", Ty::Duration),
    Field::opt("num_uses", Ty::Int),
    Field::opt("no_parent", Ty::Bool),
    Field::opt("no_default_policy", Ty::Bool),
    Field::opt("display_name", Ty::Str),
    Field::opt("meta", Ty::StrMap),
    Field::opt("renewable", Ty::Bool),
    Field::opt("type", Ty::Str),
    Field::opt("explicit_max_ttl", MAX_TTL),
    Field::opt(
        "period",
        Ty::Unsupported("periodic tokens are not supported by citadel"),
    ),
    Field::opt(
        "id",
        Ty::Unsupported(
            "tokens with a chosen value are not supported by citadel; use the one returned",
        ),
    ),
    Field::opt(
        "entity_alias",
        Ty::Unsupported("entity aliases are not supported by citadel"),
    ),
    Field::opt(
        "lease",
        Ty::Unsupported("lease is the old name of ttl: use ttl"),
    ),
];

static TOKEN_FIELD: &[Field] = &[Field::req("token", Ty::Str)];
static ACCESSOR_FIELD: &[Field] = &[Field::req("accessor", Ty::Str)];
static RENEW_SELF_FIELDS: &[Field] = &[Field::opt("increment", Ty::Duration)];
static RENEW_FIELDS: &[Field] = &[
    Field::req("token", Ty::Str),
    Field::opt("increment", Ty::Duration),
];
static RENEW_ACCESSOR_FIELDS: &[Field] = &[
    Field::req("accessor", Ty::Str),
    Field::opt("increment", Ty::Duration),
];

static ROUTES: &[Route] = &[
    Route::new("create", &[Seg::Lit("create")], &[Update], CREATE_FIELDS),
    Route::new(
        "create-orphan",
        &[Seg::Lit("create-orphan")],
        &[Update],
        CREATE_FIELDS,
    ),
    Route::new(
        "create/:role",
        &[Seg::Lit("create"), Seg::Key("role", key_name)],
        &[Update],
        CREATE_FIELDS,
    ),
    Route::new(
        "lookup-self",
        &[Seg::Lit("lookup-self")],
        &[Read, Update],
        &[],
    ),
    Route::new("lookup", &[Seg::Lit("lookup")], &[Update], TOKEN_FIELD),
    Route::new(
        "lookup-accessor",
        &[Seg::Lit("lookup-accessor")],
        &[Update],
        ACCESSOR_FIELD,
    ),
    Route::new(
        "renew-self",
        &[Seg::Lit("renew-self")],
        &[Update],
        RENEW_SELF_FIELDS,
    ),
    Route::new("renew", &[Seg::Lit("renew")], &[Update], RENEW_FIELDS),
    Route::new(
        "renew-accessor",
        &[Seg::Lit("renew-accessor")],
        &[Update],
        RENEW_ACCESSOR_FIELDS,
    ),
    // Revocation walks a tree of any size: on the heavy-work pool.
    Route::new("revoke-self", &[Seg::Lit("revoke-self")], &[Update], &[]).heavy(),
    Route::new("revoke", &[Seg::Lit("revoke")], &[Update], TOKEN_FIELD).heavy(),
    Route::new(
        "revoke-accessor",
        &[Seg::Lit("revoke-accessor")],
        &[Update],
        ACCESSOR_FIELD,
    )
    .heavy(),
    Route::new("accessors", &[Seg::Lit("accessors")], &[List], &[]).sudo(),
];

fn meta_json(meta: &BTreeMap<String, String>) -> Value {
    if meta.is_empty() {
        Value::Null
    } else {
        json!(meta)
    }
}

/// Seconds until the token expires (0: never).
fn seconds_left(e: &TokenEntry) -> u64 {
    if e.expire_time == 0 {
        0
    } else {
        e.expire_time.saturating_sub(now())
    }
}

/// `auth/token/lookup*` data; `id` is the token itself when the caller
/// presented it (empty for a lookup by accessor).
pub(crate) fn lookup_json(e: &TokenEntry, id: &str) -> Value {
    let ttl = seconds_left(e);
    let mut j = json!({
        "accessor": e.accessor, "creation_time": e.creation_time, "creation_ttl": e.ttl,
        "display_name": e.display_name, "entity_id": "",
        "expire_time": if e.expire_time == 0 { Value::Null } else { rfc3339(e.expire_time) },
        "explicit_max_ttl": 0, "id": id, "meta": meta_json(&e.meta), "num_uses": e.num_uses,
        "orphan": e.parent.is_none(), "path": e.path,
        "policies": e.policies, "ttl": ttl, "type": "service",
    });
    if e.expire_time != 0 {
        j["renewable"] = json!(e.renewable);
        j["issue_time"] = rfc3339(e.creation_time);
    }
    j
}

/// The `auth` block of a login, a token creation or a renewal.
pub(crate) fn auth_json(token: &str, e: &TokenEntry) -> Value {
    let lease = seconds_left(e);
    json!({
        "client_token": token, "accessor": e.accessor, "policies": e.policies,
        "token_policies": e.policies, "metadata": meta_json(&e.meta), "lease_duration": lease,
        "renewable": e.renewable && e.expire_time != 0, "entity_id": "", "token_type": "service",
        "orphan": e.parent.is_none(), "mfa_requirement": null, "num_uses": e.num_uses,
    })
}

fn bad_token() -> Reply {
    Reply::Raw(403, json!({"errors": ["bad token"]}))
}

/// The token backend.
pub struct TokenBackend;

impl Backend for TokenBackend {
    fn routes(&self) -> &'static [Route] {
        ROUTES
    }

    fn mount_type(&self) -> &'static str {
        "token"
    }

    fn handle(&self, ctx: &Ctx<'_>, m: &Matched, f: &Fields) -> Result<Reply, Error> {
        let tokens = &ctx.services.tokens;
        let me = ctx.token.ok_or(Error::PermissionDenied)?;
        match m.route.name {
            "create/:role" => Err(Error::bad(
                "token roles are not supported by citadel; create tokens with auth/token/create",
            )),
            "create" | "create-orphan" => {
                match f.str("type") {
                    None | Some("" | "service" | "default") => {}
                    Some(t) => {
                        return Err(Error::bad(format!(
                            "token type {t:?} is not supported by citadel: only service tokens are issued"
                        )));
                    }
                }
                let mut policies = Vec::new();
                for p in f.list("policies").unwrap_or_default() {
                    policies.push(
                        crate::policy::fold_name(p)
                            .ok_or_else(|| Error::bad(format!("invalid policy name {p:?}")))?,
                    );
                }
                let meta: BTreeMap<String, String> = f
                    .json("meta")
                    .and_then(Value::as_object)
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let display = f.str("display_name").unwrap_or_default();
                let orphan_route = m.route.name == "create-orphan";
                let req = NewToken {
                    policies,
                    ttl: f.secs("ttl").unwrap_or(0),
                    num_uses: f.uint("num_uses")?.unwrap_or(0),
                    orphan: orphan_route || f.bool("no_parent").unwrap_or(false),
                    no_default_policy: f.bool("no_default_policy").unwrap_or(false),
                    renewable: f.bool("renewable").unwrap_or(true),
                    display_name: if display.is_empty() {
                        "token".into()
                    } else {
                        format!("token-{display}")
                    },
                    meta,
                    path: format!("auth/token/{}", m.path),
                };
                // create-orphan is gated by its own path; no_parent on
                // create needs sudo there (or root).
                let (tok, e) = tokens.create(Some(me), orphan_route || ctx.sudo, req)?;
                Ok(Reply::Auth(auth_json(&tok, &e)))
            }
            "lookup-self" => Ok(Reply::Data(lookup_json(
                me,
                ctx.token_str.unwrap_or_default(),
            ))),
            "lookup" => {
                let t = f.str("token").unwrap_or_default();
                Ok(match tokens.lookup(t)? {
                    Some(e) => Reply::Data(lookup_json(&e, t)),
                    None => bad_token(),
                })
            }
            "lookup-accessor" => Ok(
                match tokens.by_accessor(f.str("accessor").unwrap_or_default())? {
                    Some(e) => Reply::Data(lookup_json(&e, "")),
                    None => bad_token(),
                },
            ),
            "revoke-self" => {
                tokens.revoke(&me.id)?;
                Ok(Reply::NoContent)
            }
            "revoke" => {
                if let Some(e) = tokens.lookup(f.str("token").unwrap_or_default())? {
                    tokens.revoke(&e.id)?;
                }
                Ok(Reply::NoContent)
            }
            "revoke-accessor" => {
                if let Some(e) = tokens.by_accessor(f.str("accessor").unwrap_or_default())? {
                    tokens.revoke(&e.id)?;
                }
                Ok(Reply::NoContent)
            }
            "renew-self" | "renew" | "renew-accessor" => {
                let (shown, target) = match m.route.name {
                    "renew-self" => (
                        ctx.token_str.unwrap_or_default().to_string(),
                        Some(me.clone()),
                    ),
                    "renew" => {
                        let t = f.str("token").unwrap_or_default();
                        (t.to_string(), tokens.lookup(t)?)
                    }
                    _ => (
                        String::new(),
                        tokens.by_accessor(f.str("accessor").unwrap_or_default())?,
                    ),
                };
                let Some(e) = target else {
                    return Ok(bad_token());
                };
                let e = tokens.renew(&e, f.secs("increment").unwrap_or(0))?;
                Ok(Reply::Auth(auth_json(&shown, &e)))
            }
            "accessors" => {
                let keys = tokens.accessors()?;
                Ok(if keys.is_empty() {
                    Reply::NotFound
                } else {
                    Reply::Data(json!({"keys": keys}))
                })
            }
            _ => Err(Error::MethodNotAllowed),
        }
    }
}
