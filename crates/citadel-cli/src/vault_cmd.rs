//! `citadel vault`: the Vault-compatible server.

use anyhow::{Context, Result, bail};
use citadel_vault::core::Vault;
use citadel_vault::storage::{Memory, Physical, Sqlite};
use clap::{Args, Subcommand};
use serde::Deserialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand)]
pub(crate) enum VaultCommand {
    /// Run the server. `--dev`: in memory, initialised and unsealed, root
    /// token printed (like `vault server -dev`); otherwise from `--config`.
    Serve(ServeArgs),
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// A development server: in-memory storage, one unseal key, unsealed.
    /// Everything is lost when it stops.
    #[arg(long, conflicts_with = "config")]
    dev: bool,
    /// The configuration file (TOML); every key can be overridden by an
    /// environment variable: CITADEL_LISTEN, CITADEL_STORAGE_PATH.
    #[arg(long, required_unless_present = "dev")]
    config: Option<PathBuf>,
    /// Address to listen on (plaintext HTTP is allowed only on loopback).
    #[arg(long)]
    listen: Option<String>,
}

/// `citadel.toml`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Address to listen on.
    listen: Option<String>,
    /// Storage.
    storage: Option<StorageConfig>,
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
    let listen = a
        .listen
        .or(config.listen)
        .unwrap_or_else(|| "127.0.0.1:8200".into());
    let addr: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("'{listen}' is not an IP address and port"))?;
    if !addr.ip().is_loopback() {
        bail!(
            "plaintext HTTP is allowed only on loopback; listen on 127.0.0.1 (TLS listeners are not implemented yet)"
        );
    }
    let (storage, kind): (Arc<dyn Physical>, &str) = if a.dev {
        (Arc::new(Memory::default()), "inmem")
    } else {
        let path = config.storage.and_then(|s| s.path).context(
            "the configuration needs [storage] path = \"…/vault.db\" (or CITADEL_STORAGE_PATH)",
        )?;
        (Arc::new(Sqlite::open(&path)?), "sqlite")
    };
    let vault = Arc::new(Vault::new(storage, kind));
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
            let init = vault.init(1, 1)?;
            let key = hex::encode(&init.keys[0][..]);
            vault.unseal(Some(&key), false)?;
            // As `vault server -dev`: KV v2 at secret/.
            citadel_vault::mounts::mount(
                &vault,
                "secret",
                citadel_vault::mounts::Engine::KvV2,
                "key/value secret storage",
            )?;
            writeln!(
                out,
                "WARNING: dev mode: in-memory storage, unsealed, root token printed below."
            )?;
            writeln!(out, "Api Address: http://{local}")?;
            writeln!(out, "Unseal Key: {}", citadel_vault_b64(&init.keys[0]))?;
            writeln!(out, "Root Token: {}", init.root_token.as_str())?;
        } else {
            writeln!(out, "Api Address: http://{local}")?;
            writeln!(
                out,
                "storage: sqlite; {}",
                if vault.is_initialized()? {
                    "sealed: unseal with `sys/unseal`"
                } else {
                    "not initialised: run `sys/init`"
                }
            )?;
        }
        out.flush()?;
        drop(out);
        citadel_vault::http::serve(listener, vault, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the server failed")
    })
}

fn citadel_vault_b64(k: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(k)
}
