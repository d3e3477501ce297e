//! The payload: STREAM (Hoang, Reyhanitabar, Rogaway, Vizár) over
//! ChaCha20-Poly1305 with 64 KiB chunks, as the age spec defines it.
//!
//! Nonce = 11-byte big-endian chunk counter ‖ last-chunk flag. Memory use is
//! one chunk, whatever the file size.

use crate::error::{Error, Result};
use citadel_crypto::aead::{AeadAlgorithm, AeadKey, TAG_LEN};
use std::io::{self, Read, Write};
use std::sync::Arc;

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const CT_CHUNK: usize = CHUNK + TAG_LEN;

fn nonce(counter: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// How many worker threads seal or open chunks (chunks are independent:
/// each has its own nonce).
fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().min(8))
        .unwrap_or(1)
}

/// Chunks in flight between the reader, the workers and the writer: bounds
/// memory to about `IN_FLIGHT` × `GROUP` × 64 KiB whatever the file size.
const IN_FLIGHT: usize = 4;
/// Chunks handed to a worker at a time (fewer hand-offs between threads).
const GROUP: usize = 8;

/// A three-stage pipeline: `produce` reads items on its own thread, workers
/// run `work` on them in parallel, and `consume` (on the calling thread,
/// which keeps the output writer) receives the results in input order. It
/// returns `Ok(true)` to stop early; the first error from any stage wins,
/// and every other stage stops promptly: no stage blocks on a peer that has
/// gone (each queue's far end is dropped with the last stage using it).
///
/// The reader owns the input and runs detached: when a later stage fails,
/// the error is returned at once, even if the reader is blocked reading an
/// input that has stalled (a quiet network stream); the reader then ends,
/// and drops the input, when that read returns. Without a failure the
/// reader's own outcome (trailing data, a read error) is waited for.
fn pipeline<I: Send + 'static, O: Send>(
    produce: impl FnMut() -> Result<Option<I>> + Send + 'static,
    work: impl Fn(I) -> O + Sync,
    mut consume: impl FnMut(O) -> Result<bool>,
) -> Result<()> {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::{RecvTimeoutError, sync_channel};

    let stop = Arc::new(AtomicBool::new(false));
    let (job_tx, job_rx) = sync_channel::<(u64, I)>(IN_FLIGHT);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = sync_channel::<(u64, O)>(IN_FLIGHT);
    let (read_tx, read_rx) = sync_channel::<Result<()>>(1);
    let reader_stop = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("age-reader".into())
        .spawn(move || {
            let mut produce = produce;
            let mut seq = 0u64;
            let outcome = (|| {
                while !reader_stop.load(Ordering::Relaxed) {
                    match produce()? {
                        Some(item) => {
                            if job_tx.send((seq, item)).is_err() {
                                break;
                            }
                            seq += 1;
                        }
                        None => break,
                    }
                }
                Ok(())
            })();
            // The job queue closes here, before the outcome is told.
            drop(job_tx);
            let _ = read_tx.send(outcome);
        })
        .map_err(Error::Io)?;
    std::thread::scope(|s| {
        for _ in 0..workers() {
            let rx = Arc::clone(&job_rx);
            let tx = done_tx.clone();
            let (work, stop) = (&work, &stop);
            s.spawn(move || {
                loop {
                    // A worker waiting for a reader stuck in a read wakes
                    // to see the stop.
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv_timeout(std::time::Duration::from_millis(50)),
                        Err(_) => return,
                    };
                    let (seq, item) = match job {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    };
                    if tx.send((seq, work(item))).is_err() {
                        return;
                    }
                }
            });
        }
        // Only the workers hold the job queue's receiving end and the
        // result queue's sending end: once they are gone, the reader's
        // next send fails (it would otherwise wait forever on a full queue
        // nobody reads), and the results end.
        drop(job_rx);
        drop(done_tx);
        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        let mut outcome: Result<()> = Ok(());
        'outer: for (seq, out) in done_rx.iter() {
            pending.insert(seq, out);
            while let Some(out) = pending.remove(&next) {
                next += 1;
                match consume(out) {
                    Ok(false) => {}
                    Ok(true) => break 'outer,
                    Err(e) => {
                        outcome = Err(e);
                        break 'outer;
                    }
                }
            }
        }
        // Unblock and end the other stages.
        stop.store(true, Ordering::Relaxed);
        drop(done_rx);
        outcome
    })?;
    // The reader has told its outcome, or will once its read returns.
    read_rx.recv().unwrap_or_else(|_| {
        Err(Error::Io(io::Error::other(
            "the reading thread stopped unexpectedly",
        )))
    })
}

