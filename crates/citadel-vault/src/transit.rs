//! The transit engine (encryption as a service), with Vault's paths and
//! ciphertext format `vault:v<N>:<base64>` so rotation and rewrap work as
//! Vault users expect:
//!
//! - `keys/:name` (create, read, list, delete with `deletion_allowed`),
//!   `keys/:name/config` (`min_decryption_version`,
//!   `min_encryption_version`, `deletion_allowed`), `keys/:name/rotate`;
//! - `encrypt/:name`, `decrypt/:name`, `rewrap/:name` (with `batch_input`)
//!   for `aes256-gcm96` and `chacha20-poly1305` keys;
//! - `sign/:name`, `verify/:name` for `ed25519` and the post-quantum types
//!   Vault lacks: `ml-dsa-44/65/87` and `slh-dsa-*` (pure mode, empty
//!   context).
//!
//! Key material lives behind the barrier at `policy/<name>`.

use crate::Error;
use crate::core::Vault;
use crate::kv::{Op, Reply};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use citadel_crypto::Algorithm;
use citadel_crypto::aead::{AeadAlgorithm, AeadKey};
use citadel_crypto::sig::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// A key type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Aead(AeadAlgorithm),
    Sign(Algorithm),
}

fn kind_from(name: &str) -> Result<Kind, Error> {
    match name {
        "aes256-gcm96" => Ok(Kind::Aead(AeadAlgorithm::Aes256Gcm)),
        "chacha20-poly1305" => Ok(Kind::Aead(AeadAlgorithm::ChaCha20Poly1305)),
        other => match other.parse::<Algorithm>() {
            Ok(a) if a.family() == citadel_crypto::Family::Signature => Ok(Kind::Sign(a)),
            _ => Err(Error::BadRequest(format!(
                "unknown key type {other:?}: use aes256-gcm96, chacha20-poly1305, ed25519, ml-dsa-44, ml-dsa-65, ml-dsa-87 or slh-dsa-*"
            ))),
        },
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Version {
    /// Secret bytes (AEAD key, or signing seed / expanded key), base64.
    key: String,
    /// Whether `key` is a seed (ML-DSA, Ed25519) or expanded (SLH-DSA).
    #[serde(default)]
    seed: bool,
    #[serde(default)]
    public_key: String,
    creation_time: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct Key {
    #[serde(rename = "type")]
    kind: String,
    versions: BTreeMap<u32, Version>,
    latest_version: u32,
    min_decryption_version: u32,
    min_encryption_version: u32,
    deletion_allowed: bool,
}

fn bad(m: impl Into<String>) -> Error {
    Error::BadRequest(m.into())
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn new_version(kind: Kind) -> Result<Version, Error> {
    let internal = |e: citadel_crypto::Error| Error::Internal(e.to_string());
    Ok(match kind {
        Kind::Aead(_) => {
            let k = citadel_crypto::random::secret_array::<32>().map_err(internal)?;
            Version {
                key: B64.encode(&k[..]),
                seed: false,
                public_key: String::new(),
                creation_time: now(),
            }
        }
        Kind::Sign(alg) => {
            let sk = SigningKey::generate(alg).map_err(internal)?;
            let (key, seed) = match sk.seed() {
                Some(s) => (B64.encode(s), true),
                None => (B64.encode(sk.expanded().expose()), false),
            };
            Version {
                key,
                seed,
                public_key: B64.encode(sk.verifying_key().as_bytes()),
                creation_time: now(),
            }
        }
    })
}

struct Transit<'a> {
    v: &'a Vault,
    base: &'a str,
}

impl Transit<'_> {
    fn path(&self, name: &str) -> String {
        format!("{}policy/{name}", self.base)
    }

    fn load(&self, name: &str) -> Result<Option<Key>, Error> {
        match self.v.get(&self.path(name))? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("transit key {name}: {e}"))),
        }
    }

    fn save(&self, name: &str, k: &Key) -> Result<(), Error> {
        let b = Zeroizing::new(serde_json::to_vec(k).map_err(|e| Error::Internal(e.to_string()))?);
        self.v.put(&self.path(name), &b)
    }

    fn must(&self, name: &str) -> Result<Key, Error> {
        self.load(name)?
            .ok_or_else(|| bad(format!("encryption key not found: {name}")))
    }

    fn create(&self, name: &str, kind_name: &str) -> Result<Key, Error> {
        let kind = kind_from(kind_name)?;
        let k = Key {
            kind: kind_name.to_string(),
            versions: BTreeMap::from([(1, new_version(kind)?)]),
            latest_version: 1,
            min_decryption_version: 1,
            min_encryption_version: 0,
            deletion_allowed: false,
        };
        self.save(name, &k)?;
        Ok(k)
    }

    fn read_json(&self, name: &str, k: &Key) -> Result<Value, Error> {
        let kind = kind_from(&k.kind)?;
        let keys: serde_json::Map<String, Value> = k
            .versions
            .iter()
            .map(|(n, v)| {
                let val = match kind {
                    Kind::Aead(_) => json!(v.creation_time),
                    Kind::Sign(_) => json!({"creation_time": v.creation_time, "name": k.kind, "public_key": v.public_key}),
                };
                (n.to_string(), val)
            })
            .collect();
        let aead = matches!(kind, Kind::Aead(_));
        Ok(json!({
            "name": name, "type": k.kind, "keys": keys, "latest_version": k.latest_version,
            "min_available_version": 0, "min_decryption_version": k.min_decryption_version,
            "min_encryption_version": k.min_encryption_version, "deletion_allowed": k.deletion_allowed,
            "derived": false, "exportable": false, "allow_plaintext_backup": false,
            "supports_encryption": aead, "supports_decryption": aead, "supports_derivation": false,
            "supports_signing": !aead, "auto_rotate_period": 0,
        }))
    }
}

