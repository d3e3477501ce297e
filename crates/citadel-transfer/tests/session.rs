//! Both ends of a transfer over loopback TCP (the TLS layer is exercised in
//! citadel-tls): a tree arrives byte-identical, an interrupted transfer
//! resumes from its verified chunks, a bit flipped on the wire is caught.

use citadel_crypto::Algorithm;
use citadel_crypto::sig::SigningKey;
use citadel_transfer::manifest::Manifest;
use citadel_transfer::session::{receive, send};
use citadel_transfer::{CHUNK_SIZE, Error};
use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread;

fn tree(root: &Path) {
    fs::create_dir_all(root.join("data/deep")).unwrap();
    let big: Vec<u8> = (0..(3 * CHUNK_SIZE + 777) as usize)
        .map(|i| (i * 31 % 256) as u8)
        .collect();
    fs::write(root.join("data/big.bin"), big).unwrap();
    fs::write(root.join("data/deep/small.txt"), b"hello").unwrap();
    fs::write(root.join("data/empty"), b"").unwrap();
}

fn same_tree(a: &Path, b: &Path) {
    for rel in ["data/big.bin", "data/deep/small.txt", "data/empty"] {
        assert_eq!(
            fs::read(a.join(rel)).unwrap(),
            fs::read(b.join(rel)).unwrap(),
            "{rel}"
        );
    }
}

/// A stream that breaks (like a killed peer) after `budget` bytes written,
/// or flips one bit at byte `flip`.
struct Faulty<S> {
    inner: S,
    written: usize,
    budget: usize,
    flip: Option<usize>,
    /// The last bytes written (up to 4 KiB): the frames that closed it.
    tail: Vec<u8>,
}

impl Read for Faulty<TcpStream> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for Faulty<TcpStream> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written >= self.budget {
            // Like a killed process: the socket closes.
            let _ = self.inner.shutdown(std::net::Shutdown::Both);
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "killed"));
        }
        let n = buf.len().min(self.budget - self.written);
        let mut data = buf[..n].to_vec();
        if let Some(f) = self.flip {
            if f >= self.written && f < self.written + n {
                data[f - self.written] ^= 0x04;
            }
        }
        self.inner.write_all(&data)?;
        self.written += n;
        self.tail.extend_from_slice(&data);
        let cut = self.tail.len().saturating_sub(4096);
        self.tail.drain(..cut);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn run(
    src: &Path,
    out: &Path,
    key: &SigningKey,
    budget: usize,
    flip: Option<usize>,
) -> (
    Result<citadel_transfer::session::Summary, Error>,
    Result<citadel_transfer::session::Summary, Error>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let vk = key.verifying_key();
    let out = out.to_path_buf();
    let recv = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        receive(&mut s, &out, 0o022, &vk)
    });
    let (manifest, locals) = Manifest::build_with_sources(&[src.join("data").as_path()]).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    let mut stream = Faulty {
        inner: tcp,
        written: 0,
        budget,
        flip,
        tail: Vec::new(),
    };
    let sent = send(&mut stream, &manifest, &locals, key);
    drop(stream);
    (sent, recv.join().unwrap())
}

#[test]
fn a_tree_arrives_byte_identical() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path());
    let out = d.path().join("out");
    let key = SigningKey::generate(Algorithm::MlDsa44).unwrap();
    let (sent, got) = run(d.path(), &out, &key, usize::MAX, None);
    let (sent, got) = (sent.unwrap(), got.unwrap());
    assert_eq!(sent.files, 3);
    assert_eq!(sent.sent_bytes, 3 * CHUNK_SIZE + 777 + 5);
    assert_eq!(got.resumed_bytes, 0);
    same_tree(d.path(), &out);
}

#[test]
fn an_interrupted_transfer_resumes_from_verified_chunks() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path());
    let out = d.path().join("out");
    let key = SigningKey::generate(Algorithm::MlDsa44).unwrap();
    // Break the connection after about two and a half chunks.
    let (sent, got) = run(
        d.path(),
        &out,
        &key,
        (2 * CHUNK_SIZE + CHUNK_SIZE / 2) as usize,
        None,
    );
    assert!(sent.is_err() && got.is_err());
    assert!(
        !out.join("data/big.bin").exists(),
        "no complete-looking file after the break"
    );
    let (sent, got) = run(d.path(), &out, &key, usize::MAX, None);
    let sent = sent.unwrap();
    got.unwrap();
    assert!(
        sent.resumed_bytes >= CHUNK_SIZE,
        "resumed only {} bytes",
        sent.resumed_bytes
    );
    assert!(sent.sent_bytes < 3 * CHUNK_SIZE + 777 + 5);
    same_tree(d.path(), &out);
}

#[test]
fn a_bit_flipped_on_the_wire_is_caught() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path());
    let out = d.path().join("out");
    let key = SigningKey::generate(Algorithm::MlDsa44).unwrap();
    // Flip a bit deep inside the first chunk's data (past the manifest frame).
    let (sent, got) = run(d.path(), &out, &key, usize::MAX, Some(CHUNK_SIZE as usize));
    assert!(sent.is_err());
    let err = got.unwrap_err().to_string();
    assert!(
        err.contains("does not match") || err.contains("manifest"),
        "{err}"
    );
    assert!(!out.join("data/big.bin").exists());
}

