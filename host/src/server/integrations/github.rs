//! GitHub deployment protection rules (docs/integrations/github.md):
//! `POST /v1/integrations/github/deployment-protection`.
//!
//! A GitHub App installed as a protection rule on an environment receives
//! a `deployment_protection_rule` webhook (`action: requested`) whenever a
//! workflow job wants to deploy there. Its payload (GitHub's webhook
//! reference, "deployment_protection_rule"; octokit/webhooks,
//! `payload-schemas/api.github.com/deployment_protection_rule/requested.schema.json`)
//! carries `environment`, `event`, `sha`, `ref`, `deployment_callback_url`,
//! `deployment` (with its own `sha` and `ref`), `repository.full_name` and
//! `installation.id`, and is signed with the App's webhook secret in
//! `X-Hub-Signature-256: sha256=HEX(HMAC-SHA256(secret, body))`.
//!
//! stagegate checks the signature (constant time), answers 202 at once and
//! then, off the request path (GitHub gives a webhook 10 s; the gate, a
//! token exchange and the callback may take longer), finds the recorded
//! release that the configured mapping names for the repository,
//! environment and commit, runs the gate through the one decision pipeline
//! on the records (as `POST /v1/deployments` does), logs the decision, and
//! posts `{"environment_name", "state": "approved"|"rejected", "comment"}`
//! to `deployment_callback_url` with an installation token of the App. Any
//! failure on the way rejects: a deployment never goes ahead because
//! stagegate could not judge it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::github_app::{self, GithubError};
use crate::decision::request::Plan;
use crate::decision::{Envelope, Outcome, Request};
use crate::records::RecordError;
use crate::server::App;
use crate::server::body;
use crate::server::error::ApiError;

/// `[integrations.github]`. Every key has a default so that each can be
/// documented on its own; `validate` requires the ones without a sensible
/// one (`app_id`, `private_key_file`, a webhook secret).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GithubConfig {
    /// The GitHub App's id (the JWT's issuer).
    pub app_id: u64,
    /// The App's private key (PEM, as GitHub hands it out).
    pub private_key_file: Option<PathBuf>,
    /// A file holding the webhook secret (trailing whitespace ignored)...
    pub webhook_secret_file: Option<PathBuf>,
    /// ...or the environment variable holding it. Exactly one of the two:
    /// the secret itself never appears in the configuration.
    pub webhook_secret_env: Option<String>,
    /// The REST API base: `https://api.github.com`, or a GitHub Enterprise
    /// Server's `https://HOST/api/v3`. Installation tokens are only sent
    /// under it.
    pub api_url: String,
    /// How long one call to GitHub may take.
    pub timeout_ms: u64,
    /// Which release and plan each protected environment is gated on.
    pub environments: Vec<GithubEnvironment>,
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            app_id: 0,
            private_key_file: None,
            webhook_secret_file: None,
            webhook_secret_env: None,
            api_url: "https://api.github.com".into(),
            timeout_ms: 10_000,
            environments: Vec::new(),
        }
    }
}

/// `[[integrations.github.environments]]`: one protected environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubEnvironment {
    /// `OWNER/REPO` (compared without regard to case, as GitHub does).
    pub repository: String,
    /// The environment's name (compared without regard to case).
    pub environment: String,
    /// The registered system the repository deploys.
    pub system: String,
    /// The release version the commit is registered under; `{sha}` (the
    /// full 40-hex commit) and `{ref}` are replaced. The release judged is
    /// `SYSTEM@VERSION`. Default `{sha}`. `{short_sha}` is refused: seven
    /// hex digits compare 28 bits, and a commit sharing them with an
    /// approved release can be manufactured.
    #[serde(default = "default_release")]
    pub release: String,
    /// With `{ref}` in `release`: the refs that may name a release
    /// (`refs/tags/v2.3.0`, `main`, ...). Required then: without it the
    /// pusher would choose the release by naming a branch.
    #[serde(default)]
    pub allowed_refs: Vec<String>,
    /// The rollout plan the gate judges the release under (JSON, the
    /// `plan` of a gate request).
    pub plan_file: PathBuf,
    /// The bundle to ask (default: the default bundle).
    #[serde(default)]
    pub bundle: Option<String>,
}

fn default_release() -> String {
    "{sha}".into()
}

