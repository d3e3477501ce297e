//! Blocking drivers for both ends of a transfer over any byte stream (a TLS
//! stream in `citadel`, a plain socket or pipe in tests): chunks stream
//! without per-chunk round trips, over one connection or several.
//!
//! With several streams the first connection carries the manifest and the
//! final acknowledgements; each further one sends `JOIN` with the transfer
//! id and then its share of the chunks (every N-th missing chunk). The
//! receiver keeps the transfers in progress in a [`Receiver`], so that a
//! joining connection writes into the same files, and accepts a `JOIN` only
//! from the key that signed the transfer's manifest.

use crate::assemble::FileAssembler;
use crate::beneath::{self, Root};
use crate::frame::{self, Kind};
use crate::manifest::{Manifest, chunk_count};
use crate::{CHUNK_SIZE, Error, Result, io};
use citadel_crypto::sig::{SigningKey, VerifyingKey};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a finished transfer did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files in the manifest.
    pub files: usize,
    /// Bytes in the manifest.
    pub bytes: u64,
    /// Bytes actually sent in chunks (the rest was already verified on the receiver).
    pub sent_bytes: u64,
    /// Bytes skipped because the receiver had them from an interrupted run.
    pub resumed_bytes: u64,
    /// Connections that carried chunks.
    pub streams: usize,
}

/// A connection the sender can open for a further stream.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Opens stream number `index` (1, 2, …) of a parallel transfer, or says why not.
pub type Connector<'a> = &'a (dyn Fn(usize) -> Result<Box<dyn Stream>, String> + Sync);

/// Called with (file index, bytes) as chunks are sent or found on the
/// receiver already; from several threads when there are several streams.
pub type Progress<'a> = &'a (dyn Fn(usize, u64) + Sync);

fn read_frame(r: &mut (impl Read + ?Sized), buf: &mut Vec<u8>) -> Result<Kind> {
    let mut h = [0u8; 5];
    r.read_exact(&mut h).map_err(|source| Error::Connection {
        context: "the connection closed before the transfer ended",
        source,
    })?;
    let (kind, len) = frame::parse_header(&h)?;
    buf.resize(len, 0);
    r.read_exact(buf).map_err(|source| Error::Connection {
        context: "the connection closed in the middle of a frame",
        source,
    })?;
    Ok(kind)
}

fn write_frame(w: &mut (impl Write + ?Sized), kind: Kind, payload: &[u8]) -> Result<()> {
    w.write_all(&frame::header(kind, payload.len())?)
        .and_then(|()| w.write_all(payload))
        .and_then(|()| {
            if kind == Kind::Chunk {
                Ok(())
            } else {
                w.flush()
            }
        })
        .map_err(|e| Error::Frame(format!("connection lost: {e}")))
}

fn peer_error(payload: &[u8]) -> Error {
    Error::Peer(String::from_utf8_lossy(payload).into_owned())
}

/// Reads the peer's answer, expecting `want`.
fn expect(stream: &mut (impl Read + ?Sized), want: Kind, buf: &mut Vec<u8>) -> Result<()> {
    match read_frame(stream, buf)? {
        k if k == want => Ok(()),
        Kind::Error => Err(peer_error(buf)),
        other => Err(Error::Frame(format!("expected {want:?}, got {other:?}"))),
    }
}

/// Sends `manifest` (whose files live at `local[i]`) over `stream`, signed
/// with `key`. Returns once the receiver confirmed every file.
pub fn send<S: Read + Write>(
    stream: &mut S,
    manifest: &Manifest,
    local: &[PathBuf],
    key: &SigningKey,
) -> Result<Summary> {
    send_parallel(
        stream,
        &|_| Err("one stream".into()),
        1,
        manifest,
        local,
        key,
        &|_, _| {},
    )
}

/// One chunk still to send: (file index, chunk index, length).
type Work = (usize, u64, usize);

