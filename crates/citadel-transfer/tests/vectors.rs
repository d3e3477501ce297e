//! The hex test vectors of `docs/formats/transfer-protocol.md`
//! (`tests/data/transfer-vectors.json`): every frame type, a `HAVE`
//! bitmap, a signed `MANIFEST` and its transfer id, checked against the
//! code both ways (encoding gives the vector's bytes; the vector's bytes
//! parse back). Each frame is also a seed of the `transfer_receiver` fuzz
//! target. `CITADEL_BLESS=1 cargo test -p citadel-transfer --test vectors`
//! rewrites the file (only when the format deliberately changes).

use citadel_crypto::Algorithm;
use citadel_crypto::sig::{SigningKey, VerifyingKey};
use citadel_transfer::frame::{self, Kind};
use citadel_transfer::manifest::{DirEntry, FileEntry, Manifest, id_of_json, root_of};
use serde_json::{Value, json};

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/transfer-vectors.json")
}

fn manifest() -> Manifest {
    let chunk = *blake3::hash(b"hello").as_bytes();
    Manifest {
        version: 1,
        chunk_size: citadel_transfer::CHUNK_SIZE,
        files: vec![
            FileEntry {
                path: "dir/a.txt".into(),
                size: 5,
                mode: 0o644,
                mtime: 1_764_100_000,
                root: hex::encode(root_of(&[chunk])),
                chunks: vec![hex::encode(chunk)],
            },
            FileEntry {
                path: "empty".into(),
                size: 0,
                mode: 0o600,
                mtime: 1_764_100_001,
                root: hex::encode(root_of(&[])),
                chunks: vec![],
            },
        ],
        dirs: vec![DirEntry {
            path: "dir".into(),
            mode: 0o755,
            mtime: 1_764_100_002,
        }],
    }
}

fn frame_hex(kind: Kind, payload: &[u8]) -> String {
    hex::encode(frame::encode(kind, payload).unwrap())
}

/// What the vectors hold, computed by the code.
fn generate() -> Value {
    let m = manifest();
    let json_bytes = m.to_json();
    let key = SigningKey::from_seed(Algorithm::MlDsa44, &[7; 32]).unwrap();
    let signed = m.sign(&key).unwrap();
    let id = id_of_json(&json_bytes);
    let mut join = id.to_vec();
    join.extend_from_slice(&1u16.to_be_bytes());
    join.extend_from_slice(&2u16.to_be_bytes());
    let mut chunk = frame::chunk_payload_header(0, 0).to_vec();
    chunk.extend_from_slice(b"hello");
    let have_files = vec![
        vec![true],
        vec![],
        vec![
            true, false, true, true, false, false, false, false, true, true,
        ],
    ];
    json!({
        "note": "Hex test vectors for docs/formats/transfer-protocol.md. A frame is type (1) || length (4, big-endian) || payload.",
        "manifest_json": String::from_utf8(json_bytes.clone()).unwrap(),
        "transfer_id": hex::encode(id),
        "signing_key": {"algorithm": "ML-DSA-44", "seed": hex::encode([7u8; 32]), "public_key": hex::encode(key.verifying_key().as_bytes())},
        "frames": [
            {"name": "MANIFEST", "type": 1, "frame": frame_hex(Kind::Manifest, &signed),
             "note": "payload: signature length (2, big-endian) || ML-DSA-44 signature (context citadel-transfer-v1) over manifest_json || manifest_json"},
            {"name": "HAVE", "type": 2, "frame": frame_hex(Kind::Have, &frame::have_payload(&have_files)),
             "files_chunks": have_files.iter().map(Vec::len).collect::<Vec<_>>(),
             "have": have_files,
             "note": "per file ceil(chunks/8) bytes, chunk i in bit i%8 (least significant first) of byte i/8, files concatenated"},
            {"name": "CHUNK", "type": 3, "frame": frame_hex(Kind::Chunk, &chunk),
             "note": "file 0, chunk 0: file index (4, big-endian) || chunk index (8, big-endian) || the bytes \"hello\""},
            {"name": "FILE_DONE", "type": 4, "frame": frame_hex(Kind::FileDone, &1u32.to_be_bytes()), "note": "file index 1 (4, big-endian)"},
            {"name": "ERROR", "type": 5, "frame": frame_hex(Kind::Error, b"no space left"), "note": "UTF-8 message"},
            {"name": "DONE", "type": 6, "frame": frame_hex(Kind::Done, &[])},
            {"name": "JOIN", "type": 7, "frame": frame_hex(Kind::Join, &join),
             "note": "transfer id (16) || stream index 1 (2, big-endian) || stream count 2 (2, big-endian)"},
            {"name": "JOINED", "type": 8, "frame": frame_hex(Kind::Joined, &[])},
            {"name": "SENT", "type": 9, "frame": frame_hex(Kind::Sent, &[])},
        ],
    })
}

#[test]
fn the_vectors_match_the_code() {
    let want = generate();
    if std::env::var_os("CITADEL_BLESS").is_some() {
        std::fs::write(path(), serde_json::to_string_pretty(&want).unwrap() + "\n").unwrap();
    }
    let have: Value = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    // The manifest's bytes and id.
    let json_text = have["manifest_json"].as_str().unwrap();
    assert_eq!(json_text.as_bytes(), manifest().to_json().as_slice());
    assert_eq!(
        have["transfer_id"].as_str().unwrap(),
        hex::encode(id_of_json(json_text.as_bytes()))
    );
    assert_eq!(
        manifest().transfer_id(),
        have["transfer_id"].as_str().unwrap()
    );
    let public = hex::decode(have["signing_key"]["public_key"].as_str().unwrap()).unwrap();
    let vk = VerifyingKey::from_bytes(Algorithm::MlDsa44, &public).unwrap();
    for f in have["frames"].as_array().unwrap() {
        let bytes = hex::decode(f["frame"].as_str().unwrap()).unwrap();
        let h: [u8; 5] = bytes[..5].try_into().unwrap();
        let (kind, len) = frame::parse_header(&h).unwrap();
        assert_eq!(kind as u8 as u64, f["type"].as_u64().unwrap(), "{f}");
        assert_eq!(len, bytes.len() - 5, "{f}");
        let payload = &bytes[5..];
        match kind {
            // ML-DSA signing is hedged (randomised): the stored signature
            // must verify, and the id comes from the bytes received.
            Kind::Manifest => {
                let sig_len = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
                assert_eq!(&payload[2 + sig_len..], json_text.as_bytes());
                let (m, id) = Manifest::open_signed_with_id(payload, &vk).unwrap();
                assert_eq!(m, manifest());
                assert_eq!(hex::encode(id), have["transfer_id"].as_str().unwrap());
            }
            Kind::Have => {
                let counts: Vec<usize> = f["files_chunks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_u64().unwrap() as usize)
                    .collect();
                let bits: Vec<Vec<bool>> = serde_json::from_value(f["have"].clone()).unwrap();
                assert_eq!(frame::parse_have(payload, &counts).unwrap(), bits);
                assert_eq!(frame::have_payload(&bits), payload);
            }
            _ => {
                let want = want["frames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|w| w["name"] == f["name"])
                    .unwrap();
                assert_eq!(want["frame"], f["frame"], "{}", f["name"]);
            }
        }
    }
    // A CHUNK payload parses back.
    let chunk = hex::decode(have["frames"][2]["frame"].as_str().unwrap()).unwrap();
    let (file, index, data) = frame::parse_chunk_payload(&chunk[5..]).unwrap();
    assert_eq!((file, index, data), (0, 0, &b"hello"[..]));
}
