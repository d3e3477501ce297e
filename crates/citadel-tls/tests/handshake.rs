//! Real TLS handshakes over loopback TCP between configs built from a CA
//! directory: what is accepted, what is refused, and what is reported.

use citadel_tls::ca::{Ca, CaAlgorithm, CertState, Usage};
use citadel_tls::config::{
    Identity, TlsOptions, Trust, client_config, crypto_provider, explain, server_config,
};
use citadel_tls::info::{Negotiated, negotiated};
use citadel_tls::rustls::{
    self, ClientConnection, ServerConnection, StreamOwned, pki_types::ServerName,
};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn ca(dir: &std::path::Path, alg: CaAlgorithm) -> Ca {
    let mut ca = Ca::init(dir, alg, "test CA").unwrap();
    ca.issue(
        "server",
        &["localhost".into()],
        &[LOCALHOST],
        Usage::Server,
        30,
    )
    .unwrap();
    ca.issue("alice", &[], &[], Usage::Client, 30).unwrap();
    ca
}

type Outcome = (
    Result<Negotiated, rustls::Error>,
    Result<Negotiated, rustls::Error>,
);

/// Runs one handshake plus a ping-pong; returns (server side, client side).
fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
) -> Outcome {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let srv = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut tls = StreamOwned::new(ServerConnection::new(server).unwrap(), tcp);
        let mut buf = [0u8; 4];
        let r = tls.read_exact(&mut buf).map_err(to_tls_error);
        match r {
            Ok(()) => {
                tls.write_all(b"pong").map_err(to_tls_error)?;
                Ok(negotiated(&tls.conn))
            }
            Err(e) => Err(e),
        }
    });
    let tcp = TcpStream::connect(addr).unwrap();
    let mut tls = StreamOwned::new(ClientConnection::new(client, name).unwrap(), tcp);
    let client_result = (|| {
        tls.write_all(b"ping").map_err(to_tls_error)?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).map_err(to_tls_error)?;
        assert_eq!(&buf, b"pong");
        Ok(negotiated(&tls.conn))
    })();
    drop(tls);
    (srv.join().unwrap(), client_result)
}

fn to_tls_error(e: std::io::Error) -> rustls::Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(t) => t.clone(),
        None => rustls::Error::General(e.to_string()),
    }
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

#[test]
fn post_quantum_mutual_tls_works_and_reports_what_it_negotiated() {
    for alg in [
        CaAlgorithm::MlDsa44,
        CaAlgorithm::MlDsa65,
        CaAlgorithm::MlDsa87,
    ] {
        let d = tempfile::tempdir().unwrap();
        let ca = ca(d.path(), alg);
        let trust = Trust::from_ca(&ca).unwrap();
        let opts = TlsOptions::default();
        let s = server_config(Identity::from_ca(&ca, "server").unwrap(), &trust, opts).unwrap();
        let c = client_config(Identity::from_ca(&ca, "alice").unwrap(), &trust, opts).unwrap();
        let (srv, cli) = handshake(s.clone(), c.clone(), localhost());
        let (srv, cli) = (srv.unwrap(), cli.unwrap());
        // IANA names and Citadel's algorithm vocabulary, never Rust's
        // enum spellings (issue 15).
        assert_eq!(cli.protocol, "TLSv1.3");
        assert!(
            cli.cipher_suite.starts_with("TLS_AES_"),
            "{}",
            cli.cipher_suite
        );
        assert_eq!(cli.key_exchange, "X25519MLKEM768");
        let expected = match alg {
            CaAlgorithm::MlDsa44 => "ml-dsa-44",
            CaAlgorithm::MlDsa65 => "ml-dsa-65",
            _ => "ml-dsa-87",
        };
        assert_eq!(cli.peer_signature_algorithm.as_deref(), Some(expected));
        assert!(cli.peer_subject.unwrap().contains("server"));
        assert_eq!(srv.key_exchange, "X25519MLKEM768");
        assert!(
            srv.peer_subject.unwrap().contains("alice"),
            "the server sees the client's identity"
        );
        // Reaching the server by IP address works too (IP SAN).
        let (_, cli) = handshake(s, c, ServerName::IpAddress(LOCALHOST.into()));
        cli.unwrap();
    }
}

#[test]
fn a_client_from_another_ca_is_refused() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let ca1 = ca(d1.path(), CaAlgorithm::MlDsa65);
    let ca2 = ca(d2.path(), CaAlgorithm::MlDsa65);
    let opts = TlsOptions::default();
    let s = server_config(
        Identity::from_ca(&ca1, "server").unwrap(),
        &Trust::from_ca(&ca1).unwrap(),
        opts,
    )
    .unwrap();
    // The intruder trusts ca1 (to reach the server) but holds a ca2 certificate.
    let c = client_config(
        Identity::from_ca(&ca2, "alice").unwrap(),
        &Trust::from_ca(&ca1).unwrap(),
        opts,
    )
    .unwrap();
    let (srv, _cli) = handshake(s, c, localhost());
    let err = srv.unwrap_err();
    assert!(explain(&err).contains("not issued by this CA"), "{err:?}");
}

