//! What is checked of a revocation list before it is trusted: the CA's
//! signature over it, its number (which only ever grows: an older list
//! copied back must not un-revoke a certificate) and its freshness
//! (`nextUpdate`: a stale list may predate a revocation).

use crate::{Error, Result};
use std::path::Path;

/// The facts of a CRL whose signature the CA's key verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlFacts {
    /// The `cRLNumber` extension (saturated at `u64::MAX`).
    pub number: u64,
    /// `thisUpdate`, Unix seconds.
    pub this_update: i64,
    /// `nextUpdate`, Unix seconds, if the CRL has one.
    pub next_update: Option<i64>,
    /// SHA-256 of the CRL (DER).
    pub crl_sha256: [u8; 32],
    /// SHA-256 of the CA certificate (DER) that signed it.
    pub ca_sha256: [u8; 32],
    /// SHA-256 of that certificate's public key (its SubjectPublicKeyInfo,
    /// DER): the key that signs the CRLs, which is what a [`Floor`] keys
    /// its records by (a `ca.crt` re-encoded or with its unchecked
    /// self-signature changed is still the same CA).
    pub ca_key_sha256: [u8; 32],
    /// The serials it lists as revoked (big-endian bytes, sorted, at most
    /// [`MAX_REVOKED`]).
    pub revoked: Vec<Vec<u8>>,
}

/// The longest serial a CRL may list here, as DER integer contents: RFC
/// 5280's 20 octets, and a leading sign byte some CAs add beyond them (so
/// a floor reads back every serial a list it took named).
pub const MAX_SERIAL: usize = 21;

/// The most serials a CRL may list here (a Citadel CA lists every
/// certificate it ever revoked; a floor keeps them, see [`Floor`]).
pub const MAX_REVOKED: usize = 20_000;

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut h = citadel_crypto::hash::Hasher::new(citadel_crypto::hash::HashAlgorithm::Sha256);
    h.update(bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finish());
    out
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn bad(why: impl std::fmt::Display) -> Error {
    Error::Ca(format!("crl.pem: {why}"))
}

/// Checks that the CA whose certificate is `ca_cert` (DER) signed `crl`
/// (DER), and returns its number and dates. The signature is checked with
/// `citadel-crypto`: ML-DSA (empty context, as X.509 uses it) or ECDSA
/// P-256 with SHA-256.
pub fn inspect(crl: &[u8], ca_cert: &[u8]) -> Result<CrlFacts> {
    let (_, cert) = x509_parser::parse_x509_certificate(ca_cert)
        .map_err(|e| Error::Ca(format!("ca.crt: {e}")))?;
    let (rest, list) = x509_parser::parse_x509_crl(crl).map_err(bad)?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the list"));
    }
    if list.issuer() != cert.subject() {
        return Err(bad("it was not issued by this CA"));
    }
    let tbs = list.tbs_cert_list.as_ref();
    let sig = list.signature_value.as_ref();
    let spki = cert.public_key();
    let key = &spki.subject_public_key.data;
    let ok = match citadel_crypto::Algorithm::from_oid(spki.algorithm.algorithm.as_bytes()) {
        Some(alg) => citadel_crypto::sig::VerifyingKey::from_bytes(alg, key)
            .is_ok_and(|vk| vk.verify(tbs, b"", sig).is_ok()),
        None => citadel_crypto::ecdsa::verify_p256(
            key,
            tbs,
            sig,
            citadel_crypto::ecdsa::SignatureEncoding::Asn1,
        ),
    };
    if !ok {
        return Err(bad("the CA's signature over it does not verify"));
    }
    let number = list
        .crl_number()
        .ok_or_else(|| bad("it has no CRL number"))?
        .to_u64_digits();
    let number = match number.as_slice() {
        [] => 0,
        [n] => *n,
        _ => u64::MAX,
    };
    let mut revoked = Vec::new();
    for r in list.iter_revoked_certificates() {
        if revoked.len() == MAX_REVOKED {
            return Err(bad(format!("it lists more than {MAX_REVOKED} serials")));
        }
        if r.raw_serial().is_empty() || r.raw_serial().len() > MAX_SERIAL {
            return Err(bad(format!(
                "it lists a serial of {} octets; RFC 5280 allows 1 to 20 (21 with a sign byte)",
                r.raw_serial().len()
            )));
        }
        revoked.push(r.raw_serial().to_vec());
    }
    revoked.sort();
    revoked.dedup();
    Ok(CrlFacts {
        number,
        revoked,
        this_update: list.last_update().timestamp(),
        next_update: list.next_update().map(|t| t.timestamp()),
        crl_sha256: sha256(crl),
        ca_sha256: sha256(ca_cert),
        ca_key_sha256: sha256(cert.public_key().raw),
    })
}

