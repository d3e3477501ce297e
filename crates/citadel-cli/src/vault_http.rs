//! A small HTTP client for the vault verbs: one request per connection,
//! plaintext on loopback or TLS 1.3 (X25519MLKEM768, optionally with a
//! client certificate for mutual post-quantum TLS). hyper over tokio.

use anyhow::{Context, Result, bail};
use citadel_tls::config::{Identity, client_config_server_auth, load_certificates};
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Where the server is and how to reach it.
#[derive(Args, Clone)]
pub(crate) struct Conn {
    /// The server's address [default: http://127.0.0.1:8200] [env:
    /// CITADEL_ADDR, else VAULT_ADDR].
    #[arg(long, global = true)]
    address: Option<String>,
    /// CA certificate(s) (PEM) that the server's certificate chains to, for
    /// https:// addresses [env: CITADEL_CACERT, else VAULT_CACERT].
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for a server that requires mutual TLS
    /// [env: CITADEL_CLIENT_CERT, else VAULT_CLIENT_CERT].
    #[arg(long, global = true)]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PKCS#8 PEM) [env:
    /// CITADEL_CLIENT_KEY, else VAULT_CLIENT_KEY].
    #[arg(long, global = true)]
    client_key: Option<PathBuf>,
    /// File holding the token when neither CITADEL_TOKEN nor VAULT_TOKEN is
    /// set; `login` writes it [default: ~/.citadel-token] [env:
    /// CITADEL_TOKEN_FILE].
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// Print the server's JSON response instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// An error status from the server, with its `errors` list.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) errors: Vec<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = match self.status {
            403 => {
                " (check the token: CITADEL_TOKEN or VAULT_TOKEN, the token file, or `citadel vault login`)"
            }
            503 => " (the vault is sealed or not initialised: `citadel vault status` says which)",
            _ => "",
        };
        if self.errors.is_empty() {
            write!(f, "the server answered {}{hint}", self.status)
        } else {
            write!(
                f,
                "the server answered {}: {}{hint}",
                self.status,
                self.errors.join("; ")
            )
        }
    }
}

impl std::error::Error for ApiError {}

/// A connection plan to one server.
pub(crate) struct Client {
    host: String,
    port: u16,
    /// For plain HTTP: the loopback addresses the host resolved to, checked
    /// once and connected to, so a name cannot point elsewhere later.
    plain_addrs: Vec<std::net::SocketAddr>,
    /// `host:port` as the Host header carries it.
    authority: String,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    token: Option<Zeroizing<String>>,
    token_file: PathBuf,
    rt: tokio::runtime::Runtime,
}

/// The flag's value, else the first of `vars` set to something (an empty
/// variable counts as unset, so `CITADEL_CACERT=` falls through to
/// `VAULT_CACERT`, as a Vault user expects; a value that is not UTF-8 is
/// an error, never skipped for the next).
fn flag_or_env<T: From<String> + Clone>(v: &Option<T>, vars: &[&str]) -> Result<Option<T>> {
    if v.is_some() {
        return Ok(v.clone());
    }
    for var in vars {
        match std::env::var(var) {
            Ok(s) if !s.is_empty() => return Ok(Some(T::from(s))),
            Ok(_) | Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => bail!("{var} is not valid UTF-8"),
        }
    }
    Ok(None)
}

