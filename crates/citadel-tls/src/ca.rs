//! A private certificate authority kept in a directory.
//!
//! Layout (all PEM; keys are PKCS#8, mode 0600, seed form for ML-DSA):
//!
//! | file | what |
//! | --- | --- |
//! | `ca.crt`, `ca.key` | the self-signed root and its key |
//! | `crl.pem` | the current revocation list, signed by the root |
//! | `ca.json` | issued names, serials, usages, revocations, CRL number |
//! | `NAME.crt`, `NAME.key` | an end-entity chain (leaf, then root) and its key |
//!
//! Every file is written under a temporary name and renamed into place.

use crate::signer::{CertSigner, SubjectKey, rcgen_alg};
use crate::{Error, Result};
use citadel_crypto::keys::PrivateKeyForm;
use citadel_crypto::{Algorithm, PrivateKey, random};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// The algorithm of the CA's keys and certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaAlgorithm {
    /// ML-DSA-44.
    #[serde(rename = "ml-dsa-44", alias = "ml-dsa44")]
    MlDsa44,
    /// ML-DSA-65 (the default).
    #[serde(rename = "ml-dsa-65", alias = "ml-dsa65")]
    MlDsa65,
    /// ML-DSA-87.
    #[serde(rename = "ml-dsa-87", alias = "ml-dsa87")]
    MlDsa87,
    /// ECDSA P-256 with SHA-256: classical, only on explicit request.
    EcdsaP256,
}

impl CaAlgorithm {
    fn ml_dsa(self) -> Option<Algorithm> {
        match self {
            CaAlgorithm::MlDsa44 => Some(Algorithm::MlDsa44),
            CaAlgorithm::MlDsa65 => Some(Algorithm::MlDsa65),
            CaAlgorithm::MlDsa87 => Some(Algorithm::MlDsa87),
            CaAlgorithm::EcdsaP256 => None,
        }
    }

    /// Whether the algorithm resists quantum attacks.
    pub fn is_post_quantum(self) -> bool {
        self.ml_dsa().is_some()
    }
}

/// What an end-entity certificate may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Usage {
    /// TLS server only.
    Server,
    /// TLS client only.
    Client,
    /// Both (the default: Citadel peers are often both).
    Both,
}

/// What the CA remembers about a certificate it issued.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuedCert {
    /// Serial number, hex.
    pub serial: String,
    /// Allowed usage.
    pub usage: Usage,
    /// Expiry, Unix seconds.
    pub not_after: i64,
    /// Revocation time, Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
}

/// Where a certificate the CA issued stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertState {
    /// Neither expired nor revoked, and the newest of its name.
    Valid,
    /// A newer certificate was issued under its name; it stays valid until
    /// it expires or is revoked.
    Superseded,
    /// Past its `notAfter`.
    Expired,
    /// Revoked (listed in the CRL).
    Revoked,
}

impl std::fmt::Display for CertState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CertState::Valid => "valid",
            CertState::Superseded => "superseded",
            CertState::Expired => "expired",
            CertState::Revoked => "revoked",
        })
    }
}

#[derive(Serialize, Deserialize)]
struct State {
    algorithm: CaAlgorithm,
    crl_number: u64,
    /// How long each CRL is current (its `nextUpdate`), in days.
    #[serde(default = "default_crl_days")]
    crl_days: u32,
    issued: BTreeMap<String, IssuedCert>,
}

/// How long a CRL is current unless `ca crl --days` says otherwise.
pub const DEFAULT_CRL_DAYS: u32 = 30;

/// The longest a CRL may stay current, in days.
pub const MAX_CRL_DAYS: u32 = 365;

fn default_crl_days() -> u32 {
    DEFAULT_CRL_DAYS
}

/// An open CA directory.
pub struct Ca {
    dir: PathBuf,
    cert: CertificateDer<'static>,
    signer: CertSigner,
    state: State,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `data` to `path` atomically (temporary file, fsync, rename).
pub(crate) fn write_file(path: &Path, data: &[u8], private: bool) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".citadel.")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if private { 0o600 } else { 0o644 };
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(io(path))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    tmp.write_all(data).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| e.error).map_err(io(path))?;
    Ok(())
}

/// The longest file of a CA directory read (a `ca.json` or `crl.pem`
/// listing 20,000 certificates is a few MiB).
const MAX_CA_FILE: u64 = 32 << 20;

