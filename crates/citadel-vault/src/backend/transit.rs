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
//! Vault lacks: `ml-dsa-44/65/87` and `slh-dsa-*` for signing (pure mode;
//! a FIPS 204/205 context string in `signature_context`, base64, at most
//! 255 bytes) and `mlkem768x25519` for encryption and data keys. Type
//! names are the CLI's (`citadel key list-algs`): the FIPS names, with
//! their aliases (`mldsa65`, `mlkem768-x25519`, `x-wing`) accepted and
//! stored and shown as the canonical name.
//!
//! An `mlkem768x25519` ciphertext is `vault:vN:` then the base64 of the
//! X-Wing ciphertext (1,120 bytes) followed by AES-256-GCM output under
//! `HKDF-SHA-256(ikm = shared secret, salt = "", info =
//! "citadel transit mlkem768-x25519 v1")` with an all-zero nonce (each
//! encapsulation yields a fresh key, so the nonce is never reused). Its
//! public key (shown by `keys/:name`) lets anyone encrypt offline.
//!
//! Options citadel does not implement (`derived` keys and their `context`,
//! `convergent_encryption`, `exportable`, `prehashed`, RSA's
//! `signature_algorithm`, ...) are refused whenever set, never ignored.
//! A `batch_input` holds at most [`Limits::max_batch_items`] items, and a
//! request's estimated CPU time at most [`Limits::work_budget_us`].
//!
//! Every key version also carries a 256-bit HMAC key, as in Vault.
//! Key material lives behind the barrier at `policy/<name>`.

use super::{Backend, Ctx, Limits, Matched, Reply, Route, Seg, key_name};
use crate::error::{Error, internal};
use crate::fields::{Field, Fields, Ty};
use crate::ids::now_rfc3339 as now;
use crate::request::Operation::{Delete, List, Read, Update};
use crate::view::View;
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
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use zeroize::{Zeroize, Zeroizing};

/// The hybrid type's name: the one `citadel key gen` and age use
/// (`mlkem768-x25519`, `x-wing` and `xwing` are accepted and stored as it).
const HYBRID: &str = "mlkem768x25519";
/// Most versions a key keeps (each rotation adds one).
const MAX_KEY_VERSIONS: usize = 4096;
const HYBRID_INFO: &[u8] = b"citadel transit mlkem768-x25519 v1";

const DERIVED: Ty = Ty::Unsupported(
    "derived keys (and their context) are not supported by citadel; for ML-DSA and SLH-DSA signature contexts use signature_context",
);
const NONCE: Ty = Ty::Unsupported("caller-chosen nonces are not supported by citadel");
const CONVERGENT: Ty = Ty::Unsupported("convergent encryption is not supported by citadel");
const PREHASHED: Ty =
    Ty::Unsupported("prehashed input is not supported by citadel; send the message itself");
const SIG_ALG: Ty =
    Ty::Unsupported("signature_algorithm applies to RSA keys, which citadel does not offer");
const SALT: Ty = Ty::Unsupported("salt_length applies to RSA keys, which citadel does not offer");

static NO_FIELDS: &[Field] = &[];

static KEY_FIELDS: &[Field] = &[
    Field::opt("type", Ty::Str),
    Field::opt("derived", DERIVED),
    Field::opt("convergent_encryption", CONVERGENT),
    Field::opt(
        "exportable",
        Ty::Unsupported("exportable keys are not supported by citadel"),
    ),
    Field::opt(
        "allow_plaintext_backup",
        Ty::Unsupported("plaintext backups are not supported by citadel"),
    ),
    Field::opt(
        "auto_rotate_period",
        Ty::Unsupported(
            "automatic rotation is not supported by citadel; rotate with keys/:name/rotate",
        ),
    ),
    Field::opt(
        "key_size",
        Ty::Unsupported("key_size applies to HMAC keys, which citadel does not offer"),
    ),
    Field::opt(
        "managed_key_name",
        Ty::Unsupported("managed keys are not supported by citadel"),
    ),
    Field::opt(
        "managed_key_id",
        Ty::Unsupported("managed keys are not supported by citadel"),
    ),
    Field::opt("context", DERIVED),
];

static CONFIG_FIELDS: &[Field] = &[
    Field::opt("min_decryption_version", Ty::Int),
    Field::opt("min_encryption_version", Ty::Int),
    Field::opt("deletion_allowed", Ty::Bool),
    Field::opt(
        "exportable",
        Ty::Unsupported("exportable keys are not supported by citadel"),
    ),
    Field::opt(
        "allow_plaintext_backup",
        Ty::Unsupported("plaintext backups are not supported by citadel"),
    ),
    Field::opt(
        "auto_rotate_period",
        Ty::Unsupported(
            "automatic rotation is not supported by citadel; rotate with keys/:name/rotate",
        ),
    ),
];

static ROTATE_FIELDS: &[Field] = &[Field::opt(
    "managed_key_name",
    Ty::Unsupported("managed keys are not supported by citadel"),
)];

/// Fields of one encryption item (top level, or each `batch_input` item).
static ENCRYPT_ITEM: &[Field] = &[
    Field::req("plaintext", Ty::Str),
    Field::opt("associated_data", Ty::Str),
    Field::opt("key_version", Ty::Int),
    Field::opt("reference", Ty::Str),
    Field::opt("context", DERIVED),
    Field::opt("nonce", NONCE),
];

static ENCRYPT_FIELDS: &[Field] = &[
    Field::opt("plaintext", Ty::Str),
    Field::opt("associated_data", Ty::Str),
    Field::opt("key_version", Ty::Int),
    Field::opt("reference", Ty::Str),
    Field::opt("context", DERIVED),
    Field::opt("nonce", NONCE),
    Field::opt("type", Ty::Str),
    Field::opt("convergent_encryption", CONVERGENT),
    Field::opt("batch_input", Ty::Objects),
    Field::opt("partial_failure_response_code", Ty::Int),
];

