//! The file a `file` device appends its JSON lines to: opened without
//! following a symbolic link at its name, refused unless it is a regular
//! file on a disk (not `/proc` or `/sys`) without an execute, setuid or
//! setgid bit, created with the device's mode (an existing file's mode is
//! left alone), written by group (one write and one `fdatasync` per
//! commit), and reopened on request (after a log rotation moved it).

use rustix::fs::{Mode, OFlags};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};

/// A JSON-lines file being appended to.
pub(super) struct LinesFile {
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

/// Opens (creating) `path` for appending; a new file gets `mode` (0600
/// without one). Its directory is created (0700) when missing, as Vault's.
fn open(path: &Path, mode: Option<u32>) -> Result<File, String> {
    let shown = path.display();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    // Judged before it is opened too, so that opening a device node or a
    // FIFO has no effect (the opened handle is judged again below).
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(link_refused(&shown)),
        Ok(m) if m.is_dir() => return Err(dir_refused(&shown)),
        Ok(m) if !m.is_file() => return Err(format!("{shown} is not a regular file")),
        _ => {}
    }
    let create_mode = match mode {
        Some(m) if m != 0 => m,
        _ => 0o600,
    };
    let fd = rustix::fs::open(
        path,
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
    use std::os::unix::fs::PermissionsExt;
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
    pub(super) fn open(path: &Path, mode: Option<u32>) -> Result<Self, String> {
        Ok(Self {
            file: open(path, mode)?,
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
        self.file = open(&self.path, self.mode)?;
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
        let mut f = LinesFile::open(&p, None).unwrap();
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
        let mut f = LinesFile::open(&p, Some(0o640)).unwrap();
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

    #[test]
    fn links_directories_and_fifos_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"").unwrap();
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = LinesFile::open(&link, None).err().unwrap();
        assert!(e.contains("symbolic link"), "{e}");
        let e = LinesFile::open(dir.path(), None).err().unwrap();
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
        let e = LinesFile::open(&fifo, None).err().unwrap();
        assert!(e.contains("not a regular file"), "{e}");
        // A program is never appended to (CVE-2025-6000's shape), nor a
        // file of /proc.
        let script = dir.path().join("job.sh");
        std::fs::write(&script, b"#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = LinesFile::open(&script, None).err().unwrap();
        assert!(e.contains("executable"), "{e}");
        assert_eq!(std::fs::read(&script).unwrap(), b"#!/bin/sh\n");
        let e = LinesFile::open(Path::new("/proc/self/comm"), None)
            .err()
            .unwrap();
        assert!(e.contains("not on a disk"), "{e}");
    }
}
