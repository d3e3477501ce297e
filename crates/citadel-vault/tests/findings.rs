//! The findings of issue 11 that a request table cannot show: concurrency,
//! storage that fails or is tampered with, restarts, audit logs on disk,
//! and the HTTP listener. Each test names its finding; each failed on the
//! code before the request core.

mod support;

use citadel_vault::barrier::OnTamper;
use citadel_vault::core::{Config, Core};
use citadel_vault::request::{Operation, Request};
use citadel_vault::storage::{Change, Memory, Physical};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::{Api, call, dev, enable_audit, sqlite_core, sqlite_core_on};

/// Finding 6: a 20,000-generation chain of child tokens is revoked whole by
/// `revoke-self`, on a thread with a tokio worker's stack (2 MiB), where
/// the recursive revocation overflowed.
#[test]
fn finding_06_a_20000_deep_token_chain_is_revoked_whole() {
    let (core, root) = dev();
    let (s, _) = call(
        &core,
        "PUT",
        "sys/policies/acl/creator",
        Some(&root),
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }\npath \"auth/token/revoke-self\" { capabilities = [\"update\"] }"}),
    );
    assert_eq!(s, 204);
    let core2 = core.clone();
    let worker = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let core = core2;
            let mut tok = root.clone();
            let mut chain = Vec::new();
            for _ in 0..20_000 {
                let (s, v) = call(
                    &core,
                    "POST",
                    "auth/token/create",
                    Some(&tok),
                    json!({"policies": ["creator"]}),
                );
                assert_eq!(s, 200, "{v}");
                tok = v["auth"]["client_token"].as_str().unwrap().to_string();
                chain.push(tok.clone());
            }
            let (s, v) = call(
                &core,
                "POST",
                "auth/token/revoke-self",
                Some(&chain[0]),
                json!({}),
            );
            assert_eq!(s, 204, "{v}");
            chain
        })
        .unwrap();
    let chain = worker
        .join()
        .expect("revocation must not overflow the stack");
    for t in [&chain[0], &chain[10_000], &chain[19_999]] {
        let (s, _) = call(&core, "GET", "auth/token/lookup-self", Some(t), json!(null));
        assert_eq!(s, 403, "revoked with its ancestor");
    }
}

/// Finding 10: eight concurrent wrong guesses are counted one by one (the
/// count is read and written under the user's lock), so the user ends up
/// locked; before, lost updates let guesses through uncounted.
#[test]
fn finding_10_concurrent_guesses_are_all_counted() {
    let (core, root) = dev();
    call(
        &core,
        "POST",
        "sys/auth/userpass",
        Some(&root),
        json!({"type": "userpass"}),
    );
    let (s, _) = call(
        &core,
        "PUT",
        "auth/userpass/users/u",
        Some(&root),
        json!({"password": "right"}),
    );
    assert_eq!(s, 204);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let core = core.clone();
            std::thread::spawn(move || {
                call(
                    &core,
                    "PUT",
                    "auth/userpass/login/u",
                    None,
                    json!({"password": format!("wrong{i}")}),
                )
                .0
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 400);
    }
    let (s, v) = call(
        &core,
        "PUT",
        "auth/userpass/login/u",
        None,
        json!({"password": "right"}),
    );
    assert_eq!(
        (s, v["errors"][0].as_str()),
        (400, Some("invalid username or password")),
        "locked"
    );
}

/// A storage whose writes of one key fail on demand.
#[derive(Default)]
struct Flaky {
    inner: Memory,
    fail_key: std::sync::Mutex<Option<String>>,
}

