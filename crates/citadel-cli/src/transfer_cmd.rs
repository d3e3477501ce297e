//! `citadel send` and `citadel recv`: verified, resumable file transfer over
//! post-quantum mutual TLS.

use crate::files::print_json;
use anyhow::{Context, Result, anyhow, bail};
use citadel_crypto::PrivateKey;
use citadel_tls::config::{Identity, TlsOptions, Trust, client_config, explain};
use citadel_tls::info::negotiated;
use citadel_tls::rustls::{self, ClientConnection, StreamOwned, pki_types::ServerName};
use citadel_tls::stream::ClientStream;
use citadel_transfer::manifest::Manifest;
use citadel_transfer::session;
use clap::Args;
use serde_json::json;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub(crate) struct TlsArgs {
    /// The CA directory (only its public files are read: ca.crt, crl.pem).
    #[arg(long)]
    pub(crate) ca: PathBuf,
    /// This side's certificate chain (PEM), e.g. CA/NAME.crt.
    #[arg(long)]
    pub(crate) cert: PathBuf,
    /// This side's private key (PKCS#8 PEM), e.g. CA/NAME.key.
    #[arg(long)]
    pub(crate) key: PathBuf,
    /// Accept peers that offer only classical key exchange or certificates
    /// (weakens the channel against quantum attacks).
    #[arg(long)]
    pub(crate) allow_classical: bool,
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
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct RecvArgs {
    /// Address to listen on, e.g. 0.0.0.0:7443 (port 0 picks a free port).
    #[arg(long)]
    pub(crate) listen: String,
    /// Directory the files arrive in. Files get the sender's permission
    /// bits less this process's umask (never setuid, setgid or sticky);
    /// the receiver keeps its partial files in DIR/.citadel-recv.
    #[arg(long)]
    pub(crate) dir: PathBuf,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
    /// Receive one transfer, then exit (a refused peer also ends it).
    #[arg(long)]
    pub(crate) once: bool,
    /// Print a JSON summary per transfer.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn tls_error(e: &std::io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .map(explain)
}

/// How long `send` waits to connect and complete the TLS handshake.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long either end waits for a silent peer.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Which end a message is written for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Sender,
    Receiver,
}

/// A transfer error as one plain sentence: a TLS failure underneath in
/// plain words, a peer that went away said once (no library URL, no cause
/// repeated by the error chain).
pub(crate) fn transfer_error(e: citadel_transfer::Error, side: Side) -> anyhow::Error {
    use citadel_transfer::Error as E;
    let inner = match &e {
        E::Stream(inner) => inner.as_ref(),
        other => other,
    };
    if let E::Connection { context, source } = inner {
        let refused = source
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .is_some_and(citadel_tls::config::peer_refused_our_certificate);
        if refused && side == Side::Sender {
            return anyhow!(
                "the receiver refused our certificate (revoked, or issued by another CA)"
            );
        }
        if let Some(why) = tls_error(source) {
            return anyhow!("{context}: {why}");
        }
        if inner.is_disconnect() {
            return anyhow!(match side {
                Side::Receiver => citadel_transfer::SENDER_DISCONNECTED,
                Side::Sender =>
                    "the receiver closed the connection before the transfer ended; sending again resumes",
            });
        }
        if source.kind() == std::io::ErrorKind::WouldBlock
            || source.kind() == std::io::ErrorKind::TimedOut
        {
            return anyhow!("the peer sent nothing for too long; connection dropped");
        }
    }
    anyhow!("{e}")
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
) -> Result<(ClientStream, citadel_tls::info::Negotiated)> {
    connect_from(to, addr, cfg, None)
}

