//! The auditor's document for one deployment: its plan, the evidence and
//! authorisations it rests on, every state change, every decision, and the
//! hash-chain proof for its log entries.
//!
//! The proof is local: each of the deployment's entries (decisions and
//! record rows) is re-hashed and checked against its stored predecessor,
//! so the cost grows with the deployment, not with the whole log.
//! `stagegate audit verify` checks everything, and a signed checkpoint
//! (when configured) pins the head.

use serde::Serialize;
use sqlx::Row;

use super::chain::{self, Chained};
use super::model::{
    Acceptance, Authorisation, Deployment, Event, MaterialIssue, Release, Review, SystemView,
};
use super::store::json_column;
use super::webhooks::Delivery;
use super::{RecordError, Records};
use crate::decision::Timestamp;

/// A record with the id it is stored under and where it applies.
#[derive(Debug, Clone, Serialize)]
pub struct Keyed<T> {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(flatten)]
    pub record: T,
}

/// One entry's place in the chain, re-checked.
#[derive(Debug, Clone, Serialize)]
pub struct ProofStep {
    pub seq: i64,
    pub decision_id: String,
    pub prev_hash: String,
    pub hash: String,
    pub recomputed: String,
    /// The entry's contents hash to its stored hash, and its `prev_hash`
    /// is the stored hash of the entry before it.
    pub matches: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainProof {
    pub hash: &'static str,
    pub proof: Vec<ProofStep>,
    /// Every entry of this deployment hashes correctly and links to its
    /// predecessor.
    pub log_verified: bool,
    pub head: Head,
    /// The latest signed checkpoint, as a signed note, if any.
    pub checkpoint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// Everything recorded about one deployment.
#[derive(Debug, Clone, Serialize)]
pub struct Export {
    pub exported_at: Timestamp,
    pub deployment: Deployment,
    pub system: SystemView,
    pub release: Release,
    /// The release's attestations, verbatim, with what was read from them.
    pub attestations: Vec<super::attestations::StoredAttestation>,
    /// The signed receipts of the release's `allow` and `promote` decisions.
    pub receipts: Vec<super::receipts::StoredReceipt>,
    pub authorisations: Vec<Keyed<Authorisation>>,
    pub reviews: Vec<Keyed<Review>>,
    pub acceptances: Vec<Keyed<AcceptanceOf>>,
    pub material_issues: Vec<Keyed<MaterialIssue>>,
    pub observations_recorded: i64,
    pub history: Vec<Event>,
    pub escalations: Vec<Delivery>,
    pub decisions: Vec<Chained>,
    pub chain: ChainProof,
}

/// A risk acceptance with the deficiency it accepts.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptanceOf {
    pub deficiency_id: String,
    #[serde(flatten)]
    pub acceptance: Acceptance,
}

impl Records {
    /// Everything recorded about a deployment, in one document.
    pub async fn export(&self, id: &str) -> Result<Export, RecordError> {
        let deployment = self.deployment(id).await?;
        let release = self.release(&deployment.release_id).await?;
        let system = self.system(&deployment.system_id).await?;
        let pool = &self.store.pool;
        let rid = &deployment.release_id;
        let SignOffs {
            reviews,
            authorisations,
            acceptances,
        } = sign_offs(pool, rid).await?;
        let material_issues = keyed(pool, "SELECT id, deployment_id, doc FROM material_issues WHERE deployment_id = $1 ORDER BY recorded_at, id", id, |r| json_column(r, "doc")).await?;
        let observations_recorded = self.observations_recorded(id).await?;
        let entries = self.deployment_entries(id).await?;
        let chain = self.proof(&entries).await?;
        let attestations = {
            let mut conn = pool.acquire().await?;
            super::attestations::of_release(&mut conn, rid).await?
        };
        let receipts = self.receipts_of_release(rid).await?;
        Ok(Export {
            exported_at: Timestamp::now(),
            history: self.events(id).await?,
            escalations: self.deliveries(id).await?,
            decisions: entries
                .into_iter()
                .filter(|c| c.entry.record.is_none())
                .collect(),
            deployment,
            system,
            release,
            attestations,
            receipts,
            authorisations,
            reviews,
            acceptances,
            material_issues,
            observations_recorded,
            chain,
        })
    }

