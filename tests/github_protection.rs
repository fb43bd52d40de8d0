//! GitHub deployment protection rules against a local stand-in of the
//! GitHub API that checks the App's JWT (RS256, issuer, lifetime) before it
//! hands out an installation token, and records every callback.
//!
//! The App's key is made for the test with `openssl genrsa` (PKCS#1, the
//! form GitHub hands out); `just test-deps` installs openssl.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use serde_json::{Value, json};
use support::records::{Backend, World, post, registered_release, release_body};

const APP_ID: u64 = 424242;
const SECRET: &str = "webhook-secret-for-the-test";
const INSTALLATION_TOKEN: &str = "ghs_standin_installation_token";
const REPO: &str = "acme/credit-scoring";

/// What the stand-in saw.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: String,
    body: String,
}

/// A tiny HTTP/1.1 server playing GitHub's REST API.
struct GithubStandIn {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl GithubStandIn {
    /// `public_key`: the App's RSA public key (PKCS#1 DER).
    fn start(public_key: Vec<u8>) -> GithubStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let (mut length, mut authorization) = (0usize, String::new());
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    let (name, value) = h.split_once(':').unwrap_or(("", ""));
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        "authorization" => authorization = value.trim().to_string(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let body = String::from_utf8_lossy(&body).into_owned();
                let (status, answer) = if path.starts_with("/app/installations/") {
                    match check_jwt(&authorization, &public_key) {
                        Ok(()) if path == "/app/installations/77/access_tokens" => (
                            "201 Created",
                            json!({"token": INSTALLATION_TOKEN, "expires_at": "2030-01-01T00:00:00Z"})
                                .to_string(),
                        ),
                        Ok(()) => ("404 Not Found", "{}".to_string()),
                        Err(why) => ("401 Unauthorized", json!({"message": why}).to_string()),
                    }
                } else if authorization == format!("Bearer {INSTALLATION_TOKEN}") {
                    ("204 No Content", String::new())
                } else {
                    ("401 Unauthorized", "{}".to_string())
                };
                log.lock().unwrap().push(Seen {
                    path,
                    authorization,
                    body,
                });
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        GithubStandIn { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn callbacks(&self) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.ends_with("/deployment_protection_rule"))
            .map(|s| {
                assert_eq!(s.authorization, format!("Bearer {INSTALLATION_TOKEN}"));
                serde_json::from_str(&s.body).unwrap()
            })
            .collect()
    }
}

/// Accepts only an RS256 JWT signed by the App's key, issued by the App,
/// valid now and for at most ten minutes (GitHub's rules).
fn check_jwt(authorization: &str, public_key: &[u8]) -> Result<(), String> {
    let jwt = authorization
        .strip_prefix("Bearer ")
        .ok_or("no bearer JWT")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("not a JWT".into());
    }
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(parts[0])
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key,
    )
    .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
    .map_err(|_| "bad JWT signature".to_string())?;
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(parts[1])
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (iat, exp) = (
        claims["iat"].as_i64().ok_or("no iat")?,
        claims["exp"].as_i64().ok_or("no exp")?,
    );
    // GitHub documents `iss` as the App id; stagegate sends it as a string.
    if claims["iss"].as_str().and_then(|s| s.parse::<u64>().ok()) != Some(APP_ID) {
        return Err(format!("iss {}", claims["iss"]));
    }
    if iat > now || exp <= now || exp - iat > 600 {
        return Err(format!("iat {iat} exp {exp} now {now}"));
    }
    Ok(())
}

/// An RSA key made with openssl, as GitHub hands them out (PKCS#1 PEM),
/// and its public half (PKCS#1 DER).
fn app_key(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join("app.pem");
    let out = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&path)
        .arg("2048")
        .output()
        .expect("running openssl, which require_tool just ran");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&path).unwrap();
    let (label, der) = stagegate::integrations::github::app::pem(&pem).unwrap();
    assert_eq!(label, "RSA PRIVATE KEY");
    let pair = ring::signature::RsaKeyPair::from_der(&der).unwrap();
    use ring::signature::KeyPair;
    (path, pair.public_key().as_ref().to_vec())
}

struct Setup {
    world: World,
    github: GithubStandIn,
    _files: tempfile::TempDir,
}