impl GithubConfig {
    /// What serde cannot check, named by key.
    pub fn validate(&self) -> Result<(), String> {
        let at = "integrations.github";
        if self.app_id == 0 {
            return Err(format!("{at}.app_id is required (the GitHub App's id)"));
        }
        if self.private_key_file.is_none() {
            return Err(format!(
                "{at}.private_key_file is required (the GitHub App's private key)"
            ));
        }
        match (&self.webhook_secret_file, &self.webhook_secret_env) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(format!(
                    "{at}: give exactly one of webhook_secret_file and webhook_secret_env"
                ));
            }
        }
        if !(self.api_url.starts_with("https://") || self.api_url.starts_with("http://")) {
            return Err(format!(
                "{at}.api_url must be an http(s) URL, not '{}'",
                self.api_url
            ));
        }
        if self.timeout_ms == 0 {
            return Err(format!("{at}.timeout_ms must be greater than 0"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, e) in self.environments.iter().enumerate() {
            let at = format!("{at}.environments[{i}]");
            if e.repository.split('/').count() != 2 || e.repository.contains(' ') {
                return Err(format!(
                    "{at}.repository must be OWNER/REPO, not '{}'",
                    e.repository
                ));
            }
            if e.environment.trim().is_empty() || e.system.trim().is_empty() {
                return Err(format!("{at}: environment and system must not be empty"));
            }
            if e.release.contains("{short_sha}") {
                return Err(format!(
                    "{at}.release '{}': {{short_sha}} compares only 28 bits of the commit, and a commit that shares them with an approved release can be made; use {{sha}} (the full commit)",
                    e.release
                ));
            }
            let unknown = e.release.replace("{sha}", "").replace("{ref}", "");
            if unknown.contains('{') || unknown.contains('}') {
                return Err(format!(
                    "{at}.release '{}': only {{sha}} and {{ref}} are replaced",
                    e.release
                ));
            }
            if e.release.contains("{ref}") && e.allowed_refs.is_empty() {
                return Err(format!(
                    "{at}.release '{}' uses {{ref}}, which whoever pushes chooses by naming a branch: list the refs that may name a release in {at}.allowed_refs (e.g. [\"refs/tags/v2.3.0\"])",
                    e.release
                ));
            }
            if !seen.insert(key(&e.repository, &e.environment)) {
                return Err(format!(
                    "{at}: {} environment {} is mapped twice",
                    e.repository, e.environment
                ));
            }
        }
        Ok(())
    }
}

fn key(repository: &str, environment: &str) -> (String, String) {
    (repository.to_lowercase(), environment.to_lowercase())
}

/// One mapped environment, loaded.
struct Target {
    system: String,
    release: String,
    allowed_refs: Vec<String>,
    plan: Plan,
    bundle: Option<String>,
}

/// The integration, loaded at start: secrets read, key parsed, plans
/// decoded and checked.
pub struct GithubGate {
    secret: Vec<u8>,
    /// Delivery ids answered in the last 24 hours (replays refused).
    deliveries: crate::integrations::github_deliveries::Deliveries,
    app: Arc<github_app::App>,
    targets: HashMap<(String, String), Target>,
}

