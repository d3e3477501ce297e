//! The receiver's directory, as a handle: every path a sender names is
//! resolved beneath it one component at a time (`openat` with
//! `O_NOFOLLOW`), so no name can leave the directory through a symbolic
//! link, a `..`, or anything else already on disk. Files are opened,
//! renamed, chmod-ed and timed through handles, never through a path
//! resolved again later.
//!
//! The receiver keeps its own state (partial files and their progress) in
//! [`STATE_DIR`] at the top of the directory; senders may not use that
//! name (see [`crate::manifest::validate_path`]).

use crate::{Error, Result};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The receiver's state directory, at the top of its output directory.
pub const STATE_DIR: &str = ".citadel-recv";

/// Opens `name` in `dir` as a directory, never following a symbolic link.
pub(crate) fn open_dir(dir: &File, name: &str) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Opens `name` in `dir` with `flags` (plus `O_NOFOLLOW | O_CLOEXEC`),
/// creating it with mode 0600 when `O_CREAT` is given.
pub(crate) fn open_file(dir: &File, name: &str, flags: OFlags) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// Renames `from` in `from_dir` to `to` in `to_dir` (replacing `to`, which
/// is never followed if it is a link).
pub(crate) fn rename(from_dir: &File, from: &str, to_dir: &File, to: &str) -> io::Result<()> {
    rustix::fs::renameat(from_dir, from, to_dir, to)?;
    Ok(())
}

