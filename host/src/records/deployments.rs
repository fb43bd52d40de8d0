//! Reading deployments: the stored row, its history, the route a gateway
//! applies, and the decisions logged about it.

use sqlx::{AnyConnection, Row};

use super::chain;
use super::ledger::{self, RowValues};
use super::model::{Deployment, DeploymentStatus, DeploymentView, Event, EventKind, Route};
use super::store::{StoreError, json_column};
use super::{RecordError, Records};
use crate::decision::Timestamp;

pub(crate) const SELECT: &str = "SELECT id, release_id, system_id, plan, status, stage, traffic_percent, stage_entered_at, deployed_at, version, updated_at, refs FROM deployments";

fn corrupt(what: String) -> RecordError {
    RecordError::Store(StoreError::Corrupt(what))
}

pub(crate) fn from_row(row: &sqlx::any::AnyRow) -> Result<Deployment, RecordError> {
    let status: String = row.try_get("status")?;
    Ok(Deployment {
        id: row.try_get("id")?,
        release_id: row.try_get("release_id")?,
        system_id: row.try_get("system_id")?,
        plan: json_column(row, "plan")?,
        status: DeploymentStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("deployment status '{status}'")))?,
        stage: row.try_get("stage")?,
        traffic_percent: row.try_get("traffic_percent")?,
        stage_entered_at: Timestamp(row.try_get("stage_entered_at")?),
        deployed_at: Timestamp(row.try_get("deployed_at")?),
        version: row.try_get("version")?,
        updated_at: Timestamp(row.try_get("updated_at")?),
        refs: match row.try_get::<Option<String>, _>("refs")? {
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| corrupt(format!("deployment refs: {e}")))?
            }
            None => Default::default(),
        },
    })
}

/// A deployment row, or not found.
pub(crate) async fn deployment_row(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Deployment, RecordError> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| RecordError::NotFound(format!("no deployment '{id}'")))?;
    from_row(&row)
}

/// A deployment's columns, for writing and for its chain entry.
pub(crate) fn row_values(d: &Deployment) -> RowValues {
    RowValues {
        table: &ledger::DEPLOYMENTS,
        cells: vec![
            d.id.as_str().into(),
            d.release_id.as_str().into(),
            d.system_id.as_str().into(),
            serde_json::to_string(&d.plan).unwrap_or_default().into(),
            d.status.as_str().into(),
            d.stage.as_str().into(),
            d.traffic_percent.into(),
            d.stage_entered_at.into(),
            d.deployed_at.into(),
            d.version.into(),
            d.updated_at.into(),
            (!d.refs.is_empty())
                .then(|| serde_json::to_string(&d.refs).unwrap_or_default())
                .into(),
        ],
    }
}

impl Records {
    /// A deployment, or not found.
    pub async fn deployment(&self, id: &str) -> Result<Deployment, RecordError> {
        let mut conn = self.store.pool.acquire().await?;
        deployment_row(&mut conn, id).await
    }

    /// The newest active deployment of a system (by deployment time), if
    /// any: what an admission request that names only the system is about.
    pub async fn newest_active_of_system(
        &self,
        system_id: &str,
    ) -> Result<Option<Deployment>, RecordError> {
        let row = sqlx::query(&format!(
            "{SELECT} WHERE system_id = $1 AND status = $2 ORDER BY deployed_at DESC, id DESC LIMIT 1"
        ))
        .bind(system_id)
        .bind(DeploymentStatus::Active.as_str())
        .fetch_optional(&self.store.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The route a gateway applies, from memory when fresh.
    pub async fn route(&self, id: &str) -> Result<Route, RecordError> {
        if let Some(r) = self.cached_route(id) {
            return Ok(r);
        }
        let route = self.deployment(id).await?.route();
        self.cache_route(&route);
        Ok(route)
    }

    /// A deployment with its full history.
    pub async fn deployment_view(&self, id: &str) -> Result<DeploymentView, RecordError> {
        Ok(DeploymentView {
            deployment: self.deployment(id).await?,
            history: self.events(id).await?,
        })
    }

    /// The history events of a deployment, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<Event>, RecordError> {
        let rows = sqlx::query("SELECT seq, at, actor, kind, status, stage, traffic_percent, decision_id, reason, doc FROM deployment_events WHERE deployment_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(&self.store.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                let status: String = r.try_get("status")?;
                Ok(Event {
                    seq: r.try_get("seq")?,
                    at: Timestamp(r.try_get("at")?),
                    actor: r.try_get("actor")?,
                    event: EventKind::parse(&kind)
                        .ok_or_else(|| corrupt(format!("deployment event kind '{kind}'")))?,
                    status: DeploymentStatus::parse(&status)
                        .ok_or_else(|| corrupt(format!("deployment status '{status}'")))?,
                    stage: r.try_get("stage")?,
                    traffic_percent: r.try_get("traffic_percent")?,
                    decision_id: r.try_get("decision_id")?,
                    reason: r.try_get("reason")?,
                    detail: json_column(r, "doc")?,
                })
            })
            .collect()
    }

    /// One decision log entry (decisions only, not record entries).
    pub async fn decision_entry(&self, decision_id: &str) -> Result<chain::Chained, RecordError> {
        let row = sqlx::query(&format!(
            "{} WHERE decision_id = $1 AND record_table IS NULL",
            chain::SELECT
        ))
        .bind(decision_id)
        .fetch_optional(&self.store.pool)
        .await?
        .ok_or_else(|| RecordError::NotFound(format!("no decision '{decision_id}' in the log")))?;
        Ok(chain::from_row(&row)?)
    }
}
