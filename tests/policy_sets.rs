//! Policy sets (docs/policy-sets.md): the reference policy and ACME's
//! organisation rules deciding together, in process, on the command line
//! and over HTTP while one member is hot-swapped.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use stagegate::decision::combine::restrictiveness;
use stagegate::decision::{self, DecisionKind, Outcome};
use stagegate::policy::{ActivePolicy, Isolation, Limits, Runtime, set};
use support::high_risk_gate;
use support::server::Deployment;

const REFERENCE: &str = "iso42001-reference";
const ACME: &str = "acme-rules";

fn kind_of(case: &serde_json::Value) -> DecisionKind {
    case["decision"].as_str().unwrap().parse().unwrap()
}

/// Every reference test case that is a well-formed request, with its
/// params (the bundle's, with the case's overrides).
fn reference_cases() -> Vec<(String, DecisionKind, String, serde_json::Value)> {
    let bundle = support::reference_bundle();
    let base: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&bundle.params().unwrap()).unwrap();
    let dir = support::root().join("policies/iso42001/tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let cases: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for case in cases {
            if case["expect"].get("error").is_some() {
                continue;
            }
            let kind = kind_of(&case);
            if decision::decode(kind, case["input"].to_string().as_bytes()).is_err() {
                continue;
            }
            let mut params = base.clone();
            if let Some(over) = case["params"].as_object() {
                params.extend(over.clone());
            }
            out.push((
                case["name"].as_str().unwrap_or("?").to_string(),
                kind,
                serde_json::Value::Object(params).to_string(),
                case["input"].clone(),
            ));
        }
    }
    out
}

