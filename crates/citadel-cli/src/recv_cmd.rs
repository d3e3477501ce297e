//! `citadel recv`: the listener. Connections are accepted and their TLS
//! handshakes run on tokio, with bounds, so that connections which never
//! speak TLS (or never start a transfer) cost a task, not a thread: at most
//! [`MAX_CONNECTIONS`] open at once, at most [`MAX_PENDING_PER_ADDRESS`]
//! from one address before they carry a transfer, a handshake within
//! [`HANDSHAKE_TIMEOUT`] and a first frame within [`IDLE_TIMEOUT`]. A
//! connection that has started a transfer moves to a thread of its own for
//! the blocking session (at most [`MAX_SESSIONS`] at once).

use crate::transfer_cmd::{RecvArgs, Side, report, tls_error, transfer_error};
use anyhow::{Context, Result, anyhow, bail};
use citadel_tls::config::{Identity, TlsOptions, server_config};
use citadel_tls::info::{negotiated, peer_public_key};
use citadel_tls::rustls::{ServerConnection, StreamOwned};
use citadel_transfer::session;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc};

/// How long a connection has to complete its TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `recv` waits for a silent sender before dropping the connection.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Connections open at once; more are closed as soon as they are accepted.
pub(crate) const MAX_CONNECTIONS: usize = 4096;
/// Connections from one address that have not started a transfer yet.
pub(crate) const MAX_PENDING_PER_ADDRESS: usize = 256;
/// Connections carrying a transfer at once (each on a thread).
pub(crate) const MAX_SESSIONS: usize = 256;
/// Connections carrying a transfer from one address at once (a transfer
/// uses at most 64 streams).
pub(crate) const MAX_SESSIONS_PER_ADDRESS: usize = 64;
/// How long a connection that started a transfer waits for a thread.
pub(crate) const SESSION_WAIT: Duration = Duration::from_secs(10);

/// Connections per address (not yet carrying a transfer, or carrying one),
/// up to a limit.
struct PerAddress {
    counts: Mutex<HashMap<IpAddr, usize>>,
    limit: usize,
}

/// One connection counted against its address until dropped.
struct PendingSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn new(limit: usize) -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
            limit,
        }
    }

    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<PendingSlot> {
        let mut t = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = t.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(PendingSlot {
            table: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut t = self.table.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = t.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

/// The first bytes already read (asynchronously, to learn that the peer
/// started a transfer), then the stream.
struct Prefixed<S> {
    prefix: [u8; 5],
    pos: usize,
    inner: S,
}

impl<S: Read> Read for Prefixed<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Prefixed<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A socket read in large blocks: rustls asks for at most one TLS record
/// (16 KiB) per read, so without this each record costs a system call and,
/// when the receiver keeps up, a wake-up. Writes go straight through.
struct BufTcp {
    reader: std::io::BufReader<std::net::TcpStream>,
}

/// Bytes read from the socket at once (when that much has arrived).
const SOCKET_READ: usize = 256 * 1024;

impl BufTcp {
    fn new(tcp: std::net::TcpStream) -> Self {
        Self {
            reader: std::io::BufReader::with_capacity(SOCKET_READ, tcp),
        }
    }
}

impl Read for BufTcp {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Write for BufTcp {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.reader.get_mut().write(buf)
    }
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        self.reader.get_mut().write_vectored(bufs)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.reader.get_mut().flush()
    }
}

/// How a connection ended.
enum Ended {
    /// A transfer's first connection: its summary was reported.
    Transfer,
    /// A further stream of a transfer, or a connection that closed without
    /// starting one.
    Quiet,
}

/// What a failed connection means for `--once`.
struct Failure {
    error: anyhow::Error,
    /// The peer was refused or its transfer failed (ends `--once`); not a
    /// silent connection or a further stream.
    decisive: bool,
    /// A connection that never completed a TLS handshake (a probe, a scan,
    /// junk): logged as a count at most every [`PROBE_LOG_EVERY`].
    probe: bool,
}

fn decisive(error: anyhow::Error) -> Failure {
    Failure {
        error,
        decisive: true,
        probe: false,
    }
}

fn quiet(error: anyhow::Error) -> Failure {
    Failure {
        error,
        decisive: false,
        probe: false,
    }
}

fn probe(error: anyhow::Error) -> Failure {
    Failure {
        error,
        decisive: false,
        probe: true,
    }
}

/// How often dropped probes are summed up in the log.
const PROBE_LOG_EVERY: Duration = Duration::from_secs(10);

/// Connections dropped before a TLS handshake completed, since the last
/// log line about them.
#[derive(Default)]
struct Probes {
    count: u64,
    last: Option<String>,
}

impl Probes {
    fn flush(&mut self) {
        if self.count > 0 {
            eprintln!(
                "citadel: {} connection(s) dropped before completing a TLS handshake in the last {} s (the last: {})",
                self.count,
                PROBE_LOG_EVERY.as_secs(),
                self.last.take().unwrap_or_default()
            );
            self.count = 0;
        }
    }
}

struct Shared {
    configs: citadel_tls::reload::ReloadingServerConfig,
    ca_dir: std::path::PathBuf,
    receiver: session::Receiver,
    json: bool,
    sessions: Arc<Semaphore>,
    sessions_per_address: Arc<PerAddress>,
}

/// Raises the soft limit on open descriptors to the hard one, so the
/// connection bounds, not the default limit of 1,024, decide what is served.
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: l.maximum,
                maximum: l.maximum,
            },
        );
    }
}

