//! The `vault_api` fuzz target's harness, shared with `tests/fuzz_replay.rs`
//! (which replays its corpus under `cargo test`): arbitrary requests to
//! `Core::handle` on an unsealed in-memory vault, mostly with a
//! policy-limited token. No input may panic the core or make it answer 500
//! (with in-memory storage an internal error is a bug), and nothing outside
//! the limited token's policy may ever come back to it or change for it.
//!
//! Input: one byte choosing the method (low 3 bits) and the token (bit 6:
//! root, else the limited token), then the raw path (with an optional
//! `?query`), a newline, and the body.

use citadel_vault::core::{Config, Core};
use citadel_vault::request::{Operation, Request};
use citadel_vault::storage::Memory;
use serde_json::json;
use std::sync::{Arc, OnceLock};

/// A value only the root token may read.
pub const CANARY: &str = "CANARY-7c2d-PRIVATE";

pub struct Harness {
    pub core: Core,
    pub root: String,
    pub limited: String,
}

const LIMITED_POLICY: &str = r#"
path "secret/data/public/*" { capabilities = ["read", "create", "update", "patch", "list"] }
path "secret/metadata/public/*" { capabilities = ["read", "list"] }
path "secret/data/private/locked" { capabilities = ["deny"] }
path "transit/encrypt/aes" { capabilities = ["update"] }
path "transit/decrypt/aes" { capabilities = ["update"] }
path "transit/keys/+" { capabilities = ["read"] }
path "sys/policies/acl/limited" { capabilities = ["read"] }
"#;

fn handle(core: &Core, op: Operation, path: &str, token: &str, body: serde_json::Value) -> u16 {
    core.handle(Request::new(op, path).token(token).json(&body))
        .status
}

pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let core = Core::new(Arc::new(Memory::default()), "inmem", Config::default());
        let (_, root) = core.init_dev().expect("a dev vault");
        let root = root.to_string();
        let up = Operation::Update;
        assert_eq!(
            handle(
                &core,
                up,
                "sys/mounts/transit",
                &root,
                json!({"type": "transit"})
            ),
            204
        );
        for (name, kind) in [
            ("aes", "aes256-gcm96"),
            ("pq", "mlkem768-x25519"),
            ("ec", "ecdsa-p256"),
            ("ml", "ml-dsa-44"),
            ("ed", "ed25519"),
        ] {
            assert_eq!(
                handle(
                    &core,
                    up,
                    &format!("transit/keys/{name}"),
                    &root,
                    json!({"type": kind})
                ),
                200
            );
        }
        assert_eq!(
            handle(
                &core,
                up,
                "sys/auth/userpass",
                &root,
                json!({"type": "userpass"})
            ),
            204
        );
        assert_eq!(
            handle(
                &core,
                up,
                "auth/userpass/users/admin",
                &root,
                json!({"password": CANARY})
            ),
            204
        );
        for p in ["private/x", "private/locked", "Private/x", "publicx"] {
            assert_eq!(
                handle(
                    &core,
                    up,
                    &format!("secret/data/{p}"),
                    &root,
                    json!({"data": {"v": CANARY}})
                ),
                200
            );
        }
        assert_eq!(
            handle(
                &core,
                up,
                "secret/data/public/x",
                &root,
                json!({"data": {"v": "public"}})
            ),
            200
        );
        assert_eq!(
            handle(
                &core,
                up,
                "sys/policies/acl/limited",
                &root,
                json!({"policy": LIMITED_POLICY})
            ),
            204
        );
        let r = core.handle(
            Request::new(up, "auth/token/create")
                .token(&root)
                .json(&json!({"policies": ["limited"], "no_default_policy": true})),
        );
        let limited = r.json_body().expect("a token")["auth"]["client_token"]
            .as_str()
            .expect("a token")
            .to_string();
        Harness {
            core,
            root,
            limited,
        }
    })
}

const METHODS: [Operation; 6] = [
    Operation::Read,
    Operation::Update,
    Operation::Update,
    Operation::Delete,
    Operation::List,
    Operation::Patch,
];

/// Runs one input; panics on a finding.
pub fn run_one(data: &[u8]) {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let (target, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(target) = std::str::from_utf8(target) else {
        return;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let h = harness();
    let as_root = m & 0x40 != 0;
    let op = METHODS[usize::from(m & 7) % METHODS.len()];
    // With the root token, requests that change the vault's state for every
    // later input (sealing, rotating, audit devices writing files,
    // unmounting, revoking) are skipped, and so are its writes under
    // `secret/` (root may change the values the invariants watch). Any
    // percent-encoded root path is skipped too, since it could spell those.
    if as_root {
        let p = path.trim_start_matches('/').to_ascii_lowercase();
        let writes = !matches!(op, Operation::Read | Operation::List);
        if p.contains('%')
            || ["sys", "auth/token/revoke"]
                .iter()
                .any(|s| p.starts_with(s))
            || (writes && p.starts_with("secret"))
        {
            return;
        }
    }
    let token = if as_root { &h.root } else { &h.limited };
    let mut req = Request::new(op, path).query(query).token(token);
    req.body = body.to_vec();
    let r = h.core.handle(req);
    assert_ne!(r.status, 500, "{path}: {:?}", r.json_body());
    if !as_root {
        let text = r.json_body().map(|v| v.to_string()).unwrap_or_default();
        assert!(
            !text.contains(CANARY),
            "the limited token got a value outside its policy from {path}: {text}"
        );
    }
}

/// What must still hold after any number of inputs: the values outside
/// the limited token's policy are as they were.
pub fn check_invariants() {
    let h = harness();
    for p in ["private/x", "private/locked", "Private/x", "publicx"] {
        let r = h
            .core
            .handle(Request::new(Operation::Read, format!("secret/data/{p}")).token(&h.root));
        let v = r.json_body().unwrap_or_default();
        assert_eq!(
            v["data"]["data"]["v"], CANARY,
            "secret/data/{p} changed: {v}"
        );
    }
}
