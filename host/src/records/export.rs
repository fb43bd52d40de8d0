//! The auditor's document for one deployment: its plan, the evidence and
//! authorisations it rests on, every state change, every decision, and the
//! hash-chain proof for its decision log entries.

use serde_json::{Value, json};
use sqlx::Row;

use super::chain;
use super::evidence::json_col;
use super::{RecordError, Records};
use crate::decision::Timestamp;

impl Records {
    /// Everything recorded about a deployment, in one JSON document.
    pub async fn export(&self, id: &str) -> Result<Value, RecordError> {
        let d = self.deployment(id).await?;
        let (_, release) = self.release(&d.release_id).await?;
        let system = self.system(&d.system_id).await?;
        let pool = &self.store.pool;
        let docs = |sql: &'static str, key: &'static str| {
            let release_id = d.release_id.clone();
            async move {
                let rows = sqlx::query(sql).bind(release_id).fetch_all(pool).await?;
                rows.iter()
                    .map(|r| {
                        let mut v = json_col(r, "doc")?;
                        v[key] = json!(r.try_get::<String, _>("id")?);
                        let dep: Option<String> = r.try_get("deployment_id").unwrap_or(None);
                        v["deployment_id"] = json!(dep);
                        Ok(v)
                    })
                    .collect::<Result<Vec<Value>, RecordError>>()
            }
        };
        let authorisations = docs(
            "SELECT id, deployment_id, doc FROM authorisations WHERE release_id = $1 ORDER BY authorised_at, id",
            "authorisation_id",
        )
        .await?;
        let reviews = docs(
            "SELECT id, deployment_id, doc FROM reviews WHERE release_id = $1 ORDER BY completed_at, id",
            "review_id",
        )
        .await?;
        let acceptances = sqlx::query("SELECT id, deficiency_id, doc FROM acceptances WHERE release_id = $1 ORDER BY accepted_at, id")
            .bind(&d.release_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                let mut v = json_col(r, "doc")?;
                v["acceptance_id"] = json!(r.try_get::<String, _>("id")?);
                v["deficiency_id"] = json!(r.try_get::<String, _>("deficiency_id")?);
                Ok(v)
            })
            .collect::<Result<Vec<Value>, RecordError>>()?;
        let issues = sqlx::query("SELECT doc, recorded_at FROM material_issues WHERE deployment_id = $1 ORDER BY recorded_at, id")
            .bind(id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                let mut v = json_col(r, "doc")?;
                v["recorded_at"] = json!(Timestamp(r.try_get("recorded_at")?));
                Ok(v)
            })
            .collect::<Result<Vec<Value>, RecordError>>()?;
        let observations: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM observations WHERE deployment_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?
                .try_get("n")?;

        // Every decision logged for this deployment, from the gate decision
        // that created it on.
        let mut decisions: Vec<chain::Chained> = sqlx::query(&format!(
            "{} WHERE deployment_id = $1 ORDER BY seq",
            chain::SELECT
        ))
        .bind(id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(chain::from_row)
        .collect::<Result<_, _>>()?;
        decisions.sort_by_key(|c| c.seq);
        let mut proof = Vec::new();
        for c in &decisions {
            let recomputed = chain::hash(c.seq, &c.entry, &c.prev_hash);
            proof.push(json!({
                "seq": c.seq, "decision_id": c.entry.decision_id,
                "prev_hash": c.prev_hash, "hash": c.hash, "recomputed": recomputed,
                "matches": recomputed == c.hash,
            }));
        }
        let verification = chain::verify(pool).await?;
        Ok(json!({
            "exported_at": Timestamp::now(),
            "deployment": d.json(),
            "system": system,
            "release": release,
            "plan": d.plan,
            "authorisations": authorisations,
            "reviews": reviews,
            "acceptances": acceptances,
            "material_issues": issues,
            "observations_recorded": observations,
            "history": self.events(id).await?,
            "escalations": self.deliveries(id).await?,
            "decisions": decisions,
            "chain": {
                "hash": "sha256 over the JSON {\"seq\", \"prev_hash\", \"entry\"} of each entry; the first entry's prev_hash is \"genesis\"",
                "proof": proof,
                "log_verified": verification.broken.is_none(),
                "log_entries": verification.entries,
                "head": {"seq": verification.head_seq, "hash": verification.head_hash},
                "broken": verification.broken,
            },
        }))
    }
}
