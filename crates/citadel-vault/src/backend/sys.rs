//! `sys/`: the seal (`init`, `unseal`, `seal`, `seal-status`, `health`,
//! `leader`, `rotate`, `key-status`), policies, mounts, auth methods, audit
//! devices and their HMACs (`audit-hash`), capabilities, metrics, and the UI preflight that the Vault CLI
//! uses.
//!
//! Every state change of `sys/` (init, rotate, mounts, auth methods, audit
//! devices) is made on a copy, stored, then swapped in, under the lock of
//! the thing it changes, so a failed or concurrent operation leaves the
//! old state whole. `seal`, `rotate`, `audit`, `audit-hash` and `auth/:path` need `sudo`
//! as well as their capability, as in Vault.

use super::{Access, Backend, Ctx, Matched, Reply, Route, Seg};
use crate::audit::Device;
use crate::barrier::Unsealing;
use crate::error::Error;
use crate::fields::{Field, Fields, Ty, is_off};
use crate::ids::rfc3339;
use crate::mounts::{Kind, Table, engine_from, method_from, normalize};
use crate::policy::fold_name;
use crate::request::Operation::{self, Delete, List, Read, Update};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

const VERSION: &str = env!("CARGO_PKG_VERSION");

static HEALTH_FIELDS: &[Field] = &[
    Field::opt("standbyok", Ty::Bool),
    Field::opt("perfstandbyok", Ty::Bool),
    Field::opt("activecode", Ty::Int),
    Field::opt("standbycode", Ty::Int),
    Field::opt("drsecondarycode", Ty::Int),
    Field::opt("haunhealthycode", Ty::Int),
    Field::opt("performancestandbycode", Ty::Int),
    Field::opt("removedcode", Ty::Int),
    Field::opt("sealedcode", Ty::Int),
    Field::opt("uninitcode", Ty::Int),
];

static INIT_FIELDS: &[Field] = &[
    Field::opt("secret_shares", Ty::Int),
    Field::opt("secret_threshold", Ty::Int),
    Field::opt(
        "pgp_keys",
        Ty::Unsupported("PGP-encrypted unseal keys are not supported by citadel"),
    ),
    Field::opt(
        "root_token_pgp_key",
        Ty::Unsupported("a PGP-encrypted root token is not supported by citadel"),
    ),
    Field::opt(
        "stored_shares",
        Ty::Unsupported("stored shares are not supported (Shamir seal)"),
    ),
    Field::opt(
        "recovery_shares",
        Ty::Unsupported("recovery keys are not supported (Shamir seal)"),
    ),
    Field::opt(
        "recovery_threshold",
        Ty::Unsupported("recovery keys are not supported (Shamir seal)"),
    ),
    Field::opt(
        "recovery_pgp_keys",
        Ty::Unsupported("recovery keys are not supported (Shamir seal)"),
    ),
];

static UNSEAL_FIELDS: &[Field] = &[
    Field::opt("key", Ty::Str),
    Field::opt("reset", Ty::Bool),
    Field::opt(
        "migrate",
        Ty::Unsupported("seal migration is not supported by citadel"),
    ),
];

static POLICY_FIELDS: &[Field] = &[Field::opt("policy", Ty::Str), Field::opt("rules", Ty::Str)];

const LOCAL: Ty = Ty::Unsupported("local mounts are not supported: citadel runs one node");
const SEAL_WRAP: Ty = Ty::Unsupported("seal wrapping is not supported by citadel");

static MOUNT_FIELDS: &[Field] = &[
    Field::opt("type", Ty::Str),
    Field::opt("description", Ty::Str),
    Field::opt("config", Ty::Map),
    Field::opt("options", Ty::Map),
    Field::opt("plugin_name", Ty::Str),
    Field::opt("local", LOCAL),
    Field::opt("seal_wrap", SEAL_WRAP),
    Field::opt(
        "external_entropy_access",
        Ty::Unsupported("external entropy is not supported by citadel"),
    ),
    Field::opt(
        "plugin_version",
        Ty::Unsupported("plugin versions are not supported by citadel"),
    ),
];