impl GithubGate {
    pub fn load(config: &GithubConfig) -> Result<GithubGate, String> {
        let secret = match (&config.webhook_secret_file, &config.webhook_secret_env) {
            (Some(file), _) => std::fs::read_to_string(file)
                .map_err(|e| {
                    format!(
                        "integrations.github.webhook_secret_file {}: {e}",
                        file.display()
                    )
                })?
                .trim_end()
                .to_string(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                format!("integrations.github.webhook_secret_env: ${var} is not set")
            })?,
            (None, None) => String::new(),
        };
        if secret.is_empty() {
            return Err("integrations.github: the webhook secret is empty".into());
        }
        let key_file = config
            .private_key_file
            .clone()
            .ok_or("integrations.github.private_key_file is required")?;
        let pem = std::fs::read_to_string(&key_file).map_err(|e| {
            format!(
                "integrations.github.private_key_file {}: {e}",
                key_file.display()
            )
        })?;
        let app = github_app::App::new(
            config.app_id,
            &pem,
            &config.api_url,
            Duration::from_millis(config.timeout_ms),
        )
        .map_err(|e| {
            format!(
                "integrations.github.private_key_file {}: {e}",
                key_file.display()
            )
        })?;
        let mut targets = HashMap::new();
        for (i, e) in config.environments.iter().enumerate() {
            let at = format!(
                "integrations.github.environments[{i}].plan_file {}",
                e.plan_file.display()
            );
            let bytes = std::fs::read(&e.plan_file).map_err(|err| format!("{at}: {err}"))?;
            let plan: Plan =
                crate::decision::decode::decode_as(&bytes).map_err(|err| format!("{at}: {err}"))?;
            crate::decision::decode::validate_plan(&plan).map_err(|err| format!("{at}: {err}"))?;
            targets.insert(
                key(&e.repository, &e.environment),
                Target {
                    system: e.system.clone(),
                    release: e.release.clone(),
                    allowed_refs: e.allowed_refs.clone(),
                    plan,
                    bundle: e.bundle.clone(),
                },
            );
        }
        Ok(GithubGate {
            secret: secret.into_bytes(),
            deliveries: Default::default(),
            app: Arc::new(app),
            targets,
        })
    }

    /// `X-Hub-Signature-256` is `sha256=` and the hex HMAC-SHA256 of the
    /// body under the webhook secret; compared in constant time.
    fn signed(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let Some(hex_mac) = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("sha256="))
        else {
            return false;
        };
        let Ok(given) = hex::decode(hex_mac) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    }
}

/// The parts of the webhook stagegate reads.
#[derive(Debug, Deserialize)]
pub(crate) struct Payload {
    action: String,
    environment: String,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default, rename = "ref")]
    git_ref: Option<String>,
    deployment_callback_url: String,
    #[serde(default)]
    deployment: Option<PayloadDeployment>,
    repository: PayloadRepository,
    installation: PayloadInstallation,
}

#[derive(Debug, Deserialize)]
struct PayloadDeployment {
    #[serde(default)]
    sha: Option<String>,
    #[serde(default, rename = "ref")]
    git_ref: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PayloadRepository {
    full_name: String,
}

#[derive(Debug, Deserialize)]
struct PayloadInstallation {
    id: u64,
}

/// A `deployment_protection_rule` payload, or a 400 naming the JSON path
/// of what is wrong.
pub(crate) fn parse_payload(bytes: &[u8]) -> Result<Payload, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let pointer = crate::attest::json_pointer(e.path());
        ApiError::bad_request(
            "request.malformed",
            format!("deployment_protection_rule payload: {}", e.inner()),
        )
        .at(pointer)
    })
}

/// `POST /v1/integrations/github/deployment-protection`: authenticated by
/// the webhook signature, not a bearer token (GitHub sends none).
pub async fn deployment_protection(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
    let Some(gate) = app.github.clone() else {
        return Err(ApiError::not_found(
            "the GitHub integration is not configured ([integrations.github])",
        ));
    };
    // Read before the HMAC can be checked, so read little: a webhook body
    // is a few KiB, and callers without a token get a short deadline
    // (server::capacity).
    let bytes = body::read(
        &headers,
        request_body,
        WEBHOOK_MAX.min(app.limits.body_bytes),
    )
    .await?;
    if !gate.signed(&headers, &bytes) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Hub-Signature-256 is missing or does not match the body under the webhook secret",
        )
        .at("X-Hub-Signature-256"));
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let delivery = headers
        .get("x-github-delivery")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    if let Some(id) = &delivery
        && !gate.deliveries.first(id, std::time::Instant::now())
    {
        return Ok(accepted(
            serde_json::json!({"duplicate": true, "delivery": id}),
            StatusCode::OK,
        ));
    }
    if event == "ping" {
        return Ok(accepted(serde_json::json!({"pong": true}), StatusCode::OK));
    }
    if event != "deployment_protection_rule" {
        return Ok(accepted(
            serde_json::json!({"ignored": format!("event '{event}'")}),
            StatusCode::ACCEPTED,
        ));
    }
    let payload = parse_payload(&bytes)?;
    if payload.action != "requested" {
        return Ok(accepted(
            serde_json::json!({"ignored": format!("action '{}'", payload.action)}),
            StatusCode::ACCEPTED,
        ));
    }
    let sha = payload
        .sha
        .clone()
        .or_else(|| payload.deployment.as_ref().and_then(|d| d.sha.clone()))
        .ok_or_else(|| {
            ApiError::bad_request("request.malformed", "the payload names no commit").at("/sha")
        })?;
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "request.malformed",
            "the commit must be a full 40-hex SHA-1: only full commits map to releases",
        )
        .at("/sha"));
    }
    let answer = serde_json::json!({
        "accepted": true,
        "repository": payload.repository.full_name,
        "environment": payload.environment,
        "sha": sha,
    });
    tokio::spawn(review(app.clone(), gate, payload, sha, delivery));
    Ok(accepted(answer, StatusCode::ACCEPTED))
}