#[test]
fn a_revoked_client_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut ca = ca(d.path(), CaAlgorithm::MlDsa44);
    let client_identity = Identity::from_ca(&ca, "alice").unwrap();
    ca.revoke("alice").unwrap();
    let trust = Trust::from_ca(&ca).unwrap();
    let opts = TlsOptions::default();
    let s = server_config(Identity::from_ca(&ca, "server").unwrap(), &trust, opts).unwrap();
    let c = client_config(client_identity, &trust, opts).unwrap();
    let (srv, _) = handshake(s, c, localhost());
    let err = srv.unwrap_err();
    assert!(explain(&err).contains("revoked"), "{err:?}");
}

#[test]
fn a_classical_only_client_is_refused_unless_allowed() {
    let d = tempfile::tempdir().unwrap();
    let ca = ca(d.path(), CaAlgorithm::MlDsa65);
    let trust = Trust::from_ca(&ca).unwrap();
    let s = server_config(
        Identity::from_ca(&ca, "server").unwrap(),
        &trust,
        TlsOptions::default(),
    )
    .unwrap();
    // A client that offers X25519 only.
    let mut p = (*crypto_provider(TlsOptions {
        allow_classical: true,
    }))
    .clone();
    p.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    let id = Identity::from_ca(&ca, "alice").unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.certificate().clone()).unwrap();
    let classical = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(p))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(id.chain, id.key)
            .unwrap(),
    );
    let (srv, _) = handshake(s, classical.clone(), localhost());
    let err = srv.unwrap_err();
    assert!(
        explain(&err).contains("no post-quantum key exchange"),
        "{err:?}"
    );
    // With the opt-in the same client gets through, on X25519.
    let lenient = server_config(
        Identity::from_ca(&ca, "server").unwrap(),
        &trust,
        TlsOptions {
            allow_classical: true,
        },
    )
    .unwrap();
    let (srv, _) = handshake(lenient, classical, localhost());
    assert_eq!(srv.unwrap().key_exchange, "X25519");
}

#[test]
fn a_server_whose_name_does_not_match_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let ca = ca(d.path(), CaAlgorithm::MlDsa65);
    let trust = Trust::from_ca(&ca).unwrap();
    let opts = TlsOptions::default();
    let s = server_config(Identity::from_ca(&ca, "server").unwrap(), &trust, opts).unwrap();
    let c = client_config(Identity::from_ca(&ca, "alice").unwrap(), &trust, opts).unwrap();
    let (_, cli) = handshake(s, c, ServerName::try_from("example.com").unwrap());
    let err = cli.unwrap_err();
    assert!(explain(&err).contains("does not match"), "{err:?}");
}

#[test]
fn classical_ca_is_refused_by_default_and_works_when_allowed() {
    let d = tempfile::tempdir().unwrap();
    let ca = ca(d.path(), CaAlgorithm::EcdsaP256);
    let trust = Trust::from_ca(&ca).unwrap();
    let strict = TlsOptions::default();
    let lenient = TlsOptions {
        allow_classical: true,
    };
    let s = server_config(Identity::from_ca(&ca, "server").unwrap(), &trust, lenient).unwrap();
    let c = client_config(Identity::from_ca(&ca, "alice").unwrap(), &trust, strict).unwrap();
    let (_, cli) = handshake(s.clone(), c, localhost());
    assert!(
        cli.is_err(),
        "an ECDSA server must be refused by a strict client"
    );
    let c = client_config(Identity::from_ca(&ca, "alice").unwrap(), &trust, lenient).unwrap();
    let (_, cli) = handshake(s, c, localhost());
    let cli = cli.unwrap();
    assert_eq!(
        cli.key_exchange, "X25519MLKEM768",
        "classical certificates still get PQ key exchange"
    );
    assert_eq!(cli.peer_signature_algorithm.as_deref(), Some("ecdsa-p256"));
}

