//! `Idempotency-Key`: a retried write returns the first answer instead of
//! acting twice.
//!
//! The key is scoped to the caller. The stored answer is written in the
//! same transaction as the write it answers, so after a crash either both
//! exist or neither does. Reusing a key for a different request is refused.

use sha2::{Digest, Sha256};
use sqlx::{Any, Row, Transaction};

use super::{RecordError, Store};
use crate::decision::Timestamp;

/// A caller's key and the digest of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub actor: String,
    pub key: String,
    pub request_hash: String,
}

impl IdempotencyKey {
    pub fn new(
        actor: &str,
        key: &str,
        method_path: &str,
        body: &[u8],
    ) -> Result<Self, RecordError> {
        if key.is_empty() || key.len() > 200 {
            return Err(RecordError::invalid(
                "Idempotency-Key",
                "expected 1-200 characters",
            ));
        }
        let mut h = Sha256::new();
        h.update(method_path.as_bytes());
        h.update([0]);
        h.update(body);
        Ok(IdempotencyKey {
            actor: actor.to_string(),
            key: key.to_string(),
            request_hash: hex::encode(h.finalize()),
        })
    }
}

/// A stored answer.
#[derive(Debug, Clone)]
pub struct Replay {
    pub status: u16,
    pub body: String,
}

/// The answer already given for this key, if any.
pub async fn lookup(store: &Store, k: &IdempotencyKey) -> Result<Option<Replay>, RecordError> {
    let row = sqlx::query(
        "SELECT request_hash, status, body FROM idempotency WHERE actor = $1 AND idem_key = $2",
    )
    .bind(&k.actor)
    .bind(&k.key)
    .fetch_optional(&store.pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let hash: String = row.try_get("request_hash")?;
    if hash != k.request_hash {
        return Err(RecordError::invalid(
            "Idempotency-Key",
            "this key was already used for a different request",
        ));
    }
    let status: i64 = row.try_get("status")?;
    Ok(Some(Replay {
        status: u16::try_from(status).unwrap_or(200),
        body: row.try_get("body")?,
    }))
}

/// Stores the answer inside the write's transaction.
pub async fn save(
    tx: &mut Transaction<'_, Any>,
    k: Option<&IdempotencyKey>,
    status: u16,
    body: &str,
) -> Result<(), RecordError> {
    let Some(k) = k else {
        return Ok(());
    };
    sqlx::query("INSERT INTO idempotency (actor, idem_key, request_hash, status, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&k.actor)
        .bind(&k.key)
        .bind(&k.request_hash)
        .bind(i64::from(status))
        .bind(body)
        .bind(Timestamp::now().millis())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