static DECRYPT_ITEM: &[Field] = &[
    Field::req("ciphertext", Ty::Str),
    Field::opt("associated_data", Ty::Str),
    Field::opt("reference", Ty::Str),
    Field::opt("context", DERIVED),
    Field::opt("nonce", NONCE),
];

static DECRYPT_FIELDS: &[Field] = &[
    Field::opt("ciphertext", Ty::Str),
    Field::opt("associated_data", Ty::Str),
    Field::opt("reference", Ty::Str),
    Field::opt("context", DERIVED),
    Field::opt("nonce", NONCE),
    Field::opt("batch_input", Ty::Objects),
    Field::opt("partial_failure_response_code", Ty::Int),
];

static REWRAP_ITEM: &[Field] = &[
    Field::req("ciphertext", Ty::Str),
    Field::opt("associated_data", Ty::Str),
    Field::opt("key_version", Ty::Int),
    Field::opt("reference", Ty::Str),
    Field::opt("context", DERIVED),
    Field::opt("nonce", NONCE),
];

static REWRAP_FIELDS: &[Field] = &[
    Field::opt("ciphertext", Ty::Str),
    Field::opt("associated_data", Ty::Str),
    Field::opt("key_version", Ty::Int),
    Field::opt("reference", Ty::Str),
    Field::opt("context", DERIVED),
    Field::opt("nonce", NONCE),
    Field::opt("batch_input", Ty::Objects),
    Field::opt("partial_failure_response_code", Ty::Int),
];

static DATAKEY_FIELDS: &[Field] = &[
    Field::opt("bits", Ty::Int),
    Field::opt("key_version", Ty::Int),
    Field::opt("associated_data", Ty::Str),
    Field::opt("context", DERIVED),
    Field::opt("nonce", NONCE),
];

static SIGN_ITEM: &[Field] = &[
    Field::req("input", Ty::Str),
    Field::opt("key_version", Ty::Int),
    Field::opt("reference", Ty::Str),
    Field::opt("signature_context", Ty::Str),
    Field::opt("context", DERIVED),
];

static SIGN_FIELDS: &[Field] = &[
    Field::opt("input", Ty::Str),
    Field::opt("key_version", Ty::Int),
    Field::opt("reference", Ty::Str),
    Field::opt("signature_context", Ty::Str),
    Field::opt("context", DERIVED),
    Field::opt("hash_algorithm", Ty::Str),
    Field::opt("algorithm", Ty::Str),
    Field::opt("marshaling_algorithm", Ty::Str),
    Field::opt("prehashed", PREHASHED),
    Field::opt("signature_algorithm", SIG_ALG),
    Field::opt("salt_length", SALT),
    Field::opt("batch_input", Ty::Objects),
    Field::opt("partial_failure_response_code", Ty::Int),
];

static VERIFY_ITEM: &[Field] = &[
    Field::req("input", Ty::Str),
    Field::opt("signature", Ty::Str),
    Field::opt("hmac", Ty::Str),
    Field::opt("reference", Ty::Str),
    Field::opt("signature_context", Ty::Str),
    Field::opt("context", DERIVED),
];

static VERIFY_FIELDS: &[Field] = &[
    Field::opt("input", Ty::Str),
    Field::opt("signature", Ty::Str),
    Field::opt("hmac", Ty::Str),
    Field::opt("reference", Ty::Str),
    Field::opt("signature_context", Ty::Str),
    Field::opt("context", DERIVED),
    Field::opt("hash_algorithm", Ty::Str),
    Field::opt("algorithm", Ty::Str),
    Field::opt("marshaling_algorithm", Ty::Str),
    Field::opt("prehashed", PREHASHED),
    Field::opt("signature_algorithm", SIG_ALG),
    Field::opt("salt_length", SALT),
    Field::opt("batch_input", Ty::Objects),
    Field::opt("partial_failure_response_code", Ty::Int),
];

static HMAC_ITEM: &[Field] = &[
    Field::req("input", Ty::Str),
    Field::opt("key_version", Ty::Int),
    Field::opt("reference", Ty::Str),
];

static HMAC_FIELDS: &[Field] = &[
    Field::opt("input", Ty::Str),
    Field::opt("key_version", Ty::Int),
    Field::opt("reference", Ty::Str),
    Field::opt("algorithm", Ty::Str),
    Field::opt("batch_input", Ty::Objects),
    Field::opt("partial_failure_response_code", Ty::Int),
];

static RANDOM_FIELDS: &[Field] = &[
    Field::opt("bytes", Ty::Int),
    Field::opt("format", Ty::Str),
    Field::opt("source", Ty::Str),
];

static HASH_FIELDS: &[Field] = &[
    Field::req("input", Ty::Str),
    Field::opt("algorithm", Ty::Str),
    Field::opt("format", Ty::Str),
];

