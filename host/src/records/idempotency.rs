//! `Idempotency-Key`: a retried write returns the first answer instead of
//! acting twice.
//!
//! The key is scoped to the caller. The stored answer is written in the
//! same transaction as the write it answers, so after a crash either both
//! exist or neither does. Reusing a key for a different request is refused.

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

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

/// The answer already given for this key (its JSON text), if any.
pub(crate) async fn lookup(
    store: &Store,
    k: &IdempotencyKey,
) -> Result<Option<String>, RecordError> {
    let row = sqlx::query(
        "SELECT request_hash, body FROM idempotency WHERE actor = $1 AND idem_key = $2",
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
    Ok(Some(row.try_get("body")?))
}

/// Whether an answer is stored under this key (inside a write's
/// transaction, after the chain lock).
pub(crate) async fn exists(
    conn: &mut AnyConnection,
    k: &IdempotencyKey,
) -> Result<bool, RecordError> {
    let row = sqlx::query("SELECT 1 AS x FROM idempotency WHERE actor = $1 AND idem_key = $2")
        .bind(&k.actor)
        .bind(&k.key)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// Stores the answer inside the write's transaction. A concurrent request
/// with the same key that stored first makes this a
/// [`RecordError::IdempotencyRace`]: its answer is the one to give.
pub(crate) async fn save(
    conn: &mut AnyConnection,
    k: &IdempotencyKey,
    body: &str,
) -> Result<(), RecordError> {
    // `status` is kept for rows written before answers were typed; the
    // caller knows the status of its own success.
    sqlx::query("INSERT INTO idempotency (actor, idem_key, request_hash, status, body, created_at) VALUES ($1, $2, $3, 0, $4, $5)")
        .bind(&k.actor)
        .bind(&k.key)
        .bind(&k.request_hash)
        .bind(body)
        .bind(Timestamp::now().millis())
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            if super::store::is_unique_violation(&e) {
                RecordError::IdempotencyRace
            } else {
                e.into()
            }
        })?;
    Ok(())
}
