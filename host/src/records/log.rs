//! Writing the decision log without capping decision throughput.
//!
//! Decisions hand their entries to one writer task over a bounded channel.
//! The writer appends everything waiting in one transaction (group commit),
//! so a thousand concurrent decisions cost one commit, not a thousand:
//! one transaction per batch, multi-row inserts from a few prepared
//! statement texts, and the hashing done before the lock is taken. A
//! full channel makes senders wait (backpressure); nothing is ever dropped.
//! With `durability = "ack"` (the default) a decision is answered only after
//! its entry is committed, so an acknowledged decision survives a crash.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::chain::{self, LogEntry};
use super::ledger::{self, RowValues};
use super::store::Store;
use super::{merkle, tree};

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

/// Warns when decisions are answered on commit (`ack`) but the database
/// acknowledges commits before they are durable: PostgreSQL with
/// `synchronous_commit = off` (docs/log.md, "Writing"). SQLite's setting
/// is stagegate's own (`synchronous = FULL` on every connection).
pub async fn warn_unless_durable(store: &Store, durability: Durability) {
    if durability != Durability::Ack || store.dialect != super::store::Dialect::Postgres {
        return;
    }
    let setting: Result<String, _> =
        sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(&store.pool)
            .await;
    if let Ok(setting) = setting
        && setting == "off"
    {
        tracing::warn!(
            synchronous_commit = %setting,
            "records.durability = \"ack\" but PostgreSQL acknowledges commits before they are flushed: an acknowledged decision can be lost in a crash; set synchronous_commit = on"
        );
    }
}

/// What the writer knows of the log after its own last commit: the
/// chain's head and the tree's frontier. With it, the next batch is
/// hashed (chain hashes, leaves, new subtrees) before the transaction
/// starts, and the lock is held for the SQL alone; a head that moved
/// meanwhile (a transition, another replica) is noticed when the lock is
/// taken, and that batch is hashed again under the lock.
struct Known {
    head: (i64, String),
    frontier: chain::Frontier,
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Pending>) {
    let mut known: Option<Known> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut entries: Vec<LogEntry> = Vec::new();
        let mut rows: Vec<RowValues> = Vec::new();
        for p in &mut batch {
            entries.append(&mut p.entries);
            rows.append(&mut p.rows);
        }
        // A failed write is retried with backoff; meanwhile the channel
        // fills and decisions wait. Entries are never dropped.
        let mut delay = Duration::from_millis(10);
        let mut attempt = 0u32;
        let result = loop {
            attempt += 1;
            match write(&store, &mut known, &entries, &rows).await {
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

/// One group commit: the batch's rows and entries in one transaction.
/// `known` is what the writer knew before and, once committed, what it
/// knows after; a write that fails leaves it empty, so the next one reads
/// the head under the lock.
async fn write(
    store: &Store,
    known: &mut Option<Known>,
    entries: &[LogEntry],
    rows: &[RowValues],
) -> Result<(), super::store::StoreError> {
    // Hashing, before the transaction begins.
    let prepared = known.take().and_then(|k| {
        let sealed = chain::seal(&k.head, entries);
        let nodes = tree::grow(k.head.0 as u64, &k.frontier, &sealed.leaves).ok()?;
        Some((k, sealed, nodes))
    });
    let mut tx = store.pool.begin().await?;
    if let Some((k, sealed, nodes)) = prepared {
        let after = sealed.head_after();
        // The lock: the head moves only if it is still where this writer
        // left it.
        if chain::advance(&mut tx, &k.head, &after).await? {
            for row in rows {
                ledger::insert(&mut tx, row).await?;
            }
            chain::insert_sealed(&mut tx, &sealed).await?;
            tree::insert_nodes(&mut tx, &nodes).await?;
            tx.commit().await?;
            *known = Some(Known {
                frontier: merkle::frontier_after(after.0 as u64, &k.frontier, &nodes),
                head: after,
            });
            return Ok(());
        }
        // Another writer appended since: hash again under the lock.
    }
    let head = chain::lock(&mut tx).await?;
    for row in rows {
        ledger::insert(&mut tx, row).await?;
    }
    let (head, frontier) = chain::append_keeping_frontier(&mut tx, head, entries).await?;
    tx.commit().await?;
    *known = Some(Known { head, frontier });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> LogEntry {
        LogEntry {
            decision_id: format!("01JTEST{i:019}"),
            at: 1_800_000_000_000 + i as i64,
            kind: "gate".into(),
            outcome: if i.is_multiple_of(2) { "allow" } else { "deny" }.into(),
            codes: vec![format!("code.{i}")],
            bundle: "b".into(),
            bundle_version: "1.0.0".into(),
            bundle_digest: format!("sha256:{}", "ab".repeat(32)),
            request_digest: format!("sha256:{}", "cd".repeat(32)),
            request: i.is_multiple_of(3).then(|| format!("{{\"n\":{i}}}")),
            deployment_id: None,
            actor: "gw".into(),
            record: None,
            read_only: i.is_multiple_of(5),
        }
    }

    /// The log as stored is what the canonical writer (`chain::append`
    /// under the lock) would have made: every chain hash, every leaf, every
    /// interior node and the root.
    async fn assert_consistent(store: &Store, size: u64) {
        let chain = chain::verify(&store.pool).await.unwrap();
        assert_eq!(chain.broken, None);
        assert_eq!(chain.entries as u64, size);
        let leaves = super::super::leaves::verify_leaves(&store.pool, size)
            .await
            .unwrap();
        assert_eq!(leaves.broken, None);
        assert_eq!(tree::verify_nodes(&store.pool, size).await.unwrap(), None);
        assert_eq!(tree::root(&store.pool, size).await.unwrap(), leaves.root);
    }

    #[tokio::test]
    async fn batches_hashed_before_the_lock_match_the_log_when_another_writer_appends_between_them()
    {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let store = super::super::open_store(&url).await.unwrap();
        let log = DecisionLog::start(store.clone(), Durability::Ack, 64);
        let mut n = 0;
        // The first write reads the head under the lock; the next ones
        // are hashed before it, in batches of every size up to 70 (the
        // statement split: 64 + 4 + 2, ...).
        for size in [1usize, 1, 3, 64, 70, 37, 2] {
            let entries: Vec<LogEntry> = (n..n + size).map(entry).collect();
            n += size;
            log.record_all(entries, Vec::new()).await.unwrap();
        }
        assert_consistent(&store, n as u64).await;
        // Another writer (a transition) appends: the writer's next batch
        // finds the head moved and is hashed again under the lock.
        let mut tx = store.pool.begin().await.unwrap();
        let head = chain::lock(&mut tx).await.unwrap();
        chain::append(&mut tx, head, &[entry(1000), entry(1001)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        n += 2;
        for size in [5usize, 1, 130] {
            let entries: Vec<LogEntry> = (2000 + n..2000 + n + size).map(entry).collect();
            n += size;
            log.record_all(entries, Vec::new()).await.unwrap();
        }
        assert_consistent(&store, n as u64).await;
    }
}
