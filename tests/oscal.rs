//! A deployment's record as OSCAL assessment results (docs/oscal.md):
//! accepted by compliance-trestle's `AssessmentResults` model and by NIST's
//! published OSCAL JSON schema, findings derived from the decisions,
//! byte-identical on every export, over HTTP and from the command line.

use crate::support;

use std::process::Command;

use serde_json::{Value, json};
use support::records::{Backend, World, deploy, get, observe, post, registered_release};

support::on_both_backends!(
    a_rolled_back_deployment_exports_valid_oscal_with_its_rollback_as_the_decisive_finding,
    unknown_deployments_are_404_and_unknown_formats_are_400_naming_the_parameter,
);

/// Runs tests/oscal/validate.py on `doc`: trestle's model and NIST's
/// schema. Without trestle the check is skipped and listed
/// ([`support::require_tool`]), except under CI, where that is a failure.
fn validate(doc: &str) {
    if let Some(text) = run_validator(doc, true) {
        eprintln!("{text}");
    }
}

/// The validator refuses `doc`, naming `what`.
fn refused(doc: &str, what: &str) {
    if let Some(text) = run_validator(doc, false) {
        assert!(text.contains(what), "{text}");
    }
}

/// The validator's output when it accepted (`valid`) or refused
/// (`!valid`) the document as expected; None when it could not run here.
fn run_validator(doc: &str, valid: bool) -> Option<String> {
    if !support::require_tool("trestle") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("assessment-results.json");
    std::fs::write(&file, doc).unwrap();
    let script = support::root().join("tests/oscal/validate.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&file)
        .output()
        .expect("running python3, which require_tool just ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) if valid => Some(text),
        Some(1) if !valid => Some(text),
        Some(3) => panic!("the OSCAL validation is missing a package: {text}"),
        _ if valid => panic!("the export is not valid OSCAL:\n{text}"),
        _ => panic!("the validator accepted a document it must refuse:\n{text}"),
    }
}

/// The finding about control reference `reference`.
fn finding<'a>(result: &'a Value, reference: &str) -> &'a Value {
    result["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["title"] == reference)
        .unwrap_or_else(|| panic!("no finding for {reference}: {result:#}"))
}

