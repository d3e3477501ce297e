//! Ready-made rustls configurations: TLS 1.3, X25519MLKEM768, ML-DSA, mutual
//! authentication against one CA and its revocation list.

use crate::ca::Ca;
use crate::crl::CrlFacts;
use crate::{Error, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::aws_lc_rs::{self as provider, cipher_suite as cs, kx_group};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// Options shared by servers and clients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Also accept classical X25519 key exchange and classical (ECDSA,
    /// Ed25519, RSA) certificate signatures. Off by default: a peer that
    /// offers only classical cryptography is refused.
    pub allow_classical: bool,
}

/// The ML-DSA verification algorithms only.
static PQ_SIGNATURES: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        webpki::aws_lc_rs::ML_DSA_44,
        webpki::aws_lc_rs::ML_DSA_65,
        webpki::aws_lc_rs::ML_DSA_87,
    ],
    mapping: &[
        (SignatureScheme::ML_DSA_87, &[webpki::aws_lc_rs::ML_DSA_87]),
        (SignatureScheme::ML_DSA_65, &[webpki::aws_lc_rs::ML_DSA_65]),
        (SignatureScheme::ML_DSA_44, &[webpki::aws_lc_rs::ML_DSA_44]),
    ],
};

/// The crypto provider: aws-lc-rs, TLS 1.3 suites, X25519MLKEM768 only and
/// ML-DSA signatures only (plus classical ones with `allow_classical`).
pub fn crypto_provider(opts: TlsOptions) -> Arc<CryptoProvider> {
    let mut p = provider::default_provider();
    p.cipher_suites = vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    if opts.allow_classical {
        p.kx_groups = vec![kx_group::X25519MLKEM768, kx_group::X25519];
    } else {
        p.kx_groups = vec![kx_group::X25519MLKEM768];
        p.signature_verification_algorithms = PQ_SIGNATURES;
    }
    Arc::new(p)
}

/// A certificate chain and its private key.
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8.
    pub key: PrivateKeyDer<'static>,
    /// The files it came from, for messages ("CERT and KEY").
    names: String,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            names: self.names.clone(),
        }
    }
}

impl Identity {
    /// Says what rustls found wrong with this certificate and key, naming
    /// the files (a certificate and a key that do not belong together is
    /// the usual mistake).
    fn refused(&self, e: rustls::Error) -> Error {
        match e {
            rustls::Error::InconsistentKeys(_) => Error::Ca(format!(
                "{} do not belong together: the certificate is for another key; pass the key issued with it",
                self.names
            )),
            rustls::Error::General(m) if m.contains("failed to parse private key") => {
                Error::Ca(format!(
                    "{}: the key is not one TLS signs with (ML-DSA, or ECDSA P-256 for a classical CA); pass the key issued with the certificate",
                    self.names
                ))
            }
            e => Error::Ca(format!("{}: {e}", self.names)),
        }
    }
}

impl Identity {
    /// Loads `CERT` (PEM chain) and `KEY` (PKCS#8 PEM).
    pub fn load(cert: &Path, key: &Path) -> Result<Self> {
        let chain = load_certificates(cert)?;
        let names = format!("{} and {}", cert.display(), key.display());
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| pem_refused(key, "private key (PKCS#8 PEM)", e))?;
        Ok(Self { chain, key, names })
    }

    /// Loads `NAME.crt`/`NAME.key` from a CA directory.
    pub fn from_ca(ca: &Ca, name: &str) -> Result<Self> {
        Self::load(
            &ca.dir().join(format!("{name}.crt")),
            &ca.dir().join(format!("{name}.key")),
        )
    }
}

/// The CA certificate and its revocation list.
pub struct Trust {
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    crl: CrlFacts,
    /// Serials refused besides those the CRL lists (see
    /// [`Trust::also_revoking`]).
    also_revoked: Arc<std::collections::BTreeSet<Vec<u8>>>,
}

