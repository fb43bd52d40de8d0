//! Read queries for the auditor's console (`/ui`): the overview of
//! systems, one system's releases and their evidence, a deployment's
//! observations, and the decision log filtered and paginated.
//!
//! The deployment page reads only what it shows ([`DeploymentRecord`]):
//! not the auditors' export, whose chain proof walks every entry's
//! predecessor; the page proves the entries by inclusion instead
//! ([`super::inclusion`]).
//!
//! The decision log is paged by keyset (`seq < cursor ORDER BY seq DESC`),
//! never by offset, so the 1,000th page costs what the first does; the
//! filters that narrow it have indexes (migration 6).

use serde::Serialize;
use sqlx::Row;

use super::chain::{self, Chained};
use super::deployments::from_row as deployment_from_row;
use super::export::{AcceptanceOf, Keyed};
use super::model::{Authorisation, Deployment, Event, Release, Review, SystemView};
use super::store::json_column;
use super::{RecordError, Records};
use crate::decision::Timestamp;

/// History event kinds that raise an escalation: what the overview counts
/// as alerts.
pub const ALERT_KINDS: [&str; 4] = ["alert", "held", "rolled_back", "suspended"];

/// One line of the overview: a system and where its newest deployment is.
#[derive(Debug, Clone, Serialize)]
pub struct SystemSummary {
    pub id: String,
    pub name: Option<String>,
    pub risk_tier: String,
    /// The newest deployment (active if any, else the newest of all).
    pub latest: Option<Deployment>,
    /// Escalating history events (alert, held, rolled back, suspended)
    /// since the overview's `since`.
    pub alerts: i64,
}

/// A release with what was recorded about it.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseRecord {
    pub release: Release,
    pub reviews: Vec<Keyed<Review>>,
    pub authorisations: Vec<Keyed<Authorisation>>,
    pub acceptances: Vec<Keyed<AcceptanceOf>>,
}

/// A system with its releases and deployments, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct SystemRecord {
    pub system: SystemView,
    pub releases: Vec<ReleaseRecord>,
    pub deployments: Vec<Deployment>,
}

/// One stored observation.
#[derive(Debug, Clone, Serialize)]
pub struct ObservationPoint {
    pub metric: String,
    pub value: f64,
    pub samples: Option<i64>,
    pub window_end: Timestamp,
}

/// What the console's deployment page shows of one deployment: the
/// export's parts it uses, without the export's chain proof, release
/// attestations and receipts.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentRecord {
    pub deployment: Deployment,
    pub system: SystemView,
    pub reviews: Vec<Keyed<Review>>,
    pub authorisations: Vec<Keyed<Authorisation>>,
    pub acceptances: Vec<Keyed<AcceptanceOf>>,
    pub observations_recorded: i64,
    pub history: Vec<Event>,
    pub escalations: Vec<super::webhooks::Delivery>,
    /// Every log entry of the deployment (decisions and the record rows
    /// committed for it), in log order.
    pub entries: Vec<Chained>,
}

impl DeploymentRecord {
    /// The decisions among the entries (not record rows), in log order.
    pub fn decisions(&self) -> impl Iterator<Item = &Chained> {
        self.entries.iter().filter(|c| c.entry.record.is_none())
    }
}

/// Which decisions the log page shows; every field narrows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub system: Option<String>,
    pub kind: Option<String>,
    pub outcome: Option<String>,
    /// A finding code the decision must carry (exact).
    pub code: Option<String>,
    /// Decisions at or after (ms).
    pub from: Option<Timestamp>,
    /// Decisions before (ms).
    pub to: Option<Timestamp>,
    /// Keyset cursor: decisions with `seq` below it.
    pub before: Option<i64>,
}

/// A page of the decision log, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct LogPage {
    pub entries: Vec<Chained>,
    /// The cursor of the next (older) page, if there is one.
    pub next_before: Option<i64>,
}

/// Largest page a caller may ask for.
pub const MAX_PAGE: i64 = 200;

