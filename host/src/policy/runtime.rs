//! The wasmtime engine, configured for many tiny calls into untrusted code.
//!
//! One [`Runtime`] per process serves every bundle: compiled code, the
//! pooling allocator's slots and the epoch ticker are shared.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::{Limits, PolicyError};

/// How often the epoch advances. A call's deadline is a number of ticks, so
/// this is the granularity of deadlines; a ticker thread waking every
/// millisecond costs nothing measurable.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// A configured engine plus the thread that drives its epochs.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

/// Core module instances one component instance may hold: a Rust policy
/// has 1-3, a componentize-py one 14 (measured with 0.25.1).
pub(super) const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 32;
/// Tables one component instance may hold.
pub(super) const MAX_TABLES_PER_COMPONENT: u32 = 32;

struct Inner {
    engine: Engine,
    limits: Limits,
}

impl Runtime {
    /// Builds the engine:
    ///
    /// - **pooling allocator**: instance memories, tables and stacks come from
    ///   pre-reserved slots, so making an instance is a few madvise calls, not
    ///   mmap; copy-on-write memory images make initial memory free;
    /// - **epoch interruption**: a deadline check on loop back-edges and
    ///   function entries, far cheaper than fuel; the ticker below advances it;
    /// - **bounded stack**: recursion traps at `stack_bytes`;
    /// - **no concurrency support**: policies are synchronous functions; not
    ///   initialising the component-model async machinery saves work per store.
    pub fn new(limits: Limits) -> Result<Self, PolicyError> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances.saturating_mul(4))
            .total_memories(limits.max_instances.saturating_mul(2))
            .total_tables(limits.max_instances.saturating_mul(4))
            // A Rust policy is 1-3 core instances; a componentize-py one
            // (interpreter, libc, adapters) is 14.
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(2)
            .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
            // Slightly above the limiter's cap so the limiter, which knows
            // why growth failed, always sees the breach first. A bundle with
            // its own larger cap sizes the slots.
            .max_memory_size(
                limits
                    .memory_bytes
                    .max(limits.largest_bundle_memory_bytes)
                    .saturating_add(1 << 20),
            )
            .table_elements(20_000)
            // Keep the first pages of a reused memory resident instead of
            // zeroing them through the kernel: cheaper instance turnover.
            .linear_memory_keep_resident(1 << 20);

        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            // Backtraces make every trap slower and every error longer; a
            // failing policy is reported by cause, and its author debugs it
            // with native tests of the same code.
            .wasm_backtrace_max_frames(None)
            .max_wasm_stack(limits.stack_bytes)
            .cranelift_opt_level(OptLevel::Speed)
            .wasm_component_model(true)
            .concurrency_support(false)
            .memory_init_cow(true)
            // Compiling on the calling (blocking) thread rather than a rayon
            // pool: activations are rare and off the request path, and idle
            // pool threads kept ~50 MiB of allocator arenas from compilation
            // resident for good.
            .parallel_compilation(false);
        let engine = Engine::new(&config)
            .map_err(|e| PolicyError::Instantiate(format!("wasmtime engine: {e:#}")))?;

        let weak = engine.weak();
        thread::Builder::new()
            .name("stagegate-epoch".into())
            .spawn(move || {
                // Exits once every clone of the engine is gone.
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| PolicyError::Instantiate(format!("epoch ticker thread: {e}")))?;

        Ok(Runtime {
            inner: Arc::new(Inner { engine, limits }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Epoch ticks that cover the deadline, plus one for the partial tick in
    /// progress when the call starts.
    pub fn deadline_ticks(&self) -> u64 {
        Self::ticks_for(self.inner.limits.deadline)
    }

    /// Epoch ticks that cover `deadline`, plus one for the partial tick in
    /// progress when the call starts.
    pub fn ticks_for(deadline: std::time::Duration) -> u64 {
        let tick = EPOCH_TICK.as_micros().max(1);
        let ticks = deadline.as_micros().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }

    /// Compiles a component with Cranelift.
    pub fn compile(&self, wasm: &[u8]) -> Result<Component, PolicyError> {
        Component::new(&self.inner.engine, wasm).map_err(|e| PolicyError::Compile(format!("{e:#}")))
    }

    /// Serialises a compiled component for the on-disk cache.
    pub fn serialize(&self, component: &Component) -> Result<Vec<u8>, PolicyError> {
        component
            .serialize()
            .map_err(|e| PolicyError::Compile(format!("serialising compiled component: {e:#}")))
    }

    /// Loads a component compiled earlier by [`Runtime::serialize`].
    ///
    /// # Safety
    ///
    /// `bytes` must come from `serialize` on an engine with this
    /// configuration and must not have been altered since: wasmtime checks
    /// the engine compatibility header, but runs the machine code inside as
    /// is. Callers keep the cache in a directory only this process writes
    /// and key it by the wasm digest.
    pub unsafe fn deserialize(&self, bytes: &[u8]) -> Result<Component, PolicyError> {
        // SAFETY: forwarded to the caller (see the function's contract).
        unsafe { Component::deserialize(&self.inner.engine, bytes) }
            .map_err(|e| PolicyError::Compile(format!("loading cached component: {e:#}")))
    }

    /// A string that changes whenever compiled code from this engine would
    /// be incompatible: wasmtime version, target and configuration.
    pub fn compatibility_key(&self) -> String {
        use sha2::Digest;
        use std::hash::Hash;

        /// Feeds `Hash` output into SHA-256, which, unlike std's hasher, is
        /// stable across Rust releases.
        struct Sha(sha2::Sha256);
        impl std::hash::Hasher for Sha {
            fn write(&mut self, bytes: &[u8]) {
                self.0.update(bytes);
            }
            fn finish(&self) -> u64 {
                0
            }
        }

        let mut h = Sha(sha2::Sha256::new());
        self.inner
            .engine
            .precompile_compatibility_hash()
            .hash(&mut h);
        hex::encode(&h.0.finalize()[..12])
    }
}