#[test]
fn a_set_answers_the_reference_cases_like_the_reference_unless_acme_rules_fire_then_more_restrictively()
 {
    let runtime = Runtime::new(Limits::default()).unwrap();
    let reference = support::reference_bundle();
    let component = runtime.compile(reference.wasm()).unwrap();
    let acme = ActivePolicy::load(&runtime, support::acme_rules_bundle(), Isolation::Warm).unwrap();

    let mut cases = reference_cases();
    // The reference cases all fall on a Thursday; a Friday copy of each
    // promotion reaches the promotion freeze.
    let fridays: Vec<_> = cases
        .iter()
        .filter(|(_, kind, _, _)| *kind == DecisionKind::Progression)
        .map(|(name, kind, params, input)| {
            let mut input = input.clone();
            input["now"] = "2026-11-27T12:00:00Z".into();
            (
                format!("{name} (on a Friday)"),
                *kind,
                params.clone(),
                input,
            )
        })
        .collect();
    cases.extend(fridays);

    let (mut fired, mut quiet, mut tightened) = (0, 0, 0);
    let mut last_params = String::new();
    let mut policy = None;
    for (name, kind, params, input) in &cases {
        if *params != last_params || policy.is_none() {
            policy = Some(
                ActivePolicy::with_component(
                    &runtime,
                    reference,
                    &component,
                    params.clone(),
                    Isolation::Warm,
                )
                .unwrap(),
            );
            last_params = params.clone();
        }
        let reference = policy.as_ref().unwrap();
        let request = decision::decode(*kind, input.to_string().as_bytes()).unwrap();
        let alone = reference.decide(request.clone()).envelope;
        let rules = acme.decide(request.clone()).envelope;
        let both = set::decide("acme", &[reference, &acme], request);
        assert!(both.error.is_none(), "{name}: {:?}", both.error);
        let both = both.envelope;

        // Every finding names the member that raised it; the envelope
        // names both members.
        assert!(
            both.findings.iter().all(|f| f.bundle.is_some()),
            "{name}: {both:#?}"
        );
        let members: Vec<&str> = both
            .policy
            .members
            .iter()
            .map(|m| m.bundle.as_str())
            .collect();
        assert_eq!(members, [REFERENCE, ACME], "{name}");
        let from = |member: &str| -> Vec<String> {
            both.findings
                .iter()
                .filter(|f| f.bundle.as_deref() == Some(member))
                .map(|f| f.code.clone())
                .collect()
        };
        assert_eq!(
            from(REFERENCE),
            alone.codes().map(str::to_string).collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(
            from(ACME),
            rules.codes().map(str::to_string).collect::<Vec<_>>(),
            "{name}"
        );

        if restrictiveness(rules.outcome) == 0 {
            quiet += 1;
            assert_eq!(both.outcome, alone.outcome, "{name}: {both:#?}");
            assert_eq!(both.first_stage, alone.first_stage, "{name}");
            assert_eq!(both.next_stage, alone.next_stage, "{name}");
            assert_eq!(both.traffic_percent, alone.traffic_percent, "{name}");
            assert_eq!(both.rollback_to, alone.rollback_to, "{name}");
        } else {
            fired += 1;
            let expected = if restrictiveness(rules.outcome) > restrictiveness(alone.outcome) {
                rules.outcome
            } else {
                alone.outcome
            };
            assert_eq!(both.outcome, expected, "{name}: {both:#?}");
            if matches!(alone.outcome, Outcome::Allow | Outcome::Promote) {
                tightened += 1;
                assert_eq!(both.first_stage, None, "{name}");
                assert_eq!(both.next_stage, None, "{name}");
            }
        }
    }
    assert!(
        quiet > 20,
        "only {quiet} cases where the ACME rules stay quiet"
    );
    assert!(fired > 5, "only {fired} cases where the ACME rules fire");
    assert!(
        tightened > 2,
        "only {tightened} cases where the ACME rules turn a positive reference answer negative"
    );
}

#[test]
fn eval_with_two_bundles_decides_as_a_set() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.bundle");
    let acme = dir.path().join("acme.bundle");
    std::fs::write(&reference, support::reference_bundle().to_bytes().unwrap()).unwrap();
    std::fs::write(&acme, support::acme_rules_bundle().to_bytes().unwrap()).unwrap();
    let input = serde_json::to_vec(&high_risk_gate()).unwrap();
    let out = support::run(
        dir.path(),
        &[
            "eval",
            "gate",
            "--bundle",
            reference.to_str().unwrap(),
            "--bundle",
            acme.to_str().unwrap(),
            "--set-name",
            "acme",
            "--input",
            "-",
        ],
        Some(&input),
    );
    let (stdout, stderr) = support::text(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{e}: {stdout} {stderr}");
    });
    assert_eq!(v["outcome"], "deny", "{v:#}");
    assert_eq!(v["policy"]["bundle"], "acme");
    assert_eq!(v["policy"]["members"][0]["bundle"], REFERENCE);
    assert_eq!(v["policy"]["members"][1]["bundle"], ACME);
    let acme_finding = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "acme.first_stage_too_wide")
        .expect("the ACME rule fires on a 5 % first stage");
    assert_eq!(acme_finding["bundle"], ACME);
}

/// `acme-rules` at `version` whose first-stage limit is `max_percent`:
/// each version's answers say which limit it applied.
fn acme_version(d: &Deployment, version: &str, max_percent: f64) -> Vec<u8> {
    let template = support::acme_rules_bundle();
    let mut files: std::collections::BTreeMap<String, Vec<u8>> = template
        .manifest
        .files
        .iter()
        .map(|f| (f.path.clone(), template.file(&f.path).unwrap().to_vec()))
        .collect();
    let mut params: serde_json::Value = serde_json::from_str(&template.params().unwrap()).unwrap();
    params["consequential_max_first_stage_percent"] = max_percent.into();
    files.insert("params.json".into(), params.to_string().into_bytes());
    let mut b = stagegate::bundle::Bundle::new(
        ACME,
        semver::Version::parse(version).unwrap(),
        &template.manifest.wit,
        None,
        files,
    )
    .unwrap();
    b.sign(&stagegate::bundle::keys::load_secret(&d.path("keys/dev")).unwrap());
    b.to_bytes().unwrap()
}

const SET_CONFIG: &str = r#"
[limits]
concurrency = 512

[[bundles]]
name = "iso42001-reference"

[[bundles]]
name = "acme-rules"

[[policy_sets]]
name = "acme"
members = ["iso42001-reference", "acme-rules"]
default = true
"#;

