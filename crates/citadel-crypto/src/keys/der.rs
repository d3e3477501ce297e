//! A strict DER reader and writer for the few structures key files use.
//!
//! Only what PKCS#8, SPKI and PBES2 need: single-byte tags, definite
//! minimal lengths, non-negative minimal INTEGERs. Anything else is rejected,
//! so every accepted input has exactly one encoding.

use crate::Result;
use crate::error::malformed;

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const OID: u8 = 0x06;
/// `[0] IMPLICIT` primitive.
pub(crate) const CONTEXT_0: u8 = 0x80;
/// `[0]` constructed.
pub(crate) const CONTEXT_0_CONSTRUCTED: u8 = 0xA0;
/// `[1] IMPLICIT` primitive.
pub(crate) const CONTEXT_1: u8 = 0x81;

const WHAT: &str = "DER";

/// Reads DER elements one after another from a byte slice.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// Reads one element, returning its tag and contents.
    pub(crate) fn read_any(&mut self) -> Result<(u8, &'a [u8])> {
        let (&tag, rest) = self
            .data
            .split_first()
            .ok_or_else(|| malformed(WHAT, "unexpected end of data"))?;
        if tag & 0x1F == 0x1F {
            return Err(malformed(WHAT, "multi-byte tags are not used in key files"));
        }
        let (&first, rest) = rest
            .split_first()
            .ok_or_else(|| malformed(WHAT, "missing length"))?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 4 {
                return Err(malformed(WHAT, "indefinite or oversized length"));
            }
            if rest.len() < n {
                return Err(malformed(WHAT, "truncated length"));
            }
            let (len_bytes, rest) = rest.split_at(n);
            if len_bytes[0] == 0 {
                return Err(malformed(WHAT, "length is not minimally encoded"));
            }
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if len < 0x80 {
                return Err(malformed(WHAT, "length is not minimally encoded"));
            }
            (len, rest)
        };
        if rest.len() < len {
            return Err(malformed(
                WHAT,
                format!("element claims {len} bytes but only {} remain", rest.len()),
            ));
        }
        let (value, rest) = rest.split_at(len);
        self.data = rest;
        Ok((tag, value))
    }

    /// Reads one element that must have tag `tag`.
    pub(crate) fn read(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8]> {
        match self.read_any()? {
            (t, v) if t == tag => Ok(v),
            (t, _) => Err(malformed(
                what,
                format!("expected tag 0x{tag:02x}, found 0x{t:02x}"),
            )),
        }
    }

    /// Reads an element with tag `tag` if the next one has it.
    pub(crate) fn read_optional(
        &mut self,
        tag: u8,
        what: &'static str,
    ) -> Result<Option<&'a [u8]>> {
        if self.peek_tag() == Some(tag) {
            self.read(tag, what).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Reads a non-negative INTEGER that fits in a u64.
    pub(crate) fn read_uint(&mut self, what: &'static str) -> Result<u64> {
        let v = self.read(INTEGER, what)?;
        parse_uint(v, what)
    }

    /// Requires that everything was consumed.
    pub(crate) fn finish(self, what: &'static str) -> Result<()> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(malformed(
                what,
                format!("{} unexpected trailing bytes", self.data.len()),
            ))
        }
    }
}

/// Parses the contents of a non-negative, minimally encoded INTEGER.
pub(crate) fn parse_uint(v: &[u8], what: &'static str) -> Result<u64> {
    match v {
        [] => Err(malformed(what, "empty INTEGER")),
        [b, ..] if b & 0x80 != 0 => Err(malformed(what, "negative INTEGER")),
        [0, b, ..] if b & 0x80 == 0 => Err(malformed(what, "INTEGER is not minimally encoded")),
        _ => {
            let v = if v[0] == 0 && v.len() > 1 { &v[1..] } else { v };
            if v.len() > 8 {
                return Err(malformed(what, "INTEGER too large"));
            }
            Ok(v.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
        }
    }
}

/// Appends one element.
pub(crate) fn write(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
}

/// One element as a new vector.
pub(crate) fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    write(&mut out, tag, value);
    out
}

/// A SEQUENCE of already-encoded elements.
pub(crate) fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// A non-negative INTEGER.
pub(crate) fn uint(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    let mut content = bytes[skip..].to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    tlv(INTEGER, &content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_non_minimal_and_truncated() {
        assert!(
            Reader::new(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5])
                .read_any()
                .is_err()
        );
        assert!(Reader::new(&[0x04, 0x80]).read_any().is_err());
        assert!(Reader::new(&[0x04, 0x05, 1]).read_any().is_err());
        assert!(Reader::new(&[0x04]).read_any().is_err());
        assert!(parse_uint(&[0x00, 0x01], "x").is_err());
        assert!(parse_uint(&[0x80], "x").is_err());
        assert_eq!(parse_uint(&[0x00, 0x80], "x").unwrap(), 128);
    }

    proptest! {
        #[test]
        fn tlv_round_trips(tag in prop::sample::select(vec![0x02u8, 0x04, 0x30, 0x80]), value in prop::collection::vec(any::<u8>(), 0..1000)) {
            let enc = tlv(tag, &value);
            let mut r = Reader::new(&enc);
            let (t, v) = r.read_any().unwrap();
            prop_assert_eq!(t, tag);
            prop_assert_eq!(v, &value[..]);
            prop_assert!(r.is_empty());
        }

        #[test]
        fn uint_round_trips(v in any::<u64>()) {
            let enc = uint(v);
            prop_assert_eq!(Reader::new(&enc).read_uint("x").unwrap(), v);
        }

        #[test]
        fn reader_never_panics(data in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&data);
            while let Ok((_, _)) = r.read_any() {
                if r.is_empty() { break; }
            }
        }
    }
}
