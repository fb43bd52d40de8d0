//! `stagegate check` as a CI pipeline runs it: every exit code, against a
//! bundle in process and against a running service, and what it leaves for
//! GitHub Actions and GitLab (annotations, step outputs, job summary, JUnit).

use crate::support;

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
        .env_remove("STAGEGATE_TOKEN_FILE")
        .env_remove("STAGEGATE_URL")
        .env_remove("STAGEGATE_AUDIENCE")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawning stagegate");
    // A usage error exits before reading its input: the pipe may be closed
    // by then, which is that case's answer, not the test's failure.
    match child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(stdin).unwrap())
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("writing stagegate's input: {e}"),
    }
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

/// A service with the reference bundle and one static token for `gateway`.
fn service_with_token() -> (Deployment, support::server::Server, String) {
    let (token, hash) = stagegate::auth::new_token();
    let d = Deployment::new(&format!(
        "[[bundles]]\nname = \"iso42001-reference\"\nfile = \"ref.bundle\"\ndefault = true\n\
         [[tokens]]\nname = \"ci\"\nsha256 = \"{hash}\"\nroles = [\"gateway\"]\n"
    ));
    std::fs::write(d.path("ref.bundle"), d.reference("1.0.0")).unwrap();
    let s = d.start();
    (d, s, token)
}