/// Recycles chunk buffers between the writer and the reader, so a large file
/// costs no allocations (or page faults) per chunk.
#[derive(Default)]
struct Pool(std::sync::Mutex<Vec<Vec<u8>>>);

impl Pool {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_else(|| Vec::with_capacity(CT_CHUNK))
    }

    /// Returns a buffer; its bytes are kept (not zeroed) so that the next
    /// `read_chunk` need not fill it before reading into it.
    fn give(&self, buf: Vec<u8>) {
        if let Ok(mut v) = self.0.lock() {
            if v.len() < 4 * IN_FLIGHT * GROUP {
                v.push(buf);
            }
        }
    }
}

fn read_chunk(r: &mut impl Read, size: usize, pool: &Pool) -> io::Result<Vec<u8>> {
    let mut buf = pool.take();
    // Shrinking keeps the old bytes (overwritten by the read below); only a
    // fresh buffer is zero-filled, once.
    buf.resize(size, 0);
    let n = read_full(r, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

const MAX_CHUNKS: u64 = 1 << 40;

/// Chunks travelling together: (chunk counter, bytes, whether more follow).
type Group = Vec<(u64, Vec<u8>, bool)>;

/// Reads `input` in chunks of `size` bytes, `GROUP` at a time, numbering
/// them and looking one chunk ahead to tell whether more follow (only a
/// full chunk can have a successor). The first chunk is read before this
/// returns, so the caller can see an empty input.
fn chunk_groups(
    mut input: impl Read + Send + 'static,
    size: usize,
    pool: Arc<Pool>,
) -> Result<(bool, impl FnMut() -> Result<Option<Group>> + Send + 'static)> {
    let first = read_chunk(&mut input, size, &pool)?;
    let empty = first.is_empty();
    let mut next = Some(first);
    let mut count = 0u64;
    let produce = move || -> Result<Option<Group>> {
        let mut group = Vec::with_capacity(GROUP);
        while group.len() < GROUP {
            let Some(cur) = next.take() else { break };
            if count >= MAX_CHUNKS {
                return Err(Error::Payload(
                    "the file is too large for the age format".into(),
                ));
            }
            let following = if cur.len() == size {
                read_chunk(&mut input, size, &pool)?
            } else {
                Vec::new()
            };
            let more = !following.is_empty();
            if more {
                next = Some(following);
            }
            group.push((count, cur, more));
            count += 1;
        }
        Ok(if group.is_empty() { None } else { Some(group) })
    };
    Ok((empty, produce))
}

/// Encrypts all of `input` to `output`; returns the plaintext length.
/// Reading, sealing (on every core) and writing overlap.
pub(crate) fn encrypt(
    key: &AeadKey,
    input: impl Read + Send + 'static,
    output: &mut impl Write,
) -> Result<u64> {
    let pool = Arc::new(Pool::default());
    let (_, produce) = chunk_groups(input, CHUNK, Arc::clone(&pool))?;
    let pool = &*pool;
    let work = |mut group: Group| -> Result<Group> {
        for (counter, buf, more) in &mut group {
            key.seal_in_place(&nonce(*counter, !*more), b"", buf)?;
        }
        Ok(group)
    };
    let mut total = 0u64;
    pipeline(produce, work, |r| {
        let mut done = false;
        for (_, buf, more) in r? {
            total += (buf.len() - TAG_LEN) as u64;
            output.write_all(&buf).map_err(Error::Io)?;
            pool.give(buf);
            done = !more;
        }
        Ok(done)
    })?;
    Ok(total)
}

fn auth_error(counter: u64) -> Error {
    Error::Payload(format!(
        "chunk {counter} failed authentication (modified, reordered or truncated)"
    ))
}

/// Opens one chunk into `out`: `Ok(is_final)`.
fn open_chunk(key: &AeadKey, c: u64, buf: &[u8], more: bool, out: &mut Vec<u8>) -> Result<bool> {
    if buf.len() < TAG_LEN {
        return Err(Error::Payload(
            "the file is truncated (partial chunk)".into(),
        ));
    }
    out.resize(buf.len() - TAG_LEN, 0);
    if buf.len() < CT_CHUNK {
        if buf.len() == TAG_LEN && c != 0 {
            return Err(Error::Payload("an empty final chunk after data".into()));
        }
        key.open_to(&nonce(c, true), b"", buf, out)
            .map_err(|_| auth_error(c))?;
        return Ok(true);
    }
    // A full chunk is normally followed by more (flag 0); at the end of the
    // input it should be the last one (flag 1). Try the expected flag first,
    // then the other, as age does, so errors name the right cause.
    if key.open_to(&nonce(c, !more), b"", buf, out).is_ok() {
        return Ok(!more);
    }
    key.open_to(&nonce(c, more), b"", buf, out)
        .map_err(|_| auth_error(c))?;
    Ok(more)
}

/// Decrypts the payload, writing each chunk once it has authenticated;
/// returns the plaintext length. Truncation, reordering, a flipped bit or
/// trailing data is a [`Error::Payload`]. Chunks are opened on every core
/// and emitted in order up to the first failure.
pub(crate) fn decrypt(
    key: &AeadKey,
    input: impl Read + Send + 'static,
    output: &mut impl Write,
) -> Result<u64> {
    let pool = Arc::new(Pool::default());
    let (empty, produce) = chunk_groups(input, CT_CHUNK, Arc::clone(&pool))?;
    let pool = &*pool;
    if empty {
        return Err(Error::Payload("the payload is empty (no chunks)".into()));
    }
    // Each chunk: (plaintext, is_final, more) or the error that stops there.
    let work = |group: Group| -> Vec<Result<(Vec<u8>, bool, bool)>> {
        let mut out = Vec::with_capacity(group.len());
        for (counter, buf, more) in group {
            let mut plain = pool.take();
            let r = open_chunk(key, counter, &buf, more, &mut plain);
            pool.give(buf);
            let failed = r.is_err();
            out.push(r.map(|is_final| (plain, is_final, more)));
            if failed {
                break;
            }
        }
        out
    };
    let mut total = 0u64;
    pipeline(produce, work, |results| {
        for r in results {
            let (buf, is_final, more) = r?;
            output.write_all(&buf).map_err(Error::Io)?;
            total += buf.len() as u64;
            pool.give(buf);
            match (is_final, more) {
                (true, true) => {
                    return Err(Error::Payload("trailing data after the final chunk".into()));
                }
                (true, false) => return Ok(true),
                (false, false) => {
                    return Err(Error::Payload(
                        "the file is truncated (the final chunk is missing)".into(),
                    ));
                }
                (false, true) => {}
            }
        }
        Ok(false)
    })?;
    Ok(total)
}

/// The payload cipher for a file key and nonce.
pub(crate) fn payload_key(file_key: &[u8], nonce: &[u8; 16]) -> Result<AeadKey> {
    let k = citadel_crypto::kdf::hkdf(
        citadel_crypto::kdf::HkdfHash::Sha256,
        nonce,
        file_key,
        b"payload",
        32,
    )?;
    Ok(AeadKey::new(AeadAlgorithm::ChaCha20Poly1305, k.expose())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AeadKey {
        AeadKey::new(AeadAlgorithm::ChaCha20Poly1305, &[7u8; 32]).unwrap()
    }

    /// Runs `f` on another thread; a hang (the issue 13 deadlock) fails
    /// the test after 20 s instead of stopping it.
    fn within<T: Send + 'static>(what: String, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{what}: hung"))
    }

    fn sealed(len: usize) -> Vec<u8> {
        let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let mut out = Vec::new();
        encrypt(&key(), io::Cursor::new(plain), &mut out).unwrap();
        out
    }

    /// A writer that fails once `left` bytes were written (a full disk, a
    /// closed pipe).
    struct FailAfter(usize);

    impl Write for FailAfter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0 < b.len() {
                return Err(io::Error::other("no space left (simulated)"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What a reader does once it has served `left` bytes.
    #[derive(Clone, Copy)]
    enum Then {
        Fail,
        /// Blocks (a network stream that went quiet).
        Stall,
    }

    /// A reader that serves `left` bytes of `data`, then fails or stalls.
    struct ReaderThen(Arc<Vec<u8>>, usize, usize, Then);

    impl Read for ReaderThen {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            if self.2 == 0 {
                match self.3 {
                    Then::Fail => return Err(io::Error::other("read error (simulated)")),
                    Then::Stall => std::thread::sleep(std::time::Duration::from_secs(3600)),
                }
            }
            let n = b.len().min(self.2).min(self.0.len() - self.1);
            b[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            self.2 -= n;
            Ok(n)
        }
    }

    /// Issue 13: the first error of any stage stops every other stage
    /// promptly, whatever the stage and wherever the damage, many times
    /// over (the hang was a race).
    #[test]
    fn the_first_error_in_any_stage_ends_the_pipeline() {
        let ct = std::sync::Arc::new(sealed(16 * 1024 * 1024 + 5));
        let chunks = ct.len() / CT_CHUNK;
        for run in 0..50 {
            for at in [0, chunks / 2, chunks] {
                let ct = ct.clone();
                let r = within(format!("damage at chunk {at}, run {run}"), move || {
                    let mut bad = ct.to_vec();
                    let pos = (at * CT_CHUNK + 100).min(bad.len() - 1);
                    bad[pos] ^= 1;
                    decrypt(&key(), io::Cursor::new(bad), &mut io::sink())
                });
                assert!(matches!(r, Err(Error::Payload(_))), "{r:?}");
            }
            let ct2 = ct.clone();
            let r = within(format!("failing writer, run {run}"), move || {
                decrypt(
                    &key(),
                    io::Cursor::new(ct2.to_vec()),
                    &mut FailAfter(3 * 1024 * 1024),
                )
            });
            assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
            let ct3 = ct.clone();
            let r = within(format!("failing reader, run {run}"), move || {
                decrypt(
                    &key(),
                    ReaderThen(ct3, 0, 5 * 1024 * 1024, Then::Fail),
                    &mut io::sink(),
                )
            });
            assert!(r.is_err());
            let r = within(
                format!("failing writer while encrypting, run {run}"),
                || {
                    let plain = vec![1u8; 16 * 1024 * 1024];
                    encrypt(
                        &key(),
                        io::Cursor::new(plain),
                        &mut FailAfter(2 * 1024 * 1024),
                    )
                },
            );
            assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
        }
    }

    /// Helper-12's finding F1: a damaged chunk is reported at once even
    /// when the input then stalls (the reader, reading ahead, is blocked in
    /// a read that may never return), and a failing writer ends encryption
    /// of a stalled input too.
    #[test]
    fn an_error_is_reported_while_the_input_stalls() {
        let ct = Arc::new(sealed(4 * 1024 * 1024));
        for at in [0, 17, 40] {
            let mut bad = ct.to_vec();
            bad[at * CT_CHUNK + 100] ^= 1;
            let bad = Arc::new(bad);
            // Served up to well past the damage, then quiet for an hour.
            let served = ((at + 12) * CT_CHUNK).min(bad.len() - 1);
            let start = std::time::Instant::now();
            let r = within(format!("stalled input, damage at chunk {at}"), move || {
                decrypt(
                    &key(),
                    ReaderThen(bad, 0, served, Then::Stall),
                    &mut io::sink(),
                )
            });
            assert!(
                matches!(&r, Err(Error::Payload(m)) if m.contains(&format!("chunk {at} "))),
                "{r:?}"
            );
            assert!(start.elapsed() < std::time::Duration::from_secs(5));
        }
        let plain = Arc::new(vec![3u8; 4 * 1024 * 1024]);
        let r = within("stalled input, failing writer".into(), move || {
            encrypt(
                &key(),
                ReaderThen(plain, 0, 3 * 1024 * 1024, Then::Stall),
                &mut FailAfter(1024 * 1024),
            )
        });
        assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
    }
}
