//! Signing the log's head: when, and never over a rewound log.
//!
//! A checkpoint is signed on the schedule when the log moved
//! (`records.checkpoint_interval_ms`), or on read when the log moved and
//! the newest checkpoint is older than `records.checkpoint_max_age_ms`;
//! otherwise `GET /v1/log/checkpoint` serves the newest one and writes
//! nothing. Before signing, the service checks that the tree extends the
//! last checkpoint it signed, kept outside the database ([`super::last`]):
//! a log rewound or rewritten behind its back is never signed again, and
//! the refusal is logged, counted (`stagegate_log_rewound`) and reported
//! by `/readyz`.

use std::sync::Mutex;

use sqlx::Row;

use super::checkpoint::Checkpoint;
use super::{RecordError, Records, chain, new_id, tree};
use crate::decision::Timestamp;

/// A signed checkpoint: its size, when it was signed (ms), its text.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub size: i64,
    pub at: i64,
    pub note: String,
}

/// The newest checkpoint this service signed, and why the log may not be
/// signed (it does not extend the last checkpoint).
#[derive(Default)]
pub(crate) struct Heads {
    latest: Mutex<Option<Signed>>,
    rewound: Mutex<Option<String>>,
    /// One signer at a time: two would race on the last checkpoint file.
    signing: tokio::sync::Mutex<()>,
}

fn refused(reason: String) -> RecordError {
    RecordError::Log(super::log::LogError(reason))
}

impl Records {
    /// Why the log cannot be signed: it does not extend the last signed
    /// checkpoint. `None` while it does.
    pub fn log_rewound(&self) -> Option<String> {
        self.heads.rewound.lock().ok()?.clone()
    }

    fn set_rewound(&self, reason: Option<String>) {
        if let Ok(mut r) = self.heads.rewound.lock() {
            *r = reason;
        }
    }

    /// At start: reads the last signed checkpoint and checks that the log
    /// extends it; says so in the log when it does not.
    pub async fn check_log_extends_last(&self) {
        let Some(signer) = self.signer.clone() else {
            return;
        };
        match self.extends_last(&signer).await {
            Ok(Some(last)) => {
                tracing::info!(size = last.size, file = %signer.last.display(), "the decision log extends the last signed checkpoint");
                if let Ok(mut l) = self.heads.latest.lock() {
                    *l = Some(last);
                }
            }
            Ok(None) => {}
            Err(RecordError::Log(e)) => {
                tracing::error!(reason = %e.0, "decision log refused: no checkpoint will be signed");
                self.set_rewound(Some(e.0));
            }
            Err(e) => {
                tracing::warn!(error = %e, "checking the log against the last checkpoint failed")
            }
        }
    }

    /// The last checkpoint kept outside the database, if the log extends
    /// it; `Err(Log)` naming how it does not.
    async fn extends_last(
        &self,
        signer: &super::CheckpointSigner,
    ) -> Result<Option<Signed>, RecordError> {
        let Some(note) = super::last::read(&signer.last).map_err(|e| refused(e.to_string()))?
        else {
            return Ok(None);
        };
        let file = signer.last.display();
        let cp = Checkpoint::open(&note, &signer.key.verifying_key()).map_err(|e| {
            refused(format!(
                "the last signed checkpoint {file} does not verify with the checkpoint key: {e}"
            ))
        })?;
        let (size, _) = chain::head(&self.store.pool).await?;
        if cp.seq > size {
            return Err(refused(format!(
                "the log does not extend the last signed checkpoint: it holds {size} entries, the checkpoint signed at {} ({file}) holds {}: entries were removed",
                cp.at, cp.seq
            )));
        }
        let root = tree::root(&self.store.pool, cp.seq as u64).await?;
        if hex::encode(root) != cp.hash {
            return Err(refused(format!(
                "the log does not extend the last signed checkpoint: its first {} entries no longer hash to the root signed at {} ({file}): history was rewritten",
                cp.seq, cp.at
            )));
        }
        Ok(Some(Signed {
            size: cp.seq,
            at: cp.at.millis(),
            note,
        }))
    }

