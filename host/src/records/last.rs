//! The service's last signed checkpoint, kept outside the database.
//!
//! Whoever can write the database can delete entries from the end of the
//! log, reset its head and delete the stored checkpoints; the service
//! would then sign the shorter log as if nothing happened. So the newest
//! checkpoint the service signed is also written to a file under
//! `data_dir` (mode 0600), and the service never signs a head that does
//! not extend it (docs/log.md, "A log that cannot be rewound quietly").
//! `stagegate audit verify` checks the log against it by default.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the last checkpoint lives, beside the checkpoint key.
pub fn path_beside(key: &Path) -> PathBuf {
    key.with_file_name("last-checkpoint")
}

/// Reads the file: `None` when there is none yet.
pub fn read(path: &Path) -> Result<Option<String>, LastFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LastFileError {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The last-checkpoint file could not be read or replaced.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct LastFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Replaces the file with `note`, atomically (write a sibling, then
/// rename), readable by the service's user only.
pub fn write(path: &Path, note: &str) -> Result<(), LastFileError> {
    let fail = |source: std::io::Error| LastFileError {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
    }
    file.write_all(note.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}
