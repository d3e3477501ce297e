//! `citadel key …`

use crate::files::PassphraseArgs;
use crate::files::{check_new, print_json, read_text};
use anyhow::{Context, Result, bail};
use citadel_age::{Identity, Recipient};
use citadel_crypto::keys::{Kdf, PrivateKeyForm};
use citadel_crypto::{Algorithm, Family, PrivateKey, PublicKey};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate a key pair: NAME.key (private, mode 0600) and NAME.pub.
    ///
    /// Signature and KEM keys are PKCS#8 and SPKI PEM with the NIST OIDs;
    /// the age recipient types (x25519, mlkem768x25519) use age's own
    /// identity and recipient encodings.
    Gen(GenArgs),
    /// Show a key's algorithm, sizes and fingerprint.
    Show(ShowArgs),
    /// List the supported algorithms.
    ListAlgs(ListArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum KdfChoice {
    /// scrypt (N = 2^17, r = 8, p = 1).
    Scrypt,
    /// PBKDF2-HMAC-SHA-256 (600,000 iterations).
    Pbkdf2,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum FormChoice {
    /// The seed only (IETF LAMPS recommendation).
    Seed,
    /// The expanded private key only.
    Expanded,
    /// Seed and expanded key.
    Both,
}

#[derive(Args)]
pub(crate) struct GenArgs {
    /// Algorithm (see `citadel key list-algs`).
    #[arg(long)]
    alg: String,
    /// Output name: writes NAME.key and NAME.pub.
    #[arg(long, short = 'o', alias = "out", value_name = "NAME")]
    output: PathBuf,
    /// Replace NAME.key and NAME.pub if they exist.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    pass: PassphraseArgs,
    /// Key-derivation function for passphrase protection.
    #[arg(long, value_enum, default_value = "scrypt")]
    kdf: KdfChoice,
    /// Private key form for ML-KEM and ML-DSA.
    #[arg(long, value_enum, default_value = "seed")]
    form: FormChoice,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct ShowArgs {
    /// A key file: PKCS#8/SPKI PEM, an age identity file or an age recipient.
    file: PathBuf,
    #[command(flatten)]
    pass: PassphraseArgs,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct ListArgs {
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(c: KeyCommand) -> Result<()> {
    match c {
        KeyCommand::Gen(a) => gen_key(a),
        KeyCommand::Show(a) => show(a),
        KeyCommand::ListAlgs(a) => list(a),
    }
}

fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

/// Writes a key pair: both files are opened (and every check made) before
/// either is written, and the public key is renamed into place first, so a
/// failure never leaves a private key without its public key, nor replaces
/// an old private key and then stops.
fn write_pair(key: (&Path, &[u8]), public: (&Path, &[u8]), force: bool) -> Result<()> {
    use std::io::Write;
    let mut k = crate::files::AtomicFile::create_output(key.0, true, force)?;
    let mut p = crate::files::AtomicFile::create_output(public.0, false, force)?;
    k.write_all(key.1)
        .with_context(|| format!("cannot write {}", key.0.display()))?;
    p.write_all(public.1)
        .with_context(|| format!("cannot write {}", public.0.display()))?;
    p.commit()?;
    k.commit()
}

fn gen_key(a: GenArgs) -> Result<()> {
    let alg: Algorithm = a.alg.parse()?;
    {
        use std::os::unix::ffi::OsStrExt;
        let name = a.output.as_os_str().as_bytes();
        if name.ends_with(b"/") || a.output.file_name().is_none_or(|n| n == "-") {
            bail!(
                "-o takes a NAME for NAME.key and NAME.pub (such as -o alice or -o keys/alice), not {}",
                a.output.display()
            );
        }
    }
    let key_path = with_ext(&a.output, ".key");
    let pub_path = with_ext(&a.output, ".pub");
    check_new(&key_path, a.force)?;
    check_new(&pub_path, a.force)?;
    let asked =
        a.pass.passphrase || a.pass.passphrase_file.is_some() || a.pass.passphrase_env.is_some();
    let pass = if alg.family() == Family::AgeRecipient && asked {
        None
    } else {
        a.pass.read_new(&key_path.display().to_string())?
    };
    let (public_text, fingerprint) = if alg.family() == Family::AgeRecipient {
        if asked {
            bail!(
                "age identities cannot be passphrase-protected by `key gen`; encrypt the identity file with `citadel encrypt -p` instead"
            );
        }
        let id = match alg {
            Algorithm::X25519 => Identity::generate_x25519()?,
            _ => Identity::generate_hybrid()?,
        };
        let recipient = id
            .to_recipient()
            .context("internal: identity without recipient")?
            .to_string();
        let secret = id.to_secret_string()?;
        let body = zeroize::Zeroizing::new(format!(
            "# created by citadel\n# public key: {recipient}\n{}\n",
            secret.as_str()
        ));
        write_pair(
            (&key_path, body.as_bytes()),
            (&pub_path, format!("{recipient}\n").as_bytes()),
            a.force,
        )?;
        let fp = format!(
            "SHA256:{}",
            hex::encode(citadel_crypto::hash::sha256(recipient.as_bytes()))
        );
        (recipient, fp)
    } else {
        let key = PrivateKey::generate(alg)?;
        let form = match a.form {
            FormChoice::Seed => PrivateKeyForm::Seed,
            FormChoice::Expanded => PrivateKeyForm::Expanded,
            FormChoice::Both => PrivateKeyForm::Both,
        };
        let kdf = match a.kdf {
            KdfChoice::Scrypt => Kdf::Scrypt { log_n: 17 },
            KdfChoice::Pbkdf2 => Kdf::Pbkdf2 {
                iterations: 600_000,
            },
        };
        let pem = key.to_pem(form, pass.as_ref().map(|p| (p.as_slice(), kdf)))?;
        let public = key.public_key();
        let pub_pem = public.to_pem()?;
        write_pair(
            (&key_path, pem.as_bytes()),
            (&pub_path, pub_pem.as_bytes()),
            a.force,
        )?;
        (pub_pem, public.fingerprint()?)
    };
    let _ = public_text;
    if a.json {
        print_json(&json!({
            "algorithm": alg.name(),
            "private_key": key_path.display().to_string(),
            "public_key": pub_path.display().to_string(),
            "fingerprint": fingerprint,
            "encrypted": pass.is_some(),
        }));
    } else {
        crate::say!(
            "{} key pair written: {} (private, 0600), {}",
            alg,
            key_path.display(),
            pub_path.display()
        );
        crate::say!("fingerprint: {fingerprint}");
    }
    Ok(())
}

/// Loads a PKCS#8 private key, asking for the passphrase options if needed.
pub(crate) fn load_private_key(path: &Path, pass_args: &PassphraseArgs) -> Result<PrivateKey> {
    let text = zeroize::Zeroizing::new(read_text(path)?);
    let encrypted = PrivateKey::pem_is_encrypted(&text);
    let pass = pass_args.read(&path.display().to_string(), encrypted)?;
    if encrypted && pass.is_none() {
        bail!(
            "{} is passphrase-protected; pass -p (asked on the terminal), --passphrase-file FILE or --passphrase-env VAR",
            path.display()
        );
    }
    PrivateKey::from_pem(&text, pass.as_ref().map(|p| p.as_slice()))
        .with_context(|| format!("cannot load the private key {}", path.display()))
}

/// Loads a public key from an SPKI PEM file, or derives it from a private key file.
pub(crate) fn load_public_key(path: &Path) -> Result<PublicKey> {
    let text = read_text(path)?;
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        return PublicKey::from_pem(&text)
            .with_context(|| format!("cannot load the public key {}", path.display()));
    }
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        let key = PrivateKey::from_pem(&text, None)
            .with_context(|| format!("cannot load the key {}", path.display()))?;
        return Ok(key.public_key());
    }
    bail!(
        "{} is not a PEM public key (expected '-----BEGIN PUBLIC KEY-----')",
        path.display()
    )
}

fn show(a: ShowArgs) -> Result<()> {
    let text = zeroize::Zeroizing::new(read_text(&a.file)?);
    let trimmed = text.trim();
    let info = if trimmed.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let pass = a.pass.read(&a.file.display().to_string(), false)?;
        match pass {
            Some(p) => {
                let k = PrivateKey::from_pem(&text, Some(&p))
                    .context("cannot decrypt the private key")?;
                describe_pkcs(&k.public_key(), "private", true)?
            }
            None => json!({"kind": "private", "encrypted": true, "format": "PKCS#8 (PBES2)",
                           "note": "pass -p, --passphrase-file or --passphrase-env to show the algorithm"}),
        }
    } else if trimmed.contains("-----BEGIN PRIVATE KEY-----") {
        let k = PrivateKey::from_pem(&text, None).context("cannot parse the private key")?;
        describe_pkcs(&k.public_key(), "private", false)?
    } else if trimmed.contains("-----BEGIN PUBLIC KEY-----") {
        describe_pkcs(&PublicKey::from_pem(&text)?, "public", false)?
    } else if trimmed.contains("AGE-SECRET-KEY-") {
        let ids = Identity::parse_file(&text)?;
        let r = ids[0]
            .to_recipient()
            .context("internal: identity without recipient")?;
        describe_age(&r, "private")
    } else if trimmed.starts_with("age1") {
        let first = trimmed.lines().next().unwrap_or_default();
        describe_age(&Recipient::parse(first)?, "public")
    } else {
        bail!(
            "{} is not a key file Citadel knows (PKCS#8, SPKI, or age)",
            a.file.display()
        );
    };
    if a.json {
        print_json(&info);
    } else if let Some(obj) = info.as_object() {
        for (k, v) in obj {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            crate::out!("{k:<16} {v}");
        }
    }
    Ok(())
}

fn describe_pkcs(pk: &PublicKey, kind: &str, encrypted: bool) -> Result<serde_json::Value> {
    let alg = pk.algorithm();
    Ok(json!({
        "kind": kind,
        "algorithm": alg.name(),
        "oid": alg.oid_string(),
        "format": if kind == "private" { "PKCS#8" } else { "SPKI" },
        "encrypted": encrypted,
        "post_quantum": alg.is_post_quantum(),
        "public_key_bytes": alg.public_key_len(),
        "private_key_bytes": alg.private_key_len(),
        (if alg.family() == Family::Kem { "ciphertext_bytes" } else { "signature_bytes" }): alg.output_len(),
        "fingerprint": pk.fingerprint()?,
    }))
}

fn describe_age(r: &Recipient, kind: &str) -> serde_json::Value {
    let s = r.to_string();
    let alg = if r.is_post_quantum() {
        Algorithm::MlKem768X25519
    } else {
        Algorithm::X25519
    };
    json!({
        "kind": kind,
        "algorithm": alg.name(),
        "format": if kind == "private" { "age identity" } else { "age recipient" },
        "post_quantum": r.is_post_quantum(),
        "public_key_bytes": alg.public_key_len(),
        "private_key_bytes": alg.private_key_len(),
        "ciphertext_bytes": alg.output_len(),
        "recipient": s,
        "fingerprint": format!("SHA256:{}", hex::encode(citadel_crypto::hash::sha256(s.as_bytes()))),
    })
}

fn list(a: ListArgs) -> Result<()> {
    let rows: Vec<serde_json::Value> = Algorithm::ALL
        .iter()
        .map(|alg| {
            json!({
                "name": alg.name(),
                "family": match alg.family() { Family::Kem => "kem", Family::Signature => "signature", Family::AgeRecipient => "age-recipient" },
                "post_quantum": alg.is_post_quantum(),
                "oid": alg.oid_string(),
                "public_key_bytes": alg.public_key_len(),
                "private_key_bytes": alg.private_key_len(),
                "output_bytes": alg.output_len(),
            })
        })
        .collect();
    if a.json {
        print_json(&json!(rows));
        return Ok(());
    }
    crate::out!(
        "{:<20} {:<14} {:>3} {:>8} {:>8} {:>9}  OID",
        "NAME",
        "FAMILY",
        "PQ",
        "PUB",
        "PRIV",
        "SIG/CT"
    );
    for r in rows {
        crate::out!(
            "{:<20} {:<14} {:>3} {:>8} {:>8} {:>9}  {}",
            r["name"].as_str().unwrap_or_default(),
            r["family"].as_str().unwrap_or_default(),
            if r["post_quantum"] == true {
                "yes"
            } else {
                "no"
            },
            r["public_key_bytes"].as_u64().unwrap_or_default(),
            r["private_key_bytes"].as_u64().unwrap_or_default(),
            r["output_bytes"].as_u64().unwrap_or_default(),
            r["oid"].as_str().unwrap_or("-"),
        );
    }
    Ok(())
}
