//! What a TLS connection negotiated.

use rustls::CommonState;
use serde::Serialize;

/// The negotiated parameters of an established connection.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Negotiated {
    /// e.g. `TLSv1_3`.
    pub protocol: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// e.g. `X25519MLKEM768`.
    pub key_exchange: String,
    /// Signature algorithm of the peer's certificate (`ML-DSA-65`, or the OID).
    pub peer_signature_algorithm: Option<String>,
    /// Subject of the peer's certificate.
    pub peer_subject: Option<String>,
}

fn sig_alg_name(oid: &str) -> String {
    match oid {
        "2.16.840.1.101.3.4.3.17" => "ML-DSA-44".into(),
        "2.16.840.1.101.3.4.3.18" => "ML-DSA-65".into(),
        "2.16.840.1.101.3.4.3.19" => "ML-DSA-87".into(),
        "1.2.840.10045.4.3.2" => "ECDSA-SHA256".into(),
        other => other.to_string(),
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
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
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
