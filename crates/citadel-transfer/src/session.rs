//! Blocking drivers for both ends of a transfer over any byte stream (a TLS
//! stream in `citadel`, a plain socket or pipe in tests). One connection,
//! chunks streamed without per-chunk round trips.

use crate::assemble::FileAssembler;
use crate::frame::{self, Kind};
use crate::manifest::{Manifest, chunk_count, validate_path};
use crate::{CHUNK_SIZE, Error, Result, io};
use citadel_crypto::sig::{SigningKey, VerifyingKey};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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
}

fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<Kind> {
    let mut h = [0u8; 5];
    r.read_exact(&mut h)
        .map_err(|e| Error::Frame(format!("connection closed: {e}")))?;
    let (kind, len) = frame::parse_header(&h)?;
    buf.resize(len, 0);
    r.read_exact(buf)
        .map_err(|e| Error::Frame(format!("connection closed mid-frame: {e}")))?;
    Ok(kind)
}

fn write_frame(w: &mut impl Write, kind: Kind, payload: &[u8]) -> Result<()> {
    w.write_all(&frame::header(kind, payload.len())?)
        .and_then(|()| w.write_all(payload))
        .map_err(|e| Error::Frame(format!("connection lost: {e}")))
}

fn peer_error(payload: &[u8]) -> Error {
    Error::Frame(format!(
        "the peer aborted: {}",
        String::from_utf8_lossy(payload)
    ))
}

/// Sends `manifest` (whose files live at `local[i]`) over `stream`, signed
/// with `key`. Returns once the receiver confirmed every file.
pub fn send<S: Read + Write>(
    stream: &mut S,
    manifest: &Manifest,
    local: &[PathBuf],
    key: &SigningKey,
) -> Result<Summary> {
    send_with_progress(stream, manifest, local, key, &mut |_, _| {})
}

