//! A server config that follows its CA directory: rebuilt when the CA's
//! public files (`ca.crt`, `crl.pem`) change, so `citadel ca revoke`
//! applies to the next connection without a restart. Shared by every
//! Citadel server that takes client certificates (`citadel recv`, the
//! vault's mutual-TLS listener).
//!
//! A CRL is taken only if the CA signed it, it is current (before its
//! `nextUpdate`) and its number is at least the newest already seen (kept
//! in a [`Floor`], which may persist across restarts): copying back an
//! older `crl.pem` does not un-revoke a certificate. A list that drops a
//! revocation the floor holds is enforced beside every serial held, and
//! the floor keeps holding them all (see [`Floor::admit_or_hold`]), so no
//! revocation from any list is lost while the CA is put right.

use crate::Result;
use crate::config::Trust;
use crate::crl::{CrlFacts, Floor};

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

/// What the server currently trusts: the files' stamps when it was loaded,
/// the config built from them, the newest CRL number seen, and the CRL's
/// facts.
struct Loaded {
    stamps: Vec<Option<Stamp>>,
    config: Arc<ServerConfig>,
    floor: Floor,
    crl: CrlFacts,
    /// Why serials are held beside the CRL at start-up, told once.
    pending: Option<crate::Error>,
}

/// A server config rebuilt when the CA directory's public files change.
pub struct ReloadingServerConfig {
    dir: PathBuf,
    build: Build,
    state: Mutex<Loaded>,
}

impl ReloadingServerConfig {
    /// Builds the config from the CA in `dir` with `build`; fails if that
    /// fails now (a CRL that is stale, forged, or older than `floor`
    /// included). A CRL that no longer lists a serial `floor` holds is
    /// enforced beside it, and the first [`current`](Self::current) call
    /// says why.
    pub fn new(
        dir: &Path,
        mut floor: Floor,
        build: impl Fn(&Trust) -> Result<Arc<ServerConfig>> + Send + Sync + 'static,
    ) -> Result<Self> {
        let stamps = Self::stamps(dir);
        let mut trust = Trust::from_dir(dir)?;
        let admitted = floor.admit_or_hold(&trust.crl())?;
        if let Some(held) = admitted.also_revoked {
            trust = trust.also_revoking(held);
        }
        let pending = admitted.warning;
        let config = build(&trust)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            build: Box::new(build),
            state: Mutex::new(Loaded {
                stamps,
                config,
                floor,
                crl: trust.crl(),
                pending,
            }),
        })
    }

    fn stamps(dir: &Path) -> Vec<Option<Stamp>> {
        ["ca.crt", "crl.pem"]
            .iter()
            .map(|f| stamp(&dir.join(f)))
            .collect()
    }

    /// The current config, rebuilt first when the CA's files changed. If
    /// the new files do not load (or the CRL in force has gone stale), the
    /// previous config stays in force and the error is returned beside it
    /// (for the caller to log); the next call tries again.
    pub fn current(&self) -> (Arc<ServerConfig>, Option<crate::Error>) {
        let now = Self::stamps(&self.dir);
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *guard;
        if now == st.stamps {
            // Unchanged, but it may have gone stale meanwhile: rustls then
            // refuses every client certificate, and this says why.
            let why = crate::crl::check_current(&st.crl, crate::crl::unix_now()).err();
            return (st.config.clone(), why.or_else(|| st.pending.take()));
        }
        let pinned = st.crl.ca_sha256;
        let reloaded = Trust::from_dir(&self.dir).and_then(|t| {
            // The CA is the one the server started with: a certificate
            // swapped into the directory is not adopted while it runs.
            if t.crl().ca_sha256 != pinned {
                return Err(crate::Error::Ca(
                    "ca.crt changed since the server started; restart it to trust another CA"
                        .into(),
                ));
            }
            let facts = t.crl();
            // A list that dropped revocations (a CA restored from a
            // backup): its own revocations apply at once, beside every one
            // the floor held, which the floor keeps holding (on disk too),
            // so no later list or restart loses them while the CA is put
            // right. A floor that cannot be written keeps no older list in
            // force: the newer one applies, with a warning.
            let admitted = st.floor.admit_or_hold(&facts)?;
            let t = match admitted.also_revoked {
                Some(held) => t.also_revoking(held),
                None => t,
            };
            Ok(((self.build)(&t)?, facts, admitted.warning))
        });
        match reloaded {
            Ok((config, crl, warning)) => {
                (st.stamps, st.config, st.crl) = (now, config, crl);
                (st.config.clone(), warning)
            }
            Err(e) => (st.config.clone(), Some(e)),
        }
    }
}
