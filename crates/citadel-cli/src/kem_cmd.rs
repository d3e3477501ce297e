//! `citadel kem encap|decap`: raw ML-KEM, for interoperability.

use crate::files::PassphraseArgs;
use crate::files::{print_json, read_input, write_output};
use crate::key_cmd::{load_private_key, load_public_key};
use anyhow::{Result, bail};
use citadel_crypto::{PrivateKey, PublicKey};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum KemCommand {
    /// Encapsulate a fresh shared secret to an ML-KEM public key.
    ///
    /// Prints the shared secret (hex) and writes the ciphertext to
    /// -o/--output, or prints both as hex.
    Encap(EncapArgs),
    /// Recover the shared secret from a ciphertext with the private key.
    Decap(DecapArgs),
}

#[derive(Args)]
pub(crate) struct EncapArgs {
    /// ML-KEM public key (SPKI PEM).
    #[arg(long = "pub", value_name = "FILE")]
    public: PathBuf,
    /// Write the raw ciphertext here.
    #[arg(long, short = 'o', alias = "ct-out", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long, requires = "output")]
    force: bool,
    /// Print {"ciphertext": hex, "shared_secret": hex}.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct DecapArgs {
    /// ML-KEM private key (PKCS#8 PEM).
    #[arg(long, short = 'k')]
    key: PathBuf,
    /// The raw ciphertext ('-' for standard input).
    #[arg(long)]
    ct: PathBuf,
    #[command(flatten)]
    pass: PassphraseArgs,
    /// Print {"shared_secret": hex}.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(c: KemCommand) -> Result<()> {
    match c {
        KemCommand::Encap(a) => {
            let PublicKey::Kem(ek) = load_public_key(&a.public)? else {
                bail!("{} is not an ML-KEM public key", a.public.display());
            };
            let (ct, ss) = ek.encapsulate()?;
            if let Some(path) = &a.output {
                write_output(path, &ct, false, a.force)?;
            }
            if a.json {
                print_json(
                    &json!({"algorithm": ek.algorithm().name(), "ciphertext": hex::encode(&ct), "shared_secret": hex::encode(ss.expose())}),
                );
            } else {
                if a.output.is_none() {
                    crate::out!("ciphertext: {}", hex::encode(&ct));
                }
                crate::out!("shared_secret: {}", hex::encode(ss.expose()));
            }
            Ok(())
        }
        KemCommand::Decap(a) => {
            let PrivateKey::Kem(dk) = load_private_key(&a.key, &a.pass)? else {
                bail!("{} is not an ML-KEM private key", a.key.display());
            };
            let ct = read_input(&a.ct)?;
            let ss = dk.decapsulate(&ct)?;
            if a.json {
                print_json(
                    &json!({"algorithm": dk.algorithm().name(), "shared_secret": hex::encode(ss.expose())}),
                );
            } else {
                crate::out!("shared_secret: {}", hex::encode(ss.expose()));
            }
            Ok(())
        }
    }
}