/// Like [`send`], calling `progress(file_index, bytes)` after every chunk
/// sent or skipped (skipped chunks were verified on the receiver already).
pub fn send_with_progress<S: Read + Write>(
    stream: &mut S,
    manifest: &Manifest,
    local: &[PathBuf],
    key: &SigningKey,
    progress: &mut dyn FnMut(usize, u64),
) -> Result<Summary> {
    if local.len() != manifest.files.len() {
        return Err(Error::Manifest(
            "one local path per manifest file is needed".into(),
        ));
    }
    write_frame(stream, Kind::Manifest, &manifest.sign(key)?)?;
    stream.flush().map_err(|e| Error::Frame(e.to_string()))?;
    let mut buf = Vec::new();
    let have = match read_frame(stream, &mut buf)? {
        Kind::Have => parse_have(&buf, manifest)?,
        Kind::Error => return Err(peer_error(&buf)),
        other => return Err(Error::Frame(format!("expected HAVE, got {other:?}"))),
    };
    let mut summary = Summary {
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.size).sum(),
        ..Default::default()
    };
    let mut chunk = vec![0u8; 12 + CHUNK_SIZE as usize];
    for (i, (entry, path)) in manifest.files.iter().zip(local).enumerate() {
        let mut f = File::open(path).map_err(io(path))?;
        for c in 0..chunk_count(entry.size) {
            let len = (entry.size - c * CHUNK_SIZE).min(CHUNK_SIZE) as usize;
            if have[i][c as usize] {
                summary.resumed_bytes += len as u64;
                progress(i, len as u64);
                continue;
            }
            chunk[..12].copy_from_slice(&frame::chunk_payload_header(i as u32, c));
            f.seek(SeekFrom::Start(c * CHUNK_SIZE)).map_err(io(path))?;
            f.read_exact(&mut chunk[12..12 + len]).map_err(io(path))?;
            write_frame(stream, Kind::Chunk, &chunk[..12 + len])?;
            summary.sent_bytes += len as u64;
            progress(i, len as u64);
        }
    }
    stream.flush().map_err(|e| Error::Frame(e.to_string()))?;
    loop {
        match read_frame(stream, &mut buf)? {
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

fn parse_have(p: &[u8], m: &Manifest) -> Result<Vec<Vec<bool>>> {
    let mut out = Vec::with_capacity(m.files.len());
    let mut rest = p;
    for f in &m.files {
        let n = chunk_count(f.size) as usize;
        let bytes = n.div_ceil(8);
        if rest.len() < bytes {
            return Err(Error::Frame(
                "HAVE is shorter than the manifest needs".into(),
            ));
        }
        let (b, r) = rest.split_at(bytes);
        out.push((0..n).map(|i| b[i / 8] & (1 << (i % 8)) != 0).collect());
        rest = r;
    }
    Ok(out)
}

fn encode_have(assemblers: &[FileAssembler]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in assemblers {
        let have = a.have();
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

/// Receives one transfer into `out_dir`, accepting only a manifest signed by
/// `sender` (the key of the sender's authenticated certificate).
pub fn receive<S: Read + Write>(
    stream: &mut S,
    out_dir: &Path,
    sender: &VerifyingKey,
) -> Result<Summary> {
    let result = receive_inner(stream, out_dir, sender);
    if let Err(e) = &result {
        // Tell the sender why; the connection closes anyway.
        let _ = write_frame(stream, Kind::Error, e.to_string().as_bytes());
        let _ = stream.flush();
    }
    result
}

fn receive_inner<S: Read + Write>(
    stream: &mut S,
    out_dir: &Path,
    sender: &VerifyingKey,
) -> Result<Summary> {
    let mut buf = Vec::new();
    let manifest = match read_frame(stream, &mut buf)? {
        Kind::Manifest => Manifest::open_signed(&buf, sender)?,
        other => return Err(Error::Frame(format!("expected MANIFEST, got {other:?}"))),
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    for d in &manifest.dirs {
        validate_path(&d.path)?;
        let p = out_dir.join(&d.path);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let mut assemblers = manifest
        .files
        .iter()
        .map(|f| FileAssembler::open(out_dir, f))
        .collect::<Result<Vec<_>>>()?;
    let resumed: u64 = assemblers.iter().map(FileAssembler::verified_bytes).sum();
    write_frame(stream, Kind::Have, &encode_have(&assemblers))?;
    stream.flush().map_err(|e| Error::Frame(e.to_string()))?;
    let mut pending: Vec<Option<FileAssembler>> = assemblers.drain(..).map(Some).collect();
    // FILE_DONE frames are sent after the last chunk arrived, not while the
    // sender is still writing: it reads them only then, and a stream of
    // small frames it does not read could otherwise fill the TCP buffers
    // in both directions and stall the transfer.
    let mut done: Vec<u32> = Vec::new();
    let mut remaining = pending.len();
    let mut received = 0u64;
    // Files that were complete already (resumed fully, or empty) finish first.
    for (i, slot) in pending.iter_mut().enumerate() {
        if slot.as_ref().is_some_and(FileAssembler::is_complete) {
            if let Some(a) = slot.take() {
                a.finish()?;
                done.push(i as u32);
                remaining -= 1;
            }
        }
    }
    let streamed = (|| -> Result<()> {
        while remaining > 0 {
            match read_frame(stream, &mut buf)? {
                Kind::Chunk => {
                    let (file, chunk, data) = frame::parse_chunk_payload(&buf)?;
                    let slot = pending
                        .get_mut(file as usize)
                        .ok_or_else(|| Error::Frame(format!("chunk for unknown file {file}")))?;
                    let a = slot
                        .as_mut()
                        .ok_or_else(|| Error::Frame(format!("chunk for finished file {file}")))?;
                    a.write_chunk(chunk, data)?;
                    received += data.len() as u64;
                    if a.is_complete() {
                        if let Some(a) = slot.take() {
                            a.finish()?;
                            done.push(file);
                            remaining -= 1;
                        }
                    }
                }
                Kind::Error => return Err(peer_error(&buf)),
                other => {
                    return Err(Error::Frame(format!(
                        "unexpected {other:?} from the sender"
                    )));
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = streamed {
        // Keep every verified chunk for the next attempt.
        for a in pending.iter_mut().flatten() {
            let _ = a.save_state();
        }
        return Err(e);
    }
    for i in &done {
        write_frame(stream, Kind::FileDone, &i.to_be_bytes())?;
    }
    // Directory times last: creating files inside changed them.
    for d in manifest.dirs.iter().rev() {
        let p = out_dir.join(&d.path);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(d.mode & 0o7777));
        }
        if let Ok(f) = File::open(&p) {
            let _ = f.set_modified(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(d.mtime.max(0) as u64),
            );
        }
    }
    write_frame(stream, Kind::Done, &[])?;
    stream.flush().map_err(|e| Error::Frame(e.to_string()))?;
    Ok(Summary {
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.size).sum(),
        sent_bytes: received,
        resumed_bytes: resumed,
    })
}
