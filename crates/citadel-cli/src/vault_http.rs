//! How the vault verbs reach the server: the flags and environment
//! variables (`CITADEL_*`, then Vault's `VAULT_*`), turned into a
//! [`citadel_vault::client::Client`] (plaintext on loopback or TLS 1.3 with
//! X25519MLKEM768, optionally with a client certificate for mutual
//! post-quantum TLS), and its errors said with what to do.

use anyhow::{Result, bail};
use citadel_tls::config::{Identity, client_config_server_auth, load_certificates};
use citadel_vault::client::ClientError;
use clap::Args;
use serde_json::Value;
use std::path::PathBuf;
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

/// The library's client, and where `login` keeps the token.
pub(crate) struct Client {
    inner: citadel_vault::client::Client,
    token_file: PathBuf,
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
        let tls = if address
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        {
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
        let mut inner = citadel_vault::client::Client::new(&address, tls).map_err(said)?;
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
            None => std::fs::read_to_string(&token_file)
                .ok()
                .map(|t| Zeroizing::new(t.trim().to_string())),
        };
        if let Some(t) = token {
            inner.set_token(t);
        }
        Ok(Client { inner, token_file })
    }
}

impl Client {
    /// Where `login` stores the token.
    pub(crate) fn token_file(&self) -> &std::path::Path {
        &self.token_file
    }

    /// Replaces the token for the following requests.
    pub(crate) fn set_token(&mut self, token: Zeroizing<String>) {
        self.inner.set_token(token);
    }

    /// Sends one request to `/v1/{path}`: the status and JSON body, error
    /// statuses included (see [`Client::call`]).
    pub(crate) fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        self.inner.raw(method, path, body).map_err(said)
    }

    /// [`Client::raw`], an answer that is not 2xx as an [`ApiError`].
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        self.inner.call(method, path, body).map_err(said)
    }
}

/// A client error with what to do next, for the command line; a server's
/// error status as an [`ApiError`] (exit code 3 when sealed).
pub(crate) fn said(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Api { status, errors } => ApiError { status, errors }.into(),
        ClientError::Connect { host, port, source } => anyhow::anyhow!(
            "cannot connect to {host}:{port}: is the server running (citadel vault serve)?: {source}"
        ),
        ClientError::Handshake { host, port, source } => {
            let why = source
                .get_ref()
                .and_then(|i| i.downcast_ref::<tokio_rustls::rustls::Error>())
                .map_or_else(|| source.to_string(), citadel_tls::config::explain);
            anyhow::anyhow!("TLS handshake with {host}:{port} failed: {why}")
        }
        ClientError::TooLarge { size, max } => anyhow::anyhow!(
            "the request is {} MiB, over the {} MiB a server takes; for a large file, encrypt it with `citadel encrypt` (or a transit data key) and keep the key in the vault",
            size >> 20,
            max >> 20
        ),
        other => other.into(),
    }
}
