//! How much a policy may take from its host.
//!
//! A policy is untrusted code from the host's point of view: it may loop,
//! allocate or recurse without bound, by accident or not. Every knob below
//! bounds one of those, and every breach fails the decision closed.

use std::time::Duration;

/// Resource limits for policy instances. The defaults suit the reference
/// policy with a wide margin: it decides in microseconds with ~2 MiB of
/// linear memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one call (configure or decision), enforced by
    /// epoch interruption: a call past it traps.
    pub deadline: Duration,
    /// Largest linear memory one instance may grow to.
    pub memory_bytes: usize,
    /// Deepest wasm stack one call may use; deeper recursion traps instead
    /// of overflowing the host thread.
    pub stack_bytes: usize,
    /// Component instances the engine's pooling allocator reserves slots for,
    /// across all bundles (warm and in flight). Virtual address space is
    /// reserved per slot, resident memory only when used.
    pub max_instances: u32,
    /// Warm instances kept per bundle for reuse.
    pub warm_per_bundle: usize,
    /// Calls after which a warm instance is retired, so that whatever a
    /// policy accumulates in its memory cannot grow for ever.
    pub recycle_after_calls: u64,
    /// The largest memory cap any one bundle is given by its own
    /// [`BundleLimits`]: the pooling allocator's memory slots are sized for
    /// the larger of this and `memory_bytes`. 0 when no bundle has its own.
    pub largest_bundle_memory_bytes: usize,
}

/// One bundle's own sandbox limits (`[[bundles]] limits = { ... }`), each
/// replacing the server-wide one when given: an interpreted policy (a
/// Python component carries its interpreter) needs more memory and time
/// than the Rust reference, without raising every other bundle's caps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BundleLimits {
    /// Largest linear memory of one instance of this bundle, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<usize>,
    /// Wall-clock budget of one call of this bundle, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Warm instances kept for this bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_instances: Option<usize>,
}

impl BundleLimits {
    /// `base` with this bundle's own limits in place.
    pub fn apply(&self, base: &Limits) -> Limits {
        let mut l = base.clone();
        if let Some(m) = self.memory_mib {
            l.memory_bytes = m << 20;
        }
        if let Some(d) = self.deadline_ms {
            l.deadline = Duration::from_millis(d);
        }
        if let Some(w) = self.warm_instances {
            l.warm_per_bundle = w;
        }
        l
    }
}

/// The one place the sandbox's defaults are set: the server configuration
/// (`[limits]`) and the command line's `--deadline-ms` / `--memory-mib` read
/// theirs from here, and `examples/stagegate.toml` is tested against them.
impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            stack_bytes: 512 << 10,
            max_instances: 128,
            warm_per_bundle: 16,
            recycle_after_calls: 100_000,
            largest_bundle_memory_bytes: 0,
        }
    }
}

impl Limits {
    /// The deadline in whole milliseconds, the unit settings give it in.
    pub fn deadline_ms(&self) -> u64 {
        u64::try_from(self.deadline.as_millis()).unwrap_or(u64::MAX)
    }

    /// The memory cap in whole MiB, the unit settings give it in.
    pub fn memory_mib(&self) -> usize {
        self.memory_bytes >> 20
    }
}

/// How decisions map onto instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Reuse configured instances between decisions (microseconds per call).
    /// An instance that trapped is never reused.
    #[default]
    Warm,
    /// A new instance for every decision (tens of microseconds per call):
    /// no state can leak between decisions, even in a policy that keeps some.
    Fresh,
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::Warm => "warm",
            Isolation::Fresh => "fresh",
        })
    }
}

impl std::str::FromStr for Isolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "warm" => Ok(Isolation::Warm),
            "fresh" => Ok(Isolation::Fresh),
            other => Err(format!(
                "unknown isolation '{other}': expected warm or fresh"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_names_read_back_as_themselves() {
        for i in [Isolation::Warm, Isolation::Fresh] {
            assert_eq!(i.to_string().parse::<Isolation>(), Ok(i));
        }
    }
}