impl Physical for Flaky {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, citadel_vault::Error> {
        self.inner.get(key)
    }
    fn write(&self, changes: &[Change<'_>]) -> Result<(), citadel_vault::Error> {
        if let Some(k) = self.fail_key.lock().unwrap().as_deref() {
            if changes.iter().any(|c| c.key() == k) {
                return Err(citadel_vault::Error::Storage("database is locked".into()));
            }
        }
        self.inner.write(changes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, citadel_vault::Error> {
        self.inner.list(prefix)
    }
    fn scan(&self, f: &mut citadel_vault::storage::ScanFn<'_>) -> Result<(), citadel_vault::Error> {
        self.inner.scan(f)
    }
}

/// Finding 13: a `sys/rotate` whose keyring write fails leaves the stored
/// keyring live, so the writes acknowledged after it read back after a
/// restart; and the client is not told storage internals.
#[test]
fn finding_13_a_failed_rotate_loses_no_acknowledged_write() {
    let storage = Arc::new(Flaky::default());
    let core = Core::new(storage.clone(), "flaky", Config::default());
    let (key, root) = core.init_dev().unwrap();
    *storage.fail_key.lock().unwrap() = Some("core/keyring".into());
    let (s, v) = call(&core, "PUT", "sys/rotate", Some(&root), json!(null));
    assert_eq!(s, 500);
    let msg = v["errors"][0].as_str().unwrap();
    assert!(
        msg.contains("request id") && !msg.contains("locked") && !msg.contains("keyring"),
        "{msg}"
    );
    *storage.fail_key.lock().unwrap() = None;
    let (s, _) = call(
        &core,
        "PUT",
        "secret/data/after",
        Some(&root),
        json!({"data": {"v": "acknowledged"}}),
    );
    assert_eq!(s, 200);
    drop(core);
    let again = Core::new(storage, "flaky", Config::default());
    let (s, _) = call(
        &again,
        "PUT",
        "sys/unseal",
        None,
        json!({"key": hex::encode(&key[..])}),
    );
    assert_eq!(s, 200);
    let (s, v) = call(&again, "GET", "secret/data/after", Some(&root), json!(null));
    assert_eq!(
        (s, &v["data"]["data"]["v"]),
        (200, &json!("acknowledged")),
        "{v}"
    );
}

/// Finding 14: of eight concurrent `sys/init` calls exactly one succeeds,
/// and its keys and root token open the vault.
#[test]
fn finding_14_concurrent_inits_make_one_vault() {
    let core = Arc::new(Core::new(
        Arc::new(Memory::default()),
        "inmem",
        Config::default(),
    ));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let core = core.clone();
            std::thread::spawn(move || {
                call(
                    &core,
                    "PUT",
                    "sys/init",
                    None,
                    json!({"secret_shares": 1, "secret_threshold": 1}),
                )
            })
        })
        .collect();
    let wins: Vec<Value> = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(wins.len(), 1);
    let (s, v) = call(
        &core,
        "PUT",
        "sys/unseal",
        None,
        json!({"key": wins[0]["keys"][0]}),
    );
    assert_eq!((s, &v["sealed"]), (200, &json!(false)));
    let root = wins[0]["root_token"].as_str().unwrap();
    let (s, _) = call(
        &core,
        "GET",
        "auth/token/lookup-self",
        Some(root),
        json!(null),
    );
    assert_eq!(s, 200);
}

/// Finding 17: the SQLite files are private, and tokens are stored under a
/// keyed HMAC: the database holds neither the token nor its SHA-256.
#[test]
fn finding_17_storage_is_private_and_holds_no_token_digest() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("vault.db");
    let core = sqlite_core(&db, Config::default());
    let (_, root) = core.init_dev().unwrap();
    let (_, v) = call(&core, "POST", "auth/token/create", Some(&root), json!({}));
    let child = v["auth"]["client_token"].as_str().unwrap().to_string();
    let accessor = v["auth"]["accessor"].as_str().unwrap().to_string();
    drop(core);
    for f in std::fs::read_dir(d.path()).unwrap() {
        let p = f.unwrap().path();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    let raw = std::fs::read(&db).unwrap();
    let text = String::from_utf8_lossy(&raw);
    for t in [&root, &child] {
        assert!(!text.contains(t.as_str()));
        let digest = hex::encode(citadel_crypto::hash::sha256(t.as_bytes()));
        assert!(
            !text.contains(&digest),
            "an unsalted token digest is stored"
        );
    }
    assert!(
        !text.contains(&accessor),
        "accessors are stored as HMACs too"
    );
}

/// Finding 19: a server error names nothing internal (no storage path, no
/// mount id, no HMAC), whoever asks; the log has the details.
#[test]
fn finding_19_server_errors_tell_the_client_nothing_internal() {
    let storage = Arc::new(Memory::default());
    let core = Core::new(storage.clone(), "inmem", Config::default());
    let (key, root) = core.init_dev().unwrap();
    call(
        &core,
        "PUT",
        "secret/data/x",
        Some(&root),
        json!({"data": {"k": "v"}}),
    );
    drop(core);
    // Damage the mount table's blob: every path through a mount fails.
    // (The operator accepts storage changes, or unseal would refuse the
    // damaged store before any request.)
    let mut blob = storage.get("core/mounts").unwrap().unwrap();
    let n = blob.len();
    blob[n - 1] ^= 1;
    storage.put("core/mounts", &blob).unwrap();
    let core = Core::new(
        storage,
        "inmem",
        Config {
            on_tamper: OnTamper::Accept,
            ..Config::default()
        },
    );
    let (s, _) = call(
        &core,
        "PUT",
        "sys/unseal",
        None,
        json!({"key": hex::encode(&key[..])}),
    );
    assert_eq!(s, 200);
    for token in [Some(root.as_str()), None, Some("hvs.not-a-token")] {
        let (s, v) = call(&core, "GET", "secret/data/x", token, json!(null));
        assert_eq!(s, 500, "{v}");
        let msg = v["errors"][0].as_str().unwrap();
        assert!(msg.contains("request id"), "{msg}");
        for internal in [
            "core/mounts",
            "logical/",
            "authenticate",
            "corrupt",
            "storage",
        ] {
            assert!(!msg.contains(internal), "{msg}");
        }
    }
}

/// Finding 22: a `batch_input` is bounded in items, and a body in JSON
/// values while it is parsed (600,000 empty items used to take 1 GB).
#[test]
fn finding_22_batches_and_bodies_are_bounded() {
    let (core, root) = dev();
    call(
        &core,
        "POST",
        "sys/mounts/transit",
        Some(&root),
        json!({"type": "transit"}),
    );
    let items: Vec<Value> = (0..4097).map(|_| json!({"plaintext": "aGk="})).collect();
    let (s, v) = call(
        &core,
        "POST",
        "transit/encrypt/k",
        Some(&root),
        json!({"batch_input": items}),
    );
    assert_eq!(s, 400);
    assert!(
        v["errors"][0].as_str().unwrap().contains("at most 4096"),
        "{v}"
    );
    let body = format!("{{\"batch_input\": [{}]}}", vec!["{}"; 600_000].join(","));
    let mut req = Request::new(Operation::Update, "transit/encrypt/k").token(&root);
    req.body = body.into_bytes();
    let r = core.handle(req);
    assert_eq!(r.status, 400);
    assert!(
        r.json_body()
            .unwrap()
            .to_string()
            .contains("too many JSON values")
    );
    // SLH-DSA signing has a CPU budget per request.
    call(
        &core,
        "POST",
        "transit/keys/slow",
        Some(&root),
        json!({"type": "slh-dsa-sha2-128s"}),
    );
    let items: Vec<Value> = (0..100).map(|_| json!({"input": "aGk="})).collect();
    let (s, v) = call(
        &core,
        "POST",
        "transit/sign/slow",
        Some(&root),
        json!({"batch_input": items}),
    );
    assert_eq!(s, 400);
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains("split it into batches"),
        "{v}"
    );
}