#[test]
fn ca_directory_survives_reopen_and_keeps_keys_private() {
    let d = tempfile::tempdir().unwrap();
    let mut ca = ca(d.path(), CaAlgorithm::MlDsa65);
    ca.issue("bob", &["bob.internal".into()], &[], Usage::Both, 1)
        .unwrap();
    let mut again = Ca::open(d.path()).unwrap();
    assert_eq!(again.issued().len(), 3);
    assert_eq!(again.revoke("bob").unwrap(), 1);
    assert!(again.revoke("bob").is_err(), "revoking twice is an error");
    assert!(again.issue("../evil", &[], &[], Usage::Client, 1).is_err());
    assert!(
        Ca::init(d.path(), CaAlgorithm::MlDsa65, "x").is_err(),
        "init refuses an existing CA"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["ca.key", "bob.key", "server.key"] {
            let mode = std::fs::metadata(d.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
}

/// Issue 14, item 7: names and lifetimes are validated before anything is
/// written; valid names are kept (lower-cased).
#[test]
fn names_and_lifetimes_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let mut ca = ca(d.path(), CaAlgorithm::MlDsa44);
    for bad in [
        "bad dns!",
        "",
        "*",
        "*.com",
        "a.*.com",
        "x*.example.com",
        "-a.example.com",
        "a..b",
        "ex\u{e4}mple.com",
        "10.0.0.1",
        &"a".repeat(64),
        &format!("{}a", "a.".repeat(127)),
    ] {
        let e = ca
            .issue("n", &[bad.to_string()], &[], Usage::Server, 30)
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid DNS name"), "{bad:?}: {e}");
    }
    for days in [0, 3651, 3_000_000] {
        let e = ca
            .issue("n", &["n.example.com".into()], &[], Usage::Server, days)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--days"), "{days}: {e}");
    }
    assert!(!d.path().join("n.crt").exists() && !d.path().join("n.key").exists());
    ca.issue(
        "n",
        &[
            "*.Example.COM".into(),
            "node1.example.com.".into(),
            "localhost".into(),
        ],
        &[],
        Usage::Server,
        365,
    )
    .unwrap();
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(d.path().join("n.crt")).unwrap();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let sans = format!(
        "{:?}",
        cert.subject_alternative_name().unwrap().unwrap().value
    );
    for want in ["*.example.com", "node1.example.com", "localhost"] {
        assert!(sans.contains(&format!("\"{want}\"")), "{sans}");
    }
}

/// Issue 14, items 8 and 9: list states, and a CA directory only its owner
/// can enter whatever the umask.
#[test]
fn states_are_listed_and_the_directory_is_private() {
    use citadel_tls::ca::CertState;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("CA");
    let mut ca = ca(&dir, CaAlgorithm::MlDsa44);
    ca.issue("bob", &["bob.example.com".into()], &[], Usage::Both, 10)
        .unwrap();
    let e = ca
        .issue("bob", &["bob.example.com".into()], &[], Usage::Both, 10)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("already has a valid certificate") && e.contains("--force"),
        "{e}"
    );
    ca.reissue("bob", &["bob.example.com".into()], &[], Usage::Both, 10)
        .unwrap();
    ca.revoke("alice").unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let in_20_days = now + 20 * 86_400;
    let state = |at: i64, want: &str| -> Vec<CertState> {
        ca.states(at)
            .into_iter()
            .filter(|(n, _, _)| n.split('#').next() == Some(want))
            .map(|(_, _, s)| s)
            .collect()
    };
    assert_eq!(state(now, "alice"), [CertState::Revoked]);
    assert_eq!(state(now, "server"), [CertState::Valid]);
    let mut bob = state(now, "bob");
    bob.sort_by_key(|s| *s as u8);
    assert_eq!(bob, [CertState::Valid, CertState::Superseded]);
    assert_eq!(
        state(in_20_days, "bob"),
        [CertState::Expired, CertState::Expired]
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

/// Issue 14, item 6: a CRL is trusted only if the CA signed it, it is
/// current, and its number never goes back, across a restart too.
#[test]
fn revocation_cannot_be_rolled_back_or_go_stale() {
    use citadel_tls::crl::{Floor, check_current, inspect};
    use citadel_tls::reload::ReloadingServerConfig;
    let d = tempfile::tempdir().unwrap();
    let mut ca = ca(d.path(), CaAlgorithm::MlDsa44);
    let old_crl = std::fs::read(d.path().join("crl.pem")).unwrap();
    let alice = Identity::from_ca(&ca, "alice").unwrap();
    let server = Identity::from_ca(&ca, "server").unwrap();
    let floor_at = d.path().join("floor");
    let build = {
        let server = server.clone();
        move |t: &Trust| server_config(server.clone(), t, TlsOptions::default())
    };
    let configs =
        ReloadingServerConfig::new(d.path(), Floor::load(&floor_at).unwrap(), build.clone())
            .unwrap();
    let client = || {
        client_config(
            alice.clone(),
            &Trust::from_ca(&ca_open(d.path())).unwrap(),
            TlsOptions::default(),
        )
        .unwrap()
    };
    assert!(
        handshake(configs.current().0, client(), localhost())
            .0
            .is_ok()
    );
    ca.revoke("alice").unwrap();
    let (cfg, err) = configs.current();
    assert!(err.is_none(), "{err:?}");
    assert!(handshake(cfg, client(), localhost()).0.is_err(), "revoked");
    // The older list copied back: refused, the revocation stays.
    let newer = std::fs::read(d.path().join("crl.pem")).unwrap();
    std::fs::write(d.path().join("crl.pem"), &old_crl).unwrap();
    let (cfg, err) = configs.current();
    assert!(err.unwrap().to_string().contains("rolled back"));
    assert!(
        handshake(cfg, client_with(&alice, d.path(), &newer), localhost())
            .0
            .is_err()
    );
    // And after a restart (the floor was persisted).
    let e = ReloadingServerConfig::new(d.path(), Floor::load(&floor_at).unwrap(), build.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("rolled back"), "{e}");
    std::fs::write(d.path().join("crl.pem"), &newer).unwrap();
    // Freshness: a list past its nextUpdate is refused, with what to do.
    let facts = ca.publish_crl(Some(7)).unwrap();
    let alice_serial = hex::decode(&ca.issued()["alice"].serial).unwrap();
    assert_eq!(
        facts.revoked,
        [alice_serial],
        "the revoked serials are read"
    );
    let next = facts.next_update.unwrap();
    assert!(next - time::OffsetDateTime::now_utc().unix_timestamp() <= 7 * 86_400);
    let e = check_current(&facts, next + 1).unwrap_err().to_string();
    assert!(e.contains("expired") && e.contains("citadel ca crl"), "{e}");
    check_current(&facts, next - 60).unwrap();
    // Only the CA's signature counts.
    let der = ca.crl().unwrap();
    let mut forged = der.as_ref().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(inspect(&forged, ca.certificate().as_ref()).is_err());
    let other = tempfile::tempdir().unwrap();
    let other = Ca::init(other.path(), CaAlgorithm::MlDsa44, "other").unwrap();
    assert!(inspect(der.as_ref(), other.certificate().as_ref()).is_err());
    assert_eq!(
        inspect(der.as_ref(), ca.certificate().as_ref()).unwrap(),
        facts
    );
    // The floor knows the CA by its key: a ca.crt whose (unchecked)
    // self-signature was changed is still the same CA, and its older list
    // is still refused (it was once a CA of its own, with no record).
    let mut tampered = ca.certificate().as_ref().to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    use rustls::pki_types::pem::PemObject;
    let old_der =
        rustls::pki_types::CertificateRevocationListDer::from_pem_slice(&old_crl).unwrap();
    let old_facts = inspect(old_der.as_ref(), &tampered).unwrap();
    assert_ne!(old_facts.ca_sha256, facts.ca_sha256);
    assert_eq!(old_facts.ca_key_sha256, facts.ca_key_sha256);
    let e = Floor::load(&floor_at)
        .unwrap()
        .admit(&old_facts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("rolled back"), "{e}");
}

/// The CA's public and private record, as a backup takes it.
fn backup(dir: &std::path::Path) -> Vec<(&'static str, Vec<u8>)> {
    ["ca.json", "crl.pem"]
        .into_iter()
        .map(|f| (f, std::fs::read(dir.join(f)).unwrap()))
        .collect()
}

fn restore(dir: &std::path::Path, files: &[(&'static str, Vec<u8>)]) {
    for (f, bytes) in files {
        std::fs::write(dir.join(f), bytes).unwrap();
    }
}

/// A server on the CA in `dir` with its `server` certificate, following
/// the CA's files as `citadel recv` does.
fn serving(
    dir: &std::path::Path,
    floor: citadel_tls::crl::Floor,
) -> citadel_tls::reload::ReloadingServerConfig {
    let server = Identity::from_ca(&ca_open(dir), "server").unwrap();
    citadel_tls::reload::ReloadingServerConfig::new(dir, floor, move |t: &Trust| {
        server_config(server.clone(), t, TlsOptions::default())
    })
    .unwrap()
}

/// Whether `name`'s certificate from the CA in `dir` gets through a
/// server running on `configs`. The client trusts the CA without a CRL
/// check of its own: only the server's verdict counts here.
fn admitted(
    configs: &citadel_tls::reload::ReloadingServerConfig,
    dir: &std::path::Path,
    name: &str,
) -> bool {
    let id = Identity::from_ca(&ca_open(dir), name).unwrap();
    let crl = std::fs::read(dir.join("crl.pem")).unwrap();
    handshake(
        configs.current().0,
        client_with(&id, dir, &crl),
        localhost(),
    )
    .0
    .is_ok()
}

/// A CA directory restored whole from a backup older than a revocation
/// publishes newer lists without it: the server enforces their
/// revocations at once beside the dropped ones (before, a revocation made
/// after the restore was not enforced until the CA was put right).
#[test]
fn a_newer_list_that_drops_a_revocation_loses_neither_lists_revocations() {
    use citadel_tls::crl::Floor;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("CA");
    let mut ca = ca(&dir, CaAlgorithm::MlDsa44);
    for name in ["bob", "carol"] {
        ca.issue(name, &[], &[], Usage::Client, 30).unwrap();
    }
    let before = backup(&dir);
    ca.revoke("alice").unwrap();
    let configs = serving(&dir, Floor::in_memory());
    let connects = |name: &str| admitted(&configs, &dir, name);
    assert!(!connects("alice") && connects("bob") && connects("carol"));
    // The restore: the CA from before alice's revocation; then bob is
    // revoked, and a list numbered above the last one omits alice.
    restore(&dir, &before);
    let mut restored = ca_open(&dir);
    restored.publish_crl(None).unwrap();
    restored.revoke("bob").unwrap();
    let (_, warning) = configs.current();
    let warning = warning
        .expect("the dropped revocation is reported")
        .to_string();
    assert!(warning.contains("no longer lists serial"), "{warning}");
    assert!(!connects("alice"), "the dropped revocation is lost");
    assert!(
        !connects("bob"),
        "the newer list's revocation is not enforced"
    );
    assert!(connects("carol"));
}

/// Helper-17's sequence: two restores, the second of a backup that has
/// alice's revocation but not bob's. A list published from it (numbered
/// above every list before) dropped bob, and the server, which held bob
/// beside the first dropping list only in memory, let him in. The floor
/// now holds every serial it enforced, on disk, across lists and restarts.
#[test]
fn a_second_restore_does_not_bring_back_a_revoked_client() {
    use citadel_tls::crl::Floor;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("CA");
    let floor_at = d.path().join("crl-floor");
    let mut ca = ca(&dir, CaAlgorithm::MlDsa44);
    for name in ["bob", "carol"] {
        ca.issue(name, &[], &[], Usage::Client, 30).unwrap();
    }
    let b0 = backup(&dir);
    ca.revoke("alice").unwrap();
    let b_alice = backup(&dir);
    let start = || serving(&dir, Floor::load(&floor_at).unwrap());
    let configs = start();
    restore(&dir, &b0);
    ca_open(&dir).publish_crl(None).unwrap();
    ca_open(&dir).revoke("bob").unwrap();
    assert!(!admitted(&configs, &dir, "alice") && !admitted(&configs, &dir, "bob"));
    restore(&dir, &b_alice);
    for _ in 0..2 {
        ca_open(&dir).publish_crl(None).unwrap();
        assert!(!admitted(&configs, &dir, "bob"), "bob is back");
        assert!(!admitted(&configs, &dir, "alice") && admitted(&configs, &dir, "carol"));
    }
    // A restart reads what the floor held, and says why once.
    let configs = start();
    let (_, why) = configs.current();
    let why = why.expect("the held serial is reported").to_string();
    assert!(why.contains("no longer lists serial"), "{why}");
    assert!(configs.current().1.is_none(), "told once");
    assert!(!admitted(&configs, &dir, "bob") && !admitted(&configs, &dir, "alice"));
    // Put right: bob revoked again; the list names both, and is the floor.
    ca_open(&dir).revoke("bob").unwrap();
    assert!(configs.current().1.is_none());
    assert!(!admitted(&configs, &dir, "bob") && !admitted(&configs, &dir, "alice"));
    assert!(admitted(&configs, &dir, "carol"));
}

/// The CA's side of a restore: a ca.json restored from before a
/// revocation publishes above the list out there (never reusing its
/// number) and keeps its revocations, so nothing is dropped at all.
#[test]
fn a_ca_whose_record_was_restored_keeps_the_published_revocations() {
    use citadel_tls::crl::inspect;
    use rustls::pki_types::pem::PemObject;
    let d = tempfile::tempdir().unwrap();
    let mut ca = ca(d.path(), CaAlgorithm::MlDsa44);
    ca.issue("bob", &[], &[], Usage::Client, 30).unwrap();
    let record = std::fs::read(d.path().join("ca.json")).unwrap();
    // Dave is issued and revoked after the backup: the restored record
    // does not know him, yet his serial stays listed.
    ca.issue("dave", &[], &[], Usage::Client, 30).unwrap();
    ca.revoke("dave").unwrap();
    ca.revoke("alice").unwrap();
    let facts = |ca: &Ca| {
        let pem = std::fs::read(d.path().join("crl.pem")).unwrap();
        let der = rustls::pki_types::CertificateRevocationListDer::from_pem_slice(&pem).unwrap();
        inspect(der.as_ref(), ca.certificate().as_ref()).unwrap()
    };
    let listed = facts(&ca);
    assert_eq!(listed.revoked.len(), 2);
    std::fs::write(d.path().join("ca.json"), &record).unwrap();
    let mut restored = ca_open(d.path());
    // Before anything is published, `ca list` already shows what the
    // published list revokes (helper-19: alice showed as valid).
    assert_revoked(&restored, "alice");
    let next = restored.publish_crl(None).unwrap();
    assert!(
        next.number > listed.number,
        "{} after {}",
        next.number,
        listed.number
    );
    assert_eq!(
        next.revoked, listed.revoked,
        "alice's revocation was dropped"
    );
    assert_eq!(facts(&restored), next);
    assert_revoked(&restored, "alice");
    // Revoking bob now lists all three.
    restored.revoke("bob").unwrap();
    assert_eq!(facts(&restored).revoked.len(), 3);
}

/// `ca list` shows `name` revoked.
fn assert_revoked(ca: &Ca, name: &str) {
    let state = ca.states(0).into_iter().find(|(n, _, _)| *n == name);
    assert!(
        matches!(state, Some((_, _, CertState::Revoked))),
        "{name}: {state:?}"
    );
}

fn ca_open(dir: &std::path::Path) -> Ca {
    Ca::open(dir).unwrap()
}

/// A client config trusting the CA in `dir` with the CRL `crl` (PEM).
fn client_with(id: &Identity, dir: &std::path::Path, crl: &[u8]) -> Arc<rustls::ClientConfig> {
    let t = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("ca.crt"), t.path().join("ca.crt")).unwrap();
    std::fs::write(t.path().join("crl.pem"), crl).unwrap();
    client_config(
        id.clone(),
        &Trust::from_dir(t.path()).unwrap(),
        TlsOptions::default(),
    )
    .unwrap()
}

/// Helper-13's findings 1 and 4: a different list under a number already
/// seen is refused (two verbs once published one number each), and a CA
/// certificate swapped into the directory is not adopted while running.
#[test]
fn one_number_one_list_and_the_ca_is_pinned() {
    use citadel_tls::crl::Floor;
    let d = tempfile::tempdir().unwrap();
    let mut ca = ca(d.path(), CaAlgorithm::MlDsa44);
    let twin = tempfile::tempdir().unwrap();
    for f in ["ca.crt", "ca.key", "ca.json", "crl.pem"] {
        std::fs::copy(d.path().join(f), twin.path().join(f)).unwrap();
    }
    let configs = serving(d.path(), Floor::in_memory());
    ca.revoke("alice").unwrap();
    assert!(configs.current().1.is_none());
    // The twin publishes the same number without the revocation (CRL
    // numbers follow the clock, so both records are set past it first).
    let far = 100_000_000_000_000_000u64;
    for dir in [d.path(), twin.path()] {
        let at = dir.join("ca.json");
        let mut state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&at).unwrap()).unwrap();
        state["crl_number"] = serde_json::json!(far - 1);
        std::fs::write(&at, serde_json::to_vec(&state).unwrap()).unwrap();
    }
    assert_eq!(ca_open(d.path()).publish_crl(None).unwrap().number, far);
    assert!(configs.current().1.is_none());
    let mut twin_ca = Ca::open(twin.path()).unwrap();
    assert_eq!(twin_ca.publish_crl(None).unwrap().number, far);
    std::fs::copy(twin.path().join("crl.pem"), d.path().join("crl.pem")).unwrap();
    let e = configs.current().1.unwrap().to_string();
    assert!(e.contains("other contents"), "{e}");
    // Another CA swapped in.
    let other = tempfile::tempdir().unwrap();
    Ca::init(other.path(), CaAlgorithm::MlDsa44, "mallory").unwrap();
    for f in ["ca.crt", "crl.pem"] {
        std::fs::copy(other.path().join(f), d.path().join(f)).unwrap();
    }
    let e = configs.current().1.unwrap().to_string();
    assert!(e.contains("ca.crt changed"), "{e}");
}

/// Helper-18's first finding: a receiver whose floor file could not be
/// written (a sender filled its disk first) kept the older list in force,
/// so a client revoked after that still got in. The newer list now
/// applies in memory, with a warning.
#[test]
fn a_floor_that_cannot_be_written_keeps_no_older_list_in_force() {
    use citadel_tls::crl::Floor;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("CA");
    let state = d.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let mut ca = ca(&dir, CaAlgorithm::MlDsa44);
    ca.issue("bob", &[], &[], Usage::Client, 30).unwrap();
    let configs = serving(&dir, Floor::load(&state.join("crl-floor")).unwrap());
    assert!(admitted(&configs, &dir, "alice"));
    // The floor's directory is gone: neither its lock nor the file can be
    // written (as on a full disk, a read-only remount or a spent quota).
    std::fs::remove_dir_all(&state).unwrap();
    ca.revoke("alice").unwrap();
    let (_, warning) = configs.current();
    let warning = warning.expect("the unkept record is reported").to_string();
    assert!(warning.contains("not kept on disk"), "{warning}");
    assert!(
        !admitted(&configs, &dir, "alice"),
        "the older list is in force"
    );
    assert!(admitted(&configs, &dir, "bob"));
}

/// Helper-18's second and third findings: a CA whose `crl.pem` is
/// damaged or another CA's refuses to publish from `ca.json` alone (it
/// published a rolled-back list, exit 0); a serial known only from the
/// published list is recorded in `ca.json`, so a second restore (of
/// `crl.pem`) cannot drop it; and a certificate can be revoked by serial,
/// even one the CA has no record of.
#[test]
fn a_ca_never_publishes_a_list_that_drops_what_it_cannot_read() {
    use citadel_tls::crl::inspect;
    use rustls::pki_types::pem::PemObject;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("CA");
    let mut first = ca(&dir, CaAlgorithm::MlDsa44);
    let record = std::fs::read(dir.join("ca.json")).unwrap();
    let first_crl = std::fs::read(dir.join("crl.pem")).unwrap();
    first.issue("carol", &[], &[], Usage::Client, 30).unwrap();
    first.revoke("carol").unwrap();
    let good = std::fs::read(dir.join("crl.pem")).unwrap();
    let listed = |dir: &std::path::Path| {
        let pem = std::fs::read(dir.join("crl.pem")).unwrap();
        let der = rustls::pki_types::CertificateRevocationListDer::from_pem_slice(&pem).unwrap();
        inspect(der.as_ref(), ca_open(dir).certificate().as_ref()).unwrap()
    };
    let carol = listed(&dir).revoked;
    assert_eq!(carol.len(), 1);
    std::fs::write(dir.join("ca.json"), &record).unwrap();
    let other = tempfile::tempdir().unwrap();
    let foreign = ca(other.path(), CaAlgorithm::MlDsa44);
    drop(foreign);
    for (bad, says) in [
        (good[..good.len() / 2].to_vec(), "no END line"),
        (
            std::fs::read(other.path().join("crl.pem")).unwrap(),
            "signature",
        ),
    ] {
        std::fs::write(dir.join("crl.pem"), &bad).unwrap();
        assert!(
            ca_open(&dir).check_published().is_err(),
            "ca list would not warn"
        );
        let e = ca_open(&dir).publish_crl(None).unwrap_err().to_string();
        assert!(
            e.contains(says) && e.contains("nothing was published") && e.contains("move it aside"),
            "{e}"
        );
        assert_eq!(
            std::fs::read(dir.join("crl.pem")).unwrap(),
            bad,
            "published"
        );
    }
    // Put back: the next list keeps carol, and ca.json records her serial.
    std::fs::write(dir.join("crl.pem"), &good).unwrap();
    ca_open(&dir).publish_crl(None).unwrap();
    assert_eq!(listed(&dir).revoked, carol);
    let named = ca_open(&dir)
        .states(0)
        .into_iter()
        .map(|(n, c, s)| (n.to_string(), c.serial.clone(), s))
        .find(|(n, _, _)| n.starts_with('#'));
    let (name, serial, state) = named.expect("the carried serial is recorded");
    assert_eq!(state, CertState::Revoked);
    assert_eq!(name, format!("#{serial}"));
    // The second restore: the first crl.pem back; nothing is dropped.
    std::fs::write(dir.join("crl.pem"), &first_crl).unwrap();
    ca_open(&dir).publish_crl(None).unwrap();
    assert_eq!(listed(&dir).revoked, carol);
    // By serial: a known certificate, then one the CA never recorded.
    let mut c = ca_open(&dir);
    c.issue("dave", &[], &[], Usage::Client, 30).unwrap();
    let dave = c.issued()["dave"].serial.clone();
    assert_eq!(c.revoke_serial(&dave.to_uppercase()).unwrap(), "dave");
    let e = c.revoke_serial(&dave).unwrap_err().to_string();
    assert!(e.contains("already revoked"), "{e}");
    assert_eq!(c.revoke_serial("0a0b0c").unwrap(), "#0a0b0c");
    assert!(c.revoke_serial("zz").is_err() && c.revoke_serial("").is_err());
    assert_eq!(listed(&dir).revoked.len(), 3);
}

/// Helper-18's fifth finding: a FIFO in place of `crl.pem` hung `ca crl`
/// (holding the CA's lock) and, for good, a running receiver's reload.
#[test]
fn a_fifo_in_place_of_a_ca_file_is_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("CA");
    let mut ca = ca(&dir, CaAlgorithm::MlDsa44);
    std::fs::remove_file(dir.join("crl.pem")).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(dir.join("crl.pem"))
            .status()
            .unwrap()
            .success()
    );
    let start = std::time::Instant::now();
    let e = ca.publish_crl(None).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let e = Trust::from_dir(&dir).err().unwrap().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

/// Helper-18's fourth finding: past the 20,000 serials a server takes, a
/// revocation published a list every server refused (each kept the older
/// one). The CA now refuses to publish it, and says what to do.
#[test]
fn a_ca_refuses_a_list_no_server_would_take() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("CA");
    ca(&dir, CaAlgorithm::MlDsa44);
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("ca.json")).unwrap()).unwrap();
    let issued = state["issued"].as_object_mut().unwrap();
    for i in 0..citadel_tls::crl::MAX_REVOKED as u64 {
        issued.insert(
            format!("old{i}"),
            serde_json::json!({"serial": format!("7f{i:016x}"), "usage": "client",
                "not_after": 1, "revoked_at": 1}),
        );
    }
    std::fs::write(dir.join("ca.json"), serde_json::to_vec(&state).unwrap()).unwrap();
    let before = std::fs::read(dir.join("crl.pem")).unwrap();
    // Helper-19: issuing past the bound made a certificate that could
    // never be revoked.
    let e = ca_open(&dir)
        .issue("late", &[], &[], Usage::Client, 30)
        .unwrap_err()
        .to_string();
    assert!(e.contains("could never be revoked"), "{e}");
    let start = std::time::Instant::now();
    let e = ca_open(&dir).revoke("alice").unwrap_err().to_string();
    assert!(
        e.contains("more than the 20000") && e.contains("new CA"),
        "{e}"
    );
    assert_eq!(std::fs::read(dir.join("crl.pem")).unwrap(), before);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