impl Trust {
    /// Trusts the CA in `dir` from its public files only (`ca.crt`,
    /// `crl.pem`): peers need no access to the CA key. The CRL must be
    /// signed by the CA and current (before its `nextUpdate`).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        // Refused if others could swap the directory or its files.
        let dir = &crate::ca::trusted_dir(dir)?;
        let crt = dir.join("ca.crt");
        let cert = CertificateDer::from_pem_slice(&crate::ca::read(&crt)?)
            .map_err(|e| pem_refused(&crt, "certificate", e))?;
        let crl_path = dir.join("crl.pem");
        let crl = CertificateRevocationListDer::from_pem_slice(&crate::ca::read(&crl_path)?)
            .map_err(|e| pem_refused(&crl_path, "revocation list", e))?;
        Self::new(cert, crl)
    }

    /// Trusts exactly this CA, honouring its current CRL.
    pub fn from_ca(ca: &Ca) -> Result<Self> {
        Self::new(ca.certificate().clone(), ca.crl()?)
    }

    fn new(
        cert: CertificateDer<'static>,
        crl: CertificateRevocationListDer<'static>,
    ) -> Result<Self> {
        let facts = crate::crl::inspect(crl.as_ref(), cert.as_ref())?;
        crate::crl::check_current(&facts, crate::crl::unix_now())?;
        let mut roots = RootCertStore::empty();
        roots.add(cert)?;
        Ok(Self {
            roots: Arc::new(roots),
            crls: vec![crl],
            crl: facts,
            also_revoked: Arc::default(),
        })
    }

    /// The number and dates of the CRL, whose signature was checked.
    pub fn crl(&self) -> CrlFacts {
        self.crl.clone()
    }

    /// This trust, also refusing client certificates with these serials
    /// (big-endian bytes, as a CRL lists them): what a server keeps
    /// enforcing when a newer list from its CA dropped revocations an
    /// older one made, so neither list's revocations are lost.
    pub fn also_revoking(mut self, serials: impl IntoIterator<Item = Vec<u8>>) -> Self {
        self.also_revoked = Arc::new(serials.into_iter().collect());
        self
    }
}

/// A client verifier that refuses the serials in `serials` before the
/// CRL-checking verifier it wraps sees the certificate.
#[derive(Debug)]
struct AlsoRevoked {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    serials: Arc<std::collections::BTreeSet<Vec<u8>>>,
}

impl rustls::server::danger::ClientCertVerifier for AlsoRevoked {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if self.serials.contains(cert.raw_serial()) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ));
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn verifier_error(e: rustls::server::VerifierBuilderError) -> Error {
    Error::Ca(format!("cannot build the certificate verifier: {e}"))
}

/// A server config requiring client certificates from the trusted CA.
pub fn server_config(
    identity: Identity,
    trust: &Trust,
    opts: TlsOptions,
) -> Result<Arc<ServerConfig>> {
    let p = crypto_provider(opts);
    let mut verifier = WebPkiClientVerifier::builder_with_provider(trust.roots.clone(), p.clone())
        .with_crls(trust.crls.clone())
        .enforce_revocation_expiration()
        .build()
        .map_err(verifier_error)?;
    if !trust.also_revoked.is_empty() {
        verifier = Arc::new(AlsoRevoked {
            inner: verifier,
            serials: trust.also_revoked.clone(),
        });
    }
    let cfg = ServerConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| identity.refused(e))?;
    Ok(Arc::new(cfg))
}

/// A client config presenting `identity` and trusting only the CA.
pub fn client_config(
    identity: Identity,
    trust: &Trust,
    opts: TlsOptions,
) -> Result<Arc<ClientConfig>> {
    let p = crypto_provider(opts);
    let verifier = WebPkiServerVerifier::builder_with_provider(trust.roots.clone(), p.clone())
        .with_crls(trust.crls.clone())
        .enforce_revocation_expiration()
        .build()
        .map_err(verifier_error)?;
    let cfg = ClientConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| identity.refused(e))?;
    Ok(Arc::new(cfg))
}

/// The provider for web-style TLS (server authenticated by certificate,
/// any client): TLS 1.3 suites, X25519MLKEM768 key exchange (plus X25519
/// when `allow_classical_kx`), and every certificate signature the backend
/// verifies (ML-DSA, ECDSA, Ed25519, RSA), so a classical certificate that
/// today's clients can check still gets post-quantum key exchange.
fn web_provider(allow_classical_kx: bool) -> Arc<CryptoProvider> {
    let mut p = provider::default_provider();
    p.cipher_suites = vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    p.kx_groups = if allow_classical_kx {
        vec![kx_group::X25519MLKEM768, kx_group::X25519]
    } else {
        vec![kx_group::X25519MLKEM768]
    };
    Arc::new(p)
}

/// A TLS 1.3 server config that does not ask for client certificates: the
/// server's certificate may be classical (what today's OpenSSL, Go and
/// browsers verify) or ML-DSA; key exchange is X25519MLKEM768 only, unless
/// `allow_classical_kx` also admits X25519 for clients without ML-KEM.
pub fn server_config_server_auth(
    identity: Identity,
    allow_classical_kx: bool,
) -> Result<Arc<ServerConfig>> {
    let cfg = ServerConfig::builder_with_provider(web_provider(allow_classical_kx))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| identity.refused(e))?;
    Ok(Arc::new(cfg))
}