/// Sends like [`send`] over `streams` connections: `primary` plus
/// `streams - 1` opened with `connect` (fewer when there are fewer chunks).
/// Connection *k* carries every *k*-th missing chunk. `progress` is called
/// after each chunk sent or skipped.
pub fn send_parallel<S: Read + Write>(
    primary: &mut S,
    connect: Connector<'_>,
    streams: usize,
    manifest: &Manifest,
    local: &[PathBuf],
    key: &SigningKey,
    progress: Progress<'_>,
) -> Result<Summary> {
    if local.len() != manifest.files.len() {
        return Err(Error::Manifest(
            "one local path per manifest file is needed".into(),
        ));
    }
    let mut buf = Vec::new();
    if let Err(e) = write_frame(primary, Kind::Manifest, &manifest.sign(key)?) {
        return Err(why_lost(primary, e));
    }
    expect(primary, Kind::Have, &mut buf)?;
    let have = parse_have(&buf, manifest)?;
    let mut summary = Summary {
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.size).sum(),
        ..Default::default()
    };
    let mut work: Vec<Work> = Vec::new();
    for (i, entry) in manifest.files.iter().enumerate() {
        for c in 0..chunk_count(entry.size) {
            let len = (entry.size - c * CHUNK_SIZE).min(CHUNK_SIZE) as usize;
            if have[i][c as usize] {
                summary.resumed_bytes += len as u64;
                progress(i, len as u64);
            } else {
                summary.sent_bytes += len as u64;
                work.push((i, c, len));
            }
        }
    }
    let streams = streams.clamp(1, work.len().max(1));
    summary.streams = streams;
    let id = crate::manifest::id_of_json(&manifest.to_json());
    let stop = Stop::default();
    let (work, stop) = (&work, &stop);
    let streamed = std::thread::scope(|s| -> Result<()> {
        let helpers: Vec<_> = (1..streams)
            .map(|k| {
                s.spawn(move || -> Result<(), Failure> {
                    let mut conn = connect(k)
                        .map_err(|message| stop.fail(Error::Connect { index: k, message }))?;
                    // The failure is ranked before the connection closes:
                    // what the receiver says after seeing it closed is a
                    // consequence, not the cause.
                    (|| -> Result<()> {
                        let mut join = id.to_vec();
                        join.extend_from_slice(&(k as u16).to_be_bytes());
                        join.extend_from_slice(&(streams as u16).to_be_bytes());
                        write_frame(&mut conn, Kind::Join, &join)?;
                        let mut buf = Vec::new();
                        expect(&mut conn, Kind::Joined, &mut buf)?;
                        let share = work.iter().skip(k).step_by(streams);
                        send_chunks(&mut conn, share, local, progress, stop)?;
                        write_frame(&mut conn, Kind::Sent, &[])?;
                        expect(&mut conn, Kind::Done, &mut buf)
                    })()
                    .map_err(|e| stop.fail(e))
                })
            })
            .collect();
        let mine = send_chunks(primary, work.iter().step_by(streams), local, progress, stop)
            .map_err(|e| stop.fail(e));
        let mut failures: Vec<Failure> = mine.err().into_iter().collect();
        for h in helpers {
            let r = h.join().unwrap_or_else(|_| {
                Err(stop.fail(Error::Frame("a sending thread panicked".into())))
            });
            failures.extend(r.err());
        }
        // The earliest real failure is the cause; "stopped because another
        // failed", and what a peer said after one stream broke, came later.
        failures
            .into_iter()
            .filter(|(_, e)| !matches!(e, Error::Aborted))
            .min_by_key(|(at, _)| *at)
            .map_or(Ok(()), |(_, e)| Err(e))
    });
    if let Err(e) = streamed {
        // The first connection may have sent its share without a fault
        // while another stream failed: it is told the cause too before it
        // closes, or the receiver could read its close before the other
        // stream's ERROR frame and report "the connection closed". A
        // second ERROR frame after one already sent is never read.
        let why = stop.reason().unwrap_or_else(|| e.to_string());
        let _ = write_frame(primary, Kind::Error, why.as_bytes());
        return Err(e);
    }
    write_frame(primary, Kind::Sent, &[])?;
    loop {
        match read_frame(primary, &mut buf)? {
            Kind::FileDone => {}
            Kind::Done => return Ok(summary),
            Kind::Error => return Err(peer_error(&buf)),
            other => {
                return Err(Error::Frame(format!(
                    "unexpected {other:?} from the receiver"
                )));
            }
        }
    }
}

