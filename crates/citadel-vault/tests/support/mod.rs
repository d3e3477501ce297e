//! Shared by the vault's integration tests: a development core in memory,
//! a one-line request helper, and the real HTTP server on a loopback port.
#![allow(dead_code)]

use citadel_vault::core::{Config, Core};
use citadel_vault::request::{Operation, Request};
use citadel_vault::storage::Memory;
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;

/// An unsealed in-memory core with KV v2 at `secret/`, and its root token.
pub fn dev() -> (Arc<Core>, String) {
    let core = Arc::new(Core::new(
        Arc::new(Memory::default()),
        "inmem",
        Config::default(),
    ));
    let (_, root) = core.init_dev().unwrap();
    (core, root.to_string())
}

/// A core (sealed, or not yet initialised) on the SQLite file `db`.
pub fn sqlite_core(db: &std::path::Path, config: Config) -> Core {
    Core::new(
        Arc::new(citadel_vault::storage::Sqlite::open(db).unwrap()),
        "sqlite",
        config,
    )
}

/// A core on `db` that treats storage that fails its checks as `on_tamper`
/// says.
pub fn sqlite_core_on(db: &std::path::Path, on_tamper: citadel_vault::barrier::OnTamper) -> Core {
    sqlite_core(
        db,
        Config {
            on_tamper,
            ..Config::default()
        },
    )
}

/// Enables a citadel audit device logging to the directory `dir`.
pub fn enable_audit(core: &Core, root: &str, dir: &std::path::Path) {
    let (s, v) = call(
        core,
        "PUT",
        "sys/audit/citadel",
        Some(root),
        serde_json::json!({"type": "citadel", "options": {"file_path": dir}}),
    );
    assert_eq!(s, 204, "{v}");
}

/// One request through `Core::handle`: the status and the JSON body
/// (`null` for none). `body` null means no body.
pub fn call(
    core: &Core,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let op = match method {
        "GET" => Operation::Read,
        "LIST" => Operation::List,
        "PUT" | "POST" => Operation::Update,
        "DELETE" => Operation::Delete,
        "PATCH" => Operation::Patch,
        other => panic!("{other}"),
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut req = Request::new(op, path).query(query);
    if let Some(t) = token {
        req = req.token(t);
    }
    if !body.is_null() {
        req = req.json(&body);
    }
    let r = core.handle(req);
    (r.status, r.json_body().unwrap_or(Value::Null))
}

/// The real server (`citadel_vault::http::serve`) on a loopback port, and
/// a client sending one HTTP/1.1 request per connection.
#[derive(Clone)]
pub struct Api {
    pub addr: std::net::SocketAddr,
    pub root: String,
    pub core: Arc<Core>,
}

impl Api {
    pub async fn start(opts: citadel_vault::http::ServeOptions) -> Self {
        let (core, root) = dev();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(citadel_vault::http::serve(
            listener,
            core.clone(),
            opts,
            std::future::pending(),
        ));
        Api { addr, root, core }
    }

    /// Sends one request; returns the status and the body as JSON (or as a
    /// JSON string when it is not JSON, `null` when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let (s, _, v) = self.call_full(method, path, token, body, &[]).await;
        (s, v)
    }

    /// [`Api::call`] with extra headers; also returns the response headers.
    pub async fn call_full(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (u16, hyper::HeaderMap, Value) {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("Host", self.addr.to_string());
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(http_body_util::Full::new(hyper::body::Bytes::from(
                body.to_string(),
            )))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, h, v)
    }

    /// Polls `sys/metrics` until its text holds `line`.
    pub async fn wait_for_metric(&self, line: &str) {
        for _ in 0..600 {
            let (_, v) = self
                .call(
                    "GET",
                    "/v1/sys/metrics?format=prometheus",
                    Some(&self.root),
                    "",
                )
                .await;
            if v.as_str().is_some_and(|t| t.contains(line)) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the metrics never showed {line:?}");
    }
}