#[test]
fn a_manifest_signed_by_another_key_is_refused() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path());
    let out = d.path().join("out");
    let key = SigningKey::generate(Algorithm::MlDsa44).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let other = SigningKey::generate(Algorithm::MlDsa44)
        .unwrap()
        .verifying_key();
    let out2 = out.clone();
    let recv = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        receive(&mut s, &out2, 0o022, &other)
    });
    let (manifest, locals) =
        Manifest::build_with_sources(&[d.path().join("data").as_path()]).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    let sent = send(&mut tcp, &manifest, &locals, &key);
    assert!(sent.unwrap_err().to_string().contains("signature"));
    assert!(recv.join().unwrap().is_err());
    assert!(!out.join("data").exists());
}

/// A receiver serving every connection on its own thread, as `citadel recv` does.
fn serve_all(
    rx: std::sync::Arc<citadel_transfer::session::Receiver>,
    key: citadel_crypto::sig::VerifyingKey,
) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for s in listener.incoming() {
            let (rx, key) = (rx.clone(), key.clone());
            thread::spawn(move || {
                let mut s = s.unwrap();
                let _ = rx.serve(&mut s, &key);
            });
        }
    });
    addr
}

#[test]
fn parallel_streams_deliver_the_same_tree() {
    use citadel_transfer::session::{Receiver, Stream, send_parallel};
    let d = tempfile::tempdir().unwrap();
    tree(d.path());
    let out = d.path().join("out");
    let key = SigningKey::generate(Algorithm::MlDsa44).unwrap();
    let addr = serve_all(
        std::sync::Arc::new(Receiver::open(&out, 0o022).unwrap()),
        key.verifying_key(),
    );
    let (manifest, locals) =
        Manifest::build_with_sources(&[d.path().join("data").as_path()]).unwrap();
    let opened = std::sync::atomic::AtomicUsize::new(0);
    let connect = |_k: usize| -> Result<Box<dyn Stream>, String> {
        opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TcpStream::connect(addr)
            .map(|s| Box::new(s) as Box<dyn Stream>)
            .map_err(|e| e.to_string())
    };
    let progressed = std::sync::atomic::AtomicU64::new(0);
    let mut primary = TcpStream::connect(addr).unwrap();
    let s = send_parallel(
        &mut primary,
        &connect,
        3,
        &manifest,
        &locals,
        &key,
        &|_, n| {
            progressed.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        },
    )
    .unwrap();
    assert_eq!(s.streams, 3);
    assert_eq!(opened.into_inner(), 2, "two further connections");
    assert_eq!(progressed.into_inner(), 3 * CHUNK_SIZE + 777 + 5);
    same_tree(d.path(), &out);
}

#[test]
fn a_join_for_an_unknown_transfer_is_refused() {
    use citadel_transfer::frame::{Kind, encode};
    use citadel_transfer::session::Receiver;
    let d = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(Algorithm::MlDsa44).unwrap();
    let addr = serve_all(
        std::sync::Arc::new(Receiver::open(&d.path().join("out"), 0o022).unwrap()),
        key.verifying_key(),
    );
    let mut s = TcpStream::connect(addr).unwrap();
    let mut join = vec![7u8; 16];
    join.extend_from_slice(&[0, 1, 0, 2]);
    s.write_all(&encode(Kind::Join, &join).unwrap()).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    assert_eq!(reply[0], Kind::Error as u8);
    assert!(String::from_utf8_lossy(&reply[5..]).contains("no transfer"));
}

/// How a run of [`ends_at_both_ends`] fails.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The sender's file shrinks after it was signed: reading chunk k fails.
    Shrink,
    /// Stream k's connection breaks in the middle of its chunk.
    Break,
    /// One bit of stream k's chunk flips on the wire.
    Flip,
}