/// Helper-19's first finding: a CA directory restored whole from a backup
/// published lists under numbers a server had already seen (refused as
/// "two lists carry one number" or as a rollback), so the server kept an
/// older list and a certificate revoked after the restore got in. CRL
/// numbers now follow the clock, so a restored CA publishes above them.
#[test]
fn a_ca_restored_whole_publishes_above_every_list_seen() {
    use citadel_tls::crl::Floor;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("CA");
    let mut ca = ca(&dir, CaAlgorithm::MlDsa44);
    ca.issue("bob", &[], &[], Usage::Client, 30).unwrap();
    let whole = backup(&dir);
    for _ in 0..3 {
        ca.publish_crl(None).unwrap();
    }
    ca.revoke("alice").unwrap();
    let alice = ca.issued()["alice"].serial.clone();
    let configs = serving(&dir, Floor::in_memory());
    restore(&dir, &whole);
    // What the README says to do: revoke again what the server names.
    ca_open(&dir).revoke_serial(&alice).unwrap();
    ca_open(&dir).revoke("bob").unwrap();
    let (_, warning) = configs.current();
    assert!(warning.is_none(), "{warning:?}");
    assert!(!admitted(&configs, &dir, "bob"), "bob got in");
    assert!(!admitted(&configs, &dir, "alice"));
}

