//! The log's directory as a handle: every file of the log is opened
//! beneath it, one path component at a time, never following a symbolic
//! link (`openat` with `O_NOFOLLOW`), and must be a regular file (checked
//! on the open handle, so a FIFO or a device never blocks or floods a
//! read). Someone who can write in the log's directory can damage the log
//! (verification says so), but cannot make the process that writes it
//! create, truncate or read a file elsewhere.
//!
//! A file the log writes must also have no other hard link, so a link
//! planted in the directory cannot point the writer at a file elsewhere.
//!
//! Writers hold an exclusive `flock` on `LOG/keys/lock` (in the directory
//! only the log's owner can write, so nobody else can hold, remove or
//! replace it) for as long as the log is open, so two writers can never
//! interleave.

use crate::error::Error;
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a file of the log is opened.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Access {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write, created (with this mode) when missing, never
    /// truncated.
    Create(u32),
    /// Append only; the file must exist.
    Append,
}

/// The open directory of a log.
#[derive(Clone)]
pub(crate) struct LogDir {
    root: Arc<File>,
    path: PathBuf,
}

fn not_regular(path: &Path) -> Error {
    Error::Corrupt {
        index: None,
        why: format!(
            "{} is not a regular file of the log's own (a symbolic link, directory, FIFO or device stands in its place, or it has another hard link): the log's files are never followed elsewhere; restore it, and run `citadel audit verify`",
            path.display()
        ),
    }
}

