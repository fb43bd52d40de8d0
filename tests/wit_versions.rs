//! One host serves policies built against `stagegate:policy@1.0.0` and
//! `@1.1.0` side by side (docs/wit-versions.md): a 1.0.0 bundle answers
//! exactly as it did before 1.1.0 existed, a 1.1.0 bundle sees the
//! attestations, and a bundle built for a newer version is refused at load,
//! naming the version it was built for and the versions this host runs.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use stagegate::bundle::Bundle;
use stagegate::bundle::source::PolicySource;
use stagegate::decision::DecisionKind;
use stagegate::policy::{ActivePolicy, Isolation, Limits, Runtime, WitVersion};
use stagegate::wit::package_of;

use support::server::Deployment;

const FIXTURE: &str = "tests/fixtures/iso42001-1.0.0";

/// The reference policy 1.0.0 as built before 1.1.0 (see its README).
fn fixture_bundle() -> Bundle {
    PolicySource::open(&support::root().join(FIXTURE))
        .and_then(|s| s.bundle())
        .expect("bundling the 1.0.0 fixture")
}

fn params_with(bundle: &Bundle, over: Option<&serde_json::Map<String, Value>>) -> String {
    let mut params: serde_json::Map<String, Value> =
        serde_json::from_str(&bundle.params().unwrap()).unwrap();
    if let Some(over) = over {
        params.extend(over.clone());
    }
    Value::Object(params).to_string()
}

