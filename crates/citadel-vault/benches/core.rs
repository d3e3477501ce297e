//! The request core in process, no HTTP: what one request costs the core
//! (`cargo bench -p citadel-vault --bench core`). The HTTP server's figures,
//! beside OpenBao's, are in BENCHMARKS.md (scripts/bench/vault-load.sh).

use citadel_vault::core::{Config, Core};
use citadel_vault::request::{Operation, Request};
use citadel_vault::storage::Memory;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::sync::Arc;

fn setup(audit: Option<&std::path::Path>) -> (Core, String) {
    let core = Core::new(Arc::new(Memory::default()), "inmem", Config::default());
    let (_, root) = core.init_dev().unwrap();
    let root = root.to_string();
    let call = |op, path: &str, body: serde_json::Value| {
        let r = core.handle(Request::new(op, path).token(&root).json(&body));
        assert!(r.status < 300, "{path}: {:?}", r.json_body());
        r.json_body()
    };
    if let Some(dir) = audit {
        call(
            Operation::Update,
            "sys/audit/citadel",
            json!({"type": "citadel", "options": {"file_path": dir}}),
        );
    }
    call(
        Operation::Update,
        "sys/mounts/transit",
        json!({"type": "transit"}),
    );
    call(Operation::Update, "transit/keys/bench", json!({}));
    call(
        Operation::Update,
        "secret/data/bench",
        json!({"data": {"user": "app", "password": "0123456789abcdef"}}),
    );
    call(
        Operation::Update,
        "sys/policies/acl/bench",
        json!({"policy": "path \"secret/data/*\" { capabilities = [\"read\"] }\npath \"transit/encrypt/bench\" { capabilities = [\"update\"] }"}),
    );
    let t = call(
        Operation::Update,
        "auth/token/create",
        json!({"policies": ["bench"]}),
    )
    .unwrap();
    let limited = t["auth"]["client_token"].as_str().unwrap().to_string();
    (core, limited)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    for (name, audit) in [
        ("no audit", None),
        ("audit on", Some(dir.path().join("audit"))),
    ] {
        let (core, token) = setup(audit.as_deref());
        let plaintext = base64_kib();
        c.bench_function(&format!("core {name}: sys/health"), |b| {
            b.iter(|| {
                core.handle(Request::new(Operation::Read, "sys/health"))
                    .status
            })
        });
        c.bench_function(
            &format!("core {name}: KV read, policy-limited token"),
            |b| {
                b.iter(|| {
                    core.handle(Request::new(Operation::Read, "secret/data/bench").token(&token))
                        .status
                })
            },
        );
        let body = json!({"plaintext": plaintext});
        c.bench_function(
            &format!("core {name}: transit encrypt 1 KiB, policy-limited token"),
            |b| {
                b.iter(|| {
                    core.handle(
                        Request::new(Operation::Update, "transit/encrypt/bench")
                            .token(&token)
                            .json(&body),
                    )
                    .status
                })
            },
        );
        core.shutdown();
    }
}

fn base64_kib() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([7u8; 1024])
}

criterion_group!(benches, bench);
criterion_main!(benches);
