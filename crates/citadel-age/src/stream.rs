//! The payload: STREAM (Hoang, Reyhanitabar, Rogaway, Vizár) over
//! ChaCha20-Poly1305 with 64 KiB chunks, as the age spec defines it.
//!
//! Nonce = 11-byte big-endian chunk counter ‖ last-chunk flag. Memory use is
//! one chunk, whatever the file size.

use crate::error::{Error, Result};
use citadel_crypto::aead::{AeadAlgorithm, AeadKey, TAG_LEN};
use std::io::{self, Read, Write};

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

/// Encrypts all of `input` to `output`; returns the plaintext length.
pub(crate) fn encrypt(
    key: &AeadKey,
    input: &mut impl Read,
    output: &mut impl Write,
) -> Result<u64> {
    let mut cur = Vec::with_capacity(CT_CHUNK);
    cur.resize(CHUNK, 0);
    let mut cur_len = read_full(input, &mut cur).map_err(Error::Io)?;
    let mut next = vec![0u8; CHUNK];
    let mut counter: u64 = 0;
    let mut total: u64 = 0;
    loop {
        // Only a full chunk can have a successor; look ahead to find the last one.
        let next_len = if cur_len == CHUNK {
            read_full(input, &mut next).map_err(Error::Io)?
        } else {
            0
        };
        let last = next_len == 0;
        cur.truncate(cur_len);
        key.seal_in_place(&nonce(counter, last), b"", &mut cur)?;
        output.write_all(&cur).map_err(Error::Io)?;
        total += cur_len as u64;
        if last {
            return Ok(total);
        }
        counter = counter
            .checked_add(1)
            .filter(|c| *c < 1 << 40)
            .ok_or_else(|| Error::Payload("the file is too large for the age format".into()))?;
        std::mem::swap(&mut cur, &mut next);
        cur.resize(CHUNK, 0);
        next.resize(CHUNK, 0);
        cur_len = next_len;
    }
}

/// Decrypts the payload, writing each chunk once it has authenticated;
/// returns the plaintext length. Truncation, reordering, a flipped bit or
/// trailing data is a [`Error::Payload`].
pub(crate) fn decrypt(
    key: &AeadKey,
    input: &mut impl Read,
    output: &mut impl Write,
) -> Result<u64> {
    let mut buf = vec![0u8; CT_CHUNK];
    let mut counter: u64 = 0;
    let mut total: u64 = 0;
    loop {
        buf.resize(CT_CHUNK, 0);
        let n = read_full(input, &mut buf)?;
        if n == 0 {
            return Err(Error::Payload(if counter == 0 {
                "the payload is empty (no chunks)".into()
            } else {
                "the file is truncated (the final chunk is missing)".into()
            }));
        }
        if n < TAG_LEN {
            return Err(Error::Payload(
                "the file is truncated (partial chunk)".into(),
            ));
        }
        buf.truncate(n);
        let last = if n < CT_CHUNK {
            if n == TAG_LEN && counter != 0 {
                return Err(Error::Payload("an empty final chunk after data".into()));
            }
            key.open_in_place(&nonce(counter, true), b"", &mut buf)
                .map_err(|_| {
                    Error::Payload(format!(
                        "chunk {counter} failed authentication (modified, reordered or truncated)"
                    ))
                })?;
            true
        } else {
            let saved = buf.clone();
            match key.open_in_place(&nonce(counter, false), b"", &mut buf) {
                Ok(()) => false,
                Err(_) => {
                    buf = saved;
                    key.open_in_place(&nonce(counter, true), b"", &mut buf).map_err(|_| {
                        Error::Payload(format!("chunk {counter} failed authentication (modified, reordered or truncated)"))
                    })?;
                    true
                }
            }
        };
        output.write_all(&buf).map_err(Error::Io)?;
        total += buf.len() as u64;
        if last {
            let mut probe = [0u8; 1];
            if read_full(input, &mut probe)? != 0 {
                return Err(Error::Payload("trailing data after the final chunk".into()));
            }
            return Ok(total);
        }
        counter += 1;
    }
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