fn accepted(body: serde_json::Value, status: StatusCode) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Judges the deployment and reports to GitHub; every way of not reaching
/// an `allow` rejects.
async fn review(
    app: Arc<App>,
    gate: Arc<GithubGate>,
    payload: Payload,
    sha: String,
    delivery: Option<String>,
) {
    let repository = payload.repository.full_name.clone();
    let environment = payload.environment.clone();
    let (state, comment) = match judge(&app, &gate, &payload, &sha).await {
        Ok(envelope) => {
            let state = if envelope.outcome == Outcome::Allow {
                "approved"
            } else {
                "rejected"
            };
            (state, comment(&envelope))
        }
        Err(why) => ("rejected", truncate(&format!("stagegate: {why}"))),
    };
    tracing::info!(%repository, %environment, %sha, state, "GitHub deployment protection review");
    let body = serde_json::json!({
        "environment_name": environment,
        "state": state,
        "comment": comment,
    });
    let github = gate.app.clone();
    let deliveries_gate = gate.clone();
    let url = payload.deployment_callback_url.clone();
    let installation = payload.installation.id;
    let sent = tokio::task::spawn_blocking(move || {
        // A few attempts: a callback lost to a blip would leave the
        // deployment waiting until GitHub times it out.
        let mut last = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500 << attempt));
            }
            let result = github
                .installation_token(installation)
                .and_then(|token| github.callback(&url, &token, &body));
            match result {
                Ok(status) => return Ok(status),
                Err(e @ GithubError::ForeignCallback(_)) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(GithubError::Sign))
    })
    .await;
    match sent {
        Ok(Ok(status)) => {
            tracing::info!(%repository, %environment, state, status, "reported to GitHub")
        }
        Ok(Err(e)) => {
            forget(&deliveries_gate, delivery.as_deref());
            tracing::error!(%repository, %environment, error = %e, "could not report to GitHub")
        }
        Err(e) => {
            forget(&deliveries_gate, delivery.as_deref());
            tracing::error!(%repository, %environment, error = %e, "GitHub report task failed")
        }
    }
}

/// A delivery whose review never reached GitHub may be redelivered.
fn forget(gate: &GithubGate, delivery: Option<&str>) {
    if let Some(id) = delivery {
        gate.deliveries.forget(id);
    }
}

/// The largest webhook body read (GitHub's payloads are a few KiB).
const WEBHOOK_MAX: usize = 64 * 1024;

/// The gate's decision on the mapped release, logged; or why there is none.
async fn judge(
    app: &Arc<App>,
    gate: &GithubGate,
    payload: &Payload,
    sha: &str,
) -> Result<Envelope, String> {
    let repository = &payload.repository.full_name;
    let target = gate
        .targets
        .get(&key(repository, &payload.environment))
        .ok_or_else(|| {
            format!(
                "no release mapping for {repository} environment '{}' ([[integrations.github.environments]])",
                payload.environment
            )
        })?;
    let git_ref = payload
        .git_ref
        .clone()
        .or_else(|| payload.deployment.as_ref().and_then(|d| d.git_ref.clone()))
        .unwrap_or_default();
    if target.release.contains("{ref}") && !target.allowed_refs.contains(&git_ref) {
        return Err(format!(
            "ref '{git_ref}' is not in allowed_refs for {repository} environment '{}'",
            payload.environment
        ));
    }
    let version = target
        .release
        .replace("{sha}", sha)
        .replace("{ref}", &git_ref);
    let release_id = format!("{}@{version}", target.system);
    let request = app
        .records
        .gate_request_for(&release_id, &target.plan)
        .await
        .map_err(|e| match e {
            RecordError::NotFound(m) => format!("{m}: register the release first"),
            e => format!("the records could not be read: {e}"),
        })?;
    let pipeline = app
        .pipeline(target.bundle.as_deref())
        .map_err(|e| format!("no bundle to decide with: {e}"))?;
    let actor = format!("github:{repository}");
    let request = Request::Gate(request);
    let bytes = request.to_json();
    let decided = pipeline.decide(request, &actor).await;
    let entry = app.records.entry(&decided.envelope, &bytes, &actor, None);
    app.records
        .log
        .record(entry)
        .await
        .map_err(|e| format!("the decision could not be logged: {e}"))?;
    Ok(decided.envelope)
}