/// A serial a CRL revokes (big-endian bytes) and when (Unix seconds).
pub(crate) type Revocation = (Vec<u8>, i64);

/// Each serial `crl` (DER, already checked by [`inspect`]) revokes, with
/// its revocation time; none if it does not parse.
pub(crate) fn revocations(crl: &[u8]) -> Vec<Revocation> {
    x509_parser::parse_x509_crl(crl)
        .map(|(_, list)| {
            list.iter_revoked_certificates()
                .take(MAX_REVOKED)
                .map(|r| (r.raw_serial().to_vec(), r.revocation_date.timestamp()))
                .collect()
        })
        .unwrap_or_default()
}

/// Refuses a CRL that is past its `nextUpdate` at `now` (Unix seconds).
/// (Its number is checked against what a server has seen by [`Floor`].)
pub fn check_current(facts: &CrlFacts, now: i64) -> Result<()> {
    if let Some(next) = facts.next_update
        && next <= now
    {
        let when = time::OffsetDateTime::from_unix_timestamp(next)
            .map(|t| t.date().to_string())
            .unwrap_or_default();
        return Err(bad(format!(
            "it expired on {when} (its nextUpdate), so it may not list recent revocations; re-sign it with `citadel ca crl --ca DIR` (on a timer: see the README)"
        )));
    }
    Ok(())
}

/// The most CAs a [`Floor`] keeps a record for. A receiver or server that
/// has trusted more CAs than this over its life is told to remove its
/// floor file, never has one CA's record silently dropped for another's.
pub const MAX_FLOOR_CAS: usize = 256;

/// The longest floor file read (a record line is 143 bytes and up to 41
/// more per revoked serial; a floor keeps at most 4 × [`MAX_REVOKED`]).
const MAX_FLOOR_BYTES: u64 = 4 << 20;

/// The newest CRL a server has seen from each CA it has trusted: per CA
/// public key hash, the CRL's number and hash, kept in a file of its own
/// (one `CA-KEY-SHA256 NUMBER CRL-SHA256` line per CA, hex and decimal) so a
/// restart does not forget it, and a run with another CA on the same
/// state does not erase the first CA's record.
#[derive(Debug)]
pub struct Floor {
    path: Option<std::path::PathBuf>,
    seen: Records,
}

/// What a floor keeps of a CA's newest CRL.
#[derive(Clone, Debug)]
struct Record {
    number: u64,
    crl: [u8; 32],
    revoked: std::collections::BTreeSet<Vec<u8>>,
}

type Records = std::collections::BTreeMap<[u8; 32], Record>;

/// One record line: `CA-KEY-SHA256 NUMBER CRL-SHA256 SERIALS`, SERIALS the
/// revoked serials in hex joined by commas, or `-` for none (a line
/// without them, as written before they were kept, has none).
fn parse_line(line: &str) -> Option<([u8; 32], Record)> {
    let mut parts = line.split_whitespace();
    let ca = hex::decode(parts.next()?).ok()?.try_into().ok()?;
    let number = parts.next()?.parse().ok()?;
    let crl = hex::decode(parts.next()?).ok()?.try_into().ok()?;
    let revoked = match parts.next() {
        None | Some("-") => Default::default(),
        Some(list) => list
            .split(',')
            .map(|h| {
                hex::decode(h)
                    .ok()
                    .filter(|b| !b.is_empty() && b.len() <= MAX_SERIAL)
            })
            .collect::<Option<_>>()?,
    };
    parts.next().is_none().then_some((
        ca,
        Record {
            number,
            crl,
            revoked,
        },
    ))
}