    /// Re-checks `entries` against their stored predecessors. A
    /// deployment's entries are mostly consecutive, so most predecessors
    /// are among them; the others are read in batches, not one query each.
    async fn proof(&self, entries: &[Chained]) -> Result<ChainProof, RecordError> {
        let pool = &self.store.pool;
        let mut known: std::collections::HashMap<i64, String> =
            entries.iter().map(|c| (c.seq, c.hash.clone())).collect();
        known.insert(0, "genesis".to_string());
        let missing: Vec<i64> = entries
            .iter()
            .map(|c| c.seq - 1)
            .filter(|s| !known.contains_key(s))
            .collect();
        for chunk in missing.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT seq, hash FROM decision_log WHERE seq IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for s in chunk {
                q = q.bind(*s);
            }
            for row in q.fetch_all(pool).await? {
                known.insert(row.try_get("seq")?, row.try_get("hash")?);
            }
        }
        let mut proof = Vec::with_capacity(entries.len());
        for c in entries {
            let recomputed = chain::hash(c.seq, &c.entry, &c.prev_hash);
            let predecessor = known.get(&(c.seq - 1));
            proof.push(ProofStep {
                seq: c.seq,
                decision_id: c.entry.decision_id.clone(),
                prev_hash: c.prev_hash.clone(),
                hash: c.hash.clone(),
                matches: recomputed == c.hash && predecessor == Some(&c.prev_hash),
                recomputed,
            });
        }
        let (seq, hash) = chain::head(pool).await?;
        Ok(ChainProof {
            hash: "sha256 over the JSON {\"seq\", \"prev_hash\", \"entry\"} of each entry; the first entry's prev_hash is \"genesis\"",
            log_verified: proof.iter().all(|p| p.matches),
            proof,
            head: Head { seq, hash },
            checkpoint: self.latest_checkpoint().await?.map(|(_, _, note)| note),
        })
    }
}

/// What was recorded about a release before it went live: its reviews,
/// authorisations and risk acceptances, as the export and the console's
/// system and deployment pages show them.
pub(crate) struct SignOffs {
    pub reviews: Vec<Keyed<Review>>,
    pub authorisations: Vec<Keyed<Authorisation>>,
    pub acceptances: Vec<Keyed<AcceptanceOf>>,
}

/// Release `rid`'s sign-offs, the three read side by side.
pub(crate) async fn sign_offs(pool: &sqlx::AnyPool, rid: &str) -> Result<SignOffs, RecordError> {
    let (reviews, authorisations, acceptances) = tokio::join!(
        keyed(
            pool,
            "SELECT id, deployment_id, doc FROM reviews WHERE release_id = $1 ORDER BY completed_at, id",
            rid,
            |r| json_column(r, "doc")
        ),
        keyed(
            pool,
            "SELECT id, deployment_id, doc FROM authorisations WHERE release_id = $1 ORDER BY authorised_at, id",
            rid,
            |r| json_column(r, "doc")
        ),
        keyed(
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
    );
    Ok(SignOffs {
        reviews: reviews?,
        authorisations: authorisations?,
        acceptances: acceptances?,
    })
}

impl Records {
    /// How many observations deployment `id` has recorded.
    pub(crate) async fn observations_recorded(&self, id: &str) -> Result<i64, RecordError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM observations WHERE deployment_id = $1")
            .bind(id)
            .fetch_one(&self.store.pool)
            .await?
            .try_get("n")?;
        Ok(n)
    }
}

/// Rows of a records table for one release or deployment, each with its
/// id and deployment.
pub(crate) async fn keyed<T>(
    pool: &sqlx::AnyPool,
    sql: &str,
    key: &str,
    record: impl Fn(&sqlx::any::AnyRow) -> Result<T, super::StoreError>,
) -> Result<Vec<Keyed<T>>, RecordError> {
    let rows = sqlx::query(sql).bind(key).fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(Keyed {
                id: r.try_get("id")?,
                deployment_id: r.try_get("deployment_id")?,
                record: record(r)?,
            })
        })
        .collect()
}
