//! What the serving gateways' exposure check reads from the records
//! (integrations/gateway): the active deployments' routes, and which
//! deployment each Kubernetes ref names.

use sqlx::Row;

use super::{RecordError, Records};

/// An active deployment as the exposure check needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveRoute {
    pub deployment_id: String,
    pub release_id: String,
    pub stage: String,
    pub traffic_percent: f64,
}

/// A Kubernetes ref and a deployment holding it, newest first per ref.
#[derive(Debug, Clone, PartialEq)]
pub struct RefHolder {
    pub value: String,
    pub deployment_id: String,
    /// The deployment's status (`active`, `rolled_back`, ...).
    pub status: String,
}

impl Records {
    /// Every active deployment's route.
    pub async fn active_routes(&self) -> Result<Vec<ActiveRoute>, RecordError> {
        let rows = sqlx::query(
            "SELECT id, release_id, stage, traffic_percent FROM deployments WHERE status = 'active'",
        )
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ActiveRoute {
                    deployment_id: row.try_get("id")?,
                    release_id: row.try_get("release_id")?,
                    stage: row.try_get("stage")?,
                    traffic_percent: row.try_get("traffic_percent")?,
                })
            })
            .collect()
    }

    /// Every deployment holding a Kubernetes ref, ordered by ref and then
    /// newest first, so the first row of each ref is the deployment it
    /// names.
    pub async fn kubernetes_ref_holders(&self) -> Result<Vec<RefHolder>, RecordError> {
        let rows = sqlx::query(
            "SELECT r.ref_value, r.deployment_id, d.status FROM deployment_refs r JOIN deployments d ON d.id = r.deployment_id WHERE r.ref_key = $1 ORDER BY r.ref_value, r.deployed_at DESC, r.deployment_id DESC",
        )
        .bind(super::refs::KUBERNETES)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RefHolder {
                    value: row.try_get("ref_value")?,
                    deployment_id: row.try_get("deployment_id")?,
                    status: row.try_get("status")?,
                })
            })
            .collect()
    }
}
