//! Acting as a GitHub App: an RS256 JWT signed with the App's private key
//! buys an installation access token, which authorises the callback that
//! approves or rejects a deployment.
//!
//! GitHub's documented flow ("Generating a JSON Web Token (JWT) for a
//! GitHub App", "Authenticating as a GitHub App installation"): the JWT's
//! `iss` is the App id, `iat` is backdated 60 s against clock drift, `exp`
//! at most 10 minutes ahead; `POST /app/installations/{id}/access_tokens`
//! with `Authorization: Bearer JWT` answers 201 `{"token", "expires_at"}`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

/// Why talking to GitHub failed.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("the App's private key {0}")]
    Key(String),
    #[error("signing the App's JWT failed")]
    Sign,
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("the callback URL {0} is not under the configured GitHub API URL")]
    ForeignCallback(String),
    /// `[integrations.github]` names something unusable; the message
    /// names the key.
    #[error("{0}")]
    Config(String),
    /// No `[[integrations.github.environments]]` entry for the request.
    #[error(
        "no release mapping for {repository} environment '{environment}' ([[integrations.github.environments]])"
    )]
    Unmapped {
        repository: String,
        environment: String,
    },
    /// The release names `{ref}` and the request's ref is not allowed.
    #[error("ref '{git_ref}' is not in allowed_refs for {repository} environment '{environment}'")]
    RefNotAllowed {
        git_ref: String,
        repository: String,
        environment: String,
    },
}

/// A GitHub App's identity and the API it talks to.
pub struct App {
    pub app_id: u64,
    key: RsaKeyPair,
    rng: SystemRandom,
    /// `https://api.github.com`, or a GitHub Enterprise Server's
    /// `https://HOST/api/v3`, without a trailing slash.
    pub api_url: String,
    agent: ureq::Agent,
}

impl App {
    /// Reads the App's private key: the PEM GitHub hands out (PKCS#1,
    /// `BEGIN RSA PRIVATE KEY`) or its PKCS#8 form (`BEGIN PRIVATE KEY`).
    pub fn new(
        app_id: u64,
        private_key_pem: &str,
        api_url: &str,
        timeout: Duration,
    ) -> Result<App, GithubError> {
        let (label, der) = pem(private_key_pem)?;
        let key = match label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            other => {
                return Err(GithubError::Key(format!(
                    "is a '{other}' PEM block; expected 'RSA PRIVATE KEY' or 'PRIVATE KEY'"
                )));
            }
        }
        .map_err(|e| GithubError::Key(format!("is not a usable RSA key: {e}")))?;
        Ok(App {
            app_id,
            key,
            rng: SystemRandom::new(),
            api_url: api_url.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new().timeout(timeout).build(),
        })
    }

    /// The App's JWT, valid from a minute ago for nine minutes.
    pub fn jwt(&self, now: SystemTime) -> Result<String, GithubError> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"iat": now - 60, "exp": now + 540, "iss": self.app_id.to_string()})
                .to_string(),
        );
        let signing_input = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| GithubError::Sign)?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// An installation access token (valid for an hour; one is fetched per
    /// review, which is rare enough not to need a cache).
    pub fn installation_token(&self, installation_id: u64) -> Result<String, GithubError> {
        let url = format!(
            "{}/app/installations/{installation_id}/access_tokens",
            self.api_url
        );
        let jwt = self.jwt(SystemTime::now())?;
        let response = self
            .request("POST", &url)
            .set("Authorization", &format!("Bearer {jwt}"))
            .call()
            .map_err(|e| http_error(&url, e))?;
        let body: serde_json::Value = response
            .into_string()
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .ok_or_else(|| GithubError::Http {
                url: url.clone(),
                message: "the answer is not JSON".into(),
            })?;
        body["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| GithubError::Http {
                url,
                message: "the answer has no token".into(),
            })
    }

    /// Posts `body` to a deployment's callback URL with `token`. The URL
    /// comes from a signed webhook, but the installation token is only ever
    /// sent under the configured API URL.
    pub fn callback(
        &self,
        url: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<u16, GithubError> {
        let prefix = format!("{}/", self.api_url);
        if !url.starts_with(&prefix) {
            return Err(GithubError::ForeignCallback(url.to_string()));
        }
        let response = self
            .request("POST", url)
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
            .map_err(|e| http_error(url, e))?;
        Ok(response.status())
    }

    fn request(&self, method: &str, url: &str) -> ureq::Request {
        self.agent
            .request(method, url)
            .set("Accept", "application/vnd.github+json")
            .set("X-GitHub-Api-Version", "2022-11-28")
            .set("User-Agent", "stagegate")
    }
}

fn http_error(url: &str, e: ureq::Error) -> GithubError {
    let message = match e {
        ureq::Error::Status(code, r) => {
            let text: String = r
                .into_string()
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            format!("answered {code}: {text}")
        }
        ureq::Error::Transport(t) => t.to_string(),
    };
    GithubError::Http {
        url: url.to_string(),
        message,
    }
}

/// The first PEM block of `text`: its label and decoded bytes.
pub fn pem(text: &str) -> Result<(String, Vec<u8>), GithubError> {
    let start = text
        .find("-----BEGIN ")
        .ok_or_else(|| GithubError::Key("has no PEM block (-----BEGIN …-----)".into()))?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| GithubError::Key("has a malformed PEM header".into()))?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body
        .find(&end_marker)
        .ok_or_else(|| GithubError::Key(format!("has no '{end_marker}' line")))?;
    let b64: String = body[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|e| GithubError::Key(format!("has a PEM body that is not base64: {e}")))?;
    Ok((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_reads_label_and_body_and_names_what_is_wrong() {
        let (label, der) = pem(
            "junk\n-----BEGIN RSA PRIVATE KEY-----\nAAEC\nAw==\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        assert_eq!(label, "RSA PRIVATE KEY");
        assert_eq!(der, vec![0, 1, 2, 3]);
        assert!(
            pem("no pem here")
                .unwrap_err()
                .to_string()
                .contains("no PEM block")
        );
        assert!(
            pem("-----BEGIN X-----\nAAAA\n")
                .unwrap_err()
                .to_string()
                .contains("-----END X-----")
        );
        let e = App::new(
            1,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
            "http://x",
            Duration::from_secs(1),
        );
        assert!(matches!(e, Err(GithubError::Key(m)) if m.contains("CERTIFICATE")));
    }
}
