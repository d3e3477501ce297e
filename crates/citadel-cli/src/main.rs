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
mod shell_cmd;
mod sign_cmd;
mod transfer_cmd;
mod vault_admin;
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
/// 3 the vault is sealed (`citadel vault status`). The grammar every verb
/// follows is in docs/cli.md.
#[derive(Parser)]
#[command(
    name = "citadel",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// Print only what was asked for: no progress bars, no confirmation
    /// lines (data, --json documents and errors are still printed).
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// Whether `-q/--quiet` was given (set once, before any verb runs).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the user asked for quiet output (`-q/--quiet`).
pub(crate) fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// Prints a line on standard output. A reader that went away (`| head`)
/// ends the run quietly, with success, as it ends `ripgrep`; any other
/// failure to write is an error (exit 2), never a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::print_out(format_args!($($arg)*), true)
    };
}
pub(crate) use out;

/// [`out!`] without the newline.
macro_rules! out_raw {
    ($($arg:tt)*) => {
        $crate::print_out(format_args!($($arg)*), false)
    };
}
pub(crate) use out_raw;

/// Prints a confirmation line on standard output, unless `-q/--quiet`.
macro_rules! say {
    ($($arg:tt)*) => {
        if !$crate::quiet() {
            $crate::out!($($arg)*);
        }
    };
}
pub(crate) use say;

/// What [`out!`] does.
pub(crate) fn print_out(args: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let written = o
        .write_fmt(args)
        .and_then(|()| if newline { o.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| o.flush());
    if let Err(e) = written {
        stdout_failed(&e);
    }
}

/// Ends the run after standard output failed: quietly with success when
/// its reader went away, else with the error (exit 2).
pub(crate) fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("citadel: cannot write to standard output: {e}");
    std::process::exit(2);
}

/// Spellings kept for one release after docs/cli.md renamed them:
/// (verb path, old flag, new flag). Each still works, with a note.
const DEPRECATED: &[(&[&str], &str, &str)] = &[
    (&["key", "gen"], "--out", "--output"),
    (&["sign"], "--out", "--output"),
    (&["kem", "encap"], "--ct-out", "--output"),
    (&["ca", "init"], "--dir", "--ca"),
];

/// The deprecation notes for `args` (the command line after the program
/// name): a deprecated spelling is noticed only as a flag of its own verb,
/// before any `--`.
fn deprecation_notes(args: &[String]) -> Vec<String> {
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .take_while(|a| *a != "--")
        .collect();
    let mut notes = Vec::new();
    for (verb, old, new) in DEPRECATED {
        let on_verb =
            words.len() > verb.len() && words.iter().zip(verb.iter()).all(|(w, v)| w == v);
        let used = words
            .iter()
            .skip(verb.len())
            .any(|w| *w == *old || w.strip_prefix(old).is_some_and(|r| r.starts_with('=')));
        if on_verb && used {
            notes.push(format!(
                "citadel: note: {old} is now {new} (docs/cli.md); {old} will be removed in a later release"
            ));
        }
    }
    notes
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
    /// Print the shell completion script for bash, zsh, fish, elvish or
    /// powershell.
    Completions(shell_cmd::CompletionsArgs),
    /// Write the manual pages (one per command) to a directory.
    Man(shell_cmd::ManArgs),
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    if !cli.quiet {
        let args: Vec<String> = std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        for note in deprecation_notes(&args) {
            eprintln!("{note}");
        }
    }
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
        Command::Completions(a) => shell_cmd::completions(a),
        Command::Man(a) => shell_cmd::man(a),
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
            // Sealed, whichever verb found it: `status`, or a server's 503.
            let sealed = e.downcast_ref::<vault_verbs::Sealed>().is_some()
                || e.downcast_ref::<vault_http::ApiError>()
                    .is_some_and(|a| a.status == 503);
            if sealed {
                ExitCode::from(3)
            } else if verification {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

/// A command line clap refused: help and version as clap prints them;
/// anything else as one line (`citadel: ` and clap's first line, with its
/// tip if it has one), exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut first = lines
        .next()
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ")
        .to_string();
    // "the following required arguments were not provided:" lists them
    // on the lines below: they go on the one line.
    if first.ends_with(':') {
        let listed: Vec<&str> = lines
            .clone()
            .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("tip: "))
            .collect();
        first = format!("{} {}", first, listed.join(", "));
    }
    let mut tip = lines
        .find(|l| l.starts_with("tip: "))
        .map(|t| format!(" ({})", t.trim_start_matches("tip: ")))
        .unwrap_or_default();
    // Vault's and Go's single-dash long flags (`-policy=x`): say the
    // spelling here.
    if let Some(a) = std::env::args().skip(1).find(|a| {
        let name = a.strip_prefix('-').unwrap_or_default();
        !a.starts_with("--") && name.len() > 1 && name.starts_with(|c: char| c.is_ascii_lowercase())
    }) {
        let name = a[1..].split('=').next().unwrap_or_default();
        tip = format!("{tip} (long flags take two dashes: --{name}, not -{name})");
    }
    eprintln!(
        "citadel: {}{} (see --help)",
        printable(&first),
        printable(&tip)
    );
    ExitCode::from(2)
}

