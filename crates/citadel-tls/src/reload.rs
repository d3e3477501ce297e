//! A server config that follows its CA directory: rebuilt when the CA's
//! public files (`ca.crt`, `crl.pem`) change, so `citadel ca revoke`
//! applies to the next connection without a restart. Shared by every
//! Citadel server that takes client certificates (`citadel recv`, the
//! vault's mutual-TLS listener).

use crate::Result;
use crate::config::Trust;
use rustls::ServerConfig;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What identifies a version of a file: modification time, size, inode.
type Stamp = (i64, i64, u64, u64);

fn stamp(p: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.mtime(), m.mtime_nsec(), m.len(), m.ino()))
}

/// The builder of a config from the CA's trust.
type Build = Box<dyn Fn(&Trust) -> Result<Arc<ServerConfig>> + Send + Sync>;

/// A server config rebuilt when the CA directory's public files change.
pub struct ReloadingServerConfig {
    dir: PathBuf,
    build: Build,
    state: Mutex<(Vec<Option<Stamp>>, Arc<ServerConfig>)>,
}

impl ReloadingServerConfig {
    /// Builds the config from the CA in `dir` with `build`; fails if that
    /// fails now.
    pub fn new(
        dir: &Path,
        build: impl Fn(&Trust) -> Result<Arc<ServerConfig>> + Send + Sync + 'static,
    ) -> Result<Self> {
        let stamps = Self::stamps(dir);
        let cfg = build(&Trust::from_dir(dir)?)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            build: Box::new(build),
            state: Mutex::new((stamps, cfg)),
        })
    }

    fn stamps(dir: &Path) -> Vec<Option<Stamp>> {
        ["ca.crt", "crl.pem"]
            .iter()
            .map(|f| stamp(&dir.join(f)))
            .collect()
    }

    /// The current config, rebuilt first when the CA's files changed. If
    /// the new files do not load, the previous config stays in force and
    /// the error is returned beside it (for the caller to log); the next
    /// call tries again.
    pub fn current(&self) -> (Arc<ServerConfig>, Option<crate::Error>) {
        let now = Self::stamps(&self.dir);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now == st.0 {
            return (st.1.clone(), None);
        }
        match Trust::from_dir(&self.dir).and_then(|t| (self.build)(&t)) {
            Ok(cfg) => {
                *st = (now, cfg);
                (st.1.clone(), None)
            }
            Err(e) => (st.1.clone(), Some(e)),
        }
    }
}
