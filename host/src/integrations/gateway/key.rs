//! The bucket key: a server secret, the same on every replica.

use std::path::{Path, PathBuf};

/// The bucket key file could not be created or read, or is too short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("integrations.authz.key_file {}: {problem}", path.display())]
pub struct KeyFileError {
    pub path: PathBuf,
    pub problem: String,
}

/// The bucket key: the file's content, or 32 new random bytes (hex)
/// written with mode 0600 when the file does not exist.
pub(super) fn load_or_create_key(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let at = |e: &dyn std::fmt::Display| KeyFileError {
        path: path.to_path_buf(),
        problem: e.to_string(),
    };
    if !path.exists() {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| at(&e))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        use std::io::Write;
        options
            .open(path)
            .and_then(|mut f| f.write_all(format!("{}\n", hex::encode(key)).as_bytes()))
            .map_err(|e| at(&e))?;
        tracing::info!(key = %path.display(), "created the exposure bucket key (share it with every replica)");
    }
    let text = std::fs::read(path).map_err(|e| at(&e))?;
    let key = text.trim_ascii_end().to_vec();
    if key.len() < 16 {
        return Err(at(&"the key must be at least 16 bytes"));
    }
    Ok(key)
}
