//! Host bindings, one module per WIT version the host serves
//! (docs/wit-versions.md).
//!
//! A component exports exactly one `stagegate:policy/evaluate@X.Y.Z`
//! interface; its version says which record shapes it expects. A 1.1.0
//! record is not a 1.0.0 record with more fields as far as the component
//! model is concerned (a record's type is its exact field list), so a 1.0.0
//! component cannot be called through 1.1.0 bindings: each version gets its
//! own `bindgen!` module, and [`WitVersion::of`] picks one when a component
//! is loaded, from the name of the interface it exports. The choice is made
//! once per component; a decision only matches on the chosen variant.
//!
//! In each module, `Policy` is the instantiated world and `PolicyPre` holds
//! the linked, type-checked component so each new instance skips import
//! resolution; `convert` turns decision JSON types into that version's
//! records.

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::wit::{EVALUATE, WitVersion, WitVersionError};

/// `stagegate:policy@1.0.0`, frozen in `wit/1.0.0/policy.wit`.
pub(crate) mod v1_0 {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../wit/1.0.0",
    });

    /// Conversions between decision JSON types and 1.0.0 records: the
    /// attestations 1.1.0 added are not passed on.
    pub(crate) mod convert {
        crate::wit_conversions!(v1_0: crate::policy::bindings::v1_0::stagegate::policy::types);
    }
}

/// `stagegate:policy@1.1.0`, the current contract in `wit/policy.wit`.
pub(crate) mod v1_1 {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../wit",
    });

    /// Conversions between decision JSON types and 1.1.0 records.
    pub(crate) mod convert {
        crate::wit_conversions!(v1_1: crate::policy::bindings::v1_1::stagegate::policy::types);
    }
}

/// Reading the version a compiled component exports needs the engine, so
/// it lives with the bindings.
impl WitVersion {
    /// The version of the `stagegate:policy/evaluate` interface `component`
    /// exports, and the bindings that serve it.
    pub fn of(engine: &Engine, component: &Component) -> Result<Self, WitVersionError> {
        let ty = component.component_type();
        let mut names = Vec::new();
        for (name, item) in ty.exports(engine) {
            if let Some(version) = name.strip_prefix(EVALUATE)
                && matches!(item.ty, ComponentItem::ComponentInstance(_))
            {
                let version =
                    semver::Version::parse(version).map_err(|e| WitVersionError::Unparsable {
                        name: name.to_string(),
                        error: e.to_string(),
                    })?;
                return Self::for_version(&version);
            }
            names.push(name.to_string());
        }
        Err(WitVersionError::NoEvaluate {
            exports: if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_1_1_conversion_passes_attestations_on_and_absence_stays_none() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let body = format!(
            r#"{{"now":"2026-11-26T12:00:00Z","system":{{"id":"s","risk_tier":"high"}},
              "verification":{{"results":[{{"name":"a","passed":true,"attestation":{{"keyid":"k","predicate_type":"p","statement_digest":"{digest}"}}}},{{"name":"b","passed":true}}]}},
              "supply_chain":{{"third_party":true,"controls_confirmed":true,"attestation":{{"keyid":"k2","predicate_type":"https://slsa.dev/provenance/v1","statement_digest":"{digest}"}}}}}}"#
        );
        let crate::decision::Request::Gate(r) =
            crate::decision::decode(crate::decision::DecisionKind::Gate, body.as_bytes()).unwrap()
        else {
            panic!("not a gate request")
        };
        let w = v1_1::convert::gate_request(r.clone());
        let results = w.verification.unwrap().results;
        let a = results[0].attestation.as_ref().unwrap();
        assert_eq!((a.keyid.as_str(), a.predicate_type.as_str()), ("k", "p"));
        assert_eq!(a.statement_digest, digest);
        assert!(results[1].attestation.is_none());
        let s = w.supply_chain.unwrap().attestation.unwrap();
        assert_eq!(s.predicate_type, "https://slsa.dev/provenance/v1");
        // 1.0.0 records have no such field; everything else arrives alike.
        let old = v1_0::convert::gate_request(r);
        assert_eq!(old.verification.unwrap().results.len(), 2);
        assert!(old.supply_chain.unwrap().controls_confirmed);
    }
}
