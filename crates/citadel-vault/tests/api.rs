//! The HTTP API in process (axum router, no socket): Vault's status codes
//! and error bodies for every `sys/` endpoint, including the error paths.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use citadel_vault::core::Vault;
use citadel_vault::http::router;
use citadel_vault::storage::{Memory, Sqlite};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

struct Api(axum::Router);

impl Api {
    fn new(vault: Arc<Vault>) -> Self {
        Api(router(vault))
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, String, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        let resp = self
            .0
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
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
