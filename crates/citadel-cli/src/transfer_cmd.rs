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

/// How long `recv` waits for a silent sender before dropping the connection.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

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
    /// Parallel TLS connections to spread the chunks over (1-64; never more
    /// than there are 4 MiB chunks to send). Two use both cores of a small
    /// machine; more help where one connection's encryption is the limit.
    #[arg(long, default_value_t = 2)]
    streams: usize,
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

/// A transfer error, with a TLS failure underneath explained in plain words.
fn transfer_error(e: citadel_transfer::Error) -> anyhow::Error {
    if let citadel_transfer::Error::Connection { context, source } = &e {
        if let Some(why) = tls_error(source) {
            return anyhow!("{context}: {why}");
        }
    }
    e.into()
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

/// Opens a TCP connection to `to` and completes a TLS handshake.
fn connect(
    to: &str,
    addr: std::net::SocketAddr,
    cfg: &std::sync::Arc<rustls::ClientConfig>,
) -> Result<(
    StreamOwned<ClientConnection, TcpStream>,
    citadel_tls::info::Negotiated,
)> {
    let mut tcp = TcpStream::connect(addr).with_context(|| format!("cannot connect to {to}"))?;
    tcp.set_nodelay(true)?;
    let mut conn = ClientConnection::new(cfg.clone(), server_name(to)?)?;
    handshake(&mut conn, &mut tcp)?;
    let info = negotiated(&conn);
    Ok((StreamOwned::new(conn, tcp), info))
}

/// Progress on a terminal: an overall bar, and one bar per file being sent
/// (several at once with parallel streams); hidden otherwise.
struct Bars {
    multi: indicatif::MultiProgress,
    total: indicatif::ProgressBar,
    files: std::sync::Mutex<std::collections::HashMap<usize, (indicatif::ProgressBar, u64)>>,
    sizes: Vec<(String, u64)>,
}

impl Bars {
    fn new(show: bool, manifest: &Manifest) -> Self {
        let multi = if show {
            indicatif::MultiProgress::new()
        } else {
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
        };
        let sizes: Vec<(String, u64)> = manifest
            .files
            .iter()
            .map(|f| (f.path.clone(), f.size))
            .collect();
        let total = multi.add(indicatif::ProgressBar::new(sizes.iter().map(|f| f.1).sum()));
        total.set_style(Self::style(
            "{msg:24!} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ));
        total.set_message(format!("total ({} files)", sizes.len()));
        Self {
            multi,
            total,
            files: Default::default(),
            sizes,
        }
    }

    fn style(t: &str) -> indicatif::ProgressStyle {
        indicatif::ProgressStyle::with_template(t)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    }

    fn progress(&self, file: usize, bytes: u64) {
        self.total.inc(bytes);
        let Some((name, size)) = self.sizes.get(file) else {
            return;
        };
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let (bar, done) = files.entry(file).or_insert_with(|| {
            let bar = self.multi.add(indicatif::ProgressBar::new(*size));
            bar.set_style(Self::style(
                "  {msg:22!} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            ));
            bar.set_message(name.clone());
            (bar, 0)
        });
        bar.inc(bytes);
        *done += bytes;
        if *done >= *size {
            bar.finish_and_clear();
            self.multi.remove(bar);
            files.remove(&file);
        }
    }

    fn finish(&self) {
        for (bar, _) in self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            bar.finish_and_clear();
        }
        self.total.finish_and_clear();
    }
}

pub(crate) fn send(a: SendArgs) -> Result<()> {
    if a.streams == 0 || a.streams > 64 {
        bail!("--streams must be between 1 and 64");
    }
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
    let start = Instant::now();
    let (mut tls, info) = connect(&a.to, addr, &cfg)?;
    let bars = Bars::new(crate::files::show_progress(a.quiet || a.json), &manifest);
    let more = |_k: usize| -> std::result::Result<Box<dyn session::Stream>, String> {
        connect(&a.to, addr, &cfg)
            .map(|(s, _)| Box::new(s) as Box<dyn session::Stream>)
            .map_err(|e| format!("{e:#}"))
    };
    let result = session::send_parallel(
        &mut tls,
        &more,
        a.streams,
        &manifest,
        &locals,
        &signer,
        &|file, bytes| bars.progress(file, bytes),
    );
    bars.finish();
    let summary = result.map_err(transfer_error)?;
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
            "streams": s.streams, "seconds": secs, "mb_per_s": mbps, "negotiated": info,
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
    let opts = TlsOptions {
        allow_classical: a.tls.allow_classical,
    };
    let identity = Identity::load(&a.tls.cert, &a.tls.key)?;
    // The CA's revocation list is re-read when it changes, so `citadel ca
    // revoke` takes effect for new connections without a restart.
    let configs = citadel_tls::reload::ReloadingServerConfig::new(&a.tls.ca, move |t| {
        server_config(identity.clone(), t, opts)
    })?;
    let ca_dir = a.tls.ca.clone();
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let probe = a.dir.join(".citadel-write-test");
    std::fs::write(&probe, b"").with_context(|| format!("cannot write to {}", a.dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    let listener =
        TcpListener::bind(&a.listen).with_context(|| format!("cannot listen on {}", a.listen))?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let receiver = std::sync::Arc::new(session::Receiver::new(&a.dir));
    // Every connection runs on its own thread (the streams of a parallel
    // transfer must meet); with --once the first transfer to end, or the
    // first refused connection, ends the process with its outcome.
    let (ended, outcome) = std::sync::mpsc::channel::<Result<()>>();
    let json_out = a.json;
    let once = a.once;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let (mut tcp, peer) = match conn.and_then(|t| t.peer_addr().map(|p| (t, p))) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("citadel: accept failed: {e}");
                    continue;
                }
            };
            let (cfg, reload_error) = configs.current();
            if let Some(e) = reload_error {
                eprintln!(
                    "citadel: cannot reload the CA's files in {}: {e:#}; keeping the previous revocation list",
                    ca_dir.display()
                );
            }
            let receiver = receiver.clone();
            let ended = ended.clone();
            std::thread::spawn(move || {
                let work = || -> Result<bool> {
                    tcp.set_nodelay(true)?;
                    // A peer that goes silent is dropped (its verified data
                    // is kept for a resumed run).
                    tcp.set_read_timeout(Some(IDLE_TIMEOUT))?;
                    let mut conn = ServerConnection::new(cfg)?;
                    let start = Instant::now();
                    handshake(&mut conn, &mut tcp)?;
                    let info = negotiated(&conn);
                    let sender = peer_public_key(&conn).ok_or_else(|| {
                        anyhow!("the client certificate's key cannot sign manifests")
                    })?;
                    let mut tls = StreamOwned::new(conn, tcp);
                    // A further stream of a parallel transfer reports nothing
                    // itself: its transfer's first connection reports the whole.
                    Ok(
                        match receiver.serve(&mut tls, &sender).map_err(transfer_error)? {
                            Some(summary) => {
                                report(json_out, &summary, start.elapsed().as_secs_f64(), &info);
                                true
                            }
                            None => false,
                        },
                    )
                };
                let result = work();
                // With --once, a failed further stream is only reported: the
                // transfer's first connection decides the outcome.
                let joined = result.as_ref().is_err_and(|e| {
                    matches!(
                        e.downcast_ref::<citadel_transfer::Error>(),
                        Some(citadel_transfer::Error::Stream(_))
                    )
                });
                let result = result.map_err(|e| anyhow!("{peer}: {e:#}"));
                match (once, result) {
                    (true, Ok(false)) => {}
                    (true, Err(e)) if joined => eprintln!("citadel: {e:#}"),
                    (true, r) => {
                        let _ = ended.send(r.map(|_| ()));
                    }
                    (false, Err(e)) => eprintln!("citadel: {e:#}"),
                    (false, Ok(_)) => {}
                }
            });
        }
    });
    outcome
        .recv()
        .map_err(|_| anyhow!("the listener stopped"))?
}

/// What `citadel bench connections` measured.
pub(crate) struct Held {
    pub(crate) opened: usize,
    pub(crate) seconds_to_open: f64,
    pub(crate) still_open: usize,
}

/// Opens `count` mutual-TLS connections to `to` (4 at a time), holds them
/// all for `hold`, then counts how many the receiver kept open.
pub(crate) fn hold_connections(
    to: &str,
    tls: &TlsArgs,
    count: usize,
    hold: std::time::Duration,
) -> Result<Held> {
    let trust = Trust::from_dir(&tls.ca)?;
    let opts = TlsOptions {
        allow_classical: tls.allow_classical,
    };
    let cfg = client_config(Identity::load(&tls.cert, &tls.key)?, &trust, opts)?;
    let addr = to
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {to}"))?
        .next()
        .ok_or_else(|| anyhow!("{to} resolves to no address"))?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let open = std::sync::Mutex::new(Vec::with_capacity(count));
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                        let (stream, _) = connect(to, addr, &cfg)?;
                        open.lock().unwrap_or_else(|p| p.into_inner()).push(stream);
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow!("a connecting thread panicked"))??;
        }
        Ok(())
    })?;
    let seconds_to_open = start.elapsed().as_secs_f64();
    std::thread::sleep(hold);
    let mut open = open.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut still_open = 0;
    for s in &mut open {
        s.sock.set_nonblocking(true)?;
        // Nothing to read (session tickets aside) and no end of stream:
        // the receiver still holds the connection.
        let mut buf = [0u8; 64];
        if matches!(std::io::Read::read(s, &mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        {
            still_open += 1;
        }
    }
    for s in &mut open {
        s.conn.send_close_notify();
        let _ = s.conn.complete_io(&mut s.sock);
    }
    Ok(Held {
        opened: open.len(),
        seconds_to_open,
        still_open,
    })
}