/// An envelope as `answers.json` records it: without the parts that name
/// the decision instance (`decision_id`) or the bundle (`policy`).
fn answer(policy: &ActivePolicy, kind: DecisionKind, input: &Value) -> Value {
    match policy.decide_json(kind, input.to_string().as_bytes()) {
        Ok(d) => {
            let mut v = serde_json::to_value(&d.envelope).unwrap();
            let m = v.as_object_mut().unwrap();
            m.remove("decision_id");
            m.remove("policy");
            v
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn codes(answer: &Value) -> BTreeSet<String> {
    answer["findings"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| f["code"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// What `stagegate test` checks of a case: outcome, codes present, codes
/// absent, or the error.
fn meets(answer: &Value, expect: &Value) -> bool {
    if let Some(want) = expect["error"].as_str() {
        return answer["error"].as_str().is_some_and(|e| e.contains(want));
    }
    let found = codes(answer);
    let has = |list: &Value| -> Vec<String> {
        list.as_array()
            .map(|l| l.iter().map(|c| c.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    (expect["outcome"].is_null() || answer["outcome"] == expect["outcome"])
        && has(&expect["codes"]).iter().all(|c| found.contains(c))
        && has(&expect["absent_codes"])
            .iter()
            .all(|c| !found.contains(c))
}

#[test]
fn a_1_0_0_bundle_answers_every_policy_case_exactly_as_before_next_to_a_1_1_0_bundle() {
    let runtime = Runtime::new(Limits::default()).unwrap();
    let old = fixture_bundle();
    let new = support::reference_bundle();
    assert_eq!(old.manifest.wit, "stagegate:policy@1.0.0");
    assert_eq!(new.manifest.wit, "stagegate:policy@1.1.0");
    let old_component = runtime.compile(old.wasm()).unwrap();
    let new_component = runtime.compile(new.wasm()).unwrap();
    let recorded: BTreeMap<String, Value> = serde_json::from_slice(
        &std::fs::read(support::root().join(FIXTURE).join("answers.json")).unwrap(),
    )
    .unwrap();

    let dir = support::root().join("policies/iso42001/tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut compared = BTreeSet::new();
    let mut new_cases = 0;
    let mut failures = Vec::new();
    for file in files {
        let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
        let cases: Vec<Value> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for case in cases {
            let key = format!("{file_name}/{}", case["name"].as_str().unwrap());
            let kind: DecisionKind = serde_json::from_value(case["decision"].clone()).unwrap();
            let over = case["params"].as_object();

            // The 1.1.0 reference policy, on this case's expectations.
            let current = ActivePolicy::with_component(
                &runtime,
                new,
                &new_component,
                params_with(new, over),
                Isolation::Warm,
            )
            .unwrap();
            assert_eq!(current.loaded.wit_version(), WitVersion::V1_1);
            let a = answer(&current, kind, &case["input"]);
            if !meets(&a, &case["expect"]) {
                failures.push(format!("1.1.0 {key}: {a}"));
            }

            // The 1.0.0 fixture, in the same runtime, on what it answered
            // before: cases added since have no recorded answer.
            let Some(before) = recorded.get(&key) else {
                new_cases += 1;
                continue;
            };
            let frozen = ActivePolicy::with_component(
                &runtime,
                &old,
                &old_component,
                params_with(&old, over),
                Isolation::Warm,
            )
            .unwrap();
            assert_eq!(frozen.loaded.wit_version(), WitVersion::V1_0);
            let now = answer(&frozen, kind, &case["input"]);
            if &now != before {
                failures.push(format!("1.0.0 {key}:\n  before {before}\n  now    {now}"));
            }
            compared.insert(key);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let missing: Vec<_> = recorded.keys().filter(|k| !compared.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "recorded cases no longer in policies/iso42001/tests: {missing:?}"
    );
    assert_eq!(compared.len(), 159, "every recorded case compared");
    assert!(new_cases >= 8, "the 1.1 cases ran against 1.1.0 only");
}

#[test]
fn a_1_1_0_policy_sees_the_attestation_and_a_1_0_0_policy_does_not() {
    let runtime = Runtime::new(Limits::default()).unwrap();
    let old = fixture_bundle();
    let current = ActivePolicy::load(&runtime, support::reference_bundle(), Isolation::Warm)
        .expect("loading 1.1.0");
    let frozen = ActivePolicy::load(&runtime, &old, Isolation::Warm).expect("loading 1.0.0");

    let attested = support::high_risk_gate();
    let mut asserted = attested.clone();
    for r in asserted["verification"]["results"].as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("attestation");
    }

    let a = answer(&current, DecisionKind::Gate, &attested);
    assert_eq!(a["outcome"], "allow", "{a}");
    let a = answer(&current, DecisionKind::Gate, &asserted);
    assert_eq!(a["outcome"], "deny", "{a}");
    let paths: Vec<&str> = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "verification.unattested")
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/verification/results/0/attestation",
            "/verification/results/1/attestation",
            "/verification/results/2/attestation"
        ],
        "{a}"
    );

    // The 1.0.0 policy has no field to receive an attestation: it answers
    // both requests alike, as it always did.
    let with = answer(&frozen, DecisionKind::Gate, &attested);
    let without = answer(&frozen, DecisionKind::Gate, &asserted);
    assert_eq!(with["outcome"], "allow", "{with}");
    assert_eq!(with, without);
}

/// The reference component with its WIT version rewritten in place: the
/// same bytes, exporting `stagegate:policy/evaluate@{version}` (the version
/// strings have the same length, so every offset stays valid). This is what
/// a policy built against that version of the package looks like to a host.
fn component_for(version: &str) -> Vec<u8> {
    let wasm = support::reference_bundle().wasm().to_vec();
    let from = b"stagegate:policy/evaluate@1.1.0";
    let to = format!("stagegate:policy/evaluate@{version}");
    assert_eq!(to.len(), from.len());
    let types_from = b"stagegate:policy/types@1.1.0";
    let types_to = format!("stagegate:policy/types@{version}");
    replace_all(
        &replace_all(&wasm, from, to.as_bytes()),
        types_from,
        types_to.as_bytes(),
    )
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = haystack.to_vec();
    let mut i = 0;
    let mut n = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
            n += 1;
        } else {
            i += 1;
        }
    }
    assert!(n > 0, "{} not found", String::from_utf8_lossy(from));
    out
}

/// A signed-shape bundle around `wasm`, its manifest naming what the
/// component exports (as `stagegate build` records it).
fn bundle_of(wasm: Vec<u8>) -> Bundle {
    let template = support::reference_bundle();
    let wit = package_of(&wasm).expect("the component names its WIT version");
    let mut files: BTreeMap<String, Vec<u8>> = template
        .manifest
        .files
        .iter()
        .map(|f| (f.path.clone(), template.file(&f.path).unwrap().to_vec()))
        .collect();
    files.insert("policy.wasm".into(), wasm);
    Bundle::new(
        "iso42001-reference",
        semver::Version::new(9, 0, 0),
        &wit,
        None,
        files,
    )
    .unwrap()
}

#[test]
fn a_bundle_for_a_newer_minor_is_refused_at_load_naming_found_and_supported_versions() {
    let runtime = Runtime::new(Limits::default()).unwrap();
    let bundle = bundle_of(component_for("1.2.0"));
    assert_eq!(bundle.manifest.wit, "stagegate:policy@1.2.0");

    // The manifest check, before anything is compiled (and before a
    // signature is trusted, `stagegate verify` and uploads say the same).
    let e = bundle
        .manifest
        .check_wit_compatible()
        .unwrap_err()
        .to_string();
    assert!(e.contains("built for stagegate:policy@1.2.0"), "{e}");
    assert!(
        e.contains("this host runs stagegate:policy@1.0.0 and stagegate:policy@1.1.0"),
        "{e}"
    );
    assert!(e.contains("minor version 2 is newer"), "{e}");

    // The component itself, whatever its manifest claims.
    let e = match ActivePolicy::load(&runtime, &bundle, Isolation::Warm) {
        Ok(_) => panic!("a 1.2.0 component was loaded"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("built for stagegate:policy@1.2.0"), "{e}");
    assert!(
        e.contains("a newer minor version than this host runs"),
        "{e}"
    );
    assert!(
        e.contains("(stagegate:policy@1.0.0 and stagegate:policy@1.1.0)"),
        "{e}"
    );
}

#[test]
fn a_bundle_for_another_major_is_refused_at_load_naming_found_and_supported_versions() {
    let runtime = Runtime::new(Limits::default()).unwrap();
    let bundle = bundle_of(component_for("2.0.0"));
    let e = bundle
        .manifest
        .check_wit_compatible()
        .unwrap_err()
        .to_string();
    assert!(e.contains("major version 2 differs from 1"), "{e}");
    let e = match ActivePolicy::load(&runtime, &bundle, Isolation::Warm) {
        Ok(_) => panic!("a 2.0.0 component was loaded"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("built for stagegate:policy@2.0.0"), "{e}");
    assert!(e.contains("another major version"), "{e}");
    assert!(
        e.contains("stagegate:policy@1.0.0 and stagegate:policy@1.1.0"),
        "{e}"
    );
}

#[test]
fn building_a_bundle_records_the_wit_version_its_component_exports() {
    assert_eq!(
        package_of(support::reference_bundle().wasm()).as_deref(),
        Some("stagegate:policy@1.1.0")
    );
    assert_eq!(
        fixture_bundle().manifest.wit,
        "stagegate:policy@1.0.0",
        "a 1.0.0 component bundled today still says 1.0.0"
    );
    assert_eq!(package_of(b"not a component"), None);
}

#[test]
fn one_server_serves_a_1_0_0_and_a_1_1_0_bundle_side_by_side_and_refuses_a_1_2_0_upload() {
    let d = Deployment::new(
        "[[bundles]]\nname = \"iso42001-reference\"\nfile = \"current.bundle\"\ndefault = true\n\
         [[bundles]]\nname = \"iso42001-frozen\"\nfile = \"frozen.bundle\"\n",
    );
    std::fs::write(d.path("current.bundle"), d.reference("1.1.0")).unwrap();
    let frozen = d.bundle_from(
        &fixture_bundle(),
        "iso42001-frozen",
        "1.0.0",
        "stagegate:policy@1.0.0",
        true,
    );
    std::fs::write(d.path("frozen.bundle"), frozen).unwrap();
    let s = d.start();

    let attested = support::high_risk_gate();
    let mut asserted = attested.clone();
    for r in asserted["verification"]["results"].as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("attestation");
    }
    let ask = |bundle: &str, body: &Value| {
        let r = s.post_json(&format!("/v1/decisions/gate?bundle={bundle}"), None, body);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    for body in [&attested, &asserted] {
        let v = ask("iso42001-frozen", body);
        assert_eq!(v["outcome"], "allow", "{v}");
        assert_eq!(v["policy"]["version"], "1.0.0");
    }
    let v = ask("iso42001-reference", &attested);
    assert_eq!(v["outcome"], "allow", "{v}");
    assert_eq!(v["policy"]["version"], "1.1.0");
    let v = ask("iso42001-reference", &asserted);
    assert_eq!(v["outcome"], "deny", "{v}");
    assert!(codes(&v).contains("verification.unattested"), "{v}");

    let newer = {
        let mut b = bundle_of(component_for("1.2.0"));
        b.sign(&stagegate::bundle::keys::load_secret(&d.path("keys/dev")).unwrap());
        b.to_bytes().unwrap()
    };
    let r = s.put_bundle("iso42001-reference", None, &newer, false);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("stagegate:policy@1.2.0"), "{}", r.body);
    assert!(
        r.body
            .contains("stagegate:policy@1.0.0 and stagegate:policy@1.1.0"),
        "{}",
        r.body
    );
    let v = ask("iso42001-reference", &attested);
    assert_eq!(
        v["policy"]["version"], "1.1.0",
        "the active version keeps serving"
    );
}
