//! HTTP, and only HTTP: the listener loops (plain TCP on loopback, or TLS
//! with a rustls config from the caller), timeouts and limits, the
//! translation of an HTTP request into a [`Request`] and of a [`Response`]
//! into Vault's status codes, headers and JSON bodies, the scheduling of
//! heavy requests on a bounded pool, and the request log line. Everything
//! a request *means* is decided by [`Core`].
//!
//! Limits: a request's headers must arrive within [`HEADER_TIMEOUT`] and
//! its body within [`BODY_TIMEOUT`]; a body is at most [`MAX_BODY`] bytes,
//! and at most [`Limits::large_bodies`] bodies over [`SMALL_BODY`] bytes (or
//! of unknown size) are read at once, a slot waited for at most the body
//! timeout (bodiless requests never wait); a TLS handshake has [`HANDSHAKE_TIMEOUT`]; at most
//! [`Limits::connections`] connections are served (and
//! [`Limits::connections_per_client`] from one address), more wait to be
//! accepted. Heavy requests (password hashing, post-quantum signing and key
//! generation, hybrid encryption, batches, revocations) run at most
//! [`PoolOptions::threads`] at a time on blocking threads, with at most
//! [`PoolOptions::queue`] waiting (503 beyond) and, for requests that need
//! no token (logins, unseal), at most [`PoolOptions::per_client`] from one
//! address (429 beyond). Light requests run on the async workers, which
//! stay free for them.

use crate::core::{Core, Prepared};
use crate::request::{Body, Operation, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may take to send a request's headers (and, idle
/// between requests, to start the next one).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request body.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Bodies up to this size are read without waiting for a large-body slot.
pub const SMALL_BODY: usize = 64 * 1024;
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The heavy-work pool.
#[derive(Clone, Copy, Debug)]
pub struct PoolOptions {
    /// Heavy requests running at once.
    pub threads: usize,
    /// Heavy requests waiting at most; more are answered 503.
    pub queue: usize,
    /// Heavy requests that need no token (logins, unseal) waiting or
    /// running at once from one client address; more are answered 429.
    pub per_client: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism()
                .map(std::num::NonZeroUsize::get)
                .unwrap_or(2),
            queue: 256,
            per_client: 8,
        }
    }
}

/// Bounds on what clients hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more wait in the listen queue.
    pub connections: usize,
    /// Connections served at once from one client address.
    pub connections_per_client: usize,
    /// Bodies over [`SMALL_BODY`] read at once (each up to [`MAX_BODY`]).
    pub large_bodies: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: 4096,
            connections_per_client: 512,
            large_bodies: 16,
        }
    }
}

/// Timeouts of the listener (tests shorten them).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// See [`HEADER_TIMEOUT`].
    pub header: Duration,
    /// See [`BODY_TIMEOUT`].
    pub body: Duration,
    /// See [`HANDSHAKE_TIMEOUT`].
    pub handshake: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header: HEADER_TIMEOUT,
            body: BODY_TIMEOUT,
            handshake: HANDSHAKE_TIMEOUT,
        }
    }
}

/// How the server runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServeOptions {
    /// The heavy-work pool.
    pub pool: PoolOptions,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Connection and body bounds.
    pub limits: Limits,
}

/// Where each TLS connection gets its config (called per connection, so
/// a reloaded CRL applies to the next connection).
pub type TlsSource = Arc<dyn Fn() -> Arc<tokio_rustls::rustls::ServerConfig> + Send + Sync>;

struct Server {
    core: Arc<Core>,
    pool: Arc<Semaphore>,
    opts: ServeOptions,
    large_bodies: Arc<Semaphore>,
    /// Anonymous heavy requests in flight, per client address.
    anonymous: Arc<PerClient>,
}

/// Counts per client address, with a guard that gives the count back.
#[derive(Default)]
struct PerClient(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// One count of a [`PerClient`], given back on drop (also when the future
/// holding it is dropped because the client went away).
struct Held(Arc<PerClient>, std::net::IpAddr);

impl PerClient {
    fn take(self: &Arc<Self>, ip: std::net::IpAddr, limit: usize) -> Option<Held> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Held(self.clone(), ip))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut m = (self.0).0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// One unit of a gauge, taken back on drop: a dropped future (a client
/// that went away) never leaves a gauge counting it.
struct Gauge<'a>(&'a std::sync::atomic::AtomicI64);

