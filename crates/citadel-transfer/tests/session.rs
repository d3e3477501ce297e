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