fn version_for_encrypt(k: &Key, requested: Option<u64>) -> Result<u32, Error> {
    let n = match requested {
        None | Some(0) => k.latest_version,
        Some(n) => u32::try_from(n).map_err(|_| bad("invalid key version"))?,
    };
    if n > k.latest_version || !k.versions.contains_key(&n) {
        return Err(bad(format!("invalid key version {n}")));
    }
    if k.min_encryption_version > 0 && n < k.min_encryption_version {
        return Err(bad(
            "requested version for encryption is less than the minimum encryption key version",
        ));
    }
    Ok(n)
}

/// Splits `vault:vN:payload`, checking the version against the policy.
fn parse_prefixed(k: &Key, s: &str) -> Result<(u32, Vec<u8>), Error> {
    let rest = s
        .strip_prefix("vault:v")
        .ok_or_else(|| bad("invalid ciphertext: no prefix"))?;
    let (n, payload) = rest
        .split_once(':')
        .ok_or_else(|| bad("invalid ciphertext: wrong number of fields"))?;
    let n: u32 = n
        .parse()
        .map_err(|_| bad("invalid ciphertext: version number could not be decoded"))?;
    if n < k.min_decryption_version {
        return Err(bad(
            "ciphertext or signature version is disallowed by policy (too old)",
        ));
    }
    if !k.versions.contains_key(&n) {
        return Err(bad("invalid ciphertext: key version not found"));
    }
    let bytes = B64
        .decode(payload)
        .map_err(|_| bad("invalid ciphertext: could not decode base64"))?;
    Ok((n, bytes))
}

/// Version `n` of a key and its decoded secret.
fn secret_of(k: &Key, n: u32) -> Result<(&Version, Zeroizing<Vec<u8>>), Error> {
    let v = k
        .versions
        .get(&n)
        .ok_or_else(|| bad("key version not found"))?;
    let raw = Zeroizing::new(
        B64.decode(&v.key)
            .map_err(|_| Error::Corrupt("transit key".into()))?,
    );
    Ok((v, raw))
}

fn aead_key(k: &Key, n: u32) -> Result<AeadKey, Error> {
    let Kind::Aead(alg) = kind_from(&k.kind)? else {
        return Err(bad(format!(
            "key type {} does not support encryption",
            k.kind
        )));
    };
    let (_, raw) = secret_of(k, n)?;
    AeadKey::new(alg, &raw).map_err(|e| Error::Internal(e.to_string()))
}

fn signing_key(k: &Key, n: u32) -> Result<SigningKey, Error> {
    let Kind::Sign(alg) = kind_from(&k.kind)? else {
        return Err(bad(format!("key type {} does not support signing", k.kind)));
    };
    let (v, raw) = secret_of(k, n)?;
    let r = if v.seed {
        SigningKey::from_seed(alg, &raw)
    } else {
        SigningKey::from_expanded(alg, &raw)
    };
    r.map_err(|e| Error::Corrupt(format!("transit key: {e}")))
}

