//! Segment files: the log's source of truth. A segment starts with an
//! 8-byte magic and holds records
//! `length (4, BE) ‖ index (8, BE) ‖ entry ‖ CRC-32 (4, BE)`, the CRC over
//! everything before it in the record. Segments are named after the index
//! of their first entry (20 decimal digits, `.seg`).

use crate::error::Error;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The first bytes of every segment file.
pub const MAGIC: &[u8; 8] = b"CITAUD1\n";
/// Bytes a record adds around its entry.
pub const OVERHEAD: u64 = 16;
/// The largest entry accepted (1 MiB).
pub const MAX_ENTRY: usize = 1 << 20;

/// Encodes one record into `out`.
pub fn encode_record(index: u64, entry: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&(entry.len() as u32).to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(entry);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// The file name of the segment whose first entry is `first`.
pub fn file_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// The segments among the file `names` of a segment directory, sorted by
/// first index: (first index, name). Other names are ignored.
pub fn list(names: impl IntoIterator<Item = String>) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = names
        .into_iter()
        .filter_map(|name| {
            let num = name.strip_suffix(".seg")?;
            let first = (num.len() == 20 && num.bytes().all(|b| b.is_ascii_digit()))
                .then(|| num.parse::<u64>().ok())??;
            Some((first, name))
        })
        .collect();
    out.sort();
    out
}

/// What reading a record found.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    /// A well-formed record: its index and the entry's bytes in the buffer.
    Entry(u64),
    /// The clean end of the segment.
    End,
    /// Bytes that do not form a whole, intact record (a torn write at the
    /// tail, or damage): how many bytes were left and why.
    Bad(&'static str),
}

/// Reads records from a segment with a large buffer.
pub struct Reader {
    file: File,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Offset in the file of the next record.
    pub offset: u64,
}

impl Reader {
    /// Reads the segment open as `file` (named `path` in messages) and
    /// checks its magic.
    pub fn new(mut file: File, path: &Path) -> Result<Self, Error> {
        let mut magic = [0u8; 8];
        file.read_exact(&mut magic).map_err(|_| Error::Corrupt {
            index: None,
            why: format!("{}: not a segment file (too short)", path.display()),
        })?;
        if &magic != MAGIC {
            return Err(Error::Corrupt {
                index: None,
                why: format!("{}: not a segment file (bad magic)", path.display()),
            });
        }
        Ok(Self {
            file,
            buf: vec![0u8; 1 << 20],
            start: 0,
            end: 0,
            eof: false,
            offset: MAGIC.len() as u64,
        })
    }

    fn fill(&mut self, need: usize) -> std::io::Result<bool> {
        while self.end - self.start < need {
            if self.eof {
                return Ok(false);
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
            let n = self.file.read(&mut self.buf[self.end..])?;
            if n == 0 {
                self.eof = true;
            }
            self.end += n;
        }
        Ok(true)
    }

    /// Reads the next record: on `Record::Entry`, the entry bytes come with it.
    pub fn read_record(&mut self) -> std::io::Result<(Record, &[u8])> {
        if !self.fill(12)? {
            return Ok(if self.end == self.start {
                (Record::End, &[])
            } else {
                (Record::Bad("a truncated record header"), &[])
            });
        }
        let h = &self.buf[self.start..self.start + 12];
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let mut ix = [0u8; 8];
        ix.copy_from_slice(&h[4..12]);
        let index = u64::from_be_bytes(ix);
        if len > MAX_ENTRY {
            return Ok((Record::Bad("a record length beyond the limit"), &[]));
        }
        let total = 12 + len + 4;
        if !self.fill(total)? {
            return Ok((Record::Bad("a truncated record"), &[]));
        }
        let rec = &self.buf[self.start..self.start + total];
        let crc = u32::from_be_bytes([
            rec[total - 4],
            rec[total - 3],
            rec[total - 2],
            rec[total - 1],
        ]);
        if crc32fast::hash(&rec[..total - 4]) != crc {
            return Ok((Record::Bad("a record whose checksum does not match"), &[]));
        }
        let s = self.start;
        self.start += total;
        self.offset += total as u64;
        Ok((Record::Entry(index), &self.buf[s + 12..s + 12 + len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn records_round_trip_and_a_torn_tail_is_seen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(file_name(0));
        let mut bytes = MAGIC.to_vec();
        encode_record(0, b"{\"a\":1}", &mut bytes);
        encode_record(1, b"", &mut bytes);
        encode_record(2, b"xyz", &mut bytes);
        let full = bytes.len();
        bytes.truncate(full - 2);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        let mut r = Reader::new(File::open(&p).unwrap(), &p).unwrap();
        assert_eq!(
            r.read_record().unwrap(),
            (Record::Entry(0), &b"{\"a\":1}"[..])
        );
        assert_eq!(r.read_record().unwrap(), (Record::Entry(1), &b""[..]));
        let after_two = r.offset;
        assert!(matches!(r.read_record().unwrap().0, Record::Bad(_)));
        assert_eq!(r.offset, after_two, "offset stays at the last good record");
        let names = [
            "x.seg",
            "00000000000000000007.seg",
            "+0000000000000000001.seg",
            "00000000000000000000.seg",
        ];
        assert_eq!(
            list(names.map(String::from)),
            vec![(0, names[3].to_string()), (7, names[1].to_string())]
        );
    }
}