/// A write to the peer failed: the peer may have said why before it
/// closed (an `ERROR` frame, or a TLS alert such as a refused
/// certificate), which is a better answer than "broken pipe".
fn why_lost(stream: &mut (impl Read + ?Sized), e: Error) -> Error {
    let mut buf = Vec::new();
    match read_frame(stream, &mut buf) {
        Ok(Kind::Error) => peer_error(&buf),
        Err(Error::Connection { context, source }) if source.get_ref().is_some() => {
            Error::Connection { context, source }
        }
        _ => e,
    }
}

/// A failed stream of a parallel send: its error, and when it failed
/// relative to the others.
type Failure = (usize, Error);

/// What the streams of a parallel send share to stop together: the first
/// failure raises `abort`, which every stream checks before each chunk.
#[derive(Default)]
struct Stop {
    abort: AtomicBool,
    order: std::sync::atomic::AtomicUsize,
    /// The first failure met on this side, in words, for the receiver.
    why: std::sync::Mutex<Option<String>>,
}

impl Stop {
    /// Records `e` as the reason told to the receiver unless another came
    /// first; returns the reason to tell.
    fn first_reason(&self, e: &Error) -> String {
        self.why
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| e.to_string())
            .clone()
    }

    /// The first failure met on this side, if any.
    fn reason(&self) -> Option<String> {
        self.why.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a failure (ranked by when it happened) and stops the others.
    fn fail(&self, e: Error) -> Failure {
        let at = self.order.fetch_add(1, Ordering::SeqCst);
        self.abort.store(true, Ordering::SeqCst);
        (at, e)
    }
}

/// Streams chunks without waiting for acknowledgements. A failure on this
/// side (a file that shrank or cannot be read), or the stop another stream
/// raised, is told to the receiver in an `ERROR` frame carrying the first
/// failure's reason, so both ends name the cause.
fn send_chunks<'a>(
    stream: &mut (impl Read + Write + ?Sized),
    share: impl Iterator<Item = &'a Work>,
    local: &[PathBuf],
    progress: Progress<'_>,
    stop: &Stop,
) -> Result<()> {
    let r = stream_chunks(stream, share, local, progress, &stop.abort);
    let told = match &r {
        Err(e @ (Error::Shrank(_) | Error::Io { .. })) => Some(stop.first_reason(e)),
        Err(Error::Aborted) => stop.reason(),
        _ => None,
    };
    if let Some(why) = told {
        let _ = write_frame(stream, Kind::Error, why.as_bytes());
    }
    r
}

fn stream_chunks<'a>(
    stream: &mut (impl Read + Write + ?Sized),
    share: impl Iterator<Item = &'a Work>,
    local: &[PathBuf],
    progress: Progress<'_>,
    abort: &AtomicBool,
) -> Result<()> {
    // One buffer holds the whole frame (header, chunk header, data), so
    // each chunk is a single write: the TLS layer cuts it into full records.
    let mut chunk = vec![0u8; 5 + 12 + CHUNK_SIZE as usize];
    let mut open: Option<(usize, File)> = None;
    for &(i, c, len) in share {
        if abort.load(Ordering::Relaxed) {
            return Err(Error::Aborted);
        }
        let path = &local[i];
        let f = match &open {
            Some((j, f)) if *j == i => f,
            _ => &open.insert((i, File::open(path).map_err(io(path))?)).1,
        };
        chunk[..5].copy_from_slice(&frame::header(Kind::Chunk, 12 + len)?);
        chunk[5..17].copy_from_slice(&frame::chunk_payload_header(i as u32, c));
        f.read_exact_at(&mut chunk[17..17 + len], c * CHUNK_SIZE)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::Shrank(path.display().to_string()),
                _ => io(path)(e),
            })?;
        if let Err(e) = stream.write_all(&chunk[..17 + len]) {
            return Err(why_lost(
                stream,
                Error::Frame(format!("connection lost: {e}")),
            ));
        }
        progress(i, len as u64);
    }
    stream.flush().map_err(|source| Error::Connection {
        context: "the connection was lost",
        source,
    })
}

