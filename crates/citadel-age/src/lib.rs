//! The age v1 file format ([C2SP age](https://c2sp.org/age)), streaming in
//! constant memory, with three recipient types:
//!
//! - `mlkem768x25519` (age v1.3's post-quantum hybrid: `age1pq1…` /
//!   `AGE-SECRET-KEY-PQ-1…`), HPKE with the X-Wing KEM;
//! - `X25519` (`age1…` / `AGE-SECRET-KEY-1…`);
//! - `scrypt` passphrases.
//!
//! Primitives come from `citadel-crypto`; this crate is only the format. It
//! reads from any [`Read`] and writes to any [`Write`]: it never touches the
//! file system, so the caller decides where plaintext lands (the `citadel`
//! CLI writes to a temporary file and renames it only after the last chunk
//! verified).
//!
//! Non-features: no plugins, no SSH keys, no tagged (`p256tag`) recipients.
//! Post-quantum and classical recipients are not mixed in one file (the spec
//! says they SHOULD NOT be: the mix would be only as strong as X25519).
//!
//! ```
//! use citadel_age::{Identity, decrypt, encrypt};
//! let id = Identity::generate_hybrid().unwrap();
//! let mut file = Vec::new();
//! encrypt(&[id.to_recipient().unwrap()], &b"hello"[..], &mut file, false).unwrap();
//! let mut out = Vec::new();
//! decrypt(&[id], std::io::Cursor::new(file), &mut out).unwrap();
//! assert_eq!(out, b"hello");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod armor;
mod bech32;
mod error;
mod header;
mod hpke;
mod recipients;
mod stream;

pub use error::{Error, Result};
pub use header::{Header, Stanza};
pub use recipients::{Identity, MAX_SCRYPT_WORK_FACTOR, Recipient};

use citadel_crypto::kdf::{HkdfHash, hkdf, hmac_sha256, hmac_sha256_verify};
use citadel_crypto::random;
use std::io::{BufRead, BufReader, Read, Write};

fn header_mac(file_key: &[u8], mac_input: &[u8]) -> Result<[u8; 32]> {
    let key = hkdf(HkdfHash::Sha256, b"", file_key, b"header", 32)?;
    Ok(hmac_sha256(key.expose(), mac_input))
}

/// Encrypts `input` to `recipients`, writing the age file (armored if
/// `armor`) to `output`. Returns the plaintext length.
///
/// The input is read ahead on a thread of its own, which owns it: if
/// writing fails, the error is returned at once, even while a read of a
/// stalled input is in progress (that thread ends when the read returns).
pub fn encrypt(
    recipients: &[Recipient],
    input: impl Read + Send + 'static,
    output: &mut impl Write,
    armor: bool,
) -> Result<u64> {
    if recipients.is_empty() {
        return Err(Error::NoRecipients);
    }
    let scrypt = recipients
        .iter()
        .any(|r| matches!(r, Recipient::Scrypt { .. }));
    if scrypt && recipients.len() > 1 {
        return Err(Error::IncompatibleRecipients(
            "a passphrase cannot be combined with other recipients".into(),
        ));
    }
    let pq = recipients.iter().filter(|r| r.is_post_quantum()).count();
    if pq != 0 && pq != recipients.len() {
        return Err(Error::IncompatibleRecipients(
            "post-quantum (age1pq1…) and classical (age1…) recipients cannot be mixed: the file would be only as strong as X25519".into(),
        ));
    }
    let file_key = random::secret_array::<16>()?;
    let stanzas = recipients
        .iter()
        .map(|r| r.wrap(&file_key))
        .collect::<Result<Vec<_>>>()?;
    let mut head = header::Header::encode_for_mac(&stanzas);
    let mac = header_mac(file_key.as_ref(), &head)?;
    head.push(b' ');
    head.extend_from_slice(base64::Engine::encode(&header::B64, mac).as_bytes());
    head.push(b'\n');
    let nonce = random::array::<16>()?;
    head.extend_from_slice(&nonce);
    let key = stream::payload_key(file_key.as_ref(), &nonce)?;
    if armor {
        let mut w = armor::ArmorWriter::new(output).map_err(Error::Io)?;
        w.write_all(&head).map_err(Error::Io)?;
        let n = stream::encrypt(&key, input, &mut w)?;
        w.finish().map_err(Error::Io)?.flush().map_err(Error::Io)?;
        Ok(n)
    } else {
        output.write_all(&head).map_err(Error::Io)?;
        let n = stream::encrypt(&key, input, output)?;
        output.flush().map_err(Error::Io)?;
        Ok(n)
    }
}