/// None (the test skipped) without openssl.
fn setup() -> Option<Setup> {
    if !support::require_tool("openssl") {
        return None;
    }
    let files = tempfile::tempdir().unwrap();
    let (key, public) = app_key(files.path());
    let github = GithubStandIn::start(public);
    std::fs::write(files.path().join("secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(
        files.path().join("plan.json"),
        support::records::plan().to_string(),
    )
    .unwrap();
    let extra = format!(
        "[integrations.github]\napp_id = {APP_ID}\nprivate_key_file = \"{key}\"\n\
         webhook_secret_file = \"{secret}\"\napi_url = \"{api}\"\n\
         [[integrations.github.environments]]\nrepository = \"{REPO}\"\nenvironment = \"production\"\n\
         system = \"credit-scoring\"\nrelease = \"{{sha}}\"\nplan_file = \"{plan}\"\n",
        key = key.display(),
        secret = files.path().join("secret").display(),
        api = github.url,
        plan = files.path().join("plan.json").display(),
    );
    let world = World::new(Backend::Sqlite, &extra).unwrap();
    Some(Setup {
        world,
        github,
        _files: files,
    })
}

fn payload(github: &GithubStandIn, sha: &str) -> Value {
    json!({
        "action": "requested",
        "environment": "production",
        "event": "push",
        "sha": sha,
        "ref": "refs/heads/main",
        "deployment_callback_url": format!("{}/repos/{REPO}/actions/runs/42/deployment_protection_rule", github.url),
        "deployment": {"id": 1, "sha": sha, "ref": "main", "environment": "production"},
        "repository": {"id": 9, "full_name": REPO, "name": "credit-scoring"},
        "installation": {"id": 77, "node_id": "x"},
        "sender": {"login": "octocat"}
    })
}

fn signature(body: &[u8], secret: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn deliver(s: &support::server::Server, body: &Value, signature: &str) -> support::server::Reply {
    // GitHub names each delivery with a fresh GUID (a redelivery keeps it).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = format!(
        "d-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    deliver_as(s, body, signature, &id)
}

fn deliver_as(
    s: &support::server::Server,
    body: &Value,
    signature: &str,
    delivery: &str,
) -> support::server::Reply {
    support::server::Request::post(&s.url("/v1/integrations/github/deployment-protection"))
        .json(body)
        .header("X-GitHub-Event", "deployment_protection_rule")
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", signature)
        .send()
}

fn wait_for_callbacks(github: &GithubStandIn, n: usize) -> Vec<Value> {
    support::wait_until(
        &format!("{n} callback(s) to the GitHub stand-in"),
        Duration::from_secs(60),
        || github.callbacks().len() >= n,
    );
    github.callbacks()
}

#[test]
fn an_authorised_release_is_approved_through_the_callback_with_an_installation_token() {
    let Some(Setup {
        world,
        github,
        _files: _keep,
    }) = setup()
    else {
        return;
    };
    let s = world.start();
    let sha = "4c3f2a1b0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b";
    registered_release(&s, sha);
    let body = payload(&github, sha);
    let raw = serde_json::to_vec(&body).unwrap();
    let r = deliver(&s, &body, &signature(&raw, SECRET));
    assert_eq!(r.status, 202, "{}", r.body);
    let callbacks = wait_for_callbacks(&github, 1);
    let c = &callbacks[0];
    assert_eq!(c["environment_name"], "production");
    assert_eq!(c["state"], "approved", "{c}");
    let comment = c["comment"].as_str().unwrap();
    assert!(
        comment.starts_with("stagegate gate: allow (decision "),
        "{comment}"
    );
    // The token was bought with a JWT the stand-in accepted.
    let seen = github.seen();
    assert_eq!(seen[0].path, "/app/installations/77/access_tokens");
    assert!(seen[0].authorization.starts_with("Bearer ey"));
    // The decision is in the log, attributed to the repository.
    let id = comment["stagegate gate: allow (decision ".len()..]
        .split(',')
        .next()
        .unwrap();
    let r = support::records::get(&s, "audit", &format!("/v1/decisions/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("github:acme/credit-scoring"), "{}", r.body);
}

#[test]
fn an_unauthorised_or_unknown_release_is_rejected_with_the_findings_in_the_comment() {
    let Some(Setup {
        world,
        github,
        _files: _keep,
    }) = setup()
    else {
        return;
    };
    let s = world.start();
    // Registered with its evidence only: no review, no authorisation.
    let sha = "1111111111111111111111111111111111111111";
    let r = post(
        &s,
        "ops",
        "/v1/systems",
        &json!({"id": "credit-scoring", "risk_tier": "high", "consequential": true,
        "escalation_contact": "risk-desk on-call"}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(
        &s,
        "ops",
        "/v1/systems/credit-scoring/releases",
        &release_body(sha),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let body = payload(&github, sha);
    let raw = serde_json::to_vec(&body).unwrap();
    assert_eq!(deliver(&s, &body, &signature(&raw, SECRET)).status, 202);
    let c = wait_for_callbacks(&github, 1).remove(0);
    assert_eq!(c["state"], "rejected", "{c}");
    let comment = c["comment"].as_str().unwrap();
    assert!(comment.starts_with("stagegate gate: deny"), "{comment}");
    assert!(
        comment.contains("- blocking authorisation.missing at /authorisation: "),
        "{comment}"
    );
    assert!(comment.chars().count() <= 1024);

    // A commit no release is registered for: rejected, saying so.
    let body = payload(&github, "2222222222222222222222222222222222222222");
    let raw = serde_json::to_vec(&body).unwrap();
    assert_eq!(deliver(&s, &body, &signature(&raw, SECRET)).status, 202);
    let c = wait_for_callbacks(&github, 2).remove(1);
    assert_eq!(c["state"], "rejected", "{c}");
    assert!(
        c["comment"]
            .as_str()
            .unwrap()
            .contains("no release 'credit-scoring@2222222222222222222222222222222222222222'"),
        "{c}"
    );
}

#[test]
fn a_bad_signature_is_401_and_nothing_is_called_back() {
    let Some(Setup {
        world,
        github,
        _files: _keep,
    }) = setup()
    else {
        return;
    };
    let s = world.start();
    let sha = "4c3f2a1b0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b";
    registered_release(&s, sha);
    let body = payload(&github, sha);
    let raw = serde_json::to_vec(&body).unwrap();
    for sig in [
        signature(&raw, "another-secret"),
        signature(b"another body", SECRET),
        "sha256=zz".to_string(),
        String::new(),
    ] {
        let r = deliver(&s, &body, &sig);
        assert_eq!(r.status, 401, "{sig}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "bad_signature");
    }
    // A well-signed delivery afterwards is the only one GitHub hears of.
    let r = deliver(&s, &body, &signature(&raw, SECRET));
    assert_eq!(r.status, 202, "{}", r.body);
    wait_for_callbacks(&github, 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(github.callbacks().len(), 1);
    assert_eq!(
        github
            .seen()
            .iter()
            .filter(|s| s.path.starts_with("/app/"))
            .count(),
        1,
        "one token request, for the signed delivery"
    );
}

#[test]
fn a_redelivered_webhook_is_judged_and_called_back_once() {
    let Some(Setup {
        world,
        github,
        _files: _keep,
    }) = setup()
    else {
        return;
    };
    let s = world.start();
    let sha = "4c3f2a1b0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b";
    registered_release(&s, sha);
    let body = payload(&github, sha);
    let raw = serde_json::to_vec(&body).unwrap();
    let sig = signature(&raw, SECRET);
    let first = deliver_as(&s, &body, &sig, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(first.status, 202, "{}", first.body);
    wait_for_callbacks(&github, 1);
    // GitHub's "Redeliver" (or an attacker replaying a captured delivery):
    // the same X-GitHub-Delivery, the same signed body.
    let again = deliver_as(&s, &body, &sig, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["duplicate"], true, "{}", again.body);
    // Give a second review time to happen, were it started.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        github.callbacks().len(),
        1,
        "a redelivery was judged and called back again"
    );
}

#[test]
fn a_commit_that_is_not_a_full_sha_is_refused() {
    let Some(Setup {
        world,
        github,
        _files: _keep,
    }) = setup()
    else {
        return;
    };
    let s = world.start();
    let body = payload(&github, "4c3f2a1");
    let raw = serde_json::to_vec(&body).unwrap();
    let r = deliver(&s, &body, &signature(&raw, SECRET));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["path"], "/sha", "{}", r.body);
}