fn encrypt_one(k: &Key, item: &Value) -> Result<Value, Error> {
    let pt = B64
        .decode(
            item.get("plaintext")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
        .map(Zeroizing::new)
        .map_err(|_| bad("failed to base64-decode plaintext"))?;
    let n = version_for_encrypt(k, item.get("key_version").and_then(Value::as_u64))?;
    let key = aead_key(k, n)?;
    let nonce =
        citadel_crypto::random::array::<12>().map_err(|e| Error::Internal(e.to_string()))?;
    let ct = key
        .seal(&nonce, b"", &pt)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&ct);
    Ok(json!({"ciphertext": format!("vault:v{n}:{}", B64.encode(blob)), "key_version": n}))
}

fn decrypt_one(k: &Key, item: &Value) -> Result<Zeroizing<Vec<u8>>, Error> {
    let c = item
        .get("ciphertext")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing ciphertext to decrypt"))?;
    let (n, blob) = parse_prefixed(k, c)?;
    if blob.len() < 12 + 16 {
        return Err(bad("invalid ciphertext: too short"));
    }
    let key = aead_key(k, n)?;
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&blob[..12]);
    key.open(&nonce, b"", &blob[12..])
        .map(Zeroizing::new)
        .map_err(|_| bad("cipher: message authentication failed"))
}

/// Runs `f` over `batch_input` when given (per-item errors, as Vault), else
/// over the body itself.
fn batch(body: &Value, mut f: impl FnMut(&Value) -> Result<Value, Error>) -> Result<Value, Error> {
    match body.get("batch_input").and_then(Value::as_array) {
        Some(items) => {
            let results: Vec<Value> = items
                .iter()
                .map(|it| f(it).unwrap_or_else(|e| json!({"error": e.to_string()})))
                .collect();
            Ok(json!({"batch_results": results}))
        }
        None => f(body),
    }
}