static AUDIT_FIELDS: &[Field] = &[
    Field::opt("type", Ty::Str),
    Field::opt("description", Ty::Str),
    Field::opt("options", Ty::StrMap),
    Field::opt("local", LOCAL),
];

static AUDIT_HASH_FIELDS: &[Field] = &[Field::req("input", Ty::Str)];

static CAPABILITIES_FIELDS: &[Field] = &[
    Field::opt("path", Ty::StrList),
    Field::opt("paths", Ty::StrList),
    Field::opt("token", Ty::Str),
    Field::opt("accessor", Ty::Str),
];

static METRICS_FIELDS: &[Field] = &[Field::opt("format", Ty::Str)];

/// OpenBao's folding of what follows `sys/policy/` and
/// `sys/policies/acl/`: trimmed and lowercased as a whole.
fn policy_rest(s: &str) -> String {
    s.trim().to_lowercase()
}

static ROUTES: &[Route] = &[
    Route::new("health", &[Seg::Lit("health")], &[Read], HEALTH_FIELDS)
        .access(Access::None)
        .sealed_ok(),
    Route::new("init", &[Seg::Lit("init")], &[Read, Update], INIT_FIELDS)
        .access(Access::None)
        .sealed_ok(),
    Route::new("seal-status", &[Seg::Lit("seal-status")], &[Read], &[])
        .access(Access::None)
        .sealed_ok(),
    Route::new("leader", &[Seg::Lit("leader")], &[Read], &[])
        .access(Access::None)
        .sealed_ok(),
    Route::new("unseal", &[Seg::Lit("unseal")], &[Update], UNSEAL_FIELDS)
        .access(Access::None)
        .sealed_ok()
        .heavy(),
    Route::new("seal", &[Seg::Lit("seal")], &[Update], &[]).sudo(),
    Route::new("rotate", &[Seg::Lit("rotate")], &[Update], &[]).sudo(),
    Route::new(
        "rotate/keyring",
        &[Seg::Lit("rotate"), Seg::Lit("keyring")],
        &[Update],
        &[],
    )
    .sudo(),
    Route::new("key-status", &[Seg::Lit("key-status")], &[Read], &[]),
    Route::new("policy", &[Seg::Lit("policy")], &[Read, List], &[]),
    Route::new(
        "policy/:name",
        &[Seg::Lit("policy"), Seg::FoldedRest("name", policy_rest)],
        &[Read, Update, Delete],
        POLICY_FIELDS,
    ),
    Route::new(
        "policies/acl",
        &[Seg::Lit("policies"), Seg::Lit("acl")],
        &[List],
        &[],
    ),
    Route::new(
        "policies/acl/:name",
        &[
            Seg::Lit("policies"),
            Seg::Lit("acl"),
            Seg::FoldedRest("name", policy_rest),
        ],
        &[Read, Update, Delete],
        POLICY_FIELDS,
    ),
    Route::new("mounts", &[Seg::Lit("mounts")], &[Read], &[]),
    Route::new(
        "mounts/:path",
        &[Seg::Lit("mounts"), Seg::Rest("path")],
        &[Read, Update, Delete],
        MOUNT_FIELDS,
    ),
    Route::new("auth", &[Seg::Lit("auth")], &[Read], &[]),
    Route::new(
        "auth/:path",
        &[Seg::Lit("auth"), Seg::Rest("path")],
        &[Read, Update, Delete],
        MOUNT_FIELDS,
    )
    .sudo(),
    Route::new("audit", &[Seg::Lit("audit")], &[Read], &[]).sudo(),
    Route::new(
        "audit/:path",
        &[Seg::Lit("audit"), Seg::Rest("path")],
        &[Update, Delete],
        AUDIT_FIELDS,
    )
    .sudo(),
    Route::new(
        "audit-hash/:path",
        &[Seg::Lit("audit-hash"), Seg::Rest("path")],
        &[Update],
        AUDIT_HASH_FIELDS,
    )
    .sudo(),
    Route::new(
        "capabilities-self",
        &[Seg::Lit("capabilities-self")],
        &[Update],
        CAPABILITIES_FIELDS,
    ),
    Route::new(
        "capabilities",
        &[Seg::Lit("capabilities")],
        &[Update],
        CAPABILITIES_FIELDS,
    ),
    Route::new(
        "capabilities-accessor",
        &[Seg::Lit("capabilities-accessor")],
        &[Update],
        CAPABILITIES_FIELDS,
    ),
    Route::new(
        "internal/ui/mounts/:path",
        &[
            Seg::Lit("internal"),
            Seg::Lit("ui"),
            Seg::Lit("mounts"),
            Seg::Rest("path"),
        ],
        &[Read],
        &[],
    )
    .access(Access::AnyToken),
    Route::new("metrics", &[Seg::Lit("metrics")], &[Read], METRICS_FIELDS),
];

