//! `citadel bench crypto`: operations per second and AEAD throughput.

use crate::files::print_json;
use anyhow::Result;
use citadel_crypto::aead::{AeadAlgorithm, AeadKey};
use citadel_crypto::{Algorithm, Family, kem, sig, xwing};
use clap::{Args, Subcommand};
use serde_json::json;
use std::hint::black_box;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Keygen, encaps/decaps and sign/verify rates for every algorithm, and
    /// AEAD throughput, on this machine.
    Crypto(CryptoArgs),
    /// Full mutual TLS 1.3 handshakes per second over loopback TCP:
    /// post-quantum (X25519MLKEM768 + ML-DSA) beside classical (X25519 +
    /// ECDSA P-256), measured in the same run.
    Tls(TlsArgs),
    /// Opens many mutual-TLS connections to a running `citadel recv`, holds
    /// them all open at once, and reports how many the receiver kept (read
    /// the receiver's memory meanwhile, e.g. from /proc/PID/status).
    Connections(ConnectionsArgs),
    /// Audit log: appends per second (group commit and per-entry fsync),
    /// full verification rate, and proof latency, on a log built here.
    Audit(AuditArgs),
}

#[derive(Args)]
pub(crate) struct AuditArgs {
    /// Entries in the log.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Bytes per entry (a JSON object padded to this size).
    #[arg(long, default_value_t = 200)]
    entry_bytes: usize,
    /// Where to build the log (a temporary directory inside it; default:
    /// the system's temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Group-commit window in milliseconds.
    #[arg(long, default_value_t = 10)]
    group_ms: u64,
    /// Entries appended with an fsync each.
    #[arg(long, default_value_t = 2000)]
    fsync_entries: u64,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

fn run_audit(a: AuditArgs) -> Result<()> {
    use citadel_audit::log::{AuditLog, Durability};
    use citadel_audit::merkle::{leaf_hash, verify_consistency, verify_inclusion};
    let base = match &a.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let entry = |i: u64| -> Vec<u8> {
        let head = format!(
            "{{\"action\":\"secret.read\",\"actor\":\"user{}\",\"request_id\":\"{i:016x}\",\"resource\":\"kv/app/db\",\"time\":\"2026-11-26T10:00:00Z\",\"details\":\"",
            i % 97
        );
        let pad = a.entry_bytes.saturating_sub(head.len() + 2);
        format!("{head}{}\"}}", "x".repeat(pad)).into_bytes()
    };
    // Group commit.
    let dir = base.path().join("group");
    AuditLog::init(&dir, "bench.example/log")?;
    let mut log = AuditLog::open(&dir, Durability::Group(Duration::from_millis(a.group_ms)))?;
    let entries: Vec<Vec<u8>> = (0..a.entries.min(100_000)).map(entry).collect();
    let start = Instant::now();
    for i in 0..a.entries {
        log.append(&entries[(i % entries.len() as u64) as usize])?;
    }
    log.commit()?;
    let group_rate = a.entries as f64 / start.elapsed().as_secs_f64();
    log.close()?;
    // Per-entry fsync.
    let fdir = base.path().join("fsync");
    AuditLog::init(&fdir, "bench.example/log")?;
    let mut flog = AuditLog::open(&fdir, Durability::EveryAppend)?;
    let start = Instant::now();
    for i in 0..a.fsync_entries {
        flog.append(&entry(i))?;
    }
    let fsync_rate = a.fsync_entries as f64 / start.elapsed().as_secs_f64();
    drop(flog);
    // Full verification, beside one SHA-256 per entry (the floor of any
    // verifier) over the same bytes.
    let start = Instant::now();
    let report = citadel_audit::verify::verify(&dir, None)?;
    let verify_rate = report.entries as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for i in 0..a.entries {
        black_box(leaf_hash(&entries[(i % entries.len() as u64) as usize]));
    }
    let sha_rate = a.entries as f64 / start.elapsed().as_secs_f64();
    // Proofs at full size.
    let mut log = AuditLog::open(&dir, Durability::Group(Duration::from_millis(a.group_ms)))?;
    let n = log.size();
    let root = log.root(n)?;
    let rounds = 10_000u64;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut pick = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let idx: Vec<u64> = (0..rounds).map(|_| pick()).collect();
    let start = Instant::now();
    let proofs: Vec<_> = idx
        .iter()
        .map(|&i| log.inclusion_proof(i, n))
        .collect::<Result<_, _>>()?;
    let prove_us = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    let leaves: Vec<_> = idx
        .iter()
        .map(|&i| leaf_hash(&entries[(i % entries.len() as u64) as usize]))
        .collect();
    let start = Instant::now();
    for ((&i, p), l) in idx.iter().zip(&proofs).zip(&leaves) {
        verify_inclusion(l, i, n, p, &root)?;
    }
    let check_us = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    let old = n / 3 + 1;
    let old_root = log.root(old)?;
    let start = Instant::now();
    let mut cproof = Vec::new();
    for _ in 0..1000 {
        cproof = log.consistency_proof(old, n)?;
    }
    let cprove_us = start.elapsed().as_secs_f64() * 1e6 / 1000.0;
    let start = Instant::now();
    for _ in 0..1000 {
        verify_consistency(old, n, &old_root, &root, &cproof)?;
    }
    let ccheck_us = start.elapsed().as_secs_f64() * 1e6 / 1000.0;
    if a.json {
        print_json(&json!({
            "entries": n, "entry_bytes": entries[0].len(),
            "append_group_commit_per_s": group_rate, "group_ms": a.group_ms,
            "append_fsync_each_per_s": fsync_rate,
            "verify_entries_per_s": verify_rate, "sha256_entries_per_s": sha_rate,
            "inclusion_prove_us": prove_us, "inclusion_check_us": check_us,
            "consistency_prove_us": cprove_us, "consistency_check_us": ccheck_us,
            "inclusion_proof_hashes": proofs.first().map(Vec::len),
        }));
    } else {
        crate::out!("audit log of {n} entries of {} bytes", entries[0].len());
        crate::out!(
            "append, group commit ({} ms)   {group_rate:>12.0} entries/s",
            a.group_ms
        );
        crate::out!("append, fsync every entry     {fsync_rate:>12.0} entries/s");
        crate::out!(
            "verify from raw files         {verify_rate:>12.0} entries/s  (one SHA-256 per entry alone: {sha_rate:.0}/s, ratio {:.2})",
            verify_rate / sha_rate
        );
        crate::out!("inclusion proof: prove {prove_us:.1} us, check {check_us:.1} us");
        crate::out!("consistency proof: prove {cprove_us:.1} us, check {ccheck_us:.1} us");
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct ConnectionsArgs {
    /// The receiver, HOST:PORT.
    #[arg(long)]
    to: String,
    #[command(flatten)]
    tls: crate::transfer_cmd::TlsArgs,
    /// Connections to hold at once.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Seconds to hold them after the last one opened.
    #[arg(long, default_value_t = 5.0)]
    hold: f64,
    /// Local IPv4 addresses to connect from, in turn (e.g. 127.0.0.1
    /// 127.0.0.2 on loopback): a receiver bounds connections per address.
    #[arg(long = "from", value_name = "IP", num_args = 1..)]
    from: Vec<std::net::Ipv4Addr>,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

fn run_connections(a: ConnectionsArgs) -> Result<()> {
    let held = crate::transfer_cmd::hold_connections(
        &a.to,
        &a.tls,
        a.count,
        Duration::from_secs_f64(a.hold.max(0.0)),
        &a.from,
    )?;
    let rate = held.opened as f64 / held.seconds_to_open.max(1e-9);
    if a.json {
        print_json(&json!({
            "opened": held.opened, "seconds_to_open": held.seconds_to_open,
            "handshakes_per_s": rate, "still_open_after_hold": held.still_open,
        }));
    } else {
        crate::out!(
            "{} mutual TLS connections opened in {:.2} s ({rate:.0}/s), {} still open after {:.1} s",
            held.opened,
            held.seconds_to_open,
            held.still_open,
            a.hold
        );
    }
    if held.still_open < held.opened {
        anyhow::bail!(
            "the receiver dropped {} of {} connections",
            held.opened - held.still_open,
            held.opened
        );
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct TlsArgs {
    /// Seconds to spend on each configuration.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct CryptoArgs {
    /// Seconds to spend on each measurement.
    #[arg(long, default_value_t = 0.3)]
    seconds: f64,
    /// Only algorithms whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `f` repeatedly for about `budget` (at least once); returns ops/s.
fn rate<T>(budget: Duration, mut f: impl FnMut() -> Result<T>) -> Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        black_box(f()?);
        n += 1;
        let el = start.elapsed();
        if el >= budget {
            return Ok(n as f64 / el.as_secs_f64());
        }
    }
}

/// Handshakes per second, one client at a time, against a server thread.
/// `classical`: ECDSA P-256 certificates and a client offering X25519 only
/// (the baseline); otherwise ML-DSA-65 and X25519MLKEM768.
fn tls_rate(classical: bool, budget: Duration) -> Result<(f64, String)> {
    use citadel_tls::ca::{Ca, CaAlgorithm, Usage};
    use citadel_tls::config::{
        Identity, TlsOptions, Trust, client_config, crypto_provider, server_config,
    };
    use citadel_tls::rustls::{self, ClientConnection, ServerConnection, pki_types::ServerName};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::sync::Arc;

    let dir = tempfile::tempdir()?;
    let alg = if classical {
        CaAlgorithm::EcdsaP256
    } else {
        CaAlgorithm::MlDsa65
    };
    let mut ca = Ca::init(dir.path(), alg, "bench CA")?;
    ca.issue("server", &["localhost".into()], &[], Usage::Server, 1)?;
    ca.issue("client", &[], &[], Usage::Client, 1)?;
    let trust = Trust::from_ca(&ca)?;
    let opts = TlsOptions {
        allow_classical: classical,
    };
    let scfg = server_config(Identity::from_ca(&ca, "server")?, &trust, opts)?;
    let ccfg = if classical {
        let mut p = (*crypto_provider(opts)).clone();
        p.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
        let id = Identity::from_ca(&ca, "client")?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.certificate().clone())?;
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(p))
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .with_root_certificates(roots)
                .with_client_auth_cert(id.chain, id.key)?,
        )
    } else {
        client_config(Identity::from_ca(&ca, "client")?, &trust, opts)?
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> Result<()> {
        for stream in listener.incoming() {
            let mut tcp = stream?;
            let mut conn = ServerConnection::new(scfg.clone())?;
            while conn.is_handshaking() {
                // The final connection closes before its handshake: stop.
                if conn.complete_io(&mut tcp).is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    });
    let name = ServerName::try_from("localhost")?;
    let mut group = String::new();
    let ops = rate(budget, || -> Result<()> {
        let mut tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        let mut conn = ClientConnection::new(ccfg.clone(), name.clone())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)?;
        }
        if group.is_empty() {
            group = conn
                .negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name()))
                .unwrap_or_default();
        }
        Ok(())
    })?;
    drop(TcpStream::connect(addr)?);
    let _ = server.join();
    Ok((ops, group))
}