/// Reads a file of a CA directory: never through a symbolic link, never
/// blocking on a FIFO or device put in its place, and at most
/// [`MAX_CA_FILE`] bytes.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = crate::crl::open_own_file(path, false).map_err(io(path))?;
    let mut bytes = Vec::new();
    f.take(MAX_CA_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() as u64 > MAX_CA_FILE {
        return Err(Error::Ca(format!(
            "{}: longer than {} MiB, more than a CA directory's file holds",
            path.display(),
            MAX_CA_FILE >> 20
        )));
    }
    Ok(bytes)
}

/// Holds the CA directory's lock (`DIR/lock`, `flock`) while a verb reads
/// `ca.json`, changes it and publishes: two verbs at once (a `revoke` and
/// the timer's `crl`) then run one after the other, each on the other's
/// result, and never lose a revocation or publish two lists with one number.
struct Lock(#[allow(dead_code)] std::fs::File);

fn lock(dir: &Path) -> Result<Lock> {
    let path = dir.join("lock");
    let f = crate::crl::open_own_file(&path, true).map_err(io(&path))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e.into(),
    })?;
    Ok(Lock(f))
}

/// Resolves a CA directory once (symlinks followed, `.` and `..` and a
/// trailing slash gone) and refuses it if another user owns it or may
/// write to it: they could replace `ca.json` (un-revoking a certificate at
/// the next publication) or the published `crl.pem`. Every later step uses
/// the resolved path, so `CA`, `CA/`, `CA/.` and a link to it are judged
/// and used alike.
fn private_dir(dir: &Path) -> Result<std::path::PathBuf> {
    checked_dir(dir, false)
}

/// Resolves a directory whose files a server or client trusts (`ca.crt`,
/// `crl.pem` for `send`, `recv` and the vault), refusing it on the same
/// grounds as a CA directory, except that root may own it.
pub fn trusted_dir(dir: &Path) -> Result<std::path::PathBuf> {
    checked_dir(dir, true)
}

/// What [`private_dir`] and [`trusted_dir`] check: no link on the way that
/// another user owns (one planted in a shared directory would choose which
/// directory is used), the directory its owner's (or root's, if
/// `root_may_own`) and writable by no one else, in a parent no one else may
/// rename it in.
fn checked_dir(dir: &Path, root_may_own: bool) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    let mut prefix = std::path::PathBuf::new();
    for c in dir.components() {
        prefix.push(c);
        if let Ok(m) = std::fs::symlink_metadata(&prefix)
            && m.file_type().is_symlink()
            && m.uid() != me
            && m.uid() != 0
        {
            return Err(Error::Ca(format!(
                "{} is a symbolic link another user owns, on the way to {}; name the directory itself",
                prefix.display(),
                dir.display()
            )));
        }
    }
    let real = std::fs::canonicalize(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Ca(format!(
                "there is no CA directory at {}; create one with `citadel ca init --ca {}`",
                dir.display(),
                dir.display()
            ))
        } else {
            io(dir)(e)
        }
    })?;
    if let Some(parent) = real.parent() {
        let p = std::fs::metadata(parent).map_err(io(parent))?;
        let sticky = p.mode() & 0o1000 != 0;
        if (p.uid() != me && p.uid() != 0) || (p.mode() & 0o022 != 0 && !sticky) {
            return Err(Error::Ca(format!(
                "{} is in {}, which others may change (owner or mode {:o}): they could swap the CA directory; keep it in a directory of your own",
                dir.display(),
                parent.display(),
                p.mode() & 0o7777
            )));
        }
    }
    let m = std::fs::symlink_metadata(&real).map_err(io(dir))?;
    if !m.is_dir() {
        return Err(Error::Ca(format!("{} is not a directory", dir.display())));
    }
    let owner_ok = m.uid() == me || (root_may_own && m.uid() == 0);
    if !owner_ok || m.mode() & 0o022 != 0 {
        return Err(Error::Ca(format!(
            "{} is owned by another user or writable by others (mode {:o}); a CA directory must be its owner's alone: chmod 700 it",
            real.display(),
            m.mode() & 0o777
        )));
    }
    Ok(real)
}