fn parse_have(p: &[u8], m: &Manifest) -> Result<Vec<Vec<bool>>> {
    let counts: Vec<usize> = m
        .files
        .iter()
        .map(|f| chunk_count(f.size) as usize)
        .collect();
    frame::parse_have(p, &counts)
}

fn encode_have(assemblers: &[FileAssembler]) -> Vec<u8> {
    frame::have_payload(
        &assemblers
            .iter()
            .map(FileAssembler::have)
            .collect::<Vec<_>>(),
    )
}

/// Receives one single-stream transfer into `out_dir`, accepting only a
/// manifest signed by `sender` (the key of the sender's authenticated
/// certificate), with modes less `umask`. For parallel streams, use a
/// [`Receiver`].
pub fn receive<S: Read + Write>(
    stream: &mut S,
    out_dir: &Path,
    umask: u32,
    sender: &VerifyingKey,
) -> Result<Summary> {
    Receiver::open(out_dir, umask)?
        .serve(stream, sender)?
        .ok_or_else(|| Error::Frame("a JOIN needs the transfer's first connection".into()))
}

/// A transfer in progress on the receiver.
struct Transfer {
    sender: Vec<u8>,
    files: Vec<FileAssembler>,
    received: AtomicU64,
    failed: AtomicBool,
    /// Why it failed: the first reason, which every stream reports.
    why: Mutex<Option<String>>,
}

impl Transfer {
    /// The error a stream of a failed transfer ends with: the first
    /// failure's own reason, whichever stream met it.
    fn failed_error(&self) -> Error {
        let why = self.why.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Error::Failed(why.unwrap_or_else(|| {
            "it was taken over by a newer connection from the same sender".into()
        }))
    }

    fn write(&self, payload: &[u8]) -> Result<()> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(self.failed_error());
        }
        let (file, chunk, data) = frame::parse_chunk_payload(payload)?;
        let a = self
            .files
            .get(file as usize)
            .ok_or_else(|| Error::Frame(format!("chunk for unknown file {file}")))?;
        if a.write_chunk(chunk, data)? && !self.failed.load(Ordering::Relaxed) {
            a.finish()?;
        }
        self.received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Reads chunks until `SENT`.
    fn take_chunks(&self, stream: &mut (impl Read + ?Sized), buf: &mut Vec<u8>) -> Result<()> {
        loop {
            match read_frame(stream, buf)? {
                Kind::Chunk => self.write(buf)?,
                Kind::Sent => return Ok(()),
                Kind::Error => return Err(peer_error(buf)),
                other => {
                    return Err(Error::Frame(format!(
                        "unexpected {other:?} from the sender"
                    )));
                }
            }
        }
    }

    /// Records the first failure's reason, and keeps every verified chunk
    /// for the next attempt.
    fn fail(&self, why: &Error) {
        self.why
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| {
                if why.is_disconnect() {
                    // What the other streams then report: the cause, in
                    // words, not the socket's.
                    crate::SENDER_DISCONNECTED.into()
                } else {
                    why.to_string()
                }
            });
        self.failed.store(true, Ordering::Relaxed);
        for a in &self.files {
            let _ = a.save_state();
        }
    }
}

