//! GitHub deployment protection rules (docs/integrations/github.md), without
//! HTTP serving: the handler of `POST /v1/integrations/github/deployment-protection`
//! (`server::routes::integrations::github`) parses, calls and serialises.
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

pub mod app;
pub mod deliveries;

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::config::{GithubConfig, environment_key};
use crate::decision::Envelope;
use crate::decision::request::Plan;
use app::GithubError;

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
    deliveries: deliveries::Deliveries,
    app: app::App,
    targets: HashMap<(String, String), Target>,
}

impl GithubGate {
    pub fn load(config: &GithubConfig) -> Result<GithubGate, GithubError> {
        let secret = match (&config.webhook_secret_file, &config.webhook_secret_env) {
            (Some(file), _) => std::fs::read_to_string(file)
                .map_err(|e| {
                    GithubError::Config(format!(
                        "integrations.github.webhook_secret_file {}: {e}",
                        file.display()
                    ))
                })?
                .trim_end()
                .to_string(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                GithubError::Config(format!(
                    "integrations.github.webhook_secret_env: ${var} is not set"
                ))
            })?,
            (None, None) => String::new(),
        };
        if secret.is_empty() {
            return Err(GithubError::Config(
                "integrations.github: the webhook secret is empty".into(),
            ));
        }
        let key_file = config.private_key_file.clone().ok_or_else(|| {
            GithubError::Config("integrations.github.private_key_file is required".into())
        })?;
        let pem = std::fs::read_to_string(&key_file).map_err(|e| {
            GithubError::Config(format!(
                "integrations.github.private_key_file {}: {e}",
                key_file.display()
            ))
        })?;
        let app = app::App::new(
            config.app_id,
            &pem,
            &config.api_url,
            Duration::from_millis(config.timeout_ms),
        )
        .map_err(|e| {
            GithubError::Config(format!(
                "integrations.github.private_key_file {}: {e}",
                key_file.display()
            ))
        })?;
        let mut targets = HashMap::new();
        for (i, e) in config.environments.iter().enumerate() {
            let at = format!(
                "integrations.github.environments[{i}].plan_file {}",
                e.plan_file.display()
            );
            let bytes = std::fs::read(&e.plan_file)
                .map_err(|err| GithubError::Config(format!("{at}: {err}")))?;
            let plan: Plan = crate::decision::decode::decode_as(&bytes)
                .map_err(|err| GithubError::Config(format!("{at}: {err}")))?;
            crate::decision::decode::validate_plan(&plan)
                .map_err(|err| GithubError::Config(format!("{at}: {err}")))?;
            targets.insert(
                environment_key(&e.repository, &e.environment),
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
            app,
            targets,
        })
    }

    /// `signature` (the `X-Hub-Signature-256` header) is `sha256=` and the
    /// hex HMAC-SHA256 of the body under the webhook secret; compared in
    /// constant time.
    pub fn signed(&self, signature: Option<&str>, body: &[u8]) -> bool {
        let Some(hex_mac) = signature.and_then(|v| v.strip_prefix("sha256=")) else {
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

    /// Whether a delivery id is seen for the first time (replays are
    /// answered without a review, see [`deliveries`]).
    pub fn first_delivery(&self, id: &str) -> bool {
        self.deliveries.first(id, std::time::Instant::now())
    }

    /// A delivery whose review never reached GitHub may be redelivered.
    pub fn forget(&self, delivery: Option<&str>) {
        if let Some(id) = delivery {
            self.deliveries.forget(id);
        }
    }

    /// The mapped release a deployment request is judged on: its id and
    /// the plan and bundle of its environment; or why there is none.
    pub fn target(&self, payload: &Payload, sha: &str) -> Result<Judged<'_>, GithubError> {
        let repository = &payload.repository.full_name;
        let target = self
            .targets
            .get(&environment_key(repository, &payload.environment))
            .ok_or_else(|| GithubError::Unmapped {
                repository: repository.clone(),
                environment: payload.environment.clone(),
            })?;
        let git_ref = payload
            .git_ref
            .clone()
            .or_else(|| payload.deployment.as_ref().and_then(|d| d.git_ref.clone()))
            .unwrap_or_default();
        if target.release.contains("{ref}") && !target.allowed_refs.contains(&git_ref) {
            return Err(GithubError::RefNotAllowed {
                git_ref,
                repository: repository.clone(),
                environment: payload.environment.clone(),
            });
        }
        let version = target
            .release
            .replace("{sha}", sha)
            .replace("{ref}", &git_ref);
        Ok(Judged {
            release_id: format!("{}@{version}", target.system),
            plan: &target.plan,
            bundle: target.bundle.as_deref(),
        })
    }

    /// Posts the review to the payload's callback URL with an installation
    /// token (blocking: run it off the async runtime). A few attempts: a
    /// callback lost to a blip would leave the deployment waiting until
    /// GitHub times it out.
    pub fn report(&self, payload: &Payload, body: &serde_json::Value) -> Result<u16, GithubError> {
        let url = &payload.deployment_callback_url;
        let installation = payload.installation.id;
        let mut last = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500 << attempt));
            }
            let result = self
                .app
                .installation_token(installation)
                .and_then(|token| self.app.callback(url, &token, body));
            match result {
                Ok(status) => return Ok(status),
                Err(e @ GithubError::ForeignCallback(_)) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(GithubError::Sign))
    }
}

/// What a deployment request is judged on.
pub struct Judged<'a> {
    /// `SYSTEM@VERSION`.
    pub release_id: String,
    pub plan: &'a Plan,
    pub bundle: Option<&'a str>,
}

/// The parts of the webhook stagegate reads.
#[derive(Debug, Deserialize)]
pub struct Payload {
    pub action: String,
    pub environment: String,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default, rename = "ref")]
    git_ref: Option<String>,
    deployment_callback_url: String,
    #[serde(default)]
    deployment: Option<PayloadDeployment>,
    pub repository: PayloadRepository,
    installation: PayloadInstallation,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PayloadDeployment {
    #[serde(default)]
    sha: Option<String>,
    #[serde(default, rename = "ref")]
    git_ref: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PayloadRepository {
    pub full_name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PayloadInstallation {
    id: u64,
}

/// Why a webhook body is not a `deployment_protection_rule` payload: the
/// JSON pointer of what is wrong and what.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PayloadError {
    pub pointer: String,
    pub message: String,
}

/// A `deployment_protection_rule` payload, or the JSON path of what is
/// wrong.
pub fn parse_payload(bytes: &[u8]) -> Result<Payload, PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| PayloadError {
        pointer: crate::attest::json_pointer(e.path()),
        message: format!("deployment_protection_rule payload: {}", e.inner()),
    })
}

impl Payload {
    /// The full commit the deployment is for: only full commits map to
    /// releases.
    pub fn commit(&self) -> Result<String, PayloadError> {
        let sha = self
            .sha
            .clone()
            .or_else(|| self.deployment.as_ref().and_then(|d| d.sha.clone()))
            .ok_or_else(|| PayloadError {
                pointer: "/sha".into(),
                message: "the payload names no commit".into(),
            })?;
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PayloadError {
                pointer: "/sha".into(),
                message:
                    "the commit must be a full 40-hex SHA-1: only full commits map to releases"
                        .into(),
            });
        }
        Ok(sha)
    }
}

/// The largest webhook body read (GitHub's payloads are a few KiB).
pub const WEBHOOK_MAX: usize = 64 * 1024;

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

/// `text` cut to what GitHub shows of a comment.
pub fn truncate(text: &str) -> String {
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
}
