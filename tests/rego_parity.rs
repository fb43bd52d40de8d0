//! The Rego transcription of the gate rules used by the benchmark
//! (host/benches/rego/gate.rego) must decide like the reference policy, or
//! the comparison would be between different rules. Every gate test case
//! of policies/iso42001 that is a well-formed request is run through both;
//! outcomes and the codes of blocking and informational findings must match
//! (the reference policy's warnings, such as `plan.trigger_incomplete`, are
//! not transcribed to Rego).

use crate::support;

#[path = "../host/benches/rego/mod.rs"]
mod rego;

use std::collections::BTreeSet;

use stagegate::decision::{DecisionKind, FindingSeverity};
use stagegate::policy::{ActivePolicy, Isolation, Limits, Runtime};

#[test]
fn rego_and_the_reference_policy_agree_on_every_gate_case() {
    let bundle = support::reference_bundle();
    let runtime = Runtime::new(Limits::default()).unwrap();
    let component = runtime.compile(bundle.wasm()).unwrap();
    let base: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&bundle.params().unwrap()).unwrap();

    let mut compared = 0;
    let mut mismatches = Vec::new();
    let dir = support::root().join("policies/iso42001/tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        let cases: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for case in cases {
            if case["decision"] != "gate" || case["expect"].get("error").is_some() {
                continue;
            }
            let mut params = base.clone();
            if let Some(over) = case["params"].as_object() {
                params.extend(over.clone());
            }
            let params = serde_json::Value::Object(params).to_string();
            let input = case["input"].to_string();

            let policy = ActivePolicy::with_component(
                &runtime,
                bundle,
                &component,
                params.clone(),
                Isolation::Warm,
            )
            .unwrap();
            let wasm = policy
                .decide_json(DecisionKind::Gate, input.as_bytes())
                .unwrap()
                .envelope;
            let wasm_codes: BTreeSet<String> = wasm
                .findings
                .iter()
                .filter(|f| f.severity != FindingSeverity::Warning)
                .map(|f| f.code.clone())
                .collect();

            let decision: serde_json::Value =
                serde_json::from_str(&rego::RegoGate::new(&params).decide(&input)).unwrap();
            let rego_codes: BTreeSet<String> = decision["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["code"].as_str().unwrap().to_string())
                .collect();

            compared += 1;
            if decision["outcome"] != wasm.outcome.as_str() || rego_codes != wasm_codes {
                mismatches.push(format!(
                    "{}: wasm {} {:?} / rego {} {:?}",
                    case["name"],
                    wasm.outcome.as_str(),
                    wasm_codes,
                    decision["outcome"],
                    rego_codes
                ));
            }
        }
    }
    assert!(compared >= 90, "only {compared} gate cases compared");
    assert!(
        mismatches.is_empty(),
        "{} of {compared} differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
