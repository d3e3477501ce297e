//! The age header: version line, recipient stanzas, MAC (C2SP age §"Header").

use crate::error::{Result, header};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use std::io::BufRead;

/// Unpadded, canonical standard base64, as the age spec requires.
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

pub(crate) const VERSION_LINE: &[u8] = b"age-encryption.org/v1";
const MAX_LINE: usize = 1 << 20;
const MAX_HEADER: usize = 16 << 20;
const COLUMNS: usize = 64;

/// Decodes canonical unpadded base64.
pub(crate) fn b64_decode(s: &[u8]) -> Option<Vec<u8>> {
    if s.iter().any(|b| matches!(b, b'\n' | b'\r' | b'=')) {
        return None;
    }
    B64.decode(s).ok()
}

/// One recipient stanza.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stanza {
    /// The first argument: the recipient type.
    pub tag: String,
    /// The remaining arguments.
    pub args: Vec<String>,
    /// The decoded body.
    pub body: Vec<u8>,
}

impl Stanza {
    /// Appends the stanza's encoding.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"-> ");
        out.extend_from_slice(self.tag.as_bytes());
        for a in &self.args {
            out.push(b' ');
            out.extend_from_slice(a.as_bytes());
        }
        out.push(b'\n');
        let enc = B64.encode(&self.body);
        let mut chunks = enc.as_bytes().chunks(COLUMNS).peekable();
        let mut last_len = 0;
        while let Some(chunk) = chunks.next() {
            out.extend_from_slice(chunk);
            out.push(b'\n');
            last_len = chunk.len();
            if chunks.peek().is_none() {
                break;
            }
        }
        // A body ends at its first short line; a full last line needs an empty one.
        if last_len == COLUMNS || enc.is_empty() {
            out.push(b'\n');
        }
    }
}

/// A parsed header.
#[derive(Debug)]
pub struct Header {
    /// The stanzas, in order.
    pub stanzas: Vec<Stanza>,
    /// The 32-byte MAC.
    pub mac: [u8; 32],
    /// The bytes the MAC covers: from the version line through `---`.
    pub(crate) mac_input: Vec<u8>,
}

impl Header {
    /// Encodes the header up to and including `---` (the MAC input).
    pub(crate) fn encode_for_mac(stanzas: &[Stanza]) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(VERSION_LINE);
        out.push(b'\n');
        for s in stanzas {
            s.write(&mut out);
        }
        out.extend_from_slice(b"---");
        out
    }

    /// Reads a header from `r`, leaving `r` at the first payload byte.
    pub fn read(r: &mut impl BufRead) -> Result<Header> {
        let mut raw = Vec::new();
        let first = read_line(r, &mut raw)?.ok_or_else(|| header("the file is empty"))?;
        if first != VERSION_LINE {
            return Err(header(
                "not an age v1 file (the first line is not 'age-encryption.org/v1')",
            ));
        }
        let mut stanzas = Vec::new();
        let mut pending: Option<Vec<u8>> = None;
        loop {
            let line = match pending.take() {
                Some(l) => l,
                None => read_line(r, &mut raw)?
                    .ok_or_else(|| header("the header ends before its MAC line"))?,
            };
            if line.starts_with(b"---") {
                if stanzas.is_empty() {
                    return Err(header("the header has no recipient stanzas"));
                }
                let Some(mac_b64) = line.strip_prefix(b"--- ") else {
                    return Err(header("malformed MAC line"));
                };
                let mac = b64_decode(mac_b64)
                    .and_then(|m| <[u8; 32]>::try_from(m).ok())
                    .ok_or_else(|| header("the header MAC is not 32 bytes of canonical base64"))?;
                // The MAC covers everything through "---", not the space and MAC.
                let mac_input_len = raw.len() - line.len() - 1 + 3;
                raw.truncate(mac_input_len);
                return Ok(Header {
                    stanzas,
                    mac,
                    mac_input: raw,
                });
            }
            let Some(rest) = line.strip_prefix(b"-> ") else {
                return Err(header("expected a stanza ('-> ') or the MAC line ('--- ')"));
            };
            let mut args = Vec::new();
            for a in rest.split(|b| *b == b' ') {
                if a.is_empty() || a.iter().any(|b| !(0x21..=0x7E).contains(b)) {
                    return Err(header(
                        "a stanza argument is empty or has characters outside printable ASCII",
                    ));
                }
                // Printable ASCII is valid UTF-8.
                args.push(String::from_utf8_lossy(a).into_owned());
            }
            if args.is_empty() {
                return Err(header("a stanza has no type"));
            }
            let tag = args.remove(0);
            let mut body_b64 = Vec::new();
            loop {
                let l = read_line(r, &mut raw)?
                    .ok_or_else(|| header("the header ends inside a stanza body"))?;
                if l.len() > COLUMNS {
                    return Err(header("a stanza body line is longer than 64 columns"));
                }
                let short = l.len() < COLUMNS;
                if short
                    && (l.starts_with(b"-> ") || l.starts_with(b"---"))
                    && body_b64.is_empty()
                    && !l.is_empty()
                {
                    // A stanza must end with a (possibly empty) short line.
                    return Err(header("a stanza is missing its body line"));
                }
                body_b64.extend_from_slice(&l);
                if short {
                    break;
                }
            }
            let body = b64_decode(&body_b64)
                .ok_or_else(|| header("a stanza body is not canonical base64"))?;
            stanzas.push(Stanza { tag, args, body });
            if raw.len() > MAX_HEADER {
                return Err(header("the header is unreasonably large"));
            }
        }
    }
}

/// Reads one LF-terminated line (without the LF), appending the raw bytes to
/// `raw`. `None` at a clean end of input. CR anywhere is an error.
fn read_line(r: &mut impl BufRead, raw: &mut Vec<u8>) -> Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = std::io::Read::take(&mut *r, MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(header(if n > MAX_LINE {
            "a header line is too long"
        } else {
            "the header is truncated"
        }));
    }
    raw.extend_from_slice(&line);
    line.pop();
    if line.contains(&b'\r') {
        return Err(header(
            "carriage return in the header (CRLF line endings are not allowed)",
        ));
    }
    Ok(Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stanza(body_len: usize) -> Stanza {
        Stanza {
            tag: "X".into(),
            args: vec!["a".into(), "b".into()],
            body: vec![7; body_len],
        }
    }

    #[test]
    fn round_trip_all_body_lengths() {
        for len in [0, 1, 47, 48, 49, 96, 100] {
            let s = vec![stanza(len), stanza(3)];
            let mut bytes = Header::encode_for_mac(&s);
            bytes.extend_from_slice(b" ");
            bytes.extend_from_slice(B64.encode([1u8; 32]).as_bytes());
            bytes.extend_from_slice(b"\npayload");
            let mut cur = std::io::Cursor::new(&bytes);
            let h = Header::read(&mut cur).unwrap();
            assert_eq!(h.stanzas, s, "len {len}");
            assert_eq!(h.mac, [1u8; 32]);
            assert_eq!(h.mac_input, Header::encode_for_mac(&s));
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut input = b"age-encryption.org/v1\n".to_vec();
            input.extend_from_slice(&data);
            let _ = Header::read(&mut std::io::Cursor::new(&input));
        }
    }
}
