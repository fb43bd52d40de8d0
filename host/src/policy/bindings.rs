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

/// `stagegate:policy@1.0.0`, frozen in `wit/1.0.0/policy.wit`.
pub mod v1_0 {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../wit/1.0.0",
    });

    /// Conversions between decision JSON types and 1.0.0 records: the
    /// attestations 1.1.0 added are not passed on.
    pub mod convert {
        crate::wit_conversions!(v1_0: crate::policy::bindings::v1_0::stagegate::policy::types);
    }
}

/// `stagegate:policy@1.1.0`, the current contract in `wit/policy.wit`.
pub mod v1_1 {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../wit",
    });

    /// Conversions between decision JSON types and 1.1.0 records.
    pub mod convert {
        crate::wit_conversions!(v1_1: crate::policy::bindings::v1_1::stagegate::policy::types);
    }
}

/// The newest WIT package this host speaks: what `stagegate build` records
/// for a component it cannot read a version from, and the SDK's version.
pub const WIT_PACKAGE: &str = "stagegate:policy@1.1.0";

/// Every WIT package this host serves, oldest first.
pub const SUPPORTED: [&str; 2] = ["stagegate:policy@1.0.0", "stagegate:policy@1.1.0"];

/// The package name a component's exports are looked up under.
const PACKAGE: &str = "stagegate:policy";

/// The interface every policy exports, without its version.
const EVALUATE: &str = "stagegate:policy/evaluate@";

/// The supported packages as one phrase, for messages.
pub fn supported_list() -> String {
    SUPPORTED.join(" and ")
}

/// The WIT versions a component may be built against, each with its own
/// bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitVersion {
    V1_0,
    V1_1,
}

impl WitVersion {
    /// The package this version names, e.g. `stagegate:policy@1.1.0`.
    pub fn package(self) -> &'static str {
        match self {
            WitVersion::V1_0 => SUPPORTED[0],
            WitVersion::V1_1 => SUPPORTED[1],
        }
    }

    /// Which bindings serve a component that was built against `version`
    /// of the package: the same major and minor (a patch release changes
    /// no type). A newer minor may rely on fields this host cannot give, and
    /// another major is another contract: both are refused, naming what
    /// was found and what this host runs.
    pub fn for_version(version: &semver::Version) -> Result<Self, String> {
        match (version.major, version.minor) {
            (1, 0) => Ok(WitVersion::V1_0),
            (1, 1) => Ok(WitVersion::V1_1),
            (1, _) => Err(format!(
                "it was built for {PACKAGE}@{version}, a newer minor version than this host runs ({}); upgrade the host, or rebuild the policy against 1.1.0",
                supported_list()
            )),
            _ => Err(format!(
                "it was built for {PACKAGE}@{version}, another major version than this host runs ({})",
                supported_list()
            )),
        }
    }

    /// The version of the `stagegate:policy/evaluate` interface `component`
    /// exports, and the bindings that serve it.
    pub fn of(engine: &Engine, component: &Component) -> Result<Self, String> {
        let ty = component.component_type();
        let mut names = Vec::new();
        for (name, item) in ty.exports(engine) {
            if let Some(version) = name.strip_prefix(EVALUATE)
                && matches!(item.ty, ComponentItem::ComponentInstance(_))
            {
                let version = semver::Version::parse(version)
                    .map_err(|e| format!("it exports {name}, whose version does not parse: {e}"))?;
                return Self::for_version(&version);
            }
            names.push(name.to_string());
        }
        Err(format!(
            "it exports no {PACKAGE}/evaluate interface (exports: {}); this host runs {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
            supported_list()
        ))
    }
}

/// The WIT package a component's bytes say it was built against, read from
/// the name of the `stagegate:policy/evaluate@X.Y.Z` interface it exports
/// at top level, without compiling it: what `stagegate build` records in
/// the manifest. `None` for bytes that are not a component exporting that
/// interface (loading such a bundle is refused with the reason).
pub fn package_of(wasm: &[u8]) -> Option<String> {
    use wasmparser::{ComponentExternalKind, Parser, Payload};
    // Nested modules and components are parsed inline; only exports at
    // depth 0 are the component's own.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.checked_sub(1)?,
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.ok()?;
                    if export.kind == ComponentExternalKind::Instance
                        && let Some(version) = export.name.name.strip_prefix(EVALUATE)
                    {
                        return Some(format!("{PACKAGE}@{version}"));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn each_supported_minor_gets_its_own_bindings_and_patches_share_them() {
        assert_eq!(WitVersion::for_version(&v("1.0.0")), Ok(WitVersion::V1_0));
        assert_eq!(WitVersion::for_version(&v("1.0.3")), Ok(WitVersion::V1_0));
        assert_eq!(WitVersion::for_version(&v("1.1.0")), Ok(WitVersion::V1_1));
        assert_eq!(WitVersion::V1_1.package(), WIT_PACKAGE);
    }

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

    #[test]
    fn a_newer_minor_or_another_major_is_refused_naming_found_and_supported() {
        let e = WitVersion::for_version(&v("1.2.0")).unwrap_err();
        assert!(e.contains("built for stagegate:policy@1.2.0"), "{e}");
        assert!(e.contains("newer minor version"), "{e}");
        assert!(
            e.contains("stagegate:policy@1.0.0 and stagegate:policy@1.1.0"),
            "{e}"
        );
        let e = WitVersion::for_version(&v("2.0.0")).unwrap_err();
        assert!(e.contains("built for stagegate:policy@2.0.0"), "{e}");
        assert!(e.contains("another major version"), "{e}");
    }
}