#[test]
fn a_set_is_the_default_and_answers_503_naming_a_member_without_an_active_version() {
    let d = Deployment::new(SET_CONFIG);
    let s = d.start();
    assert_eq!(
        s.put_bundle(REFERENCE, None, &d.reference("1.0.0"), false)
            .status,
        200
    );
    let r = s.post_json("/v1/decisions/gate?bundle=acme", None, &high_risk_gate());
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("acme-rules"), "{}", r.body);

    assert_eq!(
        s.put_bundle(ACME, None, &acme_version(&d, "0.1.0", 1.0), false)
            .status,
        200
    );
    // Named, and as the default (which deployments are decided by).
    for path in ["/v1/decisions/gate?bundle=acme", "/v1/decisions/gate"] {
        let r = s.post_json(path, None, &high_risk_gate());
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["policy"]["bundle"], "acme", "{v:#}");
        assert_eq!(v["outcome"], "deny", "{v:#}");
        assert_eq!(v["policy"]["members"].as_array().unwrap().len(), 2);
    }
    // A member still answers alone under its own name.
    let r = s.post_json(
        "/v1/decisions/gate?bundle=iso42001-reference",
        None,
        &high_risk_gate(),
    );
    assert_eq!(r.json()["outcome"], "allow", "{}", r.body);
}

#[test]
fn hot_swapping_one_member_under_load_fails_no_request_and_mixes_no_versions() {
    let d = Deployment::new(SET_CONFIG);
    let s = d.start();
    assert_eq!(
        s.put_bundle(REFERENCE, None, &d.reference("1.0.0"), false)
            .status,
        200
    );
    assert_eq!(
        s.put_bundle(ACME, None, &acme_version(&d, "0.1.0", 1.0), false)
            .status,
        200
    );
    // Version 0.2.i limits the first stage to i/100 %: the finding's
    // message says which version decided.
    let versions: Vec<(String, f64)> = (1..=12)
        .map(|i| (format!("0.2.{i}"), f64::from(i) / 100.0))
        .collect();
    let uploads: Vec<Vec<u8>> = versions
        .iter()
        .map(|(v, pct)| acme_version(&d, v, *pct))
        .collect();
    let body = serde_json::to_vec(&high_risk_gate()).unwrap();
    let url = s.url("/v1/decisions/gate?bundle=acme");
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let expected: Arc<Vec<(String, f64)>> = Arc::new(
        std::iter::once(("0.1.0".to_string(), 1.0))
            .chain(versions.iter().cloned())
            .collect(),
    );
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, body, stop, failures, total, expected) = (
            url.clone(),
            body.clone(),
            stop.clone(),
            failures.clone(),
            total.clone(),
            expected.clone(),
        );
        clients.push(std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let r = support::server::send(
                    &url,
                    "POST",
                    None,
                    Some("application/json"),
                    Some(&body),
                );
                total.fetch_add(1, Ordering::Relaxed);
                if r.status != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let v = r.json();
                assert_eq!(v["outcome"], "deny", "{v:#}");
                let members = v["policy"]["members"].as_array().unwrap();
                assert_eq!(members[0]["version"], "1.0.0", "{v:#}");
                let version = members[1]["version"].as_str().unwrap().to_string();
                let (_, pct) = expected
                    .iter()
                    .find(|(v, _)| *v == version)
                    .unwrap_or_else(|| panic!("unexpected acme-rules version {version}"));
                let finding = v["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["code"] == "acme.first_stage_too_wide")
                    .unwrap_or_else(|| panic!("{v:#}"));
                // The member that decided is the version the envelope names.
                assert!(
                    finding["message"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("at most {pct} %")),
                    "version {version} answered with another version's limit: {v:#}"
                );
                seen.insert(version);
            }
            seen
        }));
    }
    for ((v, _), bytes) in versions.iter().zip(&uploads) {
        let r = s.put_bundle(ACME, None, bytes, false);
        assert_eq!(r.status, 200, "upload {v}: {}", r.body);
        std::thread::sleep(Duration::from_millis(30));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for c in clients {
        seen.extend(c.join().expect("client thread"));
    }
    let total = total.load(Ordering::Relaxed);
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "failed requests out of {total}"
    );
    assert!(total > 100, "the load generator sent only {total} requests");
    assert!(seen.contains("0.2.12"), "{seen:?}");
    assert!(
        seen.len() > 2,
        "saw too few versions to prove swapping under load: {seen:?}"
    );
}