fn format_line(ca: &[u8; 32], r: &Record) -> String {
    let serials = if r.revoked.is_empty() {
        "-".to_string()
    } else {
        r.revoked
            .iter()
            .map(hex::encode)
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{} {} {} {serials}\n",
        hex::encode(ca),
        r.number,
        hex::encode(r.crl)
    )
}

/// Reads the floor file at `path` (no records if it does not exist).
fn read_records(path: &Path) -> Result<Records> {
    use std::io::Read;
    let io_err = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let bad_file = |why: &str| {
        Error::Ca(format!(
            "{}: {why}; it should hold one line per CA, CA-KEY-SHA256 NUMBER CRL-SHA256 (check it, then move it aside: the server then accepts any current CRL its CA signed)",
            path.display()
        ))
    };
    let file = match open_own_file(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Records::new()),
        Err(e) => return Err(io_err(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FLOOR_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > MAX_FLOOR_BYTES {
        return Err(bad_file("it is too long"));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| bad_file("it is not text"))?;
    let mut records = Records::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (ca, record) =
            parse_line(line).ok_or_else(|| bad_file("a line is not a CRL record"))?;
        if records.insert(ca, record).is_some() {
            return Err(bad_file("a CA has two records"));
        }
    }
    if records.len() > MAX_FLOOR_CAS {
        return Err(bad_file("it holds more CAs than a floor keeps"));
    }
    Ok(records)
}

/// Opens `path`, a regular file of the server's or the CA's own (created,
/// read-write, for a lock file): never through a symbolic link in its last
/// component, and never blocking on a FIFO or device put in its place.
pub(crate) fn open_own_file(path: &Path, lock: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    if lock {
        o.create(true).truncate(false).write(true).mode(0o600);
    } else {
        o.read(true);
    }
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let f = o
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                std::io::Error::other(
                    "it is a symbolic link, which is never followed here; remove it",
                )
            } else {
                e
            }
        })?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(
            "it is not a regular file (a FIFO or a device?); remove it",
        ));
    }
    Ok(f)
}

impl Floor {
    /// A floor kept only in memory.
    pub fn in_memory() -> Self {
        Floor {
            path: None,
            seen: Records::new(),
        }
    }

    /// Loads the floor kept at `path` (none yet if the file does not exist).
    pub fn load(path: &Path) -> Result<Self> {
        Ok(Floor {
            path: Some(path.to_path_buf()),
            seen: read_records(path)?,
        })
    }

    /// Admits a verified, current CRL: refused if its number is below the
    /// newest seen for its CA, or equal to it with other contents (two
    /// lists under one number), or if it no longer lists a serial the
    /// floor holds as revoked; otherwise it becomes that CA's floor
    /// (written through before it counts). A floor kept in a file is
    /// re-read under a lock (`FILE.lock`) first, so two processes sharing
    /// it never undo each other's records.
    pub fn admit(&mut self, facts: &CrlFacts) -> Result<()> {
        let _lock = self.lock_and_merge()?;
        match self.judge(facts)? {
            Verdict::Seen => Ok(()),
            Verdict::Newer => self.store(facts),
            Verdict::Drops(e) => Err(e),
        }
    }