/// `path` with every link resolved: the nearest part that exists,
/// canonicalized, then the rest as named (a directory not made yet).
fn resolved(path: &std::path::Path) -> Result<std::path::PathBuf> {
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        match std::fs::canonicalize(if at.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            at
        }) {
            Ok(real) => return Ok(rest.into_iter().rev().fold(real, |p, c| p.join(c))),
            Err(_) => match (at.parent(), at.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_owned());
                    at = parent;
                }
                _ => bail!("cannot resolve {}", path.display()),
            },
        }
    }
}

pub(crate) fn recv(a: RecvArgs) -> Result<()> {
    let umask = crate::files::umask();
    raise_fd_limit();
    let opts = TlsOptions {
        allow_classical: a.tls.allow_classical,
    };
    let identity = Identity::load(&a.tls.cert, &a.tls.key)?;
    // The CA's revocation list is re-read when it changes, so `citadel ca
    // revoke` takes effect for new connections without a restart.
    // Senders write anywhere in the inbox: it must not hold the CA (whose
    // ca.json a sender could then replace), nor lie inside it. Checked
    // before the inbox's state directory is made.
    let (inbox, ca) = (resolved(&a.dir)?, resolved(&a.tls.ca)?);
    if inbox.starts_with(&ca) || ca.starts_with(&inbox) {
        bail!(
            "the inbox {} and the CA directory {} overlap: a sender could replace the CA's files; receive into another directory",
            a.dir.display(),
            a.tls.ca.display()
        );
    }
    let receiver = session::Receiver::open(&a.dir, umask)
        .with_context(|| format!("cannot receive into {}", a.dir.display()))?;
    // The newest CRL number seen is kept in the receiver's own state
    // directory: an older crl.pem copied back is refused, across restarts.
    let floor = citadel_tls::crl::Floor::load(
        &a.dir
            .join(citadel_transfer::beneath::STATE_DIR)
            .join("crl-number"),
    )?;
    let configs = citadel_tls::reload::ReloadingServerConfig::new(&a.tls.ca, floor, move |t| {
        server_config(identity.clone(), t, opts)
    })?;
    let listener = std::net::TcpListener::bind(&a.listen)
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    listener.set_nonblocking(true)?;
    // One document per line with --json, the first saying where.
    if a.json {
        println!(
            "{}",
            serde_json::json!({"listening": listener.local_addr()?.to_string()})
        );
    } else {
        println!("listening on {}", listener.local_addr()?);
    }
    std::io::stdout().flush()?;
    let shared = Arc::new(Shared {
        configs,
        ca_dir: a.tls.ca.clone(),
        receiver,
        json: a.json,
        sessions: Arc::new(Semaphore::new(MAX_SESSIONS)),
        sessions_per_address: Arc::new(PerAddress::new(MAX_SESSIONS_PER_ADDRESS)),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("citadel-recv")
        .build()
        .context("cannot start the runtime")?;
    let outcome = rt.block_on(accept_loop(listener, shared, a.once));
    // With --once the process ends with its transfer: a session still open
    // beside it (a stalled sender) is dropped, not waited for up to the
    // idle timeout; its verified chunks stay for a resumed send.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    outcome
}

async fn accept_loop(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    once: bool,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let pending = Arc::new(PerAddress::new(MAX_PENDING_PER_ADDRESS));
    // With --once, the first transfer to end, or the first peer refused,
    // ends the process with its outcome.
    let (ended, mut outcome) = mpsc::unbounded_channel::<Result<()>>();
    let probes = Arc::new(Mutex::new(Probes::default()));
    let mut tick = tokio::time::interval(PROBE_LOG_EVERY);
    loop {
        let (tcp, peer) = tokio::select! {
            r = outcome.recv() => return r.unwrap_or_else(|| Err(anyhow!("the listener stopped"))),
            _ = tick.tick() => {
                probes.lock().unwrap_or_else(|p| p.into_inner()).flush();
                continue;
            }
            a = listener.accept() => match a {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it
                    // was accepted: wait a little rather than spin.
                    eprintln!("citadel: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Over the bounds: closed at once, so the backlog keeps moving for
        // everyone else.
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            continue;
        };
        let Some(slot) = pending.take(peer.ip()) else {
            continue;
        };
        let shared = Arc::clone(&shared);
        let ended = ended.clone();
        let probes = Arc::clone(&probes);
        tokio::spawn(async move {
            let r = connection(tcp, &shared, slot).await;
            drop(permit);
            match (once, r) {
                (true, Ok(Ended::Transfer)) => {
                    let _ = ended.send(Ok(()));
                }
                (_, Ok(_)) => {}
                (true, Err(f)) if f.decisive => {
                    let _ = ended.send(Err(anyhow!("{peer}: {:#}", f.error)));
                }
                (_, Err(f)) if f.probe => {
                    let mut p = probes.lock().unwrap_or_else(|p| p.into_inner());
                    p.count += 1;
                    p.last = Some(format!("{peer}: {:#}", f.error));
                }
                (_, Err(f)) => eprintln!("citadel: {peer}: {:#}", f.error),
            }
        });
    }
}

/// One connection: handshake, wait for the first frame, then the blocking
/// session on a thread.
async fn connection(
    tcp: tokio::net::TcpStream,
    shared: &Arc<Shared>,
    pending: PendingSlot,
) -> Result<Ended, Failure> {
    let start = Instant::now();
    let peer_ip = pending.ip;
    tcp.set_nodelay(true).map_err(|e| quiet(e.into()))?;
    let (cfg, reload_error) = shared.configs.current();
    if let Some(e) = reload_error {
        eprintln!(
            "citadel: the CA in {}: {e:#} (connections are checked against the last revocation list that loaded)",
            shared.ca_dir.display()
        );
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let accepted =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp).into_fallible()).await {
            Err(_) => {
                return Err(probe(anyhow!(
                    "no TLS handshake within {} s",
                    HANDSHAKE_TIMEOUT.as_secs()
                )));
            }
            Ok(r) => r,
        };
    let mut tls = match accepted {
        Ok(t) => t,
        Err((e, tcp)) => {
            // The alert that says why was sent; let the peer read it before
            // the connection closes (closing with its data unread would
            // reset the connection and lose the alert).
            linger(tcp).await;
            // With --once, a peer refused for its certificate or key
            // exchange ends the receiver; bytes that are not a TLS client
            // (a port scan, a stray HTTP request) do not.
            let refused = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<citadel_tls::rustls::Error>())
                .is_some_and(|t| {
                    matches!(
                        t,
                        citadel_tls::rustls::Error::InvalidCertificate(_)
                            | citadel_tls::rustls::Error::NoCertificatesPresented
                            | citadel_tls::rustls::Error::PeerIncompatible(_)
                    )
                });
            let why = tls_error(&e).unwrap_or_else(|| format!("the TLS handshake failed: {e}"));
            return Err(if refused {
                decisive(anyhow!("{why}"))
            } else {
                probe(anyhow!("{why}"))
            });
        }
    };
    let (info, sender) = {
        let (_, conn) = tls.get_ref();
        (negotiated(conn), peer_public_key(conn))
    };
    let sender = sender.ok_or_else(|| {
        decisive(anyhow!(
            "the client certificate's key cannot sign manifests"
        ))
    })?;
    let mut first = [0u8; 5];
    match tokio::time::timeout(IDLE_TIMEOUT, tls.read_exact(&mut first)).await {
        Err(_) => {
            return Err(quiet(anyhow!(
                "no transfer started within {} s; connection dropped",
                IDLE_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(_)) => return Ok(Ended::Quiet),
        Ok(Ok(_)) => {}
    }
    drop(pending);
    // Bounded per address and in all, and never waited for long: a peer
    // told to come back is better than one left hanging.
    let Some(per_address) = shared.sessions_per_address.take(peer_ip) else {
        return Err(refuse(
            &mut tls,
            format!("too many transfers from {peer_ip} at once ({MAX_SESSIONS_PER_ADDRESS}); try again when some have finished"),
        )
        .await);
    };
    let session = match tokio::time::timeout(
        SESSION_WAIT,
        Arc::clone(&shared.sessions).acquire_owned(),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return Err(quiet(anyhow!("the receiver is stopping"))),
        Err(_) => {
            return Err(refuse(
                &mut tls,
                format!(
                    "the receiver is busy ({MAX_SESSIONS} transfers at once); try again shortly"
                ),
            )
            .await);
        }
    };
    let (tcp, conn) = tls.into_inner();
    let tcp = tcp.into_std().map_err(|e| quiet(e.into()))?;
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let _session = (session, per_address);
        let run = || -> Result<Option<session::Summary>, citadel_transfer::Error> {
            let io = |source| citadel_transfer::Error::Connection {
                context: "the connection could not be set up",
                source,
            };
            tcp.set_nonblocking(false).map_err(io)?;
            // A peer that goes silent is dropped (its verified data is kept
            // for a resumed run).
            tcp.set_read_timeout(Some(IDLE_TIMEOUT)).map_err(io)?;
            let mut stream = Prefixed {
                prefix: first,
                pos: 0,
                inner: StreamOwned::<ServerConnection, _>::new(conn, BufTcp::new(tcp)),
            };
            let r = shared.receiver.serve(&mut stream, &sender);
            if r.is_err() {
                close_after_error(&mut stream.inner);
            }
            r
        };
        match run() {
            // A further stream of a parallel transfer reports nothing
            // itself: its transfer's first connection reports the whole.
            Ok(None) => Ok(Ended::Quiet),
            Ok(Some(summary)) => {
                report(shared.json, &summary, start.elapsed().as_secs_f64(), &info);
                Ok(Ended::Transfer)
            }
            Err(e) => {
                // A failed further stream is only reported: the transfer's
                // first connection decides the outcome.
                let joined = matches!(e, citadel_transfer::Error::Stream(_));
                Err(Failure {
                    error: transfer_error(e, Side::Receiver),
                    decisive: !joined,
                    probe: false,
                })
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err(decisive(anyhow!("the receiving thread panicked"))))
}

/// Tells a peer that started a transfer why it is turned away (an `ERROR`
/// frame, then the TLS close), and returns the failure to log.
async fn refuse<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    tls: &mut S,
    why: String,
) -> Failure {
    use tokio::io::AsyncWriteExt;
    if let Ok(frame) =
        citadel_transfer::frame::encode(citadel_transfer::frame::Kind::Error, why.as_bytes())
    {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = tls.write_all(&frame).await;
            let _ = tls.shutdown().await;
        })
        .await;
    }
    quiet(anyhow!("{why}"))
}

/// After the `ERROR` frame of a failed transfer: sends the TLS close and a
/// FIN behind it, then reads and discards what the sender still streams,
/// for at most a second (64 MiB), before the socket closes. Closing with
/// unread data makes the kernel send a reset that can overtake the frame,
/// and the sender would see "broken pipe" instead of the reason.
fn close_after_error(tls: &mut StreamOwned<ServerConnection, BufTcp>) {
    tls.conn.send_close_notify();
    let _ = tls.conn.complete_io(&mut tls.sock);
    let tcp = tls.sock.reader.get_mut();
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(100)));
    let until = std::time::Instant::now() + Duration::from_secs(1);
    let mut sink = vec![0u8; 64 * 1024];
    let mut left: usize = 64 << 20;
    while std::time::Instant::now() < until && left > 0 {
        match tcp.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => left = left.saturating_sub(n),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
}

/// Half-closes a refused connection and reads what the peer still sends,
/// for at most a second, so the alert reaches it before the close.
async fn linger(mut tcp: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = tcp.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