impl Conn {
    /// Resolves the address, TLS settings and token.
    pub(crate) fn client(&self) -> Result<Client> {
        let address = flag_or_env(&self.address, &["CITADEL_ADDR", "VAULT_ADDR"])?
            .unwrap_or_else(|| "http://127.0.0.1:8200".to_string());
        let uri: hyper::Uri = address
            .parse()
            .with_context(|| format!("the address {address:?} is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("the address must start with http:// or https:// (got {address:?})"),
        };
        let host = uri
            .host()
            .with_context(|| format!("the address {address:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        // A port the URI parser drops (out of range) must not become the
        // scheme's default: the token would go to another service.
        if let Some((_, p)) = uri.authority().and_then(|a| a.as_str().rsplit_once(':'))
            && !p.ends_with(']')
            && p.parse::<u16>().map_or(true, |n| n == 0)
        {
            bail!("the address {address:?} has no valid port (1 to 65535)");
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
        let client_cert = flag_or_env(
            &self.client_cert,
            &["CITADEL_CLIENT_CERT", "VAULT_CLIENT_CERT"],
        )?;
        let client_key = flag_or_env(
            &self.client_key,
            &["CITADEL_CLIENT_KEY", "VAULT_CLIENT_KEY"],
        )?;
        let identity = match (&client_cert, &client_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!(
                "a client certificate needs its key and a key its certificate: pass both --client-cert and --client-key (or CITADEL_/VAULT_CLIENT_CERT and _KEY)"
            ),
        };
        let tls = if https {
            let roots = match flag_or_env(&self.ca_cert, &["CITADEL_CACERT", "VAULT_CACERT"])? {
                Some(p) => load_certificates(&p)?,
                None => bail!(
                    "an https:// address needs the CA certificate that signed the server's: pass --ca-cert FILE or set CITADEL_CACERT (or VAULT_CACERT)"
                ),
            };
            let identity = match identity {
                Some((c, k)) => Some(Identity::load(c, k)?),
                None => None,
            };
            Some(client_config_server_auth(roots, identity, false)?)
        } else {
            None
        };
        let token_file = match &flag_or_env(&self.token_file, &["CITADEL_TOKEN_FILE"])? {
            Some(p) => p.clone(),
            None => std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".citadel-token"),
        };
        let from_env: Option<String> = flag_or_env(&None, &["CITADEL_TOKEN", "VAULT_TOKEN"])?;
        let token = match from_env {
            Some(t) => Some(Zeroizing::new(t)),
            None => match std::fs::read_to_string(&token_file) {
                Ok(t) => Some(Zeroizing::new(t.trim().to_string())),
                Err(_) => None,
            },
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Client {
            host,
            port,
            plain_addrs,
            authority,
            tls,
            token,
            token_file,
            rt,
        })
    }
}

impl Client {
    /// Where `login` stores the token.
    pub(crate) fn token_file(&self) -> &std::path::Path {
        &self.token_file
    }

    /// Replaces the token for the following requests.
    pub(crate) fn set_token(&mut self, token: Zeroizing<String>) {
        self.token = Some(token);
    }

    /// Sends one request to `/v1/{path}` and returns the status and JSON
    /// body (`null` for an empty body). Error statuses are returned, not
    /// raised: see [`Client::call`].
    pub(crate) fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        // A `.` or `..` segment would be resolved by the server (a
        // redirect elsewhere), and `#` cuts the path: refused here, where
        // the user can be told.
        let bare = path.split('?').next().unwrap_or_default();
        if bare.split('/').any(|seg| seg == "." || seg == "..") || path.contains('#') {
            bail!("the path {path:?} has a '.' or '..' segment or a '#': name the path itself");
        }
        let body = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b)?),
            None => Bytes::new(),
        };
        // Said here, not as the broken pipe of a server that answered 413
        // and closed while the body was being sent.
        if body.len() > citadel_vault::http::MAX_BODY {
            bail!(
                "the request is {} MiB, over the {} MiB a server takes; for a large file, encrypt it with `citadel encrypt` (or a transit data key) and keep the key in the vault",
                body.len() >> 20,
                citadel_vault::http::MAX_BODY >> 20
            );
        }
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("/v1/{}", path.trim_start_matches('/')))
            .header(hyper::header::HOST, self.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(t) = &self.token {
            let mut v = hyper::header::HeaderValue::from_str(t.as_str())
                .context("the token holds characters a header cannot carry")?;
            v.set_sensitive(true);
            req = req.header("X-Vault-Token", v);
        }
        let req = req
            .body(Full::new(body))
            .context("cannot build the request")?;
        let (host, port) = (self.host.clone(), self.port);
        let tls = self.tls.clone();
        let plain_addrs = self.plain_addrs.clone();
        let (status, bytes) = self.rt.block_on(async move {
            let tcp = if tls.is_none() {
                tokio::net::TcpStream::connect(&plain_addrs[..]).await
            } else {
                tokio::net::TcpStream::connect((host.as_str(), port)).await
            };
            let tcp = tcp.with_context(|| {
                format!(
                    "cannot connect to {host}:{port}: is the server running (citadel vault serve)?"
                )
            })?;
            let _ = tcp.set_nodelay(true);
            match tls {
                None => send(tcp, req).await,
                Some(cfg) => {
                    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
                        .with_context(|| format!("{host:?} is not a valid server name"))?;
                    let stream = tokio_rustls::TlsConnector::from(cfg)
                        .connect(name, tcp)
                        .await
                        .map_err(|e| {
                            match e
                                .get_ref()
                                .and_then(|i| i.downcast_ref::<tokio_rustls::rustls::Error>())
                            {
                                Some(t) => anyhow::anyhow!(
                                    "TLS handshake with {host}:{port} failed: {}",
                                    citadel_tls::config::explain(t)
                                ),
                                None => {
                                    anyhow::anyhow!("TLS handshake with {host}:{port} failed: {e}")
                                }
                            }
                        })?;
                    send(stream, req).await
                }
            }
        })?;
        let v = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| {
                format!("the server answered {status} with a body that is not JSON")
            })?
        };
        Ok((status, v))
    }

    /// [`Client::raw`], turning an error status into an [`ApiError`].
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let (status, v) = self.raw(method, path, body)?;
        check(status, v)
    }
}

/// The addresses `host` resolves to, if every one is loopback: a token is
/// sent in clear text only to this machine. The check is on the addresses,
/// not the name (a hosts entry may point `localhost` anywhere), and the
/// client then connects to exactly these addresses.
fn plain_loopback(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<std::net::SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        bail!(
            "refusing to send a token in clear text to {host} ({}): it does not resolve to loopback addresses only; use an https:// address (the server refuses plain HTTP beyond loopback too)",
            addrs
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(addrs)
}

/// An error status as an [`ApiError`]; any other as its body.
pub(crate) fn check(status: u16, v: Value) -> Result<Value> {
    {
        // Only 2xx is success: a redirect (a path with `..` in it, say)
        // did nothing, and must not be reported as done.
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
            return Err(ApiError { status, errors }.into());
        }
        Ok(v)
    }
}

async fn send<S>(io: S, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .context("HTTP handshake failed")?;
    let driver = tokio::spawn(conn);
    let resp = sender
        .send_request(req)
        .await
        .context("the server closed the connection")?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .context("cannot read the response")?
        .to_bytes();
    driver.abort();
    Ok((status, bytes))
}

#[cfg(test)]
mod tests {
    use super::plain_loopback;

    #[test]
    fn clear_text_goes_only_to_loopback_addresses() {
        assert!(plain_loopback("127.0.0.1", 8200).is_ok());
        assert!(plain_loopback("::1", 8200).is_ok());
        assert!(plain_loopback("10.1.2.3", 8200).is_err());
        assert!(plain_loopback("192.0.2.1", 8200).is_err());
    }
}
