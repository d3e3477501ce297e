//! `citadel encrypt` and `citadel decrypt`: the age v1 format.

use crate::files::PassphraseArgs;
use crate::files::{self, AtomicFile, read_text, show_progress};
use anyhow::{Context, Result, bail};
use citadel_age::{Identity, Recipient};
use citadel_crypto::secret::SecretBytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub(crate) struct EncryptArgs {
    /// Encrypt to this recipient (age1pq1… post-quantum, or age1… X25519). Repeatable.
    #[arg(short = 'r', long = "recipient")]
    recipients: Vec<String>,
    /// Encrypt to the recipients listed in FILE, one per line. Repeatable.
    #[arg(short = 'R', long = "recipients-file")]
    recipients_files: Vec<PathBuf>,
    #[command(flatten)]
    pass: PassphraseArgs,
    /// ASCII-armor the output (PEM).
    #[arg(short = 'a', long)]
    armor: bool,
    #[command(flatten)]
    io: StreamArgs,
}

#[derive(Args)]
pub(crate) struct DecryptArgs {
    /// Identity file (AGE-SECRET-KEY-PQ-1… or AGE-SECRET-KEY-1… lines). Repeatable.
    #[arg(short = 'i', long = "identity")]
    identities: Vec<PathBuf>,
    #[command(flatten)]
    pass: PassphraseArgs,
    #[command(flatten)]
    io: StreamArgs,
}

/// Input, output and reporting options shared by `encrypt` and `decrypt`.
#[derive(Args)]
pub(crate) struct StreamArgs {
    /// Output file (default: standard output). Written under a temporary name
    /// and renamed only when complete (for `decrypt`: fully verified).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long, requires = "output")]
    force: bool,
    /// Input file (default: standard input).
    input: Option<PathBuf>,
    /// Print a JSON summary (requires -o).
    #[arg(long, requires = "output")]
    json: bool,
}

impl StreamArgs {
    /// Runs `f` from the input to the output with a progress bar; the
    /// output file appears only if `f` succeeds. Returns the byte count and
    /// the time taken.
    fn run(
        &self,
        what: &str,
        f: impl FnOnce(
            indicatif::ProgressBarIter<Box<dyn Read + Send>>,
            &mut Box<dyn Write + '_>,
        ) -> Result<u64>,
    ) -> Result<(u64, Instant)> {
        let (input, len) = open_input(self.input.as_deref())?;
        let pb = progress(len, crate::quiet(), what);
        let input = pb.wrap_read(input);
        let start = Instant::now();
        // No BufWriter: the library writes whole 64 KiB chunks.
        let n = match &self.output {
            Some(out) => {
                let mut file = AtomicFile::create_output(out, false, self.force)?;
                let n = f(input, &mut (Box::new(&mut file) as Box<dyn Write>))?;
                file.commit()?;
                n
            }
            None => {
                let mut out: Box<dyn Write> = Box::new(StdoutEnds(io::stdout().lock()));
                let n = f(input, &mut out)?;
                out.flush()?;
                n
            }
        };
        pb.finish_and_clear();
        Ok((n, start))
    }
}

fn open_input(path: Option<&Path>) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
    match path {
        Some(p) if p != Path::new("-") => {
            crate::files::note_input(p);
            let f = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            let len = f.metadata().ok().map(|m| m.len());
            Ok((Box::new(f), len))
        }
        _ => Ok((Box::new(io::stdin()), None)),
    }
}

/// Standard output for data: a reader that went away (`| head`) ends the
/// run quietly, as [`crate::out!`] does, instead of an I/O error.
struct StdoutEnds<W>(W);

impl<W: Write> Write for StdoutEnds<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).inspect_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                crate::stdout_failed(e);
            }
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().inspect_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                crate::stdout_failed(e);
            }
        })
    }
}

fn progress(len: Option<u64>, quiet: bool, what: &str) -> ProgressBar {
    if !show_progress(quiet) {
        return ProgressBar::hidden();
    }
    let pb = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

pub(crate) fn encrypt(a: EncryptArgs) -> Result<()> {
    let mut recipients = Vec::new();
    for r in &a.recipients {
        recipients.push(Recipient::parse(r)?);
    }
    for f in &a.recipients_files {
        let text = read_text(f)?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            recipients.push(Recipient::parse(line).with_context(|| format!("in {}", f.display()))?);
        }
    }
    if let Some(pass) = a.pass.read_new("the encrypted file")? {
        if !recipients.is_empty() {
            bail!("a passphrase cannot be combined with recipients");
        }
        recipients.push(Recipient::Scrypt {
            passphrase: SecretBytes::from_slice(&pass),
            work_factor: 18,
        });
    }
    if recipients.is_empty() {
        bail!("no recipients: pass -r RECIPIENT, -R FILE, or -p for a passphrase");
    }
    if a.io.output.is_none() && !a.armor && io::stdout().is_terminal() {
        bail!("refusing to write binary ciphertext to a terminal; use -o FILE or -a");
    }
    let (n, start) = a.io.run("encrypting", |input, output| {
        Ok(citadel_age::encrypt(&recipients, input, output, a.armor)?)
    })?;
    if a.io.json {
        summary(
            n,
            start,
            a.io.output.as_deref(),
            Some(recipients.iter().all(Recipient::is_post_quantum)),
        );
    }
    Ok(())
}

fn summary(bytes: u64, start: Instant, out: Option<&Path>, pq: Option<bool>) {
    let secs = start.elapsed().as_secs_f64();
    files::print_json(&json!({
        "bytes": bytes,
        "seconds": secs,
        "mb_per_s": if secs > 0.0 { bytes as f64 / 1e6 / secs } else { 0.0 },
        "output": out.map(|p| p.display().to_string()),
        "post_quantum": pq,
    }));
}

pub(crate) fn decrypt(a: DecryptArgs) -> Result<()> {
    let mut ids = Vec::new();
    for f in &a.identities {
        let text = zeroize::Zeroizing::new(read_text(f)?);
        ids.extend(Identity::parse_file(&text).with_context(|| format!("in {}", f.display()))?);
    }
    // No identity given: the file is taken to be passphrase-encrypted, and
    // the passphrase asked for on a terminal, as age does.
    let by_passphrase = ids.is_empty();
    if let Some(pass) = a.pass.read("the encrypted file", by_passphrase)? {
        ids.push(Identity::Scrypt(SecretBytes::from_slice(&pass)));
    }
    if ids.is_empty() {
        bail!(
            "no identities: pass -i IDENTITY_FILE, or for a passphrase-encrypted file -p, --passphrase-file FILE or --passphrase-env VAR"
        );
    }
    let what = if a.identities.is_empty() {
        "the passphrase does not open this file"
    } else if ids.len() > a.identities.len() {
        "neither the identities given (-i) nor the passphrase open this file"
    } else {
        "none of the identities given (-i) opens this file"
    };
    // Plaintext goes to a temporary file that is renamed only after the
    // last chunk verified; on any error it is deleted.
    let (n, start) = a.io.run("decrypting", |input, output| {
        citadel_age::decrypt(&ids, input, output).map_err(|e| match e {
            citadel_age::Error::NoMatch => anyhow::Error::new(e).context(what),
            e => e.into(),
        })
    })?;
    if a.io.json {
        summary(n, start, a.io.output.as_deref(), None);
    }
    Ok(())
}