/// Decrypts an age file (binary or armored) with the first identity that
/// matches, writing plaintext to `output` chunk by chunk as each chunk
/// authenticates. On `Err`, whatever was written must be discarded.
///
/// The payload is read ahead on a thread of its own, which owns the input:
/// the first damaged chunk (or failed write) is reported at once, even
/// while a read of a stalled input is in progress.
pub fn decrypt(
    identities: &[Identity],
    input: impl Read + Send + 'static,
    output: &mut impl Write,
) -> Result<u64> {
    // A buffer smaller than a payload chunk: chunk-sized reads then bypass it
    // (no extra copy); only the header goes through it.
    let mut r = BufReader::with_capacity(8 * 1024, input);
    // A binary age file starts with its version line; anything else is
    // taken as ASCII armor, whose reader then names what is wrong.
    let armored = {
        let buf = r.fill_buf().map_err(Error::Io)?;
        !buf.is_empty()
            && !buf.starts_with(&header::VERSION_LINE[..buf.len().min(header::VERSION_LINE.len())])
    };
    if armored {
        let a = BufReader::with_capacity(128 * 1024, armor::ArmorReader::new(r));
        decrypt_binary(identities, a, output)
    } else {
        decrypt_binary(identities, r, output)
    }
}

fn decrypt_binary(
    identities: &[Identity],
    mut r: impl BufRead + Send + 'static,
    output: &mut impl Write,
) -> Result<u64> {
    let hdr = Header::read(&mut r)?;
    let mut file_key = None;
    for id in identities {
        if let Some(fk) = id.unwrap(&hdr.stanzas)? {
            file_key = Some(fk);
            break;
        }
    }
    let file_key = file_key.ok_or(Error::NoMatch)?;
    let key = hkdf(HkdfHash::Sha256, b"", file_key.as_ref(), b"header", 32)?;
    if !hmac_sha256_verify(key.expose(), &hdr.mac_input, &hdr.mac) {
        return Err(Error::HeaderMac);
    }
    let mut nonce = [0u8; 16];
    if stream::read_full(&mut r, &mut nonce)? != 16 {
        return Err(error::header("the payload nonce is missing or truncated"));
    }
    let key = stream::payload_key(file_key.as_ref(), &nonce)?;
    stream::decrypt(&key, r, output)
}

