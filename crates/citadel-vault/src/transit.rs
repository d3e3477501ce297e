//! The transit engine (encryption as a service), with Vault's paths and
//! ciphertext format `vault:v<N>:<base64>` so rotation and rewrap work as
//! Vault users expect:
//!
//! - `keys/:name` (create, read, list, delete with `deletion_allowed`),
//!   `keys/:name/config` (`min_decryption_version`,
//!   `min_encryption_version`, `deletion_allowed`), `keys/:name/rotate`;
//! - `encrypt/:name`, `decrypt/:name`, `rewrap/:name` (with `batch_input`
//!   and `associated_data`), `datakey/plaintext|wrapped/:name`;
//! - `sign/:name`, `verify/:name` (signatures and HMACs), `hmac/:name`;
//! - `random`, `hash` (no key).
//!
//! Key types: `aes256-gcm96` and `chacha20-poly1305` (encryption),
//! `ed25519` and `ecdsa-p256` (signing, as Vault has them), and types
//! Vault lacks: `ml-dsa-44/65/87` and `slh-dsa-*` for signing (pure mode,
//! empty context) and `mlkem768-x25519` for encryption and data keys.
//!
//! An `mlkem768-x25519` ciphertext is `vault:vN:` then the base64 of the
//! X-Wing ciphertext (1,120 bytes) followed by AES-256-GCM output under
//! `HKDF-SHA-256(ikm = shared secret, salt = "", info =
//! "citadel transit mlkem768-x25519 v1")` with an all-zero nonce (each
//! encapsulation yields a fresh key, so the nonce is never reused). Its
//! public key (shown by `keys/:name`) lets anyone encrypt offline.
//!
//! Every key version also carries a 256-bit HMAC key, as in Vault.
//! Key material lives behind the barrier at `policy/<name>`.

use crate::Error;
use crate::core::Vault;
use crate::kv::{Op, Reply};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use citadel_crypto::Algorithm;
use citadel_crypto::aead::{AeadAlgorithm, AeadKey};
use citadel_crypto::ecdsa::{P256SigningKey, SignatureEncoding, verify_p256};
use citadel_crypto::hash::HashAlgorithm;
use citadel_crypto::kdf::HmacHash;
use citadel_crypto::sig::{SigningKey, VerifyingKey};
use citadel_crypto::xwing;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// A key type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Aead(AeadAlgorithm),
    Sign(Algorithm),
    EcdsaP256,
    /// X-Wing (ML-KEM-768 + X25519) then AES-256-GCM.
    Hybrid,
}

const HYBRID: &str = "mlkem768-x25519";
const HYBRID_INFO: &[u8] = b"citadel transit mlkem768-x25519 v1";

fn kind_from(name: &str) -> Result<Kind, Error> {
    match name {
        "aes256-gcm96" => Ok(Kind::Aead(AeadAlgorithm::Aes256Gcm)),
        "chacha20-poly1305" => Ok(Kind::Aead(AeadAlgorithm::ChaCha20Poly1305)),
        "ecdsa-p256" => Ok(Kind::EcdsaP256),
        HYBRID => Ok(Kind::Hybrid),
        other => match other.parse::<Algorithm>() {
            Ok(a) if a.family() == citadel_crypto::Family::Signature => Ok(Kind::Sign(a)),
            _ => Err(Error::BadRequest(format!(
                "unknown key type {other:?}: use aes256-gcm96, chacha20-poly1305, {HYBRID}, ed25519, ecdsa-p256, ml-dsa-44, ml-dsa-65, ml-dsa-87 or slh-dsa-*"
            ))),
        },
    }
}

impl Kind {
    fn encrypts(self) -> bool {
        matches!(self, Kind::Aead(_) | Kind::Hybrid)
    }

