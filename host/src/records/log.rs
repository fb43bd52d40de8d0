//! Writing the decision log without capping decision throughput.
//!
//! Decisions hand their entries to one writer task over a bounded channel.
//! The writer appends everything waiting in one transaction (group commit),
//! so a thousand concurrent decisions cost one commit, not a thousand. A
//! full channel makes senders wait (backpressure); nothing is ever dropped.
//! With `durability = "ack"` (the default) a decision is answered only after
//! its entry is committed, so an acknowledged decision survives a crash.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::chain::{self, LogEntry};
use super::ledger::{self, RowValues};
use super::store::Store;

/// How long a decision waits for its log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Answer after the entry is committed.
    #[default]
    Ack,
    /// Answer once the entry is queued; a crash may lose the last queued
    /// entries (never silently while running: a failed write is retried).
    Queued,
}

struct Pending {
    entries: Vec<LogEntry>,
    /// Record rows written with the entries (a stateless gate's receipt);
    /// `entries` holds the chain entries committing to them.
    rows: Vec<RowValues>,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// The handle decisions use.
#[derive(Clone)]
pub struct DecisionLog {
    tx: mpsc::Sender<Pending>,
    durability: Durability,
}

/// Why an entry could not be recorded.
#[derive(Debug, thiserror::Error)]
#[error("decision log unavailable: {0}")]
pub struct LogError(pub String);

/// Entries one transaction appends at most.
const BATCH: usize = 1024;

impl DecisionLog {
    /// Starts the writer task.
    pub fn start(store: Store, durability: Durability, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        tokio::spawn(writer(store, rx));
        DecisionLog { tx, durability }
    }

    /// Records one entry: waits for its commit (`ack`) or its place in the
    /// queue (`queued`).
    pub async fn record(&self, entry: LogEntry) -> Result<(), LogError> {
        self.record_all(vec![entry], Vec::new()).await
    }

    /// Records entries and inserts record rows in the same group commit:
    /// `entries` must include the chain entry of each row.
    pub(crate) async fn record_all(
        &self,
        entries: Vec<LogEntry>,
        rows: Vec<RowValues>,
    ) -> Result<(), LogError> {
        match self.durability {
            Durability::Ack => {
                let (done, wait) = oneshot::channel();
                self.tx
                    .send(Pending {
                        entries,
                        rows,
                        done: Some(done),
                    })
                    .await
                    .map_err(|_| LogError("writer stopped".into()))?;
                wait.await
                    .map_err(|_| LogError("writer stopped".into()))?
                    .map_err(LogError)
            }
            Durability::Queued => self
                .tx
                .send(Pending {
                    entries,
                    rows,
                    done: None,
                })
                .await
                .map_err(|_| LogError("writer stopped".into())),
        }
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let entries: Vec<LogEntry> = batch.iter().flat_map(|p| p.entries.clone()).collect();
        let rows: Vec<RowValues> = batch.iter().flat_map(|p| p.rows.clone()).collect();
        // A failed write is retried with backoff; meanwhile the channel
        // fills and decisions wait. Entries are never dropped.
        let mut delay = Duration::from_millis(10);
        let mut attempt = 0u32;
        let result = loop {
            attempt += 1;
            match write(&store, &entries, &rows).await {
                Ok(()) => break Ok(()),
                // Entries nobody waits for are retried for ever: with no
                // caller left to tell, giving up would drop them silently.
                Err(e) if attempt < 8 || batch.iter().all(|p| p.done.is_none()) => {
                    tracing::warn!(error = %e, attempt, entries = entries.len(), "decision log write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => break Err(e.to_string()),
            }
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, entries = entries.len(), "decision log write failed; the decisions are answered with 503");
        }
        for p in batch {
            if let Some(done) = p.done {
                let _ = done.send(result.clone());
            }
        }
    }
}

async fn write(
    store: &Store,
    entries: &[LogEntry],
    rows: &[RowValues],
) -> Result<(), super::store::StoreError> {
    let mut tx = store.pool.begin().await?;
    let head = chain::lock(&mut tx).await?;
    for row in rows {
        ledger::insert(&mut tx, row).await?;
    }
    chain::append(&mut tx, head, entries).await?;
    tx.commit().await?;
    Ok(())
}
