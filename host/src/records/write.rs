//! One write to the records, as one transaction.
//!
//! Every write takes the chain lock first (so writers serialise instead of
//! failing on conflicts, and the chain's order is the order of commits),
//! collects a chain entry for every row it writes and every decision it
//! rests on, appends them, stores the idempotent answer and commits — or
//! leaves nothing behind.

use serde::Serialize;
use sqlx::{Any, AnyConnection, Transaction};

use super::chain::{self, LogEntry};
use super::idempotency::{self, IdempotencyKey};
use super::ledger::{self, RowValues};
use super::store::is_unique_violation;
use super::{RecordError, Store};
use crate::decision::Timestamp;

pub(crate) struct Write<'c> {
    store: Store,
    tx: Transaction<'c, Any>,
    head: (i64, String),
    entries: Vec<LogEntry>,
    actor: String,
    now: Timestamp,
}

impl Write<'static> {
    /// Begins a transaction and takes the chain lock. With an idempotency
    /// key, a request that committed under the same key while this one
    /// waited for the lock ends it here: its answer is the answer.
    pub(crate) async fn begin(
        store: &Store,
        actor: &str,
        now: Timestamp,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Self, RecordError> {
        let mut tx = store.pool.begin().await?;
        let head = chain::lock(&mut tx).await?;
        if let Some(key) = idem
            && idempotency::exists(&mut tx, key).await?
        {
            return Err(RecordError::IdempotencyRace);
        }
        Ok(Write {
            store: store.clone(),
            tx,
            head,
            entries: Vec::new(),
            actor: actor.to_string(),
            now,
        })
    }
}

impl Write<'_> {
    /// The connection, for reads and writes of rows not committed to the
    /// chain (schedule, outbox).
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.now
    }

    pub(crate) fn actor(&self) -> &str {
        &self.actor
    }

    /// Inserts a record row and commits its digest to the chain. A row
    /// that already exists is a conflict described by `exists`.
    pub(crate) async fn insert(
        &mut self,
        row: RowValues,
        deployment_id: Option<&str>,
        exists: impl FnOnce() -> String,
    ) -> Result<(), RecordError> {
        match ledger::insert(&mut self.tx, &row).await {
            Ok(()) => {
                self.seal(&row, deployment_id);
                Ok(())
            }
            Err(e) if is_unique_violation(&e) => Err(RecordError::Conflict(exists())),
            Err(e) => Err(e.into()),
        }
    }

    /// Commits a row's current contents to the chain (after an update).
    pub(crate) fn seal(&mut self, row: &RowValues, deployment_id: Option<&str>) {
        self.entries
            .push(ledger::entry(row, &self.actor, self.now, deployment_id));
    }

    /// Logs a decision this write rests on.
    pub(crate) fn decision(&mut self, entry: LogEntry) {
        self.entries.push(entry);
    }

    /// Appends the chain entries, stores `answer` under the idempotency
    /// key (if any) and commits.
    pub(crate) async fn commit<T: Serialize>(
        mut self,
        idem: Option<&IdempotencyKey>,
        answer: &T,
    ) -> Result<(), RecordError> {
        // With a sequencer (several replicas on PostgreSQL): appended
        // after everything queued before it when this replica holds the
        // lease (checked here, in the transaction), else queued for it.
        let mut queued = None;
        match self.store.sequencing.clone() {
            Some(s) if s.is_held() && s.holds(&mut self.tx).await? => {
                let mut all = super::log::dequeue(&mut self.tx, usize::MAX).await?;
                all.append(&mut self.entries);
                chain::append(&mut self.tx, self.head.clone(), &all).await?;
            }
            Some(s) => {
                if let Some(max) = super::sequencer::enqueue(
                    &mut self.tx,
                    &s.holder,
                    &super::log::queued(&self.entries)?,
                )
                .await?
                {
                    queued = Some((s, max));
                }
            }
            None => {
                chain::append(&mut self.tx, self.head.clone(), &self.entries).await?;
            }
        }
        if let Some(key) = idem {
            let body = serde_json::to_string(answer)
                .map_err(|e| RecordError::invalid("", format!("encoding the answer: {e}")))?;
            idempotency::save(&mut self.tx, key, &body).await?;
        }
        self.tx.commit().await.map_err(|e| {
            if is_unique_violation(&e) {
                RecordError::IdempotencyRace
            } else {
                RecordError::from(e)
            }
        })?;
        self.store.changed();
        // `ack`: answered once the sequencer has appended the entries.
        if let Some((s, max)) = queued
            && s.ack
        {
            s.integrated(max)
                .await
                .map_err(|e| RecordError::Log(super::log::LogError(e.0)))?;
        }
        Ok(())
    }
}