    fn signs(self) -> bool {
        matches!(self, Kind::Sign(_) | Kind::EcdsaP256)
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Version {
    /// Secret bytes, base64: the AEAD key, a signing or X-Wing seed, an
    /// expanded SLH-DSA key, or a P-256 PKCS#8 document.
    key: String,
    /// Whether `key` is a seed (ML-DSA, Ed25519) or expanded (SLH-DSA).
    #[serde(default)]
    seed: bool,
    /// Public key: base64 (raw bytes), or PEM for `ecdsa-p256`.
    #[serde(default)]
    public_key: String,
    creation_time: String,
    /// The version's HMAC key, base64.
    #[serde(default)]
    hmac_key: String,
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

fn internal(e: citadel_crypto::Error) -> Error {
    Error::Internal(e.to_string())
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn unix_of(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

fn new_version(kind: Kind) -> Result<Version, Error> {
    let hmac_key = B64.encode(&citadel_crypto::random::secret_array::<32>().map_err(internal)?[..]);
    let (key, seed, public_key) = match kind {
        Kind::Aead(_) => {
            let k = citadel_crypto::random::secret_array::<32>().map_err(internal)?;
            (B64.encode(&k[..]), false, String::new())
        }
        Kind::Sign(alg) => {
            let sk = SigningKey::generate(alg).map_err(internal)?;
            let (key, seed) = match sk.seed() {
                Some(s) => (B64.encode(s), true),
                None => (B64.encode(sk.expanded().expose()), false),
            };
            (key, seed, B64.encode(sk.verifying_key().as_bytes()))
        }
        Kind::EcdsaP256 => {
            let sk = P256SigningKey::generate().map_err(internal)?;
            let pem = sk.public_key_pem().map_err(internal)?;
            (B64.encode(sk.pkcs8().expose()), false, pem)
        }
        Kind::Hybrid => {
            let dk = xwing::DecapsulationKey::generate().map_err(internal)?;
            let pk = B64.encode(dk.encapsulation_key().to_bytes());
            (B64.encode(dk.seed()), true, pk)
        }
    };
    Ok(Version {
        key,
        seed,
        public_key,
        creation_time: now(),
        hmac_key,
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
            .ok_or_else(|| bad("encryption key not found"))
    }

    fn create(&self, name: &str, body: &Value) -> Result<Key, Error> {
        let kind_name = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("aes256-gcm96");
        for unsupported in ["derived", "convergent_encryption", "exportable"] {
            if body.get(unsupported).and_then(Value::as_bool) == Some(true) {
                return Err(bad(format!(
                    "{unsupported} keys are not supported by citadel; create the key without {unsupported}"
                )));
            }
        }
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
        // As Vault: versions below min_decryption_version are not shown.
        let keys: serde_json::Map<String, Value> = k
            .versions
            .iter()
            .filter(|(n, _)| **n >= k.min_decryption_version)
            .map(|(n, v)| {
                // Vault shows symmetric versions as their Unix creation time.
                let val = match kind {
                    Kind::Aead(_) => json!(unix_of(&v.creation_time)),
                    Kind::EcdsaP256 => json!({"creation_time": v.creation_time, "name": "P-256", "public_key": v.public_key}),
                    Kind::Sign(_) | Kind::Hybrid => json!({"creation_time": v.creation_time, "name": k.kind, "public_key": v.public_key}),
                };
                (n.to_string(), val)
            })
            .collect();
        Ok(json!({
            "name": name, "type": k.kind, "keys": keys, "latest_version": k.latest_version,
            "min_available_version": 0, "min_decryption_version": k.min_decryption_version,
            "min_encryption_version": k.min_encryption_version, "deletion_allowed": k.deletion_allowed,
            "derived": false, "exportable": false, "allow_plaintext_backup": false,
            "supports_encryption": kind.encrypts(), "supports_decryption": kind.encrypts(),
            "supports_derivation": false, "supports_signing": kind.signs(), "auto_rotate_period": 0,
            "imported_key": false, "soft_deleted": false,
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

/// Splits `vault:vN:payload` (payload still encoded), checking the version
/// against the policy.
fn split_prefixed<'s>(k: &Key, s: &'s str) -> Result<(u32, &'s str), Error> {
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
    Ok((n, payload))
}

/// [`split_prefixed`] with a standard-base64 payload.
fn parse_prefixed(k: &Key, s: &str) -> Result<(u32, Vec<u8>), Error> {
    let (n, payload) = split_prefixed(k, s)?;
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

fn signing_key(k: &Key, alg: Algorithm, n: u32) -> Result<SigningKey, Error> {
    let (v, raw) = secret_of(k, n)?;
    let r = if v.seed {
        SigningKey::from_seed(alg, &raw)
    } else {
        SigningKey::from_expanded(alg, &raw)
    };
    r.map_err(|e| Error::Corrupt(format!("transit key: {e}")))
}

fn b64_field(item: &Value, field: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    B64.decode(item.get(field).and_then(Value::as_str).unwrap_or_default())
        .map(Zeroizing::new)
        .map_err(|_| bad(format!("failed to base64-decode {field}")))
}

/// The symmetric key of a hybrid ciphertext, from its shared secret.
fn hybrid_aead(shared: &[u8]) -> Result<AeadKey, Error> {
    let k = citadel_crypto::kdf::hkdf(
        citadel_crypto::kdf::HkdfHash::Sha256,
        b"",
        shared,
        HYBRID_INFO,
        32,
    )
    .map_err(internal)?;
    AeadKey::new(AeadAlgorithm::Aes256Gcm, k.expose()).map_err(internal)
}

fn not_for(k: &Key, what: &str) -> Error {
    bad(format!("key type {} does not support {what}", k.kind))
}

/// Encrypts `pt` under version `n`; the bytes after `vault:vN:`.
fn seal(k: &Key, n: u32, aad: &[u8], pt: &[u8]) -> Result<Vec<u8>, Error> {
    match kind_from(&k.kind)? {
        Kind::Aead(alg) => {
            let (_, raw) = secret_of(k, n)?;
            let key = AeadKey::new(alg, &raw).map_err(internal)?;
            let nonce = citadel_crypto::random::array::<12>().map_err(internal)?;
            let ct = key.seal(&nonce, aad, pt).map_err(internal)?;
            let mut blob = nonce.to_vec();
            blob.extend_from_slice(&ct);
            Ok(blob)
        }
        Kind::Hybrid => {
            let v = k
                .versions
                .get(&n)
                .ok_or_else(|| bad("key version not found"))?;
            let pk = B64
                .decode(&v.public_key)
                .map_err(|_| Error::Corrupt("transit public key".into()))?;
            let ek = xwing::EncapsulationKey::from_bytes(&pk).map_err(internal)?;
            let (kem_ct, shared) = ek.encapsulate().map_err(internal)?;
            let ct = hybrid_aead(shared.expose())?
                .seal(&[0u8; 12], aad, pt)
                .map_err(internal)?;
            let mut blob = kem_ct;
            blob.extend_from_slice(&ct);
            Ok(blob)
        }
        _ => Err(not_for(k, "encryption")),
    }
}

fn open(k: &Key, n: u32, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let failed = || bad("cipher: message authentication failed");
    match kind_from(&k.kind)? {
        Kind::Aead(alg) => {
            if blob.len() < 12 + 16 {
                return Err(bad("invalid ciphertext: too short"));
            }
            let (_, raw) = secret_of(k, n)?;
            let key = AeadKey::new(alg, &raw).map_err(internal)?;
            let mut nonce = [0u8; 12];
            nonce.copy_from_slice(&blob[..12]);
            key.open(&nonce, aad, &blob[12..])
                .map(Zeroizing::new)
                .map_err(|_| failed())
        }
        Kind::Hybrid => {
            if blob.len() < xwing::CIPHERTEXT_LEN + 16 {
                return Err(bad("invalid ciphertext: too short"));
            }
            let (_, seed) = secret_of(k, n)?;
            let dk = xwing::DecapsulationKey::from_seed(&seed)
                .map_err(|e| Error::Corrupt(format!("transit key: {e}")))?;
            let (kem_ct, ct) = blob.split_at(xwing::CIPHERTEXT_LEN);
            let shared = dk.decapsulate(kem_ct).map_err(|_| failed())?;
            hybrid_aead(shared.expose())?
                .open(&[0u8; 12], aad, ct)
                .map(Zeroizing::new)
                .map_err(|_| failed())
        }
        _ => Err(not_for(k, "decryption")),
    }
}

fn encrypt_one(k: &Key, item: &Value) -> Result<Value, Error> {
    let pt = b64_field(item, "plaintext")?;
    let aad = b64_field(item, "associated_data")?;
    let n = version_for_encrypt(k, item.get("key_version").and_then(Value::as_u64))?;
    let blob = seal(k, n, &aad, &pt)?;
    Ok(json!({"ciphertext": format!("vault:v{n}:{}", B64.encode(blob)), "key_version": n}))
}

fn decrypt_one(k: &Key, item: &Value) -> Result<Zeroizing<Vec<u8>>, Error> {
    let c = item
        .get("ciphertext")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing ciphertext to decrypt"))?;
    let aad = b64_field(item, "associated_data")?;
    let (n, blob) = parse_prefixed(k, c)?;
    open(k, n, &aad, &blob)
}

/// Runs `f` over `batch_input` when given, else over the body itself. As
/// Vault: each result echoes its item's `reference`; a failed item carries
/// its `error`, and any failure makes the answer 400 (or the request's
/// `partial_failure_response_code` when some items succeeded).
fn batch(body: &Value, mut f: impl FnMut(&Value) -> Result<Value, Error>) -> Result<Reply, Error> {
    let Some(items) = body.get("batch_input").and_then(Value::as_array) else {
        return f(body).map(Reply::Data);
    };
    let (mut ok, mut failed) = (0usize, 0usize);
    let results: Vec<Value> = items
        .iter()
        .map(|it| {
            let mut r = match f(it) {
                Ok(r) => {
                    ok += 1;
                    r
                }
                Err(e) => {
                    failed += 1;
                    json!({"error": e.to_string()})
                }
            };
            r["reference"] = it.get("reference").cloned().unwrap_or_else(|| json!(""));
            r
        })
        .collect();
    let data = json!({"batch_results": results});
    if failed == 0 {
        return Ok(Reply::Data(data));
    }
    let partial = body
        .get("partial_failure_response_code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (200..600).contains(c));
    Ok(match partial {
        Some(code) if ok > 0 => Reply::Status(code, data),
        _ => Reply::Status(400, data),
    })
}

/// The hash named by Vault (`sha2-256`, `sha3-512`, …).
fn vault_hash(name: &str) -> Result<HashAlgorithm, Error> {
    Ok(match name {
        "sha2-224" => HashAlgorithm::Sha224,
        "sha2-256" => HashAlgorithm::Sha256,
        "sha2-384" => HashAlgorithm::Sha384,
        "sha2-512" => HashAlgorithm::Sha512,
        "sha3-224" => HashAlgorithm::Sha3_224,
        "sha3-256" => HashAlgorithm::Sha3_256,
        "sha3-384" => HashAlgorithm::Sha3_384,
        "sha3-512" => HashAlgorithm::Sha3_512,
        other => return Err(bad(format!("unsupported hash algorithm {other}"))),
    })
}

fn hmac_hash(name: &str) -> Result<HmacHash, Error> {
    Ok(match name {
        "sha2-224" => HmacHash::Sha224,
        "sha2-256" => HmacHash::Sha256,
        "sha2-384" => HmacHash::Sha384,
        "sha2-512" => HmacHash::Sha512,
        other => {
            return Err(bad(format!(
                "unsupported algorithm {other}: citadel's HMAC takes sha2-224, sha2-256, sha2-384 or sha2-512"
            )));
        }
    })
}

/// An algorithm from the path's last segment or the body (path wins), or
/// the default.
fn algorithm_param<'a>(
    from_path: Option<&'a str>,
    item: &'a Value,
    field: &str,
    default: &'a str,
) -> &'a str {
    from_path
        .or_else(|| item.get(field).and_then(Value::as_str))
        .unwrap_or(default)
}

fn hmac_key_of(k: &Key, n: u32) -> Result<Zeroizing<Vec<u8>>, Error> {
    let v = k
        .versions
        .get(&n)
        .ok_or_else(|| bad("key version not found"))?;
    if v.hmac_key.is_empty() {
        return Err(bad("this key version has no HMAC key; rotate the key"));
    }
    B64.decode(&v.hmac_key)
        .map(Zeroizing::new)
        .map_err(|_| Error::Corrupt("transit HMAC key".into()))
}

fn marshaling(item: &Value) -> Result<SignatureEncoding, Error> {
    match item
        .get("marshaling_algorithm")
        .and_then(Value::as_str)
        .unwrap_or("asn1")
    {
        "asn1" => Ok(SignatureEncoding::Asn1),
        "jws" => Ok(SignatureEncoding::Fixed),
        other => Err(bad(format!("invalid marshaling type {other:?}"))),
    }
}

/// ECDSA options citadel supports: SHA-256 over the input, not prehashed.
fn ecdsa_options(hash: &str, item: &Value) -> Result<SignatureEncoding, Error> {
    if hash != "sha2-256" {
        return Err(bad(format!(
            "unsupported hash algorithm {hash} for ecdsa-p256: citadel signs with sha2-256"
        )));
    }
    if item.get("prehashed").and_then(Value::as_bool) == Some(true) {
        return Err(bad(
            "prehashed input is not supported for ecdsa-p256 by citadel",
        ));
    }
    marshaling(item)
}

fn sign_one(k: &Key, hash: Option<&str>, it: &Value) -> Result<Value, Error> {
    let input = b64_field(it, "input").map_err(|_| bad("unable to decode input as base64"))?;
    let n = version_for_encrypt(k, it.get("key_version").and_then(Value::as_u64))?;
    let hash = algorithm_param(hash, it, "hash_algorithm", "sha2-256");
    let sig = match kind_from(&k.kind)? {
        Kind::Sign(alg) => B64.encode(
            signing_key(k, alg, n)?
                .sign(&input, b"")
                .map_err(internal)?,
        ),
        Kind::EcdsaP256 => {
            let enc = ecdsa_options(hash, it)?;
            let (_, der) = secret_of(k, n)?;
            let sk = P256SigningKey::from_pkcs8(&der)
                .map_err(|e| Error::Corrupt(format!("transit key: {e}")))?;
            let sig = sk.sign(&input, enc).map_err(internal)?;
            match enc {
                SignatureEncoding::Asn1 => B64.encode(sig),
                SignatureEncoding::Fixed => B64URL.encode(sig),
            }
        }
        _ => return Err(not_for(k, "signing")),
    };
    Ok(json!({"signature": format!("vault:v{n}:{sig}"), "key_version": n}))
}

fn verify_one(k: &Key, hash: Option<&str>, it: &Value) -> Result<Value, Error> {
    let input = b64_field(it, "input").map_err(|_| bad("unable to decode input as base64"))?;
    let hash_name = algorithm_param(hash, it, "hash_algorithm", "sha2-256");
    if let Some(tag) = it.get("hmac").and_then(Value::as_str) {
        let (n, tag) = parse_prefixed(k, tag)?;
        let h = hmac_hash(algorithm_param(hash, it, "algorithm", hash_name))?;
        let key = hmac_key_of(k, n)?;
        return Ok(json!({"valid": citadel_crypto::kdf::hmac_verify(h, &key, &input, &tag)}));
    }
    let s = it
        .get("signature")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("neither a signature nor an hmac was given to verify"))?;
    let (n, payload) = split_prefixed(k, s)?;
    let ver = k
        .versions
        .get(&n)
        .ok_or_else(|| bad("key version not found"))?;
    let valid = match kind_from(&k.kind)? {
        Kind::Sign(alg) => {
            let sig = B64
                .decode(payload)
                .map_err(|_| bad("invalid signature: could not decode base64"))?;
            let pk = B64
                .decode(&ver.public_key)
                .map_err(|_| Error::Corrupt("public key".into()))?;
            let vk =
                VerifyingKey::from_bytes(alg, &pk).map_err(|e| Error::Corrupt(e.to_string()))?;
            vk.verify(&input, b"", &sig).is_ok()
        }
        Kind::EcdsaP256 => {
            let enc = ecdsa_options(hash_name, it)?;
            let sig = match enc {
                SignatureEncoding::Asn1 => B64.decode(payload),
                SignatureEncoding::Fixed => B64URL.decode(payload),
            }
            .map_err(|_| bad("invalid signature: could not decode base64"))?;
            let (_, der) = secret_of(k, n)?;
            let sk = P256SigningKey::from_pkcs8(&der)
                .map_err(|e| Error::Corrupt(format!("transit key: {e}")))?;
            verify_p256(&sk.public_key_der().map_err(internal)?, &input, &sig, enc)
        }
        _ => return Err(not_for(k, "verification")),
    };
    Ok(json!({"valid": valid}))
}

fn hmac_one(k: &Key, algorithm: Option<&str>, it: &Value) -> Result<Value, Error> {
    let input = b64_field(it, "input").map_err(|_| bad("unable to decode input as base64"))?;
    let n = version_for_encrypt(k, it.get("key_version").and_then(Value::as_u64))?;
    let h = hmac_hash(algorithm_param(algorithm, it, "algorithm", "sha2-256"))?;
    let tag = citadel_crypto::kdf::hmac(h, &hmac_key_of(k, n)?, &input);
    Ok(json!({"hmac": format!("vault:v{n}:{}", B64.encode(tag))}))
}

/// Maximum `random` output, as Vault.
const MAX_RANDOM: u64 = 128 * 1024;

fn encode_as(format: &str, bytes: &[u8]) -> Result<String, Error> {
    match format {
        "base64" => Ok(B64.encode(bytes)),
        "hex" => Ok(hex::encode(bytes)),
        other => Err(bad(format!(
            "unsupported encoding format {other}; valid values are \"hex\" or \"base64\""
        ))),
    }
}

/// `random[/:source][/:bytes]`.
fn random(segs: &[&str], body: &Value) -> Result<Value, Error> {
    let mut bytes = body.get("bytes").and_then(Value::as_u64).unwrap_or(32);
    for s in segs {
        match *s {
            "platform" | "seal" | "all" => {}
            n => {
                bytes = n
                    .parse()
                    .map_err(|_| bad(format!("unable to parse bytes as an integer: {n}")))?;
            }
        }
    }
    if bytes == 0 || bytes > MAX_RANDOM {
        return Err(bad(format!("bytes must be between 1 and {MAX_RANDOM}")));
    }
    let mut out = Zeroizing::new(vec![0u8; bytes as usize]);
    citadel_crypto::random::fill(&mut out).map_err(internal)?;
    let format = body
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or("base64");
    Ok(json!({"random_bytes": encode_as(format, &out)?}))
}

/// `hash[/:algorithm]`.
fn hash(algorithm: Option<&str>, body: &Value) -> Result<Value, Error> {
    let input = b64_field(body, "input").map_err(|_| bad("unable to decode input as base64"))?;
    let alg = vault_hash(algorithm_param(algorithm, body, "algorithm", "sha2-256"))?;
    let format = body.get("format").and_then(Value::as_str).unwrap_or("hex");
    let sum = citadel_crypto::hash::digest(alg, &input);
    Ok(json!({"sum": encode_as(format, &sum)?}))
}

/// `datakey/plaintext|wrapped/:name`: a fresh key, returned wrapped (and in
/// the clear when asked).
fn datakey(k: &Key, kind: &str, body: &Value) -> Result<Value, Error> {
    let plaintext = match kind {
        "plaintext" => true,
        "wrapped" => false,
        other => {
            return Err(bad(format!(
                "invalid path: data key type {other:?}; use plaintext or wrapped"
            )));
        }
    };
    let bits = body.get("bits").and_then(Value::as_u64).unwrap_or(256);
    if !matches!(bits, 128 | 256 | 512) {
        return Err(bad("invalid bits: use 128, 256 or 512"));
    }
    let mut dk = Zeroizing::new(vec![0u8; (bits / 8) as usize]);
    citadel_crypto::random::fill(&mut dk).map_err(internal)?;
    let n = version_for_encrypt(k, body.get("key_version").and_then(Value::as_u64))?;
    let aad = b64_field(body, "associated_data")?;
    let blob = seal(k, n, &aad, &dk)?;
    let mut out =
        json!({"ciphertext": format!("vault:v{n}:{}", B64.encode(blob)), "key_version": n});
    if plaintext {
        out["plaintext"] = json!(B64.encode(&dk[..]));
    }
    Ok(out)
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
            let _g = v.lock_path(&t.path(name));
            if let Some(k) = t.load(name)? {
                return Ok(Reply::Data(t.read_json(name, &k)?));
            }
            let k = t.create(name, body)?;
            Ok(Reply::Data(t.read_json(name, &k)?))
        }
        (["keys", name], Op::Read) => match t.load(name)? {
            Some(k) => Ok(Reply::Data(t.read_json(name, &k)?)),
            None => Ok(Reply::NotFound(None)),
        },
        (["keys", name], Op::Delete) => {
            let _g = v.lock_path(&t.path(name));
            let k = t.must(name)?;
            if !k.deletion_allowed {
                return Err(bad(format!(
                    "error deleting policy {name}: deletion is not allowed for this key"
                )));
            }
            v.delete(&t.path(name))?;
            Ok(Reply::NoContent)
        }
        (["keys", name, "config"], Op::Write) => {
            let _g = v.lock_path(&t.path(name));
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
            Ok(Reply::Data(t.read_json(name, &k)?))
        }
        (["keys", name, "rotate"], Op::Write) => {
            let _g = v.lock_path(&t.path(name));
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
                None if may_create => {
                    let _g = v.lock_path(&t.path(name));
                    match t.load(name)? {
                        Some(k) => k,
                        None => t.create(name, body)?,
                    }
                }
                None => return Err(bad("encryption key not found")),
            };
            batch(body, |it| encrypt_one(&k, it))
        }
        (["decrypt", name], Op::Write) => {
            let k = t.must(name)?;
            batch(body, |it| {
                decrypt_one(&k, it).map(|pt| json!({"plaintext": B64.encode(&pt[..])}))
            })
        }
        (["rewrap", name], Op::Write) => {
            let k = t.must(name)?;
            batch(body, |it| {
                let pt = decrypt_one(&k, it)?;
                let mut item = json!({"plaintext": B64.encode(&pt[..])});
                for carried in ["key_version", "associated_data"] {
                    if let Some(x) = it.get(carried) {
                        item[carried] = x.clone();
                    }
                }
                encrypt_one(&k, &item)
            })
        }
        (["datakey", kind, name], Op::Write) => {
            let k = t.must(name)?;
            Ok(Reply::Data(datakey(&k, kind, body)?))
        }
        (["sign", name, rest @ ..], Op::Write) if rest.len() <= 1 => {
            let k = t.must(name)?;
            batch(body, |it| sign_one(&k, rest.first().copied(), it))
        }
        (["verify", name, rest @ ..], Op::Write) if rest.len() <= 1 => {
            let k = t.must(name)?;
            batch(body, |it| verify_one(&k, rest.first().copied(), it))
        }
        (["hmac", name, rest @ ..], Op::Write) if rest.len() <= 1 => {
            let k = t.must(name)?;
            batch(body, |it| hmac_one(&k, rest.first().copied(), it))
        }
        (["random", rest @ ..], Op::Write) if rest.len() <= 2 => {
            Ok(Reply::Data(random(rest, body)?))
        }
        (["hash", rest @ ..], Op::Write) if rest.len() <= 1 => {
            Ok(Reply::Data(hash(rest.first().copied(), body)?))
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
