//! What a TLS connection negotiated.

use citadel_crypto::Algorithm;
use rustls::CommonState;
use serde::Serialize;

/// The negotiated parameters of an established connection.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Negotiated {
    /// The IANA name, e.g. `TLSv1.3`.
    pub protocol: String,
    /// The IANA name, e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The IANA group name, e.g. `X25519MLKEM768`.
    pub key_exchange: String,
    /// Signature algorithm of the peer's certificate in Citadel's
    /// vocabulary (`ml-dsa-65`, `ecdsa-p256`), or its OID.
    pub peer_signature_algorithm: Option<String>,
    /// Subject of the peer's certificate.
    pub peer_subject: Option<String>,
}

/// The certificate's signature algorithm in Citadel's vocabulary (the
/// names `citadel key list-algs` and transit use), or its OID.
fn sig_alg_name(oid: &str) -> String {
    let known = Algorithm::ALL
        .iter()
        .find(|a| a.oid_string().as_deref() == Some(oid));
    match (known, oid) {
        (Some(a), _) => a.name().to_string(),
        (None, "1.2.840.10045.4.3.2") => "ecdsa-p256".into(),
        (None, other) => other.to_string(),
    }
}

/// The IANA name of a TLS version (`TLSv1.3`, as OpenSSL prints it).
fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{:#06x}", u16::from(other)),
    }
}

/// The IANA name of a cipher suite (`TLS_AES_256_GCM_SHA384`; rustls
/// spells TLS 1.3 suites `TLS13_…`).
fn suite_name(s: rustls::CipherSuite) -> String {
    let name = format!("{s:?}");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// Reads the negotiated parameters off a connection (client or server).
pub fn negotiated(conn: &CommonState) -> Negotiated {
    let peer = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
            Some((
                sig_alg_name(&cert.signature_algorithm.algorithm.to_id_string()),
                cert.subject().to_string(),
            ))
        });
    Negotiated {
        protocol: conn
            .protocol_version()
            .map(version_name)
            .unwrap_or_default(),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .map(|s| suite_name(s.suite()))
            .unwrap_or_default(),
        key_exchange: conn
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()))
            .unwrap_or_default(),
        peer_signature_algorithm: peer.as_ref().map(|p| p.0.clone()),
        peer_subject: peer.map(|p| p.1),
    }
}

/// The peer's public key from its authenticated certificate, when it is a
/// key type `citadel-crypto` knows (ML-DSA, Ed25519, …).
pub fn peer_public_key(conn: &CommonState) -> Option<citadel_crypto::sig::VerifyingKey> {
    let der = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let spki = cert.public_key();
    let alg = citadel_crypto::Algorithm::from_oid(spki.algorithm.algorithm.as_bytes())?;
    citadel_crypto::sig::VerifyingKey::from_bytes(alg, &spki.subject_public_key.data).ok()
}
