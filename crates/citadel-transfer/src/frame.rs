//! Frames: `type (1) ‖ length (4, big-endian) ‖ payload`.

use crate::{CHUNK_SIZE, Error, Result};

/// Largest payload accepted: one chunk plus its header.
pub const MAX_PAYLOAD: usize = CHUNK_SIZE as usize + 64;

/// Frame types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Signature length (2) ‖ signature ‖ manifest JSON.
    Manifest = 1,
    /// Per file, the verified-chunk bitmap the receiver already has.
    Have = 2,
    /// File index (4) ‖ chunk index (8) ‖ bytes.
    Chunk = 3,
    /// File index (4): verified, fsynced and renamed.
    FileDone = 4,
    /// A UTF-8 message; the connection closes.
    Error = 5,
    /// Everything is in place (or, on a joined stream, all of its chunks).
    Done = 6,
    /// Transfer id (16) ‖ stream index (2) ‖ stream count (2): this
    /// connection carries part of a transfer opened on another.
    Join = 7,
    /// The receiver accepted a `JOIN`.
    Joined = 8,
    /// No more chunks on this connection.
    Sent = 9,
}

impl Kind {
    fn from_byte(b: u8) -> Result<Self> {
        Ok(match b {
            1 => Kind::Manifest,
            2 => Kind::Have,
            3 => Kind::Chunk,
            4 => Kind::FileDone,
            5 => Kind::Error,
            6 => Kind::Done,
            7 => Kind::Join,
            8 => Kind::Joined,
            9 => Kind::Sent,
            other => return Err(Error::Frame(format!("unknown frame type {other}"))),
        })
    }
}

/// Encodes a frame header for a payload of `len` bytes.
pub fn header(kind: Kind, len: usize) -> Result<[u8; 5]> {
    if len > MAX_PAYLOAD {
        return Err(Error::Frame(format!(
            "payload of {len} bytes exceeds the limit of {MAX_PAYLOAD}"
        )));
    }
    let mut h = [0u8; 5];
    h[0] = kind as u8;
    h[1..].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(h)
}

/// Encodes a whole frame.
pub fn encode(kind: Kind, payload: &[u8]) -> Result<Vec<u8>> {
    let mut out = header(kind, payload.len())?.to_vec();
    out.extend_from_slice(payload);
    Ok(out)
}

/// Parses a frame header: the kind and the payload length.
pub fn parse_header(h: &[u8; 5]) -> Result<(Kind, usize)> {
    let kind = Kind::from_byte(h[0])?;
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(Error::Frame(format!(
            "payload of {len} bytes exceeds the limit of {MAX_PAYLOAD}"
        )));
    }
    Ok((kind, len))
}

/// A `CHUNK` payload's header: file index and chunk index.
pub fn chunk_payload_header(file: u32, chunk: u64) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..4].copy_from_slice(&file.to_be_bytes());
    h[4..].copy_from_slice(&chunk.to_be_bytes());
    h
}

/// Splits a `CHUNK` payload into (file index, chunk index, bytes).
pub fn parse_chunk_payload(p: &[u8]) -> Result<(u32, u64, &[u8])> {
    if p.len() < 12 {
        return Err(Error::Frame(
            "CHUNK payload shorter than its 12-byte header".into(),
        ));
    }
    let file = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    let mut c = [0u8; 8];
    c.copy_from_slice(&p[4..12]);
    Ok((file, u64::from_be_bytes(c), &p[12..]))
}

/// A `HAVE` payload: for each file in manifest order, its bitmap of
/// verified chunks in `ceil(chunks / 8)` bytes, chunk `i` in bit `i % 8`
/// (least significant first) of byte `i / 8`; unused high bits zero; the
/// files' bitmaps concatenated with nothing between them.
pub fn have_payload(files: &[Vec<bool>]) -> Vec<u8> {
    let mut out = Vec::new();
    for have in files {
        let mut bytes = vec![0u8; have.len().div_ceil(8)];
        for (i, h) in have.iter().enumerate() {
            if *h {
                bytes[i / 8] |= 1 << (i % 8);
            }
        }
        out.extend_from_slice(&bytes);
    }
    out
}

/// Parses a `HAVE` payload for files of `chunks[i]` chunks each; the
/// payload must be exactly as long as they need.
pub fn parse_have(p: &[u8], chunks: &[usize]) -> Result<Vec<Vec<bool>>> {
    let need: usize = chunks.iter().map(|n| n.div_ceil(8)).sum();
    if p.len() != need {
        return Err(Error::Frame(format!(
            "HAVE is {} bytes; the manifest needs {need}",
            p.len()
        )));
    }
    let mut out = Vec::with_capacity(chunks.len());
    let mut rest = p;
    for &n in chunks {
        let (b, r) = rest.split_at(n.div_ceil(8));
        out.push((0..n).map(|i| b[i / 8] & (1 << (i % 8)) != 0).collect());
        rest = r;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frames_round_trip(kind in 1u8..=9, payload in prop::collection::vec(any::<u8>(), 0..2000)) {
            let k = Kind::from_byte(kind).unwrap();
            let f = encode(k, &payload).unwrap();
            let h: [u8; 5] = f[..5].try_into().unwrap();
            let (k2, len) = parse_header(&h).unwrap();
            prop_assert_eq!(k2, k);
            prop_assert_eq!(&f[5..5 + len], &payload[..]);
        }

        #[test]
        fn chunk_payloads_round_trip(file in any::<u32>(), chunk in any::<u64>(), data in prop::collection::vec(any::<u8>(), 0..100)) {
            let mut p = chunk_payload_header(file, chunk).to_vec();
            p.extend_from_slice(&data);
            let (f, c, d) = parse_chunk_payload(&p).unwrap();
            prop_assert_eq!((f, c, d), (file, chunk, &data[..]));
        }

        #[test]
        fn header_parser_never_panics(h in prop::array::uniform5(any::<u8>())) {
            let _ = parse_header(&h);
        }
    }

    #[test]
    fn oversized_and_unknown_frames_are_refused() {
        assert!(parse_header(&[3, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(parse_header(&[10, 0, 0, 0, 0]).is_err());
        assert!(parse_header(&[0, 0, 0, 0, 0]).is_err());
        assert!(parse_chunk_payload(&[0; 11]).is_err());
    }
}
