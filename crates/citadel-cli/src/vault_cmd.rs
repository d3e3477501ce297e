//! `citadel vault`: the Vault-compatible server, and its thin clients (in
//! `vault_verbs`).

use crate::vault_verbs;
use anyhow::{Context, Result, bail};
use citadel_vault::core::{Config as CoreConfig, Core};
use citadel_vault::http::{ServeOptions, TlsSource};
use citadel_vault::storage::{Cached, Memory, Physical, Sqlite};
use clap::{Args, Subcommand};
use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Subcommand)]
pub(crate) enum VaultCommand {
    /// Run the server. `--dev`: in memory, initialised and unsealed, root
    /// token printed (like `vault server -dev`); otherwise from `--config`.
    Serve(ServeArgs),
    /// Show whether the server is initialised and sealed (exit 0 unsealed,
    /// 3 sealed).
    Status(vault_verbs::ConnArgs),
    /// Initialise a new server: split the root key into unseal key shares
    /// and print them with the initial root token.
    Init(vault_verbs::InitArgs),
    /// Enter one unseal key share (the server unseals at the threshold).
    Unseal(vault_verbs::UnsealArgs),
    /// Seal the server: it forgets its keys until unsealed again.
    Seal(vault_verbs::ConnArgs),
    /// Log in (token, userpass or AppRole) and store the token in the token
    /// file.
    Login(vault_verbs::LoginArgs),
    /// Read any API path (e.g. `sys/mounts`).
    Read(vault_verbs::PathArgs),
    /// Write to any API path with `key=value` fields.
    Write(vault_verbs::WriteArgs),
    /// List the keys under any API path.
    List(vault_verbs::PathArgs),
    /// Delete any API path.
    Delete(vault_verbs::PathArgs),
    /// Key/value secrets (KV v2): get, put, list, delete, undelete.
    Kv(vault_verbs::KvArgs),
    /// Encryption as a service: keys, encrypt, decrypt, rewrap, datakey,
    /// sign, verify.
    Transit(vault_verbs::TransitArgs),
    /// ACL policies: write, read, list, delete.
    Policy(vault_verbs::PolicyArgs),
    /// Tokens: create, lookup, renew, revoke.
    Token(crate::vault_admin::TokenArgs),
    /// Secrets engines: enable, disable, list (`sys/mounts`).
    Secrets(crate::vault_admin::MountArgs),
    /// Audit devices: enable, disable, list (`sys/audit`).
    Audit(crate::vault_admin::MountArgs),
    /// Auth methods: enable, disable, list (`sys/auth`).
    Auth(crate::vault_admin::MountArgs),
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// A development server: in-memory storage, one unseal key, unsealed.
    /// Everything is lost when it stops.
    #[arg(long, conflicts_with = "config")]
    dev: bool,
    /// The configuration file (TOML); every key can be overridden by an
    /// environment variable: CITADEL_LISTEN, CITADEL_STORAGE_PATH,
    /// CITADEL_TLS_CERT, CITADEL_TLS_KEY, CITADEL_TLS_CLIENT_CA,
    /// CITADEL_TLS_ALLOW_CLASSICAL_KX.
    #[arg(long, required_unless_present = "dev")]
    config: Option<PathBuf>,
    /// Address to listen on (plaintext HTTP is allowed only on loopback).
    #[arg(long)]
    listen: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM): TLS 1.3 with
    /// X25519MLKEM768 key exchange. The certificate may be classical (ECDSA,
    /// what today's clients verify) or ML-DSA.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PKCS#8 PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates from this citadel CA directory (`ca.crt`,
    /// `crl.pem`): mutual post-quantum TLS, ML-DSA certificates only. The
    /// CRL is re-read when it changes: a revocation applies to the next
    /// connection.
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Log format on standard error: one line per event, as text or JSON
    /// (or [log] format; CITADEL_LOG_FORMAT).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// The same as --log-format json: a server's output is its log.
    #[arg(long, conflicts_with = "log_format")]
    json: bool,
    /// Least severe events logged: error, warn, info (one line per request),
    /// debug or trace (or [log] level; CITADEL_LOG_LEVEL).
    #[arg(long)]
    log_level: Option<String>,
    /// DANGEROUS: unseal even when the storage fails its integrity check or
    /// is older than the newest storage epoch anchored in the audit log
    /// (rows changed outside the vault, or a backup restored on purpose).
    /// Revoked tokens and old secrets in that storage come back.
    #[arg(long)]
    accept_storage_changes: bool,
    /// A directory `file` audit devices may write in (repeatable; or
    /// [audit] file_directories). Without one, `file` devices are refused:
    /// a sudo token must not choose any file the server can write.
    #[arg(long, value_name = "DIR")]
    audit_file_dir: Vec<PathBuf>,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// `2026-12-03T10:00:00Z INFO request method=GET path=... status=200`.
    Text,
    /// One JSON object per line.
    Json,
}

