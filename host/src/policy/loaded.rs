//! A compiled policy ready to decide: linked once, instantiated on demand,
//! warm instances reused.
//!
//! Instantiating a component costs tens of microseconds; calling a warm one
//! costs a couple. So decisions run on warm, configured instances taken from
//! a small per-policy pool, and an instance goes back only if its call
//! returned normally: a trapped store cannot be re-entered, and a policy
//! that ran out of time or memory mid-call may have left its state
//! inconsistent. Instances are also retired after a number of calls.
//!
//! The WIT version a component was built against is read once, when it is
//! linked ([`WitVersion::of`]): the linked component and every instance made
//! from it carry their version's bindings, so a decision pays one `match`
//! for it, not a lookup.

use std::sync::Mutex;

use wasmtime::component::{Component, Linker};
use wasmtime::{ResourceLimiter, Store, Trap};

use super::bindings::{v1_0, v1_1};
use super::{Isolation, PolicyError, Runtime};
use crate::wit::WitVersion;

/// Per-store state: only the memory limiter. No WASI context exists, so no
/// capability can be granted even by mistake.
pub struct StoreState {
    limiter: MemoryLimiter,
}

/// Caps linear memory and remembers that the cap was hit, so a trap caused
/// by it is reported as what it is rather than as a generic trap.
struct MemoryLimiter {
    max_bytes: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            wasmtime::bail!(
                "linear memory of {desired} bytes exceeds the limit of {}",
                self.max_bytes
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 20_000)
    }
}

/// A component linked with the bindings of the WIT version it was built
/// against.
enum Pre {
    V1_0(v1_0::PolicyPre<StoreState>),
    V1_1(v1_1::PolicyPre<StoreState>),
}

/// An instance of a policy, through its version's bindings: what a decision
/// matches on to convert the request into the records that version expects.
pub enum Policy {
    V1_0(v1_0::Policy),
    V1_1(v1_1::Policy),
}

impl Policy {
    /// `configure`, the same in every version.
    fn configure(
        &self,
        store: &mut Store<StoreState>,
        params: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Policy::V1_0(p) => p.stagegate_policy_evaluate().call_configure(store, params),
            Policy::V1_1(p) => p.stagegate_policy_evaluate().call_configure(store, params),
        }
    }
}

struct Warm {
    store: Store<StoreState>,
    policy: Policy,
    calls: u64,
}

/// A policy component linked against the host, with its parameters.
pub struct LoadedPolicy {
    runtime: Runtime,
    /// The runtime's limits with the bundle's own in place.
    limits: super::Limits,
    pre: Pre,
    params: String,
    isolation: Isolation,
    warm: Mutex<Vec<Warm>>,
}

impl LoadedPolicy {
    /// Links `component` with no capabilities and proves it works: one
    /// instance is created and configured with `params` now, so a component
    /// that does not implement the world, was built for a WIT version this
    /// host does not run, fails to instantiate or rejects its parameters is
    /// refused here, at load, not at its first decision.
    pub fn new(
        runtime: &Runtime,
        component: &Component,
        params: String,
        isolation: Isolation,
    ) -> Result<Self, PolicyError> {
        Self::with_limits(
            runtime,
            component,
            params,
            isolation,
            &super::BundleLimits::default(),
        )
    }

