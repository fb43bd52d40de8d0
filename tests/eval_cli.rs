//! `stagegate eval` and `stagegate test` as a user runs them.

use crate::support;

use support::{SignedBundle, high_risk_gate, run, text};

fn eval(
    sb: &SignedBundle,
    decision: &str,
    input: &serde_json::Value,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    let mut args = vec!["eval", decision, "--bundle", "ref.bundle", "--input", "-"];
    args.extend_from_slice(extra);
    let body = serde_json::to_vec(input).unwrap();
    let out = run(sb.dir.path(), &args, Some(&body));
    let (stdout, stderr) = text(&out);
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn codes(decision: &serde_json::Value) -> Vec<String> {
    decision["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["code"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_complete_high_risk_release_is_allowed_into_its_pilot_stage() {
    let sb = SignedBundle::new();
    let (code, d, err) = eval(&sb, "gate", &high_risk_gate(), &["--trust", "trust"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(d["outcome"], "allow", "{d:#}");
    assert_eq!(d["first_stage"], "pilot");
    assert_eq!(d["decision"], "gate");
    assert_eq!(d["evaluated_at"], "2026-11-26T12:00:00Z");
    assert_eq!(d["policy"]["bundle"], "iso42001-reference");
    assert!(
        d["policy"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let intensive = d["obligations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["code"] == "monitoring.intensive")
        .expect("monitoring.intensive obligation");
    assert_eq!(intensive["until"], "2026-12-03T12:00:00Z");
    assert_eq!(d["decision_id"].as_str().unwrap().len(), 26, "a ULID");
}

#[test]
fn the_same_release_without_authorisation_is_denied_with_authorisation_missing() {
    let sb = SignedBundle::new();
    let mut req = high_risk_gate();
    req.as_object_mut().unwrap().remove("authorisation");
    let (code, d, err) = eval(&sb, "gate", &req, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(d["outcome"], "deny");
    assert!(
        codes(&d).contains(&"authorisation.missing".to_string()),
        "{d:#}"
    );
    let f = &d["findings"][0];
    assert_eq!(f["severity"], "blocking");
    assert_eq!(f["path"], "/authorisation");
    assert!(
        f["controls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "ISO/IEC 42001:2023 A.6.2.7")
    );
    assert!(d.get("first_stage").is_none());
}

#[test]
fn bad_requests_exit_2_naming_the_json_path() {
    let sb = SignedBundle::new();
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            {
                let mut r = high_risk_gate();
                r["plan"]["stages"][1]["traffic_percent"] = "25".into();
                r
            },
            "/plan/stages/1/traffic_percent: expected a number",
        ),
        (
            {
                let mut r = high_risk_gate();
                r["system"].as_object_mut().unwrap().remove("risk_tier");
                r
            },
            "/system/risk_tier: required field is missing",
        ),
        (
            {
                let mut r = high_risk_gate();
                r["verification"]["complete"] = "yes".into();
                r
            },
            "/verification/complete: expected a boolean",
        ),
        (
            {
                let mut r = high_risk_gate();
                r["now"] = "last tuesday".into();
                r
            },
            "/now: expected an RFC 3339 timestamp",
        ),
    ];
    for (req, want) in cases {
        let (code, _, err) = eval(&sb, "gate", &req, &[]);
        assert_eq!(code, 2, "{want}: {err}");
        assert!(err.contains(want), "wanted '{want}' in: {err}");
    }
    let out = run(
        sb.dir.path(),
        &["eval", "gate", "--bundle", "ref.bundle", "--input", "-"],
        Some(b"{not json"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("body is not valid JSON"),
        "{:?}",
        text(&out)
    );
    let out = run(
        sb.dir.path(),
        &["eval", "rollout", "--bundle", "ref.bundle", "--input", "-"],
        Some(b"{}"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("unknown decision 'rollout'"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn a_list_longer_than_the_default_bound_exits_2_naming_the_list() {
    let sb = SignedBundle::new();
    let mut long = high_risk_gate();
    long["deficiencies"] = serde_json::Value::Array(vec![serde_json::json!({}); 1001]);
    let (code, _, err) = eval(&sb, "gate", &long, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("invalid request: /deficiencies: expected at most 1000 items, found 1001"),
        "{err}"
    );
}

#[test]
fn progression_requires_its_stage_fields() {
    let sb = SignedBundle::new();
    let req = serde_json::json!({
        "now": "2026-11-26T12:00:00Z",
        "system": {"id": "s", "risk_tier": "low"},
        "plan": {"stages": []},
        "current_stage": "pilot"
    });
    let (code, _, err) = eval(&sb, "progression", &req, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("/target_stage: required field is missing"),
        "{err}"
    );
}

#[test]
fn eval_with_a_trust_store_refuses_an_unsigned_bundle() {
    let sb = SignedBundle::new();
    support::reference_bundle()
        .write(&sb.path("unsigned.bundle"))
        .unwrap();
    let body = serde_json::to_vec(&high_risk_gate()).unwrap();
    let out = run(
        sb.dir.path(),
        &[
            "eval",
            "gate",
            "--bundle",
            "unsigned.bundle",
            "--input",
            "-",
            "--trust",
            "trust",
        ],
        Some(&body),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("unsigned"), "{:?}", text(&out));
}

#[test]
fn a_policy_that_fails_exits_3_with_a_fail_closed_decision() {
    let dir = tempfile::tempdir().unwrap();
    support::hostile_bundle()
        .write(&dir.path().join("h.bundle"))
        .unwrap();
    for (id, cause) in [
        ("spin", "deadline"),
        ("allocate", "memory"),
        ("deep", "stack"),
        ("panic", "trap"),
    ] {
        let req = serde_json::json!({"now": "2026-11-26T12:00:00Z", "system": {"id": id, "risk_tier": "low"}});
        // Only the spinner should meet its deadline; the others get time to
        // reach their own limit even on a loaded machine.
        let deadline = if id == "spin" { "50" } else { "2000" };
        let out = run(
            dir.path(),
            &[
                "eval",
                "gate",
                "--bundle",
                "h.bundle",
                "--input",
                "-",
                "--deadline-ms",
                deadline,
            ],
            Some(&serde_json::to_vec(&req).unwrap()),
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(3), "{id}: {stdout}{stderr}");
        let d: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(d["outcome"], "deny", "{id}");
        assert_eq!(d["findings"][0]["code"], "policy.error", "{id}");
        assert!(
            d["findings"][0]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("({cause})")),
            "{id}: {d:#}"
        );
    }
}

#[test]
fn the_reference_policy_passes_its_own_test_cases() {
    let root = support::root();
    let out = run(&root, &["test", "policies/iso42001"], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    let passed: usize = last.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 40, "{last}");
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
}

#[test]
fn a_failing_case_reports_expected_and_actual_outcome_and_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("tests")).unwrap();
    std::fs::write(d.join("policy.wasm"), support::reference_bundle().wasm()).unwrap();
    std::fs::write(
        d.join("bundle.toml"),
        "name = \"scratch\"\nversion = \"0.1.0\"\n[component]\nwasm = \"policy.wasm\"\n",
    )
    .unwrap();
    let mut denied = high_risk_gate();
    denied.as_object_mut().unwrap().remove("authorisation");
    let cases = serde_json::json!([
        {"name": "passes", "decision": "gate", "input": high_risk_gate(),
         "expect": {"outcome": "allow", "absent_codes": ["authorisation.missing"]}},
        {"name": "wrongly expects allow", "decision": "gate", "input": denied,
         "expect": {"outcome": "allow", "codes": ["plan.missing"], "absent_codes": ["authorisation.missing"]}}
    ]);
    std::fs::write(
        d.join("tests/cases.json"),
        serde_json::to_vec_pretty(&cases).unwrap(),
    )
    .unwrap();
    let out = run(d, &["test", "."], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("ok   tests/cases.json: passes"), "{stdout}");
    assert!(
        stdout.contains("FAIL tests/cases.json: wrongly expects allow"),
        "{stdout}"
    );
    assert!(
        stdout.contains("expected outcome allow, got deny"),
        "{stdout}"
    );
    assert!(
        stdout.contains("expected codes missing: plan.missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("codes that must be absent are present: authorisation.missing"),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");
}

#[test]
fn a_malformed_test_file_is_named_with_the_case_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("tests")).unwrap();
    std::fs::write(d.join("policy.wasm"), support::reference_bundle().wasm()).unwrap();
    std::fs::write(
        d.join("bundle.toml"),
        "name = \"scratch\"\nversion = \"0.1.0\"\n[component]\nwasm = \"policy.wasm\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("tests/bad.json"),
        r#"[{"name": "x", "decision": "gate", "input": {}, "expect": {"outcome": 3}}]"#,
    )
    .unwrap();
    let out = run(d, &["test", "."], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("tests/bad.json: case 0, field expect.outcome"),
        "{:?}",
        text(&out)
    );
}

#[cfg(unix)]
#[test]
fn eval_into_a_closed_pipe_ends_quietly_like_cat_instead_of_panicking() {
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    let sb = SignedBundle::new();
    let mut child = Command::new(support::bin())
        .args(["eval", "gate", "--bundle", "ref.bundle", "--input", "-"])
        .current_dir(sb.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning stagegate");
    // The reader goes away before the decision is printed (loading the
    // bundle takes milliseconds): `stagegate eval … | head -c0`.
    drop(child.stdout.take());
    let body = serde_json::to_vec(&high_risk_gate()).unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), None, "{:?} {stderr}", out.status);
    const SIGPIPE: i32 = 13; // the same on Linux, the BSDs and macOS
    assert_eq!(out.status.signal(), Some(SIGPIPE), "{stderr}");
}
