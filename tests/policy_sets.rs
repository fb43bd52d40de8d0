//! Policy sets (docs/policy-sets.md): the reference policy and ACME's
//! organisation rules deciding together, in process, on the command line
//! and over HTTP while one member is hot-swapped.

use crate::support;

use std::time::Duration;

use stagegate::policy::Limits;
use support::high_risk_gate;
use support::load::Load;
use support::server::Deployment;

const REFERENCE: &str = "iso42001-reference";
const ACME: &str = "acme-rules";

#[test]
fn a_set_answers_the_reference_cases_like_the_reference_unless_acme_rules_fire_then_more_restrictively()
 {
    let (quiet, fired, tightened) = support::sets::check_set_against_reference_cases(
        support::acme_rules_bundle(),
        Limits::default(),
    );
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
    let expected: Vec<(String, f64)> = std::iter::once(("0.1.0".to_string(), 1.0))
        .chain(versions.iter().cloned())
        .collect();
    let load = Load::start(4, url, body, move |v| {
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
        version
    });
    for ((v, _), bytes) in versions.iter().zip(&uploads) {
        let r = s.put_bundle(ACME, None, bytes, false);
        assert_eq!(r.status, 200, "upload {v}: {}", r.body);
        std::thread::sleep(Duration::from_millis(30));
    }
    std::thread::sleep(Duration::from_millis(200));
    let report = load.stop();
    report.assert_none_failed(100);
    let seen = report.all_seen();
    assert!(seen.contains("0.2.12"), "{seen:?}");
    assert!(
        seen.len() > 2,
        "saw too few versions to prove swapping under load: {seen:?}"
    );
}

#[test]
fn a_scaffolded_rust_policy_tests_as_it_stands() {
    let dir = tempfile::tempdir().unwrap();
    let out = support::run(
        dir.path(),
        &["new", "policy", "org-rules", "--lang", "rust"],
        None,
    );
    assert!(out.status.success(), "{:?}", support::text(&out));
    for file in [
        "bundle.toml",
        "params.json",
        "controls.json",
        "tests/gate.json",
        "Cargo.toml",
        "src/lib.rs",
    ] {
        assert!(
            dir.path().join("org-rules").join(file).is_file(),
            "{file} missing"
        );
    }
    // Built into this workspace's target directory, where the SDK's
    // dependencies are already compiled for wasm32-wasip2.
    let out = std::process::Command::new(support::bin())
        .args(["test", "org-rules"])
        .current_dir(dir.path())
        .env(
            "CARGO_TARGET_DIR",
            std::env::var_os("CARGO_TARGET_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| support::root().join("target")),
        )
        .output()
        .unwrap();
    let (stdout, stderr) = support::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("3 passed, 0 failed"), "{stdout}");
}