impl<'a> Gauge<'a> {
    fn up(g: &'a std::sync::atomic::AtomicI64) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        Gauge(g)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn json_response(status: u16, body: String) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn errors(status: u16, msg: &str) -> hyper::Response<Full<Bytes>> {
    json_response(status, serde_json::json!({"errors": [msg]}).to_string())
}

/// Renders a core response as Vault does.
fn render(resp: &Response, head: bool) -> hyper::Response<Full<Bytes>> {
    let mut r = match &resp.body {
        Body::Empty => {
            let mut r = hyper::Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Body::Json(_) | Body::Errors(_) | Body::Envelope { .. } => json_response(
            resp.status,
            resp.json_body().unwrap_or_default().to_string(),
        ),
        Body::Text { content_type, text } => {
            let mut r = hyper::Response::new(Full::new(Bytes::from(text.clone())));
            *r.status_mut() = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK);
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
        Body::Redirect(to) => {
            let mut r = hyper::Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            if let Ok(v) = HeaderValue::from_str(&format!("/v1/{to}")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
    };
    if head {
        *r.body_mut() = Full::new(Bytes::new());
    }
    r
}

/// A path as the request log shows it: percent-encoded outside a small
/// set of plain characters, so that a client cannot forge fields of the
/// line (`x status=200 accessor=…`) or reorder it (U+202E) in text logs.
fn log_safe(path: &str) -> std::borrow::Cow<'_, str> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~/:@+,".contains(&b);
    if path.bytes().all(plain) {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len() + 16);
    for b in path.bytes() {
        if plain(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    std::borrow::Cow::Owned(out)
}

fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(t.to_string());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

impl Server {
    async fn serve_request(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
        client: SocketAddr,
    ) -> hyper::Response<Full<Bytes>> {
        let started = Instant::now();
        let method = req.method().clone();
        match self.handle(req, client).await {
            Ok((resp, head)) => {
                let out = render(&resp, head);
                tracing::info!(
                    target: "citadel_vault::request",
                    method = %method,
                    path = %log_safe(&resp.path),
                    status = resp.status,
                    latency_ms = started.elapsed().as_secs_f64() * 1e3,
                    accessor = resp.accessor.as_deref().unwrap_or(""),
                    request_id = %resp.request_id,
                    client = %client.ip(),
                    "request"
                );
                out
            }
            Err(r) => {
                let s = r.status().as_u16();
                tracing::info!(
                    target: "citadel_vault::request",
                    method = %method,
                    status = s,
                    latency_ms = started.elapsed().as_secs_f64() * 1e3,
                    client = %client.ip(),
                    "request refused before the core"
                );
                r
            }
        }
    }

    async fn handle(
        &self,
        req: hyper::Request<Incoming>,
        client: SocketAddr,
    ) -> Result<(Response, bool), hyper::Response<Full<Bytes>>> {
        let (parts, body) = req.into_parts();
        let raw_path = parts.uri.path();
        let Some(path) = raw_path.strip_prefix("/v1/") else {
            return Err(errors(404, "not found: the API lives under /v1/"));
        };
        let head = parts.method == Method::HEAD;
        let operation = match parts.method.as_str() {
            "GET" | "HEAD" => Operation::Read,
            "LIST" => Operation::List,
            "PUT" | "POST" => Operation::Update,
            "DELETE" => Operation::Delete,
            "PATCH" => {
                let ctype = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|c| c.to_str().ok())
                    .unwrap_or_default();
                if !ctype.starts_with("application/merge-patch+json") {
                    return Err(errors(
                        415,
                        &format!(
                            "PATCH requires Content-Type of application/merge-patch+json, provided {ctype}"
                        ),
                    ));
                }
                Operation::Patch
            }
            _ => return Err(json_response(405, r#"{"errors":[]}"#.into())),
        };
        // Large (or unsized) bodies take a slot, so that many clients
        // sending big bodies at once cannot make the server hold them all.
        // hyper knows the framing: a request without Content-Length or
        // chunked encoding (every GET) has an empty body and needs no slot.
        // A slot is waited for at most as long as a body may take to arrive.
        let declared = body.size_hint().upper();
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(errors(
                413,
                &format!("the request body is larger than {MAX_BODY} bytes"),
            ));
        }
        let _large = if declared.is_none_or(|n| n > SMALL_BODY as u64) {
            let slot = self.large_bodies.clone().acquire_owned();
            match tokio::time::timeout(self.opts.timeouts.body, slot).await {
                Ok(Ok(permit)) => Some(permit),
                Ok(Err(_)) => return Err(errors(503, "the server is shutting down")),
                Err(_) => {
                    return Err(errors(
                        503,
                        "too many large request bodies are being read at once; retry shortly",
                    ));
                }
            }
        } else {
            None
        };
        let limited = Limited::new(body, MAX_BODY);
        let bytes = match tokio::time::timeout(self.opts.timeouts.body, limited.collect()).await {
            Err(_) => return Err(errors(408, "the request body did not arrive in time")),
            Ok(Err(e)) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return Err(errors(
                        413,
                        &format!("the request body is larger than {MAX_BODY} bytes"),
                    ));
                }
                return Err(errors(400, "the request body could not be read"));
            }
            Ok(Ok(c)) => c.to_bytes(),
        };
        let request = Request {
            operation,
            path: path.to_string(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            body: bytes.into(),
            token: token(&parts.headers).map(zeroize::Zeroizing::new),
            client: Some(client.ip()),
        };
        let prepared = self.core.prepare(request);
        let (resp, ticket) = if prepared.is_heavy() {
            self.run_heavy(prepared, client.ip()).await
        } else {
            self.core.execute_pending(prepared)
        };
        // The answer waits until its audit entries are durable (group
        // commit), without holding a worker thread.
        let (tx, rx) = tokio::sync::oneshot::channel();
        ticket.on_durable(move |r| {
            let _ = tx.send(r);
        });
        let durable = rx.await.unwrap_or_else(|_| {
            Err(crate::error::Error::Audit(
                "the audit writer stopped".into(),
            ))
        });
        Ok((self.core.recorded(resp, durable), head))
    }

    /// Runs a heavy request on the bounded pool.
    async fn run_heavy(
        &self,
        p: Prepared,
        ip: std::net::IpAddr,
    ) -> (Response, crate::audit::Ticket) {
        let m = self.core.metrics();
        let _per_client = if p.is_anonymous() {
            match self.anonymous.take(ip, self.opts.pool.per_client) {
                Some(h) => Some(h),
                None => {
                    m.pool_rejected.fetch_add(1, Ordering::Relaxed);
                    let r = self.core.refuse(
                        p,
                        crate::error::Error::TooManyRequests(
                            "too many logins from this address at once; retry shortly".into(),
                        ),
                    );
                    return (r, Default::default());
                }
            }
        } else {
            None
        };
        let queued = Gauge::up(&m.pool_queued);
        if m.pool_queued.load(Ordering::Relaxed) > self.opts.pool.queue as i64 {
            drop(queued);
            m.pool_rejected.fetch_add(1, Ordering::Relaxed);
            let r = self.core.refuse(
                p,
                crate::error::Error::Busy(
                    "the server is at its limit of heavy requests; retry shortly".into(),
                ),
            );
            return (r, Default::default());
        }
        let permit = self.pool.clone().acquire_owned().await;
        drop(queued);
        let core = self.core.clone();
        // The running gauge lives in the blocking task: it counts the work
        // until the work ends, even if this future is dropped meanwhile.
        let r = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _running = Gauge::up(&core.metrics().pool_running);
            core.execute_pending(p)
        })
        .await;
        match r {
            Ok(done) => done,
            Err(_) => (
                Response::new(
                    500,
                    Body::Errors(vec!["internal error: the request's worker stopped".into()]),
                ),
                Default::default(),
            ),
        }
    }
}

/// Serves one connection (after TLS, if any).
async fn connection<S>(
    server: Arc<Server>,
    io: S,
    client: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = server.opts.timeouts.header;
    let svc = hyper::service::service_fn(move |req| {
        let server = server.clone();
        async move { Ok::<_, std::convert::Infallible>(server.serve_request(req, client).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    let _ = watcher.watch(conn).await;
}

/// Serves plain HTTP on `listener` until `shutdown` completes (the caller
/// keeps plain HTTP to loopback).
pub async fn serve(
    listener: tokio::net::TcpListener,
    core: Arc<Core>,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    accept_loop(listener, core, None, opts, shutdown).await
}

/// Serves the API over TLS on `listener` until `shutdown` completes. `tls`
/// gives each connection its config (mutual post-quantum TLS, or
/// server-authenticated TLS with X25519MLKEM768 key exchange, built by
/// `citadel-tls`). A failed handshake closes that connection only.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    core: Arc<Core>,
    tls: TlsSource,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    accept_loop(listener, core, Some(tls), opts, shutdown).await
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    core: Arc<Core>,
    tls: Option<TlsSource>,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let server = Arc::new(Server {
        core: core.clone(),
        pool: Arc::new(Semaphore::new(opts.pool.threads.max(1))),
        opts,
        large_bodies: Arc::new(Semaphore::new(opts.limits.large_bodies.max(1))),
        anonymous: Arc::new(PerClient::default()),
    });
    let connections = Arc::new(Semaphore::new(opts.limits.connections.max(1)));
    let per_client = Arc::new(PerClient::default());
    let mut shutdown = std::pin::pin!(shutdown);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        // At most `connections` served at once: past that, accepting waits
        // (clients wait in the kernel's listen queue).
        let slot = tokio::select! {
            () = &mut shutdown => break,
            s = connections.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (tcp, client) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // One address may not hold every slot.
        let Some(held) = per_client.take(client.ip(), opts.limits.connections_per_client) else {
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let server = server.clone();
        let watcher = graceful.watcher();
        match &tls {
            None => {
                tokio::spawn(async move {
                    connection(server, tcp, client, watcher).await;
                    drop((slot, held));
                });
            }
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls());
                let handshake = opts.timeouts.handshake;
                tokio::spawn(async move {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(handshake, acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    connection(server, stream, client, watcher).await;
                    drop((slot, held));
                });
            }
        }
    }
    // Stop accepting; let requests in flight finish (bounded), then close
    // the audit devices after their last checkpoint.
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    let c = core.clone();
    let _ = tokio::task::spawn_blocking(move || c.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::log_safe;

    /// Found by the third review: a path holding `%20status=200` or
    /// U+202E forged fields of the text request log.
    #[test]
    fn logged_paths_cannot_forge_fields() {
        assert_eq!(log_safe("secret/data/app/db"), "secret/data/app/db");
        assert_eq!(
            log_safe("secret/data/x status=200 accessor=\"root\""),
            "secret/data/x%20status%3D200%20accessor%3D%22root%22"
        );
        assert_eq!(log_safe("a\u{202e}b"), "a%E2%80%AEb");
    }
}