static ROUTES: &[Route] = &[
    Route::new("keys", &[Seg::Lit("keys")], &[List], NO_FIELDS),
    Route::new(
        "keys/:name",
        &[Seg::Lit("keys"), Seg::Key("name", key_name)],
        &[Read, Update, Delete],
        KEY_FIELDS,
    ),
    Route::new(
        "keys/:name/config",
        &[
            Seg::Lit("keys"),
            Seg::Key("name", key_name),
            Seg::Lit("config"),
        ],
        &[Update],
        CONFIG_FIELDS,
    ),
    Route::new(
        "keys/:name/rotate",
        &[
            Seg::Lit("keys"),
            Seg::Key("name", key_name),
            Seg::Lit("rotate"),
        ],
        &[Update],
        ROTATE_FIELDS,
    ),
    Route::new(
        "encrypt/:name",
        &[Seg::Lit("encrypt"), Seg::Key("name", key_name)],
        &[Update],
        ENCRYPT_FIELDS,
    )
    .existence()
    .heavy(),
    Route::new(
        "decrypt/:name",
        &[Seg::Lit("decrypt"), Seg::Key("name", key_name)],
        &[Update],
        DECRYPT_FIELDS,
    )
    .heavy(),
    Route::new(
        "rewrap/:name",
        &[Seg::Lit("rewrap"), Seg::Key("name", key_name)],
        &[Update],
        REWRAP_FIELDS,
    )
    .heavy(),
    Route::new(
        "datakey/:type/:name",
        &[
            Seg::Lit("datakey"),
            Seg::Key("type", key_name),
            Seg::Key("name", key_name),
        ],
        &[Update],
        DATAKEY_FIELDS,
    )
    .heavy(),
    Route::new(
        "sign/:name",
        &[
            Seg::Lit("sign"),
            Seg::Key("name", key_name),
            Seg::Variant("algorithm"),
        ],
        &[Update],
        SIGN_FIELDS,
    )
    .heavy(),
    Route::new(
        "verify/:name",
        &[
            Seg::Lit("verify"),
            Seg::Key("name", key_name),
            Seg::Variant("algorithm"),
        ],
        &[Update],
        VERIFY_FIELDS,
    )
    .heavy(),
    Route::new(
        "hmac/:name",
        &[
            Seg::Lit("hmac"),
            Seg::Key("name", key_name),
            Seg::Variant("algorithm"),
        ],
        &[Update],
        HMAC_FIELDS,
    )
    .heavy(),
    Route::new(
        "random",
        &[Seg::Lit("random"), Seg::Variant("params")],
        &[Update],
        RANDOM_FIELDS,
    ),
    Route::new(
        "hash",
        &[Seg::Lit("hash"), Seg::Variant("algorithm")],
        &[Update],
        HASH_FIELDS,
    ),
];

/// A key type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Aead(AeadAlgorithm),
    Sign(Algorithm),
    EcdsaP256,
    /// X-Wing (ML-KEM-768 + X25519) then AES-256-GCM.
    Hybrid,
}

fn kind_from(name: &str) -> Result<Kind, Error> {
    // Vault's names, in any case and with or without hyphens and
    // underscores, as the other types' (ASCII only).
    let squashed: String = name
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match squashed.as_str() {
        "aes256gcm96" => Ok(Kind::Aead(AeadAlgorithm::Aes256Gcm)),
        "chacha20poly1305" => Ok(Kind::Aead(AeadAlgorithm::ChaCha20Poly1305)),
        "ecdsap256" => Ok(Kind::EcdsaP256),
        _ => match name.parse::<Algorithm>() {
            Ok(Algorithm::MlKem768X25519) => Ok(Kind::Hybrid),
            Ok(a) if a.family() == citadel_crypto::Family::Signature => Ok(Kind::Sign(a)),
            _ => Err(bad(format!(
                "unknown key type {name:?}: use aes256-gcm96, chacha20-poly1305, {HYBRID}, ed25519, ecdsa-p256, ml-dsa-44, ml-dsa-65, ml-dsa-87 or slh-dsa-*"
            ))),
        },
    }
}

