//! The file a `file` device appends its JSON lines to: opened without
//! following a symbolic link at its name, refused unless it is a regular
//! file on a disk (not `/proc` or `/sys`) without an execute, setuid or
//! setgid bit, created with the device's mode (an existing file's mode is
//! left alone), written by group (one write and one `fdatasync` per
//! commit), and reopened on request (after a log rotation moved it).

use rustix::fs::{Mode, OFlags};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A JSON-lines file being appended to.
pub(super) struct LinesFile {
    /// The configured directory the file lies below.
    root: PathBuf,
    path: PathBuf,
    mode: Option<u32>,
    file: File,
    /// Lines not yet written.
    buf: Vec<u8>,
}

/// Why a symbolic link at the path is refused.
fn link_refused(shown: &std::path::Display<'_>) -> String {
    format!("{shown} is a symbolic link; give the path of the file it points to")
}

/// Why a directory at the path is refused.
fn dir_refused(shown: &std::path::Display<'_>) -> String {
    format!(
        "{shown} is a directory; a file device writes one file (type citadel takes a log directory)"
    )
}

/// Opens (creating) `path`, which lies below the directory `root`, for
/// appending; a new file gets `mode` (0600 without one). Every component
/// below `root` is opened without following a symbolic link (missing
/// directories are created, 0700, as Vault's), so no link, made before or
/// after the device was enabled, leads out of `root`.
fn open(root: &Path, path: &Path, mode: Option<u32>) -> Result<File, String> {
    let shown = path.display();
    let outside = |why: &str| {
        format!(
            "{shown} leads outside the directories file audit devices may write in ({}: {why})",
            root.display()
        )
    };
    let rel = path
        .strip_prefix(root)
        .map_err(|_| outside("not below it"))?;
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => names.push(n),
            _ => return Err(outside("'..' or '.' in the path")),
        }
    }
    let Some((name, dirs)) = names.split_last() else {
        return Err(dir_refused(&shown));
    };
    let dir_flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open(root, dir_flags, Mode::empty()).map_err(|e| {
        format!(
            "cannot open {}: {}",
            root.display(),
            std::io::Error::from(e)
        )
    })?;
    for d in dirs {
        let below = |dir: &std::os::fd::OwnedFd| {
            rustix::fs::openat(dir, *d, dir_flags | OFlags::NOFOLLOW, Mode::empty())
        };
        dir = match below(&dir) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(&dir, *d, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => {
                        return Err(format!(
                            "cannot create a directory of {shown}: {}",
                            std::io::Error::from(e)
                        ));
                    }
                }
                below(&dir).map_err(|e| {
                    format!(
                        "cannot open a directory of {shown}: {}",
                        std::io::Error::from(e)
                    )
                })?
            }
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                return Err(outside("a component is a symbolic link or not a directory"));
            }
            Err(e) => {
                return Err(format!(
                    "cannot open a directory of {shown}: {}",
                    std::io::Error::from(e)
                ));
            }
        };
    }
    // Judged before it is opened too, so that opening a device node or a
    // FIFO has no effect (the opened handle is judged again below).
    match rustix::fs::statat(&dir, *name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::Symlink => return Err(link_refused(&shown)),
            rustix::fs::FileType::Directory => return Err(dir_refused(&shown)),
            rustix::fs::FileType::RegularFile => {}
            _ => return Err(format!("{shown} is not a regular file")),
        },
        Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(format!("cannot read {shown}: {}", std::io::Error::from(e))),
    }
    let create_mode = match mode {
        Some(m) if m != 0 => m,
        _ => 0o600,
    };
    let fd = rustix::fs::openat(
        &dir,
        *name,
        OFlags::RDWR
            | OFlags::APPEND
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::NOCTTY
            | OFlags::CLOEXEC,
        Mode::from_raw_mode(create_mode),
    )
    .map_err(|e| match e {
        // Swapped in after the check above.
        rustix::io::Errno::LOOP => link_refused(&shown),
        rustix::io::Errno::ISDIR => dir_refused(&shown),
        e => format!("cannot open {shown}: {}", std::io::Error::from(e)),
    })?;
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::PermissionsExt;
    if meta.nlink() > 1 {
        return Err(format!(
            "{shown} has other hard links; an audit device appends only to a file of its own"
        ));
    }
    if meta.permissions().mode() & 0o6111 != 0 {
        return Err(format!(
            "{shown} is executable (or setuid/setgid); an audit device never appends to a program"
        ));
    }
    // Kernel interfaces whose files look regular but are not storage:
    // proc, sysfs, cgroup, cgroup2, debugfs, tracefs, securityfs, bpf,
    // configfs, efivarfs.
    const PSEUDO: [i64; 10] = [
        0x9fa0,
        0x6265_6572,
        0x0027_e0eb,
        0x6367_7270,
        0x6462_6720,
        0x7472_6163,
        0x7363_6673,
        0xcafe_4a11,
        0x6265_6570,
        0xde5e_81e4,
    ];
    let fs = rustix::fs::fstatfs(&file)
        .map_err(|e| format!("cannot read {shown}: {}", std::io::Error::from(e)))?;
    #[allow(clippy::unnecessary_cast)]
    if PSEUDO.contains(&(fs.f_type as i64)) {
        return Err(format!("{shown} is not on a disk (/proc or /sys)"));
    }
    // A line cut short (a crash, a full disk) is ended, so the next entry
    // starts a line of its own.
    let len = meta.len();
    if len > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if last[0] != b'\n' {
            (&file)
                .write_all(b"\n")
                .map_err(|e| format!("cannot write {shown}: {e}"))?;
        }
    }
    // What a commit does, tried once now: a file that cannot be made
    // durable is refused when the device is enabled, not on the first
    // request.
    file.sync_data()
        .map_err(|e| format!("cannot sync {shown}: {e}"))?;
    Ok(file)
}