/// Reads every certificate in a PEM file (a CA bundle).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_refused(path, "certificate", e))?;
    if certs.is_empty() {
        return Err(Error::Ca(format!(
            "{} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Says in words why `path` gave no `what` (rustls' PEM errors are terse
/// or Debug text: `InvalidCharacter(33)`).
pub(crate) fn pem_refused(path: &Path, what: &str, e: rustls::pki_types::pem::Error) -> Error {
    use rustls::pki_types::pem::Error as Pem;
    let p = path.display();
    match e {
        Pem::Io(source) => Error::Io {
            path: p.to_string(),
            source,
        },
        Pem::NoItemsFound => Error::Ca(format!("{p}: no {what} found in it")),
        Pem::Base64Decode(_) => Error::Ca(format!(
            "{p}: a PEM block in it is not valid base64 (damaged or cut short?); no {what} read"
        )),
        Pem::MissingSectionEnd { .. } => Error::Ca(format!(
            "{p}: a PEM block in it has no END line (cut short?); no {what} read"
        )),
        Pem::IllegalSectionStart { .. } => Error::Ca(format!(
            "{p}: a PEM BEGIN line in it is malformed; no {what} read"
        )),
        e => Error::Ca(format!("{p}: no {what} read ({e})")),
    }
}

/// A TLS 1.3 client config for an HTTPS server whose certificate chains to
/// one of `roots` (classical or ML-DSA), presenting `identity` when the
/// server asks for one. Key exchange as [`server_config_server_auth`].
pub fn client_config_server_auth(
    roots: Vec<CertificateDer<'static>>,
    identity: Option<Identity>,
    allow_classical_kx: bool,
) -> Result<Arc<ClientConfig>> {
    let mut store = RootCertStore::empty();
    for c in roots {
        store.add(c)?;
    }
    let builder = ClientConfig::builder_with_provider(web_provider(allow_classical_kx))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(store);
    let cfg = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(|e| id.refused(e))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// Whether the peer's alert says it refused our certificate (revoked,
/// unknown, expired, or a signature it could not verify: another CA with
/// the same name answers `decrypt_error`).
pub fn peer_refused_our_certificate(e: &rustls::Error) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        e,
        rustls::Error::AlertReceived(
            A::BadCertificate
                | A::UnknownCA
                | A::CertificateRevoked
                | A::CertificateUnknown
                | A::CertificateExpired
                | A::AccessDenied
                | A::DecryptError
        )
    )
}

/// A one-line explanation of a handshake failure, with the fix where there is one.
pub fn explain(e: &rustls::Error) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E, PeerIncompatible as P};
    match e {
        E::PeerIncompatible(P::NoKxGroupsInCommon) => {
            "the peer offers no post-quantum key exchange (X25519MLKEM768); upgrade it, or pass --allow-classical to accept classical key exchange".into()
        }
        E::PeerIncompatible(P::NoSignatureSchemesInCommon) => {
            "the peer has no ML-DSA certificate; issue it one with `citadel ca issue`, or pass --allow-classical".into()
        }
        E::InvalidCertificate(C::Revoked) => "the peer's certificate has been revoked".into(),
        E::InvalidCertificate(C::UnknownIssuer) => "the peer's certificate was not issued by this CA".into(),
        E::InvalidCertificate(C::BadSignature) => {
            "the peer's certificate was not issued by this CA (its signature does not verify against the CA key)".into()
        }
        E::InvalidCertificate(C::NotValidForName) | E::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            "the server's certificate does not match the address it was reached at".into()
        }
        E::InvalidCertificate(C::Expired) | E::InvalidCertificate(C::ExpiredContext { .. }) => {
            "the peer's certificate has expired".into()
        }
        E::InvalidCertificate(C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. })
        | E::InvalidCertificate(C::UnsupportedSignatureAlgorithmContext { .. }) => {
            "the peer's certificate was not issued by this CA (its signature algorithm does not match the CA key)".into()
        }
        E::InvalidCertificate(_) => {
            "the peer's certificate is not valid for this CA".into()
        }
        E::NoCertificatesPresented => "the client presented no certificate (mutual TLS is required)".into(),
        E::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            "the peer does not speak TLS (a plain http:// server? then use http://)".into()
        }
        E::AlertReceived(A::HandshakeFailure) => {
            "the peer refused the handshake (it may require post-quantum key exchange or another CA)".into()
        }
        e if peer_refused_our_certificate(e) => {
            "the peer refused our certificate (revoked, or issued by another CA)".into()
        }
        E::DecryptError => {
            "a TLS record failed authentication: the data was modified in transit, so the connection was aborted".into()
        }
        E::AlertReceived(A::BadRecordMac) => {
            "the peer could not authenticate our data (modified in transit), so the connection was aborted".into()
        }
        other => format!("TLS failed: {other}"),
    }
}
