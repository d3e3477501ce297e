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

/// How many worker threads seal or open chunks (chunks are independent:
/// each has its own nonce), and how many chunks go to each per batch.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().min(8))
        .unwrap_or(1)
}
const CHUNKS_PER_WORKER: usize = 8;

/// Runs `f(index_in_batch, chunk)` over the batch on the worker threads.
fn par_for_each<T: Send, R: Send>(
    items: &mut [T],
    f: impl Fn(usize, &mut T) -> R + Sync,
) -> Vec<R> {
    let threads = workers();
    if threads == 1 || items.len() == 1 {
        return items.iter_mut().enumerate().map(|(i, t)| f(i, t)).collect();
    }
    let per = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks_mut(per)
            .enumerate()
            .map(|(part, chunk)| {
                let f = &f;
                s.spawn(move || {
                    chunk
                        .iter_mut()
                        .enumerate()
                        .map(|(i, t)| f(part * per + i, t))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

fn read_chunk(r: &mut impl Read, size: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(CT_CHUNK);
    buf.resize(size, 0);
    let n = read_full(r, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn chunk_counter(base: u64, i: usize) -> Result<u64> {
    base.checked_add(i as u64)
        .filter(|c| *c < 1 << 40)
        .ok_or_else(|| Error::Payload("the file is too large for the age format".into()))
}

/// Encrypts all of `input` to `output`; returns the plaintext length.
/// Chunks are sealed in parallel batches; memory stays at one batch.
pub(crate) fn encrypt(
    key: &AeadKey,
    input: &mut impl Read,
    output: &mut impl Write,
) -> Result<u64> {
    let batch_len = workers() * CHUNKS_PER_WORKER;
    let mut next = read_chunk(input, CHUNK).map_err(Error::Io)?;
    let mut counter: u64 = 0;
    let mut total: u64 = 0;
    loop {
        let mut batch: Vec<(Vec<u8>, bool)> = Vec::with_capacity(batch_len);
        let mut done = false;
        while batch.len() < batch_len {
            let cur = std::mem::take(&mut next);
            // Only a full chunk can have a successor; look ahead to find the last one.
            if cur.len() == CHUNK {
                next = read_chunk(input, CHUNK).map_err(Error::Io)?;
            }
            let last = next.is_empty();
            batch.push((cur, last));
            if last {
                done = true;
                break;
            }
        }
        let base = counter;
        chunk_counter(base, batch.len())?;
        let results = par_for_each(&mut batch, |i, (buf, last)| {
            key.seal_in_place(&nonce(base + i as u64, *last), b"", buf)
        });
        for ((buf, _), r) in batch.iter().zip(results) {
            r?;
            total += (buf.len() - TAG_LEN) as u64;
            output.write_all(buf).map_err(Error::Io)?;
        }
        counter += batch.len() as u64;
        if done {
            return Ok(total);
        }
    }
}

fn auth_error(counter: u64) -> Error {
    Error::Payload(format!(
        "chunk {counter} failed authentication (modified, reordered or truncated)"
    ))
}

/// Decrypts the payload, writing each chunk once it has authenticated;
/// returns the plaintext length. Truncation, reordering, a flipped bit or
/// trailing data is a [`Error::Payload`]. Chunks are opened in parallel
/// batches, and emitted in order up to the first failure.
pub(crate) fn decrypt(
    key: &AeadKey,
    input: &mut impl Read,
    output: &mut impl Write,
) -> Result<u64> {
    let batch_len = workers() * CHUNKS_PER_WORKER;
    let mut next = read_chunk(input, CT_CHUNK)?;
    let mut counter: u64 = 0;
    let mut total: u64 = 0;
    if next.is_empty() {
        return Err(Error::Payload("the payload is empty (no chunks)".into()));
    }
    loop {
        // (ciphertext, more data follows)
        let mut batch: Vec<(Vec<u8>, bool)> = Vec::with_capacity(batch_len);
        while batch.len() < batch_len && !next.is_empty() {
            let cur = std::mem::take(&mut next);
            if cur.len() == CT_CHUNK {
                next = read_chunk(input, CT_CHUNK)?;
            }
            let more = !next.is_empty();
            batch.push((cur, more));
        }
        let base = counter;
        chunk_counter(base, batch.len())?;
        // Per chunk: Ok(is_final) once opened, Err if it failed.
        let results = par_for_each(&mut batch, |i, (buf, _)| -> Result<bool> {
            let c = base + i as u64;
            if buf.len() < TAG_LEN {
                return Err(Error::Payload(
                    "the file is truncated (partial chunk)".into(),
                ));
            }
            if buf.len() < CT_CHUNK {
                if buf.len() == TAG_LEN && c != 0 {
                    return Err(Error::Payload("an empty final chunk after data".into()));
                }
                key.open_in_place(&nonce(c, true), b"", buf)
                    .map_err(|_| auth_error(c))?;
                return Ok(true);
            }
            let saved = buf.clone();
            if key.open_in_place(&nonce(c, false), b"", buf).is_ok() {
                return Ok(false);
            }
            *buf = saved;
            key.open_in_place(&nonce(c, true), b"", buf)
                .map_err(|_| auth_error(c))?;
            Ok(true)
        });
        for ((buf, more), r) in batch.iter().zip(results) {
            let is_final = r?;
            output.write_all(buf).map_err(Error::Io)?;
            total += buf.len() as u64;
            counter += 1;
            match (is_final, *more) {
                (true, true) => {
                    return Err(Error::Payload("trailing data after the final chunk".into()));
                }
                (true, false) => return Ok(total),
                (false, false) => {
                    return Err(Error::Payload(
                        "the file is truncated (the final chunk is missing)".into(),
                    ));
                }
                (false, true) => {}
            }
        }
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
