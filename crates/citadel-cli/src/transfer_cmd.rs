//! `citadel send` and `citadel recv`: verified, resumable file transfer over
//! post-quantum mutual TLS.

use crate::files::print_json;
use anyhow::{Context, Result, anyhow, bail};
use citadel_crypto::PrivateKey;
use citadel_tls::config::{Identity, TlsOptions, Trust, client_config, explain, server_config};
use citadel_tls::info::{negotiated, peer_public_key};
use citadel_tls::rustls::{
    self, ClientConnection, ServerConnection, StreamOwned, pki_types::ServerName,
};
use citadel_transfer::manifest::Manifest;
use citadel_transfer::session;
use clap::Args;
use serde_json::json;
use std::io::Write;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub(crate) struct TlsArgs {
    /// The CA directory (only its public files are read: ca.crt, crl.pem).
    #[arg(long)]
    ca: PathBuf,
    /// This side's certificate chain (PEM), e.g. CA/NAME.crt.
    #[arg(long)]
    cert: PathBuf,
    /// This side's private key (PKCS#8 PEM), e.g. CA/NAME.key.
    #[arg(long)]
    key: PathBuf,
    /// Accept peers that offer only classical key exchange or certificates
    /// (weakens the channel against quantum attacks).
    #[arg(long)]
    allow_classical: bool,
}

#[derive(Args)]
pub(crate) struct SendArgs {
    /// Files and directories to send.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The receiver, HOST:PORT (the host must match its certificate).
    #[arg(long)]
    to: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// No progress bar.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct RecvArgs {
    /// Address to listen on, e.g. 0.0.0.0:7443 (port 0 picks a free port).
    #[arg(long)]
    listen: String,
    /// Directory the files arrive in.
    #[arg(long)]
    dir: PathBuf,
    #[command(flatten)]
    tls: TlsArgs,
    /// Receive one transfer, then exit.
    #[arg(long)]
    once: bool,
    /// Print a JSON summary per transfer.
    #[arg(long)]
    json: bool,
}

fn tls_error(e: &std::io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .map(explain)
}

fn handshake<D>(conn: &mut rustls::ConnectionCommon<D>, tcp: &mut TcpStream) -> Result<()> {
    while conn.is_handshaking() {
        conn.complete_io(tcp)
            .map_err(|e| anyhow!(tls_error(&e).unwrap_or_else(|| e.to_string())))?;
    }
    Ok(())
}

fn server_name(to: &str) -> Result<ServerName<'static>> {
    let host = to
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(to)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|_| anyhow!("'{host}' is not a valid host name or address"))
}

pub(crate) fn send(a: SendArgs) -> Result<()> {
    let trust = Trust::from_dir(&a.tls.ca)?;
    let opts = TlsOptions {
        allow_classical: a.tls.allow_classical,
    };
    let cfg = client_config(Identity::load(&a.tls.cert, &a.tls.key)?, &trust, opts)?;
    let signer = match PrivateKey::from_pem(
        &std::fs::read_to_string(&a.tls.key)
            .with_context(|| format!("cannot read {}", a.tls.key.display()))?,
        None,
    )? {
        PrivateKey::Signature(k) => k,
        PrivateKey::Kem(_) => bail!("{} is not a signing key", a.tls.key.display()),
    };
    let sources: Vec<&Path> = a.paths.iter().map(PathBuf::as_path).collect();
    let (manifest, locals) = Manifest::build_with_sources(&sources)?;
    let addr =
        a.to.to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", a.to))?
            .next()
            .ok_or_else(|| anyhow!("{} resolves to no address", a.to))?;
    let mut tcp =
        TcpStream::connect(addr).with_context(|| format!("cannot connect to {}", a.to))?;
    tcp.set_nodelay(true)?;
    let mut conn = ClientConnection::new(cfg, server_name(&a.to)?)?;
    let start = Instant::now();
    handshake(&mut conn, &mut tcp)?;
    let info = negotiated(&conn);
    let mut tls = StreamOwned::new(conn, tcp);
    // Progress on a terminal: one bar for the whole transfer, its message
    // naming the file being sent.
    let total: u64 = manifest.files.iter().map(|f| f.size).sum();
    let pb = if crate::files::show_progress(a.quiet) {
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:30!} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut current = usize::MAX;
    let summary =
        session::send_with_progress(&mut tls, &manifest, &locals, &signer, &mut |file, bytes| {
            if file != current {
                current = file;
                pb.set_message(
                    manifest
                        .files
                        .get(file)
                        .map(|f| f.path.clone())
                        .unwrap_or_default(),
                );
            }
            pb.inc(bytes);
        })?;
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    report(a.json, &summary, secs, &info);
    Ok(())
}

fn report(json_out: bool, s: &session::Summary, secs: f64, info: &citadel_tls::info::Negotiated) {
    let mbps = if secs > 0.0 {
        s.sent_bytes as f64 / 1e6 / secs
    } else {
        0.0
    };
    if json_out {
        print_json(&json!({
            "files": s.files, "bytes": s.bytes, "sent_bytes": s.sent_bytes, "resumed_bytes": s.resumed_bytes,
            "seconds": secs, "mb_per_s": mbps, "negotiated": info,
        }));
    } else {
        println!(
            "{} files, {} bytes ({} sent, {} resumed) in {secs:.2} s, {mbps:.1} MB/s; {} {} peer {} {}",
            s.files,
            s.bytes,
            s.sent_bytes,
            s.resumed_bytes,
            info.protocol,
            info.key_exchange,
            info.peer_signature_algorithm.as_deref().unwrap_or("?"),
            info.peer_subject.as_deref().unwrap_or("?"),
        );
    }
}

pub(crate) fn recv(a: RecvArgs) -> Result<()> {
    let trust = Trust::from_dir(&a.tls.ca)?;
    let opts = TlsOptions {
        allow_classical: a.tls.allow_classical,
    };
    let cfg = server_config(Identity::load(&a.tls.cert, &a.tls.key)?, &trust, opts)?;
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let probe = a.dir.join(".citadel-write-test");
    std::fs::write(&probe, b"").with_context(|| format!("cannot write to {}", a.dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    let listener =
        TcpListener::bind(&a.listen).with_context(|| format!("cannot listen on {}", a.listen))?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (mut tcp, peer) = listener.accept()?;
        let cfg = cfg.clone();
        let dir = a.dir.clone();
        let json_out = a.json;
        let work = move || -> Result<()> {
            tcp.set_nodelay(true)?;
            let mut conn = ServerConnection::new(cfg)?;
            let start = Instant::now();
            handshake(&mut conn, &mut tcp)?;
            let info = negotiated(&conn);
            let sender = peer_public_key(&conn).ok_or_else(|| {
                anyhow!("{peer}: the client certificate's key cannot sign manifests")
            })?;
            let mut tls = StreamOwned::new(conn, tcp);
            let summary = session::receive(&mut tls, &dir, &sender)?;
            report(json_out, &summary, start.elapsed().as_secs_f64(), &info);
            Ok(())
        };
        if a.once {
            return work();
        }
        std::thread::spawn(move || {
            if let Err(e) = work() {
                eprintln!("citadel: {peer}: {e:#}");
            }
        });
    }
}
