//! Escalation webhooks: the transactional outbox and its delivery.
//!
//! An event worth escalating (alert, hold, rollback, suspension, gate
//! denial) is written to `webhook_deliveries` in the same transaction as
//! the event itself, once per receiver configured on the system. A delivery
//! task sends them in order per stream (deployment) and receiver, signs
//! each with HMAC-SHA256, and retries with exponential backoff and jitter
//! until the receiver answers 2xx. Nothing is dropped: an undeliverable
//! event stays `pending`, visible in the deployment's delivery log and the
//! metrics, and keeps being retried.

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::{AnyConnection, Row};

use super::model::{DeploymentStatus, Escalation, System};
use super::store::Leased;
use super::{RecordError, Records, Store, new_id};
use crate::decision::{Outcome, Timestamp};

/// What a receiver is told about an escalation. `event_id` and `seq` are
/// added per receiver when it is queued.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Notice {
    pub event: Escalation,
    pub system_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    pub release_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_event_seq: Option<i64>,
    pub at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_percent: Option<f64>,
    pub decision_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codes: Option<Vec<String>>,
    pub reason: Option<String>,
    pub actor: String,
    pub escalation_contact: Option<String>,
}

/// Queues `notice` for every receiver of `system` that wants it, in the
/// caller's transaction: the outbox row commits with the event it reports.
pub(crate) async fn enqueue(
    conn: &mut AnyConnection,
    system: &System,
    stream: &str,
    notice: &Notice,
) -> Result<usize, RecordError> {
    let now = Timestamp::now();
    let mut queued = 0;
    for hook in system.webhooks.iter().filter(|h| h.wants(notice.event)) {
        let seq: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM webhook_deliveries WHERE stream = $1 AND url = $2")
            .bind(stream)
            .bind(&hook.url)
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")?;
        let id = new_id();
        let mut payload = serde_json::to_value(notice).unwrap_or(Value::Null);
        payload["event_id"] = json!(id);
        payload["seq"] = json!(seq);
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, stream, seq, system_id, deployment_id, url, event, payload, status, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $10)",
        )
        .bind(&id)
        .bind(stream)
        .bind(seq)
        .bind(&system.id)
        .bind(notice.deployment_id.clone())
        .bind(&hook.url)
        .bind(notice.event.as_str())
        .bind(payload.to_string())
        .bind(now.millis())
        .bind(now.millis())
        .execute(&mut *conn)
        .await?;
        queued += 1;
    }
    Ok(queued)
}

/// One escalation to one receiver, as the delivery log shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub event_id: String,
    pub seq: i64,
    /// The receiver, without credentials or query string.
    pub url: String,
    pub event: String,
    /// `pending` (retried until delivered) or `delivered`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub next_attempt_at: Timestamp,
}

/// A delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub url: String,
    pub payload: String,
    pub attempts: i64,
    pub system_id: String,
}

/// The oldest pending delivery of each (stream, receiver), when due and
/// not leased to a live replica.
const PENDING: Leased = Leased {
    table: "webhook_deliveries",
    key: "id",
    candidates: "SELECT d.id FROM webhook_deliveries d WHERE d.status = 'pending' AND d.next_attempt_at <= $3 \
             AND (d.claimed_until IS NULL OR d.claimed_until < $4) \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o WHERE o.stream = d.stream AND o.url = d.url AND o.status = 'pending' AND o.seq < d.seq) \
             ORDER BY d.created_at",
    returning: "id, url, payload, attempts, system_id",
};

/// Claims up to `limit` due deliveries, each the oldest pending one of its
/// (stream, receiver): later events wait for earlier ones, so a receiver
/// sees each deployment's events in order.
pub async fn claim(
    store: &Store,
    replica: &str,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Claimed>, RecordError> {
    let rows = store.lease(&PENDING, replica, now, lease_ms, limit).await?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                url: r.try_get("url")?,
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
                system_id: r.try_get("system_id")?,
            })
        })
        .collect()
}