/// One three-stream transfer of a three-chunk file, where stream k carries
/// chunk k and `fault` strikes chunk `k`. Returns the sender's error, the
/// receiver's (its first connection's), how long the slower took, and the
/// last bytes the sender wrote on its first connection.
fn ends_at_both_ends(fault: Fault, k: usize) -> (Error, Error, std::time::Duration, Vec<u8>) {
    use citadel_transfer::session::{Receiver, Stream, send_parallel};
    use std::sync::{Arc, Mutex, mpsc};
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("big.bin");
    let data: Vec<u8> = (0..2 * CHUNK_SIZE as usize + 100)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    fs::write(&src, &data).unwrap();
    let key = SigningKey::generate(Algorithm::MlDsa44).unwrap();
    let (manifest, locals) = Manifest::build_with_sources(&[src.as_path()]).unwrap();
    if let Fault::Shrink = fault {
        fs::File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_len(k as u64 * CHUNK_SIZE + 50)
            .unwrap();
    }
    // The receiver reports each connection's outcome.
    let rx = Arc::new(Receiver::open(&d.path().join("out"), 0o022).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (done, outcomes) = mpsc::channel();
    let vk = key.verifying_key();
    thread::spawn(move || {
        for s in listener.incoming() {
            let (rx, vk, done) = (rx.clone(), vk.clone(), done.clone());
            thread::spawn(move || {
                let mut s = s.unwrap();
                let r = rx.serve(&mut s, &vk);
                if r.is_err() {
                    // As `citadel recv` does: the peer reads the ERROR
                    // frame before the close (unread data would reset it).
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(1)));
                    let _ = io::copy(&mut s.take(64 << 20), &mut io::sink());
                }
                let _ = done.send(r);
            });
        }
    });
    // Bytes each stream writes before its chunk: the manifest on the
    // first, a JOIN on the others; then the frame and chunk headers.
    let before = |j: usize| {
        17 + if j == 0 {
            5 + manifest.sign(&key).unwrap().len()
        } else {
            5 + 20
        }
    };
    let faulty = |j: usize| {
        let mut s = Faulty {
            inner: TcpStream::connect(addr).unwrap(),
            written: 0,
            budget: usize::MAX,
            flip: None,
            tail: Vec::new(),
        };
        match fault {
            // Inside the chunk (the last one is 100 bytes).
            Fault::Break if j == k => s.budget = before(j) + 50,
            Fault::Flip if j == k => s.flip = Some(before(j) + 50),
            _ => {}
        }
        s
    };
    let primary = Mutex::new(faulty(0));
    let connect = |j: usize| -> Result<Box<dyn Stream>, String> { Ok(Box::new(faulty(j))) };
    let start = std::time::Instant::now();
    let sent = send_parallel(
        &mut *primary.lock().unwrap(),
        &connect,
        3,
        &manifest,
        &locals,
        &key,
        &|_, _| {},
    );
    let tail = primary.into_inner().unwrap().tail;
    let sender = start.elapsed();
    let received = loop {
        match outcomes.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(Err(Error::Stream(_)) | Ok(None)) => continue,
            Ok(Err(e)) => break e,
            Ok(Ok(Some(_))) => panic!("{fault:?} at chunk {k}: the transfer succeeded"),
            Err(_) => panic!("{fault:?} at chunk {k}: the receiver did not end within 30 s"),
        }
    };
    (
        sent.unwrap_err(),
        received,
        sender.max(start.elapsed()),
        tail,
    )
}

/// The flake of stop 28 (1 run in 450): chunk 2's file shrank on stream
/// 2, whose ERROR frame said so, while the first connection had sent its
/// share and closed without a word; the receiver read that close first
/// and reported "the connection closed". Every connection is now told the
/// cause before it closes, so no ordering of the receiver's reads loses it.
#[test]
fn the_first_connection_is_told_why_another_stream_failed() {
    use citadel_transfer::frame::Kind;
    for k in 1..3 {
        let (sent, _, _, tail) = ends_at_both_ends(Fault::Shrink, k);
        assert!(sent.to_string().contains("shrank"), "{sent}");
        // The last frame on the first connection: ERROR, naming the cause.
        let at = (0..tail.len().saturating_sub(4))
            .rev()
            .find(|&i| {
                tail[i] == Kind::Error as u8
                    && u32::from_be_bytes(tail[i + 1..i + 5].try_into().unwrap()) as usize
                        == tail.len() - i - 5
            })
            .unwrap_or_else(|| panic!("chunk {k}: no ERROR frame closes the first connection"));
        let why = String::from_utf8_lossy(&tail[at + 5..]);
        assert!(why.contains("shrank"), "chunk {k}: {why}");
    }
}

/// Issue 13: whichever stage fails (the sender's reader, a connection, a
/// chunk's check) at the first, a middle or the last chunk, both ends of a
/// parallel transfer stop within a second, with the failure's reason, 50
/// times over (the streams race).
#[test]
fn every_failure_ends_a_parallel_transfer_at_both_ends() {
    for fault in [Fault::Shrink, Fault::Break, Fault::Flip] {
        for k in 0..3 {
            let mut slowest = std::time::Duration::ZERO;
            for _ in 0..50 {
                let (sent, received, took, _) = ends_at_both_ends(fault, k);
                slowest = slowest.max(took);
                let (sent, received) = (sent.to_string(), received.to_string());
                match fault {
                    // Helper-12's F2: the receiver is told the cause too
                    // (an ERROR frame), not "the sender disconnected".
                    Fault::Shrink => {
                        assert!(sent.contains("shrank"), "{sent}");
                        assert!(received.contains("shrank"), "{k}: {received}");
                    }
                    Fault::Flip => {
                        let why = format!("chunk {k} does not match");
                        assert!(sent.contains(&why), "{fault:?} {k}: {sent}");
                        assert!(received.contains(&why), "{fault:?} {k}: {received}");
                    }
                    Fault::Break => {}
                }
            }
            assert!(
                slowest < std::time::Duration::from_secs(1),
                "{fault:?} at chunk {k}: took {slowest:?}"
            );
        }
    }
}
