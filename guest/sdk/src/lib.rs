//! The stagegate policy SDK.
//!
//! A policy is a Rust crate compiled to a `wasm32-wasip2` component that
//! exports the `stagegate:policy/evaluate` interface (see `wit/policy.wit`).
//! This crate carries the generated bindings, so a policy author needs no
//! WIT files and no direct `wit-bindgen` dependency, plus the vocabulary every
//! deployment policy repeats:
//!
//! - [`Findings`]: collect findings with a code, severity, JSON pointer and
//!   message, and derive the outcome from them;
//! - [`criteria`]: the newest observation per metric, whether a criterion is
//!   met and whether a trigger is breached (as docs/decisions.md defines them);
//! - [`tiers::PerTier`]: thresholds that vary by risk tier, read from
//!   `params.json`;
//! - [`time`]: hour/day arithmetic on the integer timestamps the host passes;
//! - [`arena`]: an allocator that serves each call's blocks by bumping a
//!   pointer and forgets them together once the host has read the answer.
//!
//! A minimal policy:
//!
//! ```ignore
//! use stagegate_sdk::{Guest, GateRequest, GateDecision, Findings};
//!
//! struct MyPolicy;
//! impl Guest for MyPolicy {
//!     fn configure(_params: String) -> Result<(), String> { Ok(()) }
//!     fn gate(req: GateRequest) -> Result<GateDecision, String> {
//!         let mut f = Findings::new();
//!         if req.authorisation.is_none() {
//!             f.block("authorisation.missing", "/authorisation", "no deployment authorisation is recorded");
//!         }
//!         Ok(f.into_gate(None))
//!     }
//!     // progression, monitoring ...
//! #   fn progression(_: stagegate_sdk::ProgressionRequest) -> Result<stagegate_sdk::ProgressionDecision, String> { unimplemented!() }
//! #   fn monitoring(_: stagegate_sdk::MonitoringRequest) -> Result<stagegate_sdk::MonitoringDecision, String> { unimplemented!() }
//! }
//! #[cfg(target_arch = "wasm32")]
//! stagegate_sdk::export_policy!(MyPolicy);
//! ```
//!
//! Determinism: the host grants a policy no WASI capability, so anything that
//! reaches for the outside world traps. In particular `std::collections::HashMap`
//! with its default hasher asks WASI for random seeds: use `BTreeMap`.

pub mod arena;
pub mod criteria;
pub mod findings;
pub mod text;
pub mod tiers;
pub mod time;

/// Bindings generated from `wit/policy.wit`.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "policy",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_policy",
        default_bindings_module: "stagegate_sdk::bindings",
    });
}

pub use bindings::export_policy;
pub use bindings::exports::stagegate::policy::evaluate::Guest;
pub use bindings::stagegate::policy::types::*;
pub use criteria::{CriterionStatus, Observations};
pub use findings::Findings;
pub use tiers::PerTier;

/// The WIT package this SDK was generated from. Bundles record it in their
/// manifest so a host can refuse a policy built for an incompatible contract.
pub const WIT_PACKAGE: &str = "stagegate:policy@1.1.0";

impl RiskTier {
    /// Position on the ordered scale `low` < `medium` < `high` < `critical`.
    pub fn rank(self) -> u8 {
        match self {
            RiskTier::Low => 0,
            RiskTier::Medium => 1,
            RiskTier::High => 2,
            RiskTier::Critical => 3,
        }
    }

    /// The `snake_case` name used on the wire and in `params.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskTier::Low => "low",
            RiskTier::Medium => "medium",
            RiskTier::High => "high",
            RiskTier::Critical => "critical",
        }
    }

    /// `self` is at least `other` on the tier scale.
    pub fn at_least(self, other: RiskTier) -> bool {
        self.rank() >= other.rank()
    }
}

impl Severity {
    /// Position on the ordered scale `low` < `medium` < `high` < `critical`.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Low => 0,
            Severity::Medium => 1,
            Severity::High => 2,
            Severity::Critical => 3,
        }
    }

    /// The `snake_case` name used on the wire and in `params.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// `self` is at least `other` on the severity scale.
    pub fn at_least(self, other: Severity) -> bool {
        self.rank() >= other.rank()
    }
}

impl Comparison {
    /// `left op right`. A NaN on either side never holds.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Comparison::Lt => left < right,
            Comparison::Le => left <= right,
            Comparison::Gt => left > right,
            Comparison::Ge => left >= right,
        }
    }

    /// The operator as written in a plan: `<`, `<=`, `>`, `>=`.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        }
    }
}