/// Finding 24: a storage restored from an older copy is refused at unseal,
/// because the audit device anchored a newer storage epoch; the operator
/// may accept it explicitly.
#[test]
fn finding_24_a_restored_older_copy_is_refused_at_unseal() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("vault.db");
    let audit = d.path().join("audit");
    let open = |on_tamper| sqlite_core_on(&db, on_tamper);
    let core = open(OnTamper::Refuse);
    let (key, root) = core.init_dev().unwrap();
    enable_audit(&core, &root, &audit);
    call(
        &core,
        "PUT",
        "secret/data/s",
        Some(&root),
        json!({"data": {"v": "old"}}),
    );
    let (_, v) = call(&core, "POST", "auth/token/create", Some(&root), json!({}));
    let revoked = v["auth"]["client_token"].as_str().unwrap().to_string();
    core.shutdown();
    drop(core);
    let backup = d.path().join("backup.db");
    std::fs::copy(&db, &backup).unwrap();
    let unseal = |core: &Core| {
        call(
            core,
            "PUT",
            "sys/unseal",
            None,
            json!({"key": hex::encode(&key[..])}),
        )
    };
    let core = open(OnTamper::Refuse);
    assert_eq!(unseal(&core).0, 200);
    call(
        &core,
        "PUT",
        "secret/data/s",
        Some(&root),
        json!({"data": {"v": "new"}}),
    );
    call(
        &core,
        "POST",
        "auth/token/revoke",
        Some(&root),
        json!({"token": revoked}),
    );
    core.shutdown();
    drop(core);
    // The older copy comes back with the server stopped.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(d.path().join(format!("vault.db{suffix}")));
    }
    std::fs::copy(&backup, &db).unwrap();
    let core = open(OnTamper::Refuse);
    let (s, v) = unseal(&core);
    assert_eq!(s, 500, "{v}");
    assert!(core.is_sealed(), "the vault stays sealed");
    drop(core);
    // The operator accepts the copy on purpose.
    let core = open(OnTamper::Accept);
    assert_eq!(unseal(&core).0, 200);
    let (_, v) = call(&core, "GET", "secret/data/s", Some(&root), json!(null));
    assert_eq!(v["data"]["data"]["v"], "old");
    core.shutdown();
}

