//! The second attacker review (issue 11, before resolving): each hit it
//! found against the new core, as a test that failed on the code it
//! attacked. Races are repeated until they would show.

mod support;

use citadel_vault::barrier::OnTamper;
use citadel_vault::core::{Config, Core};
use citadel_vault::storage::{Physical, Sqlite};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::{call, dev, enable_audit, sqlite_core, sqlite_core_on};

fn token_of(v: &Value) -> String {
    v["auth"]["client_token"].as_str().unwrap().to_string()
}

/// A token that may create children and renew and revoke itself.
fn creator(core: &Core, root: &str) -> String {
    let (s, _) = call(
        core,
        "PUT",
        "sys/policies/acl/creator",
        Some(root),
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }\npath \"auth/token/renew-self\" { capabilities = [\"update\"] }\npath \"auth/token/lookup-self\" { capabilities = [\"read\"] }"}),
    );
    assert_eq!(s, 204);
    let (_, v) = call(
        core,
        "POST",
        "auth/token/create",
        Some(root),
        json!({"policies": ["creator"], "ttl": "1h"}),
    );
    token_of(&v)
}

/// Attack 1: children created while their parent is being revoked went
/// unlisted and survived it. A revocation now marks each token (under its
/// lock) before listing its children, and a child is created only under a
/// parent's lock after checking the mark.
#[test]
fn attack_01_children_created_during_a_revocation_go_with_it() {
    let (core, root) = dev();
    for round in 0..5 {
        let parent = creator(&core, &root);
        for _ in 0..300 {
            let (s, _) = call(&core, "POST", "auth/token/create", Some(&parent), json!({}));
            assert_eq!(s, 200);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let makers: Vec<_> = (0..2)
            .map(|_| {
                let (core, parent, stop) = (core.clone(), parent.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut made = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let (s, v) =
                            call(&core, "POST", "auth/token/create", Some(&parent), json!({}));
                        if s == 200 {
                            made.push(token_of(&v));
                        }
                    }
                    made
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (s, _) = call(
            &core,
            "POST",
            "auth/token/revoke",
            Some(&root),
            json!({"token": parent}),
        );
        assert_eq!(s, 204);
        stop.store(true, Ordering::SeqCst);
        let made: Vec<String> = makers.into_iter().flat_map(|t| t.join().unwrap()).collect();
        for t in &made {
            let (s, _) = call(&core, "GET", "auth/token/lookup-self", Some(t), json!(null));
            assert_eq!(
                s, 403,
                "round {round}: a child made during the revocation survived"
            );
        }
    }
}

/// Attack 2: a renewal or a spent use racing a revocation wrote the
/// revoked entry back (without its accessor, so nobody could revoke it
/// again). Both now re-read under the token's lock and see the mark.
#[test]
fn attack_02_renewals_and_spent_uses_never_revive_a_revoked_token() {
    let (core, root) = dev();
    for round in 0..20 {
        let (_, v) = call(
            &core,
            "POST",
            "auth/token/create",
            Some(&root),
            json!({"policies": ["default"], "ttl": "1h", "num_uses": if round % 2 == 0 { 0 } else { 100_000 }}),
        );
        let tok = token_of(&v);
        let accessor = v["auth"]["accessor"].as_str().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let busy: Vec<_> = (0..4)
            .map(|_| {
                let (core, tok, stop) = (core.clone(), tok.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        call(
                            &core,
                            "POST",
                            "auth/token/renew-self",
                            Some(&tok),
                            json!({}),
                        );
                        call(
                            &core,
                            "GET",
                            "auth/token/lookup-self",
                            Some(&tok),
                            json!(null),
                        );
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (s, _) = call(
            &core,
            "POST",
            "auth/token/revoke-accessor",
            Some(&root),
            json!({"accessor": accessor}),
        );
        assert_eq!(s, 204);
        stop.store(true, Ordering::SeqCst);
        for t in busy {
            t.join().unwrap();
        }
        let (s, _) = call(
            &core,
            "GET",
            "auth/token/lookup-self",
            Some(&tok),
            json!(null),
        );
        assert_eq!(s, 403, "round {round}: the revoked token came back");
    }
}

/// Attack 4: deleting the digest record made unseal skip the storage
/// check. Once a keyring holds the integrity key, the record is required.
#[test]
fn attack_04_a_deleted_digest_record_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("vault.db");
    let core = sqlite_core(&db, Config::default());
    let (key, root) = core.init_dev().unwrap();
    call(
        &core,
        "PUT",
        "secret/data/s",
        Some(&root),
        json!({"data": {"v": "1"}}),
    );
    drop(core);
    Sqlite::open(&db).unwrap().delete("core/integrity").unwrap();
    for (on_tamper, want) in [(OnTamper::Refuse, 500), (OnTamper::Accept, 200)] {
        let core = sqlite_core_on(&db, on_tamper);
        let (s, v) = call(
            &core,
            "PUT",
            "sys/unseal",
            None,
            json!({"key": hex::encode(&key[..])}),
        );
        assert_eq!(s, want, "{on_tamper:?}: {v}");
    }
}

/// Attack 5: moving the audit log away made unseal create a fresh one and
/// skip the rollback check. A device's log is created only when the device
/// is enabled; at unseal a missing log keeps the vault sealed.
#[test]
fn attack_05_a_missing_audit_log_keeps_the_vault_sealed() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("vault.db");
    let audit = d.path().join("audit");
    let open = |on_tamper| sqlite_core_on(&db, on_tamper);
    let core = open(OnTamper::Refuse);
    let (key, root) = core.init_dev().unwrap();
    enable_audit(&core, &root, &audit);
    core.shutdown();
    drop(core);
    std::fs::rename(&audit, d.path().join("moved")).unwrap();
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
    let (s, v) = unseal(&core);
    assert_eq!(s, 500, "{v}");
    assert!(core.is_sealed());
    assert!(!audit.exists(), "no fresh log was made");
    drop(core);
    // The operator accepts: a new log is started, and said so.
    let core = open(OnTamper::Accept);
    assert_eq!(unseal(&core).0, 200);
    assert!(audit.join("log.json").exists());
    core.shutdown();
}

/// Attack 11: a secret id minted for a role survived the role's deletion
/// and logged in to a new role of the same name. Secret ids now belong to
/// the role's id, and are minted under the role's lock.
#[test]
fn attack_11_secret_ids_die_with_their_role() {
    let (core, root) = dev();
    let r = Some(root.as_str());
    call(
        &core,
        "POST",
        "sys/auth/approle",
        r,
        json!({"type": "approle"}),
    );
    call(
        &core,
        "PUT",
        "auth/approle/role/ci",
        r,
        json!({"token_policies": "default"}),
    );
    let (_, v) = call(&core, "PUT", "auth/approle/role/ci/secret-id", r, json!({}));
    let old_sid = v["data"]["secret_id"].as_str().unwrap().to_string();
    call(&core, "DELETE", "auth/approle/role/ci", r, json!(null));
    call(
        &core,
        "PUT",
        "sys/policies/acl/admin",
        r,
        json!({"policy": "path \"*\" { capabilities = [\"read\"] }"}),
    );
    call(
        &core,
        "PUT",
        "auth/approle/role/ci",
        r,
        json!({"token_policies": "admin"}),
    );
    let (_, v) = call(&core, "GET", "auth/approle/role/ci/role-id", r, json!(null));
    let rid = v["data"]["role_id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &core,
        "PUT",
        "auth/approle/login",
        None,
        json!({"role_id": rid, "secret_id": old_sid}),
    );
    assert_eq!(s, 400, "an old secret id logged in: {v}");
    // Racing the deletion: nothing minted during it logs in afterwards.
    for _ in 0..5 {
        call(
            &core,
            "PUT",
            "auth/approle/role/race",
            r,
            json!({"token_policies": "default"}),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let minter = {
            let (core, root, stop) = (core.clone(), root.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let (s, v) = call(
                        &core,
                        "PUT",
                        "auth/approle/role/race/secret-id",
                        Some(&root),
                        json!({}),
                    );
                    if s == 200 {
                        ids.push(v["data"]["secret_id"].as_str().unwrap().to_string());
                    }
                }
                ids
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(5));
        call(&core, "DELETE", "auth/approle/role/race", r, json!(null));
        stop.store(true, Ordering::SeqCst);
        let ids = minter.join().unwrap();
        call(
            &core,
            "PUT",
            "auth/approle/role/race",
            r,
            json!({"token_policies": "admin"}),
        );
        let (_, v) = call(
            &core,
            "GET",
            "auth/approle/role/race/role-id",
            r,
            json!(null),
        );
        let rid = v["data"]["role_id"].as_str().unwrap().to_string();
        for sid in ids {
            let (s, _) = call(
                &core,
                "PUT",
                "auth/approle/login",
                None,
                json!({"role_id": rid, "secret_id": sid}),
            );
            assert_eq!(s, 400);
        }
        call(&core, "DELETE", "auth/approle/role/race", r, json!(null));
    }
}

/// Attack 12: a KV read racing a write that trims versions answered 500
/// ("version missing") and logged false corruption.
#[test]
fn attack_12_reads_racing_writes_never_answer_500() {
    let (core, root) = dev();
    call(
        &core,
        "POST",
        "secret/metadata/race",
        Some(&root),
        json!({"max_versions": 1}),
    );
    call(
        &core,
        "POST",
        "secret/data/race",
        Some(&root),
        json!({"data": {"n": 0}}),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (core, root, stop) = (core.clone(), root.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    call(
                        &core,
                        "POST",
                        "secret/data/race",
                        Some(&root),
                        json!({"data": {"n": n}}),
                    );
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (core, root) = (core.clone(), root.clone());
            std::thread::spawn(move || {
                for _ in 0..3000 {
                    let (s, v) = call(&core, "GET", "secret/data/race", Some(&root), json!(null));
                    assert!(s == 200 || s == 404, "{s} {v}");
                }
            })
        })
        .collect();
    for t in readers {
        t.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for t in writers {
        t.join().unwrap();
    }
}

/// Attack 13: a login's and a token creation's response entries name the
/// new token (its accessor, as an HMAC), and requests to unmounted paths
/// are audited too.
#[test]
fn attack_13_the_audit_log_links_a_login_to_its_token() {
    let d = tempfile::tempdir().unwrap();
    let audit = d.path().join("audit");
    let (core, root) = dev();
    let r = Some(root.as_str());
    enable_audit(&core, &root, &audit);
    let (_, v) = call(&core, "POST", "auth/token/create", r, json!({}));
    let accessor = v["auth"]["accessor"].as_str().unwrap().to_string();
    let (s, _) = call(&core, "GET", "nomount/x", r, json!(null));
    assert_eq!(s, 404);
    core.flush_audit().unwrap();
    core.shutdown();
    let mut log =
        citadel_audit::log::AuditLog::open(&audit, citadel_audit::log::Durability::EveryAppend)
            .unwrap();
    let key = log.hmac_key().unwrap();
    let want = citadel_audit::entry::hmac_value(&key, &json!(accessor));
    let (mut linked, mut unmounted) = (false, false);
    log.scan(0, |_, e| {
        let v: Value = serde_json::from_slice(e).unwrap();
        linked |= v["details"]["issued_accessor"] == json!(want);
        unmounted |= v["resource"] == "nomount/x";
        true
    })
    .unwrap();
    assert!(linked, "the creation's response names the new token");
    assert!(unmounted, "a request to an unmounted path is audited");
}

/// Attack 14: a JSON policy with a path given twice kept the last rule
/// silently; it is refused, as a request body with a repeated key is.
#[test]
fn attack_14_json_policies_with_repeated_keys_are_refused() {
    let (core, root) = dev();
    let text = r#"{"path": {"secret/*": {"capabilities": ["deny"]}, "secret/*": {"capabilities": ["sudo", "read"]}}}"#;
    let (s, v) = call(
        &core,
        "PUT",
        "sys/policies/acl/dup",
        Some(&root),
        json!({"policy": text}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(v["errors"][0].as_str().unwrap().contains("twice"), "{v}");
}

/// Attack 15 (third review): creating the first AppRole role of a mount
/// took the mount's `salt` lock while holding the role's; when the two
/// paths fell on the same lock stripe (1 in 64) the request hung for ever,
/// and with it every request needing that stripe.
#[test]
fn attack_15_the_first_role_of_a_mount_never_deadlocks() {
    let (core, root) = dev();
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let (core, root) = (core.clone(), root.clone());
        std::thread::spawn(move || {
            for i in 0..300 {
                let r = Some(root.as_str());
                let (s, v) = call(
                    &core,
                    "POST",
                    &format!("sys/auth/ar{i}"),
                    r,
                    json!({"type": "approle"}),
                );
                assert_eq!(s, 204, "{v}");
                let (s, v) = call(
                    &core,
                    "POST",
                    &format!("auth/ar{i}/role/first"),
                    r,
                    json!({"token_policies": "default"}),
                );
                if tx.send((i, s, v)).is_err() {
                    return;
                }
            }
        });
    }
    for _ in 0..300 {
        let (i, s, v) = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a role creation hung: two lock stripes held at once");
        assert_eq!(s, 204, "mount {i}: {v}");
    }
}

/// Attack 16 (third review): a token renewed itself with `increment` 1s,
/// expired, and its child (capped at the parent's old expiry) lived on,
/// out of reach of revoking the parent. A renewal never shortens a token,
/// so a parent outlives its children and its revocation takes them along.
#[test]
fn attack_16_a_parent_cannot_shorten_itself_below_its_children() {
    let (core, root) = dev();
    let r = Some(root.as_str());
    call(
        &core,
        "PUT",
        "sys/policies/acl/team",
        r,
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"}),
    );
    let (_, v) = call(
        &core,
        "POST",
        "auth/token/create",
        r,
        json!({"policies": ["team"], "ttl": "24h"}),
    );
    let a = v["auth"]["client_token"].as_str().unwrap().to_string();
    let a_accessor = v["auth"]["accessor"].as_str().unwrap().to_string();
    let (_, v) = call(
        &core,
        "POST",
        "auth/token/create",
        Some(&a),
        json!({"ttl": "24h"}),
    );
    let b = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (s, v) = call(
        &core,
        "POST",
        "auth/token/renew-self",
        Some(&a),
        json!({"increment": "1s"}),
    );
    assert_eq!(s, 200, "{v}");
    let lease = v["auth"]["lease_duration"].as_u64().unwrap();
    assert!(lease > 86_000, "the parent shortened itself to {lease}s");
    let (s, _) = call(
        &core,
        "POST",
        "auth/token/revoke-accessor",
        r,
        json!({"accessor": a_accessor}),
    );
    assert_eq!(s, 204);
    let (s, _) = call(
        &core,
        "GET",
        "auth/token/lookup-self",
        Some(&b),
        json!(null),
    );
    assert_eq!(s, 403, "the child outlived its revoked parent");
}

/// A create-only token never overwrites a secret: the existence check
/// that turns a write into a "create" ran outside the secret's lock, so a
/// secret written meanwhile by someone else was overwritten by a token
/// that may only create. The write now refuses under the lock when the
/// secret has appeared since.
#[test]
fn a_create_only_token_never_overwrites_a_secret_created_meanwhile() {
    let (core, root) = dev();
    let (s, _) = call(
        &core,
        "PUT",
        "sys/policies/acl/create-only",
        Some(&root),
        json!({"policy": "path \"secret/data/race/*\" { capabilities = [\"create\"] }"}),
    );
    assert_eq!(s, 204);
    let (_, v) = call(
        &core,
        "POST",
        "auth/token/create",
        Some(&root),
        json!({"policies": ["create-only"], "ttl": "1h"}),
    );
    let creator = token_of(&v);
    // Without a race: an existing secret is an update, which it may not do.
    let (st, _) = call(
        &core,
        "PUT",
        "secret/data/race/pre",
        Some(&root),
        json!({"data": {"a": 1}}),
    );
    assert_eq!(st, 200);
    let (st, _) = call(
        &core,
        "PUT",
        "secret/data/race/pre",
        Some(&creator),
        json!({"data": {"a": 2}}),
    );
    assert_eq!(st, 403);
    let mut overwrote = 0;
    for i in 0..400 {
        let path = format!("secret/data/race/{i}");
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                barrier.wait();
                call(
                    &core,
                    "PUT",
                    &path,
                    Some(&root),
                    json!({"data": {"by": "root"}}),
                );
            });
            barrier.wait();
            let (st, v) = call(
                &core,
                "PUT",
                &path,
                Some(&creator),
                json!({"data": {"by": "creator"}}),
            );
            if st == 200 && v["data"]["version"] != json!(1) {
                overwrote += 1;
            }
        });
    }
    assert_eq!(overwrote, 0, "a create-only token overwrote a secret");
}