    /// As [`Floor::admit`], for a server that must take its CA's newest
    /// list whatever its disk does. A list that no longer names every
    /// serial the floor holds (a CA restored from a backup) becomes the
    /// floor together with every serial held before, and the union is
    /// returned, with why, for the server to enforce beside the list. A
    /// floor file that cannot be locked, read or written (a full disk) is
    /// not a reason to keep an older list: the list is taken in memory and
    /// the failure comes back as a warning. Refused, as by `admit`: a list
    /// rolled back, or another list under a number already seen.
    pub fn admit_or_hold(&mut self, facts: &CrlFacts) -> Result<Admission> {
        let mut warnings = Vec::new();
        let _lock = self.lock_and_merge().unwrap_or_else(|e| {
            warnings.push(e.to_string());
            None
        });
        let (held, drops) = match self.judge(facts)? {
            Verdict::Seen => return Ok(Admission::warn(None, warnings)),
            Verdict::Newer => (Default::default(), false),
            Verdict::Drops(why) => {
                warnings.insert(0, why.to_string());
                let held = self.seen.get(&facts.ca_key_sha256);
                (held.map(|r| r.revoked.clone()).unwrap_or_default(), true)
            }
        };
        let next = self.next_with(facts, held)?;
        if let Some(p) = &self.path
            && let Err(e) = write_records(p, &next)
        {
            warnings.push(format!(
                "{e}: the list is in force, but this server's record of it is not kept on disk, so a restart now would accept an older list; make the record writable again (free space, or restore its directory) and it is written with the next change"
            ));
        }
        let also_revoked =
            drops.then(|| next[&facts.ca_key_sha256].revoked.iter().cloned().collect());
        self.seen = next;
        Ok(Admission::warn(also_revoked, warnings))
    }

    /// Takes the floor file's lock (`FILE.lock`) and merges its records
    /// into this floor's, keeping the newer of each CA's; the lock is held
    /// while the returned file lives.
    fn lock_and_merge(&mut self) -> Result<Option<std::fs::File>> {
        let Some(p) = &self.path else {
            return Ok(None);
        };
        let mut name = p.as_os_str().to_owned();
        name.push(".lock");
        let lock_path = std::path::PathBuf::from(name);
        let io_err = |source| Error::Io {
            path: lock_path.display().to_string(),
            source,
        };
        let f = open_own_file(&lock_path, true).map_err(io_err)?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err(e.into()))?;
        for (ca, record) in read_records(p)? {
            let mine = self.seen.entry(ca).or_insert_with(|| record.clone());
            if record.number > mine.number {
                *mine = record;
            } else if record.number == mine.number {
                // Serials held beside a list (`admit_or_hold`) are kept
                // whichever process held them.
                mine.revoked.extend(record.revoked);
            }
        }
        Ok(Some(f))
    }

    /// How `facts` stands against its CA's record.
    fn judge(&self, facts: &CrlFacts) -> Result<Verdict> {
        let Some(seen) = self.seen.get(&facts.ca_key_sha256) else {
            if self.seen.len() >= MAX_FLOOR_CAS {
                return Err(bad(format!(
                    "this server has already kept CRL records for {MAX_FLOOR_CAS} CAs, the most it keeps; move its CRL floor file aside (the server then accepts any current CRL its CA signed)"
                )));
            }
            return Ok(Verdict::Newer);
        };
        let n = seen.number;
        if facts.number < n {
            return Err(bad(format!(
                "it is CRL number {}, older than number {n} already seen: a revocation list was rolled back; publish the current one (`citadel ca crl` issues a new one, numbered above every earlier list)",
                facts.number
            )));
        }
        if facts.number == n && seen.crl != facts.crl_sha256 {
            return Err(bad(format!(
                "it is CRL number {n}, already seen with other contents: two lists carry one number; publish a new one with `citadel ca crl`"
            )));
        }
        // A Citadel CA lists every revocation for good: a list without a
        // serial the floor holds was made from an older record (a CA
        // directory restored from a backup, say). The floor may hold more
        // than its own list did (see `admit_or_hold`), so even the list
        // it was made from is checked.
        match seen
            .revoked
            .iter()
            .find(|s| facts.revoked.binary_search(s).is_err())
        {
            Some(gone) => Ok(Verdict::Drops(bad(format!(
                "it is CRL number {}, yet it no longer lists serial {}, which this server holds as revoked (it was listed by number {n} or before): was the CA restored from a backup? Revoke it again (`citadel ca revoke --ca DIR --serial {}`) so the next list names it; until then the server refuses it anyway",
                facts.number,
                hex::encode(gone),
                hex::encode(gone)
            )))),
            None if facts.number == n => Ok(Verdict::Seen),
            None => Ok(Verdict::Newer),
        }
    }

    /// The records with `facts`, and the serials in `held` besides its own,
    /// as its CA's; refused past the floor's bound.
    fn next_with(
        &self,
        facts: &CrlFacts,
        mut held: std::collections::BTreeSet<Vec<u8>>,
    ) -> Result<Records> {
        held.extend(facts.revoked.iter().cloned());
        let mut next = self.seen.clone();
        next.insert(
            facts.ca_key_sha256,
            Record {
                number: facts.number,
                crl: facts.crl_sha256,
                revoked: held,
            },
        );
        if next.values().map(|r| r.revoked.len()).sum::<usize>() > MAX_REVOKED * 4 {
            return Err(bad(format!(
                "this server's CRL records would hold more than {} serials; move its CRL floor file aside (the server then accepts any current CRL its CA signed)",
                MAX_REVOKED * 4
            )));
        }
        Ok(next)
    }

    /// Makes `facts` its CA's record, written through before it counts.
    fn store(&mut self, facts: &CrlFacts) -> Result<()> {
        let next = self.next_with(facts, Default::default())?;
        if let Some(p) = &self.path {
            write_records(p, &next)?;
        }
        self.seen = next;
        Ok(())
    }
}

