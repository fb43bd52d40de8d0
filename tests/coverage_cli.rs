//! `stagegate test --coverage`: the finding codes, outcomes and parameters
//! a policy's test cases leave untried, and `--coverage-min` as a gate.

use crate::support;

use std::path::Path;

use serde_json::{Value, json};

/// The reference policy's declared finding codes (controls.json `codes`).
fn declared_codes() -> Vec<String> {
    let text = std::fs::read_to_string(support::root().join("policies/iso42001/controls.json"))
        .expect("controls.json");
    let v: Value = serde_json::from_str(&text).expect("controls.json is JSON");
    v["codes"]
        .as_array()
        .expect("controls.json lists its codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// `stagegate test ARGS`: exit code and stdout + stderr.
fn test(cwd: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["test"];
    all.extend_from_slice(args);
    let out = support::run(cwd, &all, None);
    let (o, e) = support::text(&out);
    (out.status.code(), format!("{o}{e}"))
}

#[test]
fn the_reference_policy_produces_every_finding_code_it_declares() {
    let codes = declared_codes();
    assert!(codes.len() >= 50, "{codes:?}");
    let (code, out) = test(
        &support::root(),
        &["policies/iso42001", "--coverage-min", "100"],
    );
    assert_eq!(code, Some(0), "{out}");
    let n = codes.len();
    assert!(
        out.contains(&format!(
            "coverage: {n}/{n} finding codes produced (100.0%)"
        )),
        "{out}"
    );
    assert!(out.contains("codes no case produced: none"), "{out}");
    for kind in ["gate", "progression", "monitoring"] {
        assert!(
            out.contains(&format!("{kind} outcomes never reached: none")),
            "{out}"
        );
    }
    assert!(!out.contains("not declared"), "{out}");
}

/// A policy directory around the reference component, prebuilt (as a
/// policy in any language would be), with `cases` as its only tests.
fn policy_with(cases: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let reference = support::root().join("policies/iso42001");
    std::fs::write(
        p.join("bundle.toml"),
        "name = \"coverage-probe\"\nversion = \"0.1.0\"\n[component]\nwasm = \"policy.wasm\"\n",
    )
    .unwrap();
    std::fs::write(p.join("policy.wasm"), support::reference_bundle().wasm()).unwrap();
    for f in ["controls.json", "params.json"] {
        std::fs::copy(reference.join(f), p.join(f)).unwrap();
    }
    std::fs::create_dir(p.join("tests")).unwrap();
    std::fs::write(
        p.join("tests/cases.json"),
        serde_json::to_vec_pretty(cases).unwrap(),
    )
    .unwrap();
    dir
}

#[test]
fn untried_codes_outcomes_and_parameters_are_named_and_coverage_min_fails_below_it() {
    let mut gate = support::high_risk_gate();
    gate["authorisation"] = json!(null);
    let cases = json!([
        {
            "name": "no authorisation: deny",
            "decision": "gate",
            "params": {"deployable_tiers": ["low", "medium", "high", "critical"]},
            "input": gate,
            "expect": {"outcome": "deny", "codes": ["authorisation.missing"],
                       "absent_codes": ["risk.prohibited"]}
        }
    ]);
    let dir = policy_with(&cases);
    let path = dir.path().display().to_string();

    // Reported, without failing, by --coverage alone.
    let (code, out) = test(&support::root(), &[&path, "--coverage"]);
    assert_eq!(code, Some(0), "{out}");
    let n = declared_codes().len();
    assert!(
        out.lines()
            .any(|l| l.starts_with("coverage: ")
                && l.contains(&format!("/{n} finding codes produced"))),
        "{out}"
    );
    let uncovered = out
        .lines()
        .find(|l| l.contains("codes no case produced:"))
        .unwrap_or_else(|| panic!("{out}"));
    // A code the case names but did not get is uncovered too.
    assert!(uncovered.contains("risk.prohibited"), "{out}");
    assert!(uncovered.contains("trigger.rollback"), "{out}");
    assert!(!uncovered.contains("authorisation.missing"), "{out}");
    assert!(out.contains("gate outcomes never reached: allow"), "{out}");
    assert!(
        out.contains("progression outcomes never reached: promote, hold, rollback, suspend"),
        "{out}"
    );
    let params = out
        .lines()
        .find(|l| l.contains("params.json keys no case overrode:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(params.contains("min_stages"), "{out}");
    assert!(!params.contains("deployable_tiers"), "{out}");

    // --coverage-min fails below its threshold, saying so.
    let (code, out) = test(&support::root(), &[&path, "--coverage-min", "50"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");
    assert!(out.contains("is below --coverage-min 50%"), "{out}");
    // ...and passes at or under it.
    let (code, out) = test(&support::root(), &[&path, "--coverage-min", "1"]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn a_coverage_min_that_is_not_a_percentage_is_refused() {
    for bad in ["101", "-1", "most"] {
        let arg = format!("--coverage-min={bad}");
        let (code, out) = test(&support::root(), &["policies/iso42001", &arg]);
        assert_eq!(code, Some(2), "{bad}: {out}");
        assert!(
            out.contains("not a percentage from 0 to 100"),
            "{bad}: {out}"
        );
    }
}