fn bad(m: impl Into<String>) -> Error {
    Error::BadRequest(m.into())
}

fn seal_status(ctx: &Ctx<'_>) -> Result<Value, Error> {
    let s = ctx.services.barrier.seal_status()?;
    Ok(json!({
        "type": "shamir", "initialized": s.initialized, "sealed": ctx.services.is_sealed(),
        "t": s.t, "n": s.n, "progress": s.progress, "nonce": s.nonce,
        "version": VERSION, "migration": false, "recovery_seal": false,
        "storage_type": ctx.services.barrier.storage_type(),
    }))
}

/// A `sys/` listing: Vault puts the entries at the top level and again
/// under `data`.
fn listing(data: Map<String, Value>) -> Reply {
    let mut body = Value::Object(data.clone());
    body["data"] = Value::Object(data);
    Reply::Raw(200, body)
}

fn mount_options(kind: Kind) -> Value {
    match kind {
        Kind::KvV2 => json!({"version": "2"}),
        _ => json!({}),
    }
}

/// A mount as `sys/mounts` shows it.
fn mount_json(m: &crate::mounts::Mount) -> Value {
    json!({"type": m.kind.type_name(), "options": mount_options(m.kind), "description": m.description,
           "accessor": m.accessor(), "uuid": m.uuid,
           "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false},
           "local": false, "seal_wrap": false, "external_entropy_access": false,
           "plugin_version": "", "running_plugin_version": "", "running_sha256": ""})
}

/// Refuses mount configuration citadel does not apply (anything but its
/// off value), and options other than KV's `version`.
fn check_mount_input(f: &Fields) -> Result<(), Error> {
    if let Some(c) = f.json("config").and_then(Value::as_object) {
        if let Some((k, _)) = c.iter().find(|(_, v)| !is_off(v)) {
            return Err(bad(format!(
                "mount configuration {k:?} is not supported by citadel; leave it unset"
            )));
        }
    }
    if let Some(o) = f.json("options").and_then(Value::as_object) {
        if let Some((k, _)) = o.iter().find(|(k, v)| *k != "version" && !is_off(v)) {
            return Err(bad(format!(
                "mount option {k:?} is not supported by citadel"
            )));
        }
    }
    Ok(())
}

/// The engine or method a mount request names (`type`, or the older
/// `plugin_name`).
fn requested_type(f: &Fields) -> Option<&str> {
    f.str("type")
        .filter(|t| !t.is_empty())
        .or_else(|| f.str("plugin_name"))
}

