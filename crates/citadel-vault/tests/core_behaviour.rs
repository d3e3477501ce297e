//! What the request tables cannot express: restarts over SQLite, audit
//! logs on disk, concurrent writers, time, and client-side cryptography.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use citadel_vault::core::{Config, Core};
use citadel_vault::storage::Memory;
use serde_json::{Value, json};
use std::sync::Arc;
use support::{call, dev, enable_audit, sqlite_core};

/// After a restart the vault is sealed and holds no key; the database file
/// holds neither the root token, the unseal keys nor any secret in clear.
#[test]
fn a_sealed_restart_holds_no_keys_and_storage_holds_no_plaintext() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("vault.db");
    let open = || sqlite_core(&db, Config::default());
    let core = open();
    let (s, init) = call(
        &core,
        "PUT",
        "sys/init",
        None,
        json!({"secret_shares": 3, "secret_threshold": 2}),
    );
    assert_eq!(s, 200);
    let keys: Vec<String> = serde_json::from_value(init["keys"].clone()).unwrap();
    assert_eq!(keys[0].len(), 66, "33-byte shares, as Vault's");
    let root = init["root_token"].as_str().unwrap().to_string();
    for k in &keys[..2] {
        call(&core, "PUT", "sys/unseal", None, json!({"key": k}));
    }
    call(
        &core,
        "POST",
        "sys/mounts/secret",
        Some(&root),
        json!({"type": "kv-v2"}),
    );
    let (s, _) = call(
        &core,
        "PUT",
        "secret/data/db",
        Some(&root),
        json!({"data": {"password": "hunter2-in-the-clear"}}),
    );
    assert_eq!(s, 200);
    drop(core);
    let raw = std::fs::read(&db).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains(&root[4..]));
    assert!(!text.contains("hunter2"));
    for k in &keys {
        assert!(!text.contains(k.as_str()));
    }
    let core = open();
    assert!(core.is_sealed());
    let (s, _) = call(&core, "GET", "secret/data/db", Some(&root), json!(null));
    assert_eq!(s, 503);
    for k in &keys[1..] {
        call(&core, "PUT", "sys/unseal", None, json!({"key": k}));
    }
    assert!(!core.is_sealed());
    let (_, v) = call(&core, "GET", "secret/data/db", Some(&root), json!(null));
    assert_eq!(v["data"]["data"]["password"], "hunter2-in-the-clear");
}

/// Every request is recorded (denials too), without tokens or secrets in
/// clear; the operator finds a token's requests with the log's HMAC key;
/// a broken device fails every request, even disabling it.
#[test]
fn requests_are_audited_without_secrets_and_a_broken_device_fails_closed() {
    let d = tempfile::tempdir().unwrap();
    let storage = Arc::new(Memory::default());
    let core = Core::new(storage.clone(), "inmem", Config::default());
    let (key, root) = core.init_dev().unwrap();
    let log = d.path().join("audit");
    enable_audit(&core, &root, &log);
    let (_, v) = call(&core, "GET", "sys/audit", Some(&root), json!(null));
    assert_eq!(v["data"]["citadel/"]["type"], "citadel");
    let (s, _) = call(
        &core,
        "PUT",
        "sys/audit/other",
        Some(&root),
        json!({"type": "citadel", "options": {"file_path": log, "hmac_accessor": "false"}}),
    );
    assert_eq!(s, 400, "unknown options are refused");
    call(
        &core,
        "POST",
        "secret/data/db",
        Some(&root),
        json!({"data": {"password": "hunter2-plaintext"}}),
    );
    call(
        &core,
        "GET",
        "secret/data/db",
        Some("hvs.intruder-token"),
        json!(null),
    );
    core.flush_audit().unwrap();
    let report = citadel_audit::verify::verify(&log, None).unwrap();
    assert!(report.entries >= 6, "{report:?}");
    let mut raw = Vec::new();
    for e in std::fs::read_dir(log.join("segments")).unwrap() {
        raw.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains(&root[4..]), "token in clear");
    assert!(!text.contains("hunter2"), "secret in clear");
    assert!(!text.contains("intruder-token"));
    assert!(text.contains("\"resource\":\"secret/data/db\""));
    assert!(text.contains("error 403"), "the denied read is recorded");
    {
        // The vault's device holds the writer's lock: read beside it.
        let l = citadel_audit::log::LogReader::open(&log).unwrap();
        let k = l.hmac_key().unwrap();
        let want = citadel_audit::entry::hmac_value(&k, &json!(root.as_str()));
        let mut found = 0;
        l.scan(0, |_, e| {
            let v: Value = serde_json::from_slice(e).unwrap();
            if v["actor"] == json!(want) {
                found += 1;
            }
            true
        })
        .unwrap();
        assert!(found >= 4, "{found}");
    }
    // Seal, break the device, unseal: the vault refuses to unseal (it
    // would serve requests it cannot record) and stays sealed.
    let (s, _) = call(&core, "PUT", "sys/seal", Some(&root), json!(null));
    assert_eq!(s, 204);
    std::fs::remove_dir_all(&log).unwrap();
    std::fs::write(&log, b"not a directory").unwrap();
    let (s, v) = call(
        &core,
        "PUT",
        "sys/unseal",
        None,
        json!({"key": hex::encode(&key[..])}),
    );
    assert_eq!(s, 500, "{v}");
    // The cause names paths: it goes to the server's log, the unsealing
    // client (unauthenticated) is pointed there.
    assert!(v.to_string().contains("log has the details"), "{v}");
    let (_, v) = call(&core, "GET", "sys/seal-status", None, json!(null));
    assert_eq!(v["sealed"], json!(true), "{v}");
    let (s, v) = call(&core, "GET", "secret/data/db", Some(&root), json!(null));
    assert_eq!(s, 503, "{v}");
    core.shutdown();
}

