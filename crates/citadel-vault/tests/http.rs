//! What is HTTP and only HTTP: methods, headers, content types, limits and
//! redirects, on the real server on a loopback port. What requests *mean*
//! is tested on the core (tables.rs, findings.rs, core_behaviour.rs).

mod support;

use serde_json::json;
use support::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vaults_http_conventions() {
    let api = Api::start(Default::default()).await;
    let root = api.root.clone();
    // JSON errors with exactly `application/json` (hvac needs it) and no
    // caching.
    let (s, h, v) = api
        .call_full("PUT", "/v1/sys/init", None, r#"{"secret_shares":3,"#, &[])
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["cache-control"], "no-store");
    // HEAD answers health with its status and no body.
    let (s, _, v) = api
        .call_full("HEAD", "/v1/sys/health?activecode=299", None, "", &[])
        .await;
    assert_eq!((s, v), (299, serde_json::Value::Null));
    // Unknown methods: 405 with `{"errors": []}`.
    let (s, _, v) = api
        .call_full("TRACE", "/v1/sys/health", None, "", &[])
        .await;
    assert_eq!((s, v), (405, json!({"errors": []})));
    // Outside /v1/: 404.
    let (s, _, _) = api.call_full("GET", "/v2/sys/health", None, "", &[]).await;
    assert_eq!(s, 404);
    // PATCH needs the merge-patch content type (415 otherwise).
    api.call(
        "PUT",
        "/v1/secret/data/p",
        Some(&root),
        r#"{"data":{"a":"1"}}"#,
    )
    .await;
    let (s, _, _) = api
        .call_full(
            "PATCH",
            "/v1/secret/data/p",
            Some(&root),
            r#"{"data":{"b":"2"}}"#,
            &[],
        )
        .await;
    assert_eq!(s, 415);
    let (s, _, _) = api
        .call_full(
            "PATCH",
            "/v1/secret/data/p",
            Some(&root),
            r#"{"data":{"b":"2"}}"#,
            &[("Content-Type", "application/merge-patch+json")],
        )
        .await;
    assert_eq!(s, 200);
    // The token also comes as a bearer token.
    let (s, _, _) = api
        .call_full(
            "GET",
            "/v1/secret/data/p",
            None,
            "",
            &[("Authorization", &format!("Bearer {root}"))],
        )
        .await;
    assert_eq!(s, 200);
    // A raw path that is not clean redirects with a Location under /v1/.
    let (s, h, _) = api
        .call_full("GET", "/v1/secret/data//p", Some(&root), "", &[])
        .await;
    assert_eq!(s, 307);
    assert_eq!(h["location"], "/v1/secret/data/p");
    // Bodies over the limit: 413, before anything is parsed (the server
    // answers on the declared length without reading the body, so the
    // request is written by hand: a client still sending would see its
    // connection closed under it).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(api.addr).await.unwrap();
        let head = format!(
            "PUT /v1/sys/unseal HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            citadel_vault::http::MAX_BODY + 1
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 64];
        let n = tcp.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }
    // Metrics in the Prometheus text format.
    let (s, h, v) = api
        .call_full(
            "GET",
            "/v1/sys/metrics?format=prometheus",
            Some(&root),
            "",
            &[],
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = v.as_str().unwrap();
    assert!(text.contains("citadel_vault_requests_total{route=\"secret/ data/:path\",operation=\"patch\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("citadel_vault_sealed 0"));
    // Without a token, metrics are refused (as Vault's default).
    let (s, _, _) = api
        .call_full("GET", "/v1/sys/metrics?format=prometheus", None, "", &[])
        .await;
    assert_eq!(s, 403);
}

/// Bodiless requests (every GET, `sys/health`) never wait for a large-body
/// slot, and a body that needs one waits at most the body timeout: a client
/// holding every slot with stalled uploads stalls nobody else (found by the
/// races review: GETs queued behind 16 slow uploads with no timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_do_not_stall_other_requests() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut opts = citadel_vault::http::ServeOptions::default();
    opts.limits.large_bodies = 1;
    opts.timeouts.body = Duration::from_secs(2);
    let api = Api::start(opts).await;
    // A chunked upload (size unknown) takes the only slot and stalls.
    let mut hog = tokio::net::TcpStream::connect(api.addr).await.unwrap();
    hog.write_all(
        b"PUT /v1/secret/data/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // GETs (no body) answer at once, with and without a token.
    for _ in 0..5 {
        let t = Instant::now();
        let (s, _) = api.call("GET", "/v1/sys/health", None, "").await;
        assert_eq!(s, 200);
        let (s, _) = api.call("GET", "/v1/sys/mounts", Some(&api.root), "").await;
        assert_eq!(s, 200);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    // A small declared body needs no slot either.
    let (s, _) = api
        .call(
            "PUT",
            "/v1/secret/data/y",
            Some(&api.root),
            r#"{"data":{"a":"1"}}"#,
        )
        .await;
    assert_eq!(s, 200);
    // A second unsized body waits for the slot no longer than the body
    // timeout, then is told to retry (503), or gets the slot the hog's own
    // timeout freed and times out itself (408): either way, it is answered.
    let t = Instant::now();
    let mut second = tokio::net::TcpStream::connect(api.addr).await.unwrap();
    second
        .write_all(
            b"PUT /v1/secret/data/z HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), second.read(&mut answer))
        .await
        .expect("a request waiting for a body slot got no answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(
        answer.starts_with("HTTP/1.1 503") || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(hog);
}
