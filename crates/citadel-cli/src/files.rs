//! Reading inputs and writing outputs safely.

use anyhow::{Context, Result, bail};
use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// The files this run reads (device and inode): no output may replace
/// one, `--force` or not (a key, a passphrase file, the data itself).
static INPUTS: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());

/// Records `path` as something this run reads.
pub(crate) fn note_input(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = fs::metadata(path)
        && m.is_file()
    {
        INPUTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((m.dev(), m.ino()));
    }
}

/// Whether `path` is a file this run reads.
fn is_input(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).is_ok_and(|m| {
        INPUTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(m.dev(), m.ino()))
    })
}

/// Whether `out` names standard output: `-`, or the very file standard
/// output is (`/dev/stdout`, `/dev/fd/1`, a file it is redirected to).
pub(crate) fn is_stdout(out: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if out == Path::new("-") {
        return true;
    }
    let Ok(st) = rustix::fs::fstat(io::stdout()) else {
        return false;
    };
    fs::metadata(out).is_ok_and(|m| m.dev() == st.st_dev && m.ino() == st.st_ino)
}

/// The process's umask (read once).
pub(crate) fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        rustix::process::umask(old);
        old.as_raw_mode()
    })
}

/// Reads a whole file, or stdin for `-`.
pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut v = Vec::new();
        io::stdin()
            .read_to_end(&mut v)
            .context("cannot read standard input")?;
        return Ok(v);
    }
    note_input(path);
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads a text file (keys, recipients).
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = read_input(path)?;
    String::from_utf8(bytes).with_context(|| format!("{} is not a text file", path.display()))
}

/// A file being written under a temporary name beside its destination; it
/// appears under the final name only when [`AtomicFile::commit`] succeeds
/// (written, fsynced, renamed). Dropped uncommitted, it is removed.
///
/// A destination that exists and is not a regular file (`/dev/null`, a
/// FIFO, a terminal) is written directly: there is nothing to rename over.
/// A symbolic link to a regular file is followed, so the link survives.
pub(crate) struct AtomicFile {
    file: Option<tempfile::NamedTempFile>,
    direct: Option<Box<dyn Write + Send>>,
    dest: PathBuf,
    /// Whether the rename may replace a file already at `dest`.
    replace: bool,
    /// The mode the file gets when it is complete (it is 0600 until then).
    mode: u32,
}

/// What a verb says when its output exists and `--force` was not given.
fn exists(dest: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} already exists; pass --force to replace it",
        dest.display()
    )
}

impl AtomicFile {
    /// Writes all of `data` to `dest` (mode 0644) atomically.
    pub(crate) fn write_all(dest: &Path, data: &[u8]) -> Result<()> {
        let mut f = Self::create(dest, false)?;
        std::io::Write::write_all(&mut f, data)
            .with_context(|| format!("cannot write {}", dest.display()))?;
        f.commit()
    }