/// Findings 9 and 12: whatever the token header holds is recorded as an
/// HMAC, and the device signs checkpoints while entries arrive, so the log
/// verifies against them.
#[test]
fn finding_09_and_12_audit_entries_are_hmaced_and_checkpointed() {
    let d = tempfile::tempdir().unwrap();
    let audit = d.path().join("audit");
    let core = Core::new(
        Arc::new(Memory::default()),
        "inmem",
        Config {
            checkpoint_every: Duration::from_millis(50),
            ..Config::default()
        },
    );
    let (_, root) = core.init_dev().unwrap();
    enable_audit(&core, &root, &audit);
    let forged = format!("hmac-sha256:{}", "0".repeat(64));
    for _ in 0..4 {
        let (s, _) = call(&core, "GET", "secret/data/x", Some(&forged), json!(null));
        assert_eq!(s, 403);
        std::thread::sleep(Duration::from_millis(60));
    }
    core.flush_audit().unwrap();
    std::thread::sleep(Duration::from_millis(120));
    let cp = std::fs::read_to_string(audit.join("checkpoint")).unwrap();
    let covered: u64 = cp.lines().nth(1).unwrap().parse().unwrap();
    assert!(covered >= 8, "the checkpoint covers the requests: {cp}");
    core.shutdown();
    let report = citadel_audit::verify::verify(&audit, None).unwrap();
    assert!(!report.checkpoints.is_empty());
    let mut log =
        citadel_audit::log::AuditLog::open(&audit, citadel_audit::log::Durability::EveryAppend)
            .unwrap();
    let mut actors = 0;
    log.scan(0, |_, e| {
        let v: Value = serde_json::from_slice(e).unwrap();
        if let Some(a) = v["actor"].as_str() {
            actors += 1;
            assert_ne!(
                a, forged,
                "a token that looks like an HMAC is HMACed all the same"
            );
        }
        true
    })
    .unwrap();
    assert!(actors >= 8);
}

/// Finding 8: heavy requests run on the bounded pool, off the async
/// workers: while a slow SLH-DSA batch holds the only pool thread, health
/// checks and other light requests are answered, and a request beyond the
/// pool's queue gets a 503 instead of piling up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_08_heavy_work_leaves_the_workers_free() {
    let api = Api::start(citadel_vault::http::ServeOptions {
        pool: citadel_vault::http::PoolOptions {
            threads: 1,
            queue: 1,
            per_client: 8,
        },
        ..Default::default()
    })
    .await;
    let root = api.root.clone();
    api.call(
        "POST",
        "/v1/sys/mounts/transit",
        Some(&root),
        r#"{"type":"transit"}"#,
    )
    .await;
    api.call(
        "POST",
        "/v1/transit/keys/slow",
        Some(&root),
        r#"{"type":"slh-dsa-sha2-128s"}"#,
    )
    .await;
    let batch =
        json!({"batch_input": (0..6).map(|_| json!({"input": "aGk="})).collect::<Vec<_>>()})
            .to_string();
    let done = Arc::new(AtomicBool::new(false));
    let slow = {
        let (api, root, batch, done) = (api.clone(), root.clone(), batch.clone(), done.clone());
        tokio::spawn(async move {
            let r = api
                .call("POST", "/v1/transit/sign/slow", Some(&root), &batch)
                .await;
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    api.wait_for_metric("citadel_vault_pool_running 1").await;
    // A second heavy request waits in the queue...
    let queued = {
        let (api, root, batch) = (api.clone(), root.clone(), batch.clone());
        tokio::spawn(async move {
            api.call("POST", "/v1/transit/sign/slow", Some(&root), &batch)
                .await
        })
    };
    api.wait_for_metric("citadel_vault_pool_queued 1").await;
    // ...a third finds the queue full,
    let (s, v) = api
        .call("POST", "/v1/transit/sign/slow", Some(&root), &batch)
        .await;
    assert_eq!(s, 503, "{v}");
    // ...and light requests are answered meanwhile.
    for _ in 0..5 {
        let (s, _) = api.call("GET", "/v1/sys/health", None, "").await;
        assert_eq!(s, 200);
        let (s, _) = api
            .call("GET", "/v1/auth/token/lookup-self", Some(&root), "")
            .await;
        assert_eq!(s, 200);
    }
    assert!(!done.load(Ordering::SeqCst), "the batch was still running");
    assert_eq!(slow.await.unwrap().0, 200);
    assert_eq!(queued.await.unwrap().0, 200);
}

/// Finding 11: the plain-HTTP listener drops a client that trickles its
/// headers, and answers 408 to one that trickles its body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_11_slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = Api::start(citadel_vault::http::ServeOptions {
        timeouts: citadel_vault::http::Timeouts {
            header: Duration::from_millis(300),
            body: Duration::from_millis(300),
            handshake: Duration::from_millis(300),
        },
        ..Default::default()
    })
    .await;
    // Headers that never finish.
    let mut c = tokio::net::TcpStream::connect(api.addr).await.unwrap();
    c.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was not closed");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.is_empty() || text.contains("408"), "{text}");
    // A body that never finishes.
    let mut c = tokio::net::TcpStream::connect(api.addr).await.unwrap();
    c.write_all(b"PUT /v1/sys/unseal HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"key\"")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("an answer within the body timeout")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"));
}
