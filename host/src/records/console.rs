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
use super::store::{Dialect, json_column};
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

/// Log entries per row when a deployment's entries are read folded into
/// JSON ([`Records::deployment_record`]).
const ENTRIES_PER_ROW: i64 = 1000;

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

    /// One deployment as its console page shows it: its log entries,
    /// and beside them the deployment, then everything else side by side.
    pub async fn deployment_record(&self, id: &str) -> Result<DeploymentRecord, RecordError> {
        let pool = &self.store.pool;
        // The log entries are most of the page's reading: read them beside
        // everything else, not after.
        let entries = self.deployment_entries(id);
        let rest = async {
            let deployment = self.deployment(id).await?;
            let rid = deployment.release_id.as_str();
            let (system, sign_offs, observations_recorded, history, escalations) = tokio::join!(
                self.system(&deployment.system_id),
                super::export::sign_offs(pool, rid),
                self.observations_recorded(id),
                self.events(id),
                self.deliveries(id),
            );
            let super::export::SignOffs {
                reviews,
                authorisations,
                acceptances,
            } = sign_offs?;
            Ok::<_, RecordError>(DeploymentRecord {
                system: system?,
                reviews,
                authorisations,
                acceptances,
                observations_recorded: observations_recorded?,
                history: history?,
                escalations: escalations?,
                entries: Vec::new(),
                deployment,
            })
        };
        let (record, entries) = tokio::join!(rest, entries);
        let mut record = record?;
        record.entries = entries?;
        Ok(record)
    }

    /// A deployment's log entries in log order.
    ///
    /// The database folds them into JSON, a thousand entries per row:
    /// read row by row, most of the cost of a long deployment's thousands
    /// of entries was the driver handing each row from its connection's
    /// thread to this one (docs/BENCHMARKS.md, "Auditor console"). Where
    /// each thousand starts is read first (from the index alone); then the
    /// thousands are read side by side, each on a connection of its own
    /// and decoded on the blocking pool.
    pub(super) async fn deployment_entries(&self, id: &str) -> Result<Vec<Chained>, RecordError> {
        let starts: Vec<i64> = sqlx::query(&format!(
            "SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER (ORDER BY seq) AS n FROM decision_log WHERE deployment_id = $1) AS d WHERE (n - 1) % {ENTRIES_PER_ROW} = 0 ORDER BY seq"
        ))
        .bind(id)
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(|r| r.try_get("seq"))
        .collect::<Result<_, _>>()?;
        let agg = match self.store.dialect {
            Dialect::Sqlite => {
                format!("json_group_array({})", chain::json_columns(Dialect::Sqlite))
            }
            Dialect::Postgres => format!(
                "json_agg({} ORDER BY seq)::text",
                chain::json_columns(Dialect::Postgres)
            ),
        };
        let sql: std::sync::Arc<str> = format!(
            "SELECT {agg} AS entries FROM decision_log WHERE deployment_id = $1 AND seq >= $2 AND seq < $3"
        )
        .into();
        let reads: Vec<_> = starts
            .iter()
            .enumerate()
            .map(|(k, from)| {
                let to = starts.get(k + 1).copied().unwrap_or(i64::MAX);
                let (sql, pool, id, from) =
                    (sql.clone(), self.store.pool.clone(), id.to_string(), *from);
                tokio::spawn(async move {
                    let text: String = sqlx::query(&sql)
                        .bind(id)
                        .bind(from)
                        .bind(to)
                        .fetch_one(&pool)
                        .await?
                        .try_get("entries")?;
                    tokio::task::spawn_blocking(move || chain::from_json_rows(&text))
                        .await
                        .map_err(|e| {
                            super::store::StoreError::Corrupt(format!("decoding log entries: {e}"))
                        })?
                        .map_err(RecordError::from)
                })
            })
            .collect();
        let mut entries = Vec::new();
        for read in reads {
            let chunk = read.await.map_err(|e| {
                RecordError::Store(super::store::StoreError::Corrupt(format!(
                    "reading log entries: {e}"
                )))
            })??;
            entries.extend(chunk);
        }
        // One order whatever the database folded them in.
        entries.sort_unstable_by_key(|c| c.seq);
        Ok(entries)
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
            let super::export::SignOffs {
                reviews,
                authorisations,
                acceptances,
            } = super::export::sign_offs(pool, &rid).await?;
            releases.push(ReleaseRecord {
                release: self.release(&rid).await?,
                reviews,
                authorisations,
                acceptances,
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

    /// A deployment's observations, by metric and time: what its charts
    /// plot.
    ///
    /// One row per metric, its points folded by the database into one
    /// text list in time order (`window_end:value,…`), instead of one row
    /// per observation: a deployment gathers thousands, and reading them
    /// row by row costs mostly the driver's per-row work, not the data
    /// (docs/BENCHMARKS.md, "Auditor console"). Values travel as 17
    /// significant digits (SQLite) or PostgreSQL's shortest exact text, so
    /// each parses back to the stored double.
    pub async fn observations(&self, id: &str) -> Result<Vec<ObservationPoint>, RecordError> {
        let points = match self.store.dialect {
            Dialect::Sqlite => {
                "group_concat(window_end || ':' || printf('%!.17g', value), ',' ORDER BY window_end, id)"
            }
            Dialect::Postgres => {
                "string_agg(window_end::text || ':' || value::text, ',' ORDER BY window_end, id)"
            }
        };
        let rows = sqlx::query(&format!(
            "SELECT metric, {points} AS points FROM observations WHERE deployment_id = $1 GROUP BY metric ORDER BY metric"
        ))
        .bind(id)
        .fetch_all(&self.store.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let metric: String = r.try_get("metric")?;
            let points: String = r.try_get("points")?;
            for point in points.split(',') {
                let parsed = point.split_once(':').and_then(|(t, v)| {
                    Some((t.parse::<i64>().ok()?, v.trim().parse::<f64>().ok()?))
                });
                let Some((window_end, value)) = parsed else {
                    return Err(RecordError::Store(super::store::StoreError::Corrupt(
                        format!(
                            "observations of deployment {id}, metric {metric}: unreadable point {point:?}"
                        ),
                    )));
                };
                out.push(ObservationPoint {
                    metric: metric.clone(),
                    value,
                    window_end: Timestamp(window_end),
                });
            }
        }
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deployments_entries_read_folded_in_thousands_are_the_rows_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::in_test_dir(dir.path()).await;
        let pool = &records.store.pool;
        // 2,500 entries of d1 between those of d2 (three thousands, the
        // last partial), with every optional column both set and unset and
        // text that JSON must escape.
        let entries: Vec<chain::LogEntry> = (0..3_500usize)
            .map(|i| chain::LogEntry {
                decision_id: format!("01JTEST{i:019}"),
                at: 1_800_000_000_000 + i as i64,
                kind: if i % 4 == 0 { "record" } else { "gate" }.into(),
                outcome: "allow".into(),
                codes: (0..i % 3).map(|c| format!("code.{c}")).collect(),
                bundle: "b".into(),
                bundle_version: "1.0.0".into(),
                bundle_digest: format!("sha256:{}", "ab".repeat(32)),
                request_digest: format!("sha256:{}", "cd".repeat(32)),
                request: (i % 3 == 0).then(|| format!("{{\"n\":{i},\"s\":\"a\\\"b\\u00e9\\n\"}}")),
                deployment_id: Some(if i % 7 < 5 { "d1" } else { "d2" }.to_string()),
                actor: "gw".into(),
                record: (i % 4 == 0).then(|| chain::RecordRef {
                    table: "observations".into(),
                    id: format!("o{i}"),
                }),
                read_only: i % 5 == 0,
            })
            .collect();
        let mut tx = pool.begin().await.unwrap();
        let head = chain::lock(&mut tx).await.unwrap();
        chain::append(&mut tx, head, &entries).await.unwrap();
        tx.commit().await.unwrap();
        let stored: Vec<Chained> = sqlx::query(&format!(
            "{} WHERE deployment_id = 'd1' ORDER BY seq",
            chain::SELECT
        ))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| chain::from_row(r).unwrap())
        .collect();
        assert_eq!(stored.len(), 2_500);
        let read = records.deployment_entries("d1").await.unwrap();
        assert!(read == stored, "the folded read differs from the rows");
        assert!(records.deployment_entries("none").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn observations_read_back_exactly_by_metric_then_time_whatever_their_digits() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::in_test_dir(dir.path()).await;
        let store = records.store.clone();
        // Values whose shortest decimal form needs all 17 digits, tiny and
        // huge ones, negatives and zero; inserted out of order.
        let values = [
            ("latency_p99_ms", 3, 180.5),
            ("error_rate", 2, 0.1 + 0.2),
            ("error_rate", 1, 1.0 / 3.0),
            ("error_rate", 3, 5e-324),
            ("latency_p99_ms", 1, 1.7976931348623157e308),
            ("latency_p99_ms", 2, 1e22),
            ("error_rate", 4, -2.5e-7),
            ("other", 1, 0.0),
        ];
        // The deployment row is not this test's business.
        let mut conn = store.pool.acquire().await.unwrap();
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&mut *conn)
            .await
            .unwrap();
        for (i, (metric, at, value)) in values.iter().enumerate() {
            let deployment = if *metric == "other" { "d2" } else { "d1" };
            sqlx::query("INSERT INTO observations (id, deployment_id, metric, value, samples, window_end, recorded_at, actor) VALUES ($1, $2, $3, $4, NULL, $5, 0, 'ops')")
                .bind(format!("o{i}"))
                .bind(deployment)
                .bind(*metric)
                .bind(*value)
                .bind(*at)
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        drop(conn);
        let read: Vec<(String, i64, u64)> = records
            .observations("d1")
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.metric, o.window_end.millis(), o.value.to_bits()))
            .collect();
        let want: Vec<(String, i64, u64)> = [
            ("error_rate", 1, 1.0 / 3.0),
            ("error_rate", 2, 0.1 + 0.2),
            ("error_rate", 3, 5e-324),
            ("error_rate", 4, -2.5e-7),
            ("latency_p99_ms", 1, 1.7976931348623157e308),
            ("latency_p99_ms", 2, 1e22),
            ("latency_p99_ms", 3, 180.5),
        ]
        .iter()
        .map(|(m, t, v)| (m.to_string(), *t, f64::to_bits(*v)))
        .collect();
        assert_eq!(read, want);
        assert!(records.observations("none").await.unwrap().is_empty());
    }
}