/// The `file` device writes Vault's JSON lines at `file_path`: a request
/// and a response entry per request, the token and its accessor only as
/// HMACs that `sys/audit-hash` reproduces, no secret; it follows a log
/// rotation when asked to reopen, and fails closed when it cannot.
#[test]
fn the_file_device_writes_vaults_json_lines_and_fails_closed() {
    let d = tempfile::tempdir().unwrap();
    let config = Config {
        audit_file_dirs: vec![d.path().join("logs")],
        ..Config::default()
    };
    std::fs::create_dir(d.path().join("logs")).unwrap();
    let core = Core::new(Arc::new(Memory::default()), "inmem", config);
    let (_, root) = core.init_dev().unwrap();
    // Found by helper-23: a file the server's shell sources took an entry
    // whose path held `$(…)`. Only the operator's directories are open.
    std::fs::write(d.path().join("bashrc"), b"# a shell's startup file\n").unwrap();
    for outside in [
        d.path().join("bashrc"),
        d.path().join("logs/../bashrc"),
        std::path::PathBuf::from("/etc/ld.so.preload"),
    ] {
        let (s, v) = call(
            &core,
            "PUT",
            "sys/audit/file",
            Some(&root),
            json!({"type": "file", "options": {"file_path": outside}}),
        );
        assert_eq!(s, 400, "{v}");
    }
    std::os::unix::fs::symlink(d.path(), d.path().join("logs/up")).unwrap();
    let (s, v) = call(
        &core,
        "PUT",
        "sys/audit/file",
        Some(&root),
        json!({"type": "file", "options": {"file_path": d.path().join("logs/up/bashrc")}}),
    );
    assert_eq!(s, 400, "a link inside leads out: {v}");
    assert!(v.to_string().contains("outside the directories"), "{v}");
    let path = d.path().join("logs/audit.log");
    let (s, v) = call(
        &core,
        "PUT",
        "sys/audit/file",
        Some(&root),
        json!({"type": "file", "options": {"file_path": path, "mode": "0640"}}),
    );
    assert_eq!(s, 204, "{v}");
    let (_, v) = call(&core, "GET", "sys/audit", Some(&root), json!(null));
    assert_eq!(v["data"]["file/"]["type"], "file", "{v}");
    assert_eq!(v["data"]["file/"]["options"]["mode"], "0640", "{v}");
    assert!(!v.to_string().contains("hmac_key"), "{v}");
    call(
        &core,
        "POST",
        "secret/data/db",
        Some(&root),
        json!({"data": {"password": "hunter2-plaintext"}}),
    );
    let (s, _) = call(
        &core,
        "GET",
        "secret/data/db",
        Some("hvs.intruder-token"),
        json!(null),
    );
    assert_eq!(s, 403);
    core.flush_audit().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("hunter2"), "secret in clear");
    assert!(!text.contains(&root[4..]), "token in clear");
    assert!(!text.contains("intruder-token"));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON entry"))
        .collect();
    assert!(lines.len() >= 6, "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // The operator finds the root token's entries with the device's HMAC.
    let (s, h) = call(
        &core,
        "PUT",
        "sys/audit-hash/file",
        Some(&root),
        json!({"input": root.as_str()}),
    );
    assert_eq!(s, 200, "{h}");
    let hash = h["data"]["hash"].as_str().unwrap();
    assert!(hash.starts_with("hmac-sha256:"), "{hash}");
    let write = lines
        .iter()
        .find(|l| l["type"] == "response" && l["request"]["path"] == "secret/data/db")
        .expect("the write's response is recorded");
    assert_eq!(write["auth"]["client_token"], hash);
    assert_eq!(write["auth"]["policies"], json!(["root"]));
    assert_eq!(write["request"]["operation"], "update");
    assert!(write.get("error").is_none(), "{write}");
    let denied = lines
        .iter()
        .find(|l| l["type"] == "response" && l["error"] == "permission denied")
        .expect("the denial is recorded with its error");
    assert_eq!(denied["request"]["operation"], "read");
    assert_ne!(denied["auth"]["client_token"], hash);
    let (s, _) = call(
        &core,
        "PUT",
        "sys/audit-hash/none",
        Some(&root),
        json!({"input": "x"}),
    );
    assert_eq!(s, 400, "no device there");
    // A rotation: the file is moved away, the server told to reopen.
    std::fs::rename(&path, d.path().join("logs/audit.log.1")).unwrap();
    core.reopen_audit_files();
    call(&core, "GET", "secret/data/db", Some(&root), json!(null));
    core.flush_audit().unwrap();
    let fresh = std::fs::read_to_string(&path).unwrap();
    assert!(fresh.contains("secret/data/db"), "{fresh}");
    // A file that cannot be reopened fails the device: requests are
    // refused, never served unrecorded.
    std::fs::rename(&path, d.path().join("logs/audit.log.2")).unwrap();
    std::fs::create_dir(&path).unwrap();
    reopen_until(&core, false, "the device never failed");
    let (s, v) = call(&core, "GET", "secret/data/db", Some(&root), json!(null));
    assert_eq!(s, 500, "{v}");
    assert!(!v.to_string().contains("hunter2"), "{v}");
    // Found by helper-22: a failed file device stayed failed until a
    // restart. Reopening its file (SIGHUP) once the cause is fixed brings
    // it back.
    std::fs::remove_dir(&path).unwrap();
    reopen_until(&core, true, "the device never recovered");
    let (s, v) = call(&core, "GET", "secret/data/db", Some(&root), json!(null));
    assert_eq!(s, 200, "{v}");
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("secret/data/db")
    );
    // And a device that cannot be fixed can be disabled: the request that
    // removes it is not refused by it.
    std::fs::rename(&path, d.path().join("logs/audit.log.3")).unwrap();
    std::fs::create_dir(&path).unwrap();
    reopen_until(&core, false, "the device never failed");
    let (s, _) = call(&core, "GET", "secret/data/db", Some(&root), json!(null));
    assert_eq!(s, 500);
    let (s, v) = call(&core, "DELETE", "sys/audit/file", Some(&root), json!(null));
    assert_eq!(s, 204, "{v}");
    let (s, v) = call(&core, "GET", "secret/data/db", Some(&root), json!(null));
    assert_eq!(s, 200, "{v}");
    core.shutdown();
}

