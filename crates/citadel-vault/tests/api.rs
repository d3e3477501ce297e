//! The HTTP API served on a loopback port: Vault's status codes
//! and error bodies for every `sys/` endpoint, including the error paths.

use axum::http::{Request, StatusCode};
use citadel_vault::core::Vault;
use citadel_vault::storage::{Memory, Sqlite};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;

/// The real server (`citadel_vault::http::serve`) on a loopback port, and a
/// client sending one HTTP/1.1 request per connection.
struct Api {
    addr: std::net::SocketAddr,
}

impl Api {
    fn new(vault: Arc<Vault>) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        tokio::spawn(citadel_vault::http::serve(
            listener,
            vault,
            std::future::pending(),
        ));
        Api { addr }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, String, Value) {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", self.addr.to_string());
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        let req = req
            .body(http_body_util::Full::new(hyper::body::Bytes::from(
                body.to_string(),
            )))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, ctype, v)
    }
}

fn first_error(v: &Value) -> String {
    v["errors"][0].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn sys_endpoints_speak_vaults_codes_and_shapes() {
    let api = Api::new(Arc::new(Vault::new(Arc::new(Memory::default()), "inmem")));
    // Before init.
    let (s, _, v) = api.call("GET", "/v1/sys/health", None, "").await;
    assert_eq!((s.as_u16(), v["initialized"].clone()), (501, json!(false)));
    let (s, _, _) = api
        .call("GET", "/v1/sys/health?uninitcode=200", None, "")
        .await;
    assert_eq!(s.as_u16(), 200);
    let (s, _, v) = api
        .call("GET", "/v1/sys/health?uninitcode=abc", None, "")
        .await;
    assert_eq!(s.as_u16(), 400, "{v}");
    let (_, _, v) = api.call("GET", "/v1/sys/init", None, "").await;
    assert_eq!(v, json!({"initialized": false}));
    let (s, _, v) = api
        .call("PUT", "/v1/sys/unseal", None, r#"{"key":"00"}"#)
        .await;
    assert_eq!(s.as_u16(), 400, "{v}");

    // Init validation, as Vault words it.
    for (body, want) in [
        (
            r#"{"secret_shares":0,"secret_threshold":0}"#,
            "shares must be at least one",
        ),
        (
            r#"{"secret_shares":3,"secret_threshold":5}"#,
            "threshold cannot be larger than shares",
        ),
        (
            r#"{"secret_shares":3,"secret_threshold":1}"#,
            "threshold must be greater than one",
        ),
        (
            r#"{"secret_shares":300,"secret_threshold":3}"#,
            "must be less than 256",
        ),
        (r#"{"secret_shares":3,"#, "failed to parse JSON input"),
    ] {
        let (s, ctype, v) = api.call("PUT", "/v1/sys/init", None, body).await;
        assert_eq!(s.as_u16(), 400, "{body}");
        assert_eq!(ctype, "application/json", "exactly, for hvac");
        assert!(first_error(&v).contains(want), "{body}: {v}");
    }
    // hvac sends root_token_pgp_key: null.
    let (s, _, init) = api
        .call(
            "PUT",
            "/v1/sys/init",
            None,
            r#"{"secret_shares":5,"secret_threshold":3,"root_token_pgp_key":null}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 200, "{init}");
    let keys: Vec<String> = serde_json::from_value(init["keys"].clone()).unwrap();
    let token = init["root_token"].as_str().unwrap().to_string();
    assert_eq!(keys.len(), 5);
    assert_eq!(keys[0].len(), 66, "33-byte shares, as Vault's");

    // Sealed: data paths 503, health 503, sys still answers.
    let (s, _, v) = api.call("GET", "/v1/secret/data/x", Some(&token), "").await;
    assert_eq!(
        (s.as_u16(), first_error(&v)),
        (503, "Vault is sealed".into())
    );
    let (s, _, _) = api.call("GET", "/v1/sys/health", None, "").await;
    assert_eq!(s.as_u16(), 503);
    let (s, _, _) = api
        .call("HEAD", "/v1/sys/health?sealedcode=299", None, "")
        .await;
    assert_eq!(s.as_u16(), 299);
    let (s, _, v) = api
        .call("PUT", "/v1/sys/unseal", None, r#"{"key":"zz!"}"#)
        .await;
    assert_eq!(s.as_u16(), 400);
    assert!(first_error(&v).contains("hex or base64"));
    let (s, _, v) = api.call("PUT", "/v1/sys/unseal", None, "{}").await;
    assert_eq!(s.as_u16(), 400);
    assert!(first_error(&v).contains("'key' must be specified"));
    let (s, _, _) = api.call("GET", "/v1/sys/unseal", None, "").await;
    assert_eq!(s.as_u16(), 405);

    // Unseal with three keys, one submitted twice (ignored).
    for (i, k) in [&keys[0], &keys[0], &keys[2]].iter().enumerate() {
        let (_, _, v) = api
            .call(
                "PUT",
                "/v1/sys/unseal",
                None,
                &json!({"key": k}).to_string(),
            )
            .await;
        assert_eq!(v["sealed"], json!(true));
        assert_eq!(v["progress"], json!(if i < 2 { 1 } else { 2 }));
        assert_eq!(v["nonce"].as_str().unwrap().len(), 36);
    }
    let (_, _, v) = api
        .call(
            "PUT",
            "/v1/sys/unseal",
            None,
            &json!({"key": keys[4]}).to_string(),
        )
        .await;
    assert_eq!(
        (v["sealed"].clone(), v["progress"].clone()),
        (json!(false), json!(0))
    );
    let (_, _, v) = api
        .call("PUT", "/v1/sys/unseal", None, r#"{"reset":true}"#)
        .await;
    assert_eq!(first_error(&v), "vault is unsealed");

    // Unsealed: unknown paths 404, tokens checked.
    let (s, _, v) = api.call("GET", "/v1/secret/data/x", Some(&token), "").await;
    assert_eq!(s.as_u16(), 404);
    assert!(first_error(&v).contains("no handler for route"));
    let (s, _, v) = api
        .call("GET", "/v1/auth/token/lookup-self", Some("hvs.wrong"), "")
        .await;
    assert_eq!(
        (s.as_u16(), first_error(&v)),
        (403, "permission denied".into())
    );
    let (_, _, v) = api
        .call("GET", "/v1/auth/token/lookup-self", Some(&token), "")
        .await;
    assert_eq!(v["data"]["policies"], json!(["root"]));
    let (s, _, _) = api.call("PUT", "/v1/sys/seal", None, "").await;
    assert_eq!(s.as_u16(), 403, "seal needs the root token");
    let (s, _, _) = api.call("PUT", "/v1/sys/rotate", Some(&token), "").await;
    assert_eq!(s.as_u16(), 204);
    let (s, _, _) = api.call("PUT", "/v1/sys/seal", Some(&token), "").await;
    assert_eq!(s.as_u16(), 204);
    let (_, _, v) = api.call("GET", "/v1/sys/seal-status", None, "").await;
    assert_eq!(
        (v["sealed"].clone(), v["t"].clone(), v["n"].clone()),
        (json!(true), json!(3), json!(5))
    );
}

#[tokio::test]
async fn a_sealed_restart_holds_no_keys_and_storage_holds_no_plaintext() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("vault.db");
    let token;
    let keys: Vec<String>;
    {
        let api = Api::new(Arc::new(Vault::new(
            Arc::new(Sqlite::open(&db).unwrap()),
            "sqlite",
        )));
        let (_, _, init) = api
            .call(
                "PUT",
                "/v1/sys/init",
                None,
                r#"{"secret_shares":3,"secret_threshold":2}"#,
            )
            .await;
        keys = serde_json::from_value(init["keys"].clone()).unwrap();
        token = init["root_token"].as_str().unwrap().to_string();
    }
    // Neither the root token nor any key is in the database file.
    let raw = std::fs::read(&db).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains(&token[4..]));
    for k in &keys {
        assert!(!text.contains(k.as_str()));
    }
    let vault = Arc::new(Vault::new(Arc::new(Sqlite::open(&db).unwrap()), "sqlite"));
    let api = Api::new(vault.clone());
    assert!(vault.is_sealed());
    for k in &keys[1..] {
        api.call(
            "PUT",
            "/v1/sys/unseal",
            None,
            &json!({"key": k}).to_string(),
        )
        .await;
    }
    assert!(!vault.is_sealed());
    assert!(vault.lookup_token(&token).unwrap().is_some());
}

async fn unsealed() -> (Api, String) {
    let vault = Arc::new(Vault::new(Arc::new(Memory::default()), "inmem"));
    let init = vault.init(1, 1).unwrap();
    vault
        .unseal(Some(&hex::encode(&init.keys[0][..])), false)
        .unwrap();
    (Api::new(vault), init.root_token.to_string())
}

#[tokio::test]
async fn kv_v2_versions_cas_delete_undelete_destroy_list() {
    let (api, t) = unsealed().await;
    let t = Some(t.as_str());
    // No mount yet: 404; mounting needs a known engine.
    let (s, _, _) = api.call("GET", "/v1/kv/data/a", t, "").await;
    assert_eq!(s.as_u16(), 404);
    let (s, _, v) = api
        .call("POST", "/v1/sys/mounts/kv", t, r#"{"type":"nosuch"}"#)
        .await;
    assert_eq!(s.as_u16(), 400, "{v}");
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/sys/mounts/kv",
            t,
            r#"{"type":"kv","options":{"version":"2"}}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 204);
    let (s, _, _) = api
        .call("POST", "/v1/sys/mounts/kv/inner", t, r#"{"type":"kv-v2"}"#)
        .await;
    assert_eq!(s.as_u16(), 400, "nested mounts are refused");
    let (_, _, m) = api.call("GET", "/v1/sys/mounts", t, "").await;
    assert_eq!(m["data"]["kv/"]["type"], "kv");

    // Versions and check-and-set.
    let (s, _, v) = api
        .call(
            "POST",
            "/v1/kv/data/app/db",
            t,
            r#"{"options":{},"data":{"password":"one"}}"#,
        )
        .await;
    assert_eq!((s.as_u16(), v["data"]["version"].clone()), (200, json!(1)));
    let (s, _, v) = api
        .call(
            "POST",
            "/v1/kv/data/app/db",
            t,
            r#"{"options":{"cas":0},"data":{"password":"x"}}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 400);
    assert_eq!(
        first_error(&v),
        "check-and-set parameter did not match the current version"
    );
    let (_, _, v) = api
        .call(
            "POST",
            "/v1/kv/data/app/db",
            t,
            r#"{"options":{"cas":1},"data":{"password":"two"}}"#,
        )
        .await;
    assert_eq!(v["data"]["version"], 2);
    let (_, _, v) = api.call("GET", "/v1/kv/data/app/db", t, "").await;
    assert_eq!(v["data"]["data"]["password"], "two");
    assert_eq!(v["data"]["metadata"]["version"], 2);
    let (_, _, v) = api.call("GET", "/v1/kv/data/app/db?version=1", t, "").await;
    assert_eq!(v["data"]["data"]["password"], "one");
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/kv/data/app/db",
            t,
            r#"{"data":"not an object"}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 400);
    let (s, _, _) = api
        .call("POST", "/v1/kv/data/app/db", t, r#"{"data":"#)
        .await;
    assert_eq!(s.as_u16(), 400, "malformed JSON");

    // Soft delete, undelete, destroy.
    let (s, _, _) = api.call("DELETE", "/v1/kv/data/app/db", t, "").await;
    assert_eq!(s.as_u16(), 204);
    let (s, _, v) = api.call("GET", "/v1/kv/data/app/db", t, "").await;
    assert_eq!(s.as_u16(), 404);
    assert_ne!(v["data"]["metadata"]["deletion_time"], "", "{v}");
    api.call("POST", "/v1/kv/undelete/app/db", t, r#"{"versions":[2]}"#)
        .await;
    let (s, _, _) = api.call("GET", "/v1/kv/data/app/db", t, "").await;
    assert_eq!(s.as_u16(), 200);
    api.call("POST", "/v1/kv/destroy/app/db", t, r#"{"versions":[1]}"#)
        .await;
    let (s, _, v) = api.call("GET", "/v1/kv/data/app/db?version=1", t, "").await;
    assert_eq!(
        (s.as_u16(), v["data"]["metadata"]["destroyed"].clone()),
        (404, json!(true))
    );
    api.call("POST", "/v1/kv/undelete/app/db", t, r#"{"versions":[1]}"#)
        .await;
    let (s, _, _) = api.call("GET", "/v1/kv/data/app/db?version=1", t, "").await;
    assert_eq!(s.as_u16(), 404, "destroyed stays destroyed");

    // max_versions keeps the newest; cas_required is enforced.
    api.call(
        "POST",
        "/v1/kv/metadata/app/db",
        t,
        r#"{"max_versions":2,"cas_required":true}"#,
    )
    .await;
    let (s, _, v) = api
        .call("POST", "/v1/kv/data/app/db", t, r#"{"data":{"p":"3"}}"#)
        .await;
    assert_eq!(s.as_u16(), 400);
    assert!(first_error(&v).contains("check-and-set parameter required"));
    api.call(
        "POST",
        "/v1/kv/data/app/db",
        t,
        r#"{"options":{"cas":2},"data":{"p":"3"}}"#,
    )
    .await;
    let (_, _, v) = api.call("GET", "/v1/kv/metadata/app/db", t, "").await;
    assert_eq!(v["data"]["current_version"], 3);
    assert_eq!(v["data"]["oldest_version"], 2);
    assert_eq!(v["data"]["versions"].as_object().unwrap().len(), 2);

    // Listing, with LIST and ?list=true.
    api.call("POST", "/v1/kv/data/app/cache", t, r#"{"data":{"k":"v"}}"#)
        .await;
    api.call("POST", "/v1/kv/data/top", t, r#"{"data":{"k":"v"}}"#)
        .await;
    let (_, _, v) = api.call("LIST", "/v1/kv/metadata/app", t, "").await;
    assert_eq!(v["data"]["keys"], json!(["cache", "db"]));
    let (_, _, v) = api.call("GET", "/v1/kv/metadata/?list=true", t, "").await;
    assert_eq!(v["data"]["keys"], json!(["app/", "top"]));
    let (s, _, _) = api.call("LIST", "/v1/kv/metadata/none", t, "").await;
    assert_eq!(s.as_u16(), 404);

    // Metadata delete removes every version; unmount removes the data.
    api.call("DELETE", "/v1/kv/metadata/app/cache", t, "").await;
    let (s, _, _) = api.call("GET", "/v1/kv/data/app/cache", t, "").await;
    assert_eq!(s.as_u16(), 404);
    // Without the root token: denied by default.
    let (s, _, _) = api
        .call("GET", "/v1/kv/data/top", Some("hvs.nope"), "")
        .await;
    assert_eq!(s.as_u16(), 403);
    let (s, _, _) = api.call("DELETE", "/v1/sys/mounts/kv", t, "").await;
    assert_eq!(s.as_u16(), 204);
    let (s, _, _) = api.call("GET", "/v1/kv/data/top", t, "").await;
    assert_eq!(s.as_u16(), 404);
}

#[tokio::test]
async fn policies_and_tokens_deny_by_default_and_deny_wins() {
    let (api, root) = unsealed().await;
    let r = Some(root.as_str());
    api.call("POST", "/v1/sys/mounts/secret", r, r#"{"type":"kv-v2"}"#)
        .await;
    api.call("POST", "/v1/secret/data/app/db", r, r#"{"data":{"p":"1"}}"#)
        .await;
    api.call(
        "POST",
        "/v1/secret/data/app/locked",
        r,
        r#"{"data":{"p":"2"}}"#,
    )
    .await;
    let policy = r#"
        path "secret/data/app/*" { capabilities = ["read", "update"] }
        path "secret/data/app/locked" { capabilities = ["deny"] }
        path "secret/metadata/app" { capabilities = ["list"] }
    "#;
    let (s, _, v) = api
        .call(
            "PUT",
            "/v1/sys/policy/App",
            r,
            &json!({"policy": policy}).to_string(),
        )
        .await;
    assert_eq!(s.as_u16(), 204, "{v}");
    let (s, _, v) = api
        .call(
            "PUT",
            "/v1/sys/policies/acl/broken",
            r,
            r#"{"policy":"path {"}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 400, "{v}");
    let (s, _, _) = api
        .call(
            "PUT",
            "/v1/sys/policy/root",
            r,
            r#"{"policy":"path \"x\" {}"}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 400);
    let (_, _, v) = api.call("GET", "/v1/sys/policy/app", r, "").await;
    assert!(v["rules"].as_str().unwrap().contains("locked"));
    let (_, _, v) = api.call("LIST", "/v1/sys/policies/acl", r, "").await;
    assert_eq!(v["data"]["keys"], json!(["app", "default", "root"]));

    // A token with the app policy (policies as a comma string, as hvac sends).
    let (s, _, v) = api
        .call(
            "POST",
            "/v1/auth/token/create",
            r,
            r#"{"policies":"app","ttl":"1h"}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 200, "{v}");
    let app = v["auth"]["client_token"].as_str().unwrap().to_string();
    let accessor = v["auth"]["accessor"].as_str().unwrap().to_string();
    assert_eq!(v["auth"]["policies"], json!(["app", "default"]));
    assert!(v["auth"]["lease_duration"].as_u64().unwrap() > 3500);
    let a = Some(app.as_str());
    let (s, _, v) = api.call("GET", "/v1/secret/data/app/db", a, "").await;
    assert_eq!(
        (s.as_u16(), v["data"]["data"]["p"].clone()),
        (200, json!("1"))
    );
    let (s, _, _) = api.call("GET", "/v1/secret/data/app/locked", a, "").await;
    assert_eq!(s.as_u16(), 403, "deny over a matching allow");
    let (s, _, _) = api
        .call("POST", "/v1/secret/data/app/db", a, r#"{"data":{"p":"3"}}"#)
        .await;
    assert_eq!(s.as_u16(), 200, "update granted");
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/secret/data/app/new",
            a,
            r#"{"data":{"p":"4"}}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 403, "create not granted");
    let (s, _, _) = api.call("LIST", "/v1/secret/metadata/app", a, "").await;
    assert_eq!(s.as_u16(), 200);
    let (s, _, _) = api.call("GET", "/v1/sys/mounts", a, "").await;
    assert_eq!(s.as_u16(), 403, "deny by default");
    let (s, _, _) = api.call("PUT", "/v1/sys/seal", a, "").await;
    assert_eq!(s.as_u16(), 403);
    let (s, _, v) = api.call("GET", "/v1/auth/token/lookup-self", a, "").await;
    assert_eq!(
        (s.as_u16(), v["data"]["accessor"].clone()),
        (200, json!(accessor)),
        "the default policy"
    );

    // Children: subset of the parent's policies, revoked with it.
    let (s, _, v) = api
        .call(
            "POST",
            "/v1/auth/token/create",
            a,
            r#"{"policies":["admin"]}"#,
        )
        .await;
    assert_eq!(
        s.as_u16(),
        403,
        "the app policy does not grant token creation: {v}"
    );
    let (_, _, v) = api
        .call(
            "POST",
            "/v1/auth/token/create",
            r,
            r#"{"policies":["app"],"num_uses":2}"#,
        )
        .await;
    let limited = v["auth"]["client_token"].as_str().unwrap().to_string();
    for expect in [200, 200, 403] {
        let (s, _, _) = api
            .call("GET", "/v1/secret/data/app/db", Some(&limited), "")
            .await;
        assert_eq!(s.as_u16(), expect, "num_uses");
    }
    let (_, _, v) = api.call("POST", "/v1/sys/policy/tokens", r, &json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }\npath \"secret/data/app/*\" { capabilities = [\"read\"] }"}).to_string()).await;
    assert!(v.is_null(), "{v}");
    let (_, _, v) = api
        .call(
            "POST",
            "/v1/auth/token/create",
            r,
            r#"{"policies":["tokens"]}"#,
        )
        .await;
    let parent = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (s, _, v) = api
        .call(
            "POST",
            "/v1/auth/token/create",
            Some(&parent),
            r#"{"policies":["app"]}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 400, "not a subset: {v}");
    let (_, _, v) = api
        .call(
            "POST",
            "/v1/auth/token/create",
            Some(&parent),
            r#"{"policies":["tokens"]}"#,
        )
        .await;
    let child = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (s, _, _) = api
        .call("GET", "/v1/secret/data/app/db", Some(&child), "")
        .await;
    assert_eq!(s.as_u16(), 200);
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/auth/token/revoke",
            r,
            &json!({"token": parent}).to_string(),
        )
        .await;
    assert_eq!(s.as_u16(), 204);
    let (s, _, _) = api
        .call("GET", "/v1/secret/data/app/db", Some(&child), "")
        .await;
    assert_eq!(s.as_u16(), 403, "the child went with its parent");

    // Accessors, and revoke-self.
    let (s, _, v) = api
        .call(
            "POST",
            "/v1/auth/token/lookup-accessor",
            r,
            &json!({"accessor": accessor}).to_string(),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["data"]["policies"].clone()),
        (200, json!(["app", "default"]))
    );
    let (s, _, _) = api.call("POST", "/v1/auth/token/revoke-self", a, "").await;
    assert_eq!(s.as_u16(), 204);
    let (s, _, _) = api.call("GET", "/v1/secret/data/app/db", a, "").await;
    assert_eq!(s.as_u16(), 403);

    // A TTL runs out.
    let (_, _, v) = api
        .call(
            "POST",
            "/v1/auth/token/create",
            r,
            r#"{"policies":["app"],"ttl":"1s"}"#,
        )
        .await;
    let short = v["auth"]["client_token"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (s, _, _) = api
        .call("GET", "/v1/secret/data/app/db", Some(&short), "")
        .await;
    assert_eq!(s.as_u16(), 403, "expired");
}

#[tokio::test]
async fn transit_encrypt_rotate_rewrap_min_version_and_pq_signatures() {
    use base64::Engine;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let (api, root) = unsealed().await;
    let r = Some(root.as_str());
    let (s, _, _) = api
        .call("POST", "/v1/sys/mounts/transit", r, r#"{"type":"transit"}"#)
        .await;
    assert_eq!(s.as_u16(), 204);
    let (s, _, v) = api
        .call(
            "POST",
            "/v1/transit/keys/orders",
            r,
            r#"{"type":"aes256-gcm96"}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 200, "{v}");
    let pt = b64(b"card 4111");
    let (_, _, v) = api
        .call(
            "POST",
            "/v1/transit/encrypt/orders",
            r,
            &json!({"plaintext": pt}).to_string(),
        )
        .await;
    let c1 = v["data"]["ciphertext"].as_str().unwrap().to_string();
    assert!(c1.starts_with("vault:v1:"), "{c1}");
    let (_, _, v) = api
        .call(
            "POST",
            "/v1/transit/decrypt/orders",
            r,
            &json!({"ciphertext": c1}).to_string(),
        )
        .await;
    assert_eq!(v["data"]["plaintext"], json!(pt));
    // Rotate; new ciphertexts use v2, old ones still decrypt; rewrap moves them.
    api.call("POST", "/v1/transit/keys/orders/rotate", r, "")
        .await;
    let (_, _, v) = api
        .call(
            "POST",
            "/v1/transit/encrypt/orders",
            r,
            &json!({"plaintext": pt}).to_string(),
        )
        .await;
    assert!(
        v["data"]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("vault:v2:")
    );
    let (_, _, v) = api
        .call(
            "POST",
            "/v1/transit/rewrap/orders",
            r,
            &json!({"ciphertext": c1}).to_string(),
        )
        .await;
    let c2 = v["data"]["ciphertext"].as_str().unwrap().to_string();
    assert!(c2.starts_with("vault:v2:"));
    // Below min_decryption_version: refused.
    let (s, _, cfg) = api
        .call(
            "POST",
            "/v1/transit/keys/orders/config",
            r,
            r#"{"min_decryption_version":2}"#,
        )
        .await;
    // As OpenBao: 200 with the key, whose listing hides retired versions.
    assert_eq!(s.as_u16(), 200);
    let shown: Vec<&String> = cfg["data"]["keys"].as_object().unwrap().keys().collect();
    assert_eq!(shown, ["2"], "{cfg}");
    let (s, _, v) = api
        .call(
            "POST",
            "/v1/transit/decrypt/orders",
            r,
            &json!({"ciphertext": c1}).to_string(),
        )
        .await;
    assert_eq!(s.as_u16(), 400);
    assert!(first_error(&v).contains("disallowed by policy"), "{v}");
    let (_, _, v) = api
        .call(
            "POST",
            "/v1/transit/decrypt/orders",
            r,
            &json!({"ciphertext": c2}).to_string(),
        )
        .await;
    assert_eq!(v["data"]["plaintext"], json!(pt));
    // A tampered ciphertext fails; batches report per item.
    let mut bad = c2.clone();
    bad.replace_range(12..13, if &c2[12..13] == "A" { "B" } else { "A" });
    let (_, _, v) = api
        .call(
            "POST",
            "/v1/transit/decrypt/orders",
            r,
            &json!({"batch_input": [{"ciphertext": c2}, {"ciphertext": bad}]}).to_string(),
        )
        .await;
    assert_eq!(v["data"]["batch_results"][0]["plaintext"], json!(pt));
    assert!(v["data"]["batch_results"][1]["error"].is_string(), "{v}");
    // Deletion needs deletion_allowed.
    let (s, _, _) = api.call("DELETE", "/v1/transit/keys/orders", r, "").await;
    assert_eq!(s.as_u16(), 400);
    api.call(
        "POST",
        "/v1/transit/keys/orders/config",
        r,
        r#"{"deletion_allowed":true}"#,
    )
    .await;
    let (s, _, _) = api.call("DELETE", "/v1/transit/keys/orders", r, "").await;
    assert_eq!(s.as_u16(), 204);

    // Post-quantum signatures, which Vault lacks.
    for kind in ["ml-dsa-65", "ed25519", "slh-dsa-sha2-128f"] {
        let (s, _, v) = api
            .call(
                "POST",
                &format!("/v1/transit/keys/s-{kind}"),
                r,
                &json!({"type": kind}).to_string(),
            )
            .await;
        assert_eq!(s.as_u16(), 200, "{kind}: {v}");
        assert!(v["data"]["keys"]["1"]["public_key"].is_string());
        let input = b64(b"release v1.2.3");
        let (_, _, v) = api
            .call(
                "POST",
                &format!("/v1/transit/sign/s-{kind}"),
                r,
                &json!({"input": input}).to_string(),
            )
            .await;
        let sig = v["data"]["signature"].as_str().unwrap().to_string();
        assert!(sig.starts_with("vault:v1:"), "{kind}");
        let (_, _, v) = api
            .call(
                "POST",
                &format!("/v1/transit/verify/s-{kind}"),
                r,
                &json!({"input": input, "signature": sig}).to_string(),
            )
            .await;
        assert_eq!(v["data"]["valid"], json!(true), "{kind}");
        let (_, _, v) = api
            .call(
                "POST",
                &format!("/v1/transit/verify/s-{kind}"),
                r,
                &json!({"input": b64(b"release v6.6.6"), "signature": sig}).to_string(),
            )
            .await;
        assert_eq!(v["data"]["valid"], json!(false), "{kind}");
    }
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/transit/encrypt/s-ml-dsa-65",
            r,
            &json!({"plaintext": pt}).to_string(),
        )
        .await;
    assert_eq!(s.as_u16(), 400, "a signing key does not encrypt");
    let (s, _, _) = api
        .call("POST", "/v1/transit/keys/x", r, r#"{"type":"rsa-4096"}"#)
        .await;
    assert_eq!(s.as_u16(), 400);
    let (_, _, v) = api.call("LIST", "/v1/transit/keys", r, "").await;
    assert_eq!(v["data"]["keys"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn every_request_is_audited_without_secrets_and_a_broken_device_fails_closed() {
    let d = tempfile::tempdir().unwrap();
    let vault = Arc::new(Vault::new(Arc::new(Memory::default()), "inmem"));
    let init = vault.init(1, 1).unwrap();
    let key = hex::encode(&init.keys[0][..]);
    vault.unseal(Some(&key), false).unwrap();
    let root = init.root_token.to_string();
    let r = Some(root.as_str());
    let api = Api::new(vault.clone());
    let log = d.path().join("audit");
    let (s, _, v) = api
        .call(
            "PUT",
            "/v1/sys/audit/file",
            r,
            &json!({"type": "file", "options": {"file_path": log}}).to_string(),
        )
        .await;
    assert_eq!(s.as_u16(), 204, "{v}");
    let (_, _, v) = api.call("GET", "/v1/sys/audit", r, "").await;
    assert_eq!(v["data"]["file/"]["type"], "file");
    api.call("POST", "/v1/sys/mounts/secret", r, r#"{"type":"kv-v2"}"#)
        .await;
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/secret/data/db",
            r,
            r#"{"data":{"password":"hunter2-plaintext"}}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 200);
    api.call("GET", "/v1/secret/data/db", Some("hvs.intruder-token"), "")
        .await;

    // (`http::serve` commits the devices every few milliseconds.)
    vault.audit.commit().unwrap();
    // The log verifies, holds request and response entries, and neither
    // the token nor the secret in clear.
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
    // The operator can find a token's requests with the log's HMAC key.
    let mut l =
        citadel_audit::AuditLog::open(&log, citadel_audit::Durability::EveryAppend).unwrap();
    let k = l.hmac_key().unwrap();
    let want = citadel_audit::entry::hmac_value(&k, &json!(root));
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
    drop(l);

    // Seal, break the device, unseal: requests fail closed.
    vault.seal();
    std::fs::remove_dir_all(&log).unwrap();
    std::fs::write(&log, b"not a directory").unwrap();
    vault.unseal(Some(&key), false).unwrap();
    let (s, _, v) = api.call("GET", "/v1/secret/data/db", r, "").await;
    assert_eq!(s.as_u16(), 500, "{v}");
    assert!(first_error(&v).contains("audit device"), "{v}");
    // Fail closed means even disabling the device is refused: the operator
    // repairs it (here: the directory) and the vault serves again.
    let (s, _, _) = api.call("DELETE", "/v1/sys/audit/file", r, "").await;
    assert_eq!(
        s.as_u16(),
        500,
        "even this is refused while the device is broken"
    );
}

#[tokio::test]
async fn approle_and_userpass_logins_with_lockout() {
    let (api, root) = unsealed().await;
    let r = Some(root.as_str());
    api.call(
        "PUT",
        "/v1/sys/policy/reader",
        r,
        r#"{"policy":"path \"secret/*\" { capabilities = [\"read\"] }"}"#,
    )
    .await;
    let (s, _, _) = api
        .call("POST", "/v1/sys/auth/approle", r, r#"{"type":"approle"}"#)
        .await;
    assert_eq!(s.as_u16(), 204);
    let (s, _, _) = api
        .call("POST", "/v1/sys/auth/nope", r, r#"{"type":"ldap"}"#)
        .await;
    assert_eq!(s.as_u16(), 400);
    let (s, _, v) = api
        .call(
            "POST",
            "/v1/auth/approle/role/ci",
            r,
            r#"{"token_policies":"reader","secret_id_num_uses":1,"token_ttl":"1h"}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 204, "{v}");
    let (_, _, v) = api
        .call("GET", "/v1/auth/approle/role/ci/role-id", r, "")
        .await;
    let role_id = v["data"]["role_id"].as_str().unwrap().to_string();
    let (_, _, v) = api
        .call("POST", "/v1/auth/approle/role/ci/secret-id", r, "{}")
        .await;
    let secret_id = v["data"]["secret_id"].as_str().unwrap().to_string();
    let login = json!({"role_id": role_id, "secret_id": secret_id}).to_string();
    let (s, _, v) = api
        .call("POST", "/v1/auth/approle/login", None, &login)
        .await;
    assert_eq!(s.as_u16(), 200, "{v}");
    assert_eq!(v["auth"]["policies"], json!(["default", "reader"]));
    let tok = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (s, _, _) = api.call("GET", "/v1/sys/mounts", Some(&tok), "").await;
    assert_eq!(s.as_u16(), 403);
    let (s, _, v) = api
        .call("POST", "/v1/auth/approle/login", None, &login)
        .await;
    assert_eq!(s.as_u16(), 400, "a one-use secret id is spent: {v}");
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/auth/approle/login",
            None,
            &json!({"role_id": role_id, "secret_id": "guess"}).to_string(),
        )
        .await;
    assert_eq!(s.as_u16(), 400);
    let (s, _, _) = api
        .call("GET", "/v1/auth/approle/role/ci/role-id", Some(&tok), "")
        .await;
    assert_eq!(s.as_u16(), 403, "role admin needs a grant");

    // userpass with argon2id and lockout.
    api.call("POST", "/v1/sys/auth/userpass", r, r#"{"type":"userpass"}"#)
        .await;
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/auth/userpass/users/alice",
            r,
            r#"{"password":"correct horse","token_policies":["reader"]}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 204);
    let (s, _, v) = api
        .call(
            "POST",
            "/v1/auth/userpass/login/alice",
            None,
            r#"{"password":"correct horse"}"#,
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["auth"]["metadata"]["username"].clone()),
        (200, json!("alice"))
    );
    let (_, _, v) = api
        .call("GET", "/v1/auth/userpass/users/alice", r, "")
        .await;
    assert!(v["data"].get("password").is_none() && !v.to_string().contains("horse"));
    for _ in 0..5 {
        let (s, _, _) = api
            .call(
                "POST",
                "/v1/auth/userpass/login/alice",
                None,
                r#"{"password":"wrong"}"#,
            )
            .await;
        assert_eq!(s.as_u16(), 400);
    }
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/auth/userpass/login/alice",
            None,
            r#"{"password":"correct horse"}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 403, "locked out after five failures");
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/auth/userpass/login/bob",
            None,
            r#"{"password":"x"}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 400, "unknown users fail like wrong passwords");
    let (_, _, v) = api.call("LIST", "/v1/auth/userpass/users", r, "").await;
    assert_eq!(v["data"]["keys"], json!(["alice"]));
    let (_, _, v) = api.call("GET", "/v1/sys/auth", r, "").await;
    assert_eq!(v["data"]["approle/"]["type"], "approle");
}

#[tokio::test]
async fn transit_datakey_hmac_hash_random_ecdsa_and_hybrid() {
    use base64::Engine;
    let std64 = base64::engine::general_purpose::STANDARD;
    let b64 = |s: &[u8]| std64.encode(s);
    let (api, root) = unsealed().await;
    let r = Some(root.as_str());
    api.call("POST", "/v1/sys/mounts/transit", r, r#"{"type":"transit"}"#)
        .await;
    let post = |path: &'static str, body: Value| {
        let api = &api;
        async move { api.call("POST", path, r, &body.to_string()).await }
    };

    // hash: Vault's algorithm names, hex by default, base64 on request.
    let (s, _, v) = post("/v1/transit/hash", json!({"input": b64(b"abc")})).await;
    assert_eq!(s.as_u16(), 200, "{v}");
    assert_eq!(
        v["data"]["sum"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let (_, _, v) = post(
        "/v1/transit/hash/sha3-224",
        json!({"input": b64(b"abc"), "format": "base64"}),
    )
    .await;
    let want = hex::decode("e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf").unwrap();
    assert_eq!(v["data"]["sum"], b64(&want));
    let (s, _, v) = post("/v1/transit/hash/md5", json!({"input": ""})).await;
    assert_eq!(s.as_u16(), 400, "{v}");

    // random: length from the path or body, hex or base64, bounded.
    let (_, _, v) = post("/v1/transit/random/24", json!({"format": "hex"})).await;
    assert_eq!(v["data"]["random_bytes"].as_str().unwrap().len(), 48);
    let (_, _, v) = post("/v1/transit/random/platform", json!({"bytes": 16})).await;
    let bytes = std64
        .decode(v["data"]["random_bytes"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes.len(), 16);
    let (s, _, _) = post("/v1/transit/random", json!({"bytes": 200_000})).await;
    assert_eq!(s.as_u16(), 400);

    // datakey: plaintext and wrapped; the wrapped key decrypts to the plaintext.
    post("/v1/transit/keys/dk", json!({})).await;
    let (s, _, v) = post("/v1/transit/datakey/plaintext/dk", json!({"bits": 512})).await;
    assert_eq!(s.as_u16(), 200, "{v}");
    let plain = v["data"]["plaintext"].as_str().unwrap().to_string();
    assert_eq!(std64.decode(&plain).unwrap().len(), 64);
    let (_, _, d) = post(
        "/v1/transit/decrypt/dk",
        json!({"ciphertext": v["data"]["ciphertext"]}),
    )
    .await;
    assert_eq!(d["data"]["plaintext"], plain);
    let (_, _, v) = post("/v1/transit/datakey/wrapped/dk", json!({})).await;
    assert!(v["data"].get("plaintext").is_none(), "{v}");
    assert!(
        v["data"]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("vault:v1:")
    );
    let (s, _, _) = post("/v1/transit/datakey/plaintext/dk", json!({"bits": 100})).await;
    assert_eq!(s.as_u16(), 400);
    let (s, _, _) = post("/v1/transit/datakey/secret/dk", json!({})).await;
    assert_eq!(s.as_u16(), 400);

    // hmac: per-version keys; verify accepts it and rejects other input,
    // rotation keeps old tags valid, min_decryption_version retires them.
    let (_, _, v) = post("/v1/transit/hmac/dk", json!({"input": b64(b"msg")})).await;
    let tag = v["data"]["hmac"].as_str().unwrap().to_string();
    assert!(tag.starts_with("vault:v1:"), "{tag}");
    let (_, _, v) = post(
        "/v1/transit/hmac/dk/sha2-512",
        json!({"input": b64(b"msg")}),
    )
    .await;
    let tag512 = v["data"]["hmac"].as_str().unwrap().to_string();
    assert_eq!(std64.decode(&tag512[9..]).unwrap().len(), 64);
    for (input, t, alg, want) in [
        (b"msg".as_slice(), &tag, "sha2-256", true),
        (b"msh", &tag, "sha2-256", false),
        (b"msg", &tag512, "sha2-512", true),
        (b"msg", &tag512, "sha2-256", false),
    ] {
        let (s, _, v) = post(
            "/v1/transit/verify/dk",
            json!({"input": b64(input), "hmac": t, "algorithm": alg}),
        )
        .await;
        assert_eq!(
            (s.as_u16(), v["data"]["valid"].clone()),
            (200, json!(want)),
            "{v}"
        );
    }
    post("/v1/transit/keys/dk/rotate", json!({})).await;
    let (_, _, v) = post(
        "/v1/transit/verify/dk",
        json!({"input": b64(b"msg"), "hmac": tag}),
    )
    .await;
    assert_eq!(v["data"]["valid"], true);
    post(
        "/v1/transit/keys/dk/config",
        json!({"min_decryption_version": 2}),
    )
    .await;
    let (s, _, v) = post(
        "/v1/transit/verify/dk",
        json!({"input": b64(b"msg"), "hmac": tag}),
    )
    .await;
    assert_eq!(s.as_u16(), 400, "{v}");
    let (s, _, _) = post(
        "/v1/transit/hmac/dk/sha3-256",
        json!({"input": b64(b"msg")}),
    )
    .await;
    assert_eq!(s.as_u16(), 400);

    // ecdsa-p256: PEM public key, ASN.1 and JWS signatures, as Vault.
    let (s, _, v) = post("/v1/transit/keys/ec", json!({"type": "ecdsa-p256"})).await;
    assert_eq!(s.as_u16(), 200, "{v}");
    assert_eq!(v["data"]["keys"]["1"]["name"], "P-256");
    assert!(
        v["data"]["keys"]["1"]["public_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    assert_eq!(v["data"]["supports_signing"], true);
    for marshaling in ["asn1", "jws"] {
        let (s, _, v) = post(
            "/v1/transit/sign/ec/sha2-256",
            json!({"input": b64(b"release"), "marshaling_algorithm": marshaling}),
        )
        .await;
        assert_eq!(s.as_u16(), 200, "{v}");
        let sig = v["data"]["signature"].as_str().unwrap().to_string();
        for (input, want) in [(b"release".as_slice(), true), (b"relaese", false)] {
            let (_, _, v) = post(
                "/v1/transit/verify/ec",
                json!({"input": b64(input), "signature": sig, "marshaling_algorithm": marshaling}),
            )
            .await;
            assert_eq!(v["data"]["valid"], json!(want), "{marshaling} {v}");
        }
    }
    let (s, _, v) = post("/v1/transit/sign/ec/sha2-512", json!({"input": b64(b"x")})).await;
    assert_eq!(s.as_u16(), 400);
    assert!(first_error(&v).contains("sha2-256"), "{v}");
    let (s, _, _) = post("/v1/transit/encrypt/ec", json!({"plaintext": b64(b"x")})).await;
    assert_eq!(s.as_u16(), 400);

    // mlkem768-x25519: encrypt/decrypt with associated data, rotate, rewrap,
    // datakey; and a ciphertext made offline from the published public key
    // (the documented format) decrypts.
    let (s, _, v) = post("/v1/transit/keys/pq", json!({"type": "mlkem768-x25519"})).await;
    assert_eq!(s.as_u16(), 200, "{v}");
    assert_eq!(v["data"]["supports_encryption"], true);
    let pk = std64
        .decode(v["data"]["keys"]["1"]["public_key"].as_str().unwrap())
        .unwrap();
    let aad = b64(b"tenant-7");
    let (_, _, v) = post(
        "/v1/transit/encrypt/pq",
        json!({"plaintext": b64(b"quantum-safe"), "associated_data": aad}),
    )
    .await;
    let ct = v["data"]["ciphertext"].as_str().unwrap().to_string();
    assert!(ct.starts_with("vault:v1:"));
    let (_, _, v) = post(
        "/v1/transit/decrypt/pq",
        json!({"ciphertext": ct, "associated_data": aad}),
    )
    .await;
    assert_eq!(v["data"]["plaintext"], b64(b"quantum-safe"));
    let (s, _, v) = post(
        "/v1/transit/decrypt/pq",
        json!({"ciphertext": ct, "associated_data": b64(b"tenant-8")}),
    )
    .await;
    assert_eq!(s.as_u16(), 400, "{v}");
    post("/v1/transit/keys/pq/rotate", json!({})).await;
    let (_, _, v) = post(
        "/v1/transit/rewrap/pq",
        json!({"ciphertext": ct, "associated_data": aad}),
    )
    .await;
    let ct2 = v["data"]["ciphertext"].as_str().unwrap().to_string();
    assert!(ct2.starts_with("vault:v2:"), "{v}");
    let (_, _, v) = post(
        "/v1/transit/decrypt/pq",
        json!({"ciphertext": ct2, "associated_data": aad}),
    )
    .await;
    assert_eq!(v["data"]["plaintext"], b64(b"quantum-safe"));
    let (_, _, v) = post("/v1/transit/datakey/plaintext/pq", json!({})).await;
    let (_, _, d) = post(
        "/v1/transit/decrypt/pq",
        json!({"ciphertext": v["data"]["ciphertext"]}),
    )
    .await;
    assert_eq!(d["data"]["plaintext"], v["data"]["plaintext"]);

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
    let (s, _, v) = post(
        "/v1/transit/decrypt/pq",
        json!({"ciphertext": format!("vault:v1:{}", b64(&blob))}),
    )
    .await;
    assert_eq!(s.as_u16(), 200, "{v}");
    assert_eq!(v["data"]["plaintext"], b64(b"made offline"));

    // Options citadel does not support are refused, not ignored.
    let (s, _, v) = post("/v1/transit/keys/drv", json!({"derived": true})).await;
    assert_eq!(s.as_u16(), 400);
    assert!(first_error(&v).contains("derived"), "{v}");
    // Symmetric key versions read as Unix times, as in Vault.
    let (_, _, v) = api.call("GET", "/v1/transit/keys/dk", r, "").await;
    assert!(
        v["data"]["keys"]["2"].as_i64().unwrap() > 1_700_000_000,
        "{v}"
    );
}

#[tokio::test]
async fn review_fixes_batch_errors_ttl_caps_preflight_and_concurrent_cas() {
    use base64::Engine;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let (api, root) = unsealed().await;
    let r = Some(root.as_str());
    api.call("POST", "/v1/sys/mounts/transit", r, r#"{"type":"transit"}"#)
        .await;
    api.call(
        "POST",
        "/v1/sys/mounts/secret",
        r,
        r#"{"type":"kv","options":{"version":"2"}}"#,
    )
    .await;
    api.call("POST", "/v1/transit/keys/k", r, "{}").await;

    // A batch with a failed item answers 400 (hvac raises), or the
    // requested partial-failure code when some items succeeded.
    let body = json!({"batch_input": [{"plaintext": b64(b"a")}, {"plaintext": "!!"}]});
    let (s, _, v) = api
        .call("POST", "/v1/transit/encrypt/k", r, &body.to_string())
        .await;
    assert_eq!(s.as_u16(), 400, "{v}");
    let results = v["data"]["batch_results"].as_array().unwrap();
    assert!(results[0]["ciphertext"].is_string() && results[1]["error"].is_string());
    let mut body = body;
    body["partial_failure_response_code"] = json!(207);
    let (s, _, _) = api
        .call("POST", "/v1/transit/encrypt/k", r, &body.to_string())
        .await;
    assert_eq!(s.as_u16(), 207);

    // TTLs are capped at 768h, also on renewal; huge numbers do not overflow.
    let (s, _, v) = api
        .call(
            "POST",
            "/v1/auth/token/create",
            r,
            r#"{"policies":["default"],"ttl":18446744073709551615}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 200, "{v}");
    assert!(
        v["auth"]["lease_duration"].as_u64().unwrap() <= 768 * 3600,
        "{v}"
    );
    let t = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (s, _, v) = api
        .call(
            "POST",
            "/v1/auth/token/renew-self",
            Some(&t),
            r#"{"increment":"87600h"}"#,
        )
        .await;
    assert_eq!(s.as_u16(), 200, "{v}");
    assert!(
        v["auth"]["lease_duration"].as_u64().unwrap() <= 768 * 3600,
        "{v}"
    );

    // sys/internal/ui/mounts: 403 alike for a missing mount and for one the
    // token's policies do not reach; 200 when they do.
    let preflight = |path: &'static str, tok: String| {
        let api = &api;
        async move {
            api.call(
                "GET",
                &format!("/v1/sys/internal/ui/mounts/{path}"),
                Some(&tok),
                "",
            )
            .await
        }
    };
    assert_eq!(preflight("nothing/x", t.clone()).await.0.as_u16(), 403);
    assert_eq!(preflight("secret/app", t.clone()).await.0.as_u16(), 403);
    api.call(
        "PUT",
        "/v1/sys/policies/acl/app",
        r,
        r#"{"policy":"path \"secret/data/app/*\" { capabilities = [\"read\"] }"}"#,
    )
    .await;
    let (_, _, v) = api
        .call(
            "POST",
            "/v1/auth/token/create",
            r,
            r#"{"policies":["app"]}"#,
        )
        .await;
    let app = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (s, _, v) = preflight("secret/app", app.clone()).await;
    assert_eq!(
        (s.as_u16(), v["data"]["path"].clone()),
        (200, json!("secret/"))
    );
    assert_eq!(preflight("transit/x", app).await.0.as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_check_and_set_writes_let_exactly_one_win() {
    let (api, root) = unsealed().await;
    let api = Arc::new(api);
    let r = Some(root.as_str());
    api.call(
        "POST",
        "/v1/sys/mounts/secret",
        r,
        r#"{"type":"kv","options":{"version":"2"}}"#,
    )
    .await;
    for round in 0..20u64 {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let api = api.clone();
            let root = root.clone();
            tasks.push(tokio::spawn(async move {
                let body = json!({"data": {"writer": i}, "options": {"cas": round}});
                api.call(
                    "POST",
                    "/v1/secret/data/race",
                    Some(&root),
                    &body.to_string(),
                )
                .await
                .0
                .as_u16()
            }));
        }
        let mut won = 0;
        for t in tasks {
            if t.await.unwrap() == 200 {
                won += 1;
            }
        }
        assert_eq!(won, 1, "round {round}: {won} writers passed the same cas");
    }
    let (_, _, v) = api.call("GET", "/v1/secret/metadata/race", r, "").await;
    assert_eq!(v["data"]["current_version"], 20);
}
