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
    pub authz: crate::server::exposure::AuthzConfig,
    /// The Kubernetes admission webhook (docs/integrations/kubernetes.md).
    pub kubernetes: KubernetesConfig,
}

/// `[integrations.kubernetes]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// Admit an object only when the release's artifact digest it runs
    /// has a decision receipt of this service that verifies: proof that
    /// the artifact itself passed the gate (docs/evidence-and-receipts.md).
    pub require_receipt: bool,
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