impl LogDir {
    /// Fails if the directory was removed while open: writes would still
    /// succeed, into files nobody can reach, and must not be acknowledged.
    pub(crate) fn check_present(&self) -> Result<(), Error> {
        let st = rustix::fs::fstat(&*self.root).map_err(|e| Error::Io {
            path: self.path.display().to_string(),
            source: e.into(),
        })?;
        if st.st_nlink == 0 {
            return Err(Error::Setup(format!(
                "the log directory {} was removed while the log was open; the entries not yet acknowledged are lost with it",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Opens the directory at `path` (as the operator names it).
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR => Error::Setup(format!(
                "{} is not an audit log (no such directory); create one with `citadel audit init`",
                path.display()
            )),
            e => Error::Io {
                path: path.display().to_string(),
                source: e.into(),
            },
        })?;
        Ok(Self {
            root: Arc::new(File::from(fd)),
            path: path.to_path_buf(),
        })
    }

    /// The path of `rel` beneath the log, for messages.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// The log's directory as the operator named it.
    pub(crate) fn root_path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, rel: &str) -> impl FnOnce(io::Error) -> Error + '_ {
        let p = self.path(rel);
        move |e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
                || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
            {
                not_regular(&p)
            } else {
                Error::Io {
                    path: p.display().to_string(),
                    source: e,
                }
            }
        }
    }

    /// The directory holding `rel` and the last component's name.
    fn parent<'a>(&self, rel: &'a str) -> io::Result<(Arc<File>, &'a str)> {
        let mut parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let name = parts.pop().ok_or(io::ErrorKind::InvalidInput)?;
        let mut dir = self.root.clone();
        for p in parts {
            let fd = rustix::fs::openat(
                &*dir,
                p,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            dir = Arc::new(File::from(fd));
        }
        Ok((dir, name))
    }

    fn open_raw(&self, rel: &str, access: Access, extra: OFlags) -> io::Result<File> {
        let (dir, name) = self.parent(rel)?;
        let (flags, mode) = match access {
            Access::Read => (OFlags::RDONLY, 0),
            Access::ReadWrite => (OFlags::RDWR, 0),
            Access::Create(m) => (OFlags::RDWR | OFlags::CREATE, m),
            Access::Append => (OFlags::WRONLY | OFlags::APPEND, 0),
        };
        // O_NONBLOCK: opening a FIFO must not wait for a writer; it has no
        // effect on a regular file.
        let fd = rustix::fs::openat(
            &*dir,
            name,
            flags | extra | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        let writes = !matches!(access, Access::Read);
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
            || (writes && st.st_nlink != 1)
        {
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::LOOP.raw_os_error(),
            ));
        }
        Ok(File::from(fd))
    }

    /// Opens the regular file `rel` (a path beneath the log, `/`-separated).
    pub(crate) fn file(&self, rel: &str, access: Access) -> Result<File, Error> {
        self.open_raw(rel, access, OFlags::empty())
            .map_err(self.io_err(rel))
    }

    /// Opens `rel` for reading, or `None` when it does not exist.
    pub(crate) fn file_opt(&self, rel: &str) -> Result<Option<File>, Error> {
        match self.open_raw(rel, Access::Read, OFlags::empty()) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_err(rel)(e)),
        }
    }

    /// Reads the whole of `rel`, refusing a file over `limit` bytes.
    pub(crate) fn read(&self, rel: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let f = self.file(rel, Access::Read)?;
        self.read_from(rel, f, limit)
    }

    /// Reads the whole of `rel`, or `None` when it does not exist.
    pub(crate) fn read_opt(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        match self.file_opt(rel)? {
            Some(f) => self.read_from(rel, f, limit).map(Some),
            None => Ok(None),
        }
    }

    fn read_from(&self, rel: &str, f: File, limit: u64) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(self.io_err(rel))?;
        if out.len() as u64 > limit {
            return Err(Error::Corrupt {
                index: None,
                why: format!(
                    "{} is larger than {limit} bytes: not a file the log wrote",
                    self.path(rel).display()
                ),
            });
        }
        Ok(out)
    }

    /// Replaces `rel` with `data` atomically and durably: a fresh
    /// temporary file (removed first, then created exclusively), fsynced,
    /// renamed over `rel`, and the directory fsynced.
    pub(crate) fn write_atomic(&self, rel: &str, data: &[u8], mode: u32) -> Result<(), Error> {
        let tmp_rel = format!("{rel}.tmp");
        let err = self.io_err(&tmp_rel);
        let r = (|| -> io::Result<()> {
            let (dir, name) = self.parent(rel)?;
            let tmp = format!("{name}.tmp");
            match rustix::fs::unlinkat(&*dir, tmp.as_str(), AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
            let mut f = File::from(rustix::fs::openat(
                &*dir,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            )?);
            f.write_all(data)?;
            f.sync_all()?;
            rustix::fs::renameat(&*dir, tmp.as_str(), &*dir, name)?;
            sync_handle(&dir)
        })();
        r.map_err(err)
    }

    /// Creates the directory `rel` (an existing directory is fine; a link
    /// is not).
    pub(crate) fn mkdir(&self, rel: &str, mode: u32) -> Result<(), Error> {
        let r = (|| -> io::Result<()> {
            let (dir, name) = self.parent(rel)?;
            match rustix::fs::mkdirat(&*dir, name, Mode::from_raw_mode(mode)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            self.dir(rel).map(|_| ())
        })();
        r.map_err(self.io_err(rel))
    }

    fn dir(&self, rel: &str) -> io::Result<Arc<File>> {
        if rel.is_empty() {
            return Ok(self.root.clone());
        }
        self.open_dir(rel, OFlags::RDONLY)
    }

    /// Opens the directory `rel` (`how`: `RDONLY`, or `PATH` for a handle
    /// that is only a place), never through a link.
    fn open_dir(&self, rel: &str, how: OFlags) -> io::Result<Arc<File>> {
        let (dir, name) = self.parent(rel)?;
        let fd = rustix::fs::openat(
            &*dir,
            name,
            how | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Arc::new(File::from(fd)))
    }

    /// Makes the entries of directory `rel` durable (`""`: the log's own).
    pub(crate) fn sync_dir(&self, rel: &str) -> Result<(), Error> {
        self.dir(rel)
            .and_then(|d| sync_handle(&d))
            .map_err(self.io_err(rel))
    }

    /// The names in directory `rel`.
    pub(crate) fn list(&self, rel: &str) -> Result<Vec<String>, Error> {
        let r = (|| -> io::Result<Vec<String>> {
            let d = self.dir(rel)?;
            let mut dir = rustix::fs::Dir::read_from(&*d)?;
            let mut out = Vec::new();
            while let Some(e) = dir.read() {
                let e = e?;
                if let Ok(name) = e.file_name().to_str() {
                    if name != "." && name != ".." {
                        out.push(name.to_string());
                    }
                }
            }
            Ok(out)
        })();
        r.map_err(self.io_err(rel))
    }

    /// Removes the file `rel` (a missing one is not an error).
    pub(crate) fn remove(&self, rel: &str) -> Result<(), Error> {
        let r = (|| -> io::Result<()> {
            let (dir, name) = self.parent(rel)?;
            match rustix::fs::unlinkat(&*dir, name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
            sync_handle(&dir)
        })();
        r.map_err(self.io_err(rel))
    }

    /// Whether `rel` exists (a link counts; it is not followed).
    pub(crate) fn exists(&self, rel: &str) -> Result<bool, Error> {
        let r = (|| -> io::Result<bool> {
            let (dir, name) = self.parent(rel)?;
            match rustix::fs::statat(&*dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => Ok(true),
                Err(rustix::io::Errno::NOENT) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })();
        r.map_err(self.io_err(rel))
    }

    /// Opens the subdirectory `rel` (never through a link) as a handle of
    /// its own: what is checked on it is what is read and written through
    /// it, whatever is renamed in its parent meanwhile.
    /// The handle is an `O_PATH` one: its owner can be checked by anyone
    /// who can reach it, and what is in it opened by whoever may.
    pub(crate) fn subdir(&self, rel: &str) -> Result<LogDir, Error> {
        let d = self.open_dir(rel, OFlags::PATH).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::Corrupt {
                    index: None,
                    why: format!(
                        "{} is missing; a log's directories are made at `citadel audit init`",
                        self.path(rel).display()
                    ),
                }
            } else {
                self.io_err(rel)(e)
            }
        })?;
        Ok(LogDir {
            root: d,
            path: self.path(rel),
        })
    }

    /// The owner's uid and the mode bits of this directory.
    pub(crate) fn owner(&self) -> Result<(u32, u32), Error> {
        let st = rustix::fs::fstat(&*self.root).map_err(|e| Error::Io {
            path: self.path.display().to_string(),
            source: e.into(),
        })?;
        Ok((st.st_uid, st.st_mode & 0o7777))
    }

    /// Checks that this directory belongs to this process's user and that
    /// nobody else can write in it.
    pub(crate) fn check_private(&self) -> Result<(), Error> {
        let (uid, mode) = self.owner()?;
        let me = rustix::process::geteuid().as_raw();
        if uid != me || mode & 0o022 != 0 {
            return Err(Error::Setup(format!(
                "{} must belong to this user (uid {me}) and be writable by nobody else (it is uid {uid}, mode {mode:o})",
                self.path.display(),
            )));
        }
        Ok(())
    }

    /// Takes the writer's lock: an exclusive `flock` on the file `lock` in
    /// this directory (the log's `keys/`, which only its owner can enter), held
    /// until the returned guard is dropped. `None` when another open file
    /// holds it or this user cannot open it. Waits up to `wait` for a
    /// holder to let go (a reader rebuilding the derived files holds it
    /// for as long as that takes).
    pub(crate) fn try_lock(&self, wait: std::time::Duration) -> Result<Option<Lock>, Error> {
        let f = match self.open_raw("lock", Access::Create(0o600), OFlags::empty()) {
            Ok(f) => f,
            // Another user's log, or a read-only copy: nobody can write it.
            Err(e)
                if e.kind() == io::ErrorKind::PermissionDenied
                    || e.raw_os_error() == Some(rustix::io::Errno::ROFS.raw_os_error()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(self.io_err("lock")(e)),
        };
        let until = std::time::Instant::now() + wait;
        loop {
            match rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Some(Lock { _file: f })),
                Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
                Err(e) => return Err(self.io_err("lock")(e.into())),
            }
        }
    }
}

/// Makes a directory's entries durable, also through an `O_PATH` handle
/// (which cannot be fsynced itself: its `.` is opened for that).
fn sync_handle(dir: &File) -> io::Result<()> {
    match dir.sync_all() {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BADF.raw_os_error()) => {
            let d = rustix::fs::openat(
                dir,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            File::from(d).sync_all()
        }
        r => r,
    }
}

/// The writer's lock on a log, released when dropped.
pub(crate) struct Lock {
    _file: File,
}