impl LinesFile {
    /// Opens `path` (see [`open`]).
    pub(super) fn open(root: &Path, path: &Path, mode: Option<u32>) -> Result<Self, String> {
        Ok(Self {
            file: open(root, path, mode)?,
            root: root.to_path_buf(),
            path: path.to_path_buf(),
            mode,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Queues one line (a newline is added).
    pub(super) fn push(&mut self, line: &[u8]) {
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
    }

    /// Whether lines wait to be written.
    pub(super) fn pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes the queued lines and makes them durable.
    pub(super) fn commit(&mut self) -> Result<(), String> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let shown = self.path.display();
        // Lines that could not be written are dropped with the error: their
        // requests are refused.
        let written = (&self.file).write_all(&self.buf);
        self.buf.clear();
        written.map_err(|e| format!("cannot write {shown}: {e}"))?;
        self.file
            .sync_data()
            .map_err(|e| format!("cannot sync {shown}: {e}"))
    }

    /// Commits, then opens the file at the path again (after a log
    /// rotation renamed it, or to recover from a failure).
    pub(super) fn reopen(&mut self) -> Result<(), String> {
        let committed = self.commit();
        self.file = open(&self.root, &self.path, self.mode)?;
        committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_durably_and_a_cut_line_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/audit.log");
        let mut f = LinesFile::open(dir.path(), &p, None).unwrap();
        f.push(b"{\"a\":1}");
        assert!(f.pending());
        f.commit().unwrap();
        assert!(!f.pending());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A crash cut the next line short.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"cut")
            .unwrap();
        let mut f = LinesFile::open(dir.path(), &p, Some(0o640)).unwrap();
        f.push(b"{\"b\":2}");
        f.commit().unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"a\":1}\n{\"cut\n{\"b\":2}\n"
        );
        // An existing file's mode is left alone.
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Rotation: the old file moved away; reopen starts a new one.
        std::fs::rename(&p, dir.path().join("sub/audit.log.1")).unwrap();
        f.push(b"{\"c\":3}");
        f.reopen().unwrap();
        f.push(b"{\"d\":4}");
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"d\":4}\n");
        assert!(
            std::fs::read_to_string(dir.path().join("sub/audit.log.1"))
                .unwrap()
                .ends_with("{\"c\":3}\n")
        );
    }

    /// Found by helper-24: a directory below the allowed one swapped for a
    /// link after the device was enabled led the reopen (SIGHUP, unseal)
    /// outside; a hard link inside appended to a file outside.
    #[test]
    fn no_link_below_the_root_leads_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let p = root.join("sub/x.log");
        let mut f = LinesFile::open(&root, &p, None).unwrap();
        std::fs::rename(root.join("sub"), root.join("sub.old")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
        let e = f.reopen().unwrap_err();
        assert!(e.contains("leads outside"), "{e}");
        let e = LinesFile::open(&root, &p, None).err().unwrap();
        assert!(e.contains("leads outside"), "{e}");
        assert!(!outside.join("x.log").exists());
        std::fs::write(outside.join("target.log"), b"").unwrap();
        std::fs::hard_link(outside.join("target.log"), root.join("hard.log")).unwrap();
        let e = LinesFile::open(&root, &root.join("hard.log"), None)
            .err()
            .unwrap();
        assert!(e.contains("hard links"), "{e}");
        let e = LinesFile::open(&root, &outside.join("y.log"), None)
            .err()
            .unwrap();
        assert!(e.contains("leads outside"), "{e}");
        assert_eq!(std::fs::read(outside.join("target.log")).unwrap(), b"");
    }

    #[test]
    fn links_directories_and_fifos_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"").unwrap();
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = LinesFile::open(dir.path(), &link, None).err().unwrap();
        assert!(e.contains("symbolic link"), "{e}");
        let e = LinesFile::open(dir.path(), dir.path(), None).err().unwrap();
        assert!(e.contains("is a directory"), "{e}");
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // Opened without blocking, and refused as not a regular file.
        let e = LinesFile::open(dir.path(), &fifo, None).err().unwrap();
        assert!(e.contains("not a regular file"), "{e}");
        // A program is never appended to (CVE-2025-6000's shape), nor a
        // file of /proc.
        let script = dir.path().join("job.sh");
        std::fs::write(&script, b"#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = LinesFile::open(dir.path(), &script, None).err().unwrap();
        assert!(e.contains("executable"), "{e}");
        assert_eq!(std::fs::read(&script).unwrap(), b"#!/bin/sh\n");
        let e = LinesFile::open(
            &Path::new("/proc/self").canonicalize().unwrap(),
            &Path::new("/proc/self").canonicalize().unwrap().join("comm"),
            None,
        )
        .err()
        .unwrap();
        assert!(e.contains("not on a disk"), "{e}");
    }
}
