//! Workload identities end to end: a stand-in OIDC issuer
//! (tests/identity/issuer.py, written with pyca/cryptography alone, so it
//! shares no code with the verifier) makes RS256, ES256 and Ed25519 keys,
//! serves them as a JWKS on loopback, rotates them, and mints tokens with
//! the claim sets GitHub Actions, GitLab CI and Kubernetes put in theirs.
//! Every refusal is checked for its status and reason code.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::high_risk_gate;
use support::server::{Deployment, Server};

const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
const GITLAB_ISSUER: &str = "https://gitlab.example.com";
const K8S_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const AUDIENCE: &str = "https://stagegate.example";

fn script() -> PathBuf {
    support::root().join("tests/identity/issuer.py")
}

/// False (skip, listed) when python3 or pyca/cryptography is missing;
/// under CI a missing tool fails the test.
fn python_ready() -> bool {
    support::require_tool("cryptography")
}

/// New keys in `dir` (a rotation when it has some); returns the kids.
fn keys(dir: &Path) -> Value {
    let out = Command::new("python3")
        .arg(script())
        .arg("keys")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn mint(dir: &Path, spec: Value) -> String {
    let mut child = Command::new("python3")
        .arg(script())
        .arg("mint")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A JWKS server over `dir`; killed when dropped.
struct Jwks {
    child: Child,
    port: u16,
}

impl Jwks {
    fn start(dir: &Path) -> Jwks {
        let mut child = Command::new("python3")
            .arg(script())
            .arg("serve")
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the issuer prints its port");
        Jwks { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// How often the key set was read.
    fn hits(&self) -> u64 {
        let body = ureq::get(&self.url("/hits"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        serde_json::from_str::<Value>(&body).unwrap()["jwks"]
            .as_u64()
            .unwrap()
    }
}

impl Drop for Jwks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a GitHub Actions job's id-token, field by field as
/// "About security hardening with OpenID Connect" lists them
/// (https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect#understanding-the-oidc-token).
fn github_claims() -> Value {
    let t = now();
    json!({
        "jti": "example-id",
        "sub": "repo:acme/credit-scoring:environment:production",
        "environment": "production",
        "aud": AUDIENCE,
        "ref": "refs/heads/main",
        "sha": "example-sha",
        "repository": "acme/credit-scoring",
        "repository_owner": "acme",
        "actor_id": "12",
        "repository_visibility": "private",
        "repository_id": "74",
        "repository_owner_id": "65",
        "run_id": "example-run-id",
        "run_number": "10",
        "run_attempt": "2",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "workflow": "release",
        "head_ref": "",
        "base_ref": "",
        "event_name": "workflow_dispatch",
        "ref_type": "branch",
        "job_workflow_ref": "acme/credit-scoring/.github/workflows/release.yml@refs/heads/main",
        "iss": GITHUB_ISSUER,
        "nbf": t - 5,
        "exp": t + 300,
        "iat": t - 5
    })
}

/// The claims of a GitLab CI `id_tokens` token, as "OpenID Connect (OIDC)
/// Authentication Using ID Tokens" lists them
/// (https://docs.gitlab.com/ci/secrets/id_token_authentication/#token-payload).
fn gitlab_claims() -> Value {
    let t = now();
    json!({
        "namespace_id": "72",
        "namespace_path": "acme",
        "project_id": "20",
        "project_path": "acme/credit-scoring",
        "user_id": "1",
        "user_login": "j.doe",
        "user_email": "j.doe@acme.example",
        "user_access_level": "maintainer",
        "pipeline_id": "574",
        "pipeline_source": "push",
        "job_id": "302",
        "ref": "main",
        "ref_type": "branch",
        "ref_path": "refs/heads/main",
        "ref_protected": "true",
        "environment": "production",
        "environment_protected": "true",
        "deployment_tier": "production",
        "environment_action": "start",
        "runner_id": 1,
        "runner_environment": "self-hosted",
        "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        "project_visibility": "private",
        "ci_config_ref_uri": "gitlab.example.com/acme/credit-scoring//.gitlab-ci.yml@refs/heads/main",
        "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        "jti": "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b",
        "iss": GITLAB_ISSUER,
        "iat": t - 5,
        "nbf": t - 10,
        "exp": t + 300,
        "sub": "project_path:acme/credit-scoring:ref_type:branch:ref:main",
        "aud": AUDIENCE
    })
}

/// The claims of a projected ServiceAccount token, as "Managing Service
/// Accounts" shows one
/// (https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/#bound-service-account-tokens).
fn kubernetes_claims() -> Value {
    let t = now();
    json!({
        "aud": [AUDIENCE],
        "exp": t + 3600,
        "iat": t - 5,
        "iss": K8S_ISSUER,
        "jti": "ea28ed49-2e11-4280-9ec5-bc3d1d84661a",
        "kubernetes.io": {
            "namespace": "shop",
            "node": {"name": "node-1", "uid": "646e7c5e-32d6-4d42-9dbd-e504e6cbe6b1"},
            "pod": {"name": "gateway-7d9c", "uid": "5e0bd49b-f040-43b0-99b7-22765a53f7f3"},
            "serviceaccount": {"name": "gateway", "uid": "14ee3fa4-a7e2-420f-9f9a-dbc4507c3798"},
            "warnafter": t + 3000
        },
        "nbf": t - 5,
        "sub": "system:serviceaccount:shop:gateway"
    })
}

/// The status and error code of a gate request with `token`.
fn gate(s: &Server, token: &str) -> (u16, String) {
    let r = s.post_json("/v1/decisions/gate", Some(token), &high_risk_gate());
    let code = if r.status == 200 {
        r.json()["outcome"].as_str().unwrap_or("").to_string()
    } else {
        r.json()["error"]["code"].as_str().unwrap_or("").to_string()
    };
    // A refusal never quotes the token back.
    assert!(!r.body.contains(token), "the answer echoes the token");
    assert_ne!(r.status, 500, "{}", r.body);
    (r.status, code)
}

fn identity_entry(name: &str, issuer: &str, source: &str, extra: &str) -> String {
    format!(
        "[[identities]]\nname = \"{name}\"\nissuer = \"{issuer}\"\naudiences = [\"{AUDIENCE}\"]\n{source}\n{extra}\n"
    )
}

fn deployment(tables: &str) -> Deployment {
    let d = Deployment::new(&format!(
        "[[bundles]]\nname = \"iso42001-reference\"\nfile = \"ref.bundle\"\ndefault = true\n{tables}"
    ));
    std::fs::write(d.path("ref.bundle"), d.reference("1.0.0")).unwrap();
    d
}

#[test]
fn github_actions_tokens_are_checked_case_by_case() {
    if !python_ready() {
        return;
    }
    let keys_dir = tempfile::tempdir().unwrap();
    let kids = keys(keys_dir.path());
    let jwks = Jwks::start(keys_dir.path());
    let d = deployment(&identity_entry(
        "release-pipeline",
        GITHUB_ISSUER,
        &format!("jwks_url = \"{}\"", jwks.url("/jwks")),
        "claims = { repository = \"acme/*\", environment = \"production\" }\nroles = [\"gateway\", \"operator\"]\nsubject = \"{repository}@{ref}\"\njwks_min_refresh_s = 600\n",
    ));
    let s = d.start();
    let dir = keys_dir.path();
    let token = |key: &str, claims: Value| mint(dir, json!({"key": key, "claims": claims}));
    let with = |changes: Value| {
        let mut c = github_claims();
        c.as_object_mut()
            .unwrap()
            .extend(changes.as_object().unwrap().clone());
        c
    };
    let mut cases: Vec<(&str, String, u16, &str)> = vec![
        ("valid RS256", token("rsa", github_claims()), 200, "allow"),
        ("valid ES256", token("ec", github_claims()), 200, "allow"),
        ("valid EdDSA", token("ed", github_claims()), 200, "allow"),
        (
            "expired",
            token(
                "rsa",
                with(json!({"exp": now() - 3600, "iat": now() - 7200, "nbf": now() - 7200})),
            ),
            401,
            "token.expired",
        ),
        (
            "not yet valid",
            token("ec", with(json!({"nbf": now() + 3600}))),
            401,
            "token.not_yet_valid",
        ),
        (
            "wrong audience",
            token("ed", with(json!({"aud": "https://other.example"}))),
            401,
            "token.audience",
        ),
        (
            "wrong issuer",
            token("rsa", with(json!({"iss": "https://gitlab.com"}))),
            401,
            "token.issuer",
        ),
        (
            "alg none",
            mint(
                dir,
                json!({"key": "rsa", "claims": github_claims(), "attack": "none"}),
            ),
            401,
            "token.algorithm",
        ),
        (
            "HS256 keyed with the public key",
            mint(
                dir,
                json!({"key": "rsa", "claims": github_claims(), "attack": "hs256-public"}),
            ),
            401,
            "token.algorithm",
        ),
        (
            "RS256 against an EC key",
            mint(
                dir,
                json!({"key": "rsa", "claims": github_claims(), "attack": "rs-as-ec"}),
            ),
            401,
            "token.algorithm",
        ),
        (
            "tampered payload",
            mint(
                dir,
                json!({"key": "ec", "claims": github_claims(), "attack": "tamper"}),
            ),
            401,
            "token.signature",
        ),
        (
            "claims that do not match",
            token("rsa", with(json!({"repository": "mallory/credit-scoring"}))),
            401,
            "token.claims",
        ),
        (
            "environment that does not match",
            token("ed", with(json!({"environment": "staging"}))),
            401,
            "token.claims",
        ),
    ];
    cases.push((
        "garbage three-part value",
        "eyJhbGciOiJSUzI1NiJ9.e30.%%%".into(),
        401,
        "token.malformed",
    ));
    let mut report = Vec::new();
    for (name, token, status, code) in &cases {
        let got = gate(&s, token);
        report.push(format!("{name}: {} {}", got.0, got.1));
        assert_eq!((got.0, got.1.as_str()), (*status, *code), "case '{name}'");
    }

    // Unknown kid: the keys rotate; a token with a new kid makes the
    // service read the set once more, then it is accepted.
    let before = jwks.hits();
    let new_kids = keys(dir);
    assert_ne!(new_kids["rsa"], kids["rsa"]);
    let got = gate(&s, &token("rsa", github_claims()));
    report.push(format!("unknown kid after rotation: {} {}", got.0, got.1));
    assert_eq!(
        got,
        (200, "allow".to_string()),
        "a rotated-in key is fetched"
    );
    assert_eq!(jwks.hits(), before + 1, "exactly one refresh");
    // A second unknown kid within jwks_min_refresh_s: refused without
    // another fetch (junk kids cannot hammer the issuer).
    let got = gate(
        &s,
        &mint(
            dir,
            json!({"key": "ec", "claims": github_claims(), "kid": "never-published"}),
        ),
    );
    report.push(format!(
        "unknown kid again (rate-limited): {} {}",
        got.0, got.1
    ));
    assert_eq!(got, (401, "token.key_unknown".to_string()));
    assert_eq!(jwks.hits(), before + 1, "the refresh is rate-limited");

    // The records attribute actions to `<name>:<subject>`.
    let r = s.post_json(
        "/v1/systems",
        Some(&token("ec", github_claims())),
        &json!({"id": "credit-scoring", "risk_tier": "high"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let logs = s.logs();
    assert!(
        logs.contains("release-pipeline:acme/credit-scoring@refs/heads/main"),
        "the actor is named in the records: {logs}"
    );
    eprintln!("{}", report.join("\n"));
}

#[test]
fn cached_keys_outlive_a_jwks_server_that_went_away_until_they_expire() {
    if !python_ready() {
        return;
    }
    let keys_dir = tempfile::tempdir().unwrap();
    keys(keys_dir.path());
    let jwks = Jwks::start(keys_dir.path());
    let d = deployment(&identity_entry(
        "gitlab-deploy",
        GITLAB_ISSUER,
        &format!("jwks_url = \"{}\"", jwks.url("/jwks")),
        "claims = { project_path = \"acme/credit-scoring\", ref_protected = \"true\" }\nroles = [\"gateway\"]\nsubject = \"{project_path}@{ref}\"\njwks_refresh_s = 1\njwks_min_refresh_s = 0\njwks_max_age_s = 4\n",
    ));
    let s = d.start();
    let dir = keys_dir.path();
    assert_eq!(
        gate(
            &s,
            &mint(dir, json!({"key": "ed", "claims": gitlab_claims()}))
        ),
        (200, "allow".into())
    );
    drop(jwks);
    // Past jwks_refresh_s: the service tries the endpoint, fails, and
    // keeps using the keys it has.
    std::thread::sleep(Duration::from_millis(1200));
    let got = gate(
        &s,
        &mint(dir, json!({"key": "rsa", "claims": gitlab_claims()})),
    );
    eprintln!("JWKS server gone, cached keys: {} {}", got.0, got.1);
    assert_eq!(got, (200, "allow".into()));
    assert!(
        s.logs().contains("could not be refreshed"),
        "the failed refresh is logged"
    );
    // Past jwks_max_age_s the cached keys are no longer trusted.
    std::thread::sleep(Duration::from_millis(3200));
    let got = gate(
        &s,
        &mint(dir, json!({"key": "ec", "claims": gitlab_claims()})),
    );
    eprintln!("JWKS server gone, cache too old: {} {}", got.0, got.1);
    assert_eq!(got, (401, "token.jwks_unavailable".into()));
}

#[test]
fn a_ten_megabyte_jwks_answer_is_refused_and_the_service_stays_up() {
    if !python_ready() {
        return;
    }
    let keys_dir = tempfile::tempdir().unwrap();
    keys(keys_dir.path());
    let jwks = Jwks::start(keys_dir.path());
    let d = deployment(&identity_entry(
        "big",
        GITHUB_ISSUER,
        &format!("jwks_url = \"{}\"", jwks.url("/big")),
        "roles = [\"gateway\"]\n",
    ));
    let s = d.start();
    let got = gate(
        &s,
        &mint(
            keys_dir.path(),
            json!({"key": "rsa", "claims": github_claims()}),
        ),
    );
    eprintln!("10 MB JWKS answer: {} {}", got.0, got.1);
    assert_eq!(got, (401, "token.jwks_unavailable".into()));
    assert!(s.logs().contains("larger than 1024 KiB"), "{}", s.logs());
    assert_eq!(s.get("/healthz", None).status, 200);
}

#[test]
fn kubernetes_service_account_tokens_from_a_jwks_file_and_static_tokens_side_by_side() {
    if !python_ready() {
        return;
    }
    let keys_dir = tempfile::tempdir().unwrap();
    keys(keys_dir.path());
    let (static_token, hash) = stagegate::auth::new_token();
    let d = deployment(&format!(
        "{}{}[[tokens]]\nname = \"legacy-ci\"\nsha256 = \"{hash}\"\nroles = [\"gateway\"]\n",
        identity_entry(
            "shop-gateway",
            K8S_ISSUER,
            &format!(
                "jwks_file = \"{}\"",
                keys_dir.path().join("jwks.json").display()
            ),
            "claims = { sub = \"system:serviceaccount:shop:gateway\", \"kubernetes.io/namespace\" = \"shop\" }\nroles = [\"gateway\"]\n",
        ),
        identity_entry(
            "approvers",
            K8S_ISSUER,
            &format!(
                "jwks_file = \"{}\"",
                keys_dir.path().join("jwks.json").display()
            ),
            "claims = { \"kubernetes.io/serviceaccount/name\" = \"risk-*\" }\nroles = [\"approver\", \"operator\"]\ntitle = \"Head of AI Risk\"\n",
        ),
    ));
    let s = d.start();
    let dir = keys_dir.path();
    let k8s = mint(dir, json!({"key": "rsa", "claims": kubernetes_claims()}));
    assert_eq!(gate(&s, &k8s), (200, "allow".into()));
    assert_eq!(gate(&s, &static_token), (200, "allow".into()));
    assert_eq!(gate(&s, "sg_not-a-known-token").0, 401);
    // The gateway's identity has only the gateway role.
    let r = s.post_json(
        "/v1/systems",
        Some(&k8s),
        &json!({"id": "credit-scoring", "risk_tier": "high"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // Approver actions bound to identities: the recorded reviewer and
    // authoriser are the identities' actors, so the separation-of-duties
    // rule (reviewer != authoriser) compares them as it compares names.
    let approver = |sa: &str| {
        let mut c = kubernetes_claims();
        c["sub"] = json!(format!("system:serviceaccount:risk:{sa}"));
        c["kubernetes.io"]["namespace"] = json!("risk");
        c["kubernetes.io"]["serviceaccount"]["name"] = json!(sa);
        mint(dir, json!({"key": "ed", "claims": c}))
    };
    let (alice, bob) = (approver("risk-alice"), approver("risk-bob"));
    let r = s.post_json(
        "/v1/systems",
        Some(&alice),
        &json!({"id": "credit-scoring", "risk_tier": "high"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s.post_json(
        "/v1/systems/credit-scoring/releases",
        Some(&alice),
        &support::records::release_body("2.0.0"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = "credit-scoring@2.0.0";
    let r = s.post_json(
        &format!("/v1/releases/{id}/reviews"),
        Some(&alice),
        &json!({"outcome": "approved"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.json()["review"]["reviewer"],
        "approvers:system:serviceaccount:risk:risk-alice"
    );
    let r = s.post_json(
        &format!("/v1/releases/{id}/authorisations"),
        Some(&bob),
        &json!({}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        authorisation(&r)["authorised_by"],
        "approvers:system:serviceaccount:risk:risk-bob"
    );
    assert_eq!(authorisation(&r)["role"], "Head of AI Risk");
    // The same identity and subject is the same actor.
    let r = s.post_json(
        &format!("/v1/releases/{id}/authorisations"),
        Some(&alice),
        &json!({}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        authorisation(&r)["authorised_by"],
        "approvers:system:serviceaccount:risk:risk-alice"
    );
}

/// The authorisation in a POST answer (wrapped or not).
fn authorisation(r: &support::server::Reply) -> Value {
    let v = r.json();
    if v.get("authorisation").is_some() {
        v["authorisation"].clone()
    } else {
        v
    }
}

#[test]
fn a_broken_identity_entry_stops_the_service_naming_the_key() {
    let d = Deployment::new(&format!(
        "[[identities]]\nname = \"ci\"\nissuer = \"{GITHUB_ISSUER}\"\njwks_url = \"http://issuer.example/jwks\"\naudiences = [\"{AUDIENCE}\"]\nroles = [\"gateway\"]\n"
    ));
    let e = Server::try_start(d.dir.path(), Some(&d.config()))
        .err()
        .unwrap();
    assert!(e.contains("identities[0].jwks_url"), "{e}");
    let d = Deployment::new(&format!(
        "[[identities]]\nname = \"ci\"\nissuer = \"{GITHUB_ISSUER}\"\njwks_file = \"/nonexistent/jwks.json\"\naudiences = [\"{AUDIENCE}\"]\nroles = [\"gateway\"]\n"
    ));
    let e = Server::try_start(d.dir.path(), Some(&d.config()))
        .err()
        .unwrap();
    assert!(e.contains("identities[0].jwks_file"), "{e}");
}

#[test]
fn an_approver_identity_that_reviews_what_it_authorised_is_held_for_separation_of_duties() {
    if !python_ready() {
        return;
    }
    let keys_dir = tempfile::tempdir().unwrap();
    keys(keys_dir.path());
    let d = deployment(&identity_entry(
        "approvers",
        K8S_ISSUER,
        &format!(
            "jwks_file = \"{}\"",
            keys_dir.path().join("jwks.json").display()
        ),
        "claims = { \"kubernetes.io/serviceaccount/name\" = \"risk-*\" }\nroles = [\"approver\", \"operator\"]\ntitle = \"Head of AI Risk\"\n",
    ));
    let trust = support::records::evidence_trust(&d.path("evidence.pem"));
    let config = std::fs::read_to_string(d.config()).unwrap();
    std::fs::write(d.config(), format!("{config}\n{trust}")).unwrap();
    let s = d.start();
    let approver = |sa: &str| {
        let mut c = kubernetes_claims();
        c["sub"] = json!(format!("system:serviceaccount:risk:{sa}"));
        c["kubernetes.io"]["serviceaccount"]["name"] = json!(sa);
        mint(keys_dir.path(), json!({"key": "ec", "claims": c}))
    };
    let alice = approver("risk-alice");
    let post = |token: &str, path: &str, body: Value| {
        let r = s.post_json(path, Some(token), &body);
        assert!(r.status == 201 || r.status == 200, "{path}: {}", r.body);
        r.json()
    };
    post(
        &alice,
        "/v1/systems",
        json!({"id": "credit-scoring", "risk_tier": "high", "consequential": true,
            "escalation_contact": "risk-desk on-call"}),
    );
    let mut release = support::records::release_body("3.0.0");
    support::records::attest(&mut release);
    post(&alice, "/v1/systems/credit-scoring/releases", release);
    let id = "credit-scoring@3.0.0";
    post(
        &alice,
        &format!("/v1/releases/{id}/reviews"),
        json!({"outcome": "approved"}),
    );
    post(
        &alice,
        &format!("/v1/releases/{id}/authorisations"),
        json!({}),
    );
    post(
        &alice,
        &format!("/v1/releases/{id}/acceptances"),
        json!({"deficiency_id": "D-7", "rationale": "within tolerance, monitored"}),
    );
    let dep = post(
        &alice,
        "/v1/deployments",
        json!({"release_id": id, "plan": support::records::plan()}),
    );
    let dep = dep["deployment"]["id"].as_str().unwrap().to_string();
    post(
        &alice,
        &format!("/v1/deployments/{dep}/observations"),
        json!({"observations": [
            {"metric": "error_rate", "value": 0.01, "samples": 5000},
            {"metric": "harmful_output_rate", "value": 0.0, "samples": 5000},
            {"metric": "complaint_rate", "value": 0.0, "samples": 5000}
        ]}),
    );
    // The identity that authorised the release reviews its progression.
    post(
        &alice,
        &format!("/v1/deployments/{dep}/reviews"),
        json!({"outcome": "approved"}),
    );
    let v = post(
        &alice,
        &format!("/v1/deployments/{dep}/progressions"),
        json!({"target_stage": "regional"}),
    );
    assert_eq!(v["decision"]["outcome"], "hold", "{v:#}");
    let codes: Vec<&str> = v["decision"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(codes.contains(&"progression.separation_of_duties"), "{v:#}");
    // Another subject of the same identity is another actor.
    let bob = approver("risk-bob");
    post(
        &bob,
        &format!("/v1/deployments/{dep}/reviews"),
        json!({"outcome": "approved"}),
    );
    let v = post(
        &alice,
        &format!("/v1/deployments/{dep}/progressions"),
        json!({"target_stage": "regional"}),
    );
    assert_eq!(v["decision"]["outcome"], "promote", "{v:#}");
}