    /// Starts writing `dest`. `private` makes the file mode 0600.
    pub(crate) fn create(dest: &Path, private: bool) -> Result<Self> {
        let is_link = fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink());
        let private_dir = links_to_follow(dest)?;
        // A device or FIFO (`-o /dev/stdout`) is written to as it is,
        // unless it is reached through a link that is not followed.
        let special = if is_link && !private_dir {
            None
        } else {
            fs::metadata(dest).ok().filter(|m| !m.is_file())
        };
        if let Some(m) = special {
            use std::os::unix::fs::MetadataExt;
            let me = rustix::process::geteuid().as_raw();
            if !private_dir && m.uid() != me && m.uid() != 0 {
                bail!(
                    "{} is another user's FIFO or device in a directory others can write: not written to; write elsewhere",
                    dest.display()
                );
            }
            let f = fs::OpenOptions::new()
                .write(true)
                .open(dest)
                .with_context(|| format!("cannot open {} for writing", dest.display()))?;
            return Ok(Self {
                file: None,
                direct: Some(Box::new(f)),
                dest: dest.to_path_buf(),
                replace: true,
                mode: 0,
            });
        }
        let resolved;
        let dest = if is_link && private_dir {
            resolved = fs::canonicalize(dest)
                .with_context(|| format!("cannot resolve {}", dest.display()))?;
            resolved.as_path()
        } else {
            dest
        };
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        // Owner-only while incomplete (decrypted data not yet
        // authenticated); then 0600 for a private file, the mode of the file
        // it replaces, or 0666 less the umask, as `cp` or age would.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(file.path(), fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot set permissions on {}", file.path().display()))?;
        let mode = if private {
            0o600
        } else {
            match fs::metadata(dest) {
                Ok(m) if m.is_file() => m.permissions().mode() & 0o777,
                _ => 0o666 & !umask(),
            }
        };
        Ok(Self {
            file: Some(file),
            direct: None,
            dest: dest.to_path_buf(),
            replace: true,
            mode,
        })
    }

    /// Starts writing a verb's output file `dest`: unless `force`, a file
    /// already there is an error, now and again at the rename (which never
    /// replaces one that appeared meanwhile). A FIFO or device is written
    /// to as [`AtomicFile::create`] does.
    pub(crate) fn create_output(dest: &Path, private: bool, force: bool) -> Result<Self> {
        if is_stdout(dest) {
            return Ok(Self {
                file: None,
                direct: Some(Box::new(io::stdout())),
                dest: PathBuf::from("standard output"),
                replace: true,
                mode: 0,
            });
        }
        if is_input(dest) {
            bail!(
                "{} is also read by this command (a key, a passphrase file or its data): write elsewhere",
                dest.display()
            );
        }
        let mut f = Self::create(dest, private)?;
        if f.file.is_some() && !force {
            if fs::symlink_metadata(&f.dest).is_ok() {
                return Err(exists(&f.dest));
            }
            f.replace = false;
        }
        Ok(f)
    }

    /// Flushes, fsyncs and renames into place.
    pub(crate) fn commit(mut self) -> Result<()> {
        if let Some(mut f) = self.direct.take() {
            return f
                .flush()
                .with_context(|| format!("cannot write {}", self.dest.display()));
        }
        let Some(file) = self.file.take() else {
            bail!("internal: file already committed")
        };
        {
            use std::os::unix::fs::PermissionsExt;
            file.as_file()
                .set_permissions(fs::Permissions::from_mode(self.mode))
                .with_context(|| format!("cannot set permissions on {}", self.dest.display()))?;
        }
        file.as_file()
            .sync_all()
            .with_context(|| format!("cannot write {}", self.dest.display()))?;
        if self.replace {
            file.persist(&self.dest)
                .map_err(|e| e.error)
                .with_context(|| format!("cannot create {}", self.dest.display()))?;
        } else {
            match file.persist_noclobber(&self.dest) {
                Ok(_) => {}
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(exists(&self.dest));
                }
                Err(e) => {
                    return Err(e.error)
                        .with_context(|| format!("cannot create {}", self.dest.display()));
                }
            }
        }
        if let Some(dir) = self.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Make the rename itself durable.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match (&mut self.file, &mut self.direct) {
            (Some(f), _) => f.write(buf),
            (None, Some(d)) => d.write(buf),
            _ => Err(io::Error::other("file already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match (&mut self.file, &mut self.direct) {
            (Some(f), _) => f.flush(),
            (None, Some(d)) => d.flush(),
            _ => Ok(()),
        }
    }
}

/// Writes a verb's output file `data` to `dest` atomically; an existing
/// file is replaced only with `force`.
pub(crate) fn write_output(dest: &Path, data: &[u8], private: bool, force: bool) -> Result<()> {
    let mut f = AtomicFile::create_output(dest, private, force)?;
    f.write_all(data)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    f.commit()
}

/// Where a verb that prints a document may write it instead: `-o/--output
/// FILE` (atomically; an existing file only with `--force`).
#[derive(clap::Args)]
pub(crate) struct OutputArgs {
    /// Write to FILE instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Replace output files that exist.
    #[arg(long)]
    pub(crate) force: bool,
}

impl OutputArgs {
    /// Writes `bytes` to the output file, or to standard output.
    pub(crate) fn emit(&self, bytes: &[u8]) -> Result<()> {
        match &self.output {
            Some(p) => write_output(p, bytes, false, self.force),
            None => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)
                    .and_then(|()| out.flush())
                    .context("cannot write to standard output")
            }
        }
    }
}

/// Refuses `path` if a file is already there and `force` was not given.
pub(crate) fn check_free(path: &Path, force: bool) -> Result<()> {
    if !force && occupied(path) {
        return Err(exists(path));
    }
    Ok(())
}

/// Whether a file (or a link) is already at `path`: what `--force` would
/// replace. (A FIFO or device is written to, not replaced.)
pub(crate) fn occupied(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| {
        m.is_file() || (m.is_symlink() && fs::metadata(path).map_or(true, |t| t.is_file()))
    }) && !is_stdout(path)
}

/// Refuses to overwrite an existing file unless `force`.
pub(crate) fn check_new(path: &Path, force: bool) -> Result<()> {
    if !force && path.exists() {
        bail!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        );
    }
    Ok(())
}

/// Where a passphrase comes from (shared by every verb that takes one).
#[derive(clap::Args)]
pub(crate) struct PassphraseArgs {
    /// Passphrase: the first line of FILE (to unlock an encrypted key, or to
    /// protect or encrypt with one).
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Passphrase: the value of environment variable VAR.
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_file")]
    pub(crate) passphrase_env: Option<String>,
    /// Passphrase: asked on the terminal, input hidden (twice when it
    /// protects something new). Without any of these, a passphrase that is
    /// needed is asked for whenever there is a terminal.
    #[arg(
        short = 'p',
        long,
        conflicts_with_all = ["passphrase_file", "passphrase_env"]
    )]
    pub(crate) passphrase: bool,
}