/// Asks the file devices to reopen their files (SIGHUP), then waits at
/// most 5 s until the devices are `healthy` (or failed).
fn reopen_until(core: &Core, healthy: bool, what: &str) {
    core.reopen_audit_files();
    let t = std::time::Instant::now();
    while core.flush_audit().is_ok() != healthy {
        assert!(t.elapsed().as_secs() < 5, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Eight writers racing with the same `cas`: exactly one wins each round.
#[test]
fn concurrent_check_and_set_writes_let_exactly_one_win() {
    let (core, root) = dev();
    for round in 0..20u64 {
        let winners: usize = (0..8)
            .map(|i| {
                let (core, root) = (core.clone(), root.clone());
                std::thread::spawn(move || {
                    call(
                        &core,
                        "POST",
                        "secret/data/race",
                        Some(&root),
                        json!({"data": {"writer": i}, "options": {"cas": round}}),
                    )
                    .0
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap() == 200))
            .sum();
        assert_eq!(winners, 1, "round {round}");
    }
    let (_, v) = call(
        &core,
        "GET",
        "secret/metadata/race",
        Some(&root),
        json!(null),
    );
    assert_eq!(v["data"]["current_version"], 20);
}

/// A token's TTL runs out; a child never outlives its parent.
#[test]
fn tokens_expire() {
    let (core, root) = dev();
    let (_, v) = call(
        &core,
        "POST",
        "auth/token/create",
        Some(&root),
        json!({"ttl": "2s"}),
    );
    let short = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (_, v) = call(
        &core,
        "POST",
        "auth/token/create",
        Some(&short),
        json!({"ttl": "1h"}),
    );
    let child = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert!(v["auth"]["lease_duration"].as_u64().unwrap() <= 2, "{v}");
    let (s, _) = call(
        &core,
        "GET",
        "auth/token/lookup-self",
        Some(&child),
        json!(null),
    );
    assert_eq!(s, 200);
    std::thread::sleep(std::time::Duration::from_millis(3100));
    for t in [&short, &child] {
        let (s, _) = call(&core, "GET", "auth/token/lookup-self", Some(t), json!(null));
        assert_eq!(s, 403, "expired");
    }
}

/// An `mlkem768-x25519` ciphertext made offline from the published public
/// key, by the documented format, decrypts; the public key and other
/// published values have their documented forms.
#[test]
fn hybrid_ciphertexts_made_offline_decrypt() {
    let (core, root) = dev();
    let t = Some(root.as_str());
    call(
        &core,
        "POST",
        "sys/mounts/transit",
        t,
        json!({"type": "transit"}),
    );
    let (_, v) = call(
        &core,
        "POST",
        "transit/keys/pq",
        t,
        json!({"type": "mlkem768-x25519"}),
    );
    let pk = B64
        .decode(v["data"]["keys"]["1"]["public_key"].as_str().unwrap())
        .unwrap();
    let ek = citadel_crypto::xwing::EncapsulationKey::from_bytes(&pk).unwrap();
    let (kem_ct, shared) = ek.encapsulate().unwrap();
    let key = citadel_crypto::kdf::hkdf(
        citadel_crypto::kdf::HkdfHash::Sha256,
        b"",
        shared.expose(),
        b"citadel transit mlkem768-x25519 v1",
        32,
    )
    .unwrap();
    let aead = citadel_crypto::aead::AeadKey::new(
        citadel_crypto::aead::AeadAlgorithm::Aes256Gcm,
        key.expose(),
    )
    .unwrap();
    let mut blob = kem_ct;
    blob.extend(aead.seal(&[0u8; 12], b"", b"made offline").unwrap());
    let (s, v) = call(
        &core,
        "POST",
        "transit/decrypt/pq",
        t,
        json!({"ciphertext": format!("vault:v1:{}", B64.encode(&blob))}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["plaintext"], B64.encode(b"made offline"));
    // The other published forms.
    let (_, v) = call(
        &core,
        "POST",
        "transit/keys/ec",
        t,
        json!({"type": "ecdsa-p256"}),
    );
    assert!(
        v["data"]["keys"]["1"]["public_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    let (_, v) = call(&core, "POST", "transit/keys/aes", t, json!({}));
    assert!(
        v["data"]["keys"]["1"].as_i64().unwrap() > 1_700_000_000,
        "a Unix time"
    );
    let (_, v) = call(
        &core,
        "POST",
        "transit/random/24",
        t,
        json!({"format": "hex"}),
    );
    assert_eq!(v["data"]["random_bytes"].as_str().unwrap().len(), 48);
    let (_, v) = call(
        &core,
        "POST",
        "transit/datakey/plaintext/aes",
        t,
        json!({"bits": 512}),
    );
    assert_eq!(
        B64.decode(v["data"]["plaintext"].as_str().unwrap())
            .unwrap()
            .len(),
        64
    );
    let (_, v) = call(
        &core,
        "POST",
        "transit/hmac/aes/sha2-512",
        t,
        json!({"input": "aGk="}),
    );
    let tag = v["data"]["hmac"].as_str().unwrap();
    assert_eq!(
        B64.decode(tag.strip_prefix("vault:v1:").unwrap())
            .unwrap()
            .len(),
        64
    );
}