fn option_version(f: &Fields) -> Option<String> {
    f.json("options")
        .and_then(|o| o.get("version"))
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

fn health(ctx: &Ctx<'_>, f: &Fields) -> Result<Reply, Error> {
    let code = |name: &str, default: u16| -> Result<u16, Error> {
        match f.int(name) {
            None => Ok(default),
            Some(c) => u16::try_from(c)
                .ok()
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| bad(format!("unable to parse {name} code: {c}"))),
        }
    };
    let b = &ctx.services.barrier;
    let initialized = b.is_initialized()?;
    let sealed = ctx.services.is_sealed();
    let status = if !initialized {
        code("uninitcode", 501)?
    } else if sealed {
        code("sealedcode", 503)?
    } else {
        code("activecode", 200)?
    };
    Ok(Reply::Raw(
        status,
        json!({
            "initialized": initialized, "sealed": sealed, "standby": false,
            "performance_standby": false, "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled", "server_time_utc": crate::ids::now(),
            "version": VERSION,
        }),
    ))
}

fn init(ctx: &Ctx<'_>, f: &Fields) -> Result<Reply, Error> {
    let to_u8 = |name: &str| -> Result<u8, Error> {
        let n = f.int(name).unwrap_or(0);
        u8::try_from(n).ok().filter(|n| *n < 255).ok_or_else(|| {
            bad(format!(
                "invalid seal configuration: {} must be less than 256",
                name.trim_start_matches("secret_")
            ))
        })
    };
    let shares = to_u8("secret_shares")?;
    let threshold = to_u8("secret_threshold")?;
    let mut root = None;
    let r = ctx.services.barrier.init(shares, threshold, |k| {
        let (token, records) = crate::token_store::root_token_records(k.token_key())?;
        root = Some(token);
        Ok(records)
    })?;
    let root = root.ok_or_else(|| Error::Internal("no root token".into()))?;
    let hexes: Vec<String> = r.keys.iter().map(|k| hex::encode(&k[..])).collect();
    let b64s: Vec<String> = r.keys.iter().map(|k| B64.encode(&k[..])).collect();
    Ok(Reply::Raw(
        200,
        json!({"keys": hexes, "keys_base64": b64s, "root_token": root.as_str()}),
    ))
}

fn unseal(ctx: &Ctx<'_>, f: &Fields) -> Result<Reply, Error> {
    let s = ctx.services;
    if f.bool("reset").unwrap_or(false) {
        s.barrier.reset_unseal()?;
        return Ok(Reply::Raw(200, seal_status(ctx)?));
    }
    let key = f.str("key").filter(|k| !k.is_empty()).ok_or_else(|| {
        bad("'key' must be specified in request body as JSON, or 'reset' set to true")
    })?;
    if let Unsealing::Unsealed = s.barrier.unseal(key)? {
        s.after_unseal()?;
        tracing::info!(target: "citadel_vault::seal", "vault unsealed");
    }
    Ok(Reply::Raw(200, seal_status(ctx)?))
}

/// The capabilities of `acl` on each requested path, as the request core
/// would decide them (the path routed and its names folded, like a request).
fn capabilities(s: &super::Services, acl: &crate::policy::Acl, f: &Fields) -> Result<Reply, Error> {
    let mut paths: Vec<String> = Vec::new();
    for p in f
        .list("paths")
        .unwrap_or_default()
        .iter()
        .chain(f.list("path").unwrap_or_default())
    {
        paths.push(crate::path::logical(p)?);
    }
    if paths.is_empty() {
        return Err(bad("missing paths"));
    }
    if paths.len() > 256 {
        return Err(bad("at most 256 paths per request"));
    }
    let mut data = Map::new();
    let mut all: Vec<&'static str> = Vec::new();
    for p in &paths {
        let routed = s
            .target(p)?
            .and_then(|t| super::match_route(t.backend.routes(), &t.rel).map(|m| (t, m)));
        let caps = match routed {
            Some((t, m)) => super::capabilities(acl, &t, &m),
            None => acl.capabilities(p),
        };
        for c in &caps {
            if !all.contains(c) {
                all.push(c);
            }
        }
        data.insert(p.clone(), json!(caps));
    }
    // As Vault: `capabilities` is the union (for one path, its list).
    data.insert("capabilities".into(), json!(all));
    Ok(Reply::Data(Value::Object(data)))
}

