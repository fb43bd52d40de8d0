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

use sqlx::pool::PoolConnection;
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

/// Entries as the queue keeps them (JSON).
pub(crate) fn queued(entries: &[LogEntry]) -> Result<Vec<String>, super::store::StoreError> {
    entries
        .iter()
        .map(|e| {
            serde_json::to_string(e).map_err(|e| {
                super::store::StoreError::Corrupt(format!("encoding a log entry: {e}"))
            })
        })
        .collect()
}

/// Takes up to `limit` entries out of the queue, oldest first, decoded
/// (see [`super::sequencer::drain`]); one that does not decode is named
/// by its queue id.
pub(crate) async fn dequeue(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    limit: usize,
) -> Result<Vec<LogEntry>, super::store::StoreError> {
    super::sequencer::drain(tx, limit)
        .await?
        .into_iter()
        .map(|(id, text)| {
            serde_json::from_str(&text).map_err(|e| {
                super::store::StoreError::Corrupt(format!("log_queue entry {id}: {e}"))
            })
        })
        .collect()
}

/// How often a sequencer looks for queued entries: at once again after
/// finding some, backing off to `POLL_MAX` while the queue stays empty,
/// or to `POLL_BACKSTOP` while notifications of queued entries wake it
/// (docs/log.md, "Replicas").
const POLL_MIN: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(20);
const POLL_BACKSTOP: Duration = Duration::from_millis(250);

/// What became of a batch.
enum Written {
    /// Appended to the log.
    Appended,
    /// Queued for the sequencer (docs/log.md, "Replicas"), up to this
    /// queue id.
    Queued(Option<i64>),
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Pending>) {
    let mut known: Option<Known> = None;
    // The connection batches are appended with, kept from one to the next.
    // A SQLite connection's page cache is valid only while no other
    // connection has written since its last transaction: taking whichever
    // pooled connection is idle, as each batch did, found a cache another
    // connection's commit had invalidated, and re-read every page it
    // touched (42 `pread`s per commit, profiled at 12,000 decisions/s).
    let mut connection: Option<PoolConnection<sqlx::Any>> = None;
    let sequencing = store.sequencing.clone();
    let mut idle = POLL_MIN;
    loop {
        let first = match &sequencing {
            None => match rx.recv().await {
                Some(p) => Some(p),
                None => return,
            },
            // The sequencer also wakes to append what other replicas
            // queued; the others only when asked to write.
            Some(s) => tokio::select! {
                p = rx.recv() => match p {
                    Some(p) => Some(p),
                    None => return,
                },
                () = s.taken.notified() => None,
                () = s.queued.notified(), if s.is_held() => None,
                () = tokio::time::sleep(idle), if s.is_held() => None,
            },
        };
        let mut batch: Vec<Pending> = first.into_iter().collect();
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            let Some(s) = &sequencing else { continue };
            match append_queued(&store, s, &mut known).await {
                Ok(0) => {
                    let most = if s.is_listening() {
                        POLL_BACKSTOP
                    } else {
                        POLL_MAX
                    };
                    idle = (idle * 2).min(most);
                }
                Ok(_) => idle = POLL_MIN,
                Err(e) => {
                    tracing::warn!(error = %e, "appending queued decision log entries failed; retrying");
                    idle = POLL_MAX;
                }
            }
            continue;
        }
        idle = POLL_MIN;
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
            let written = match &sequencing {
                None => write(&store, &mut connection, &mut known, &entries, &rows)
                    .await
                    .map(|()| Written::Appended),
                Some(s) => write_sequenced(&store, s, &mut known, &entries, &rows).await,
            };
            match written {
                Ok(w) => break Ok(w),
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
        let done = batch.into_iter().filter_map(|p| p.done);
        match (result, &sequencing) {
            // Queued: `ack` decisions are answered once the sequencer has
            // appended them (the writer goes on meanwhile).
            (Ok(Written::Queued(Some(max))), Some(s)) => {
                let done: Vec<_> = done.collect();
                if !done.is_empty() {
                    s.integrated_all(max, done);
                }
            }
            (result, _) => {
                let result = result.map(|_| ());
                for d in done {
                    let _ = d.send(result.clone());
                }
            }
        }
    }
}

/// One group commit on a PostgreSQL log with a sequencer: appended, with
/// whatever other replicas queued before it, when this replica holds the
/// lease (checked in the transaction: fencing); otherwise queued, in one
/// transaction with the batch's record rows.
async fn write_sequenced(
    store: &Store,
    s: &super::sequencer::Sequencing,
    known: &mut Option<Known>,
    entries: &[LogEntry],
    rows: &[RowValues],
) -> Result<Written, super::store::StoreError> {
    let mut tx = store.pool.begin().await?;
    if s.is_held() {
        let head = chain::lock(&mut tx).await?;
        if s.holds(&mut tx).await? {
            let mut all = dequeue(&mut tx, BATCH).await?;
            all.extend_from_slice(entries);
            for row in rows {
                ledger::insert(&mut tx, row).await?;
            }
            let next = append_known(&mut tx, head, known.take(), &all).await?;
            tx.commit().await?;
            *known = Some(next);
            return Ok(Written::Appended);
        }
    }
    for row in rows {
        ledger::insert(&mut tx, row).await?;
    }
    let max = super::sequencer::enqueue(&mut tx, &s.holder, &queued(entries)?).await?;
    tx.commit().await?;
    Ok(Written::Queued(max))
}

