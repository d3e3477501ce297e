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

impl<S: Read> Read for Faulty<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Faulty<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written >= self.budget {
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
        receive(&mut s, &out, &vk)
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
        receive(&mut s, &out2, &other)
    });
    let (manifest, locals) =
        Manifest::build_with_sources(&[d.path().join("data").as_path()]).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    let sent = send(&mut tcp, &manifest, &locals, &key);
    assert!(sent.unwrap_err().to_string().contains("signature"));
    assert!(recv.join().unwrap().is_err());
    assert!(!out.join("data").exists());
}
