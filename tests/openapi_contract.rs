//! The published contract, `GET /v1/openapi.json`: a validator checks the
//! document, and schemathesis attacks a live server with it, once per
//! role's token and once without one, with the checks
//! `not_a_server_error`, `status_code_conformance`,
//! `content_type_conformance` and `response_schema_conformance`. Any
//! failure fails the test with schemathesis' report.

use crate::support;

use std::process::Command;

use support::records::{Backend, World, deploy, registered_release, token};

const VALIDATOR: &str = "openapi-spec-validator";
const SCHEMATHESIS: &str = "schemathesis";

/// Examples per operation and role: with seven callers and 65
/// operations this keeps the whole run within a few minutes on CI's two
/// cores.
const EXAMPLES: &str = "6";

fn runs(program: &str) -> Result<(), String> {
    match Command::new(program).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{program} --version failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!(
            "{program} is not installed ({e}); `just test-deps`"
        )),
    }
}

/// A server with records to find (a system, a release, a deployment) and
/// a token for every role, the bundle administrator's included.
fn world() -> World {
    let admin = format!(
        "\n[[tokens]]\nname = \"admin\"\nsha256 = \"{}\"\nroles = [\"bundle_admin\"]\n",
        sha256_hex(&token("admin"))
    );
    World::new(Backend::Sqlite, &admin).unwrap()
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

#[test]
fn the_served_document_is_valid_openapi_3_1() {
    if !support::require(VALIDATOR, || runs(VALIDATOR)) {
        return;
    }
    let w = world();
    let s = w.start();
    // Public: a client generator holds no token.
    let r = s.get("/v1/openapi.json", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &r.body).unwrap();
    let out = Command::new(VALIDATOR).arg(&file).output().unwrap();
    let (stdout, stderr) = support::text(&out);
    assert!(
        out.status.success(),
        "{VALIDATOR} refused the document:\n{stdout}\n{stderr}"
    );
}

#[test]
fn schemathesis_finds_no_failure_with_any_role() {
    if !support::require(SCHEMATHESIS, || runs(SCHEMATHESIS)) {
        return;
    }
    let w = world();
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let _deployment = deploy(&s, &release);
    let dir = tempfile::tempdir().unwrap();
    let callers: [(&str, Option<&str>); 7] = [
        ("operator", Some("ops")),
        ("approver", Some("a.lee")),
        ("auditor", Some("audit")),
        ("gateway", Some("gw")),
        ("publisher", Some("pub")),
        ("bundle_admin", Some("admin")),
        ("no token", None),
    ];
    let mut failures = Vec::new();
    for (role, holder) in callers {
        let mut cmd = Command::new(SCHEMATHESIS);
        cmd.arg("run")
            .arg(s.url("/v1/openapi.json"))
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--max-examples",
                EXAMPLES,
                "--seed",
                "23",
                "--phases",
                "examples,coverage,fuzzing",
                "--workers",
                "2",
                "--request-timeout",
                "20",
                "--max-redirects",
                "0",
                "--suppress-health-check",
                "all",
                "--no-color",
            ])
            .current_dir(dir.path())
            .env("SCHEMATHESIS_HOOKS", "")
            .env("NO_COLOR", "1");
        if let Some(holder) = holder {
            cmd.args([
                "--header",
                &format!("Authorization: Bearer {}", token(holder)),
            ]);
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) = support::text(&out);
        let summary = stdout
            .lines()
            .rev()
            .find(|l| l.contains("passed") || l.contains("failed") || l.contains("error"))
            .unwrap_or_default()
            .to_string();
        eprintln!("schemathesis as {role}: {summary}");
        if !out.status.success() {
            failures.push(format!(
                "as {role}: exit {:?}\n{stdout}\n{stderr}",
                out.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "schemathesis found failures:\n{}\nserver log:\n{}",
        failures.join("\n\n"),
        s.logs()
    );
}
