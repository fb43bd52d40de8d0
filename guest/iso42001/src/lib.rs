//! The reference ISO/IEC 42001 deployment policy
//! (docs/decisions.md#the-reference-policy).
//!
//! Each decision is a module named after it (`gate`, `progression`,
//! `monitoring`) whose checks read like the rule tables of
//! docs/decisions.md. Thresholds come from the bundle's `params.json`
//! ([`params::Params`]).
//!
//! The same rules compile twice: as the `wasm32-wasip2` component shipped in
//! the bundle, and natively (as an rlib) for unit tests and the benchmark's
//! no-sandbox floor. Only the export glue below is wasm-specific.

pub mod authorisation;
pub mod gate;
pub mod monitoring;
pub mod params;
pub mod progression;
pub mod triggers;

use std::sync::RwLock;

use stagegate_sdk::{
    GateDecision, GateRequest, Guest, MonitoringDecision, MonitoringRequest, ProgressionDecision,
    ProgressionRequest,
};

use params::Params;

/// Parameters set by `configure`; [`Params::default`] until then.
static PARAMS: RwLock<Option<Params>> = RwLock::new(None);

fn with_params<T>(f: impl FnOnce(&Params) -> T) -> Result<T, String> {
    let guard = PARAMS
        .read()
        .map_err(|_| "policy parameters are poisoned".to_string())?;
    match guard.as_ref() {
        Some(p) => Ok(f(p)),
        None => Ok(f(&Params::default())),
    }
}

/// The component's exports.
pub struct Reference;

impl Guest for Reference {
    fn configure(params: String) -> Result<(), String> {
        let parsed = Params::parse(&params)?;
        let mut guard = PARAMS
            .write()
            .map_err(|_| "policy parameters are poisoned".to_string())?;
        *guard = Some(parsed);
        // What every decision reads is in place: from here on, a call's
        // blocks come from the arena.
        stagegate_sdk::arena::begin();
        Ok(())
    }

    fn gate(request: GateRequest) -> Result<GateDecision, String> {
        with_params(|p| gate::decide(&request, p))
    }

    fn progression(request: ProgressionRequest) -> Result<ProgressionDecision, String> {
        with_params(|p| progression::decide(&request, p))
    }

    fn monitoring(request: MonitoringRequest) -> Result<MonitoringDecision, String> {
        with_params(|p| monitoring::decide(&request, p))
    }
}

#[cfg(target_arch = "wasm32")]
stagegate_sdk::export_policy!(Reference);

/// A decision's blocks by bumping a pointer (`stagegate_sdk::arena`):
/// allocation was half the time the reference gate spent in the sandbox.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOC: stagegate_sdk::arena::CallArena = stagegate_sdk::arena::CallArena;