/// Reads only the header, for inspection (`citadel` uses it to say which
/// recipient types a file has).
pub fn read_header(input: &mut impl Read) -> Result<Header> {
    let mut r = BufReader::new(input);
    Header::read(&mut r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(len: usize, armor: bool) {
        let id = Identity::generate_hybrid().unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let mut file = Vec::new();
        encrypt(
            &[id.to_recipient().unwrap()],
            std::io::Cursor::new(data[..].to_vec()),
            &mut file,
            armor,
        )
        .unwrap();
        let mut out = Vec::new();
        decrypt(&[id], std::io::Cursor::new(file[..].to_vec()), &mut out).unwrap();
        assert_eq!(out, data, "len {len} armor {armor}");
    }

    #[test]
    fn round_trips_at_chunk_boundaries() {
        for len in [
            0,
            1,
            stream::CHUNK - 1,
            stream::CHUNK,
            stream::CHUNK + 1,
            2 * stream::CHUNK,
            3 * stream::CHUNK + 5,
        ] {
            roundtrip(len, false);
            roundtrip(len, true);
        }
    }

    #[test]
    fn tampering_truncation_and_wrong_identity_are_detected() {
        let id = Identity::generate_x25519().unwrap();
        let data = vec![9u8; 3 * stream::CHUNK];
        let mut file = Vec::new();
        encrypt(
            &[id.to_recipient().unwrap()],
            std::io::Cursor::new(data[..].to_vec()),
            &mut file,
            false,
        )
        .unwrap();
        let other = Identity::generate_x25519().unwrap();
        assert!(matches!(
            decrypt(
                &[other],
                std::io::Cursor::new(file[..].to_vec()),
                &mut Vec::new()
            ),
            Err(Error::NoMatch)
        ));
        // Flip one bit at a few places in the payload.
        let payload_start = file.len() - (data.len() + 3 * 16);
        for pos in [payload_start, payload_start + 70_000, file.len() - 1] {
            let mut bad = file.clone();
            bad[pos] ^= 0x10;
            assert!(
                matches!(
                    decrypt(
                        &[Identity::X25519(match &id {
                            Identity::X25519(k) =>
                                citadel_crypto::x25519::StaticSecret::from_bytes(
                                    k.to_bytes().expose()
                                )
                                .unwrap(),
                            _ => unreachable!(),
                        })],
                        std::io::Cursor::new(bad[..].to_vec()),
                        &mut Vec::new()
                    ),
                    Err(Error::Payload(_))
                ),
                "pos {pos}"
            );
        }
        // Truncate at a chunk boundary: must not pass as complete.
        let cut = file.len() - (stream::CHUNK + 16);
        assert!(matches!(
            decrypt(
                &[id],
                std::io::Cursor::new(file[..cut].to_vec()),
                &mut Vec::new()
            ),
            Err(Error::Payload(_))
        ));
    }

    #[test]
    fn reordered_or_dropped_chunks_are_detected() {
        let id = Identity::generate_hybrid().unwrap();
        let data = vec![3u8; 3 * stream::CHUNK + 10];
        let mut file = Vec::new();
        encrypt(
            &[id.to_recipient().unwrap()],
            std::io::Cursor::new(data[..].to_vec()),
            &mut file,
            false,
        )
        .unwrap();
        let ct_chunk = stream::CHUNK + 16;
        let payload = file.len() - (data.len() + 4 * 16);
        let (head, body) = file.split_at(payload);
        let chunks: Vec<&[u8]> = body.chunks(ct_chunk).collect();
        assert_eq!(chunks.len(), 4);
        // Swap the first two chunks.
        let swapped = [head, chunks[1], chunks[0], chunks[2], chunks[3]].concat();
        let mut out = Vec::new();
        assert!(matches!(
            decrypt(
                &[Identity::parse(&id.to_secret_string().unwrap()).unwrap()],
                std::io::Cursor::new(swapped[..].to_vec()),
                &mut out
            ),
            Err(Error::Payload(_))
        ));
        assert!(
            out.is_empty(),
            "nothing may be emitted before the first bad chunk"
        );
        // Drop a middle chunk.
        let dropped = [head, chunks[0], chunks[2], chunks[3]].concat();
        let mut out = Vec::new();
        assert!(matches!(
            decrypt(&[id], std::io::Cursor::new(dropped[..].to_vec()), &mut out),
            Err(Error::Payload(_))
        ));
        assert_eq!(
            out.len(),
            stream::CHUNK,
            "only the verified first chunk is emitted"
        );
    }

    #[test]
    fn mixing_pq_and_classical_is_refused() {
        let a = Identity::generate_hybrid().unwrap().to_recipient().unwrap();
        let b = Identity::generate_x25519().unwrap().to_recipient().unwrap();
        assert!(matches!(
            encrypt(&[a, b], &b""[..], &mut Vec::new(), false),
            Err(Error::IncompatibleRecipients(_))
        ));
    }

    /// Found by the `age_strings` fuzz target: a long invalid recipient with
    /// multi-byte characters used to panic while building the error message.
    #[test]
    fn invalid_non_ascii_recipients_are_errors_not_panics() {
        let s = "1\u{2}____W_&_d\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}ऄ\n1\u{8}\0\0\0\u{35}";
        assert!(Recipient::parse(s).is_err());
        let long: String = "é".repeat(100);
        let err = Recipient::parse(&long).unwrap_err().to_string();
        assert!(err.contains('…'), "{err}");
    }

    #[test]
    fn identity_and_recipient_strings_round_trip() {
        for id in [
            Identity::generate_hybrid().unwrap(),
            Identity::generate_x25519().unwrap(),
        ] {
            let s = id.to_secret_string().unwrap();
            let back = Identity::parse(&s).unwrap();
            let r = back.to_recipient().unwrap().to_string();
            assert_eq!(r, id.to_recipient().unwrap().to_string());
            assert_eq!(Recipient::parse(&r).unwrap().to_string(), r);
        }
    }
}
