//! Token store: create (child tokens, policies, TTL, use limits), look up,
//! renew, revoke (with every descendant), accessors. Tokens are 192-bit
//! random strings stored only as SHA-256 hashes, so looking one up compares
//! hashes by storage key and a stolen database holds no usable token.
//!
//! Storage: `sys/token/id/<hash>` (the entry), `sys/token/accessor/<a>`
//! (→ hash), `sys/token/parent/<parent hash>/<child hash>` (the tree).

use crate::Error;
use crate::core::{TokenEntry, Vault, new_accessor, new_token, now_secs, token_hash};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// Parses a duration as Vault accepts it: seconds as a number, or `90s`,
/// `15m`, `2h`, `1h30m`, `7d`.
pub fn parse_duration(v: &Value) -> Result<u64, Error> {
    let bad = || Error::BadRequest(format!("invalid duration {v}"));
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n.as_u64().ok_or_else(bad),
        Value::String(s) if s.is_empty() => Ok(0),
        Value::String(s) => {
            if let Ok(n) = s.parse::<u64>() {
                return Ok(n);
            }
            let mut total = 0u64;
            let mut num = String::new();
            for c in s.chars() {
                if c.is_ascii_digit() {
                    num.push(c);
                    continue;
                }
                let unit = match c {
                    's' => 1,
                    'm' => 60,
                    'h' => 3600,
                    'd' => 86400,
                    _ => return Err(bad()),
                };
                let n: u64 = num.parse().map_err(|_| bad())?;
                total = total
                    .checked_add(n.checked_mul(unit).ok_or_else(bad)?)
                    .ok_or_else(bad)?;
                num.clear();
            }
            if !num.is_empty() {
                return Err(bad());
            }
            Ok(total)
        }
        _ => Err(bad()),
    }
}

/// Policies given as a list or a comma-separated string (hvac sends both).
pub fn parse_policies(v: &Value) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = match v {
        Value::Null => Vec::new(),
        Value::String(s) => s
            .split(',')
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty())
            .collect(),
        Value::Array(a) => a
            .iter()
            .map(|p| {
                p.as_str()
                    .map(|s| s.trim().to_lowercase())
                    .ok_or_else(|| Error::BadRequest("policies must be strings".into()))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(Error::BadRequest(
                "policies must be a list or a comma-separated string".into(),
            ));
        }
    };
    out.sort();
    out.dedup();
    Ok(out)
}

/// A token request (`auth/token/create`).
#[derive(Default)]
pub struct Request {
    /// Policies for the new token.
    pub policies: Vec<String>,
    /// Lifetime in seconds (0: none, or the parent's remaining life).
    pub ttl: u64,
    /// Uses (0: unlimited).
    pub num_uses: u64,
    /// No parent: survives the revocation of its creator (root only).
    pub no_parent: bool,
    /// Do not add the `default` policy.
    pub no_default_policy: bool,
    /// Name for humans.
    pub display_name: String,
    /// Metadata.
    pub meta: std::collections::BTreeMap<String, String>,
}

/// Creates a token as a child of `parent`; returns the token and its entry.
pub fn create(
    v: &Vault,
    parent: &TokenEntry,
    req: Request,
) -> Result<(Zeroizing<String>, TokenEntry), Error> {
    let parent_is_root = parent.policies.iter().any(|p| p == "root");
    let mut policies = req.policies;
    if policies.is_empty() {
        policies = parent.policies.clone();
    }
    if !parent_is_root {
        if let Some(p) = policies
            .iter()
            .find(|p| *p != "default" && !parent.policies.contains(p))
        {
            return Err(Error::BadRequest(format!(
                "child policies must be subset of parent: {p} is not among the parent's"
            )));
        }
        if req.no_parent {
            return Err(Error::BadRequest(
                "root or sudo privileges required to create orphan token".into(),
            ));
        }
    }
    if !req.no_default_policy && !policies.iter().any(|p| p == "root" || p == "default") {
        policies.push("default".into());
        policies.sort();
    }
    let now = now_secs();
    // As Vault: only a root-policy token may live forever; others get the
    // default lease TTL when they ask for none.
    // A TTL above the system maximum is capped to it, as in Vault.
    let ttl = if req.ttl == 0 && !policies.iter().any(|p| p == "root") {
        crate::http::DEFAULT_LEASE_TTL
    } else {
        req.ttl.min(crate::http::DEFAULT_LEASE_TTL)
    };
    let mut expire = if ttl > 0 { now.saturating_add(ttl) } else { 0 };
    // A child never outlives its parent.
    if parent.expire_time != 0 && !req.no_parent && (expire == 0 || expire > parent.expire_time) {
        expire = parent.expire_time;
    }
    let token = new_token()?;
    let entry = TokenEntry {
        policies,
        accessor: new_accessor()?,
        creation_time: now,
        id_hash: token_hash(&token),
        parent: if req.no_parent {
            None
        } else {
            Some(parent.id_hash.clone())
        },
        ttl,
        expire_time: expire,
        num_uses: req.num_uses,
        display_name: if req.display_name.is_empty() {
            "token".into()
        } else {
            format!("token-{}", req.display_name)
        },
        meta: req.meta,
    };
    save(v, &entry)?;
    v.put(
        &format!("sys/token/accessor/{}", entry.accessor),
        entry.id_hash.as_bytes(),
    )?;
    if let Some(p) = &entry.parent {
        v.put(&format!("sys/token/parent/{p}/{}", entry.id_hash), b"")?;
    }
    Ok((token, entry))
}

