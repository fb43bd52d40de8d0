//! What survives a restart: each bundle's last activated archive and its
//! version floor under `DATA_DIR/bundles/NAME/`, and the default bundle's
//! name, all written atomically.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::*;
use crate::bundle::ArchiveLimits;

/// The version floor of one bundle name, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(super) struct Floor {
    pub(super) version: semver::Version,
    pub(super) digest: String,
    #[serde(default)]
    pub(super) forced: bool,
}

impl Registry {
    pub(super) fn persisted_path(&self, name: &str) -> PathBuf {
        self.settings
            .data_dir
            .join("bundles")
            .join(name)
            .join("active.bundle")
    }

    pub(super) fn floor_path(&self, name: &str) -> PathBuf {
        self.settings
            .data_dir
            .join("bundles")
            .join(name)
            .join("floor.json")
    }

    /// The persisted floor of `name`, if one was ever recorded. A floor
    /// that exists but cannot be read refuses every candidate: failing
    /// open would re-admit old versions.
    pub(super) fn floor(&self, name: &str) -> Result<Option<Floor>, PersistError> {
        let path = self.floor_path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(PersistError::File { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| PersistError::Floor { path, source })
    }

    /// Writes the active bundle where [`Registry::restore_persisted`] finds
    /// it.
    pub(super) fn persist(&self, name: &str, bytes: &[u8]) -> Result<(), PersistError> {
        write_atomically(&self.persisted_path(name), bytes)
    }
}

/// Where the first-activated default's name is kept (outside `bundles/`,
/// whose entries are bundle names).
pub(super) fn default_file(data_dir: &Path) -> PathBuf {
    data_dir.join("default-bundle")
}

pub(super) fn read_default_file(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let name = text.trim();
    crate::bundle::manifest::check_name(name)
        .map_err(|e| tracing::error!(path = %path.display(), error = %e, "ignoring the persisted default bundle"))
        .ok()?;
    Some(name.to_string())
}

/// Temporary file, fsync, rename, fsync of the directory: a crash leaves
/// the old or the new contents, never half of them.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    use std::io::Write;
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PersistError::File { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = std::fs::File::create(&tmp).map_err(at(&tmp))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(at(&tmp))?;
    std::fs::rename(&tmp, path).map_err(at(path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a candidate bundle file, refusing one larger than a bundle may be
/// before reading it (and while reading, should it grow).
pub(crate) fn read_candidate(path: &Path, limits: &ArchiveLimits) -> Result<Vec<u8>, PersistError> {
    let file = std::fs::File::open(path).map_err(PersistError::Open)?;
    crate::bundle::read_bounded(file, limits.max_archive_bytes).map_err(PersistError::Read)
}

/// A bundle file, floor or default that could not be read or written
/// under `data_dir` (or a candidate file that could not be read).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PersistError {
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A floor that exists but does not decode.
    #[error("{}: {source}", path.display())]
    Floor {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The candidate file could not be opened (the caller logs its path).
    #[error("{0}")]
    Open(#[source] std::io::Error),
    /// The candidate file is larger than a bundle may be, or unreadable.
    #[error("{0}")]
    Read(crate::bundle::BoundedReadError),
}
