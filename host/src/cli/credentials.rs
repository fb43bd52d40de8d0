//! How a CLI command proves who it is to a stagegate service: a static
//! token (`STAGEGATE_TOKEN` or `--token-file`), or the CI job's own
//! short-lived OIDC id-token (`--oidc github`), which the service checks
//! against its `[[identities]]` (docs/identities.md).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::CliError;

/// Where a token for the service comes from.
#[derive(Debug, Clone, Args)]
pub(super) struct CredentialArgs {
    /// Read the bearer token from this file (instead of STAGEGATE_TOKEN;
    /// --oidc wins over both, so an inherited STAGEGATE_TOKEN_FILE does
    /// not stop it)
    #[arg(long, value_name = "FILE", env = "STAGEGATE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Fetch this CI job's OIDC id-token and send it (`github`: through
    /// ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN,
    /// which `permissions: id-token: write` provides)
    #[arg(long, value_enum, value_name = "PROVIDER")]
    oidc: Option<OidcProvider>,
    /// With --oidc: the audience to ask the token for (one of the
    /// `audiences` of the service's identity entry)
    #[arg(long, value_name = "AUDIENCE", env = "STAGEGATE_AUDIENCE")]
    audience: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum OidcProvider {
    /// GitHub Actions
    Github,
}

/// A token refused before it reaches the service: bad input (exit 2).
fn bad(message: String) -> CliError {
    CliError::bad_input(message)
}

impl CredentialArgs {
    /// The bearer token to send, if any: `--oidc`, then `--token-file`,
    /// then `STAGEGATE_TOKEN`.
    pub(super) fn token(&self) -> Result<Option<String>, CliError> {
        if let Some(provider) = self.oidc {
            let audience = self.audience.as_deref().ok_or_else(|| {
                bad("--oidc needs --audience (or STAGEGATE_AUDIENCE): the audience the service's identity entry accepts".into())
            })?;
            return match provider {
                OidcProvider::Github => github_id_token(audience).map(Some),
            };
        }
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(format!("--token-file {}: {e}", path.display())))?;
            let token = text.trim();
            if token.is_empty() || token.contains(char::is_whitespace) {
                return Err(bad(format!(
                    "--token-file {}: expected one token on one line",
                    path.display()
                )));
            }
            return Ok(Some(token.to_string()));
        }
        Ok(std::env::var("STAGEGATE_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()))
    }
}

/// GitHub Actions' id-token for `audience`: GET
/// `$ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with
/// `Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answered with
/// `{"value": "<JWT>"}` (what `core.getIDToken()` of actions/toolkit does).
fn github_id_token(audience: &str) -> Result<String, CliError> {
    let var = |name: &str| {
        std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
            bad(format!(
                "--oidc github: {name} is not set (the job needs `permissions: id-token: write`)"
            ))
        })
    };
    let url = var("ACTIONS_ID_TOKEN_REQUEST_URL")?;
    let request_token = var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")?;
    let failed = |m: String| CliError {
        exit: super::Exit::PolicyError,
        message: format!("--oidc github: {m}"),
    };
    let response = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
        .get(&url)
        .query("audience", audience)
        .set("Authorization", &format!("Bearer {request_token}"))
        .set("Accept", "application/json")
        .call()
        .map_err(|e| match e {
            // The request URL carries no secret; the token is not quoted.
            ureq::Error::Status(status, _) => {
                failed(format!("the id-token endpoint answered {status}"))
            }
            ureq::Error::Transport(t) => failed(format!("the id-token endpoint: {t}")),
        })?;
    let mut body = String::new();
    std::io::Read::read_to_string(&mut response.into_reader().take_limit(), &mut body)
        .map_err(|e| failed(format!("reading the id-token answer: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&body)
        .map_err(|_| failed("the id-token answer is not JSON".into()))?;
    v["value"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| failed("the id-token answer has no \"value\"".into()))
}

/// At most 64 KiB of an answer.
trait TakeLimit: std::io::Read + Sized {
    fn take_limit(self) -> std::io::Take<Self> {
        self.take(64 << 10)
    }
}

impl<R: std::io::Read> TakeLimit for R {}
