//! `[integrations]`: the settings of the adapters for the systems that ask
//! stagegate from outside its own API (docs/integrations/). Only the
//! settings live here; each tool's rules live in `crate::integrations`.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// `[integrations]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrationsConfig {
    /// GitHub deployment protection rules (off unless configured).
    pub github: Option<GithubConfig>,
    /// The per-request exposure check for serving gateways.
    pub authz: AuthzConfig,
    /// The Kubernetes admission webhook (docs/integrations/kubernetes.md).
    pub kubernetes: KubernetesConfig,
}

/// `[integrations.kubernetes]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// Admit an object only when the release's artifact digest it runs
    /// has a decision receipt of this service that verifies: proof that
    /// the artifact itself passed the gate (docs/evidence-and-receipts.md).
    pub require_receipt: bool,
    /// `false`: the admission route on the TLS listener answers without a
    /// bearer token (managed clusters; see `server::admission_access`).
    pub require_token: bool,
    /// A CA (PEM) whose client certificates the admission route on the
    /// TLS listener accepts instead of a token (mTLS).
    pub client_ca: Option<PathBuf>,
    /// The rate limit of admission reviews that come without a credential.
    pub unauthenticated_per_second: u32,
    /// Images a governed object may run beside the release's artifact,
    /// by digest, per system or per deployment
    /// (docs/integrations/kubernetes.md#images-beside-the-model).
    pub allowed_images: Vec<AllowedImages>,
    /// Where Argo's analysis templates reach stagegate
    /// (`http://stagegate.stagegate.svc:8080`). When set, a governed
    /// template's web metric must call this base; unset, any host with
    /// stagegate's analysis path is accepted.
    pub analysis_url: Option<String>,
}

/// `[[integrations.kubernetes.allowed_images]]`: digests an object of one
/// system (`system`) or one deployment (`deployment`) may run beside the
/// release's artifact — a sidecar, an init container, a serving runtime.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedImages {
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub deployment: Option<String>,
    /// `sha256:<64 hex>` each: compared whole with the digest an image is
    /// pinned to.
    pub digests: Vec<String>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            require_receipt: false,
            require_token: true,
            client_ca: None,
            unauthenticated_per_second: 50,
            allowed_images: Vec::new(),
            analysis_url: None,
        }
    }
}

impl KubernetesConfig {
    /// What serde cannot check, named by key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, a) in self.allowed_images.iter().enumerate() {
            let at = format!("integrations.kubernetes.allowed_images[{i}]");
            match (&a.system, &a.deployment) {
                (Some(s), None) | (None, Some(s)) if !s.trim().is_empty() => {}
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "{at}: give exactly one of system and deployment"
                    )));
                }
            }
            for (j, d) in a.digests.iter().enumerate() {
                let hex = d.strip_prefix("sha256:").unwrap_or_default();
                if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(ConfigError::Invalid(format!(
                        "{at}.digests[{j}] '{d}' is not sha256:<64 lowercase hex digits>"
                    )));
                }
            }
        }
        if let Some(url) = &self.analysis_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::Invalid(format!(
                "integrations.kubernetes.analysis_url must be an http(s) URL, not '{url}'"
            )));
        }
        Ok(())
    }
}

impl IntegrationsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.authz.validate()?;
        self.kubernetes.validate()?;
        if let Some(g) = &self.github {
            g.validate()?;
        }
        Ok(())
    }
}

/// `[integrations.authz]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthzConfig {
    /// The secret that keys subjects' buckets: at least 16 bytes, the file's
    /// content (trailing whitespace ignored). Every replica must read the
    /// same secret. Default `DATA_DIR/authz.key`, created (32 random bytes,
    /// hex) on first start when it does not exist.
    pub key_file: Option<PathBuf>,
    /// How often each replica re-reads the active deployments' routes.
    pub refresh_ms: u64,
    /// Answer 403 to everyone when the route table could not be refreshed
    /// for this long (the records are unreachable): the new release may
    /// have been rolled back meanwhile.
    pub stale_after_ms: u64,
}

impl Default for AuthzConfig {
    fn default() -> Self {
        AuthzConfig {
            key_file: None,
            refresh_ms: 250,
            stale_after_ms: 5_000,
        }
    }
}

