//! `citadel ca …`: a private post-quantum certificate authority.

use crate::files::print_json;
use anyhow::{Result, bail};
use citadel_tls::ca::{Ca, CaAlgorithm, Usage};
use clap::{Args, Subcommand};
use serde_json::json;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum CaCommand {
    /// Create a CA: DIR/ca.crt, DIR/ca.key (0600), DIR/crl.pem, DIR/ca.json.
    Init(InitArgs),
    /// Issue an end-entity certificate: CA/NAME.crt (chain) and CA/NAME.key (0600).
    Issue(IssueArgs),
    /// Revoke every certificate issued under NAME, or one by --serial, and
    /// publish a new CRL.
    Revoke(RevokeArgs),
    /// List the certificates the CA has issued, with their state (valid,
    /// superseded, expired, revoked).
    List(ListArgs),
    /// Sign and publish a new CRL (the next number, the same revocations).
    /// Servers refuse a CRL past its nextUpdate, so run this on a timer
    /// well within --days (see the README).
    Crl(CrlArgs),
}

#[derive(Args)]
pub(crate) struct CrlArgs {
    /// The CA directory.
    #[arg(long)]
    ca: PathBuf,
    /// How long this CRL and the next ones are current, in days (1 to 365;
    /// default: the CA's setting, initially 30).
    #[arg(long)]
    days: Option<u32>,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

/// Reads `--alg` with the one algorithm vocabulary (`Algorithm`'s names
/// and spellings), keeping the ML-DSA ones a CA signs with.
fn ml_dsa_choice(s: &str) -> Result<MlDsaChoice, String> {
    use citadel_crypto::Algorithm as A;
    match s.parse::<A>() {
        Ok(A::MlDsa44) => Ok(MlDsaChoice::MlDsa44),
        Ok(A::MlDsa65) => Ok(MlDsaChoice::MlDsa65),
        Ok(A::MlDsa87) => Ok(MlDsaChoice::MlDsa87),
        Ok(other) => Err(format!(
            "a CA signs with ml-dsa-44, ml-dsa-65 or ml-dsa-87 (or --classical), not {other}"
        )),
        Err(_) => Err("use ml-dsa-44, ml-dsa-65 or ml-dsa-87 (or --classical)".into()),
    }
}

#[derive(Clone, Copy)]
pub(crate) enum MlDsaChoice {
    /// ML-DSA-44.
    MlDsa44,
    /// ML-DSA-65.
    MlDsa65,
    /// ML-DSA-87.
    MlDsa87,
}

#[derive(Args)]
pub(crate) struct InitArgs {
    /// Directory for the CA (created if missing; must not already hold a
    /// CA: there is no --force, a CA's key is never one flag from being
    /// replaced).
    #[arg(long, alias = "dir", value_name = "DIR")]
    ca: PathBuf,
    /// Signature algorithm of the CA and of the certificates it issues:
    /// ml-dsa-44, ml-dsa-65 or ml-dsa-87 (any spelling `key list-algs`
    /// takes: `ML_DSA_87`, `mldsa87`).
    #[arg(
        long,
        value_parser = ml_dsa_choice,
        default_value = "ml-dsa-65",
        conflicts_with = "classical"
    )]
    alg: MlDsaChoice,
    /// Use ECDSA P-256 instead of ML-DSA (not quantum-resistant): for TLS
    /// peers that cannot verify ML-DSA. `citadel send` signs its manifest
    /// with ML-DSA and refuses such a key.
    #[arg(long)]
    classical: bool,
    /// The CA's common name.
    #[arg(long, default_value = "Citadel CA")]
    name: String,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct IssueArgs {
    /// The CA directory.
    #[arg(long)]
    ca: PathBuf,
    /// Name of the certificate (its common name and file names).
    #[arg(long)]
    name: String,
    /// DNS name the holder is reached at (repeatable).
    #[arg(long)]
    dns: Vec<String>,
    /// IP address the holder is reached at (repeatable).
    #[arg(long)]
    ip: Vec<IpAddr>,
    /// Only for TLS clients.
    #[arg(long, conflicts_with = "server")]
    client: bool,
    /// Only for TLS servers.
    #[arg(long)]
    server: bool,
    /// Validity in days (1 to 3650, and not beyond the CA's own certificate).
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Issue NAME again while it has a valid certificate: the new one
    /// replaces NAME.crt and NAME.key; the old one is listed as superseded
    /// and stays valid until it expires or is revoked.
    #[arg(long)]
    force: bool,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct RevokeArgs {
    /// The CA directory.
    #[arg(long)]
    ca: PathBuf,
    /// Name of the certificates to revoke (every certificate issued under it).
    #[arg(long, required_unless_present = "serial", conflicts_with = "serial")]
    name: Option<String>,
    /// Serial (hex, as `ca list` shows it) of the one certificate to
    /// revoke; one the CA has no record of (a ca.json restored from an older
    /// backup) is listed all the same.
    #[arg(long, value_name = "HEX")]
    serial: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct ListArgs {
    /// The CA directory.
    #[arg(long)]
    ca: PathBuf,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(c: CaCommand) -> Result<()> {
    match c {
        CaCommand::Init(a) => {
            let alg = if a.classical {
                CaAlgorithm::EcdsaP256
            } else {
                match a.alg {
                    MlDsaChoice::MlDsa44 => CaAlgorithm::MlDsa44,
                    MlDsaChoice::MlDsa65 => CaAlgorithm::MlDsa65,
                    MlDsaChoice::MlDsa87 => CaAlgorithm::MlDsa87,
                }
            };
            let ca = Ca::init(&a.ca, alg, &a.name)?;
            if a.json {
                print_json(
                    &json!({"dir": a.ca.display().to_string(), "algorithm": alg, "post_quantum": alg.is_post_quantum()}),
                );
            } else {
                crate::say!(
                    "CA created in {} ({}); issue certificates with `citadel ca issue --ca {} --name NAME`",
                    ca.dir().display(),
                    kebab(&alg),
                    a.ca.display()
                );
            }
            Ok(())
        }
        CaCommand::Issue(a) => {
            let mut ca = Ca::open(&a.ca)?;
            let usage = match (a.client, a.server) {
                (true, _) => Usage::Client,
                (_, true) => Usage::Server,
                _ => Usage::Both,
            };
            if usage != Usage::Client && a.dns.is_empty() && a.ip.is_empty() {
                bail!(
                    "a server certificate needs the names it is reached at: pass --dns HOST and/or --ip ADDR (or --client)"
                );
            }
            let rec = if a.force {
                ca.reissue(&a.name, &a.dns, &a.ip, usage, a.days)?
            } else {
                ca.issue(&a.name, &a.dns, &a.ip, usage, a.days)?
            };
            let crt = a.ca.join(format!("{}.crt", a.name));
            let key = a.ca.join(format!("{}.key", a.name));
            if a.json {
                print_json(
                    &json!({"name": a.name, "certificate": crt.display().to_string(), "key": key.display().to_string(),
                    "serial": rec.serial, "usage": rec.usage, "not_after": rec.not_after}),
                );
            } else {
                crate::say!(
                    "issued {}: {} and {} (serial {})",
                    a.name,
                    crt.display(),
                    key.display(),
                    rec.serial
                );
            }
            Ok(())
        }
        CaCommand::Revoke(a) => {
            let mut ca = Ca::open(&a.ca)?;
            let crl = a.ca.join("crl.pem");
            let (name, n) = match (&a.name, &a.serial) {
                (Some(name), _) => (name.clone(), ca.revoke(name)?),
                (None, Some(serial)) => (ca.revoke_serial(serial)?, 1),
                (None, None) => anyhow::bail!("pass --name NAME or --serial HEX"),
            };
            if a.json {
                let serial = ca
                    .issued()
                    .get(&name)
                    .filter(|_| a.serial.is_some())
                    .map(|c| c.serial.clone());
                print_json(&json!({
                    "name": name, "serial": serial, "revoked": n,
                    "crl": crl.display().to_string()
                }));
            } else {
                crate::say!(
                    "revoked {n} certificate(s) listed as {name}; {} updated",
                    crl.display()
                );
            }
            Ok(())
        }
        CaCommand::Crl(a) => {
            let mut ca = Ca::open(&a.ca)?;
            let facts = ca.publish_crl(a.days)?;
            let next = facts
                .next_update
                .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                .map(|t| t.date().to_string())
                .unwrap_or_default();
            if a.json {
                print_json(&json!({"crl": a.ca.join("crl.pem").display().to_string(),
                    "number": facts.number, "next_update": facts.next_update}));
            } else {
                crate::say!(
                    "published CRL number {} in {}; current until {next}",
                    facts.number,
                    a.ca.join("crl.pem").display()
                );
            }
            Ok(())
        }
        CaCommand::List(a) => {
            let ca = Ca::open(&a.ca)?;
            // The states then come from ca.json alone, which a restore
            // may have rolled back: said, not hidden (helper-21).
            if let Err(e) = ca.check_published() {
                eprintln!(
                    "citadel: warning: {}; the states listed are ca.json's alone, and may miss revocations",
                    crate::printable(&e.to_string())
                );
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let states = ca.states(now);
            if a.json {
                let issued: serde_json::Map<String, serde_json::Value> = states
                    .iter()
                    .map(|(name, c, state)| {
                        let mut v = serde_json::to_value(c).unwrap_or_default();
                        v["state"] = json!(state);
                        (name.to_string(), v)
                    })
                    .collect();
                print_json(&json!({"algorithm": ca.algorithm(), "issued": issued}));
            } else {
                for (name, c, state) in states {
                    let until = time::OffsetDateTime::from_unix_timestamp(c.not_after)
                        .map(|t| t.date().to_string())
                        .unwrap_or_default();
                    crate::out!(
                        "{name:<24} {state:<10} until {until}  {:<6} serial {}",
                        kebab(&c.usage),
                        c.serial
                    );
                }
            }
            Ok(())
        }
    }
}

/// A value's name as the JSON output and the flags spell it (`ml-dsa-65`,
/// `both`), never Rust's `Debug` form.
fn kebab(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