impl Kind {
    /// The canonical name, which is stored and shown.
    fn name(self) -> &'static str {
        match self {
            Kind::Aead(AeadAlgorithm::Aes256Gcm) => "aes256-gcm96",
            Kind::Aead(AeadAlgorithm::ChaCha20Poly1305) => "chacha20-poly1305",
            Kind::Sign(a) => a.name(),
            Kind::EcdsaP256 => "ecdsa-p256",
            Kind::Hybrid => HYBRID,
        }
    }

    fn encrypts(self) -> bool {
        matches!(self, Kind::Aead(_) | Kind::Hybrid)
    }

    fn signs(self) -> bool {
        matches!(self, Kind::Sign(_) | Kind::EcdsaP256)
    }

    /// Whether the type takes a FIPS 204/205 context string.
    fn takes_context(self) -> bool {
        matches!(self, Kind::Sign(a) if a != Algorithm::Ed25519)
    }

    /// Estimated CPU time of one operation, in microseconds (for the work
    /// budget): `citadel bench crypto` on the development machine (2 cores,
    /// 2026-12-03), doubled for slower machines and busy ones.
    fn cost_us(self, op: CostOp, bytes: usize) -> u64 {
        use Algorithm as A;
        let per_byte = (bytes / 500) as u64;
        let fixed = match (self, op) {
            (Kind::Aead(_), _) => 5,
            (Kind::Hybrid, _) => 200,
            (_, CostOp::Hmac) => 5,
            (Kind::EcdsaP256, CostOp::Sign) => 60,
            (Kind::EcdsaP256, _) => 150,
            (Kind::Sign(a), CostOp::Sign) => match a {
                A::Ed25519 => 40,
                A::MlDsa44 => 1_700,
                A::MlDsa65 => 2_400,
                A::MlDsa87 => 2_600,
                A::SlhDsaSha2_128s => 470_000,
                A::SlhDsaSha2_128f => 20_000,
                A::SlhDsaSha2_192s | A::SlhDsaSha2_256s => 900_000,
                A::SlhDsaSha2_192f => 40_000,
                A::SlhDsaSha2_256f => 82_000,
                A::SlhDsaShake128s => 5_000_000,
                A::SlhDsaShake128f => 250_000,
                A::SlhDsaShake192s => 10_000_000,
                A::SlhDsaShake192f => 400_000,
                A::SlhDsaShake256s => 6_600_000,
                A::SlhDsaShake256f => 600_000,
                _ => 10_000_000,
            },
            (Kind::Sign(a), _) => match a {
                A::Ed25519 => 80,
                A::MlDsa44 | A::MlDsa65 | A::MlDsa87 => 250,
                A::SlhDsaSha2_128s | A::SlhDsaSha2_192s | A::SlhDsaSha2_256s => 1_000,
                A::SlhDsaSha2_128f | A::SlhDsaSha2_192f | A::SlhDsaSha2_256f => 2_500,
                A::SlhDsaShake128s | A::SlhDsaShake192s | A::SlhDsaShake256s => 9_000,
                _ => 20_000,
            },
        };
        fixed + per_byte
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CostOp {
    Crypt,
    Sign,
    Verify,
    Hmac,
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

impl Drop for Version {
    fn drop(&mut self) {
        self.key.zeroize();
        self.hmac_key.zeroize();
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Key {
    /// The type's canonical name (one stored under an alias before names
    /// were canonical reads as the canonical one).
    #[serde(rename = "type", deserialize_with = "canonical_kind")]
    kind: String,
    versions: BTreeMap<u32, Version>,
    latest_version: u32,
    min_decryption_version: u32,
    min_encryption_version: u32,
    deletion_allowed: bool,
}

fn canonical_kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    Ok(kind_from(&name).map_or(name, |k| k.name().to_string()))
}

fn bad(m: impl Into<String>) -> Error {
    Error::BadRequest(m.into())
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

fn path_of(name: &str) -> String {
    format!("policy/{name}")
}

/// The stored key (parsed once, shared until written).
fn load(view: &View, name: &str) -> Result<Option<std::sync::Arc<Option<Key>>>, Error> {
    let k = view.get_parsed::<Key>(&path_of(name))?;
    Ok(k.is_some().then_some(k))
}

fn must(view: &View, name: &str) -> Result<std::sync::Arc<Option<Key>>, Error> {
    load(view, name)?.ok_or_else(|| bad("encryption key not found"))
}

/// A new key of this type. Key generation can be slow (an SLH-DSA key
/// takes up to half a second), so it runs before the key's storage lock is
/// taken; [`create`] stores it under the lock if the name is still free.
fn new_key(kind_name: &str) -> Result<Key, Error> {
    let kind = kind_from(kind_name)?;
    Ok(Key {
        kind: kind.name().to_string(),
        versions: BTreeMap::from([(1, new_version(kind)?)]),
        latest_version: 1,
        min_decryption_version: 1,
        min_encryption_version: 0,
        deletion_allowed: false,
    })
}

/// The key `name`, created with the request's type (`aes256-gcm96` by
/// default) when it does not exist.
fn load_or_create(
    view: &View,
    name: &str,
    f: &Fields,
) -> Result<std::sync::Arc<Option<Key>>, Error> {
    if let Some(k) = load(view, name)? {
        return Ok(k);
    }
    let fresh = new_key(f.str("type").unwrap_or("aes256-gcm96"))?;
    {
        let _g = view.lock(&path_of(name));
        if load(view, name)?.is_none() {
            view.put_json(&path_of(name), &fresh)?;
        }
    }
    must(view, name)
}

fn read_json(name: &str, k: &Key) -> Result<Value, Error> {
    let kind = kind_from(&k.kind)?;
    // As Vault: versions below min_decryption_version are not shown.
    let keys: Map<String, Value> = k
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

fn version_for_encrypt(k: &Key, requested: Option<i64>) -> Result<u32, Error> {
    let n = match requested {
        None | Some(0) => k.latest_version,
        Some(n) => u32::try_from(n).map_err(|_| bad(format!("invalid key version {n}")))?,
    };
    if n > k.latest_version || !k.versions.contains_key(&n) {
        return Err(bad(format!("invalid key version {n}")));
    }
    if k.min_encryption_version > 0 && n < k.min_encryption_version {
        return Err(bad(
            "requested version for encryption is less than the minimum encryption key version",
        ));
    }
    // Stricter than Vault: a version below min_decryption_version would
    // make something this key no longer decrypts or verifies.
    if n < k.min_decryption_version {
        return Err(bad(format!(
            "key version {n} is below min_decryption_version ({}): what it made could not be decrypted or verified",
            k.min_decryption_version
        )));
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

fn b64(f: &Fields, field: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    B64.decode(f.str(field).unwrap_or_default())
        .map(Zeroizing::new)
        .map_err(|_| bad(format!("unable to decode {field} as base64")))
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

fn encrypt_one(k: &Key, it: &Fields) -> Result<Value, Error> {
    let pt = b64(it, "plaintext")?;
    let aad = b64(it, "associated_data")?;
    let n = version_for_encrypt(k, it.int("key_version"))?;
    let blob = seal(k, n, &aad, &pt)?;
    Ok(json!({"ciphertext": format!("vault:v{n}:{}", B64.encode(blob)), "key_version": n}))
}

fn decrypt_one(k: &Key, it: &Fields) -> Result<Zeroizing<Vec<u8>>, Error> {
    let c = it.str("ciphertext").unwrap_or_default();
    let aad = b64(it, "associated_data")?;
    let (n, blob) = parse_prefixed(k, c)?;
    open(k, n, &aad, &blob)
}

/// The decoded items of a request: the `batch_input` items, or the body
/// itself. Mixing the two is refused: a top-level item field next to a
/// `batch_input` would otherwise be silently ignored.
fn items(f: &Fields, item_spec: &[Field], limits: &Limits) -> Result<Option<Vec<Fields>>, Error> {
    let Some(batch) = f.objects("batch_input") else {
        return Ok(None);
    };
    if let Some(x) = item_spec
        .iter()
        .find(|x| x.name != "reference" && f.has(x.name))
    {
        return Err(bad(format!(
            "{} was given both at the top level and with batch_input; put it in each batch item",
            x.name
        )));
    }
    if batch.is_empty() {
        return Err(bad("missing batch input to process"));
    }
    if batch.len() > limits.max_batch_items {
        return Err(bad(format!(
            "batch_input holds {} items; at most {} are accepted per request",
            batch.len(),
            limits.max_batch_items
        )));
    }
    batch
        .iter()
        .enumerate()
        .map(|(i, it)| {
            Fields::decode(item_spec, it).map_err(|e| bad(format!("batch_input item {i}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Checks the estimated work of `items` against the budget.
fn budget(
    kind: Kind,
    op: CostOp,
    items: &[&Fields],
    field: &str,
    limits: &Limits,
) -> Result<(), Error> {
    let total: u64 = items
        .iter()
        .map(|it| kind.cost_us(op, it.str(field).map_or(0, |s| s.len() * 3 / 4)))
        .fold(0u64, u64::saturating_add);
    if items.len() > 1 && total > limits.work_budget_us {
        let per = total / items.len() as u64;
        return Err(bad(format!(
            "this batch would take about {:.1} s of CPU ({} items at about {} µs each); at most {:.1} s is accepted per request: split it into batches of at most {} items",
            total as f64 / 1e6,
            items.len(),
            per,
            limits.work_budget_us as f64 / 1e6,
            (limits.work_budget_us / per.max(1)).max(1)
        )));
    }
    Ok(())
}

/// Runs `f` over the items. As Vault: each result echoes its item's
/// `reference`; a failed item carries its `error`, and any failure makes
/// the answer 400 (or `partial_failure_response_code` when some items
/// succeeded).
fn run_batch(
    f: &Fields,
    batch: Option<Vec<Fields>>,
    mut each: impl FnMut(&Fields) -> Result<Value, Error>,
) -> Result<Reply, Error> {
    let Some(items) = batch else {
        return each(f).map(Reply::Data);
    };
    let (mut ok, mut failed) = (0usize, 0usize);
    let results: Vec<Value> = items
        .iter()
        .map(|it| {
            let mut r = match each(it) {
                Ok(r) => {
                    ok += 1;
                    r
                }
                Err(e) => {
                    failed += 1;
                    if e.is_server_error() {
                        tracing::error!(target: "citadel_vault::request", error = %e, "batch item failed");
                        json!({"error": "internal error: the server could not process this item; its log has the details"})
                    } else {
                        json!({"error": e.to_string()})
                    }
                }
            };
            r["reference"] = json!(it.str("reference").unwrap_or_default());
            r
        })
        .collect();
    let data = json!({"batch_results": results});
    if failed == 0 {
        return Ok(Reply::Data(data));
    }
    let partial = f
        .int("partial_failure_response_code")
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

/// The algorithm from the path's optional last segment or a body field
/// (not both).
fn algorithm<'a>(m: &'a Matched, f: &'a Fields, field: &str) -> Result<Option<&'a str>, Error> {
    let from_path = m.param("algorithm");
    if from_path.contains('/') {
        return Err(Error::NotFound("unsupported path".into()));
    }
    match (from_path.is_empty(), f.str(field)) {
        (true, v) => Ok(v),
        (false, None) => Ok(Some(from_path)),
        (false, Some(_)) => Err(bad(format!(
            "the algorithm was given both in the path and in {field}; give it once"
        ))),
    }
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

/// The signature options of a request, checked against the key type.
struct SigOptions {
    encoding: SignatureEncoding,
}

fn sig_options(kind: Kind, k: &Key, hash: Option<&str>, f: &Fields) -> Result<SigOptions, Error> {
    let marshaling = f.str("marshaling_algorithm");
    match kind {
        Kind::EcdsaP256 => {
            if let Some(h) = hash.filter(|h| *h != "sha2-256") {
                return Err(bad(format!(
                    "unsupported hash algorithm {h} for ecdsa-p256: citadel signs with sha2-256"
                )));
            }
            let encoding = match marshaling.unwrap_or("asn1") {
                "asn1" => SignatureEncoding::Asn1,
                "jws" => SignatureEncoding::Fixed,
                other => return Err(bad(format!("invalid marshaling type {other:?}"))),
            };
            Ok(SigOptions { encoding })
        }
        Kind::Sign(_) => {
            if hash.is_some() {
                return Err(bad(format!(
                    "hash_algorithm does not apply to {} keys, which sign the message itself",
                    k.kind
                )));
            }
            if marshaling.is_some() {
                return Err(bad(format!(
                    "marshaling_algorithm applies to ECDSA keys, not to {}",
                    k.kind
                )));
            }
            Ok(SigOptions {
                encoding: SignatureEncoding::Asn1,
            })
        }
        _ => Err(not_for(k, "signing")),
    }
}

fn context_of(kind: Kind, k: &Key, it: &Fields) -> Result<Zeroizing<Vec<u8>>, Error> {
    if !it.has("signature_context") {
        return Ok(Zeroizing::new(Vec::new()));
    }
    if !kind.takes_context() {
        return Err(bad(format!(
            "signature_context applies to ML-DSA and SLH-DSA keys, not to {}",
            k.kind
        )));
    }
    let ctx = b64(it, "signature_context")?;
    if ctx.len() > 255 {
        return Err(bad("signature_context must be at most 255 bytes"));
    }
    Ok(ctx)
}

fn sign_one(k: &Key, kind: Kind, opts: &SigOptions, it: &Fields) -> Result<Value, Error> {
    let input = b64(it, "input")?;
    let n = version_for_encrypt(k, it.int("key_version"))?;
    let ctx = context_of(kind, k, it)?;
    let sig = match kind {
        Kind::Sign(alg) => B64.encode(
            signing_key(k, alg, n)?
                .sign(&input, &ctx)
                .map_err(internal)?,
        ),
        Kind::EcdsaP256 => {
            let (_, der) = secret_of(k, n)?;
            let sk = P256SigningKey::from_pkcs8(&der)
                .map_err(|e| Error::Corrupt(format!("transit key: {e}")))?;
            let sig = sk.sign(&input, opts.encoding).map_err(internal)?;
            match opts.encoding {
                SignatureEncoding::Asn1 => B64.encode(sig),
                SignatureEncoding::Fixed => B64URL.encode(sig),
            }
        }
        _ => return Err(not_for(k, "signing")),
    };
    Ok(json!({"signature": format!("vault:v{n}:{sig}"), "key_version": n}))
}

fn verify_one(k: &Key, kind: Kind, opts: &SigOptions, it: &Fields) -> Result<Value, Error> {
    let input = b64(it, "input")?;
    let s = it
        .str("signature")
        .ok_or_else(|| bad("neither a signature nor an hmac was given to verify"))?;
    let (n, payload) = split_prefixed(k, s)?;
    let ctx = context_of(kind, k, it)?;
    let ver = k
        .versions
        .get(&n)
        .ok_or_else(|| bad("key version not found"))?;
    let valid = match kind {
        Kind::Sign(alg) => {
            let sig = B64
                .decode(payload)
                .map_err(|_| bad("invalid signature: could not decode base64"))?;
            let pk = B64
                .decode(&ver.public_key)
                .map_err(|_| Error::Corrupt("public key".into()))?;
            let vk =
                VerifyingKey::from_bytes(alg, &pk).map_err(|e| Error::Corrupt(e.to_string()))?;
            vk.verify(&input, &ctx, &sig).is_ok()
        }
        Kind::EcdsaP256 => {
            let sig = match opts.encoding {
                SignatureEncoding::Asn1 => B64.decode(payload),
                SignatureEncoding::Fixed => B64URL.decode(payload),
            }
            .map_err(|_| bad("invalid signature: could not decode base64"))?;
            let (_, der) = secret_of(k, n)?;
            let sk = P256SigningKey::from_pkcs8(&der)
                .map_err(|e| Error::Corrupt(format!("transit key: {e}")))?;
            verify_p256(
                &sk.public_key_der().map_err(internal)?,
                &input,
                &sig,
                opts.encoding,
            )
        }
        _ => return Err(not_for(k, "verification")),
    };
    Ok(json!({"valid": valid}))
}

fn verify_hmac_one(k: &Key, h: HmacHash, it: &Fields) -> Result<Value, Error> {
    let input = b64(it, "input")?;
    let tag = it.str("hmac").unwrap_or_default();
    let (n, tag) = parse_prefixed(k, tag)?;
    let key = hmac_key_of(k, n)?;
    Ok(json!({"valid": citadel_crypto::kdf::hmac_verify(h, &key, &input, &tag)}))
}

fn hmac_one(k: &Key, h: HmacHash, it: &Fields) -> Result<Value, Error> {
    let input = b64(it, "input")?;
    let n = version_for_encrypt(k, it.int("key_version"))?;
    let tag = citadel_crypto::kdf::hmac(h, &hmac_key_of(k, n)?, &input);
    Ok(json!({"hmac": format!("vault:v{n}:{}", B64.encode(tag))}))
}

/// Maximum `random` output, as Vault.
const MAX_RANDOM: i64 = 128 * 1024;

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
fn random(params: &str, f: &Fields) -> Result<Value, Error> {
    let mut bytes = f.int("bytes").unwrap_or(32);
    let mut source = f.str("source").unwrap_or("platform");
    let segs: Vec<&str> = params.split('/').filter(|s| !s.is_empty()).collect();
    if segs.len() > 2 {
        return Err(Error::NotFound("unsupported path".into()));
    }
    for s in segs {
        match s {
            "platform" | "seal" | "all" => source = s,
            n => {
                bytes = n
                    .parse()
                    .map_err(|_| bad(format!("unable to parse bytes as an integer: {n}")))?;
            }
        }
    }
    if !matches!(source, "platform" | "seal" | "all") {
        return Err(bad(format!("unsupported entropy source {source:?}")));
    }
    if !(1..=MAX_RANDOM).contains(&bytes) {
        return Err(bad(format!("bytes must be between 1 and {MAX_RANDOM}")));
    }
    let mut out = Zeroizing::new(vec![0u8; bytes as usize]);
    citadel_crypto::random::fill(&mut out).map_err(internal)?;
    Ok(json!({"random_bytes": encode_as(f.str("format").unwrap_or("base64"), &out)?}))
}

/// `hash[/:algorithm]`.
fn hash(m: &Matched, f: &Fields) -> Result<Value, Error> {
    let input = b64(f, "input")?;
    let alg = vault_hash(algorithm(m, f, "algorithm")?.unwrap_or("sha2-256"))?;
    let sum = citadel_crypto::hash::digest(alg, &input);
    Ok(json!({"sum": encode_as(f.str("format").unwrap_or("hex"), &sum)?}))
}

/// `datakey/plaintext|wrapped/:name`: a fresh key, returned wrapped (and in
/// the clear when asked).
fn datakey(k: &Key, kind: &str, f: &Fields) -> Result<Value, Error> {
    if kind != "plaintext" && kind != "wrapped" {
        return Err(bad(format!(
            "invalid path: data key type {kind:?}; use plaintext or wrapped"
        )));
    }
    let bits = f.int("bits").unwrap_or(256);
    if !matches!(bits, 128 | 256 | 512) {
        return Err(bad("invalid bits: use 128, 256 or 512"));
    }
    let mut dk = Zeroizing::new(vec![0u8; (bits / 8) as usize]);
    citadel_crypto::random::fill(&mut dk).map_err(internal)?;
    let n = version_for_encrypt(k, f.int("key_version"))?;
    let aad = b64(f, "associated_data")?;
    let blob = seal(k, n, &aad, &dk)?;
    let mut out =
        json!({"ciphertext": format!("vault:v{n}:{}", B64.encode(blob)), "key_version": n});
    if kind == "plaintext" {
        out["plaintext"] = json!(B64.encode(&dk[..]));
    }
    Ok(out)
}

fn version_field(f: &Fields, name: &str, k: &Key) -> Result<Option<u32>, Error> {
    f.int(name)
        .map(|m| {
            u32::try_from(m)
                .ok()
                .filter(|m| *m <= k.latest_version)
                .ok_or_else(|| {
                    bad(format!(
                        "cannot set {name} to {m}: it must be between 0 and the latest version ({})",
                        k.latest_version
                    ))
                })
        })
        .transpose()
}

/// The transit engine.
pub struct Transit;

impl Transit {
    fn with_key<T>(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        f: impl FnOnce(&Key, Kind) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let k = must(&ctx.view, name)?;
        let k = (*k)
            .as_ref()
            .ok_or_else(|| bad("encryption key not found"))?;
        f(k, kind_from(&k.kind)?)
    }
}

impl Backend for Transit {
    fn routes(&self) -> &'static [Route] {
        ROUTES
    }

    fn mount_type(&self) -> &'static str {
        "transit"
    }

    /// Only `encrypt/:name` checks existence (it creates a missing key, so
    /// it needs `create`); writes to `keys/:name` need `update`, as in
    /// OpenBao.
    fn exists(&self, view: &View, m: &Matched) -> Result<bool, Error> {
        Ok(load(view, m.param("name"))?.is_some())
    }

    /// Whether a request to `m` with this body is heavy: making a key (an
    /// SLH-DSA key takes up to half a second), a batch, or a key type whose
    /// operations take more than a few microseconds.
    fn is_heavy(
        &self,
        view: &View,
        m: &Matched,
        op: crate::request::Operation,
        body: &Map<String, Value>,
    ) -> bool {
        match m.route.name {
            "keys/:name/rotate" => return true,
            "keys/:name" => return op == crate::request::Operation::Update,
            _ => {}
        }
        if !m.route.heavy {
            return false;
        }
        if body.contains_key("batch_input") {
            return true;
        }
        let Ok(Some(k)) = load(view, m.param("name")) else {
            // A missing key: encrypt creates it.
            return true;
        };
        !matches!(
            (*k).as_ref().map(|k| kind_from(&k.kind)),
            Some(Ok(Kind::Aead(_)
                | Kind::Sign(Algorithm::Ed25519)
                | Kind::EcdsaP256))
        )
    }

    fn handle(&self, ctx: &Ctx<'_>, m: &Matched, f: &Fields) -> Result<Reply, Error> {
        let view = &ctx.view;
        let name = m.param("name");
        let limits = &ctx.services.limits;
        match (m.route.name, ctx.op) {
            ("keys", _) => {
                let names = view.list("policy/")?;
                Ok(if names.is_empty() {
                    Reply::NotFound
                } else {
                    Reply::Data(json!({"keys": names}))
                })
            }
            ("keys/:name", Read) => match load(view, name)? {
                Some(k) => {
                    let k = (*k)
                        .as_ref()
                        .ok_or_else(|| bad("encryption key not found"))?;
                    Ok(Reply::Data(read_json(name, k)?))
                }
                None => Ok(Reply::NotFound),
            },
            ("keys/:name", Delete) => {
                let _g = view.lock(&path_of(name));
                self.with_key(ctx, name, |k, _| {
                    if !k.deletion_allowed {
                        return Err(bad(format!(
                            "error deleting policy {name}: deletion is not allowed for this key"
                        )));
                    }
                    Ok(())
                })?;
                view.delete(&path_of(name))?;
                Ok(Reply::NoContent)
            }
            ("keys/:name", _) => {
                let k = load_or_create(view, name, f)?;
                let k = (*k)
                    .as_ref()
                    .ok_or_else(|| bad("encryption key not found"))?;
                Ok(Reply::Data(read_json(name, k)?))
            }
            ("keys/:name/config", _) => {
                let _g = view.lock(&path_of(name));
                let mut k = (*must(view, name)?)
                    .clone()
                    .ok_or_else(|| bad("encryption key not found"))?;
                if let Some(d) = f.bool("deletion_allowed") {
                    k.deletion_allowed = d;
                }
                if let Some(m) = version_field(f, "min_decryption_version", &k)? {
                    k.min_decryption_version = m.max(1);
                }
                if let Some(m) = version_field(f, "min_encryption_version", &k)? {
                    k.min_encryption_version = m;
                }
                if k.min_encryption_version != 0
                    && k.min_encryption_version < k.min_decryption_version
                {
                    return Err(bad(
                        "min encryption version should not be less than min decryption version",
                    ));
                }
                view.put_json(&path_of(name), &k)?;
                Ok(Reply::Data(read_json(name, &k)?))
            }
            ("keys/:name/rotate", _) => {
                // The new version is made before the lock is taken (key
                // generation can be slow), for the type the key has now.
                let kind_name = self.with_key(ctx, name, |k, _| Ok(k.kind.clone()))?;
                let version = new_version(kind_from(&kind_name)?)?;
                let _g = view.lock(&path_of(name));
                let mut k = (*must(view, name)?)
                    .clone()
                    .ok_or_else(|| bad("encryption key not found"))?;
                if k.kind != kind_name {
                    return Err(bad("the key was replaced while it was rotated; retry"));
                }
                if k.versions.len() >= MAX_KEY_VERSIONS {
                    return Err(bad(format!(
                        "the key has {MAX_KEY_VERSIONS} versions, the most citadel keeps; create a new key"
                    )));
                }
                let n = k
                    .latest_version
                    .checked_add(1)
                    .ok_or_else(|| bad("the key has too many versions"))?;
                k.versions.insert(n, version);
                k.latest_version = n;
                view.put_json(&path_of(name), &k)?;
                Ok(Reply::Data(read_json(name, &k)?))
            }
            ("encrypt/:name", _) => {
                let batch = items(f, ENCRYPT_ITEM, limits)?;
                if batch.is_none() && !f.has("plaintext") {
                    return Err(bad("missing plaintext to encrypt"));
                }
                // As Vault: encrypt upserts a key (the core checked the
                // `create` capability).
                let key = load_or_create(view, name, f)?;
                let k = (*key)
                    .as_ref()
                    .ok_or_else(|| bad("encryption key not found"))?;
                let kind = kind_from(&k.kind)?;
                if !kind.encrypts() {
                    return Err(not_for(k, "encryption"));
                }
                check_budget(kind, CostOp::Crypt, f, &batch, "plaintext", limits)?;
                run_batch(f, batch, |it| encrypt_one(k, it))
            }
            ("decrypt/:name", _) => {
                let batch = items(f, DECRYPT_ITEM, limits)?;
                if batch.is_none() && !f.has("ciphertext") {
                    return Err(bad("missing ciphertext to decrypt"));
                }
                self.with_key(ctx, name, |k, kind| {
                    check_budget(kind, CostOp::Crypt, f, &batch, "ciphertext", limits)?;
                    run_batch(f, batch, |it| {
                        decrypt_one(k, it).map(|pt| json!({"plaintext": B64.encode(&pt[..])}))
                    })
                })
            }
            ("rewrap/:name", _) => {
                let batch = items(f, REWRAP_ITEM, limits)?;
                if batch.is_none() && !f.has("ciphertext") {
                    return Err(bad("missing ciphertext to rewrap"));
                }
                self.with_key(ctx, name, |k, kind| {
                    check_budget(kind, CostOp::Crypt, f, &batch, "ciphertext", limits)?;
                    run_batch(f, batch, |it| {
                        let pt = decrypt_one(k, it)?;
                        let aad = b64(it, "associated_data")?;
                        let n = version_for_encrypt(k, it.int("key_version"))?;
                        let blob = seal(k, n, &aad, &pt)?;
                        Ok(json!({"ciphertext": format!("vault:v{n}:{}", B64.encode(blob)), "key_version": n}))
                    })
                })
            }
            ("datakey/:type/:name", _) => self.with_key(ctx, name, |k, _| {
                Ok(Reply::Data(datakey(k, m.param("type"), f)?))
            }),
            ("sign/:name", _) => {
                let batch = items(f, SIGN_ITEM, limits)?;
                if batch.is_none() && !f.has("input") {
                    return Err(bad("missing input to sign"));
                }
                let hash = algorithm(m, f, "hash_algorithm")?;
                if f.has("algorithm") {
                    return Err(bad("sign takes hash_algorithm, not algorithm"));
                }
                self.with_key(ctx, name, |k, kind| {
                    let opts = sig_options(kind, k, hash, f)?;
                    check_budget(kind, CostOp::Sign, f, &batch, "input", limits)?;
                    run_batch(f, batch, |it| sign_one(k, kind, &opts, it))
                })
            }
            ("verify/:name", _) => {
                let batch = items(f, VERIFY_ITEM, limits)?;
                if batch.is_none() && !f.has("input") {
                    return Err(bad("missing input to verify"));
                }
                let first = batch.as_ref().and_then(|b| b.first()).unwrap_or(f);
                let is_hmac = first.has("hmac");
                if first.has("hmac") && first.has("signature") {
                    return Err(bad("give a signature or an hmac to verify, not both"));
                }
                self.with_key(ctx, name, |k, kind| {
                    if is_hmac {
                        if f.has("hash_algorithm") && f.has("algorithm") {
                            return Err(bad("give hash_algorithm or algorithm, not both"));
                        }
                        let alg = match algorithm(m, f, "algorithm")? {
                            Some(a) => Some(a),
                            None => f.str("hash_algorithm"),
                        };
                        let h = hmac_hash(alg.unwrap_or("sha2-256"))?;
                        check_budget(kind, CostOp::Hmac, f, &batch, "input", limits)?;
                        run_batch(f, batch, |it| {
                            if it.has("signature") || !it.has("hmac") {
                                return Err(bad("every item of one request verifies an hmac, or every item a signature"));
                            }
                            verify_hmac_one(k, h, it)
                        })
                    } else {
                        if f.has("algorithm") {
                            return Err(bad("verify takes hash_algorithm for signatures"));
                        }
                        let opts = sig_options(kind, k, algorithm(m, f, "hash_algorithm")?, f)?;
                        check_budget(kind, CostOp::Verify, f, &batch, "input", limits)?;
                        run_batch(f, batch, |it| {
                            if it.has("hmac") {
                                return Err(bad("every item of one request verifies an hmac, or every item a signature"));
                            }
                            verify_one(k, kind, &opts, it)
                        })
                    }
                })
            }
            ("hmac/:name", _) => {
                let batch = items(f, HMAC_ITEM, limits)?;
                if batch.is_none() && !f.has("input") {
                    return Err(bad("missing input to hmac"));
                }
                let h = hmac_hash(algorithm(m, f, "algorithm")?.unwrap_or("sha2-256"))?;
                self.with_key(ctx, name, |k, kind| {
                    check_budget(kind, CostOp::Hmac, f, &batch, "input", limits)?;
                    run_batch(f, batch, |it| hmac_one(k, h, it))
                })
            }
            ("random", _) => Ok(Reply::Data(random(m.param("params"), f)?)),
            ("hash", _) => Ok(Reply::Data(hash(m, f)?)),
            _ => Err(Error::MethodNotAllowed),
        }
    }
}

fn check_budget(
    kind: Kind,
    op: CostOp,
    f: &Fields,
    batch: &Option<Vec<Fields>>,
    field: &str,
    limits: &Limits,
) -> Result<(), Error> {
    let list: Vec<&Fields> = match batch {
        Some(b) => b.iter().collect(),
        None => vec![f],
    };
    budget(kind, op, &list, field, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slh_dsa_batches_hit_the_budget_and_aes_ones_do_not() {
        let limits = Limits::default();
        let item =
            Fields::decode(SIGN_ITEM, json!({"input": "aGk="}).as_object().unwrap()).unwrap();
        let many: Vec<&Fields> = (0..100).map(|_| &item).collect();
        let slh = Kind::Sign(Algorithm::SlhDsaSha2_128s);
        let e = budget(slh, CostOp::Sign, &many, "input", &limits).unwrap_err();
        assert!(
            e.to_string()
                .contains("split it into batches of at most 21"),
            "{e}"
        );
        let shake = Kind::Sign(Algorithm::SlhDsaShake192s);
        assert!(
            budget(shake, CostOp::Sign, &many[..2], "input", &limits).is_err(),
            "10 s each"
        );
        assert!(
            budget(slh, CostOp::Sign, &many[..1], "input", &limits).is_ok(),
            "one item always"
        );
        let aes = Kind::Aead(AeadAlgorithm::Aes256Gcm);
        let all: Vec<&Fields> = (0..4096).map(|_| &item).collect();
        assert!(budget(aes, CostOp::Crypt, &all, "input", &limits).is_ok());
    }
}
