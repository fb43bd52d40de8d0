//! When each active deployment's monitoring is next evaluated, and by whom.
//!
//! A replica claims due deployments with a lease (`FOR UPDATE SKIP LOCKED`
//! on PostgreSQL, so replicas never wait for or double-claim each other's
//! rows; SQLite has one writer anyway), evaluates them, and sets their next
//! due time one interval on. A replica that dies holding claims loses them
//! when the lease expires, and another replica takes them over.

use sqlx::{AnyConnection, Row};

use super::store::Leased;
use super::{RecordError, Store};

/// Scheduling intervals.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Between evaluations during the intensive period after deployment.
    pub intensive_ms: i64,
    /// Between evaluations after it.
    pub normal_ms: i64,
    /// How long a claim lasts before another replica may take it over.
    pub lease_ms: i64,
}

impl Intervals {
    /// The interval that applies at `now`.
    pub fn at(&self, now: i64, intensive_until: i64) -> i64 {
        if now < intensive_until {
            self.intensive_ms
        } else {
            self.normal_ms
        }
    }
}

/// A claimed deployment.
#[derive(Debug, Clone)]
pub struct Due {
    pub deployment_id: String,
    pub next_due: i64,
    pub intensive_until: i64,
}

/// Schedules a new deployment's first evaluation.
pub async fn insert(
    conn: &mut AnyConnection,
    deployment_id: &str,
    first_due: i64,
    intensive_until: i64,
) -> Result<(), RecordError> {
    sqlx::query("INSERT INTO monitor_schedule (deployment_id, next_due, intensive_until) VALUES ($1, $2, $3)")
        .bind(deployment_id)
        .bind(first_due)
        .bind(intensive_until)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The schedule rows due and not leased to a live replica.
const DUE: Leased = Leased {
    table: "monitor_schedule",
    key: "deployment_id",
    candidates: "SELECT deployment_id FROM monitor_schedule WHERE next_due <= $3 \
             AND (claimed_until IS NULL OR claimed_until < $4) ORDER BY next_due",
    returning: "deployment_id, next_due, intensive_until",
};

/// Claims up to `limit` due deployments for `replica` until `now + lease`.
pub async fn claim(
    store: &Store,
    replica: &str,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Due>, RecordError> {
    let rows = store.lease(&DUE, replica, now, lease_ms, limit).await?;
    rows.iter()
        .map(|r| {
            Ok(Due {
                deployment_id: r.try_get("deployment_id")?,
                next_due: r.try_get("next_due")?,
                intensive_until: r.try_get("intensive_until")?,
            })
        })
        .collect()
}

/// Releases a claim and sets the next due time: one interval after the
/// previous due time, or after now if the schedule fell behind. Returns
/// false when the claim was no longer this replica's (its lease expired
/// and another replica took the deployment).
pub async fn complete(
    store: &Store,
    replica: &str,
    due: &Due,
    now: i64,
    intervals: &Intervals,
) -> Result<bool, RecordError> {
    let step = intervals.at(now, due.intensive_until);
    let mut next = due.next_due + step;
    if next <= now {
        next = now + step;
    }
    let done = sqlx::query("UPDATE monitor_schedule SET next_due = $1, claimed_by = NULL, claimed_until = NULL WHERE deployment_id = $2 AND claimed_by = $3")
        .bind(next)
        .bind(&due.deployment_id)
        .bind(replica)
        .execute(&store.pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Stops scheduling a deployment that is no longer active.
pub async fn remove(store: &Store, deployment_id: &str) -> Result<(), RecordError> {
    sqlx::query("DELETE FROM monitor_schedule WHERE deployment_id = $1")
        .bind(deployment_id)
        .execute(&store.pool)
        .await?;
    Ok(())
}