impl AuthzConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.refresh_ms == 0 || self.refresh_ms > 1_000 {
            return Err(ConfigError::Invalid(format!(
                "integrations.authz.refresh_ms must be 1..=1000 (routes must follow a transition within a second), not {}",
                self.refresh_ms
            )));
        }
        if self.stale_after_ms <= self.refresh_ms {
            return Err(ConfigError::Invalid(format!(
                "integrations.authz.stale_after_ms ({}) must be above refresh_ms ({})",
                self.stale_after_ms, self.refresh_ms
            )));
        }
        Ok(())
    }
}

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
    pub fn validate(&self) -> Result<(), ConfigError> {
        let at = "integrations.github";
        if self.app_id == 0 {
            return Err(ConfigError::Invalid(format!(
                "{at}.app_id is required (the GitHub App's id)"
            )));
        }
        if self.private_key_file.is_none() {
            return Err(ConfigError::Invalid(format!(
                "{at}.private_key_file is required (the GitHub App's private key)"
            )));
        }
        match (&self.webhook_secret_file, &self.webhook_secret_env) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "{at}: give exactly one of webhook_secret_file and webhook_secret_env"
                )));
            }
        }
        if !(self.api_url.starts_with("https://") || self.api_url.starts_with("http://")) {
            return Err(ConfigError::Invalid(format!(
                "{at}.api_url must be an http(s) URL, not '{}'",
                self.api_url
            )));
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError::Zero {
                key: format!("{at}.timeout_ms"),
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, e) in self.environments.iter().enumerate() {
            let at = format!("{at}.environments[{i}]");
            if e.repository.split('/').count() != 2 || e.repository.contains(' ') {
                return Err(ConfigError::Invalid(format!(
                    "{at}.repository must be OWNER/REPO, not '{}'",
                    e.repository
                )));
            }
            if e.environment.trim().is_empty() || e.system.trim().is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "{at}: environment and system must not be empty"
                )));
            }
            if e.release.contains("{short_sha}") {
                return Err(ConfigError::Invalid(format!(
                    "{at}.release '{}': {{short_sha}} compares only 28 bits of the commit, and a commit that shares them with an approved release can be made; use {{sha}} (the full commit)",
                    e.release
                )));
            }
            let unknown = e.release.replace("{sha}", "").replace("{ref}", "");
            if unknown.contains('{') || unknown.contains('}') {
                return Err(ConfigError::Invalid(format!(
                    "{at}.release '{}': only {{sha}} and {{ref}} are replaced",
                    e.release
                )));
            }
            if e.release.contains("{ref}") && e.allowed_refs.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "{at}.release '{}' uses {{ref}}, which whoever pushes chooses by naming a branch: list the refs that may name a release in {at}.allowed_refs (e.g. [\"refs/tags/v2.3.0\"])",
                    e.release
                )));
            }
            if !seen.insert(environment_key(&e.repository, &e.environment)) {
                return Err(ConfigError::Invalid(format!(
                    "{at}: {} environment {} is mapped twice",
                    e.repository, e.environment
                )));
            }
        }
        Ok(())
    }
}

/// The key an environment is mapped under: GitHub compares repository and
/// environment names without regard to case.
pub(crate) fn environment_key(repository: &str, environment: &str) -> (String, String) {
    (repository.to_lowercase(), environment.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allow_list_entry_names_one_owner_and_whole_digests() {
        let parse = |text: &str| -> Result<(), String> {
            let c: KubernetesConfig = toml::from_str(text).map_err(|e| e.to_string())?;
            c.validate().map_err(|e| e.to_string())
        };
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(
            parse(&format!(
                "[[allowed_images]]\nsystem = \"s\"\ndigests = [\"{d}\"]"
            ))
            .is_ok()
        );
        let e = parse(&format!(
            "[[allowed_images]]\nsystem = \"s\"\ndeployment = \"d\"\ndigests = [\"{d}\"]"
        ))
        .unwrap_err();
        assert!(e.contains("allowed_images[0]: give exactly one"), "{e}");
        let e = parse("[[allowed_images]]\nsystem = \"s\"\ndigests = [\"sha256:ab\"]").unwrap_err();
        assert!(e.contains("allowed_images[0].digests[0]"), "{e}");
    }

    #[test]
    fn config_names_what_is_wrong() {
        let base = |extra: &str| -> Result<(), String> {
            let c: GithubConfig = toml::from_str(&format!(
                "app_id = 1\nprivate_key_file = \"k.pem\"\n{extra}"
            ))
            .map_err(|e| e.to_string())?;
            c.validate().map_err(|e| e.to_string())
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