fn audit_device(f: &Fields) -> Result<Device, Error> {
    Device::from_request(
        f.str("type").unwrap_or_default(),
        f.str("description").unwrap_or_default(),
        f.json("options").and_then(Value::as_object),
    )
    .map_err(bad)
}

/// The sys backend.
pub struct Sys;

impl Backend for Sys {
    fn routes(&self) -> &'static [Route] {
        ROUTES
    }

    fn mount_type(&self) -> &'static str {
        "system"
    }

    fn handle(&self, ctx: &Ctx<'_>, m: &Matched, f: &Fields) -> Result<Reply, Error> {
        let s = ctx.services;
        let op: Operation = ctx.op;
        match (m.route.name, op) {
            ("health", _) => health(ctx, f),
            ("init", Read) => Ok(Reply::Raw(
                200,
                json!({"initialized": s.barrier.is_initialized()?}),
            )),
            ("init", _) => init(ctx, f),
            ("seal-status", _) => Ok(Reply::Raw(200, seal_status(ctx)?)),
            // A single node without high availability; like Vault with
            // storage that has no HA, the same answer sealed or not.
            ("leader", _) => Ok(Reply::Raw(
                200,
                json!({"ha_enabled": false, "is_self": false, "active_time": "0001-01-01T00:00:00Z",
                        "leader_address": "", "leader_cluster_address": "",
                        "performance_standby": false, "performance_standby_last_remote_wal": 0}),
            )),
            ("unseal", _) => unseal(ctx, f),
            ("seal", _) => {
                s.seal();
                tracing::info!(target: "citadel_vault::seal", "vault sealed");
                Ok(Reply::NoContent)
            }
            ("rotate" | "rotate/keyring", _) => {
                let term = s.barrier.rotate()?;
                tracing::info!(target: "citadel_vault::seal", term, "keyring rotated");
                Ok(Reply::NoContent)
            }
            ("key-status", _) => {
                let (term, installed) = s.barrier.key_status()?;
                Ok(Reply::Data(
                    json!({"term": term, "install_time": rfc3339(installed), "encryptions": null}),
                ))
            }
            ("policy", _) => {
                let names = s.policies.list()?;
                Ok(Reply::Raw(
                    200,
                    json!({"policies": names, "keys": names, "data": {"policies": names, "keys": names}}),
                ))
            }
            ("policies/acl", _) => {
                let names = s.policies.list()?;
                Ok(Reply::Data(json!({"keys": names, "policies": names})))
            }
            ("policy/:name" | "policies/acl/:name", op) => {
                let name = m.param("name");
                // The route folded the whole rest; a name is one segment of
                // the allowed characters.
                if fold_name(name).as_deref() != Some(name) {
                    return Err(Error::NotFound(String::new()));
                }
                let legacy = m.route.name == "policy/:name";
                match op {
                    Read => {
                        if name == "root" {
                            return Ok(Reply::NotFound);
                        }
                        let Some(text) = s.policies.read_text(name)? else {
                            return Ok(Reply::NotFound);
                        };
                        Ok(if legacy {
                            Reply::Raw(
                                200,
                                json!({"name": name, "rules": text, "data": {"name": name, "rules": text}}),
                            )
                        } else {
                            Reply::Data(json!({"name": name, "policy": text}))
                        })
                    }
                    Delete => {
                        s.policies.delete(name)?;
                        Ok(Reply::NoContent)
                    }
                    _ => {
                        let text = f
                            .str("policy")
                            .or_else(|| f.str("rules"))
                            .filter(|t| !t.is_empty())
                            .ok_or_else(|| bad("'policy' parameter not supplied or empty"))?;
                        s.policies.write(name, text)?;
                        Ok(Reply::NoContent)
                    }
                }
            }
            ("mounts", _) => {
                let t = s.mounts.table(Table::Logical)?;
                let data: Map<String, Value> =
                    t.iter().map(|(p, m)| (p.clone(), mount_json(m))).collect();
                Ok(listing(data))
            }
            ("mounts/:path", op) => {
                let raw = m.param("path");
                if let Some(mount) = raw.strip_suffix("/tune") {
                    if op != Read {
                        return Err(bad(
                            "tuning mounts is not supported by citadel: disable and enable the mount with the options you need",
                        ));
                    }
                    let key = format!("{}/", mount.trim_matches('/'));
                    let t = s.mounts.table(Table::Logical)?;
                    let mt = t
                        .get(&key)
                        .ok_or_else(|| bad(format!("cannot fetch sysview for path \"{key}\"")))?;
                    let ttl = crate::token_store::MAX_TTL;
                    let data = json!({"default_lease_ttl": ttl, "max_lease_ttl": ttl,
                                      "description": mt.description, "force_no_cache": false,
                                      "options": mount_options(mt.kind)});
                    // Vault's tune answer carries the fields at the top level
                    // too.
                    return Ok(Reply::Raw(200, {
                        let mut v = data.clone();
                        v["data"] = data;
                        v
                    }));
                }
                let path = normalize(Table::Logical, raw)?;
                match op {
                    Read => {
                        let t = s.mounts.table(Table::Logical)?;
                        match t.get(&path) {
                            Some(mt) => Ok(Reply::Data(mount_json(mt))),
                            None => Err(bad(format!("no mount at {path}"))),
                        }
                    }
                    Delete => {
                        s.mounts.remove(Table::Logical, &path)?;
                        Ok(Reply::NoContent)
                    }
                    _ => {
                        check_mount_input(f)?;
                        let kind = requested_type(f)
                            .ok_or_else(|| bad("missing required field \"type\""))?;
                        let engine = engine_from(kind, option_version(f).as_deref())?;
                        s.mounts.add(
                            Table::Logical,
                            &path,
                            engine,
                            f.str("description").unwrap_or(""),
                        )?;
                        Ok(Reply::NoContent)
                    }
                }
            }
            ("auth", _) => {
                let t = s.mounts.table(Table::Auth)?;
                let mut data = Map::new();
                data.insert(
                    "token/".into(),
                    json!({"type": "token", "description": "token based credentials", "accessor": "auth_token", "local": false, "seal_wrap": false}),
                );
                for (p, mt) in t.iter() {
                    data.insert(
                        p.clone(),
                        json!({"type": mt.kind.type_name(), "accessor": mt.accessor(), "description": mt.description, "uuid": mt.uuid, "local": false, "seal_wrap": false}),
                    );
                }
                Ok(listing(data))
            }
            ("auth/:path", op) => {
                let path = normalize(Table::Auth, m.param("path"))?;
                match op {
                    Read => {
                        let t = s.mounts.table(Table::Auth)?;
                        match t.get(&path) {
                            Some(mt) => Ok(Reply::Data(
                                json!({"type": mt.kind.type_name(), "accessor": mt.accessor(), "description": mt.description, "uuid": mt.uuid}),
                            )),
                            None => Err(bad(format!("no auth method at {path}"))),
                        }
                    }
                    Delete => {
                        s.mounts.remove(Table::Auth, &path)?;
                        Ok(Reply::NoContent)
                    }
                    _ => {
                        check_mount_input(f)?;
                        if let Some(o) = f.json("options").and_then(Value::as_object) {
                            if !o.is_empty() && o.values().any(|v| !is_off(v)) {
                                return Err(bad(
                                    "auth method options are not supported by citadel",
                                ));
                            }
                        }
                        let kind = requested_type(f).unwrap_or_default();
                        let method = method_from(kind)?;
                        s.mounts.add(
                            Table::Auth,
                            &path,
                            method,
                            f.str("description").unwrap_or(""),
                        )?;
                        Ok(Reply::NoContent)
                    }
                }
            }
            ("audit", _) => {
                let t = s.audit_table()?;
                let data: Map<String, Value> = t
                    .iter()
                    .map(|(p, d)| {
                        (
                            p.clone(),
                            json!({"type": d.kind, "description": d.description, "path": p,
                                   "options": d.options(), "local": false}),
                        )
                    })
                    .collect();
                Ok(listing(data))
            }
            ("audit/:path", op) => {
                let path = format!("{}/", m.param("path"));
                let _g = s.barrier.lock_path(crate::audit::TABLE);
                let mut table = s.audit_table()?;
                match op {
                    Delete => {
                        if table.remove(&path).is_some() {
                            s.barrier.put(
                                crate::audit::TABLE,
                                &serde_json::to_vec(&table).map_err(crate::error::internal)?,
                            )?;
                            s.audit.disable(&path);
                        }
                        Ok(Reply::NoContent)
                    }
                    _ => {
                        if table.contains_key(&path) {
                            return Err(bad(format!("path already in use at {path}")));
                        }
                        let d = audit_device(f)?;
                        // Open first (its errors are the caller's to fix),
                        // then store the table; undo the open if that fails.
                        s.audit.enable(&path, &d)?;
                        table.insert(path.clone(), d);
                        let stored = serde_json::to_vec(&table)
                            .map_err(crate::error::internal)
                            .and_then(|b| s.barrier.put(crate::audit::TABLE, &b));
                        if let Err(e) = stored {
                            s.audit.disable(&path);
                            return Err(e);
                        }
                        Ok(Reply::NoContent)
                    }
                }
            }
            ("audit-hash/:path", _) => {
                let path = format!("{}/", m.param("path"));
                let hash = s
                    .audit
                    .hash(&path, f.str("input").unwrap_or_default())
                    .ok_or_else(|| bad(format!("no audit device is enabled at {path}")))?;
                let mut data = Map::new();
                data.insert("hash".into(), json!(hash));
                Ok(listing(data))
            }
            ("capabilities-self", _) => {
                let me = ctx.token.ok_or(Error::PermissionDenied)?;
                let acl = s.policies.acl(&me.policies)?;
                capabilities(s, &acl, f)
            }
            ("capabilities" | "capabilities-accessor", _) => {
                let other = if m.route.name == "capabilities" {
                    s.tokens.lookup(f.str("token").unwrap_or_default())?
                } else {
                    s.tokens
                        .by_accessor(f.str("accessor").unwrap_or_default())?
                };
                let other = other.ok_or_else(|| bad("invalid token"))?;
                let acl = s.policies.acl(&other.policies)?;
                capabilities(s, &acl, f)
            }
            ("internal/ui/mounts/:path", _) => {
                let me = ctx.token.ok_or(Error::PermissionDenied)?;
                let path = m.param("path");
                // As Vault: the same 403 whether the mount is missing or the
                // token's policies reach nothing under it.
                let denied = || {
                    Reply::Raw(
                        403,
                        json!({"errors": [format!("preflight capability check returned 403, please ensure client's policies grant access to path \"{path}/\"")]}),
                    )
                };
                let Some(r) = s.mounts.resolve(Table::Logical, path)? else {
                    return Ok(denied());
                };
                let acl = s.policies.acl(&me.policies)?;
                if !acl.reaches_under(&r.path) {
                    return Ok(denied());
                }
                let mut data = mount_json(&r.mount);
                data["path"] = json!(r.path);
                Ok(Reply::Data(data))
            }
            ("metrics", _) => match f.str("format") {
                Some("prometheus") => Ok(Reply::Text(
                    "text/plain; version=0.0.4; charset=utf-8",
                    s.metrics.render(&s.gauges()),
                )),
                _ => Err(bad(
                    "citadel serves metrics in the Prometheus text format: ask for sys/metrics?format=prometheus",
                )),
            },
            _ => Err(Error::MethodNotAllowed),
        }
    }
}
