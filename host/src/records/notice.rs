//! What the public notice (`GET /v1/systems/{id}/notice`) reads: the
//! release in operational use, or before any deployment the newest
//! registered one.

use sqlx::Row;

use super::{RecordError, Records};

impl Records {
    /// The newest active deployment of `system_id`, if any.
    pub async fn live_deployment_of(&self, system_id: &str) -> Result<Option<String>, RecordError> {
        let row = sqlx::query("SELECT id FROM deployments WHERE system_id = $1 AND status = 'active' ORDER BY deployed_at DESC, id DESC LIMIT 1")
            .bind(system_id)
            .fetch_optional(&self.store.pool)
            .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    /// The newest release registered for `system_id`, if any.
    pub async fn newest_release_of(&self, system_id: &str) -> Result<Option<String>, RecordError> {
        let row = sqlx::query("SELECT id FROM releases WHERE system_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1")
            .bind(system_id)
            .fetch_optional(&self.store.pool)
            .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    /// A counter that moves with every committed write on this replica:
    /// what caches of derived views compare to know they are stale.
    pub fn changes(&self) -> u64 {
        self.store.changes()
    }
}