/// Whether a passphrase may be asked for unprompted: standard input is a
/// terminal (someone is there), and `/dev/tty` opens. (With `-p` it is
/// asked through `/dev/tty` whatever standard input is.)
fn have_terminal() -> bool {
    io::stdin().is_terminal()
        && fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .is_ok()
}

/// Asks for a passphrase on the terminal, input hidden.
fn ask(prompt: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let line = zeroize::Zeroizing::new(
        rpassword::prompt_password(prompt)
            .context("cannot ask for the passphrase: no terminal (give --passphrase-file FILE or --passphrase-env VAR)")?,
    );
    if line.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(zeroize::Zeroizing::new(line.as_bytes().to_vec()))
}

impl PassphraseArgs {
    /// The passphrase from --passphrase-file or --passphrase-env, if given.
    fn given(&self) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        passphrase(
            self.passphrase_file.as_deref(),
            self.passphrase_env.as_deref(),
        )
    }

    /// A passphrase that opens something (`what`: a key, a file): from a
    /// file or variable, or asked once on the terminal with `-p`, or when
    /// `needed` and there is one.
    pub(crate) fn read(
        &self,
        what: &str,
        needed: bool,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        if let Some(p) = self.given()? {
            return Ok(Some(p));
        }
        if self.passphrase || (needed && have_terminal()) {
            return ask(&format!("Passphrase for {what} (input hidden): ")).map(Some);
        }
        Ok(None)
    }

    /// A passphrase that protects something new (`what`): from a file or
    /// variable, or, with `-p`, asked twice on the terminal (the two must
    /// match).
    pub(crate) fn read_new(&self, what: &str) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        if let Some(p) = self.given()? {
            return Ok(Some(p));
        }
        if !self.passphrase {
            return Ok(None);
        }
        let first = ask(&format!("New passphrase for {what} (input hidden): "))?;
        let again = ask("The same passphrase again: ")?;
        if first.as_slice() != again.as_slice() {
            bail!("the two passphrases differ; nothing was written");
        }
        Ok(Some(first))
    }
}

/// Reads a passphrase from `--passphrase-file` or `--passphrase-env`.
pub(crate) fn passphrase(
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
    if let Some(path) = file {
        let text = zeroize::Zeroizing::new(read_text(path)?);
        let line = text.lines().next().unwrap_or("").to_string();
        if line.is_empty() {
            bail!("the passphrase file {} is empty", path.display());
        }
        return Ok(Some(zeroize::Zeroizing::new(line.into_bytes())));
    }
    if let Some(var) = env {
        let Ok(v) = std::env::var(var) else {
            bail!("environment variable {var} is not set (or not UTF-8)");
        };
        if v.is_empty() {
            bail!("environment variable {var} is empty");
        }
        return Ok(Some(zeroize::Zeroizing::new(v.into_bytes())));
    }
    Ok(None)
}

/// Whether progress bars should be drawn.
pub(crate) fn show_progress(quiet: bool) -> bool {
    !quiet && io::stderr().is_terminal()
}

/// Prints JSON on stdout.
pub(crate) fn print_json(v: &serde_json::Value) {
    crate::out!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Whether someone other than this user (or root) can change the entries
/// of the directory `meta` describes: its owner, or anyone when it is
/// group- or world-writable (`/tmp`, sticky or not).
fn others_can_write(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    (meta.uid() != me && meta.uid() != 0) || meta.mode() & 0o022 != 0
}

/// The links on the way to `dest` that may be followed: a symbolic link in
/// a directory someone else can write (planted there, or swapped in at any
/// moment) is never followed. Returns whether `dest` itself, if a link, is
/// followed; when not, the output replaces the link (it is renamed over)
/// and never writes through it. A link on the way to its directory in
/// such a place is refused.
fn links_to_follow(dest: &Path) -> Result<bool> {
    let abs = if dest.is_absolute() {
        dest.to_path_buf()
    } else {
        std::env::current_dir()
            .context("cannot read the current directory")?
            .join(dest)
    };
    let parent_of = |p: &Path| -> Result<bool> {
        let parent = p.parent().unwrap_or(Path::new("/"));
        let m = fs::metadata(parent).with_context(|| {
            format!(
                "cannot write {}: cannot reach its directory {}",
                dest.display(),
                parent.display()
            )
        })?;
        Ok(others_can_write(&m))
    };
    let mut ancestors: Vec<&Path> = abs.ancestors().skip(1).collect();
    ancestors.pop(); // the root
    for a in ancestors.into_iter().rev() {
        if fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()) && parent_of(a)? {
            bail!(
                "{} is a symbolic link in a directory others can write: not followed; write elsewhere",
                a.display()
            );
        }
    }
    Ok(!parent_of(&abs)?)
}
