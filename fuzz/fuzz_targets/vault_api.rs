//! The vault's HTTP API with arbitrary requests (method, path, body) from a
//! root token against an unsealed in-memory vault with KV v2 and transit
//! mounted and keys of several types: no request may panic the server or
//! make it answer 500 (an internal error is a bug with in-memory storage).
#![no_main]
use axum::body::Body;
use axum::http::Request;
use citadel_vault::core::Vault;
use citadel_vault::mounts::{Engine, mount};
use citadel_vault::storage::Memory;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

struct State {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    token: String,
}

fn state() -> &'static State {
    static S: OnceLock<State> = OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let v = Arc::new(Vault::new(Arc::new(Memory::default()), "inmem"));
        let init = v.init(1, 1).unwrap();
        v.unseal(Some(&hex::encode(&init.keys[0][..])), false)
            .unwrap();
        mount(&v, "secret", Engine::KvV2, "").unwrap();
        mount(&v, "transit", Engine::Transit, "").unwrap();
        let router = citadel_vault::http::router(v);
        let token = init.root_token.to_string();
        for (name, kind) in [
            ("aes", "aes256-gcm96"),
            ("pq", "mlkem768-x25519"),
            ("ec", "ecdsa-p256"),
            ("ml", "ml-dsa-44"),
        ] {
            let req = Request::builder()
                .method("POST")
                .uri(format!("/v1/transit/keys/{name}"))
                .header("X-Vault-Token", &token)
                .body(Body::from(format!("{{\"type\":\"{kind}\"}}")))
                .unwrap();
            rt.block_on(router.clone().oneshot(req)).unwrap();
        }
        State { rt, router, token }
    })
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "LIST", "PATCH"];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let (path, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    // Sealing, key rotation and audit devices (which write files) change
    // the state every later input would run against.
    if ["sys/seal", "sys/rotate", "sys/audit"]
        .iter()
        .any(|p| path.trim_start_matches('/').starts_with(p))
    {
        return;
    }
    let s = state();
    let Ok(req) = Request::builder()
        .method(METHODS[usize::from(m) % METHODS.len()])
        .uri(format!("/v1/{path}"))
        .header("X-Vault-Token", &s.token)
        .header(
            "Content-Type",
            if m & 0x80 != 0 { "application/merge-patch+json" } else { "application/json" },
        )
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let resp = s.rt.block_on(s.router.clone().oneshot(req)).unwrap();
    assert_ne!(resp.status().as_u16(), 500, "{path}");
});
