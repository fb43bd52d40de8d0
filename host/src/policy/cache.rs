//! On-disk cache of compiled components, so a restart does not recompile.
//!
//! Cranelift needs tens to hundreds of milliseconds per component; loading
//! precompiled code takes a few. Entries are keyed by the SHA-256 of the
//! component's bytes and by the engine's compatibility key (wasmtime
//! version, target, configuration), so a changed component or engine never
//! loads stale code: it simply misses and recompiles.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::{PolicyError, Runtime};

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
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
        ComponentCache { dir: dir.into() }
    }

    fn entry(&self, runtime: &Runtime, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        self.dir
            .join(format!("{}-{}.cwasm", runtime.compatibility_key(), digest))
    }

    /// The compiled component, from the cache or freshly compiled (and then
    /// stored). A cache that cannot be read or written is only slower.
    pub fn get_or_compile(
        &self,
        runtime: &Runtime,
        wasm: &[u8],
    ) -> Result<(Component, CacheOutcome), PolicyError> {
        let path = self.entry(runtime, wasm);
        if let Ok(bytes) = std::fs::read(&path) {
            // SAFETY: the entry was written by `store` below from
            // `Runtime::serialize` of this very engine configuration (the
            // file name carries the compatibility key and the source
            // digest), in a directory only this service writes. wasmtime
            // additionally checks the header for engine compatibility.
            match unsafe { runtime.deserialize(&bytes) } {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled-component cache entry");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = runtime.compile(wasm)?;
        if let Err(e) = self.store(runtime, &component, &path) {
            tracing::warn!(path = %path.display(), error = %e, "could not cache compiled component");
        }
        Ok((component, CacheOutcome::Compiled))
    }

    fn store(&self, runtime: &Runtime, component: &Component, path: &Path) -> Result<(), String> {
        let bytes = runtime.serialize(component).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())
    }
}