impl Records {
    /// Every system with its newest deployment and its alerts since `since`.
    pub async fn systems_overview(
        &self,
        since: Timestamp,
    ) -> Result<Vec<SystemSummary>, RecordError> {
        let pool = &self.store.pool;
        let systems = sqlx::query("SELECT id, risk_tier, doc FROM systems ORDER BY id")
            .fetch_all(pool)
            .await?;
        let mut out = Vec::with_capacity(systems.len());
        for row in &systems {
            let id: String = row.try_get("id")?;
            let system: super::model::System = json_column(row, "doc")?;
            let latest = sqlx::query(&format!(
                "{} WHERE system_id = $1 ORDER BY CASE WHEN status = 'active' THEN 0 ELSE 1 END, deployed_at DESC, id DESC LIMIT 1",
                super::deployments::SELECT
            ))
            .bind(&id)
            .fetch_optional(pool)
            .await?
            .map(|r| deployment_from_row(&r))
            .transpose()?;
            let alerts: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM deployment_events e JOIN deployments d ON d.id = e.deployment_id \
                 WHERE d.system_id = $1 AND e.at >= $2 AND e.kind IN ('alert', 'held', 'rolled_back', 'suspended')",
            )
            .bind(&id)
            .bind(since.millis())
            .fetch_one(pool)
            .await?
            .try_get("n")?;
            out.push(SystemSummary {
                id,
                name: system.name,
                risk_tier: row.try_get("risk_tier")?,
                latest,
                alerts,
            });
        }
        Ok(out)
    }

    /// One deployment as its console page shows it: the deployment, then
    /// everything else read side by side.
    pub async fn deployment_record(&self, id: &str) -> Result<DeploymentRecord, RecordError> {
        let deployment = self.deployment(id).await?;
        let pool = &self.store.pool;
        let rid = deployment.release_id.as_str();
        let entries = async {
            let rows = sqlx::query(&format!(
                "{} WHERE deployment_id = $1 ORDER BY seq",
                chain::SELECT
            ))
            .bind(id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(chain::from_row)
                .collect::<Result<Vec<_>, _>>()
                .map_err(RecordError::from)
        };
        let count = async {
            let n: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM observations WHERE deployment_id = $1")
                    .bind(id)
                    .fetch_one(pool)
                    .await?
                    .try_get("n")?;
            Ok::<_, RecordError>(n)
        };
        let (system, reviews, authorisations, acceptances, observations_recorded) = tokio::join!(
            self.system(&deployment.system_id),
            super::export::keyed(
                pool,
                "SELECT id, deployment_id, doc FROM reviews WHERE release_id = $1 ORDER BY completed_at, id",
                rid,
                |r| json_column(r, "doc")
            ),
            super::export::keyed(
                pool,
                "SELECT id, deployment_id, doc FROM authorisations WHERE release_id = $1 ORDER BY authorised_at, id",
                rid,
                |r| json_column(r, "doc")
            ),
            super::export::keyed(
                pool,
                "SELECT id, NULL AS deployment_id, deficiency_id, doc FROM acceptances WHERE release_id = $1 ORDER BY accepted_at, id",
                rid,
                |r| {
                    Ok(AcceptanceOf {
                        deficiency_id: r.try_get("deficiency_id")?,
                        acceptance: json_column(r, "doc")?,
                    })
                }
            ),
            count,
        );
        let (history, escalations, entries) =
            tokio::join!(self.events(id), self.deliveries(id), entries);
        Ok(DeploymentRecord {
            system: system?,
            reviews: reviews?,
            authorisations: authorisations?,
            acceptances: acceptances?,
            observations_recorded: observations_recorded?,
            history: history?,
            escalations: escalations?,
            entries: entries?,
            deployment,
        })
    }

    /// The ids of every registered system, in order.
    pub async fn system_ids(&self) -> Result<Vec<String>, RecordError> {
        let rows = sqlx::query("SELECT id FROM systems ORDER BY id")
            .fetch_all(&self.store.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// A system, its releases with their evidence, and its deployments.
    pub async fn system_record(&self, id: &str) -> Result<SystemRecord, RecordError> {
        let system = self.system(id).await?;
        let pool = &self.store.pool;
        let ids = sqlx::query(
            "SELECT id FROM releases WHERE system_id = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        let mut releases = Vec::with_capacity(ids.len());
        for row in &ids {
            let rid: String = row.try_get("id")?;
            releases.push(ReleaseRecord {
                release: self.release(&rid).await?,
                reviews: super::export::keyed(pool, "SELECT id, deployment_id, doc FROM reviews WHERE release_id = $1 ORDER BY completed_at, id", &rid, |r| json_column(r, "doc")).await?,
                authorisations: super::export::keyed(pool, "SELECT id, deployment_id, doc FROM authorisations WHERE release_id = $1 ORDER BY authorised_at, id", &rid, |r| json_column(r, "doc")).await?,
                acceptances: super::export::keyed(pool, "SELECT id, NULL AS deployment_id, deficiency_id, doc FROM acceptances WHERE release_id = $1 ORDER BY accepted_at, id", &rid, |r| {
                    Ok(AcceptanceOf {
                        deficiency_id: r.try_get("deficiency_id")?,
                        acceptance: json_column(r, "doc")?,
                    })
                })
                .await?,
            });
        }
        let deployments = sqlx::query(&format!(
            "{} WHERE system_id = $1 ORDER BY deployed_at DESC, id DESC",
            super::deployments::SELECT
        ))
        .bind(id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(deployment_from_row)
        .collect::<Result<_, _>>()?;
        Ok(SystemRecord {
            system,
            releases,
            deployments,
        })
    }

    /// A deployment's observations, by metric and time.
    pub async fn observations(&self, id: &str) -> Result<Vec<ObservationPoint>, RecordError> {
        let rows = sqlx::query("SELECT metric, value, samples, window_end FROM observations WHERE deployment_id = $1 ORDER BY metric, window_end, id")
            .bind(id)
            .fetch_all(&self.store.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ObservationPoint {
                    metric: r.try_get("metric")?,
                    value: r.try_get("value")?,
                    samples: r.try_get("samples")?,
                    window_end: Timestamp(r.try_get("window_end")?),
                })
            })
            .collect()
    }

    /// A page of decisions (not record entries) matching `filter`, newest
    /// first, at most `limit` (1..=[`MAX_PAGE`]).
    pub async fn decision_page(
        &self,
        filter: &LogFilter,
        limit: i64,
    ) -> Result<LogPage, RecordError> {
        let limit = limit.clamp(1, MAX_PAGE);
        // `COALESCE(...)` rather than `record_table IS NULL`: the latter
        // matches the `decision_log_record` index, and a planner that takes
        // it must then sort every decision to find the newest; walking the
        // primary key backwards finds a page at once.
        let mut sql = format!("{} WHERE COALESCE(record_table, '') = ''", chain::SELECT);
        let mut binds: Vec<Bind> = Vec::new();
        let mut next = |sql: &mut String, clause: &str, b: Bind| {
            binds.push(b);
            sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
        };
        if let Some(s) = &filter.system {
            next(
                &mut sql,
                " AND deployment_id IN (SELECT id FROM deployments WHERE system_id = ?)",
                Bind::Text(s.clone()),
            );
        }
        if let Some(k) = &filter.kind {
            next(&mut sql, " AND kind = ?", Bind::Text(k.clone()));
        }
        if let Some(o) = &filter.outcome {
            next(&mut sql, " AND outcome = ?", Bind::Text(o.clone()));
        }
        if let Some(c) = &filter.code {
            // `codes` is a JSON array of strings; a code is matched with
            // its quotes, so `trigger.roll` does not match
            // `trigger.rollback`. Codes contain no quotes or wildcards
            // (the decoder's code grammar), but escape them anyway.
            let quoted = serde_json::to_string(c).unwrap_or_default();
            let pattern = quoted
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            next(
                &mut sql,
                " AND codes LIKE ? ESCAPE '\\'",
                Bind::Text(format!("%{pattern}%")),
            );
        }
        if let Some(f) = filter.from {
            next(&mut sql, " AND at >= ?", Bind::Int(f.millis()));
        }
        if let Some(t) = filter.to {
            next(&mut sql, " AND at < ?", Bind::Int(t.millis()));
        }
        if let Some(b) = filter.before {
            next(&mut sql, " AND seq < ?", Bind::Int(b));
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", limit + 1));
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = match b {
                Bind::Text(t) => q.bind(t),
                Bind::Int(i) => q.bind(i),
            };
        }
        let rows = q.fetch_all(&self.store.pool).await?;
        let mut entries: Vec<Chained> =
            rows.iter().map(chain::from_row).collect::<Result<_, _>>()?;
        let more = entries.len() as i64 > limit;
        entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(LogPage {
            next_before: more.then(|| entries.last().map(|e| e.seq)).flatten(),
            entries,
        })
    }

    /// The history event a decision caused, if any (its reason and the
    /// obligations it recorded).
    pub async fn event_of_decision(
        &self,
        decision_id: &str,
    ) -> Result<Option<super::model::Event>, RecordError> {
        let row = sqlx::query("SELECT deployment_id FROM deployment_events WHERE decision_id = $1 ORDER BY seq LIMIT 1")
            .bind(decision_id)
            .fetch_optional(&self.store.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let deployment: String = row.try_get("deployment_id")?;
        Ok(self
            .events(&deployment)
            .await?
            .into_iter()
            .find(|e| e.decision_id.as_deref() == Some(decision_id)))
    }
}

enum Bind {
    Text(String),
    Int(i64),
}