    /// Signs the log's head, if it extends the last checkpoint: keeps it
    /// outside the database, then in it.
    async fn sign_head(&self) -> Result<Option<Signed>, RecordError> {
        let Some(signer) = self.signer.clone() else {
            return Ok(None);
        };
        let _one = self.heads.signing.lock().await;
        if let Err(e) = self.extends_last(&signer).await {
            if let RecordError::Log(reason) = &e {
                if self.log_rewound().is_none() {
                    tracing::error!(reason = %reason.0, "decision log refused: no checkpoint will be signed");
                }
                self.set_rewound(Some(reason.0.clone()));
            }
            return Err(e);
        }
        self.set_rewound(None);
        let (seq, _) = chain::head(&self.store.pool).await?;
        let root = tree::root(&self.store.pool, seq as u64).await?;
        let cp = Checkpoint {
            origin: signer.origin.clone(),
            seq,
            hash: hex::encode(root),
            at: Timestamp::now(),
        };
        let note = cp.sign(&signer.key);
        super::last::write(&signer.last, &note)
            .map_err(|e| refused(format!("keeping the last checkpoint: {e}")))?;
        sqlx::query(
            "INSERT INTO checkpoints (id, seq, hash, at, note, merkle) VALUES ($1, $2, $3, $4, $5, 1)",
        )
        .bind(new_id())
        .bind(cp.seq)
        .bind(&cp.hash)
        .bind(cp.at.millis())
        .bind(&note)
        .execute(&self.store.pool)
        .await?;
        if let Some(observe) = &self.on_checkpoint {
            observe(cp.seq, cp.at.millis() / 1000);
        }
        let signed = Signed {
            size: seq,
            at: cp.at.millis(),
            note,
        };
        if let Ok(mut l) = self.heads.latest.lock() {
            *l = Some(signed.clone());
        }
        Ok(Some(signed))
    }

    /// The newest checkpoint signed, by this replica or another.
    async fn newest(&self) -> Result<Option<Signed>, RecordError> {
        let mine = self.heads.latest.lock().ok().and_then(|l| l.clone());
        let stored = self.latest_checkpoint().await?;
        Ok(match (mine, stored) {
            (Some(m), Some((size, at, note))) if size > m.size => Some(Signed { size, at, note }),
            (Some(m), _) => Some(m),
            (None, Some((size, at, note))) => Some(Signed { size, at, note }),
            (None, None) => None,
        })
    }

    /// The newest signed checkpoint as a signed note, signing one when
    /// there is none, or the log moved and the newest is older than the
    /// configured bound; `None` when no checkpoint key is configured.
    pub async fn checkpoint(&self) -> Result<Option<String>, RecordError> {
        let Some(signer) = self.signer.clone() else {
            return Ok(None);
        };
        if let Some(reason) = self.log_rewound() {
            // Re-checked: restoring the database clears it.
            if self.sign_head().await.is_err() {
                return Err(refused(reason));
            }
        }
        let (size, _) = chain::head(&self.store.pool).await?;
        if let Some(n) = self.newest().await? {
            let age = Timestamp::now().millis() - n.at;
            if n.size == size || u64::try_from(age).unwrap_or(0) < signer.max_age_ms {
                return Ok(Some(n.note));
            }
        }
        Ok(self.sign_head().await?.map(|s| s.note))
    }

    /// A signed checkpoint that covers at least `size` entries (signing
    /// one when the newest does not): what a proof is checked against.
    pub async fn checkpoint_covering(
        &self,
        size: i64,
    ) -> Result<Option<(i64, String)>, RecordError> {
        if let Some(n) = self.newest().await?
            && n.size >= size
            && self.log_rewound().is_none()
        {
            return Ok(Some((n.size, n.note)));
        }
        Ok(self.sign_head().await?.map(|s| (s.size, s.note)))
    }

    /// Signs a checkpoint if the log moved since the newest one (the
    /// schedule).
    pub async fn checkpoint_if_moved(&self) -> Result<bool, RecordError> {
        let (seq, _) = chain::head(&self.store.pool).await?;
        if self.newest().await?.is_some_and(|n| n.size == seq) {
            return Ok(false);
        }
        Ok(self.sign_head().await?.is_some())
    }

    /// The latest checkpoint stored in the database: (size, signed at,
    /// signed note).
    pub(crate) async fn latest_checkpoint(
        &self,
    ) -> Result<Option<(i64, i64, String)>, RecordError> {
        let row = sqlx::query(
            "SELECT seq, at, note FROM checkpoints WHERE merkle = 1 ORDER BY seq DESC, at DESC LIMIT 1",
        )
        .fetch_optional(&self.store.pool)
        .await?;
        row.map(|r| Ok((r.try_get("seq")?, r.try_get("at")?, r.try_get("note")?)))
            .transpose()
    }
}
