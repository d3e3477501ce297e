//! A typed client for the Vault HTTP API, as `citadel vault` uses it and
//! other Rust programs may: Citadel's server, Vault's or OpenBao's. One
//! request per connection, over plain HTTP to loopback addresses only (a
//! token never crosses a network in clear text) or TLS with a
//! [`rustls::ClientConfig`] the caller builds (`citadel-tls` makes one
//! with X25519MLKEM768 and, for mutual TLS, a client certificate).
//!
//! Reads no environment variables and prints nothing: the caller passes
//! the address, TLS settings and token.
//!
//! ```no_run
//! use citadel_vault::client::Client;
//! let mut c = Client::new("http://127.0.0.1:8200", None)?;
//! c.set_token(zeroize::Zeroizing::new("hvs.…".to_string()));
//! let secret = c.call("GET", "secret/data/app/db", None)?;
//! println!("{}", secret["data"]["data"]["password"]);
//! # Ok::<(), citadel_vault::client::ClientError>(())
//! ```

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;
use std::sync::Arc;
use tokio_rustls::rustls;
use zeroize::Zeroizing;

/// Why a request did not get a successful answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not one this client reaches (not a URL, no host, a
    /// bad port, plain HTTP to a host that is not loopback, https without
    /// a TLS config).
    #[error("{0}")]
    Address(String),
    /// The API path names something else than it says.
    #[error("the path {0:?} has a '.' or '..' segment or a '#': name the path itself")]
    Path(String),
    /// The body is larger than a server takes ([`crate::http::MAX_BODY`]).
    #[error("the request is {size} bytes, over the {max} a server takes")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The token cannot be sent in a header (control characters).
    #[error("the token holds characters a header cannot carry")]
    BadToken,
    /// No connection.
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS handshake failed; `source` wraps the [`rustls::Error`] when
    /// there is one.
    #[error("TLS handshake with {host}:{port} failed: {source}")]
    Handshake {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("{what}: {source}")]
    Http {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: hyper::Error,
    },
    /// The answer's body is not JSON.
    #[error("the server answered {status} with a body that is not JSON")]
    NotJson {
        /// The status.
        status: u16,
    },
    /// An answer that is not 2xx, with the server's `errors` list.
    #[error("the server answered {status}{}", errors_text(.errors))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The `errors` list of its body.
        errors: Vec<String>,
    },
}

fn errors_text(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    }
}

/// A connection plan to one server.
pub struct Client {
    host: String,
    port: u16,
    /// For plain HTTP: the loopback addresses the host resolved to, checked
    /// once and connected to, so a name cannot point elsewhere later.
    plain_addrs: Vec<std::net::SocketAddr>,
    /// `host:port` as the Host header carries it.
    authority: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    token: Option<Zeroizing<String>>,
    rt: tokio::runtime::Runtime,
}

