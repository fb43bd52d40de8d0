//! `stagegate check` as a CI pipeline runs it: every exit code, against a
//! bundle in process and against a running service, and what it leaves for
//! GitHub Actions and GitLab (annotations, step outputs, job summary, JUnit).

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::server::Deployment;
use support::{SignedBundle, high_risk_gate, text};

/// Runs `stagegate ARGS` in `cwd` with `stdin` and extra environment; the
/// GitHub and token variables of the test's own environment are cleared so
/// that a CI runner's do not leak in.
fn check(cwd: &Path, args: &[&str], stdin: &serde_json::Value, env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(support::bin());
    cmd.arg("check")
        .args(args)
        .current_dir(cwd)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("STAGEGATE_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawning stagegate");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(stdin).unwrap())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn unauthorised() -> serde_json::Value {
    let mut req = high_risk_gate();
    req.as_object_mut().unwrap().remove("authorisation");
    req
}

const LOCAL: &[&str] = &[
    "gate",
    "--local",
    "ref.bundle",
    "--trust",
    "trust",
    "--input",
    "-",
];

#[test]
fn an_allowed_release_exits_0_and_the_summary_names_outcome_and_decision_id() {
    let sb = SignedBundle::new();
    let out = check(sb.dir.path(), LOCAL, &high_risk_gate(), &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let first = stdout.lines().next().unwrap();
    assert!(
        first.starts_with("stagegate gate: allow (decision "),
        "{stdout}"
    );
    let id = first["stagegate gate: allow (decision ".len()..]
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap();
    assert_eq!(id.len(), 26, "a ULID decision id: {stdout}");
    assert!(stdout.contains("passed"), "{stdout}");
}

#[test]
fn a_denied_release_exits_1_listing_each_finding_with_severity_path_and_controls() {
    let sb = SignedBundle::new();
    let out = check(sb.dir.path(), LOCAL, &unauthorised(), &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("stagegate gate: deny (decision "),
        "{stdout}"
    );
    assert!(
        stdout.contains("blocking authorisation.missing  at /authorisation"),
        "{stdout}"
    );
    assert!(
        stdout.contains("controls: ISO/IEC 42001:2023 A.6.2.7"),
        "{stdout}"
    );
    assert!(stdout.contains("failed"), "{stdout}");
}

#[test]
fn a_bad_request_exits_2_naming_the_json_path_locally_and_from_the_service() {
    let sb = SignedBundle::new();
    let mut bad = high_risk_gate();
    bad["plan"]["stages"][1]["traffic_percent"] = "25".into();
    let out = check(sb.dir.path(), LOCAL, &bad, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("/plan/stages/1/traffic_percent"),
        "{stderr}"
    );

    let d = Deployment::new(
        "[[bundles]]\nname = \"iso42001-reference\"\nfile = \"ref.bundle\"\ndefault = true\n",
    );
    std::fs::write(d.path("ref.bundle"), d.reference("1.0.0")).unwrap();
    let s = d.start();
    let url = s.url("");
    let out = check(
        d.dir.path(),
        &["gate", "--server", &url, "--input", "-"],
        &bad,
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("400") && stderr.contains("/plan/stages/1/traffic_percent"),
        "{stderr}"
    );
    // An unknown bundle is the caller's mistake too.
    let out = check(
        d.dir.path(),
        &["gate", "--server", &url, "--bundle", "nope", "--input", "-"],
        &high_risk_gate(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    // Neither --server nor --local: a usage error.
    let out = check(d.dir.path(), &["gate", "--input", "-"], &bad, &[]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
}

#[test]
fn a_policy_that_fails_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    support::hostile_bundle()
        .write(&dir.path().join("h.bundle"))
        .unwrap();
    let req = serde_json::json!({"now": "2026-11-26T12:00:00Z", "system": {"id": "panic", "risk_tier": "low"}});
    let out = check(
        dir.path(),
        &["gate", "--local", "h.bundle", "--input", "-"],
        &req,
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stdout.contains("policy.error"), "{stdout}");
    assert!(stderr.contains("the policy failed"), "{stderr}");
}

#[test]
fn a_service_that_cannot_be_reached_or_refuses_the_token_exits_3() {
    // A port nothing listens on: bind one, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let out = check(
        dir.path(),
        &["gate", "--server", &url, "--input", "-"],
        &high_risk_gate(),
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));

    let (token, hash) = stagegate::auth::new_token();
    let d = Deployment::new(&format!(
        "[[bundles]]\nname = \"iso42001-reference\"\nfile = \"ref.bundle\"\ndefault = true\n\
         [[tokens]]\nname = \"ci\"\nsha256 = \"{hash}\"\nroles = [\"gateway\"]\n"
    ));
    std::fs::write(d.path("ref.bundle"), d.reference("1.0.0")).unwrap();
    let s = d.start();
    let url = s.url("/");
    let args = [
        "gate",
        "--server",
        &url,
        "--bundle",
        "iso42001-reference",
        "--input",
        "-",
    ];
    let out = check(d.dir.path(), &args, &high_risk_gate(), &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    // With the token from STAGEGATE_TOKEN the same call is answered.
    let out = check(
        d.dir.path(),
        &args,
        &high_risk_gate(),
        &[("STAGEGATE_TOKEN", &token)],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("bundle iso42001-reference 1.0.0"),
        "{stdout}"
    );
    let out = check(
        d.dir.path(),
        &args,
        &unauthorised(),
        &[("STAGEGATE_TOKEN", &token)],
    );
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
}

#[test]
fn under_github_actions_findings_are_annotated_and_outcome_and_id_are_step_outputs() {
    let sb = SignedBundle::new();
    let output = sb.path("github_output");
    let summary = sb.path("step_summary");
    std::fs::write(&output, "earlier=kept\n").unwrap();
    let env = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_OUTPUT", output.to_str().unwrap()),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ];
    let mut req = unauthorised();
    // A second, different finding: a warning or another blocking code.
    req["verification"]["complete"] = false.into();
    let out = check(sb.dir.path(), LOCAL, &req, &env);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let annotation = stdout
        .lines()
        .find(|l| l.starts_with("::error title=stagegate authorisation.missing::"))
        .unwrap_or_else(|| panic!("no error annotation: {stdout}"));
    assert!(
        annotation.contains("(at /authorisation) [ISO/IEC 42001:2023 A.6.2.7"),
        "{annotation}"
    );
    let annotations = stdout
        .lines()
        .filter(|l| l.starts_with("::error ") || l.starts_with("::warning "))
        .count();
    assert!(annotations >= 2, "{stdout}");

    let written = std::fs::read_to_string(&output).unwrap();
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("earlier=kept"), "appended, not replaced");
    assert_eq!(lines.next(), Some("outcome=deny"));
    let id = lines.next().unwrap().strip_prefix("decision_id=").unwrap();
    assert_eq!(id.len(), 26, "{written}");
    assert!(stdout.contains(&format!("(decision {id}")), "{stdout}");

    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("### stagegate gate: `deny`"), "{md}");
    assert!(md.contains(id), "{md}");
    assert!(
        md.contains("| blocking | `authorisation.missing` | `/authorisation` |"),
        "{md}"
    );
    let rows = md.lines().filter(|l| l.starts_with("| ")).count();
    assert_eq!(
        rows,
        annotations + 1,
        "a header and one row per finding: {md}"
    );

    // Outside GitHub Actions nothing is annotated or written.
    std::fs::remove_file(&summary).unwrap();
    let out = check(
        sb.dir.path(),
        LOCAL,
        &req,
        &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );
    assert!(!text(&out).0.contains("::error"));
    assert!(!summary.exists());
}

#[test]
fn junit_report_has_one_test_case_per_finding_code_and_fails_the_blocking_ones() {
    let sb = SignedBundle::new();
    let mut args = LOCAL.to_vec();
    args.extend(["--junit", "report.xml"]);
    let out = check(sb.dir.path(), &args, &unauthorised(), &[]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let xml = std::fs::read_to_string(sb.path("report.xml")).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert!(
        xml.contains("<testcase classname=\"stagegate.gate\" name=\"authorisation.missing\"><failure type=\"blocking\""),
        "{xml}"
    );
    assert!(
        xml.contains("name=\"outcome\"><failure type=\"deny\""),
        "{xml}"
    );
    // One case per distinct code, plus the outcome.
    let (stdout, _) = text(&out);
    let mut codes: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    codes.sort();
    codes.dedup();
    assert_eq!(
        xml.matches("<testcase ").count(),
        codes.len() + 1,
        "{xml}\n{stdout}"
    );

    // An allowed release: the outcome case passes, nothing fails.
    let out = check(sb.dir.path(), &args, &high_risk_gate(), &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let xml = std::fs::read_to_string(sb.path("report.xml")).unwrap();
    assert!(xml.contains("failures=\"0\""), "{xml}");
}