/// The receiving end: one per output directory, shared by all connections
/// (it is `Sync`), so that the streams of a parallel transfer meet.
pub struct Receiver {
    root: Root,
    active: Mutex<HashMap<[u8; 16], Arc<Transfer>>>,
    /// The last transfers that failed, and why: a stream that joins one
    /// after its first connection ended is told the reason.
    failed: Mutex<std::collections::VecDeque<([u8; 16], String)>>,
}

/// Failed transfers remembered for late streams.
const FAILED_KEPT: usize = 64;

/// Removes a transfer from the active set when its first connection ends
/// (unless a newer connection for the same transfer replaced it).
struct Registered<'a> {
    rx: &'a Receiver,
    id: [u8; 16],
    transfer: Arc<Transfer>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut active = self.rx.active();
        if active
            .get(&self.id)
            .is_some_and(|t| Arc::ptr_eq(t, &self.transfer))
        {
            active.remove(&self.id);
        }
        drop(active);
        if self.transfer.failed.load(Ordering::Relaxed) {
            let Error::Failed(why) = self.transfer.failed_error() else {
                return;
            };
            let mut f = self.rx.failed.lock().unwrap_or_else(|p| p.into_inner());
            if f.len() >= FAILED_KEPT {
                f.pop_front();
            }
            f.push_back((self.id, why));
        }
    }
}

impl Receiver {
    /// A receiver writing beneath `out_dir` (created if missing; see
    /// [`crate::beneath`]), giving files and directories the sender's
    /// permission bits less `umask` (the receiving process's, usually).
    pub fn open(out_dir: &Path, umask: u32) -> Result<Self> {
        Ok(Self {
            root: Root::open(out_dir, umask)?,
            active: Mutex::new(HashMap::new()),
            failed: Mutex::new(std::collections::VecDeque::new()),
        })
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], Arc<Transfer>>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves one connection from an authenticated `sender`: a transfer's
    /// first connection (returns its summary once every file is in place)
    /// or a further stream of one in progress (returns `None` when its
    /// share has arrived). On error the peer is told why, and verified data
    /// is kept for a resumed attempt.
    pub fn serve<S: Read + Write>(
        &self,
        stream: &mut S,
        sender: &VerifyingKey,
    ) -> Result<Option<Summary>> {
        let result = self.serve_inner(stream, sender);
        if let Err(e) = &result {
            // Tell the sender why; the connection closes anyway.
            let _ = write_frame(stream, Kind::Error, e.to_string().as_bytes());
        }
        result
    }

    fn serve_inner<S: Read + Write>(
        &self,
        stream: &mut S,
        sender: &VerifyingKey,
    ) -> Result<Option<Summary>> {
        let mut buf = Vec::new();
        match read_frame(stream, &mut buf)? {
            Kind::Manifest => {
                let (manifest, id) = Manifest::open_signed_with_id(&buf, sender)?;
                self.primary(stream, sender, &manifest, id, &mut buf)
                    .map(Some)
            }
            Kind::Join => self
                .join(stream, sender, &mut buf)
                .map(|()| None)
                .map_err(|e| Error::Stream(Box::new(e))),
            other => Err(Error::Frame(format!(
                "expected MANIFEST or JOIN, got {other:?}"
            ))),
        }
    }

    fn join<S: Read + Write>(
        &self,
        stream: &mut S,
        sender: &VerifyingKey,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let id: [u8; 16] = buf
            .get(..16)
            .and_then(|b| b.try_into().ok())
            .filter(|_| buf.len() == 20)
            .ok_or_else(|| Error::Frame("JOIN payload must be 20 bytes".into()))?;
        let t = self.active().get(&id).cloned().ok_or_else(|| {
            let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            match failed.iter().rev().find(|(f, _)| *f == id) {
                Some((_, why)) => Error::Failed(why.clone()),
                None => Error::Frame(format!(
                    "no transfer {} is in progress here (its first connection ended?)",
                    hex::encode(id)
                )),
            }
        })?;
        if t.sender != sender.as_bytes() {
            return Err(Error::Frame(
                "this stream's certificate is not the one that signed the transfer".into(),
            ));
        }
        if t.failed.load(Ordering::Relaxed) {
            return Err(t.failed_error());
        }
        write_frame(stream, Kind::Joined, &[])?;
        if let Err(e) = t.take_chunks(stream, buf) {
            t.fail(&e);
            return Err(e);
        }
        write_frame(stream, Kind::Done, &[])
    }