fn save(v: &Vault, e: &TokenEntry) -> Result<(), Error> {
    let json = serde_json::to_vec(e).map_err(|e| Error::Internal(e.to_string()))?;
    v.put(&format!("sys/token/id/{}", e.id_hash), &json)
}

/// Counts one use of a use-limited token; the last use revokes it after
/// the request that spent it.
pub fn spend(v: &Vault, e: &TokenEntry) -> Result<(), Error> {
    if e.num_uses == 0 {
        return Ok(());
    }
    // Re-read under the token's lock: concurrent requests each spend one use.
    let _g = v.lock_path(&format!("sys/token/id/{}", e.id_hash));
    let Some(mut e) = v.lookup_hash(&e.id_hash)? else {
        return Err(Error::PermissionDenied);
    };
    if e.num_uses <= 1 {
        drop(_g);
        return revoke(v, &e.id_hash);
    }
    e.num_uses -= 1;
    save(v, &e)
}

/// Revokes the token with hash `hash` and all its descendants.
pub fn revoke(v: &Vault, hash: &str) -> Result<(), Error> {
    let children = v.list(&format!("sys/token/parent/{hash}/"))?;
    for c in children {
        revoke(v, c.trim_end_matches('/'))?;
    }
    v.delete_prefix(&format!("sys/token/parent/{hash}/"))?;
    if let Some(b) = v.get(&format!("sys/token/id/{hash}"))? {
        if let Ok(e) = serde_json::from_slice::<TokenEntry>(&b) {
            v.delete(&format!("sys/token/accessor/{}", e.accessor))?;
            if let Some(p) = e.parent {
                v.delete(&format!("sys/token/parent/{p}/{hash}"))?;
            }
        }
    }
    v.delete(&format!("sys/token/id/{hash}"))
}

/// The hash of the token behind an accessor.
pub fn by_accessor(v: &Vault, accessor: &str) -> Result<Option<String>, Error> {
    if accessor.is_empty() || accessor.contains('/') {
        return Ok(None);
    }
    Ok(v.get(&format!("sys/token/accessor/{accessor}"))?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Extends a token's life by `increment` seconds from now, never past its
/// parent nor past the system maximum TTL counted from its creation (as
/// Vault's max TTL); returns the new entry.
pub fn renew(v: &Vault, e: &TokenEntry, increment: u64) -> Result<TokenEntry, Error> {
    if e.expire_time == 0 {
        return Err(Error::BadRequest("lease is not renewable".into()));
    }
    let mut e = e.clone();
    let inc = if increment > 0 { increment } else { e.ttl };
    let limit = e
        .creation_time
        .saturating_add(crate::http::DEFAULT_LEASE_TTL);
    let mut expire = now_secs().saturating_add(inc).min(limit);
    if let Some(p) = &e.parent {
        if let Some(pe) = v.lookup_hash(p)? {
            if pe.expire_time != 0 {
                expire = expire.min(pe.expire_time);
            }
        }
    }
    e.expire_time = expire;
    save(v, &e)?;
    Ok(e)
}

fn rfc3339(unix: u64) -> Value {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}

fn meta_json(meta: &std::collections::BTreeMap<String, String>) -> Value {
    if meta.is_empty() {
        Value::Null
    } else {
        json!(meta)
    }
}

/// `auth/token/lookup*` data; `id` is the token itself when the caller
/// presented it (empty for a lookup by accessor).
pub fn lookup_json(e: &TokenEntry, id: &str) -> Value {
    let now = now_secs();
    let ttl = if e.expire_time == 0 {
        0
    } else {
        e.expire_time.saturating_sub(now)
    };
    let root = e.policies.iter().any(|p| p == "root") && e.expire_time == 0;
    let mut j = json!({
        "accessor": e.accessor, "creation_time": e.creation_time, "creation_ttl": e.ttl,
        "display_name": e.display_name, "entity_id": "",
        "expire_time": if e.expire_time == 0 { Value::Null } else { rfc3339(e.expire_time) },
        "explicit_max_ttl": 0, "id": id, "meta": meta_json(&e.meta), "num_uses": e.num_uses,
        "orphan": e.parent.is_none(),
        "path": if root { "auth/token/root" } else { "auth/token/create" },
        "policies": e.policies, "ttl": ttl, "type": "service",
    });
    if e.expire_time != 0 {
        j["renewable"] = json!(true);
        j["issue_time"] = rfc3339(e.creation_time);
    }
    j
}

/// The `auth` block of a login or token creation.
pub fn auth_json(token: &str, e: &TokenEntry) -> Value {
    let lease = if e.expire_time == 0 {
        0
    } else {
        e.expire_time.saturating_sub(now_secs())
    };
    json!({
        "client_token": token, "accessor": e.accessor, "policies": e.policies,
        "token_policies": e.policies, "metadata": meta_json(&e.meta), "lease_duration": lease,
        "renewable": e.expire_time != 0, "entity_id": "", "token_type": "service",
        "orphan": e.parent.is_none(), "mfa_requirement": null, "num_uses": e.num_uses,
    })
}