/// Gives a claimed delivery back without an attempt (its receiver is busy
/// with as many deliveries as it may have at once).
pub async fn release(store: &Store, d: &Claimed) -> Result<(), RecordError> {
    sqlx::query(
        "UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL WHERE id = $1",
    )
    .bind(&d.id)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Records the result of one attempt.
pub async fn finish(
    store: &Store,
    d: &Claimed,
    result: Result<u16, DeliveryError>,
    now: i64,
) -> Result<(), RecordError> {
    match result {
        Ok(_) => {
            sqlx::query("UPDATE webhook_deliveries SET status = 'delivered', attempts = $1, delivered_at = $2, last_error = NULL, claimed_by = NULL, claimed_until = NULL WHERE id = $3")
                .bind(d.attempts + 1)
                .bind(now)
                .bind(&d.id)
                .execute(&store.pool)
                .await?;
        }
        Err(e) => {
            sqlx::query("UPDATE webhook_deliveries SET attempts = $1, next_attempt_at = $2, last_error = $3, claimed_by = NULL, claimed_until = NULL WHERE id = $4")
                .bind(d.attempts + 1)
                .bind(now + backoff_ms(d.attempts + 1))
                .bind(e.to_string())
                .bind(&d.id)
                .execute(&store.pool)
                .await?;
        }
    }
    Ok(())
}

/// Exponential backoff with full jitter: a random wait up to
/// min(500 ms × 2^(attempt-1), 5 min), never below 100 ms.
pub fn backoff_ms(attempt: i64) -> i64 {
    use rand::Rng;
    let cap = (500i64 << (attempt - 1).clamp(0, 20)).min(300_000);
    rand::thread_rng().gen_range(100..=cap.max(100))
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the
/// receiver recomputes it with the shared secret and rejects old
/// timestamps to stop replays.
pub fn signature(secret: &str, unix_seconds: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Sends one payload (blocking): 2xx is delivered, anything else an error
/// that is retried (a refused destination too: the operator may allow it).
pub fn send(
    destinations: &super::destinations::Destinations,
    timeout: std::time::Duration,
    url: &str,
    secret: &str,
    event_id: &str,
    attempt: i64,
    body: &str,
) -> Result<u16, DeliveryError> {
    let now = Timestamp::now().millis() / 1000;
    // Connects only to addresses the destination policy allows, resolved
    // now; no redirects (a 3xx to an internal address is not followed).
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .resolver(super::destinations::CheckedResolver(destinations.clone()))
        .build();
    let result = agent
        .post(url)
        .set("Content-Type", "application/json")
        .set(
            "User-Agent",
            concat!("stagegate/", env!("CARGO_PKG_VERSION")),
        )
        .set("X-Stagegate-Signature", &signature(secret, now, body))
        .set("X-Stagegate-Event-Id", event_id)
        .set("Idempotency-Key", event_id)
        .set("X-Stagegate-Attempt", &attempt.to_string())
        .send_string(body);
    match result {
        Ok(r) => Ok(r.status()),
        Err(ureq::Error::Status(code, _)) => Err(DeliveryError::Status(code)),
        Err(e) => Err(DeliveryError::Transport(e.to_string())),
    }
}

/// Why a webhook delivery failed; every one is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver answered, but not with 2xx.
    #[error("receiver answered {0}")]
    Status(u16),
    /// No answer: refused destination, connection, TLS or timeout.
    #[error("{0}")]
    Transport(String),
    /// The blocking send did not finish (the runtime dropped it).
    #[error("{0}")]
    Aborted(String),
}

impl Records {
    /// The secret for `url` among `system`'s receivers.
    pub async fn webhook_secret(
        &self,
        system_id: &str,
        url: &str,
    ) -> Result<Option<String>, RecordError> {
        let system = self.system_private(system_id).await?;
        Ok(system
            .webhooks
            .into_iter()
            .find(|h| h.url == url)
            .map(|h| h.secret))
    }

    /// The delivery log of a deployment.
    pub async fn deliveries(&self, deployment_id: &str) -> Result<Vec<Delivery>, RecordError> {
        let rows = sqlx::query("SELECT id, seq, url, event, status, attempts, last_error, created_at, delivered_at, next_attempt_at FROM webhook_deliveries WHERE deployment_id = $1 ORDER BY url, seq")
            .bind(deployment_id)
            .fetch_all(&self.store.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let delivered: Option<i64> = r.try_get("delivered_at")?;
                let url: String = r.try_get("url")?;
                Ok(Delivery {
                    event_id: r.try_get("id")?,
                    seq: r.try_get("seq")?,
                    url: super::model::redact_url(&url),
                    event: r.try_get("event")?,
                    status: r.try_get("status")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    created_at: Timestamp(r.try_get("created_at")?),
                    delivered_at: delivered.map(Timestamp),
                    next_attempt_at: Timestamp(r.try_get("next_attempt_at")?),
                })
            })
            .collect()
    }

    /// Deliveries not yet delivered, by all systems.
    pub async fn pending_deliveries(&self) -> Result<i64, RecordError> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending'")
                .fetch_one(&self.store.pool)
                .await?
                .try_get("n")?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_over_time_and_body() {
        let s = signature("0123456789abcdef", 1_700_000_000, "{}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(s, signature("0123456789abcdeX", 1_700_000_000, "{}"));
        assert_ne!(s, signature("0123456789abcdef", 1_700_000_001, "{}"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..40 {
            let b = backoff_ms(attempt);
            assert!((100..=300_000).contains(&b), "{attempt}: {b}");
        }
        let early: i64 = (0..200).map(|_| backoff_ms(1)).max().unwrap();
        assert!(early <= 500);
    }
}
