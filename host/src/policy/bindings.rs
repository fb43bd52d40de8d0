//! Host bindings generated from `wit/policy.wit`.
//!
//! `Policy` is the instantiated world; `PolicyPre` holds the linked,
//! type-checked component so each new instance skips import resolution.

wasmtime::component::bindgen!({
    world: "policy",
    path: "../wit",
});

/// The WIT package this host speaks. A bundle's manifest must name the same
/// major version, and a minor version no newer than this one.
pub const WIT_PACKAGE: &str = "stagegate:policy@1.0.0";

/// Conversions between decision JSON types and this module's WIT records.
pub mod convert {
    crate::wit_conversions!(crate::policy::bindings::stagegate::policy::types);
}