/// The values of the properties called `name`.
fn props<'a>(v: &'a Value, name: &str) -> Vec<&'a str> {
    v["props"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["name"] == name)
                .map(|p| p["value"].as_str().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// A deployment alerted, held and rolled back by its policy (as in the
/// records lifecycle test); returns its id.
fn rolled_back(s: &support::server::Server) -> String {
    let release = registered_release(s, "2.3.0");
    let d = deploy(s, &release);
    assert_eq!(
        observe(s, &d, 0.03, 2000).json()["decision"]["outcome"],
        "alert"
    );
    let r = post(
        s,
        "a.lee",
        &format!("/v1/deployments/{d}/reviews"),
        &json!({"outcome": "approved", "target_stage": "regional"}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(
        s,
        "j.doe",
        &format!("/v1/deployments/{d}/progressions"),
        &json!({"target_stage": "regional"}),
        &[],
    );
    assert_eq!(r.json()["decision"]["outcome"], "hold", "{}", r.body);
    let v = observe(s, &d, 0.08, 3000).json();
    assert_eq!(v["decision"]["outcome"], "rollback", "{v:#}");
    d
}

fn a_rolled_back_deployment_exports_valid_oscal_with_its_rollback_as_the_decisive_finding(
    b: Backend,
) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let d = rolled_back(&s);
    let path = format!("/v1/deployments/{d}/record?format=oscal");
    let first = get(&s, "audit", &path);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("content-type"), Some("application/json"));
    validate(&first.body);
    // The validation can fail: a control reference where OSCAL wants a
    // token, and a status OSCAL does not know, are refused by both checks.
    let mut bad = first.json();
    let target = &mut bad["assessment-results"]["results"][0]["findings"][0]["target"];
    target["target-id"] = json!("ISO/IEC 42001:2023 A.6.1.2");
    target["status"]["state"] = json!("partly");
    refused(&bad.to_string(), "trestle AssessmentResults refused it");
    refused(
        &bad.to_string(),
        "schema: assessment-results/results/0/findings/0/target/target-id",
    );

    let doc = first.json();
    let ar = &doc["assessment-results"];
    assert_eq!(ar["metadata"]["oscal-version"], "1.2.1");
    assert_eq!(
        ar["import-ap"]["href"], "urn:stagegate:bundle:iso42001-reference:1.0.0",
        "{:#}",
        ar["import-ap"]
    );
    let results = ar["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let result = &results[0];
    assert_eq!(props(result, "deployment-id"), [d.as_str()]);
    assert_eq!(props(result, "status"), ["rolled_back"]);

    // Every control controls.json cites is reviewed, and has one finding.
    let reviewed: Vec<&str> =
        result["reviewed-controls"]["control-selections"][0]["include-controls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["control-id"].as_str().unwrap())
            .collect();
    assert!(
        reviewed.contains(&"iso-iec-42001-2023-a.7.5"),
        "{reviewed:?}"
    );
    assert_eq!(result["findings"].as_array().unwrap().len(), reviewed.len());

    // The rollback decided the monitoring control: not satisfied, with the
    // trigger as the decisive code, and the rollback decision among the
    // observations the finding rests on.
    let monitoring = finding(result, "ISO/IEC 42001:2023 A.7.5");
    assert_eq!(monitoring["target"]["status"]["state"], "not-satisfied");
    assert_eq!(monitoring["target"]["status"]["reason"], "fail");
    assert_eq!(
        monitoring["target"]["target-id"],
        "iso-iec-42001-2023-a.7.5"
    );
    assert!(
        props(monitoring, "decisive-code").contains(&"trigger.rollback"),
        "{monitoring:#}"
    );
    let observations = result["observations"].as_array().unwrap();
    let rollback = observations
        .iter()
        .find(|o| props(o, "outcome") == ["rollback"])
        .expect("the rollback decision is an observation");
    assert!(
        monitoring["related-observations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["observation-uuid"] == rollback["uuid"]),
        "{monitoring:#}"
    );
    // Nothing failed the supply chain: satisfied.
    let supply = finding(result, "ISO/IEC 42001:2023 A.9.3");
    assert_eq!(supply["target"]["status"]["state"], "satisfied");
    assert!(props(supply, "decisive-code").is_empty());

    // One observation per piece of evidence.
    let with = |name: &str| -> Vec<&Value> {
        observations
            .iter()
            .filter(|o| !props(o, name).is_empty())
            .collect()
    };
    assert_eq!(
        with("decision-id").len(),
        4,
        "gate, monitoring, progression, monitoring"
    );
    assert_eq!(
        with("authorised-by").len(),
        2,
        "the release's authorisation and the progression's"
    );
    assert_eq!(
        with("reviewer").len(),
        2,
        "the release's review and the progression's"
    );
    assert_eq!(with("deficiency-id").len(), 1);
    assert_eq!(
        with("metric")
            .iter()
            .filter(|o| !props(o, "samples").is_empty())
            .count(),
        6
    );
    let verification = with("verification-result");
    assert!(!verification.is_empty());
    assert!(
        verification
            .iter()
            .all(|o| props(o, "attested") == ["false"])
    );
    let auth = with("authorised-by")[0];
    assert_eq!(props(auth, "authorised-by"), ["j.doe"]);
    assert_eq!(props(auth, "role"), ["Head of AI Risk"]);
    assert_eq!(props(auth, "condition"), ["EU only"]);

    // Deterministic: the same bytes again, even after the log moved on
    // with another deployment's decisions...
    let other = deploy(&s, &registered_release(&s, "2.3.1"));
    assert_eq!(observe(&s, &other, 0.01, 500).status, 200);
    let again = get(&s, "audit", &path);
    assert_eq!(again.status, 200);
    assert!(again.body == first.body, "a second export differs");
    // ...and from the command line, against the database directly.
    let out = support::run(
        w.d.dir.path(),
        &[
            "audit",
            "export",
            &d,
            "--format",
            "oscal",
            "--bundle",
            "ref.bundle",
            "--database",
            &w.database,
        ],
        None,
    );
    let (stdout, stderr) = support::text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout == first.body,
        "the CLI's export differs from the API's"
    );
    // Without --bundle, the configuration's bundle of the decisions' name.
    let config = w.d.config().display().to_string();
    let out = support::run(
        w.d.dir.path(),
        &[
            "audit",
            "export",
            &d,
            "--format",
            "oscal",
            "--config",
            &config,
            "--database",
            &w.database,
        ],
        None,
    );
    let (stdout, stderr) = support::text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout == first.body,
        "the export with the configured bundle differs"
    );
}

fn unknown_deployments_are_404_and_unknown_formats_are_400_naming_the_parameter(b: Backend) {
    let Some(w) = World::new(b, "") else { return };
    let s = w.start();
    let r = get(
        &s,
        "audit",
        "/v1/deployments/no-such-deployment/record?format=oscal",
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let d = deploy(&s, &registered_release(&s, "2.3.0"));
    let r = get(
        &s,
        "audit",
        &format!("/v1/deployments/{d}/record?format=xml"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["path"], "format", "{}", r.body);
    assert!(r.body.contains("json or oscal"), "{}", r.body);
    // The JSON record is still the default.
    let r = get(&s, "audit", &format!("/v1/deployments/{d}/record"));
    assert_eq!(r.json()["deployment"]["id"], d.as_str());
    // Only auditors read records.
    assert_eq!(
        get(
            &s,
            "gw",
            &format!("/v1/deployments/{d}/record?format=oscal")
        )
        .status,
        403
    );

    // The CLI needs the control map for OSCAL, and names what is missing.
    let cli = |args: &[&str]| {
        let mut all = vec!["audit", "export"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--database", &w.database]);
        let out = support::run(w.d.dir.path(), &all, None);
        let (o, e) = support::text(&out);
        (out.status.code(), format!("{o}{e}"))
    };
    let (code, out) = cli(&[&d, "--format", "oscal"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--bundle"), "{out}");
    let (code, out) = cli(&[
        "no-such-deployment",
        "--format",
        "oscal",
        "--bundle",
        "ref.bundle",
    ]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("no-such-deployment"), "{out}");
    let (code, out) = cli(&[&d, "--format", "oscal", "--bundle", "missing.bundle"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("missing.bundle"), "{out}");
}