/// Serves one request to a transit mount whose data lives under `base`.
/// `may_create`: whether the caller may create a key (encrypt upserts an
/// `aes256-gcm96` key, as Vault does).
pub fn handle(
    v: &Vault,
    base: &str,
    op: Op,
    path: &str,
    body: &Value,
    may_create: bool,
) -> Result<Reply, Error> {
    let t = Transit { v, base };
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let name_ok = |n: &str| -> Result<(), Error> {
        if n.is_empty()
            || n.len() > 128
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad(format!("invalid key name {n:?}")));
        }
        Ok(())
    };
    match (segs.as_slice(), op) {
        (["keys"] | ["keys", ""], Op::List) => {
            let names: Vec<String> = v.list(&format!("{base}policy/"))?;
            Ok(if names.is_empty() {
                Reply::NotFound(None)
            } else {
                Reply::Data(json!({"keys": names}))
            })
        }
        (["keys", name], Op::Write) => {
            name_ok(name)?;
            if t.load(name)?.is_some() {
                return Ok(Reply::NoContent);
            }
            let kind = body
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("aes256-gcm96");
            let k = t.create(name, kind)?;
            Ok(Reply::Data(t.read_json(name, &k)?))
        }
        (["keys", name], Op::Read) => match t.load(name)? {
            Some(k) => Ok(Reply::Data(t.read_json(name, &k)?)),
            None => Ok(Reply::NotFound(None)),
        },
        (["keys", name], Op::Delete) => {
            let k = t.must(name)?;
            if !k.deletion_allowed {
                return Err(bad("deletion is not allowed for this key"));
            }
            v.delete(&t.path(name))?;
            Ok(Reply::NoContent)
        }
        (["keys", name, "config"], Op::Write) => {
            let mut k = t.must(name)?;
            if let Some(d) = body.get("deletion_allowed") {
                k.deletion_allowed = d
                    .as_bool()
                    .ok_or_else(|| bad("deletion_allowed must be a boolean"))?;
            }
            if let Some(m) = body.get("min_decryption_version").and_then(Value::as_u64) {
                let m = u32::try_from(m).map_err(|_| bad("invalid min_decryption_version"))?;
                if m > k.latest_version {
                    return Err(bad(
                        "cannot set min decryption version to a value greater than the latest version",
                    ));
                }
                k.min_decryption_version = m.max(1);
            }
            if let Some(m) = body.get("min_encryption_version").and_then(Value::as_u64) {
                let m = u32::try_from(m).map_err(|_| bad("invalid min_encryption_version"))?;
                if m > k.latest_version {
                    return Err(bad(
                        "cannot set min encryption version to a value greater than the latest version",
                    ));
                }
                k.min_encryption_version = m;
            }
            t.save(name, &k)?;
            Ok(Reply::NoContent)
        }
        (["keys", name, "rotate"], Op::Write) => {
            let mut k = t.must(name)?;
            let n = k.latest_version + 1;
            k.versions.insert(n, new_version(kind_from(&k.kind)?)?);
            k.latest_version = n;
            t.save(name, &k)?;
            Ok(Reply::Data(t.read_json(name, &k)?))
        }
        (["encrypt", name], Op::Write) => {
            name_ok(name)?;
            let k = match t.load(name)? {
                Some(k) => k,
                None if may_create => t.create(
                    name,
                    body.get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("aes256-gcm96"),
                )?,
                None => return Err(bad(format!("encryption key not found: {name}"))),
            };
            Ok(Reply::Data(batch(body, |it| encrypt_one(&k, it))?))
        }
        (["decrypt", name], Op::Write) => {
            let k = t.must(name)?;
            Ok(Reply::Data(batch(body, |it| {
                decrypt_one(&k, it).map(|pt| json!({"plaintext": B64.encode(&pt[..])}))
            })?))
        }
        (["rewrap", name], Op::Write) => {
            let k = t.must(name)?;
            Ok(Reply::Data(batch(body, |it| {
                let pt = decrypt_one(&k, it)?;
                let mut item = json!({"plaintext": B64.encode(&pt[..])});
                if let Some(kv) = it.get("key_version") {
                    item["key_version"] = kv.clone();
                }
                encrypt_one(&k, &item)
            })?))
        }
        (["sign", name] | ["sign", name, _], Op::Write) => {
            let k = t.must(name)?;
            Ok(Reply::Data(batch(body, |it| {
                let input = B64
                    .decode(it.get("input").and_then(Value::as_str).unwrap_or_default())
                    .map_err(|_| bad("unable to decode input as base64"))?;
                let n = version_for_encrypt(&k, it.get("key_version").and_then(Value::as_u64))?;
                let sig = signing_key(&k, n)?
                    .sign(&input, b"")
                    .map_err(|e| Error::Internal(e.to_string()))?;
                Ok(
                    json!({"signature": format!("vault:v{n}:{}", B64.encode(sig)), "key_version": n}),
                )
            })?))
        }
        (["verify", name] | ["verify", name, _], Op::Write) => {
            let k = t.must(name)?;
            Ok(Reply::Data(batch(body, |it| {
                let input = B64
                    .decode(it.get("input").and_then(Value::as_str).unwrap_or_default())
                    .map_err(|_| bad("unable to decode input as base64"))?;
                let s = it
                    .get("signature")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("missing signature"))?;
                let (n, sig) = parse_prefixed(&k, s)?;
                let Kind::Sign(alg) = kind_from(&k.kind)? else {
                    return Err(bad(format!(
                        "key type {} does not support verification",
                        k.kind
                    )));
                };
                let ver = k
                    .versions
                    .get(&n)
                    .ok_or_else(|| bad("key version not found"))?;
                let pk = B64
                    .decode(&ver.public_key)
                    .map_err(|_| Error::Corrupt("public key".into()))?;
                let vk = VerifyingKey::from_bytes(alg, &pk)
                    .map_err(|e| Error::Corrupt(e.to_string()))?;
                Ok(json!({"valid": vk.verify(&input, b"", &sig).is_ok()}))
            })?))
        }
        _ => Err(Error::NotFound(format!(
            "unsupported path or operation: {path}"
        ))),
    }
}

/// Whether a write to `path` (inside a transit mount) acts on an existing
/// key (`update`) or creates one (`create`).
pub fn exists(v: &Vault, base: &str, path: &str) -> Result<bool, Error> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match segs.as_slice() {
        ["keys", name] | ["encrypt", name] => Ok(v.get(&format!("{base}policy/{name}"))?.is_some()),
        _ => Ok(true),
    }
}