/// Writes a floor file.
fn write_records(path: &Path, records: &Records) -> Result<()> {
    let text: String = records.iter().map(|(ca, r)| format_line(ca, r)).collect();
    crate::ca::write_file(path, text.as_bytes(), false)
}

/// What admitting a CRL with [`Floor::admit_or_hold`] came to.
#[derive(Debug)]
pub struct Admission {
    /// Serials to refuse beside the list's own: every one the floor holds,
    /// when the list dropped some.
    pub also_revoked: Option<Vec<Vec<u8>>>,
    /// What to tell the operator (serials held beside the list, a floor
    /// not kept on disk), if anything.
    pub warning: Option<Error>,
}

impl Admission {
    fn warn(also_revoked: Option<Vec<Vec<u8>>>, warnings: Vec<String>) -> Self {
        Admission {
            also_revoked,
            warning: (!warnings.is_empty()).then(|| Error::Ca(warnings.join("; also, "))),
        }
    }
}

/// How a CRL stands against the floor's record of its CA.
enum Verdict {
    /// The very list the floor holds (same number and contents).
    Seen,
    /// A newer list naming every serial held (or a CA not seen before).
    Newer,
    /// A list at or above the floor's number that no longer names a serial
    /// the floor holds as revoked: why.
    Drops(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ca: u8, number: u64, crl: u8) -> CrlFacts {
        CrlFacts {
            number,
            this_update: 0,
            next_update: None,
            crl_sha256: [crl; 32],
            ca_sha256: [ca; 32],
            ca_key_sha256: [ca; 32],
            revoked: Vec::new(),
        }
    }

    #[test]
    fn each_ca_keeps_its_own_record_across_restarts() {
        let d = tempfile::tempdir().unwrap();
        let at = d.path().join("crl-number");
        let mut f = Floor::load(&at).unwrap();
        f.admit(&facts(1, 5, 1)).unwrap();
        // Another CA on the same state: its record is added, not swapped in.
        let mut f = Floor::load(&at).unwrap();
        f.admit(&facts(2, 1, 9)).unwrap();
        let mut f = Floor::load(&at).unwrap();
        let e = f.admit(&facts(1, 4, 7)).unwrap_err().to_string();
        assert!(e.contains("older than number 5"), "{e}");
        let e = f.admit(&facts(1, 5, 7)).unwrap_err().to_string();
        assert!(e.contains("other contents"), "{e}");
        f.admit(&facts(1, 5, 1)).unwrap();
        f.admit(&facts(2, 2, 3)).unwrap();
        assert_eq!(std::fs::read_to_string(&at).unwrap().lines().count(), 2);
    }