    /// Like [`LoadedPolicy::new`], under the bundle's own limits where it
    /// has them.
    pub fn with_limits(
        runtime: &Runtime,
        component: &Component,
        params: String,
        isolation: Isolation,
        own: &super::BundleLimits,
    ) -> Result<Self, PolicyError> {
        let version = WitVersion::of(runtime.engine(), component)
            .map_err(|e| PolicyError::Incompatible(e.to_string()))?;
        let mut linker: Linker<StoreState> = Linker::new(runtime.engine());
        // A std wasm32-wasip2 guest imports wasi:cli and wasi:io even when it
        // never uses them. Every import becomes a function that traps: the
        // policy gets no clock, filesystem, network or randomness.
        super::inert::define(&mut linker, component)
            .map_err(|e| PolicyError::Incompatible(format!("{e:#}")))?;
        linker
            .define_unknown_imports_as_traps(component)
            .map_err(|e| PolicyError::Incompatible(format!("{e:#}")))?;
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(|e| PolicyError::Incompatible(format!("{e:#}")))?;
        let incompatible = |e: wasmtime::Error| {
            PolicyError::Incompatible(format!("as {}: {e:#}", version.package()))
        };
        let pre = match version {
            WitVersion::V1_0 => {
                Pre::V1_0(v1_0::PolicyPre::new(instance_pre).map_err(incompatible)?)
            }
            WitVersion::V1_1 => {
                Pre::V1_1(v1_1::PolicyPre::new(instance_pre).map_err(incompatible)?)
            }
        };
        let loaded = LoadedPolicy {
            runtime: runtime.clone(),
            limits: own.apply(runtime.limits()),
            pre,
            params,
            isolation,
            warm: Mutex::new(Vec::new()),
        };
        let first = loaded.instantiate()?;
        loaded.put_back(first);
        Ok(loaded)
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The WIT version the component was built against, read at load.
    pub fn wit_version(&self) -> WitVersion {
        match self.pre {
            Pre::V1_0(_) => WitVersion::V1_0,
            Pre::V1_1(_) => WitVersion::V1_1,
        }
    }

    /// Warm instances currently pooled.
    pub fn warm_instances(&self) -> usize {
        self.warm.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// Fills the warm pool up to `n` instances (bounded by
    /// `warm_per_bundle`), so the first burst of decisions after an
    /// activation does not pay for instantiation.
    pub fn prewarm(&self, n: usize) -> Result<(), PolicyError> {
        let target = n.min(self.limits.warm_per_bundle);
        while self.warm_instances() < target && self.isolation == Isolation::Warm {
            let w = self.instantiate()?;
            self.put_back(w);
        }
        Ok(())
    }

    fn instantiate(&self) -> Result<Warm, PolicyError> {
        let limits = &self.limits;
        let state = StoreState {
            limiter: MemoryLimiter {
                max_bytes: limits.memory_bytes,
                hit: false,
            },
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(Runtime::ticks_for(self.limits.deadline));
        let policy = match &self.pre {
            Pre::V1_0(pre) => pre.instantiate(&mut store).map(Policy::V1_0),
            Pre::V1_1(pre) => pre.instantiate(&mut store).map(Policy::V1_1),
        }
        .map_err(|e| self.classify(&store, e, PolicyError::Instantiate))?;
        match policy.configure(&mut store, &self.params) {
            Ok(Ok(())) => Ok(Warm {
                store,
                policy,
                calls: 0,
            }),
            Ok(Err(msg)) => Err(PolicyError::Configure(msg)),
            Err(e) => Err(self.classify(&store, e, PolicyError::Trap)),
        }
    }

    fn take(&self) -> Result<Warm, PolicyError> {
        if self.isolation == Isolation::Warm
            && let Some(w) = self.warm.lock().ok().and_then(|mut pool| pool.pop())
        {
            return Ok(w);
        }
        self.instantiate()
    }

    fn put_back(&self, w: Warm) {
        if self.isolation != Isolation::Warm || w.calls >= self.limits.recycle_after_calls {
            return;
        }
        if let Ok(mut pool) = self.warm.lock()
            && pool.len() < self.limits.warm_per_bundle
        {
            pool.push(w);
        }
    }

    /// Runs one export on an instance, enforcing the deadline and returning
    /// the instance to the pool only after a normal return.
    pub fn call<R>(
        &self,
        f: impl FnOnce(&Policy, &mut Store<StoreState>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, PolicyError> {
        let mut w = self.take()?;
        w.store
            .set_epoch_deadline(Runtime::ticks_for(self.limits.deadline));
        let result = f(&w.policy, &mut w.store);
        w.calls += 1;
        match result {
            Ok(Ok(r)) => {
                self.put_back(w);
                Ok(r)
            }
            Ok(Err(msg)) => {
                // The guest returned normally with an error: the instance is
                // intact and may serve again.
                self.put_back(w);
                Err(PolicyError::Guest(msg))
            }
            Err(e) => Err(self.classify(&w.store, e, PolicyError::Trap)),
        }
    }

    /// Names the cause of a failed call: deadline, memory, stack or trap.
    fn classify(
        &self,
        store: &Store<StoreState>,
        e: wasmtime::Error,
        other: fn(String) -> PolicyError,
    ) -> PolicyError {
        let limits = &self.limits;
        if store.data().limiter.hit {
            return PolicyError::Memory(limits.memory_bytes);
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PolicyError::Deadline(limits.deadline.as_millis()),
            Some(Trap::StackOverflow) => PolicyError::Stack,
            Some(trap) => other(format!("{trap}")),
            // The root cause is the sentence that says what happened (for
            // example an import the host does not grant); the layers above
            // it are wasmtime's context.
            None => other(e.root_cause().to_string()),
        }
    }
}
