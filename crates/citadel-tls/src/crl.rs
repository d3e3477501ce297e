//! What is checked of a revocation list before it is trusted: the CA's
//! signature over it, its number (which only ever grows: an older list
//! copied back must not un-revoke a certificate) and its freshness
//! (`nextUpdate`: a stale list may predate a revocation).

use crate::{Error, Result};
use std::path::Path;

/// The facts of a CRL whose signature the CA's key verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

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
    Ok(CrlFacts {
        number,
        this_update: list.last_update().timestamp(),
        next_update: list.next_update().map(|t| t.timestamp()),
        crl_sha256: sha256(crl),
        ca_sha256: sha256(ca_cert),
    })
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

/// The newest CRL a server has seen: its CA's certificate hash, its number
/// and its hash, kept in a file of its own (`CA-SHA256 NUMBER CRL-SHA256`,
/// hex and decimal) so a restart does not forget it.
#[derive(Debug)]
pub struct Floor {
    path: Option<std::path::PathBuf>,
    seen: Option<([u8; 32], u64, [u8; 32])>,
}

fn parse_floor(text: &str) -> Option<([u8; 32], u64, [u8; 32])> {
    let mut parts = text.split_whitespace();
    let ca = hex::decode(parts.next()?).ok()?.try_into().ok()?;
    let number = parts.next()?.parse().ok()?;
    let crl = hex::decode(parts.next()?).ok()?.try_into().ok()?;
    parts.next().is_none().then_some((ca, number, crl))
}

impl Floor {
    /// A floor kept only in memory.
    pub fn in_memory() -> Self {
        Floor {
            path: None,
            seen: None,
        }
    }

    /// Loads the floor kept at `path` (none yet if the file does not exist).
    pub fn load(path: &Path) -> Result<Self> {
        let seen = match std::fs::read_to_string(path) {
            Ok(t) => Some(parse_floor(&t).ok_or_else(|| {
                Error::Ca(format!(
                    "{}: not a CRL record (CA-SHA256 NUMBER CRL-SHA256); remove it to start again",
                    path.display()
                ))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Ok(Floor {
            path: Some(path.to_path_buf()),
            seen,
        })
    }

    /// Admits a verified, current CRL: refused if its number is below the
    /// newest seen for its CA, or equal to it with other contents (two
    /// lists under one number); otherwise it becomes the floor (written
    /// through before it counts).
    pub fn admit(&mut self, facts: &CrlFacts) -> Result<()> {
        if let Some((ca, n, crl)) = &self.seen
            && *ca == facts.ca_sha256
        {
            if facts.number < *n {
                return Err(bad(format!(
                    "it is CRL number {}, older than number {n} already seen: a revocation list was rolled back; publish the current one (`citadel ca crl` issues a new one)",
                    facts.number
                )));
            }
            if facts.number == *n && *crl != facts.crl_sha256 {
                return Err(bad(format!(
                    "it is CRL number {n}, already seen with other contents: two lists carry one number; publish a new one with `citadel ca crl`"
                )));
            }
            if facts.number == *n {
                return Ok(());
            }
        }
        let record = (facts.ca_sha256, facts.number, facts.crl_sha256);
        if let Some(p) = &self.path {
            let line = format!(
                "{} {} {}\n",
                hex::encode(record.0),
                record.1,
                hex::encode(record.2)
            );
            crate::ca::write_file(p, line.as_bytes(), false)?;
        }
        self.seen = Some(record);
        Ok(())
    }
}
