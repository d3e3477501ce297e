//! `citadel sign` and `citadel verify`.

use crate::VerificationFailed;
use crate::files::PassphraseArgs;
use crate::files::{print_json, read_input, write_atomic};
use crate::key_cmd::{load_private_key, load_public_key};
use anyhow::{Context, Result, bail};
use citadel_artifact::{Envelope, Manifest};
use citadel_crypto::PrivateKey;
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct SignArgs {
    /// Private signing key (PKCS#8 PEM: ML-DSA, SLH-DSA or Ed25519).
    #[arg(long, short = 'k')]
    key: PathBuf,
    /// Files or directories to sign. A file gets FILE.sig (raw signature
    /// bytes); a directory gets DIR.sig (a DSSE envelope over an in-toto
    /// statement of every file's SHA-256).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// FIPS 204/205 context string (at most 255 bytes; not for Ed25519).
    #[arg(long, short = 'c', default_value = "")]
    context: String,
    /// Where to write the signature (only with a single input).
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
    #[command(flatten)]
    pass: PassphraseArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// Public key (SPKI PEM), or the private key file.
    #[arg(long = "pub", short = 'p')]
    public: PathBuf,
    /// The signature (default: PATH.sig).
    #[arg(long, short = 's')]
    sig: Option<PathBuf>,
    /// The signed file or directory.
    path: PathBuf,
    /// The context string used when signing.
    #[arg(long, short = 'c', default_value = "")]
    context: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn sig_path(path: &Path) -> PathBuf {
    let trimmed = path.components().as_path();
    let mut s = trimmed.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

fn root_name(path: &Path) -> String {
    std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| ".".into())
}

pub(crate) fn sign(a: SignArgs) -> Result<()> {
    if a.out.is_some() && a.paths.len() != 1 {
        bail!("--out can only be used with a single input");
    }
    let key = match load_private_key(&a.key, &a.pass)? {
        PrivateKey::Signature(k) => k,
        PrivateKey::Kem(k) => bail!(
            "{} is an {} key, which cannot sign; use an ML-DSA, SLH-DSA or Ed25519 key",
            a.key.display(),
            k.algorithm()
        ),
    };
    let ctx = a.context.as_bytes();
    let keyid = citadel_crypto::PublicKey::Signature(key.verifying_key()).fingerprint()?;
    let mut results = Vec::new();
    for path in &a.paths {
        let out = a.out.clone().unwrap_or_else(|| sig_path(path));
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            let manifest = Manifest::from_dir(path)?;
            let statement = manifest.to_statement(&root_name(path));
            let env = Envelope::sign(&statement, &key, &keyid, ctx)?;
            write_atomic(&out, &env.to_json(), false)?;
            results.push(
                json!({"path": path.display().to_string(), "signature": out.display().to_string(),
                                "kind": "directory", "files": manifest.files.len()}),
            );
        } else {
            // ML-DSA streams the file (memory stays flat for any size).
            let mut file = open_input(path)?;
            let sig = key.sign_reader(&mut file, ctx).map_err(stream_error)?;
            write_atomic(&out, &sig, false)?;
            results.push(
                json!({"path": path.display().to_string(), "signature": out.display().to_string(),
                                "kind": "file", "bytes": sig.len()}),
            );
        }
    }
    if a.json {
        print_json(
            &json!({"algorithm": key.algorithm().name(), "key_fingerprint": keyid, "signed": results}),
        );
    } else {
        for r in &results {
            println!(
                "signed {} -> {}",
                r["path"].as_str().unwrap_or_default(),
                r["signature"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(())
}

pub(crate) fn verify(a: VerifyArgs) -> Result<()> {
    let public = load_public_key(&a.public)?;
    let vk = match &public {
        citadel_crypto::PublicKey::Signature(k) => k.clone(),
        citadel_crypto::PublicKey::Kem(k) => bail!(
            "{} is an {} key, which cannot verify signatures",
            a.public.display(),
            k.algorithm()
        ),
    };
    let sig_file = a.sig.clone().unwrap_or_else(|| sig_path(&a.path));
    let sig = read_input(&sig_file)?;
    let ctx = a.context.as_bytes();
    let meta =
        std::fs::metadata(&a.path).with_context(|| format!("cannot read {}", a.path.display()))?;
    if meta.is_dir() {
        let env = Envelope::from_json(&sig)
            .with_context(|| format!("{} is not a directory signature", sig_file.display()))?;
        let payload = match env.verify(&vk, ctx) {
            Ok(p) => p,
            Err(citadel_artifact::Error::Crypto(_)) => {
                return Err(VerificationFailed(format!(
                    "{}: the manifest signature is not valid for this key",
                    a.path.display()
                ))
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        let signed = Manifest::from_statement(&payload)?;
        let diff = Manifest::from_dir(&a.path)?.diff_against(&signed);
        if a.json {
            print_json(
                &json!({"valid": diff.is_empty(), "signature_valid": true, "algorithm": vk.algorithm().name(),
                "files": signed.files.len(), "added": diff.added, "removed": diff.removed, "modified": diff.modified}),
            );
        }
        if !diff.is_empty() {
            let mut parts = Vec::new();
            for (label, list) in [
                ("added", &diff.added),
                ("removed", &diff.removed),
                ("modified", &diff.modified),
            ] {
                if !list.is_empty() {
                    parts.push(format!("{label}: {}", list.join(", ")));
                }
            }
            return Err(VerificationFailed(format!(
                "{} does not match its signed manifest ({})",
                a.path.display(),
                parts.join("; ")
            ))
            .into());
        }
        if !a.json {
            println!(
                "OK: {} ({} files, {} signature valid)",
                a.path.display(),
                signed.files.len(),
                vk.algorithm()
            );
        }
        return Ok(());
    }
    let mut file = open_input(&a.path)?;
    match vk.verify_reader(&mut file, ctx, &sig).map_err(stream_error) {
        Ok(()) => {
            if a.json {
                print_json(
                    &json!({"valid": true, "algorithm": vk.algorithm().name(), "path": a.path.display().to_string()}),
                );
            } else {
                println!(
                    "OK: {} ({} signature valid)",
                    a.path.display(),
                    vk.algorithm()
                );
            }
            Ok(())
        }
        Err(e)
            if matches!(
                e.downcast_ref::<citadel_crypto::Error>(),
                Some(citadel_crypto::Error::BadSignature)
            ) =>
        {
            if a.json {
                print_json(
                    &json!({"valid": false, "algorithm": vk.algorithm().name(), "path": a.path.display().to_string()}),
                );
            }
            Err(VerificationFailed(format!(
                "{}: signature verification failed (the file, the signature, the key or the context differ from what was signed)",
                a.path.display()
            ))
            .into())
        }
        Err(e) => Err(e),
    }
}

/// Opens a file, or standard input for `-`.
fn open_input(path: &Path) -> Result<Box<dyn std::io::Read>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin()));
    }
    let f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
}

fn stream_error(e: citadel_crypto::sig::StreamError) -> anyhow::Error {
    match e {
        citadel_crypto::sig::StreamError::Io(e) => {
            anyhow::Error::new(e).context("cannot read the input")
        }
        citadel_crypto::sig::StreamError::Crypto(e) => e.into(),
    }
}