    fn primary<S: Read + Write>(
        &self,
        stream: &mut S,
        sender: &VerifyingKey,
        manifest: &Manifest,
        id: [u8; 16],
        buf: &mut Vec<u8>,
    ) -> Result<Summary> {
        // The sender may come back (after a crash, or a kill -9) while this
        // side still holds the old connection: the newer one takes over.
        let previous = self.active().get(&id).cloned();
        if let Some(old) = previous {
            if old.sender != sender.as_bytes() {
                return Err(Error::Frame(
                    "the same transfer is already being received from another sender".into(),
                ));
            }
            old.failed.store(true, Ordering::Relaxed);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while Arc::strong_count(&old) > 1 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        for d in &manifest.dirs {
            self.root.dir(&d.path, true)?;
        }
        let files = manifest
            .files
            .iter()
            .map(|f| FileAssembler::open(&self.root, f))
            .collect::<Result<Vec<_>>>()?;
        let resumed: u64 = files.iter().map(FileAssembler::verified_bytes).sum();
        let have = encode_have(&files);
        let t = Arc::new(Transfer {
            sender: sender.as_bytes().to_vec(),
            files,
            received: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            why: Mutex::new(None),
        });
        self.active().insert(id, Arc::clone(&t));
        let _registered = Registered {
            rx: self,
            id,
            transfer: Arc::clone(&t),
        };
        write_frame(stream, Kind::Have, &have)?;
        let streamed = (|| -> Result<()> {
            // Files complete already (resumed fully, or empty) finish first.
            for a in t.files.iter().filter(|a| a.is_complete()) {
                a.finish()?;
            }
            t.take_chunks(stream, buf)?;
            if let Some(a) = t.files.iter().find(|a| !a.is_complete()) {
                return Err(Error::Frame(format!(
                    "the sender stopped before sending all of {}",
                    a.entry().path
                )));
            }
            for a in &t.files {
                a.finish()?;
            }
            Ok(())
        })();
        if let Err(e) = streamed {
            // Another stream failed first (this connection then closed, or
            // met the stop): its reason is the transfer's.
            let earlier = t.failed.load(Ordering::SeqCst);
            t.fail(&e);
            return Err(if earlier { t.failed_error() } else { e });
        }
        // FILE_DONE frames go out only after the last chunk arrived: the
        // sender reads them only then, and a stream of small frames it does
        // not read could otherwise fill the TCP buffers in both directions.
        for i in 0..t.files.len() as u32 {
            write_frame(stream, Kind::FileDone, &i.to_be_bytes())?;
        }
        // Directory modes and times last: creating files inside changed
        // the times. Each directory is reopened beneath the root, so a
        // directory swapped for a link meanwhile is not followed.
        for d in manifest.dirs.iter().rev() {
            let dir = self.root.dir(&d.path, false)?;
            beneath::chmod(&dir, self.root.mode(d.mode)).map_err(|source| Error::Io {
                path: d.path.clone(),
                source,
            })?;
            let _ = dir.set_modified(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(d.mtime.max(0) as u64),
            );
        }
        write_frame(stream, Kind::Done, &[])?;
        Ok(Summary {
            files: manifest.files.len(),
            bytes: manifest.files.iter().map(|f| f.size).sum(),
            sent_bytes: t.received.load(Ordering::Relaxed),
            resumed_bytes: resumed,
            streams: 0,
        })
    }
}
