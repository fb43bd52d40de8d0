//! On-disk cache of compiled components, so a restart does not recompile.
//!
//! Cranelift needs tens to hundreds of milliseconds per component; loading
//! precompiled code takes a few. Entries are keyed by the SHA-256 of the
//! component's bytes and by the engine's compatibility key (wasmtime
//! version, target, configuration), so a changed component or engine never
//! loads stale code: it simply misses and recompiles.
//!
//! An entry is native code that wasmtime maps and runs without checking
//! it, so whoever can write an entry can make the service run anything.
//! The cache directory is created with mode 0700, and an entry is used only
//! if it is owned by the service's user and writable by no one else
//! (checked on the opened file, not its path); any other entry is logged,
//! recompiled and replaced. `cache = false` in the configuration turns the
//! cache off where the data directory cannot be kept private.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::{PolicyError, Runtime};

/// A directory of compiled components, or none.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

/// Where a component came from, for logs and load-time figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Compiled,
}

impl ComponentCache {
    /// A cache in `dir`. The directory must be writable only by this
    /// service: entries are machine code that is run as is.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentCache {
            dir: Some(dir.into()),
        }
    }

    /// No cache: every load compiles.
    pub fn disabled() -> Self {
        ComponentCache { dir: None }
    }

    fn entry(&self, dir: &Path, runtime: &Runtime, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        dir.join(format!("{}-{}.cwasm", runtime.compatibility_key(), digest))
    }

    /// The compiled component, from the cache or freshly compiled (and then
    /// stored). A cache that cannot be read or written is only slower.
    pub fn get_or_compile(
        &self,
        runtime: &Runtime,
        wasm: &[u8],
    ) -> Result<(Component, CacheOutcome), PolicyError> {
        let Some(dir) = &self.dir else {
            return Ok((runtime.compile(wasm)?, CacheOutcome::Compiled));
        };
        let path = self.entry(dir, runtime, wasm);
        if let Some(bytes) = read_trusted(&path) {
            // SAFETY: `read_trusted` returned the bytes only because the
            // opened file is owned by this service's user and writable by
            // no one else, so it was written by `store` below from
            // `Runtime::serialize` of this very engine configuration (the
            // file name carries the compatibility key and the source
            // digest). wasmtime additionally checks the header for engine
            // compatibility.
            match unsafe { runtime.deserialize(&bytes) } {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled-component cache entry");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = runtime.compile(wasm)?;
        if let Err(e) = store(dir, runtime, &component, &path) {
            tracing::warn!(path = %path.display(), error = %e, "could not cache compiled component");
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

/// The entry's bytes, if it exists and may be trusted: owned by this
/// service's user and writable by it alone. The checks are made on the
/// opened file, so the path cannot be swapped between check and read.
fn read_trusted(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if let Err(why) = private_to_us(&meta) {
        tracing::warn!(path = %path.display(), why = %why, "ignoring compiled-component cache entry that others could have written; recompiling and replacing it");
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

#[cfg(unix)]
fn private_to_us(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Err(format!(
            "owned by uid {}, not this service's {uid}",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "mode {:o} lets group or others write it",
            meta.mode() & 0o777
        ));
    }
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    Ok(())
}

#[cfg(not(unix))]
fn private_to_us(_meta: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// Creates the cache directory private to this service (0700), and makes
/// an existing one private.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Writes an entry atomically, mode 0600: a reader sees the old entry or
/// the new one, and the new one replaces any entry it did not trust.
fn store(dir: &Path, runtime: &Runtime, component: &Component, path: &Path) -> Result<(), String> {
    use std::io::Write;
    let bytes = runtime.serialize(component).map_err(|e| e.to_string())?;
    create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(&bytes)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}
