//! `citadel sign` and `citadel verify`.

use crate::VerificationFailed;
use crate::files::PassphraseArgs;
use crate::files::{print_json, read_input, write_output};
use crate::key_cmd::{load_private_key, load_public_key};
use anyhow::{Context, Result, bail};
use citadel_artifact::{Envelope, Manifest};
use citadel_crypto::PrivateKey;
use citadel_crypto::purpose::Purpose;
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct SignArgs {
    /// Private signing key (PKCS#8 PEM: ML-DSA, SLH-DSA or Ed25519).
    #[arg(long, short = 'k')]
    key: PathBuf,
    /// Files or directories to sign. A file gets FILE.sig (raw signature
    /// bytes); a directory gets DIR.sig beside it (a DSSE envelope over an
    /// in-toto statement of every file's SHA-256 and executable bit).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Extra context, added to the signing purpose Citadel always uses
    /// (`citadel-file-v1/CONTEXT`, `citadel-dsse-v1/CONTEXT`; at most 239
    /// bytes).
    #[arg(long, short = 'c', default_value = "")]
    context: String,
    /// Where to write the signature (only with a single input; never inside
    /// a directory being signed).
    #[arg(long, short = 'o', alias = "out", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace signature files that exist.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    pass: PassphraseArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// Public key (SPKI PEM), or the private key file.
    #[arg(long = "pub", value_name = "FILE")]
    public: PathBuf,
    /// The signature (default: PATH.sig, beside the signed file or directory).
    #[arg(long, short = 's')]
    sig: Option<PathBuf>,
    /// The signed file or directory.
    path: PathBuf,
    /// The extra context given when signing.
    #[arg(long, short = 'c', default_value = "")]
    context: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Where a signature goes by default: `PATH.sig`, beside the signed path.
/// A directory named by `.`, `..` or a path ending in them is first
/// resolved, so its signature lands beside it, never inside the tree.
fn sig_path(path: &Path) -> Result<PathBuf> {
    let trimmed = path.components().as_path();
    let named = matches!(
        trimmed.components().next_back(),
        Some(std::path::Component::Normal(_))
    );
    let base = if named {
        trimmed.to_path_buf()
    } else {
        std::fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    if base.file_name().is_none() {
        bail!(
            "{} has no name to put a signature beside; name one with -o FILE (outside the tree)",
            path.display()
        );
    }
    let mut s = base.into_os_string();
    s.push(".sig");
    Ok(PathBuf::from(s))
}

/// Refuses to write a directory's signature inside the directory: the
/// tree would then never match its own signature.
fn check_outside(dir: &Path, out: &Path) -> Result<()> {
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // The output's directory, or where the output itself leads if it
    // exists (a link planted at DIR.sig pointing into the tree). Judged by
    // device and inode, so another path to the same tree (a bind mount)
    // is inside too.
    let id = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
    };
    let tree = id(&dir);
    let inside = |p: &Path| {
        std::fs::canonicalize(p).is_ok_and(|c| {
            c.starts_with(&dir) || c.ancestors().any(|a| tree.is_some() && id(a) == tree)
        })
    };
    if inside(parent) || (out.symlink_metadata().is_ok() && inside(out)) {
        bail!(
            "{} is inside the directory being signed, which would then never match its signature; write it elsewhere with -o FILE",
            out.display()
        );
    }
    Ok(())
}

fn root_name(path: &Path) -> String {
    std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| ".".into())
}

/// A path as it may be shown on a terminal (escaped).
fn shown_path(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    citadel_artifact::shown(p.as_os_str().as_bytes())
}