impl State {
    /// Checks what `ca.json` holds before anything is derived from it: a
    /// value out of range is an error, never a panic or an entry silently
    /// left out of the next CRL.
    fn check(&self, path: &Path) -> Result<()> {
        let bad = |why: String| Err(Error::Ca(format!("{}: {why}", path.display())));
        if self.crl_number >= u64::MAX / 2 {
            return bad(format!("crl_number {} is out of range", self.crl_number));
        }
        if self.crl_days == 0 || self.crl_days > MAX_CRL_DAYS {
            return bad(format!(
                "crl_days {} is not 1 to {MAX_CRL_DAYS}",
                self.crl_days
            ));
        }
        for (name, c) in &self.issued {
            if hex::decode(&c.serial).map_or(true, |s| s.is_empty() || s.len() > 20) {
                return bad(format!("the serial of {name} is not 1 to 20 bytes of hex"));
            }
            if let Some(t) = c.revoked_at
                && OffsetDateTime::from_unix_timestamp(t).is_err()
            {
                return bad(format!("the revocation time of {name} is out of range"));
            }
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.eq_ignore_ascii_case("ca")
        && !name.eq_ignore_ascii_case("crl")
        && !name.eq_ignore_ascii_case("lock")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(Error::Ca(format!(
            "invalid name '{name}': use letters, digits, '.', '-' or '_' (not 'ca', 'crl' or 'lock', in any case)"
        )))
    }
}

/// The longest validity `ca issue` grants, in days (about 10 years, the
/// root's own lifetime).
pub const MAX_DAYS: u32 = 3650;

/// Checks a DNS name for a certificate (RFC 1123 host name syntax, as
/// RFC 5280 requires for `dNSName`): 1 to 253 characters in labels of 1 to
/// 63 letters, digits and hyphens, no label starting or ending with a
/// hyphen, at least two labels unless it is a single host name, and a
/// wildcard only as the whole leftmost label of a name with at least two
/// more (`*.example.com`). Returns the name in lower case.
pub fn check_dns_name(name: &str) -> Result<String> {
    let bad = |why: &str| {
        Err(Error::Ca(format!(
            "invalid DNS name {name:?}: {why} (use a host name such as node1.example.com, or *.example.com)"
        )))
    };
    let lower = name.to_ascii_lowercase();
    let trimmed = lower.strip_suffix('.').unwrap_or(&lower);
    if trimmed.is_empty() {
        return bad("it is empty");
    }
    if trimmed.len() > 253 {
        return bad("it is longer than 253 characters");
    }
    let labels: Vec<&str> = trimmed.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if *label == "*" {
            if i != 0 {
                return bad("a wildcard may only be the leftmost label");
            }
            if labels.len() < 3 {
                return bad("a wildcard needs at least two labels after it");
            }
            continue;
        }
        if label.is_empty() {
            return bad("it has an empty label");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("labels hold only letters, digits and hyphens");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with a hyphen");
        }
    }
    // A last label of digits, or of 0x and hex digits, is read as an IPv4
    // address by URL parsers (WHATWG), so such a name could stand for one.
    if labels.last().is_some_and(|l| {
        l.bytes().all(|b| b.is_ascii_digit())
            || l.strip_prefix("0x")
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    }) {
        return bad("the last label reads as a number (an IP address belongs in --ip)");
    }
    Ok(trimmed.to_string())
}

/// Refuses addresses no host is reached at: unspecified (`0.0.0.0`, `::`),
/// broadcast and multicast.
fn check_ip(ip: &IpAddr) -> Result<()> {
    let unusable = ip.is_unspecified()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if unusable {
        return Err(Error::Ca(format!(
            "invalid --ip {ip}: an unspecified, broadcast or multicast address names no host"
        )));
    }
    Ok(())
}

/// Checks an end-entity lifetime: 1 to [`MAX_DAYS`] days, ending before
/// the CA's own certificate does.
fn check_days(days: u32, ca_not_after: Option<i64>) -> Result<Duration> {
    if days == 0 || days > MAX_DAYS {
        return Err(Error::Ca(format!(
            "--days {days}: a certificate is valid for 1 to {MAX_DAYS} days"
        )));
    }
    let lifetime = Duration::days(i64::from(days));
    if let Some(end) = ca_not_after {
        let left = (end - now().unix_timestamp()) / 86_400;
        if (now() + lifetime).unix_timestamp() > end {
            return Err(Error::Ca(format!(
                "--days {days}: the CA's own certificate expires in {left} days; issue for at most that long"
            )));
        }
    }
    Ok(lifetime)
}