#[test]
fn the_server_and_token_come_from_stagegate_url_stagegate_token_or_a_token_file() {
    let (d, s, token) = service_with_token();
    let url = s.url("/");
    let args = ["gate", "--input", "-"];
    let out = check(
        d.dir.path(),
        &args,
        &high_risk_gate(),
        &[("STAGEGATE_URL", &url), ("STAGEGATE_TOKEN", &token)],
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    std::fs::write(d.path("token"), format!("{token}\n")).unwrap();
    let out = check(
        d.dir.path(),
        &["gate", "--input", "-", "--token-file", "token"],
        &high_risk_gate(),
        &[("STAGEGATE_URL", &url)],
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    // A missing token file is bad input naming the file.
    let out = check(
        d.dir.path(),
        &["gate", "--input", "-", "--token-file", "nope"],
        &high_risk_gate(),
        &[("STAGEGATE_URL", &url)],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--token-file nope"), "{stderr}");
    // STAGEGATE_URL in the environment does not stop an explicit --local.
    let sb = SignedBundle::new();
    let out = check(
        sb.dir.path(),
        LOCAL,
        &high_risk_gate(),
        &[("STAGEGATE_URL", &url)],
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
}

/// A stand-in of GitHub's id-token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL):
/// answers `{"value": TOKEN}` to a GET bearing the request token, and
/// reports the audience each request asked for.
fn id_token_endpoint(
    request_token: &'static str,
    token: String,
) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut authorised = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:")
                    && line
                        .trim_end()
                        .ends_with(&format!("Bearer {request_token}"))
                {
                    authorised = true;
                }
            }
            let target = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            let audience = target
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("audience="))
                .unwrap_or("")
                .to_string();
            let _ = tx.send(format!("{target} audience={audience}"));
            let (status, body) = if !authorised {
                ("401 Unauthorized", "{}".to_string())
            } else if !target.contains("api-version=2.0") {
                ("400 Bad Request", "{}".to_string())
            } else {
                ("200 OK", serde_json::json!({"value": token}).to_string())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    // The runner's URL already carries a query; the audience is appended.
    (
        format!("http://127.0.0.1:{port}/_apis/token?api-version=2.0"),
        rx,
    )
}

#[test]
fn oidc_github_fetches_the_job_id_token_and_the_service_accepts_it_as_an_identity() {
    if !support::require_tool("cryptography") {
        return;
    }
    let issuer = support::root().join("tests/identity/issuer.py");
    let keys = tempfile::tempdir().unwrap();
    let made = Command::new("python3")
        .arg(&issuer)
        .arg("keys")
        .arg(keys.path())
        .output()
        .unwrap();
    assert!(made.status.success());
    let audience = "https://stagegate.example";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // GitHub Actions' id-token claims (docs.github.com, "About security
    // hardening with OpenID Connect", "Understanding the OIDC token").
    let claims = serde_json::json!({
        "iss": "https://token.actions.githubusercontent.com",
        "aud": audience,
        "sub": "repo:acme/credit-scoring:environment:production",
        "repository": "acme/credit-scoring",
        "repository_owner": "acme",
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "environment": "production",
        "workflow": "release",
        "event_name": "push",
        "run_id": "1",
        "actor": "octocat",
        "job_workflow_ref": "acme/credit-scoring/.github/workflows/release.yml@refs/heads/main",
        "runner_environment": "github-hosted",
        "iat": now - 5, "nbf": now - 5, "exp": now + 300
    });
    let jwt = {
        use std::io::Write;
        let mut child = Command::new("python3")
            .arg(&issuer)
            .arg("mint")
            .arg(keys.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(
                serde_json::json!({"key": "rsa", "claims": claims})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let d = Deployment::new(&format!(
        "[[bundles]]\nname = \"iso42001-reference\"\nfile = \"ref.bundle\"\ndefault = true\n\
         [[identities]]\nname = \"release-pipeline\"\nissuer = \"https://token.actions.githubusercontent.com\"\n\
         audiences = [\"{audience}\"]\njwks_file = \"{}\"\nclaims = {{ repository = \"acme/*\" }}\nroles = [\"gateway\"]\n",
        keys.path().join("jwks.json").display()
    ));
    std::fs::write(d.path("ref.bundle"), d.reference("1.0.0")).unwrap();
    let s = d.start();
    let (endpoint, requests) = id_token_endpoint("runner-request-token", jwt);
    let url = s.url("/");
    let env = [
        ("STAGEGATE_URL", url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", endpoint.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-request-token"),
    ];
    let args = [
        "gate",
        "--input",
        "-",
        "--oidc",
        "github",
        "--audience",
        audience,
        "--output",
        "json",
    ];
    // An inherited STAGEGATE_TOKEN_FILE does not stand in the way.
    let mut with_file = env.to_vec();
    with_file.push(("STAGEGATE_TOKEN_FILE", "/nonexistent/token"));
    let out = check(d.dir.path(), &args, &high_risk_gate(), &with_file);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["outcome"], "allow");
    let seen = requests.recv().unwrap();
    assert!(
        seen.contains("api-version=2.0")
            && seen.ends_with("audience=https%3A%2F%2Fstagegate.example"),
        "{seen}"
    );
    // The decision log names the identity's actor.
    assert!(
        s.logs()
            .contains("release-pipeline:repo:acme/credit-scoring:environment:production"),
        "{}",
        s.logs()
    );
    // Without --audience, or outside a job with id-token permission: bad
    // input that says what is missing.
    let out = check(d.dir.path(), &args[..6], &high_risk_gate(), &env);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--audience"), "{stderr}");
    let out = check(d.dir.path(), &args, &high_risk_gate(), &env[..1]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ACTIONS_ID_TOKEN_REQUEST_URL"), "{stderr}");
    // A request token the endpoint refuses: the step fails (exit 3) without
    // quoting the token.
    let bad = [
        env[0],
        env[1],
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong-request-token"),
    ];
    let out = check(d.dir.path(), &args, &high_risk_gate(), &bad);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("401") && !stderr.contains("wrong-request-token"),
        "{stderr}"
    );
}

#[test]
fn json_output_has_the_documented_shape() {
    let sb = SignedBundle::new();
    let mut args = LOCAL.to_vec();
    args.extend(["--output", "json"]);
    let out = check(sb.dir.path(), &args, &unauthorised(), &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is one JSON object");
    assert_eq!(v["command"], "check");
    assert_eq!(v["passed"], false);
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["decision"], "gate");
    assert_eq!(v["outcome"], "deny");
    assert!(v["decision_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(v["policy"]["bundle"], "iso42001-reference");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[0]["id"], "outcome");
    assert_eq!(items[0]["level"], "error");
    assert!(
        items
            .iter()
            .any(|i| i["id"] == "authorisation.missing" && i["level"] == "error"),
        "{stdout}"
    );
}

#[test]
fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let sb = SignedBundle::new();
    let mut args = LOCAL.to_vec();
    args.extend(["--output", "sarif"]);
    let out = check(sb.dir.path(), &args, &unauthorised(), &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let log: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    assert!(
        log["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["ruleId"] == "authorisation.missing" && r["level"] == "error")
    );
    std::fs::write(sb.path("check.sarif"), &stdout).unwrap();
    if !support::require_tool("jsonschema") {
        return;
    }
    let o = Command::new("python3")
        .arg(support::root().join("tests/interop/sarif_validate.py"))
        .arg(support::root().join("tests/fixtures/sarif/sarif-schema-2.1.0.json"))
        .arg(sb.path("check.sarif"))
        .output()
        .expect("running python3");
    let (v_out, v_err) = text(&o);
    eprintln!("{v_out}{v_err}");
    assert_eq!(o.status.code(), Some(0), "{v_out}{v_err}");
    assert!(v_out.contains("valid: SARIF 2.1.0"), "{v_out}");
}

#[test]
fn junit_and_github_outputs_go_to_standard_output() {
    let sb = SignedBundle::new();
    let mut args = LOCAL.to_vec();
    args.extend(["--output", "junit"]);
    let out = check(sb.dir.path(), &args, &unauthorised(), &[]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.starts_with("<?xml"), "{stdout}");
    assert!(
        stdout.contains("name=\"authorisation.missing\"><failure"),
        "{stdout}"
    );
    let summary = sb.path("summary.md");
    let mut args = LOCAL.to_vec();
    args.extend(["--output", "github"]);
    let out = check(
        sb.dir.path(),
        &args,
        &unauthorised(),
        &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("::error title=stagegate authorisation.missing::"),
        "{stdout}"
    );
    assert!(
        std::fs::read_to_string(summary)
            .unwrap()
            .contains("`authorisation.missing`")
    );
}

#[test]
fn verify_test_and_receipt_verify_report_in_every_output_mode() {
    let sb = SignedBundle::new();
    let run = |args: &[&str]| {
        Command::new(support::bin())
            .args(args)
            .current_dir(sb.dir.path())
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("GITHUB_OUTPUT")
            .output()
            .unwrap()
    };
    let out = run(&[
        "verify",
        "ref.bundle",
        "--trust",
        "trust",
        "--output",
        "json",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (v["command"].as_str(), v["passed"].as_bool()),
        (Some("verify"), Some(true))
    );
    assert_eq!(v["bundle"]["name"], "iso42001-reference");
    assert!(v["signers"].as_array().is_some_and(|s| !s.is_empty()));
    // A trust store without the signer: a failed report, exit 1.
    std::fs::create_dir_all(sb.path("other")).unwrap();
    stagegate::bundle::keys::generate(&sb.path("other/k")).unwrap();
    std::fs::remove_file(sb.path("other/k")).unwrap();
    let out = run(&[
        "verify",
        "ref.bundle",
        "--trust",
        "other",
        "--output",
        "sarif",
    ]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    let log: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(log["runs"][0]["results"][0]["ruleId"], "bundle.verify");

    let policy = support::root().join("policies/iso42001");
    let out = run(&["test", policy.to_str().unwrap(), "--output", "junit"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("<testsuite name=\"stagegate.test: "),
        "{stdout}"
    );
    assert!(stdout.contains("failures=\"0\""), "{stdout}");
    let out = run(&["test", policy.to_str().unwrap(), "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(v["cases_failed"], 0);
    assert!(v["cases_passed"].as_u64().unwrap() > 0);

    std::fs::write(sb.path("receipt.json"), "{\"payloadType\": \"x\"}").unwrap();
    let out = run(&[
        "receipt",
        "verify",
        "receipt.json",
        "--trust",
        "trust",
        "--output",
        "json",
    ]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (v["command"].as_str(), v["passed"].as_bool()),
        (Some("receipt verify"), Some(false))
    );
}

#[test]
fn completions_and_the_manual_page_are_generated_from_the_command_line() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef stagegate"),
        ("fish", "complete -c stagegate"),
    ] {
        let out = Command::new(support::bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(0));
        assert!(
            stdout.contains(marker),
            "{shell}: {}",
            &stdout[..stdout.len().min(300)]
        );
        assert!(stdout.contains("--oidc"), "{shell} completes check's flags");
    }
    let out = Command::new(support::bin()).arg("man").output().unwrap();
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.starts_with(".ie") || stdout.contains(".TH stagegate"),
        "{}",
        &stdout[..200]
    );
    assert!(
        stdout.contains(".TH stagegate-check"),
        "a page per subcommand"
    );
    assert!(
        stdout.contains("STAGEGATE_URL"),
        "the environment variables are documented"
    );
}
