//! Adapters for the systems that ask stagegate from outside its own API:
//! GitHub deployment protection rules (and, beside them, serving gateways).

pub mod github;
pub mod github_app;

use serde::Deserialize;

/// `[integrations]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrationsConfig {
    /// GitHub deployment protection rules (off unless configured).
    pub github: Option<github::GithubConfig>,
    /// The per-request exposure check for serving gateways.
    pub authz: crate::integrations::gateway::AuthzConfig,
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
    pub client_ca: Option<std::path::PathBuf>,
    /// The rate limit of admission reviews that come without a credential.
    pub unauthenticated_per_second: u32,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            require_receipt: false,
            require_token: true,
            client_ca: None,
            unauthenticated_per_second: 50,
        }
    }
}

impl IntegrationsConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.authz.validate()?;
        if let Some(g) = &self.github {
            g.validate()?;
        }
        Ok(())
    }
}