/// The sequencer's poll: appends up to a batch of queued entries, if any
/// and if this replica holds the lease. Returns how many.
async fn append_queued(
    store: &Store,
    s: &super::sequencer::Sequencing,
    known: &mut Option<Known>,
) -> Result<usize, super::store::StoreError> {
    if !super::sequencer::anything_queued(&store.pool).await? {
        return Ok(0);
    }
    let mut tx = store.pool.begin().await?;
    let head = chain::lock(&mut tx).await?;
    if !s.holds(&mut tx).await? {
        return Ok(0);
    }
    let queued = dequeue(&mut tx, BATCH).await?;
    if queued.is_empty() {
        return Ok(0);
    }
    let next = append_known(&mut tx, head, known.take(), &queued).await?;
    tx.commit().await?;
    *known = Some(next);
    Ok(queued.len())
}

/// Appends `entries` after `head` (read under the chain lock in `tx`),
/// with the frontier the writer kept when the head is still where it
/// left it (otherwise read from the tree); returns what the writer knows
/// once `tx` commits.
async fn append_known(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    head: (i64, String),
    known: Option<Known>,
    entries: &[LogEntry],
) -> Result<Known, super::store::StoreError> {
    if let Some(k) = known.filter(|k| k.head == head) {
        let sealed = chain::seal(&head, entries);
        let nodes = tree::grow(head.0 as u64, &k.frontier, &sealed.leaves)?;
        let after = sealed.head_after();
        chain::insert_sealed(tx, &sealed).await?;
        tree::insert_nodes(tx, &nodes).await?;
        if !chain::advance(tx, &head, &after).await? {
            return Err(super::store::StoreError::Corrupt(
                "the chain head moved while its lock was held".into(),
            ));
        }
        return Ok(Known {
            frontier: merkle::frontier_after(after.0 as u64, &k.frontier, &nodes),
            head: after,
        });
    }
    let (head, frontier) = chain::append_keeping_frontier(tx, head, entries).await?;
    Ok(Known { head, frontier })
}

/// One group commit: the batch's rows and entries in one transaction.
/// `known` is what the writer knew before and, once committed, what it
/// knows after; a write that fails leaves it empty, so the next one reads
/// the head under the lock.
async fn write(
    store: &Store,
    connection: &mut Option<PoolConnection<sqlx::Any>>,
    known: &mut Option<Known>,
    entries: &[LogEntry],
    rows: &[RowValues],
) -> Result<(), super::store::StoreError> {
    let held = match connection.take() {
        Some(c) => connection.insert(c),
        None => {
            // A failed write may leave its connection broken: it is closed
            // rather than given back, and the retry takes a fresh one.
            let mut fresh = store.pool.acquire().await?;
            fresh.close_on_drop();
            connection.insert(fresh)
        }
    };
    let result = write_on(held, known, entries, rows).await;
    if result.is_err() {
        *connection = None;
    }
    result
}

/// [`write`] on the writer's connection.
async fn write_on(
    connection: &mut PoolConnection<sqlx::Any>,
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
    let mut tx = sqlx::Connection::begin(&mut **connection).await?;
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

    #[tokio::test]
    async fn after_writes_that_fail_the_writer_appends_again_once_the_database_takes_them() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let store = super::super::open_store(&url).await.unwrap();
        let log = DecisionLog::start(store.clone(), Durability::Ack, 64);
        log.record_all((0..3).map(entry).collect(), Vec::new())
            .await
            .unwrap();
        // From another connection, the database starts refusing entries:
        // the writer's kept connection fails every attempt, and the
        // decision waiting on it is told (a 503 in the server).
        sqlx::query(
            "CREATE TRIGGER refuse BEFORE INSERT ON decision_log BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let refused = log.record(entry(3)).await;
        assert!(refused.is_err(), "{refused:?}");
        // Once it takes them again, the next write goes through (on a
        // fresh connection: the failed one was closed) and the log is
        // whole, the refused entry nowhere in it.
        sqlx::query("DROP TRIGGER refuse")
            .execute(&store.pool)
            .await
            .unwrap();
        log.record_all((4..8).map(entry).collect(), Vec::new())
            .await
            .unwrap();
        assert_consistent(&store, 7).await;
    }
}