/// `citadel.toml`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Address to listen on.
    listen: Option<String>,
    /// Storage.
    storage: Option<StorageConfig>,
    /// TLS for the listener.
    tls: Option<TlsConfig>,
    /// Logging.
    log: Option<LogConfig>,
    /// Audit devices.
    audit: Option<AuditConfig>,
    /// Metrics.
    telemetry: Option<TelemetryConfig>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogConfig {
    format: Option<LogFormat>,
    level: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditConfig {
    /// How often a device signs a checkpoint while entries arrive, in
    /// seconds (default 1).
    checkpoint_interval_seconds: Option<f64>,
    /// The directories `file` devices may write in.
    #[serde(default)]
    file_directories: Vec<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TelemetryConfig {
    /// Serve `sys/metrics` without a token (as Vault's option of the
    /// same name).
    #[serde(default)]
    unauthenticated_metrics_access: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TlsConfig {
    /// Certificate chain (PEM).
    cert: Option<PathBuf>,
    /// Private key (PKCS#8 PEM).
    key: Option<PathBuf>,
    /// A citadel CA directory: require client certificates it issued.
    client_ca: Option<PathBuf>,
    /// Also accept classical X25519 key exchange (for clients without
    /// ML-KEM), in server-authenticated mode.
    #[serde(default)]
    allow_classical_kx: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StorageConfig {
    /// The SQLite database file.
    path: Option<PathBuf>,
}

pub(crate) fn run(c: VaultCommand) -> Result<()> {
    match c {
        VaultCommand::Serve(a) => serve(a),
        VaultCommand::Status(a) => vault_verbs::status(a),
        VaultCommand::Init(a) => vault_verbs::init(a),
        VaultCommand::Unseal(a) => vault_verbs::unseal(a),
        VaultCommand::Seal(a) => vault_verbs::seal(a),
        VaultCommand::Login(a) => vault_verbs::login(a),
        VaultCommand::Read(a) => vault_verbs::read(a),
        VaultCommand::Write(a) => vault_verbs::write(a),
        VaultCommand::List(a) => vault_verbs::list(a),
        VaultCommand::Delete(a) => vault_verbs::delete(a),
        VaultCommand::Kv(a) => vault_verbs::kv(a),
        VaultCommand::Transit(a) => vault_verbs::transit(a),
        VaultCommand::Policy(a) => vault_verbs::policy(a),
        VaultCommand::Token(a) => crate::vault_admin::token(a),
        VaultCommand::Secrets(a) => {
            crate::vault_admin::mounts(crate::vault_admin::Table::Secrets, a)
        }
        VaultCommand::Audit(a) => crate::vault_admin::mounts(crate::vault_admin::Table::Audit, a),
        VaultCommand::Auth(a) => crate::vault_admin::mounts(crate::vault_admin::Table::Auth, a),
    }
}

fn serve(a: ServeArgs) -> Result<()> {
    let mut config = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            toml::from_str::<Config>(&text).with_context(|| format!("{}", p.display()))?
        }
        None => Config::default(),
    };
    // Environment overrides (the binary's edge is the only place that reads them).
    if let Ok(v) = std::env::var("CITADEL_LISTEN") {
        config.listen = Some(v);
    }
    if let Ok(v) = std::env::var("CITADEL_STORAGE_PATH") {
        config.storage.get_or_insert_with(Default::default).path = Some(v.into());
    }
    for (var, slot) in [
        ("CITADEL_TLS_CERT", 0),
        ("CITADEL_TLS_KEY", 1),
        ("CITADEL_TLS_CLIENT_CA", 2),
    ] {
        if let Some(v) = std::env::var_os(var) {
            let tls = config.tls.get_or_insert_with(Default::default);
            let field = match slot {
                0 => &mut tls.cert,
                1 => &mut tls.key,
                _ => &mut tls.client_ca,
            };
            *field = Some(v.into());
        }
    }
    if let Ok(v) = std::env::var("CITADEL_TLS_ALLOW_CLASSICAL_KX") {
        config
            .tls
            .get_or_insert_with(Default::default)
            .allow_classical_kx = matches!(v.as_str(), "1" | "true" | "yes");
    }
    let log = config.log.take().unwrap_or_default();
    let log_format = match (
        a.log_format.or(a.json.then_some(LogFormat::Json)),
        std::env::var("CITADEL_LOG_FORMAT").ok(),
        log.format,
    ) {
        (Some(f), _, _) => f,
        (None, Some(v), _) => match v.as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => bail!("CITADEL_LOG_FORMAT must be text or json, not {other:?}"),
        },
        (None, None, f) => f.unwrap_or(LogFormat::Text),
    };
    let log_level = a
        .log_level
        .clone()
        .or_else(|| std::env::var("CITADEL_LOG_LEVEL").ok())
        .or(log.level)
        .unwrap_or_else(|| "info".into());
    let _log_guard = init_logging(log_format, &log_level)?;
    // Flags win over the file and the environment.
    if a.tls_cert.is_some() {
        let tls = config.tls.get_or_insert_with(Default::default);
        tls.cert = a.tls_cert.clone();
        tls.key = a.tls_key.clone();
        if a.tls_client_ca.is_some() {
            tls.client_ca = a.tls_client_ca.clone();
        }
    }
    // The newest client-CA CRL number seen is kept beside the storage, so
    // a CRL copied back is refused after a restart too.
    let crl_floor = config
        .storage
        .as_ref()
        .and_then(|s| s.path.as_ref())
        .filter(|_| !a.dev)
        .map(|p| {
            let mut s = p.clone().into_os_string();
            s.push(".crl-number");
            PathBuf::from(s)
        });
    let tls = config
        .tls
        .as_ref()
        .map(|t| tls_server_config(t, crl_floor.as_deref()))
        .transpose()?;
    let listen = a
        .listen
        .or(config.listen)
        .unwrap_or_else(|| "127.0.0.1:8200".into());
    let addr: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("'{listen}' is not an IP address and port"))?;
    if tls.is_none() && !addr.ip().is_loopback() {
        bail!(
            "plaintext HTTP is allowed only on loopback: listen on 127.0.0.1, or serve HTTPS with --tls-cert and --tls-key"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (storage, kind): (Arc<dyn Physical>, &str) = if a.dev {
        (Arc::new(Memory::default()), "inmem")
    } else {
        let path = config.storage.and_then(|s| s.path).context(
            "the configuration needs [storage] path = \"…/vault.db\" (or CITADEL_STORAGE_PATH)",
        )?;
        (
            Arc::new(Cached::new(
                Sqlite::open(&path)?,
                citadel_vault::storage::DEFAULT_CACHE_ENTRIES,
            )),
            "sqlite",
        )
    };
    let mut core_config = CoreConfig::default();
    if a.accept_storage_changes {
        core_config.on_tamper = citadel_vault::barrier::OnTamper::Accept;
    }
    let audit = config.audit.unwrap_or_default();
    if let Some(s) = audit.checkpoint_interval_seconds {
        if !(0.01..=3600.0).contains(&s) {
            bail!("[audit] checkpoint_interval_seconds must be between 0.01 and 3600");
        }
        core_config.checkpoint_every = std::time::Duration::from_secs_f64(s);
    }
    core_config.audit_file_dirs = a
        .audit_file_dir
        .iter()
        .chain(&audit.file_directories)
        .cloned()
        .collect();
    for d in &core_config.audit_file_dirs {
        if !d.is_dir() {
            bail!(
                "audit file directory {} is not a directory: create it (mode 0700) first",
                d.display()
            );
        }
    }
    core_config.unauthenticated_metrics = config
        .telemetry
        .is_some_and(|t| t.unauthenticated_metrics_access);
    let core = Arc::new(Core::new(storage, kind, core_config));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        let mut out = std::io::stdout().lock();
        if a.dev {
            let (key, root) = core.init_dev()?;
            writeln!(
                out,
                "WARNING: dev mode: in-memory storage, unsealed, root token printed below."
            )?;
            writeln!(out, "Api Address: {scheme}://{local}")?;
            if let Some((_, d)) = &tls {
                writeln!(out, "Listener: {d}")?;
            }
            writeln!(out, "Unseal Key: {}", citadel_vault_b64(&key))?;
            writeln!(out, "Root Token: {}", root.as_str())?;
        } else {
            writeln!(out, "Api Address: {scheme}://{local}")?;
            if let Some((_, d)) = &tls {
                writeln!(out, "Listener: {d}")?;
            }
            writeln!(
                out,
                "storage: sqlite; {}",
                if core.is_initialized()? {
                    "sealed: unseal it with `citadel vault unseal`"
                } else {
                    "not initialised: run `citadel vault init`"
                }
            )?;
        }
        out.flush()?;
        drop(out);
        tracing::info!(
            target: "citadel_vault::server",
            address = %format!("{scheme}://{local}"),
            storage = kind,
            tls = tls.as_ref().map_or("none", |(_, d)| d.as_str()),
            sealed = core.is_sealed(),
            "vault started"
        );
        // SIGTERM (systemd, docker stop, kill) stops the server as Ctrl-C
        // does: requests in flight finish, then the audit devices write
        // their last anchor and checkpoint as the core is dropped.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("could not listen for SIGTERM")?;
        // SIGHUP (logrotate's postrotate): `file` audit devices open their
        // file again at its path, as Vault's do.
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("could not listen for SIGHUP")?;
        // Weak: shutting down drops the core (its devices' last
        // checkpoint) whatever this task is doing.
        let reopening = Arc::downgrade(&core);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let Some(core) = reopening.upgrade() else {
                    return;
                };
                tracing::info!(target: "citadel_vault::server", "SIGHUP: reopening audit files");
                core.reopen_audit_files();
            }
        });
        let stop = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!(target: "citadel_vault::server", "shutting down: finishing requests in flight");
        };
        let r = match tls {
            Some((source, _)) => {
                citadel_vault::http::serve_tls(listener, core, source, ServeOptions::default(), stop)
                    .await
            }
            None => citadel_vault::http::serve(listener, core, ServeOptions::default(), stop).await,
        }
        .context("the server failed");
        tracing::info!(target: "citadel_vault::server", "vault stopped");
        r
    })
}