/// A message as it may be written to a terminal: control characters and
/// invisible or direction-changing characters escaped (`\u{1b}`), the rest
/// (printable text in any script) kept.
pub(crate) fn printable(msg: &str) -> String {
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

    /// The rows of the markdown table that follows `heading` in `doc`,
    /// each split into its cells (backquotes removed), header and rule
    /// skipped.
    fn table(doc: &str, heading: &str) -> Vec<Vec<String>> {
        let after = doc.split(heading).nth(1).expect(heading);
        after
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| {
                l.trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().replace('`', ""))
                    .collect()
            })
            .collect()
    }

    fn leaves(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<(String, clap::Command)>) {
        let subs: Vec<_> = cmd
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push((path.join(" "), cmd.clone()));
        }
        for c in subs {
            path.push(c.get_name().to_string());
            leaves(c, path, out);
            path.pop();
        }
    }

    /// docs/cli.md's rules, checked on every verb (the help text of each
    /// is what clap prints from this tree).
    #[test]
    fn the_grammar_holds_for_every_verb() {
        use clap::CommandFactory;
        let doc = include_str!("../../../docs/cli.md");
        let verbs: std::collections::BTreeMap<String, (String, String)> = table(doc, "## Verbs")
            .into_iter()
            .map(|r| (r[0].clone(), (r[1].clone(), r[2].clone())))
            .collect();
        let shorts: std::collections::BTreeMap<char, String> = table(doc, "## Short flags")
            .into_iter()
            .map(|r| {
                let letter = r[0].trim_start_matches('-').chars().next().unwrap();
                (letter, r[1].trim_start_matches("--").to_string())
            })
            .collect();
        let mut cmd = super::Cli::command();
        cmd.build();
        let mut all = Vec::new();
        leaves(&cmd, &mut Vec::new(), &mut all);
        let mut problems = Vec::new();
        for (verb, c) in &all {
            let Some((output, force)) = verbs.get(verb) else {
                problems.push(format!("{verb}: not in docs/cli.md's verb table"));
                continue;
            };
            let args: Vec<&clap::Arg> = c.get_arguments().collect();
            let long = |name: &str| args.iter().find(|a| a.get_long() == Some(name));
            if long("json").is_none() {
                problems.push(format!("{verb}: no --json"));
            }
            if long("quiet").and_then(|a| a.get_short()) != Some('q') {
                problems.push(format!("{verb}: no -q/--quiet"));
            }
            for a in &args {
                if let Some(s) = a.get_short() {
                    let l = a.get_long().unwrap_or_default();
                    if shorts.get(&s).map(String::as_str) != Some(l) {
                        problems.push(format!("{verb}: -{s} is --{l}, not what docs/cli.md says"));
                    }
                }
                for old in ["out", "ct-out"] {
                    if a.get_long() == Some(old)
                        || a.get_visible_aliases().unwrap_or_default().contains(&old)
                    {
                        problems.push(format!("{verb}: --{old} is shown (write --output)"));
                    }
                }
            }
            let writes = output.starts_with("-o") || output == "beside";
            let has_output = long("output").is_some_and(|a| a.get_short() == Some('o'));
            if writes != has_output {
                problems.push(format!(
                    "{verb}: output is {output:?} in docs/cli.md, -o/--output present: {has_output}"
                ));
            }
            if (force == "yes") != long("force").is_some() {
                problems.push(format!("{verb}: force is {force:?} in docs/cli.md"));
            }
        }
        for verb in verbs.keys() {
            if !all.iter().any(|(v, _)| v == verb) {
                problems.push(format!("{verb}: in docs/cli.md but not a verb"));
            }
        }
        // The renamed spellings are hidden aliases of the new flag.
        for (path, old, new) in super::DEPRECATED {
            let verb = path.join(" ");
            let c = &all.iter().find(|(v, _)| *v == verb).expect(&verb).1;
            let arg = c
                .get_arguments()
                .find(|a| a.get_long() == new.strip_prefix("--"))
                .unwrap_or_else(|| panic!("{verb}: no {new}"));
            assert!(
                arg.get_all_aliases()
                    .unwrap_or_default()
                    .contains(&old.trim_start_matches("--")),
                "{verb}: {old} is not an alias of {new}"
            );
            assert!(
                doc.contains(&format!("| `{verb}` | `{old}` |")),
                "{verb} {old} undocumented"
            );
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_renamed_spelling_is_noticed_only_on_its_own_verb() {
        let notes = |line: &str| {
            let args: Vec<String> = line.split_whitespace().map(String::from).collect();
            super::deprecation_notes(&args)
        };
        assert_eq!(notes("key gen --alg ed25519 --out k").len(), 1);
        assert_eq!(notes("sign -k k.key --out=x f").len(), 1);
        assert!(notes("sign -k k.key --output x f").is_empty());
        assert!(notes("audit init --dir d").is_empty());
        assert!(notes("encrypt -o x -- --out").is_empty());
        assert!(notes("ca init --dir CA")[0].contains("--dir is now --ca"));
    }

    #[test]
    fn messages_cannot_drive_the_terminal() {
        assert_eq!(
            super::printable("a\x1b[2K\rOK\u{202e}x \u{e9}\u{4e2d}"),
            "a\\u{1b}[2K\\u{d}OK\\u{202e}x \u{e9}\u{4e2d}"
        );
    }
}