/// Removes the file `name` in `dir` (a missing file is not an error).
pub(crate) fn remove(dir: &File, name: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Sets the permission bits of an open file or directory.
pub(crate) fn chmod(f: &File, mode: u32) -> io::Result<()> {
    rustix::fs::fchmod(f, Mode::from_raw_mode(mode))?;
    Ok(())
}

/// What identifies an open file: (device, inode).
pub(crate) type FileId = (u64, u64);

/// An open file's identity and size, if it is a regular file with exactly
/// one name (a hard link to a file elsewhere is never written through or
/// kept).
pub(crate) fn sole_regular(f: &File) -> io::Result<Option<(FileId, u64)>> {
    let st = rustix::fs::fstat(f)?;
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    Ok(
        (kind == rustix::fs::FileType::RegularFile && st.st_nlink == 1)
            .then_some(((st.st_dev, st.st_ino), st.st_size as u64)),
    )
}

/// Creates `name` in `dir` afresh (removing whatever had the name, never
/// following or reusing it), for reading and writing, mode 0600.
pub(crate) fn create_fresh(dir: &File, name: &str) -> io::Result<File> {
    remove(dir, name)?;
    open_file(dir, name, OFlags::RDWR | OFlags::CREATE | OFlags::EXCL)
}

/// Opens `name` in `dir` for reading only if it is a regular file with one
/// name, checking its type before opening it for reading (a device or FIFO
/// at the name is never opened): the file, its identity and size.
pub(crate) fn open_sole_regular(dir: &File, name: &str) -> io::Result<Option<(File, FileId, u64)>> {
    let probe = match rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => File::from(fd),
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some((id, _)) = sole_regular(&probe)? else {
        return Ok(None);
    };
    let f = open_file(dir, name, OFlags::RDONLY | OFlags::NONBLOCK)?;
    Ok(match sole_regular(&f)? {
        Some((again, size)) if again == id => Some((f, id, size)),
        _ => None,
    })
}

/// The receiver's output directory, opened once; cheap to clone (the
/// handles are shared, not duplicated).
#[derive(Clone, Debug)]
pub struct Root(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    dir: File,
    state: Arc<File>,
    path: PathBuf,
    umask: u32,
    /// Files being received, by state key: a second transfer of the same
    /// file is refused rather than sharing the first one's partial file.
    busy: Mutex<HashSet<String>>,
}

/// A file being received, claimed until dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    root: Root,
    key: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.root
            .0
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

impl Root {
    /// Opens (creating it if needed) the output directory `path`, chosen by
    /// the operator, and its state directory. `umask` is applied to every
    /// mode a sender asks for (see [`Root::mode`]).
    pub fn open(path: &Path, umask: u32) -> Result<Self> {
        let io_err = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(path).map_err(io_err)?;
        let dir = File::open(path).map_err(io_err)?;
        if !dir.metadata().map_err(io_err)?.is_dir() {
            return Err(io_err(io::Error::other("not a directory")));
        }
        match rustix::fs::mkdirat(&dir, STATE_DIR, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io_err(e.into())),
        }
        let shown = path.join(STATE_DIR).display().to_string();
        let state = open_dir(&dir, STATE_DIR).map_err(|e| Error::Io {
            path: shown.clone(),
            source: if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
                || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
            {
                io::Error::other(
                    "the receiver's state directory is a symbolic link or a file; remove it",
                )
            } else {
                e
            },
        })?;
        // Another user who can write there could plant links to files
        // elsewhere among the receiver's own: it must be this user's alone.
        let st = rustix::fs::fstat(&state).map_err(|e| Error::Io {
            path: shown.clone(),
            source: e.into(),
        })?;
        if st.st_uid != rustix::process::geteuid().as_raw() || st.st_mode & 0o022 != 0 {
            return Err(Error::Io {
                path: shown,
                source: io::Error::other(
                    "the receiver's state directory is owned by another user or writable by others; remove it (it is recreated with mode 0700)",
                ),
            });
        }
        Ok(Self(Arc::new(Inner {
            dir,
            state: Arc::new(state),
            path: path.to_path_buf(),
            umask: umask & 0o777,
            busy: Mutex::new(HashSet::new()),
        })))
    }

    /// Claims the file with state key `key` for one transfer, or says that
    /// another transfer is receiving it now.
    pub(crate) fn claim(&self, key: &str, shown: &str) -> Result<Claim> {
        let mut busy = self.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        if !busy.insert(key.to_string()) {
            return Err(Error::Busy(shown.to_string()));
        }
        Ok(Claim {
            root: self.clone(),
            key: key.to_string(),
        })
    }

    /// The mode a file or directory the sender describes with `mode` gets:
    /// permission bits only (no setuid, setgid or sticky bit), less the
    /// receiver's umask, as `scp` and `rsync --no-perms` do.
    pub fn mode(&self, mode: u32) -> u32 {
        mode & 0o777 & !self.0.umask
    }

    /// The state directory's handle (shared, not duplicated).
    pub(crate) fn state(&self) -> Arc<File> {
        Arc::clone(&self.0.state)
    }

    /// The operator's path of `rel`, for messages.
    pub(crate) fn display(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.0.path.display().to_string()
        } else {
            self.0.path.join(rel).display().to_string()
        }
    }

    /// Opens the directory `rel` (`/`-separated, already validated; empty
    /// for the root itself) one component at a time, never following a
    /// symbolic link; with `create`, missing components are made (mode
    /// 0777 less the process umask, as `mkdir` does).
    pub fn dir(&self, rel: &str, create: bool) -> Result<File> {
        let mut cur = self.0.dir.try_clone().map_err(|source| Error::Io {
            path: self.display(""),
            source,
        })?;
        if rel.is_empty() {
            return Ok(cur);
        }
        let mut walked = String::new();
        for comp in rel.split('/') {
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(comp);
            let next = match open_dir(&cur, comp) {
                Err(e)
                    if create
                        && e.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) =>
                {
                    match rustix::fs::mkdirat(&cur, comp, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => {
                            return Err(Error::Io {
                                path: self.display(&walked),
                                source: e.into(),
                            });
                        }
                    }
                    open_dir(&cur, comp)
                }
                r => r,
            };
            cur = next.map_err(|e| self.not_beneath(&walked, e))?;
        }
        Ok(cur)
    }

    /// The error for a component that could not be opened as a directory:
    /// a link or a file where a directory is needed is named as such.
    pub(crate) fn not_beneath(&self, rel: &str, e: io::Error) -> Error {
        let code = e.raw_os_error();
        if code == Some(rustix::io::Errno::LOOP.raw_os_error())
            || code == Some(rustix::io::Errno::NOTDIR.raw_os_error())
        {
            Error::NotBeneath(self.display(rel))
        } else {
            Error::Io {
                path: self.display(rel),
                source: e,
            }
        }
    }

    /// Splits `rel` into its parent directory (opened, created if missing)
    /// and its last component.
    pub fn parent_of<'a>(&self, rel: &'a str) -> Result<(File, &'a str)> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        Ok((self.dir(parent, true)?, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_files_in_the_way_are_refused_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let inbox = d.path().join("inbox");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink("../outside", inbox.join("link")).unwrap();
        std::os::unix::fs::symlink("/", inbox.join("abs")).unwrap();
        std::fs::write(inbox.join("file"), b"x").unwrap();
        let root = Root::open(&inbox, 0o022).unwrap();
        for rel in ["link", "link/sub", "abs/tmp", "file/sub"] {
            assert!(
                matches!(root.dir(rel, true), Err(Error::NotBeneath(_))),
                "{rel}"
            );
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        root.dir("a/b/c", true).unwrap();
        assert!(inbox.join("a/b/c").is_dir());
        assert!(root.dir("missing", false).is_err());
        assert_eq!(root.mode(0o4777), 0o755);
        assert_eq!(root.mode(0o2640), 0o640);
        // A state directory replaced by a link is refused.
        let other = d.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::os::unix::fs::symlink("../outside", other.join(STATE_DIR)).unwrap();
        assert!(Root::open(&other, 0o022).is_err());
    }
}