fn random_serial() -> Result<SerialNumber> {
    let mut bytes = random::array::<16>()?;
    bytes[0] &= 0x7F; // positive
    bytes[0] |= 0x01; // no leading zero byte, so the encoding is stable
    Ok(SerialNumber::from_slice(&bytes))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Whether `pem` holds a classical private key (ECDSA, as `ca init
/// --classical` issues) rather than one of Citadel's post-quantum keys.
pub fn is_classical_key_pem(pem: &str) -> bool {
    PrivateKey::from_pem(pem, None).is_err() && KeyPair::from_pem(pem).is_ok()
}

impl Ca {
    /// Creates a new CA in `dir` (created if needed; refused if it already holds one).
    pub fn init(dir: &Path, alg: CaAlgorithm, common_name: &str) -> Result<Ca> {
        // Only its owner may list or enter the CA's directory, whatever
        // the umask (the key files are 0600 as well).
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            let created = !dir.exists();
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
            if created {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(io(dir))?;
            }
        }
        #[cfg(not(unix))]
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let dir = &private_dir(dir)?;
        // Owner-only from the start, even when the directory existed.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(dir))?;
        }
        let _lock = lock(dir)?;
        if dir.join("ca.crt").exists() || dir.join("ca.key").exists() {
            return Err(Error::Ca(format!(
                "{} already holds a CA; use another directory",
                dir.display()
            )));
        }
        // Checked before the key is made: a stray file stops init before
        // it writes anything, not halfway.
        for f in ["ca.json", "crl.pem"] {
            if std::fs::symlink_metadata(dir.join(f)).is_ok() {
                return Err(Error::Ca(format!(
                    "{} holds a {f} but no CA key; move it aside, or use another directory",
                    dir.display()
                )));
            }
        }
        let (signer, key_pem) = match alg.ml_dsa() {
            Some(ml) => {
                let key = PrivateKey::generate(ml)?;
                let pem = key.to_pem(PrivateKeyForm::Seed, None)?;
                let signer = CertSigner::from_private_key(key)
                    .ok_or_else(|| Error::Ca("internal: not a signing key".into()))?;
                (signer, pem.to_string())
            }
            None => {
                let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                let pem = kp.serialize_pem();
                (CertSigner::Classical(kp), pem)
            }
        };
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now() - Duration::minutes(5);
        params.not_after = now() + Duration::days(3650);
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&signer)?;
        let ca = Ca {
            dir: dir.to_path_buf(),
            cert: cert.der().clone(),
            signer,
            state: State {
                algorithm: alg,
                crl_number: 0,
                crl_days: DEFAULT_CRL_DAYS,
                issued: BTreeMap::new(),
            },
        };
        write_file(&dir.join("ca.key"), key_pem.as_bytes(), true)?;
        write_file(&dir.join("ca.crt"), cert.pem().as_bytes(), false)?;
        let mut ca = ca;
        ca.write_crl_and_state()?;
        Ok(ca)
    }

    /// Opens an existing CA directory.
    pub fn open(dir: &Path) -> Result<Ca> {
        let dir = &private_dir(dir)?;
        let state = Self::read_state(dir)?;
        let cert = CertificateDer::from_pem_slice(&read(&dir.join("ca.crt"))?)
            .map_err(|e| crate::config::pem_refused(&dir.join("ca.crt"), "certificate", e))?;
        let key_text = zeroize::Zeroizing::new(read(&dir.join("ca.key"))?);
        let key_text =
            std::str::from_utf8(&key_text).map_err(|_| Error::Ca("ca.key is not PEM".into()))?;
        let signer = match state.algorithm.ml_dsa() {
            Some(_) => CertSigner::from_private_key(PrivateKey::from_pem(key_text, None)?)
                .ok_or_else(|| Error::Ca("ca.key is not an ML-DSA key".into()))?,
            None => CertSigner::Classical(KeyPair::from_pem(key_text)?),
        };
        Ok(Ca {
            dir: dir.to_path_buf(),
            cert,
            signer,
            state,
        })
    }

    fn read_state(dir: &Path) -> Result<State> {
        let path = dir.join("ca.json");
        let state: State = serde_json::from_slice(&read(&path)?)
            .map_err(|e| Error::Ca(format!("{}: {e}", path.display())))?;
        state.check(&path)?;
        Ok(state)
    }

    /// Runs a change under the directory's lock, on `ca.json` as it is
    /// now (another verb may have changed it since this one opened).
    fn update<T>(&mut self, change: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let _lock = lock(&self.dir)?;
        self.state = Self::read_state(&self.dir)?;
        change(self)
    }

    /// When the root certificate expires (Unix seconds), if it parses.
    pub fn not_after(&self) -> Option<i64> {
        let (_, cert) = x509_parser::parse_x509_certificate(self.cert.as_ref()).ok()?;
        Some(cert.validity().not_after.timestamp())
    }

    /// The state of each certificate the CA issued, by the name it is
    /// listed under (`NAME`, or `NAME#SERIAL` for an earlier one), at `at`
    /// (Unix seconds).
    pub fn states(&self, at: i64) -> Vec<(&str, &IssuedCert, CertState)> {
        // A certificate the published list revokes is revoked, even when
        // ca.json (restored from a backup) does not say so yet; the next
        // `crl` or `revoke` records it there.
        let listed: std::collections::BTreeSet<Vec<u8>> = self
            .published()
            .ok()
            .flatten()
            .map(|(_, l)| l.into_iter().map(|(s, _)| trimmed(&s)).collect())
            .unwrap_or_default();
        self.state
            .issued
            .iter()
            .map(|(k, c)| {
                let in_list =
                    || hex::decode(&c.serial).is_ok_and(|s| listed.contains(&trimmed(&s)));
                let state = if c.revoked_at.is_some() || in_list() {
                    CertState::Revoked
                } else if c.not_after <= at {
                    CertState::Expired
                } else if k.contains('#') {
                    CertState::Superseded
                } else {
                    CertState::Valid
                };
                (k.as_str(), c, state)
            })
            .collect()
    }

    /// The root certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The CA's algorithm.
    pub fn algorithm(&self) -> CaAlgorithm {
        self.state.algorithm
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issued certificates by name.
    pub fn issued(&self) -> &BTreeMap<String, IssuedCert> {
        &self.state.issued
    }

    /// The current CRL.
    pub fn crl(&self) -> Result<CertificateRevocationListDer<'static>> {
        let path = self.dir.join("crl.pem");
        CertificateRevocationListDer::from_pem_slice(&read(&path)?)
            .map_err(|e| crate::config::pem_refused(&path, "revocation list", e))
    }

    /// Issues `NAME.crt` and `NAME.key` with the CA's algorithm. Refused
    /// while NAME has a certificate that is neither revoked nor expired
    /// (see [`Ca::reissue`]).
    pub fn issue(
        &mut self,
        name: &str,
        dns: &[String],
        ips: &[IpAddr],
        usage: Usage,
        days: u32,
    ) -> Result<IssuedCert> {
        self.update(|ca| {
            if let Some((_, c, _)) = ca
                .states(now().unix_timestamp())
                .into_iter()
                .find(|(k, _, s)| *k == name && *s == CertState::Valid)
            {
                let until = OffsetDateTime::from_unix_timestamp(c.not_after)
                    .map(|t| t.date().to_string())
                    .unwrap_or_default();
                return Err(Error::Ca(format!(
                    "{name} already has a valid certificate (serial {}, until {until}); to replace it, revoke it first (`citadel ca revoke --name {name}`), then issue again; to add another beside it, pass --force",
                    c.serial
                )));
            }
            ca.issue_locked(name, dns, ips, usage, days)
        })
    }

    /// Issues NAME again even while it has a valid certificate: a new key
    /// and serial; the old certificate is listed as superseded and stays
    /// valid until it expires or is revoked.
    pub fn reissue(
        &mut self,
        name: &str,
        dns: &[String],
        ips: &[IpAddr],
        usage: Usage,
        days: u32,
    ) -> Result<IssuedCert> {
        self.update(|ca| ca.issue_locked(name, dns, ips, usage, days))
    }

    fn issue_locked(
        &mut self,
        name: &str,
        dns: &[String],
        ips: &[IpAddr],
        usage: Usage,
        days: u32,
    ) -> Result<IssuedCert> {
        check_name(name)?;
        for ip in ips {
            check_ip(ip)?;
        }
        let revoked = self
            .state
            .issued
            .values()
            .filter(|c| c.revoked_at.is_some())
            .count();
        if revoked >= crate::crl::MAX_REVOKED {
            return Err(Error::Ca(format!(
                "this CA has revoked {revoked} certificates, the most a list carries: one it issued now could never be revoked. Move its clients to a new CA (`citadel ca init`)"
            )));
        }
        let dns = dns
            .iter()
            .map(|d| check_dns_name(d))
            .collect::<Result<Vec<_>>>()?;
        let lifetime = check_days(days, self.not_after())?;
        if dns.is_empty() && ips.is_empty() && usage != Usage::Client {
            return Err(Error::Ca(
                "a server certificate needs at least one --dns or --ip name".into(),
            ));
        }
        let (subject, key_pem) = match self.state.algorithm.ml_dsa() {
            Some(ml) => {
                let key = PrivateKey::generate(ml)?;
                let pem = key.to_pem(PrivateKeyForm::Seed, None)?;
                let alg = rcgen_alg(ml)
                    .ok_or_else(|| Error::Ca("internal: unknown ML-DSA set".into()))?;
                (
                    SubjectKey {
                        raw: key.public_key().as_bytes(),
                        alg,
                    },
                    pem.to_string(),
                )
            }
            None => {
                let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                let raw = rcgen::PublicKeyData::der_bytes(&kp).to_vec();
                (
                    SubjectKey {
                        raw,
                        alg: &rcgen::PKCS_ECDSA_P256_SHA256,
                    },
                    kp.serialize_pem(),
                )
            }
        };
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.subject_alt_names = dns
            .into_iter()
            .map(|d| d.try_into().map(SanType::DnsName))
            .chain(ips.iter().map(|ip| Ok(SanType::IpAddress(*ip))))
            .collect::<Result<Vec<_>, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Both => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial()?;
        params.serial_number = Some(serial.clone());
        params.not_before = now() - Duration::minutes(5);
        let not_after = now() + lifetime;
        params.not_after = not_after;
        let issuer = Issuer::from_ca_cert_der(&self.cert, &self.signer)?;
        let cert = params.signed_by(&subject, &issuer)?;
        let chain = format!("{}{}", cert.pem(), rcgen_pem(&self.cert));
        let rec = IssuedCert {
            serial: hex::encode(serial.to_bytes()),
            usage,
            not_after: not_after.unix_timestamp(),
            revoked_at: None,
        };
        // Keep earlier certificates of the same name under a suffixed key so
        // that they can still be revoked.
        if let Some(old) = self.state.issued.remove(name) {
            self.state
                .issued
                .insert(format!("{name}#{}", old.serial), old);
        }
        self.state.issued.insert(name.to_string(), rec.clone());
        // Recorded first: no certificate exists that the CA cannot revoke.
        self.write_crl_and_state()?;
        write_file(
            &self.dir.join(format!("{name}.key")),
            key_pem.as_bytes(),
            true,
        )?;
        write_file(
            &self.dir.join(format!("{name}.crt")),
            chain.as_bytes(),
            false,
        )?;
        Ok(rec)
    }

    /// Revokes every certificate issued under `name` and publishes a new CRL.
    pub fn revoke(&mut self, name: &str) -> Result<usize> {
        self.update(|ca| ca.revoke_locked(name))
    }

    fn revoke_locked(&mut self, name: &str) -> Result<usize> {
        let t = now().unix_timestamp();
        let mut n = 0;
        for (k, c) in self.state.issued.iter_mut() {
            let base = k.split('#').next().unwrap_or(k);
            if base == name && c.revoked_at.is_none() {
                c.revoked_at = Some(t);
                n += 1;
            }
        }
        if n == 0 {
            return Err(Error::Ca(format!(
                "no unrevoked certificate named '{name}' in this CA"
            )));
        }
        self.write_crl_and_state()?;
        Ok(n)
    }

    /// Revokes the certificate with this serial (hex, as `ca list` shows
    /// it) and publishes a new CRL. A serial the CA has no record of (its
    /// `ca.json` restored from an older backup) is recorded as `#SERIAL`
    /// and listed all the same. Returns the name it was listed under.
    pub fn revoke_serial(&mut self, serial_hex: &str) -> Result<String> {
        let shown: String = serial_hex.chars().take(48).collect();
        let digits = serial_hex.trim();
        let digits = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
            .unwrap_or(digits)
            .replace(':', "");
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        // At most 20 octets as a DER integer (RFC 5280), its sign byte
        // included: servers read nothing longer.
        let serial = hex::decode(&padded)
            .ok()
            .map(|s| trimmed(&s))
            .filter(|s| !s.is_empty() && s.len() + usize::from(s[0] >= 0x80) <= 20)
            .ok_or_else(|| {
                Error::Ca(format!(
                    "--serial {shown}: a serial is a positive number of at most 20 octets, in hex as `citadel ca list` shows it"
                ))
            })?;
        let own = x509_parser::parse_x509_certificate(self.cert.as_ref())
            .map(|(_, c)| trimmed(c.raw_serial()))
            .unwrap_or_default();
        if own == serial {
            return Err(Error::Ca(
                "that is the CA's own serial: a CA cannot revoke itself (servers trust ca.crt as it is); if its key is exposed, make a new CA with `citadel ca init` and replace ca.crt on every server and sender".into(),
            ));
        }
        self.update(|ca| {
            let t = now().unix_timestamp();
            let known = ca
                .state
                .issued
                .iter_mut()
                .find(|(_, c)| hex::decode(&c.serial).is_ok_and(|s| trimmed(&s) == serial));
            let name = match known {
                Some((k, c)) => {
                    if c.revoked_at.is_some() {
                        return Err(Error::Ca(format!(
                            "serial {shown} ({k}) is already revoked"
                        )));
                    }
                    c.revoked_at = Some(t);
                    k.clone()
                }
                None => ca.record_bare_serial(&serial, t),
            };
            ca.write_crl_and_state()?;
            Ok(name)
        })
    }

    /// Signs and publishes a new CRL (the next number, the same
    /// revocations), current for `days` days from now (the CA's setting if
    /// `None`, which `days` also updates). Run it on a timer well within
    /// that period: servers refuse a CRL past its `nextUpdate`.
    pub fn publish_crl(&mut self, days: Option<u32>) -> Result<crate::crl::CrlFacts> {
        self.update(|ca| ca.publish_crl_locked(days))
    }

    fn publish_crl_locked(&mut self, days: Option<u32>) -> Result<crate::crl::CrlFacts> {
        if let Some(d) = days {
            if d == 0 || d > MAX_CRL_DAYS {
                return Err(Error::Ca(format!(
                    "--days {d}: a CRL is current for 1 to {MAX_CRL_DAYS} days"
                )));
            }
            self.state.crl_days = d;
        }
        self.write_crl_and_state()?;
        crate::crl::inspect(self.crl()?.as_ref(), self.cert.as_ref())
    }

    /// The list published now (none if there is no `crl.pem`): its number,
    /// and each serial it revokes with when. A `crl.pem` that is there but
    /// is damaged or not this CA's is an error.
    fn published(&self) -> Result<Option<(u64, Vec<crate::crl::Revocation>)>> {
        let path = self.dir.join("crl.pem");
        let bytes = match read(&path) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            r => r,
        };
        let checked = bytes.and_then(|b| {
            let crl = CertificateRevocationListDer::from_pem_slice(&b)
                .map_err(|e| crate::config::pem_refused(&path, "revocation list", e))?;
            let facts = crate::crl::inspect(crl.as_ref(), self.cert.as_ref())?;
            Ok((facts.number, crate::crl::revocations(crl.as_ref())))
        });
        checked.map(Some)
    }

    /// Whether the published `crl.pem` loads as this CA's (or is absent):
    /// until it does, [`Ca::states`] knows only what ca.json records.
    pub fn check_published(&self) -> Result<()> {
        self.published().map(|_| ())
    }

    /// Records a serial revoked at `at` that the CA has no certificate
    /// for (its ca.json is older than the list), as `#SERIAL`; returns
    /// that name.
    fn record_bare_serial(&mut self, serial: &[u8], at: i64) -> String {
        let name = format!("#{}", hex::encode(serial));
        self.state.issued.insert(
            name.clone(),
            IssuedCert {
                serial: hex::encode(serial),
                usage: Usage::Both,
                not_after: 0,
                revoked_at: Some(at),
            },
        );
        name
    }

    fn write_crl_and_state(&mut self) -> Result<()> {
        // A CA directory whose ca.json was restored from a backup still
        // publishes above the list out there, and keeps every revocation
        // that list made, in ca.json too: revoking is for good (servers
        // refuse a list that drops one, or reuses a number).
        let published = self.published().map_err(|e| {
            Error::Ca(format!(
                "nothing was published: {e}. A list made from ca.json alone could drop the revocations it holds: restore crl.pem from your backup; if it is lost, move it aside and run the command again (servers that saw it keep refusing what it revoked, and name each serial to revoke again with `ca revoke --serial`)"
            ))
        })?;
        if let Some((number, listed)) = published {
            self.state.crl_number = self.state.crl_number.max(number);
            let by_serial: std::collections::HashMap<Vec<u8>, String> = self
                .state
                .issued
                .iter()
                .filter_map(|(k, c)| Some((trimmed(&hex::decode(&c.serial).ok()?), k.clone())))
                .collect();
            for (serial, at) in listed {
                let serial = trimmed(&serial);
                match by_serial.get(&serial) {
                    Some(k) => {
                        if let Some(c) = self.state.issued.get_mut(k) {
                            c.revoked_at.get_or_insert(at);
                        }
                    }
                    // Issued after the backup: recorded by serial alone.
                    None => {
                        self.record_bare_serial(&serial, at);
                    }
                }
            }
        }
        // The number is at least the clock (Unix microseconds; publishing
        // takes longer than one): a CA restored whole from a backup still
        // publishes above every list it published since, which servers
        // have seen.
        let clock = u64::try_from(now().unix_timestamp_nanos() / 1000).unwrap_or(0);
        self.state.crl_number = self
            .state
            .crl_number
            .checked_add(1)
            .ok_or_else(|| Error::Ca("ca.json: crl_number is out of range".into()))?
            .max(clock);
        // Every revocation is listed, or nothing is published.
        let mut revoked = Vec::new();
        for (name, c) in &self.state.issued {
            let Some(t) = c.revoked_at else { continue };
            let bad = || Error::Ca(format!("ca.json: the record of {name} is damaged"));
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(
                    &hex::decode(&c.serial).map_err(|_| bad())?,
                ),
                revocation_time: OffsetDateTime::from_unix_timestamp(t).map_err(|_| bad())?,
                reason_code: Some(RevocationReason::Unspecified),
                invalidity_date: None,
            });
        }
        if revoked.len() > crate::crl::MAX_REVOKED {
            return Err(Error::Ca(format!(
                "this CA would list {} revoked certificates, more than the {} a server takes; nothing was published. Move its clients to a new CA (`citadel ca init`)",
                revoked.len(),
                crate::crl::MAX_REVOKED
            )));
        }
        let params = CertificateRevocationListParams {
            this_update: now() - Duration::minutes(5),
            next_update: now() + Duration::days(i64::from(self.state.crl_days)),
            crl_number: SerialNumber::from(self.state.crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let issuer = Issuer::from_ca_cert_der(&self.cert, &self.signer)?;
        let crl = params.signed_by(&issuer)?;
        // The record first, then the list published from it.
        let json = serde_json::to_vec_pretty(&self.state).map_err(|e| Error::Ca(e.to_string()))?;
        write_file(&self.dir.join("ca.json"), &json, false)?;
        write_file(&self.dir.join("crl.pem"), crl.pem()?.as_bytes(), false)
    }
}