/// Helper-19's findings 2 to 4: a serial too long for RFC 5280 (which a
/// server's record could not read back), the CA's own serial (a CA cannot
/// revoke itself), and issuing past the revocation bound are refused.
#[test]
fn revocation_by_serial_refuses_what_cannot_work() {
    let d = tempfile::tempdir().unwrap();
    let mut ca = ca(d.path(), CaAlgorithm::MlDsa44);
    let e = ca.revoke_serial(&"ff".repeat(20)).unwrap_err().to_string();
    assert!(e.contains("at most 20 octets"), "{e}");
    ca.revoke_serial(&"7f".repeat(20)).unwrap();
    assert!(
        ca.revoke_serial("abc").is_ok(),
        "odd length is a number too"
    );
    let (_, cert) = x509_parser::parse_x509_certificate(ca.certificate().as_ref()).unwrap();
    let own = hex::encode(cert.raw_serial());
    let e = ca.revoke_serial(&own).unwrap_err().to_string();
    assert!(e.contains("cannot revoke itself"), "{e}");
    let e = ca
        .revoke_serial(&"z".repeat(100_000))
        .unwrap_err()
        .to_string();
    assert!(e.len() < 300, "the input is echoed: {} bytes", e.len());
    // Helper-19's fifth: init over a stray crl.pem stopped halfway.
    let stray = d.path().join("stray");
    std::fs::create_dir(&stray).unwrap();
    std::fs::write(stray.join("crl.pem"), "old").unwrap();
    let e = Ca::init(&stray, CaAlgorithm::MlDsa44, "x")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("move it aside"), "{e}");
    assert!(!stray.join("ca.key").exists(), "a half CA was left");
}

/// Helper-20: https to a plain-HTTP server said "received corrupt message
/// of type InvalidContentType" (a Rust enum name).
#[test]
fn a_peer_that_does_not_speak_tls_is_said_in_words() {
    let e = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
    let said = citadel_tls::config::explain(&e);
    assert!(said.contains("does not speak TLS"), "{said}");
}
