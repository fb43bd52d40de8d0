//! Bundle sources: configured files and directories, polled for new
//! versions, and the development build.
//!
//! Polling (by modification time and size) rather than filesystem events:
//! it behaves the same on local disks, network mounts and container
//! volumes, and a candidate that was rejected is not retried until its file
//! changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::registry::{Origin, Registry, read_candidate};
use crate::bundle::source::PolicySource;
use crate::bundle::{Bundle, BundleError, keys};
use crate::config::BundleConfig;

/// What a file looked like when last read.
type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Watches the file and directory sources of the configured bundles.
pub(crate) struct Watcher {
    registry: Arc<Registry>,
    bundles: Vec<BundleConfig>,
    seen: BTreeMap<PathBuf, Stamp>,
}

impl Watcher {
    pub(crate) fn new(registry: Arc<Registry>, bundles: Vec<BundleConfig>) -> Self {
        Watcher {
            registry,
            bundles,
            seen: BTreeMap::new(),
        }
    }

    /// Checks every source once; activates what changed. Blocking.
    pub(crate) fn poll(&mut self) {
        for b in self.bundles.clone() {
            if let Some(file) = &b.file {
                self.poll_file(&b.name, file);
            }
            if let Some(dir) = &b.dir {
                self.poll_dir(&b.name, dir);
            }
        }
    }

    fn changed(&mut self, path: &Path) -> bool {
        let Some(now) = stamp(path) else {
            return false;
        };
        if self.seen.get(path) == Some(&now) {
            return false;
        }
        self.seen.insert(path.to_path_buf(), now);
        true
    }

    fn poll_file(&mut self, name: &str, file: &Path) {
        if !self.changed(file) {
            return;
        }
        match read_candidate(file, self.registry.archive_limits()) {
            Ok(bytes) => {
                let origin = Origin::File {
                    path: file.display().to_string(),
                };
                let _ = self.registry.activate(name, &bytes, origin, false, None);
            }
            Err(e) => {
                tracing::warn!(bundle = %name, path = %file.display(), error = %e, "cannot read bundle source")
            }
        }
    }

    /// Every changed `*.bundle` in `dir` is a candidate; they are tried from
    /// the highest version down until one is active, so a directory that
    /// accumulates versions serves its newest valid one.
    fn poll_dir(&mut self, name: &str, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "bundle") && p.is_file())
            .collect();
        paths.sort();
        // Only versions are kept while ordering: holding every candidate's
        // bytes at once would let a directory of large files exhaust memory.
        let mut candidates = Vec::new();
        for path in paths {
            if !self.changed(&path) {
                continue;
            }
            let bytes = match read_candidate(&path, self.registry.archive_limits()) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(bundle = %name, path = %path.display(), error = %e, "cannot read bundle candidate");
                    continue;
                }
            };
            // Only the version is needed to order candidates; full
            // verification happens in `activate`.
            let version = Bundle::from_bytes(&bytes, self.registry.archive_limits())
                .ok()
                .map(|b| b.manifest.version);
            candidates.push((version, path));
        }
        candidates.sort_by(|a, b| b.0.cmp(&a.0));
        for (_, path) in candidates {
            let bytes = match read_candidate(&path, self.registry.archive_limits()) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(bundle = %name, path = %path.display(), error = %e, "cannot read bundle candidate");
                    continue;
                }
            };
            let origin = Origin::Dir {
                path: path.display().to_string(),
            };
            if self
                .registry
                .activate(name, &bytes, origin, false, None)
                .is_ok()
            {
                break;
            }
        }
    }

    /// Polls forever on a blocking thread.
    pub(crate) fn spawn(mut self, every: Duration) {
        std::thread::Builder::new()
            .name("stagegate-sources".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    self.poll();
                }
            })
            .map(|_| ())
            .unwrap_or_else(
                |e| tracing::error!(error = %e, "cannot start the bundle source watcher"),
            );
    }
}

/// Development source: builds a policy directory and signs it with a local
/// key, creating the key on first use. It is activated with `force`. The key's public half goes into the
/// trust directory so the bundle verifies like any other.
pub(crate) fn build_and_sign(
    registry: &Registry,
    name: &str,
    dir: &Path,
    key: Option<&Path>,
    trust_dir: &Path,
) -> Result<(), BuildError> {
    let source = PolicySource::open(dir)?;
    let mut bundle = source.bundle()?;
    if let Some(key) = key {
        let secret = if key.exists() {
            keys::load_secret(key)?
        } else {
            let (secret, public) = keys::generate(key)?;
            tracing::warn!(key = %key.display(), "created a development signing key; do not use it in production");
            let trusted = trust_dir.join(public.file_name().unwrap_or_default());
            if trusted != public {
                std::fs::create_dir_all(trust_dir).map_err(|e| BundleError::io(trust_dir, e))?;
                std::fs::copy(&public, &trusted).map_err(|e| BundleError::io(&trusted, e))?;
            }
            secret
        };
        bundle.sign(&secret);
    }
    let bytes = bundle.to_bytes()?;
    let origin = Origin::Build {
        path: dir.display().to_string(),
    };
    // A development build replaces whatever is active, even at the same
    // version: the policy being edited is the point of building it.
    registry
        .activate(
            name,
            &bytes,
            origin,
            true,
            Some("development build of the policy directory"),
        )
        .map(|_| ())
        .map_err(BuildError::Activate)
}

/// Why a development build was not activated.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    /// The policy directory, the build, the key or the trust directory.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The registry refused the built bundle.
    #[error(transparent)]
    Activate(super::registry::Rejection),
}