/// [`connect`] from a given local IPv4 address.
fn connect_from(
    to: &str,
    addr: std::net::SocketAddr,
    cfg: &std::sync::Arc<rustls::ClientConfig>,
    source: Option<std::net::Ipv4Addr>,
) -> Result<(ClientStream, citadel_tls::info::Negotiated)> {
    let mut tcp = match (source, addr) {
        (Some(ip), std::net::SocketAddr::V4(v4)) => {
            use rustix::net::{AddressFamily, SocketType, bind, connect as tcp_connect, socket};
            let sock = socket(AddressFamily::INET, SocketType::STREAM, None)?;
            bind(&sock, &std::net::SocketAddrV4::new(ip, 0))
                .with_context(|| format!("cannot bind to {ip}"))?;
            tcp_connect(&sock, &v4).with_context(|| format!("cannot connect to {to}"))?;
            TcpStream::from(sock)
        }
        (Some(_), _) => bail!("--from takes IPv4 addresses, for an IPv4 receiver"),
        (None, _) => TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .with_context(|| format!("cannot connect to {to}"))?,
    };
    tcp.set_nodelay(true)?;
    // A receiver that stops answering is given up on, not waited for
    // forever: the handshake within 30 s, then 300 s of silence at most.
    tcp.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    tcp.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let mut conn = ClientConnection::new(cfg.clone(), server_name(to)?)?;
    handshake(&mut conn, &mut tcp)?;
    let info = negotiated(&conn);
    // Let one write hand the socket up to 1 MiB of records (a system call
    // per 64 KiB otherwise).
    conn.set_buffer_limit(Some(1 << 20));
    tcp.set_read_timeout(Some(IDLE_TIMEOUT))?;
    Ok((ClientStream::new(StreamOwned::new(conn, tcp)), info))
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
    let key_pem = zeroize::Zeroizing::new(
        std::fs::read_to_string(&a.tls.key)
            .with_context(|| format!("cannot read {}", a.tls.key.display()))?,
    );
    let signer = match PrivateKey::from_pem(&key_pem, None) {
        Ok(PrivateKey::Signature(k)) => k,
        Ok(PrivateKey::Kem(_)) => bail!("{} is not a signing key", a.tls.key.display()),
        Err(_) if citadel_tls::ca::is_classical_key_pem(&key_pem) => bail!(
            "{} is a classical (ECDSA) key, as `citadel ca init --classical` issues: a transfer's manifest is signed with the sender's post-quantum key (ML-DSA), so issue the sender's certificate from a CA made without --classical",
            a.tls.key.display()
        ),
        Err(e) => return Err(e).context(format!("cannot load {}", a.tls.key.display())),
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
    let bars = Bars::new(
        crate::files::show_progress(crate::quiet() || a.json),
        &manifest,
    );
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
    let summary = result.map_err(|e| transfer_error(e, Side::Sender))?;
    let secs = start.elapsed().as_secs_f64();
    report(a.json, &summary, secs, &info);
    Ok(())
}

pub(crate) fn report(
    json_out: bool,
    s: &session::Summary,
    secs: f64,
    info: &citadel_tls::info::Negotiated,
) {
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
        crate::say!(
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
    from: &[std::net::Ipv4Addr],
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
    // The first failure stops the other workers before their next connection.
    let failed = std::sync::atomic::AtomicBool::new(false);
    let open = std::sync::Mutex::new(Vec::with_capacity(count));
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= count || failed.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let source = (!from.is_empty()).then(|| from[i % from.len()]);
                        let (stream, _) =
                            connect_from(to, addr, &cfg, source).inspect_err(|_| {
                                failed.store(true, std::sync::atomic::Ordering::Relaxed)
                            })?;
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
        s.get_mut().sock.set_nonblocking(true)?;
        // Nothing to read (session tickets aside) and no end of stream:
        // the receiver still holds the connection.
        let mut buf = [0u8; 64];
        if matches!(std::io::Read::read(s, &mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        {
            still_open += 1;
        }
    }
    for s in &mut open {
        let t = s.get_mut();
        t.conn.send_close_notify();
        let _ = t.conn.complete_io(&mut t.sock);
    }
    Ok(Held {
        opened: open.len(),
        seconds_to_open,
        still_open,
    })
}