fn run_tls(a: TlsArgs) -> Result<()> {
    let budget = Duration::from_secs_f64(a.seconds.max(0.1));
    let (pq, pq_group) = tls_rate(false, budget)?;
    let (classic, classic_group) = tls_rate(true, budget)?;
    let ratio = if classic > 0.0 { pq / classic } else { 0.0 };
    if a.json {
        print_json(&json!({
            "post_quantum": {"handshakes_per_s": pq, "key_exchange": pq_group, "signature": "ML-DSA-65"},
            "classical": {"handshakes_per_s": classic, "key_exchange": classic_group, "signature": "ECDSA-P256-SHA256"},
            "pq_over_classical": ratio,
        }));
    } else {
        crate::out!("mutual TLS 1.3 handshakes over loopback TCP, one client at a time");
        crate::out!("post-quantum  {pq_group:<16} ML-DSA-65          {pq:>8.1} /s");
        crate::out!("classical     {classic_group:<16} ECDSA-P256-SHA256  {classic:>8.1} /s");
        crate::out!("ratio pq/classical: {ratio:.2}");
    }
    Ok(())
}

pub(crate) fn run(c: BenchCommand) -> Result<()> {
    let a = match c {
        BenchCommand::Crypto(a) => a,
        BenchCommand::Tls(a) => return run_tls(a),
        BenchCommand::Connections(a) => return run_connections(a),
        BenchCommand::Audit(a) => return run_audit(a),
    };
    let budget = Duration::from_secs_f64(a.seconds.max(0.01));
    let mut rows = Vec::new();
    let msg = [0x5Au8; 64];
    for &alg in Algorithm::ALL {
        if a.filter.as_deref().is_some_and(|f| !alg.name().contains(f)) {
            continue;
        }
        let (keygen, op1, op2, names) = match alg.family() {
            Family::Kem => {
                let keygen = rate(budget, || Ok(kem::DecapsulationKey::generate(alg)?))?;
                let dk = kem::DecapsulationKey::generate(alg)?;
                let ek = dk.encapsulation_key();
                let (ct, _) = ek.encapsulate()?;
                let enc = rate(budget, || Ok(ek.encapsulate()?))?;
                let dec = rate(budget, || Ok(dk.decapsulate(&ct)?))?;
                (keygen, enc, dec, ("encaps", "decaps"))
            }
            Family::Signature => {
                let keygen = rate(budget, || Ok(sig::SigningKey::generate(alg)?))?;
                let sk = sig::SigningKey::generate(alg)?;
                let vk = sk.verifying_key();
                let s = sk.sign(&msg, b"")?;
                let sign = rate(budget, || Ok(sk.sign(&msg, b"")?))?;
                let verify = rate(budget, || Ok(vk.verify(&msg, b"", &s)?))?;
                (keygen, sign, verify, ("sign", "verify"))
            }
            Family::AgeRecipient if alg == Algorithm::MlKem768X25519 => {
                let keygen = rate(budget, || Ok(xwing::DecapsulationKey::generate()?))?;
                let dk = xwing::DecapsulationKey::generate()?;
                let ek = dk.encapsulation_key();
                let (ct, _) = ek.encapsulate()?;
                let enc = rate(budget, || Ok(ek.encapsulate()?))?;
                let dec = rate(budget, || Ok(dk.decapsulate(&ct)?))?;
                (keygen, enc, dec, ("encaps", "decaps"))
            }
            Family::AgeRecipient => {
                let keygen = rate(budget, || {
                    Ok(citadel_crypto::x25519::StaticSecret::generate()?)
                })?;
                let a_key = citadel_crypto::x25519::StaticSecret::generate()?;
                let peer = citadel_crypto::x25519::StaticSecret::generate()?.public_key();
                let dh = rate(budget, || Ok(a_key.diffie_hellman(&peer)?))?;
                (keygen, dh, dh, ("dh", "dh"))
            }
        };
        rows.push(json!({"algorithm": alg.name(), "keygen_per_s": keygen, "op1": names.0, "op1_per_s": op1, "op2": names.1, "op2_per_s": op2}));
    }
    let mut aead_rows = Vec::new();
    if a.filter.is_none() {
        for alg in [AeadAlgorithm::Aes256Gcm, AeadAlgorithm::ChaCha20Poly1305] {
            let key = AeadKey::new(alg, &[7u8; 32])?;
            let mut buf = vec![0u8; 16 * 1024];
            let mut counter = 0u64;
            let ops = rate(budget, || {
                counter += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&counter.to_be_bytes());
                buf.truncate(16 * 1024);
                key.seal_in_place(&nonce, b"", &mut buf)?;
                Ok(())
            })?;
            aead_rows.push(
                json!({"aead": alg.name(), "block_bytes": 16384, "mb_per_s": ops * 16384.0 / 1e6}),
            );
        }
    }
    if a.json {
        print_json(
            &json!({"algorithms": rows, "aead": aead_rows, "seconds_per_measurement": a.seconds}),
        );
        return Ok(());
    }
    crate::out!(
        "{:<20} {:>12} {:>8} {:>12} {:>8} {:>12}",
        "ALGORITHM",
        "KEYGEN/S",
        "OP",
        "OPS/S",
        "OP",
        "OPS/S"
    );
    for r in &rows {
        crate::out!(
            "{:<20} {:>12.1} {:>8} {:>12.1} {:>8} {:>12.1}",
            r["algorithm"].as_str().unwrap_or_default(),
            r["keygen_per_s"].as_f64().unwrap_or_default(),
            r["op1"].as_str().unwrap_or_default(),
            r["op1_per_s"].as_f64().unwrap_or_default(),
            r["op2"].as_str().unwrap_or_default(),
            r["op2_per_s"].as_f64().unwrap_or_default(),
        );
    }
    for r in &aead_rows {
        crate::out!(
            "{:<20} {:>10.1} MB/s (16 KiB blocks, seal)",
            r["aead"].as_str().unwrap_or_default(),
            r["mb_per_s"].as_f64().unwrap_or_default()
        );
    }
    Ok(())
}
