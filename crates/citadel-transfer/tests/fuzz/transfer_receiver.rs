//! The `transfer_receiver` fuzz target's body: the receiving end of a
//! transfer fed arbitrary bytes as the sender's stream never panics and
//! never writes outside its directory. When the input starts with a
//! length-prefixed block (`1 ‖ length (2, big-endian) ‖ JSON ‖ frames`),
//! that block is signed as the manifest JSON by the harness (as a
//! compromised sender would), so the fuzzer reaches manifest validation
//! and file assembly behind the signature.
use citadel_crypto::Algorithm;
use citadel_crypto::sig::SigningKey;
use citadel_transfer::session::Receiver;
use std::io::{Cursor, Read, Write};
use std::sync::OnceLock;

struct Peer(Cursor<Vec<u8>>);
impl Read for Peer {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(b)
    }
}
impl Write for Peer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The sender's key the harness signs with.
pub fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seed(Algorithm::MlDsa44, &[7; 32]).unwrap())
}

/// Runs one input.
pub fn run_one(data: &[u8]) {
    let key = key();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a/b/out");
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    let rx = Receiver::open(&out, 0o022).unwrap();
    let mut stream = data.to_vec();
    if let [1, hi, lo, rest @ ..] = data {
        let n = (usize::from(*hi) << 8 | usize::from(*lo)).min(rest.len());
        let (json, frames) = rest.split_at(n);
        let sig = key
            .sign(json, citadel_transfer::manifest::SIGNATURE_CONTEXT)
            .unwrap();
        let mut payload = (sig.len() as u16).to_be_bytes().to_vec();
        payload.extend_from_slice(&sig);
        payload.extend_from_slice(json);
        stream = vec![1];
        stream.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        stream.extend_from_slice(&payload);
        stream.extend_from_slice(frames);
    }
    let _ = rx.serve(&mut Peer(Cursor::new(stream)), &key.verifying_key());
    // Nothing may appear beside the output directory.
    for up in [
        dir.path().join("a/b"),
        dir.path().join("a"),
        dir.path().to_path_buf(),
    ] {
        for e in std::fs::read_dir(&up).unwrap() {
            let name = e.unwrap().file_name();
            assert!(
                ["a", "b", "out"].contains(&name.to_str().unwrap()),
                "{name:?} escaped"
            );
        }
    }
}