    #[test]
    fn a_newer_list_that_drops_a_revocation_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let at = d.path().join("crl-number");
        let mut listing = facts(1, 5, 1);
        listing.revoked = vec![vec![0x11], vec![0x22]];
        Floor::load(&at).unwrap().admit(&listing).unwrap();
        // Restored from a backup: number 6, without serial 22.
        let mut restored = facts(1, 6, 2);
        restored.revoked = vec![vec![0x11]];
        let mut f = Floor::load(&at).unwrap();
        let e = f.admit(&restored).unwrap_err().to_string();
        assert!(
            e.contains("no longer lists serial 22") && e.contains("ca revoke"),
            "{e}"
        );
        // Revoked again: the next list names it, and is taken.
        restored.revoked = vec![vec![0x11], vec![0x22], vec![0x33]];
        f.admit(&restored).unwrap();
        let text = std::fs::read_to_string(&at).unwrap();
        assert!(text.ends_with(" 11,22,33\n"), "{text}");
        // A record written before serials were kept reads as none.
        let old = format!("{} 7 {}\n", hex::encode([1u8; 32]), hex::encode([9u8; 32]));
        std::fs::write(&at, old).unwrap();
        let mut f = Floor::load(&at).unwrap();
        f.admit(&facts(1, 8, 3)).unwrap();
    }

    #[test]
    fn two_processes_sharing_a_floor_do_not_undo_each_other() {
        let d = tempfile::tempdir().unwrap();
        let at = d.path().join("crl-number");
        // Both loaded before either wrote.
        let mut a = Floor::load(&at).unwrap();
        let mut b = Floor::load(&at).unwrap();
        a.admit(&facts(1, 5, 1)).unwrap();
        b.admit(&facts(2, 1, 1)).unwrap();
        let mut c = Floor::load(&at).unwrap();
        assert!(c.admit(&facts(1, 4, 4)).is_err());
        // And b, which never saw CA 1's list itself, refuses the older one.
        assert!(b.admit(&facts(1, 4, 4)).is_err());
    }

    #[test]
    fn a_damaged_or_linked_floor_file_is_refused_with_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        let at = d.path().join("crl-number");
        let line = format!("{} 3 {}\n", hex::encode([1u8; 32]), hex::encode([2u8; 32]));
        for (text, says) in [
            ("garbage\n".to_string(), "not a CRL record"),
            (line.repeat(2), "two records"),
            ("x".repeat(5 << 20), "too long"),
        ] {
            std::fs::write(&at, text).unwrap();
            let e = Floor::load(&at).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("move it aside"), "{e}");
        }
        std::fs::remove_file(&at).unwrap();
        std::fs::write(d.path().join("elsewhere"), &line).unwrap();
        std::os::unix::fs::symlink(d.path().join("elsewhere"), &at).unwrap();
        let e = Floor::load(&at).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // A FIFO in its place is refused at once, never waited on.
        std::fs::remove_file(&at).unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&at)
                .status()
                .unwrap()
                .success()
        );
        let e = Floor::load(&at).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let mut f = Floor::load(&d.path().join("other")).unwrap();
        std::fs::remove_file(&at).unwrap();
        std::process::Command::new("mkfifo")
            .arg(d.path().join("other.lock"))
            .status()
            .unwrap();
        assert!(f.admit(&facts(1, 1, 1)).is_err(), "a FIFO lock is used");
    }

    #[test]
    fn a_floor_keeps_at_most_its_bound_of_cas() {
        let mut f = Floor::in_memory();
        for i in 0..MAX_FLOOR_CAS {
            let mut c = facts(0, 1, 1);
            c.ca_key_sha256[..8].copy_from_slice(&(i as u64).to_le_bytes());
            f.admit(&c).unwrap();
        }
        let e = f.admit(&facts(0xff, 1, 1)).unwrap_err().to_string();
        assert!(e.contains("move its CRL floor file aside"), "{e}");
        // A CA already kept still moves forward.
        let mut c = facts(0, 2, 1);
        c.ca_key_sha256[..8].copy_from_slice(&0u64.to_le_bytes());
        f.admit(&c).unwrap();
    }
}