impl Client {
    /// A client for the server at `address` (`http://` to a loopback
    /// address, or `https://` with `tls`).
    pub fn new(address: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Self, ClientError> {
        let bad = |why: String| ClientError::Address(why);
        let uri: hyper::Uri = address
            .parse()
            .map_err(|_| bad(format!("the address {address:?} is not a URL")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(bad(format!(
                    "the address must start with http:// or https:// (got {address:?})"
                )));
            }
        };
        // A path or query would be dropped (every request goes to
        // `/v1/…`): refused, not silently sent elsewhere.
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad(format!(
                "the address {address:?} has a path or query; give only scheme, host and port (requests go to /v1/PATH)"
            )));
        }
        let host = uri
            .host()
            .ok_or_else(|| bad(format!("the address {address:?} has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        // A port the URI parser drops (out of range) must not become the
        // scheme's default: the token would go to another service.
        if let Some((_, p)) = uri.authority().and_then(|a| a.as_str().rsplit_once(':'))
            && !p.ends_with(']')
            && p.parse::<u16>().map_or(true, |n| n == 0)
        {
            return Err(bad(format!(
                "the address {address:?} has no valid port (1 to 65535)"
            )));
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let plain_addrs = if https {
            Vec::new()
        } else {
            plain_loopback(&host, port)?
        };
        let authority = match uri.authority() {
            Some(a) if a.port().is_some() => a.as_str().to_string(),
            _ if host.contains(':') => format!("[{host}]:{port}"),
            _ => format!("{host}:{port}"),
        };
        let tls = match (https, tls) {
            (true, Some(t)) => Some(t),
            (true, None) => {
                return Err(bad(
                    "an https:// address needs a TLS configuration (the CA certificate that signed the server's)".into(),
                ));
            }
            (false, _) => None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start the async runtime: {e}")))?;
        Ok(Client {
            host,
            port,
            plain_addrs,
            authority,
            tls,
            token: None,
            rt,
        })
    }

    /// Sends this token (`X-Vault-Token`) with the following requests.
    pub fn set_token(&mut self, token: Zeroizing<String>) {
        self.token = Some(token);
    }

    /// Sends one request to `/v1/{path}` and returns the status and JSON
    /// body (`null` for an empty body). Error statuses are returned, not
    /// raised: see [`Client::call`].
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ClientError> {
        // A `.` or `..` segment would be resolved by the server (a
        // redirect elsewhere), and `#` cuts the path.
        let bare = path.split('?').next().unwrap_or_default();
        if bare.split('/').any(|seg| seg == "." || seg == "..") || path.contains('#') {
            return Err(ClientError::Path(path.to_string()));
        }
        let body = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b).unwrap_or_default()),
            None => Bytes::new(),
        };
        // Said here, not as the broken pipe of a server that answered 413
        // and closed while the body was being sent.
        if body.len() > crate::http::MAX_BODY {
            return Err(ClientError::TooLarge {
                size: body.len(),
                max: crate::http::MAX_BODY,
            });
        }
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("/v1/{}", path.trim_start_matches('/')))
            .header(hyper::header::HOST, self.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(t) = &self.token {
            let mut v = hyper::header::HeaderValue::from_str(t.as_str())
                .map_err(|_| ClientError::BadToken)?;
            v.set_sensitive(true);
            req = req.header("X-Vault-Token", v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| ClientError::Address(format!("cannot build the request: {e}")))?;
        let (host, port) = (self.host.clone(), self.port);
        let tls = self.tls.clone();
        let plain_addrs = self.plain_addrs.clone();
        let (status, bytes) = self.rt.block_on(async move {
            let tcp = if tls.is_none() {
                tokio::net::TcpStream::connect(&plain_addrs[..]).await
            } else {
                tokio::net::TcpStream::connect((host.as_str(), port)).await
            };
            let tcp = tcp.map_err(|source| ClientError::Connect {
                host: host.clone(),
                port,
                source,
            })?;
            let _ = tcp.set_nodelay(true);
            match tls {
                None => send(tcp, req).await,
                Some(cfg) => {
                    let name =
                        rustls::pki_types::ServerName::try_from(host.clone()).map_err(|_| {
                            ClientError::Address(format!("{host:?} is not a valid server name"))
                        })?;
                    let stream = tokio_rustls::TlsConnector::from(cfg)
                        .connect(name, tcp)
                        .await
                        .map_err(|source| ClientError::Handshake {
                            host: host.clone(),
                            port,
                            source,
                        })?;
                    send(stream, req).await
                }
            }
        })?;
        let v = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| ClientError::NotJson { status })?
        };
        Ok((status, v))
    }

    /// [`Client::raw`], an answer that is not 2xx (a redirect did nothing
    /// either) as [`ClientError::Api`].
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let (status, v) = self.raw(method, path, body)?;
        check(status, v)
    }
}

/// A status that is not 2xx as [`ClientError::Api`]; any other as its body.
pub fn check(status: u16, v: Value) -> Result<Value, ClientError> {
    if !(200..300).contains(&status) {
        let errors = v
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        return Err(ClientError::Api { status, errors });
    }
    Ok(v)
}

/// The addresses `host` resolves to, if every one is loopback: a token is
/// sent in clear text only to this machine. The check is on the addresses,
/// not the name (a hosts entry may point `localhost` anywhere), and the
/// client then connects to exactly these addresses.
fn plain_loopback(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, ClientError> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<std::net::SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| ClientError::Address(format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err(ClientError::Address(format!(
            "refusing to send a token in clear text to {host} ({}): it does not resolve to loopback addresses only; use an https:// address (the server refuses plain HTTP beyond loopback too)",
            addrs
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(addrs)
}

async fn send<S>(io: S, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes), ClientError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |what| move |source| ClientError::Http { what, source };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(http("HTTP handshake failed"))?;
    let driver = tokio::spawn(conn);
    let resp = sender
        .send_request(req)
        .await
        .map_err(http("the server closed the connection"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(http("cannot read the response"))?
        .to_bytes();
    driver.abort();
    Ok((status, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_text_goes_only_to_loopback_addresses() {
        assert!(plain_loopback("127.0.0.1", 8200).is_ok());
        assert!(plain_loopback("::1", 8200).is_ok());
        assert!(plain_loopback("10.1.2.3", 8200).is_err());
        assert!(plain_loopback("192.0.2.1", 8200).is_err());
    }

    #[test]
    fn addresses_and_paths_that_mislead_are_refused() {
        for a in [
            "http://127.0.0.1:99999",
            "http://[::1]:0",
            "ftp://127.0.0.1",
            "https://127.0.0.1:8200",
            "http://10.0.0.1:8200",
            "http://127.0.0.1:8200/prefix",
            "http://127.0.0.1:8200/?x=1",
        ] {
            assert!(
                matches!(Client::new(a, None), Err(ClientError::Address(_))),
                "{a}"
            );
        }
        let c = Client::new("http://127.0.0.1:1", None).unwrap();
        for p in ["secret/..", "sys/mounts/../x", "./a", "a#b"] {
            assert!(
                matches!(c.raw("GET", p, None), Err(ClientError::Path(_))),
                "{p}"
            );
        }
        assert!(matches!(
            check(307, Value::Null),
            Err(ClientError::Api { status: 307, .. })
        ));
    }
}
