//! `citadel`: the command-line front end over the Citadel libraries.
//!
//! This crate is glue: it parses arguments, reads and writes files, draws
//! progress bars, prints, and picks exit codes. The work happens in
//! `citadel-crypto`, `citadel-age` and `citadel-artifact`.
#![forbid(unsafe_code)]

mod age_cmd;
mod audit_cmd;
mod bench_cmd;
mod ca_cmd;
mod files;
mod kem_cmd;
mod key_cmd;
mod recv_cmd;
mod sign_cmd;
mod transfer_cmd;
mod vault_cmd;
mod vault_http;
mod vault_verbs;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Citadel: post-quantum cryptography from the command line.
///
/// Keys, signatures, key encapsulation and file encryption with the NIST
/// post-quantum algorithms (ML-KEM, ML-DSA, SLH-DSA), their hybrids with
/// X25519, and classical Ed25519/X25519 for compatibility.
///
/// Exit codes: 0 success, 1 verification failure, 2 usage or input error,
/// 3 the vault is sealed (`citadel vault status`).
#[derive(Parser)]
#[command(
    name = "citadel",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate, inspect and list keys.
    #[command(subcommand)]
    Key(key_cmd::KeyCommand),
    /// Sign files or directory trees (detached signatures).
    Sign(sign_cmd::SignArgs),
    /// Verify a detached signature over a file or a directory tree.
    Verify(sign_cmd::VerifyArgs),
    /// Raw ML-KEM encapsulation and decapsulation.
    #[command(subcommand)]
    Kem(kem_cmd::KemCommand),
    /// Encrypt a file in the age v1 format (post-quantum with age1pq1… recipients).
    Encrypt(age_cmd::EncryptArgs),
    /// Decrypt an age v1 file.
    Decrypt(age_cmd::DecryptArgs),
    /// Send files and directories to a `citadel recv` over post-quantum mutual TLS.
    Send(transfer_cmd::SendArgs),
    /// Receive files from `citadel send`: every chunk verified, resumable.
    Recv(transfer_cmd::RecvArgs),
    /// A private post-quantum certificate authority for mutual TLS.
    #[command(subcommand)]
    Ca(ca_cmd::CaCommand),
    /// A tamper-evident audit log: append, checkpoint, prove, verify.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// A Vault-compatible secrets server and its client commands.
    #[command(subcommand)]
    Vault(vault_cmd::VaultCommand),
    /// Measure performance.
    #[command(subcommand)]
    Bench(bench_cmd::BenchCommand),
}

/// A verification failure: reported on one line, exit code 1.
#[derive(Debug)]
pub(crate) struct VerificationFailed(pub(crate) String);

impl std::fmt::Display for VerificationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VerificationFailed {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Key(c) => key_cmd::run(c),
        Command::Sign(a) => sign_cmd::sign(a),
        Command::Verify(a) => sign_cmd::verify(a),
        Command::Kem(c) => kem_cmd::run(c),
        Command::Encrypt(a) => age_cmd::encrypt(a),
        Command::Decrypt(a) => age_cmd::decrypt(a),
        Command::Bench(c) => bench_cmd::run(c),
        Command::Ca(c) => ca_cmd::run(c),
        Command::Send(a) => transfer_cmd::send(a),
        Command::Recv(a) => recv_cmd::recv(a),
        Command::Audit(c) => audit_cmd::run(c),
        Command::Vault(c) => vault_cmd::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let verification = e.downcast_ref::<VerificationFailed>().is_some()
                || matches!(
                    e.downcast_ref::<citadel_crypto::Error>(),
                    Some(citadel_crypto::Error::BadSignature)
                )
                // Whatever part of an encrypted file fails (armor, header,
                // no identity opening it, header MAC, payload), it could not
                // be decrypted and authenticated: exit 1, as age does, so a
                // file damaged at any offset gets the same answer.
                || matches!(
                    e.downcast_ref::<citadel_age::Error>(),
                    Some(
                        citadel_age::Error::Armor(_)
                            | citadel_age::Error::Header(_)
                            | citadel_age::Error::NoMatch
                            | citadel_age::Error::HeaderMac
                            | citadel_age::Error::Payload(_)
                    )
                );
            // One line: the chain of causes, outermost first, each said once
            // (an error that already shows its source is not followed by it).
            let mut parts: Vec<String> = Vec::new();
            for c in e.chain() {
                let c = c.to_string();
                if !parts.last().is_some_and(|p| p.ends_with(&c)) {
                    parts.push(c);
                }
            }
            // Names in messages come from others (file names, paths): shown
            // so that they cannot move the cursor or rewrite the line.
            let msg = printable(&parts.join(": "));
            eprintln!("citadel: {msg}");
            if e.downcast_ref::<vault_verbs::Sealed>().is_some() {
                ExitCode::from(3)
            } else if verification {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

/// A message as it may be written to a terminal: control characters and
/// invisible or direction-changing characters escaped (`\u{1b}`), the rest
/// (printable text in any script) kept.
fn printable(msg: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(msg.len());
    for c in msg.chars() {
        let invisible = matches!(c,
            '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}');
        if c.is_control() || invisible {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn messages_cannot_drive_the_terminal() {
        assert_eq!(
            super::printable("a\x1b[2K\rOK\u{202e}x \u{e9}\u{4e2d}"),
            "a\\u{1b}[2K\\u{d}OK\\u{202e}x \u{e9}\u{4e2d}"
        );
    }
}