/// Logs to standard error, as text or JSON lines, from `level` up. Lines
/// are written by a logging thread, in batches (one write per batch, not
/// per line), so a request never waits on the disk; nothing is dropped (a
/// full buffer makes the next line wait). The returned guard flushes what
/// is left when it is dropped.
fn init_logging(
    format: LogFormat,
    level: &str,
) -> Result<tracing_appender::non_blocking::WorkerGuard> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("--log-level {level:?}: use error, warn, info, debug or trace"))?;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(65_536)
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let r = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    r.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))?;
    Ok(guard)
}

/// Where TLS connections get their config for the `[tls]` section, and a
/// description of it. With a client CA, the config follows the CA's CRL.
fn tls_server_config(t: &TlsConfig, crl_floor: Option<&Path>) -> Result<(TlsSource, String)> {
    use citadel_tls::config::{Identity, TlsOptions, server_config, server_config_server_auth};
    let (Some(cert), Some(key)) = (&t.cert, &t.key) else {
        bail!(
            "TLS settings were given without a certificate and its key: set [tls] cert and key (or --tls-cert and --tls-key, or CITADEL_TLS_CERT and CITADEL_TLS_KEY)"
        );
    };
    let identity = Identity::load(cert, key)?;
    Ok(match &t.client_ca {
        Some(dir) => {
            if t.allow_classical_kx {
                bail!(
                    "allow_classical_kx applies to server-authenticated TLS only; mutual TLS is post-quantum only"
                );
            }
            let floor = match crl_floor {
                Some(p) => citadel_tls::crl::Floor::load(p)?,
                None => citadel_tls::crl::Floor::in_memory(),
            };
            let configs =
                citadel_tls::reload::ReloadingServerConfig::new(dir, floor, move |trust| {
                    server_config(identity.clone(), trust, TlsOptions::default())
                })
                .with_context(|| format!("cannot load the client CA from {}", dir.display()))?;
            let dir = dir.clone();
            let source: TlsSource = Arc::new(move || {
                let (cfg, err) = configs.current();
                if let Some(e) = err {
                    tracing::warn!(
                        target: "citadel_vault::server",
                        ca = %dir.display(),
                        error = %e,
                        "cannot reload the client CA's files; the previous revocation list stays in force"
                    );
                }
                cfg
            });
            (
                source,
                "mutual TLS 1.3 (X25519MLKEM768; clients need ML-DSA certificates from the CA)"
                    .to_string(),
            )
        }
        None => {
            let cfg = server_config_server_auth(identity, t.allow_classical_kx)?;
            let source: TlsSource = Arc::new(move || cfg.clone());
            (
                source,
                if t.allow_classical_kx {
                    "TLS 1.3, X25519MLKEM768 preferred, X25519 accepted".to_string()
                } else {
                    "TLS 1.3, X25519MLKEM768 key exchange only".to_string()
                },
            )
        }
    })
}

fn citadel_vault_b64(k: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(k)
}