/// GitHub shows at most 1,024 characters of a review comment.
pub const COMMENT_LIMIT: usize = 1024;

/// The review comment: outcome and decision id, then one line per
/// finding while they fit, then how many did not.
pub fn comment(envelope: &Envelope) -> String {
    let head = format!(
        "stagegate gate: {} (decision {}, bundle {} {})",
        envelope.outcome.as_str(),
        envelope.decision_id,
        envelope.policy.bundle,
        envelope.policy.version
    );
    let lines: Vec<String> = envelope
        .findings
        .iter()
        .map(|f| {
            let severity = serde_json::to_value(f.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let at = if f.path.is_empty() {
                String::new()
            } else {
                format!(" at {}", f.path)
            };
            format!("- {severity} {}{at}: {}", f.code, f.message)
        })
        .collect();
    fit(&head, &lines)
}

/// `head` and as many whole `lines` as fit in [`COMMENT_LIMIT`]
/// characters, with a last line saying how many were left out.
fn fit(head: &str, lines: &[String]) -> String {
    let mut out = truncate(head);
    let mut used = out.chars().count();
    for (i, line) in lines.iter().enumerate() {
        let left = lines.len() - i;
        let more = format!("\n… {left} more finding(s) in the decision log");
        let line_len = line.chars().count() + 1;
        let reserve = if left > 1 { more.chars().count() } else { 0 };
        if used + line_len + reserve <= COMMENT_LIMIT {
            out.push('\n');
            out.push_str(line);
            used += line_len;
        } else {
            if used + more.chars().count() <= COMMENT_LIMIT {
                out.push_str(&more);
            }
            break;
        }
    }
    out
}

fn truncate(text: &str) -> String {
    text.chars().take(COMMENT_LIMIT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_comment_keeps_whole_lines_within_1024_characters_and_counts_the_rest() {
        let lines: Vec<String> = (0..40)
            .map(|i| format!("- blocking code.{i} at /x: {}", "é".repeat(60)))
            .collect();
        let c = fit("stagegate gate: deny (decision X)", &lines);
        assert!(c.chars().count() <= COMMENT_LIMIT, "{}", c.chars().count());
        let shown = c.lines().filter(|l| l.starts_with("- ")).count();
        assert!(shown > 5 && shown < 40);
        assert!(
            c.ends_with(&format!(
                "… {} more finding(s) in the decision log",
                40 - shown
            )),
            "{c}"
        );
        let short = fit("head", &lines[..2]);
        assert_eq!(short.lines().count(), 3);
    }

    #[test]
    fn config_names_what_is_wrong() {
        let base = |extra: &str| -> Result<(), String> {
            let c: GithubConfig = toml::from_str(&format!(
                "app_id = 1\nprivate_key_file = \"k.pem\"\n{extra}"
            ))
            .map_err(|e| e.to_string())?;
            c.validate()
        };
        assert!(base("webhook_secret_env = \"S\"").is_ok());
        assert!(base("").unwrap_err().contains("exactly one of"));
        assert!(
            base("webhook_secret_env = \"S\"\nwebhook_secret_file = \"f\"")
                .unwrap_err()
                .contains("exactly one of")
        );
        let env = "webhook_secret_env = \"S\"\n[[environments]]\nrepository = \"a/b\"\nenvironment = \"prod\"\nsystem = \"s\"\nplan_file = \"p.json\"\n";
        assert!(base(env).is_ok());
        assert!(
            base(&format!("{env}release = \"v-{{tag}}\""))
                .unwrap_err()
                .contains("only {sha}")
        );
        assert!(
            base(&format!("{env}[[environments]]\nrepository = \"A/B\"\nenvironment = \"PROD\"\nsystem = \"t\"\nplan_file = \"p.json\"\n"))
                .unwrap_err()
                .contains("mapped twice")
        );
        assert!(base("webhook_secret_env = \"S\"\nsecret = \"x\"").is_err());
    }
}