/// A serial (big-endian bytes) without leading zero bytes: a DER integer
/// may carry one the other spelling lacks.
fn trimmed(s: &[u8]) -> Vec<u8> {
    s[s.iter().position(|&b| b != 0).unwrap_or(s.len())..].to_vec()
}

fn rcgen_pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The FIPS names are written; CA directories written before
    /// (`ml-dsa65`) still open.
    #[test]
    fn algorithm_names_are_the_fips_ones() {
        assert_eq!(
            serde_json::to_string(&CaAlgorithm::MlDsa65).unwrap(),
            "\"ml-dsa-65\""
        );
        for (old, alg) in [
            ("ml-dsa44", CaAlgorithm::MlDsa44),
            ("ml-dsa65", CaAlgorithm::MlDsa65),
            ("ml-dsa87", CaAlgorithm::MlDsa87),
            ("ecdsa-p256", CaAlgorithm::EcdsaP256),
        ] {
            let back: CaAlgorithm = serde_json::from_str(&format!("\"{old}\"")).unwrap();
            assert_eq!(back, alg);
        }
    }

    #[test]
    fn a_lifetime_never_outlives_the_root() {
        let in_100_days = now().unix_timestamp() + 100 * 86_400;
        assert!(check_days(99, Some(in_100_days)).is_ok());
        let e = check_days(101, Some(in_100_days)).unwrap_err().to_string();
        assert!(
            e.contains("expires in 99 days") || e.contains("expires in 100 days"),
            "{e}"
        );
        assert!(check_days(0, None).is_err());
        assert!(check_days(MAX_DAYS + 1, None).is_err());
        assert!(check_days(MAX_DAYS, None).is_ok());
    }

    /// Issue 14, item 6: a CRL past its nextUpdate is refused by a server
    /// starting, by a running one reloading (keeping the list in force and
    /// saying why, with what to run), and by a sender.
    #[test]
    fn a_stale_crl_is_refused_everywhere_with_what_to_do() {
        use crate::config::{Identity, TlsOptions, Trust, server_config};
        use crate::crl::Floor;
        use crate::reload::ReloadingServerConfig;
        let d = tempfile::tempdir().unwrap();
        let mut ca = Ca::init(d.path(), CaAlgorithm::MlDsa44, "t").unwrap();
        ca.issue("server", &["localhost".into()], &[], Usage::Server, 30)
            .unwrap();
        let server = Identity::from_ca(&ca, "server").unwrap();
        let build = move |t: &Trust| server_config(server.clone(), t, TlsOptions::default());
        let configs =
            ReloadingServerConfig::new(d.path(), Floor::in_memory(), build.clone()).unwrap();
        assert!(configs.current().1.is_none());
        // A list whose nextUpdate is now: stale at once.
        ca.state.crl_days = 0;
        ca.write_crl_and_state().unwrap();
        ca.state.crl_days = DEFAULT_CRL_DAYS;
        let json = serde_json::to_vec(&ca.state).unwrap();
        write_file(&d.path().join("ca.json"), &json, false).unwrap();
        let e = configs.current().1.unwrap().to_string();
        assert!(e.contains("expired") && e.contains("citadel ca crl"), "{e}");
        let e = ReloadingServerConfig::new(d.path(), Floor::in_memory(), build)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("expired"), "{e}");
        let e = Trust::from_dir(d.path()).err().unwrap().to_string();
        assert!(e.contains("expired"), "{e}");
        // Re-signing restores service.
        ca.publish_crl(Some(30)).unwrap();
        assert!(configs.current().1.is_none());
    }
}