pub(crate) fn sign(a: SignArgs) -> Result<()> {
    if a.output.is_some() && a.paths.len() != 1 {
        bail!("--output can only be used with a single input");
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
    // Every output is settled and checked before anything is written: no
    // signature of this call may land inside a directory it signs (which
    // would then never match), whichever order they are named in.
    let mut plan = Vec::with_capacity(a.paths.len());
    for path in &a.paths {
        // `-` is standard input, never a file of that name (use ./-).
        let stdin = path == Path::new("-");
        let is_dir = !stdin
            && std::fs::metadata(path)
                .with_context(|| format!("cannot read {}", shown_path(path)))?
                .is_dir();
        let out = match (&a.output, stdin) {
            (Some(o), _) => o.clone(),
            (None, true) => {
                bail!("signing standard input needs -o FILE (or -o - for standard output)")
            }
            (None, false) => sig_path(path)?,
        };
        let to_stdout = crate::files::is_stdout(&out);
        if !to_stdout {
            crate::files::check_free(&out, a.force)?;
        }
        if let Some(&(other, ..)) = plan.iter().find(|(_, _, o, _)| *o == out) {
            if other == path {
                continue; // named twice: signed once
            }
            bail!(
                "{} and {} would both write {}; sign them in two calls, or name outputs with -o",
                shown_path(other),
                shown_path(path),
                shown_path(&out)
            );
        }
        plan.push((path, is_dir, out, to_stdout));
    }
    // No output may be the key or an input of this call, even with
    // --force: the signature would replace what it signs.
    for (_, _, out, _) in plan.iter().filter(|p| !p.3) {
        for other in a.paths.iter().chain(std::iter::once(&a.key)) {
            if same_file(out, other) {
                bail!(
                    "{} is also {} of this call; write the signature elsewhere",
                    shown_path(out),
                    if other == &a.key {
                        "the signing key"
                    } else {
                        "an input"
                    }
                );
            }
        }
    }
    for (dir, _, _, _) in plan.iter().filter(|p| p.1) {
        for (_, _, out, to_stdout) in &plan {
            if !to_stdout {
                check_outside(dir, out)?;
            }
        }
    }
    let mut results = Vec::new();
    let mut printed = false;
    for (path, is_dir, out, to_stdout) in plan {
        printed |= to_stdout;
        if is_dir {
            let manifest = Manifest::from_dir(path)?;
            let statement = manifest.to_statement(&root_name(path));
            let env = Envelope::sign(&statement, &key, &keyid, ctx)?;
            emit(&out, to_stdout, &env.to_json(), a.force)?;
            results.push(
                json!({"path": path.display().to_string(), "signature": out.display().to_string(),
                                "kind": "directory", "files": manifest.files.len()}),
            );
        } else {
            // ML-DSA streams the file (memory stays flat for any size).
            let mut file = open_input(path)?;
            let sig = Purpose::FILE
                .sign_reader(&key, ctx, &mut file)
                .map_err(stream_error)?;
            emit(&out, to_stdout, &sig, a.force)?;
            results.push(
                json!({"path": path.display().to_string(), "signature": out.display().to_string(),
                                "kind": "file", "bytes": sig.len()}),
            );
        }
    }
    // Standard output carries the signature itself when it was asked for:
    // nothing else is printed there.
    if printed {
        return Ok(());
    }
    if a.json {
        print_json(
            &json!({"algorithm": key.algorithm().name(), "key_fingerprint": keyid, "signed": results}),
        );
    } else {
        for r in &results {
            crate::say!(
                "signed {} -> {}",
                shown_path(Path::new(r["path"].as_str().unwrap_or_default())),
                shown_path(Path::new(r["signature"].as_str().unwrap_or_default()))
            );
        }
    }
    Ok(())
}

/// Whether `a` and `b` name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Writes a signature to its file, or to standard output.
fn emit(out: &Path, to_stdout: bool, bytes: &[u8], force: bool) -> Result<()> {
    if to_stdout {
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        return o
            .write_all(bytes)
            .and_then(|()| o.flush())
            .context("cannot write the signature to standard output");
    }
    write_output(out, bytes, false, force)
}

/// Why a signature that Citadel made before signing purposes were
/// separated is refused.
const UNSEPARATED: &str = "made by a Citadel release before signing purposes were separated, when a file's signature could pose as a directory's; it is no longer accepted: sign again with this release";

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
    // `-` is standard input, never a file of that name (use ./-).
    let stdin = a.path == Path::new("-");
    let sig_file = match (&a.sig, stdin) {
        (Some(s), _) => s.clone(),
        (None, true) => bail!("verifying standard input needs --sig FILE"),
        (None, false) => sig_path(&a.path)?,
    };
    if stdin && sig_file == Path::new("-") {
        bail!("the data and the signature cannot both come from standard input");
    }
    let sig = read_signature(&sig_file)?;
    let ctx = a.context.as_bytes();
    if !stdin
        && std::fs::metadata(&a.path)
            .with_context(|| format!("cannot read {}", shown_path(&a.path)))?
            .is_dir()
    {
        return verify_dir(&a, &vk, &sig, &sig_file);
    }
    let mut file = open_input(&a.path)?;
    match Purpose::FILE
        .verify_reader(&vk, ctx, &mut file, &sig)
        .map_err(stream_error)
    {
        Ok(()) => {
            if a.json {
                print_json(
                    &json!({"valid": true, "algorithm": vk.algorithm().name(), "path": a.path.display().to_string()}),
                );
            } else {
                crate::say!(
                    "OK: {} ({} signature valid)",
                    shown_path(&a.path),
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
            // Standard input cannot be read twice.
            let unseparated = a.path != Path::new("-")
                && open_input(&a.path)
                    .is_ok_and(|mut f| vk.verify_reader(&mut f, ctx, &sig).is_ok());
            Err(VerificationFailed(if unseparated {
                format!("{}: the signature was {UNSEPARATED}", shown_path(&a.path))
            } else {
                format!(
                    "{}: signature verification failed (the file, the signature, the key or the context differ from what was signed)",
                    shown_path(&a.path)
                )
            })
            .into())
        }
        Err(e) => Err(e),
    }
}

fn verify_dir(
    a: &VerifyArgs,
    vk: &citadel_crypto::sig::VerifyingKey,
    sig: &[u8],
    sig_file: &Path,
) -> Result<()> {
    let ctx = a.context.as_bytes();
    let env = Envelope::from_json(sig)
        .with_context(|| format!("{} is not a directory signature", sig_file.display()))?;
    let payload = match env.verify(vk, ctx) {
        Ok(p) => p,
        Err(citadel_artifact::Error::Crypto(_)) => {
            let why = if env.signed_before_purposes(vk, ctx) {
                UNSEPARATED
            } else {
                "not valid for this key and context"
            };
            return Err(VerificationFailed(format!(
                "{}: the manifest signature is {why}",
                shown_path(&a.path)
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let (signed, root) = Manifest::from_statement(&payload)?;
    let diff = Manifest::diff_dir(&a.path, &signed)?;
    if a.json {
        print_json(&json!({"valid": diff.is_empty(), "signature_valid": true,
            "algorithm": vk.algorithm().name(), "root": root, "files": signed.files.len(),
            "added": diff.added, "removed": diff.removed, "modified": diff.modified,
            "mode_changed": diff.mode_changed, "not_regular": diff.not_regular}));
    }
    if !diff.is_empty() {
        let lists = [
            ("added", &diff.added),
            ("removed", &diff.removed),
            ("modified", &diff.modified),
            ("executable bit changed", &diff.mode_changed),
            ("not a regular file (never covered)", &diff.not_regular),
        ];
        let mut counts = Vec::new();
        for (label, list) in lists {
            if list.is_empty() {
                continue;
            }
            counts.push(format!("{} {label}", list.len()));
            // One escaped name per line: no name can forge another line.
            if !a.json {
                for name in list {
                    eprintln!("{label}: {}", citadel_artifact::shown(name.as_bytes()));
                }
            }
        }
        return Err(VerificationFailed(format!(
            "{} does not match its signed manifest ({})",
            shown_path(&a.path),
            counts.join(", ")
        ))
        .into());
    }
    if !a.json {
        crate::say!(
            "OK: {} ({} files, signed as {}, {} signature valid)",
            shown_path(&a.path),
            signed.files.len(),
            citadel_artifact::shown(root.as_bytes()),
            vk.algorithm()
        );
    }
    Ok(())
}

/// The largest signature file read (a DSSE envelope with many signatures).
const MAX_SIGNATURE: u64 = 16 << 20;

/// Reads a signature: standard input for `-`, else a regular file, opened
/// without blocking (a FIFO planted at the default path is refused, not
/// waited on) and bounded in size.
fn read_signature(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    if path == Path::new("-") {
        return read_input(path);
    }
    let shown = shown_path(path);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .with_context(|| format!("cannot read {shown}"))?;
    let meta = f
        .metadata()
        .with_context(|| format!("cannot read {shown}"))?;
    if !meta.is_file() {
        bail!(
            "{shown} is not a regular file; a signature is read from a file (or - for standard input)"
        );
    }
    if meta.len() > MAX_SIGNATURE {
        bail!(
            "{shown} is larger than a signature can be ({} bytes)",
            MAX_SIGNATURE
        );
    }
    let mut v = Vec::new();
    f.take(MAX_SIGNATURE + 1)
        .read_to_end(&mut v)
        .with_context(|| format!("cannot read {shown}"))?;
    Ok(v)
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
