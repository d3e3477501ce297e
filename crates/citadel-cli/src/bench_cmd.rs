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

pub(crate) fn run(c: BenchCommand) -> Result<()> {
    let BenchCommand::Crypto(a) = c;
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
    println!(
        "{:<20} {:>12} {:>8} {:>12} {:>8} {:>12}",
        "ALGORITHM", "KEYGEN/S", "OP", "OPS/S", "OP", "OPS/S"
    );
    for r in &rows {
        println!(
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
        println!(
            "{:<20} {:>10.1} MB/s (16 KiB blocks, seal)",
            r["aead"].as_str().unwrap_or_default(),
            r["mb_per_s"].as_f64().unwrap_or_default()
        );
    }
    Ok(())
}
