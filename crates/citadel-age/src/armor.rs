//! ASCII armor: strict PEM with the label `AGE ENCRYPTED FILE` (C2SP age §"ASCII armor").

use crate::error::ArmorError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::io::{self, BufRead, Read, Write};

pub(crate) const BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
const END: &[u8] = b"-----END AGE ENCRYPTED FILE-----";
const COLUMNS: usize = 64;
const MAX_WHITESPACE: usize = 1024;

fn err(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, ArmorError(msg.to_string()))
}

/// Writes armored output; call [`ArmorWriter::finish`] at the end.
pub(crate) struct ArmorWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> ArmorWriter<W> {
    pub(crate) fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(BEGIN)?;
        inner.write_all(b"\n")?;
        Ok(Self {
            inner,
            pending: Vec::with_capacity(48 * 1024),
        })
    }

    fn flush_lines(&mut self, all: bool) -> io::Result<()> {
        let whole = if all {
            self.pending.len()
        } else {
            self.pending.len() / 48 * 48
        };
        if whole == 0 {
            return Ok(());
        }
        let enc = STANDARD.encode(&self.pending[..whole]);
        let mut out = Vec::with_capacity(enc.len() + enc.len() / COLUMNS + 1);
        for line in enc.as_bytes().chunks(COLUMNS) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        self.inner.write_all(&out)?;
        self.pending.drain(..whole);
        Ok(())
    }

    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.flush_lines(true)?;
        self.inner.write_all(END)?;
        self.inner.write_all(b"\n")?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ArmorWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= 48 * 1024 {
            self.flush_lines(false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads and strictly validates armored input, yielding the binary file.
pub(crate) struct ArmorReader<R: BufRead> {
    inner: R,
    decoded: Vec<u8>,
    pos: usize,
    done: bool,
    started: bool,
}

impl<R: BufRead> ArmorReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            decoded: Vec::new(),
            pos: 0,
            done: false,
            started: false,
        }
    }

    fn line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut l = Vec::new();
        let n = (&mut self.inner).take(1024).read_until(b'\n', &mut l)?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(l))
    }

    fn start(&mut self) -> io::Result<()> {
        let mut skipped = 0;
        loop {
            let buf = self.inner.fill_buf()?;
            let Some(&b) = buf.first() else {
                return Err(err("no armor header"));
            };
            if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                self.inner.consume(1);
                skipped += 1;
                if skipped > MAX_WHITESPACE {
                    return Err(err("too much whitespace before the armor"));
                }
            } else {
                break;
            }
        }
        let l = self.line()?.ok_or_else(|| err("no armor header"))?;
        if strip_eol(&l) != Some(BEGIN) {
            return Err(err(
                "the input is neither a binary age file nor armored (it must begin with 'age-encryption.org/v1' or '-----BEGIN AGE ENCRYPTED FILE-----')",
            ));
        }
        self.started = true;
        Ok(())
    }

    fn refill(&mut self) -> io::Result<()> {
        let l = self
            .line()?
            .ok_or_else(|| err("the armor ends without its END line"))?;
        let body = strip_eol(&l).ok_or_else(|| err("an armor line is too long or unterminated"))?;
        if body == END {
            // After BEGIN (an empty file) or after a full line: the lines'
            // lengths, not where the read buffer happens to end, say where
            // the data stops.
            return self.finish_after_end();
        }
        if body.len() > COLUMNS {
            return Err(err("an armor line is longer than 64 columns"));
        }
        if body.is_empty() || body.iter().any(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            return Err(err("unexpected whitespace inside the armor"));
        }
        self.decoded = STANDARD
            .decode(body)
            .map_err(|_| err("invalid base64 in the armor"))?;
        // Canonical: re-encoding must give the same text.
        if STANDARD.encode(&self.decoded).as_bytes() != body {
            return Err(err("non-canonical base64 in the armor"));
        }
        self.pos = 0;
        // A short (or padded) line is the last one: END must follow. After
        // a full line, the next line says (data, or END).
        if body.len() < COLUMNS || body.ends_with(b"=") {
            self.expect_end()?;
        }
        Ok(())
    }

    fn expect_end(&mut self) -> io::Result<()> {
        let l = self
            .line()?
            .ok_or_else(|| err("the armor ends without its END line"))?;
        let end = if l.ends_with(b"\n") {
            strip_eol(&l)
        } else {
            Some(&l[..])
        };
        if end != Some(END) {
            return Err(err("expected the armor END line after a short line"));
        }
        self.finish_after_end()
    }

    /// After the END line only a little whitespace may follow.
    fn finish_after_end(&mut self) -> io::Result<()> {
        let mut trailing = Vec::new();
        (&mut self.inner)
            .take(MAX_WHITESPACE as u64 + 1)
            .read_to_end(&mut trailing)?;
        if trailing.len() > MAX_WHITESPACE
            || trailing
                .iter()
                .any(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            return Err(err("data after the armor END line"));
        }
        self.done = true;
        Ok(())
    }
}

fn strip_eol(l: &[u8]) -> Option<&[u8]> {
    l.strip_suffix(b"\r\n").or_else(|| l.strip_suffix(b"\n"))
}

impl<R: BufRead> Read for ArmorReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.start()?;
        }
        while self.pos == self.decoded.len() {
            if self.done {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = out.len().min(self.decoded.len() - self.pos);
        out[..n].copy_from_slice(&self.decoded[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn armored(data: &[u8]) -> Vec<u8> {
        let mut w = ArmorWriter::new(Vec::new()).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    /// Issue 13: an END line that began within the last 31 bytes of the
    /// read buffer was taken for a second one ("the armor END line
    /// repeats"). Every END position relative to the buffer decodes.
    #[test]
    fn the_end_line_is_found_wherever_the_buffer_ends() {
        for lines in 0..40usize {
            for extra in [0usize, 1, 47] {
                let data: Vec<u8> = (0..lines * 48 + extra).map(|i| (i * 7) as u8).collect();
                let text = armored(&data);
                for cap in 1..=140 {
                    let mut out = Vec::new();
                    ArmorReader::new(BufReader::with_capacity(cap, &text[..]))
                        .read_to_end(&mut out)
                        .unwrap_or_else(|e| panic!("{lines} lines + {extra}, buffer {cap}: {e}"));
                    assert_eq!(out, data);
                }
            }
        }
    }

    #[test]
    fn what_follows_the_end_line_is_still_checked() {
        let mut text = armored(&[1u8; 96]);
        text.extend_from_slice(b"-----END AGE ENCRYPTED FILE-----\n");
        let mut out = Vec::new();
        assert!(ArmorReader::new(&text[..]).read_to_end(&mut out).is_err());
    }
}
