//! The decision log as a hash chain.
//!
//! Each entry's hash is SHA-256 over the previous entry's hash and the
//! entry's own fields (as canonical JSON, fields in a fixed order), so
//! changing, inserting or deleting any entry breaks every hash after it,
//! and `stagegate audit verify` names the first entry that no longer
//! matches.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::statements;
use super::store::StoreError;

/// What one decision log entry records.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LogEntry {
    pub decision_id: String,
    /// When the decision was made (ms since the epoch, wall clock).
    pub at: i64,
    pub kind: String,
    pub outcome: String,
    pub codes: Vec<String>,
    pub bundle: String,
    pub bundle_version: String,
    pub bundle_digest: String,
    /// `sha256:` of the request body as received.
    pub request_digest: String,
    /// The request itself, when the service is configured to keep it.
    pub request: Option<String>,
    pub deployment_id: Option<String>,
    /// Who asked (the token's name).
    pub actor: String,
    /// For an entry committing to a record row rather than a decision: the
    /// row (its digest is `request_digest`). Absent from decision entries,
    /// so their hashes are what they were before records were chained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordRef>,
    /// A read-only evaluation: the policy was asked about the records and
    /// nothing changed. Absent (false) from every other entry, so their
    /// hashes are what they were before evaluations existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// The record row a chain entry commits to (see [`super::ledger`]).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RecordRef {
    pub table: String,
    pub id: String,
}

/// An entry as stored: with its place and hashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chained {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: LogEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// `sha256:<hex>` of `bytes`: how the log names a request or a record row.
pub(crate) fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The canonical bytes of an entry at `seq` following `prev_hash`: JSON
/// with the fields in a fixed order. The chain hashes them, and so does
/// the Merkle tree's leaf ([`super::tree`]), so both commit to the same
/// thing.
pub fn entry_bytes(seq: i64, entry: &LogEntry, prev_hash: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Canonical<'a> {
        seq: i64,
        prev_hash: &'a str,
        entry: &'a LogEntry,
    }
    serde_json::to_vec(&Canonical {
        seq,
        prev_hash,
        entry,
    })
    .unwrap_or_default()
}

/// The hash of an entry at `seq` following `prev_hash`.
pub fn hash(seq: i64, entry: &LogEntry, prev_hash: &str) -> String {
    hex::encode(Sha256::digest(entry_bytes(seq, entry, prev_hash)))
}

/// Takes the chain's write lock inside `tx`. A no-op update, because it
/// locks in both dialects: PostgreSQL's row lock, SQLite's write lock.
/// Every transaction that appends to the chain or changes a deployment
/// takes it first, so they serialise instead of failing on conflicts.
pub async fn lock(tx: &mut Transaction<'_, Any>) -> Result<(i64, String), StoreError> {
    sqlx::query("UPDATE chain_head SET seq = seq WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1")
        .fetch_one(&mut **tx)
        .await?;
    Ok((row.try_get("seq")?, row.try_get("hash")?))
}

/// The chain's head outside any transaction: (seq, hash).
pub async fn head(pool: &sqlx::AnyPool) -> Result<(i64, String), StoreError> {
    let row = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1")
        .fetch_one(pool)
        .await?;
    Ok((row.try_get("seq")?, row.try_get("hash")?))
}

/// The stored hash of entry `seq`, if the log holds it.
pub async fn hash_at(pool: &sqlx::AnyPool, seq: i64) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT hash FROM decision_log WHERE seq = $1")
        .bind(seq)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| r.try_get("hash")).transpose()?)
}

/// Appends entries after the head read by [`lock`] (which must have been
/// called in `tx`), to the chain and to the Merkle tree; returns the new
/// head.
pub async fn append(
    tx: &mut Transaction<'_, Any>,
    head: (i64, String),
    entries: &[LogEntry],
) -> Result<(i64, String), StoreError> {
    append_to(tx, head, entries, true).await
}

/// [`append`] for the migrations that come before the tree existed (the
/// tree's own migration then hashes their entries in).
pub(crate) async fn append_before_tree(
    tx: &mut Transaction<'_, Any>,
    head: (i64, String),
    entries: &[LogEntry],
) -> Result<(i64, String), StoreError> {
    append_to(tx, head, entries, false).await
}

/// The chain alone, as the log was appended before the tree: only for
/// benchmarks that compare the two (benches/log.rs). A log written with
/// it has no tree and fails `audit verify`.
#[doc(hidden)]
pub async fn append_chain_only(
    tx: &mut Transaction<'_, Any>,
    head: (i64, String),
    entries: &[LogEntry],
) -> Result<(i64, String), StoreError> {
    append_to(tx, head, entries, false).await
}

/// [`append`], also returning the tree's frontier after it: what a writer
/// that keeps the frontier needs to hash its next batch before it locks.
pub(crate) async fn append_keeping_frontier(
    tx: &mut Transaction<'_, Any>,
    head: (i64, String),
    entries: &[LogEntry],
) -> Result<((i64, String), Frontier), StoreError> {
    let size = head.0 as u64;
    let sealed = seal(&head, entries);
    insert_sealed(tx, &sealed).await?;
    let frontier = super::tree::append(tx, size, &sealed.leaves).await?;
    let after = write_head(tx, &sealed).await?;
    Ok((after, frontier))
}

/// The hashes of a tree's right edge ([`super::merkle::frontier`]).
pub(crate) type Frontier = std::collections::HashMap<super::merkle::Node, super::merkle::Hash>;

async fn append_to(
    tx: &mut Transaction<'_, Any>,
    head: (i64, String),
    entries: &[LogEntry],
    tree: bool,
) -> Result<(i64, String), StoreError> {
    let size = head.0 as u64;
    let sealed = seal(&head, entries);
    insert_sealed(tx, &sealed).await?;
    if tree {
        super::tree::append(tx, size, &sealed.leaves).await?;
    }
    write_head(tx, &sealed).await
}

async fn write_head(
    tx: &mut Transaction<'_, Any>,
    sealed: &Sealed<'_>,
) -> Result<(i64, String), StoreError> {
    let after = sealed.head_after();
    sqlx::query("UPDATE chain_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(after.0)
        .bind(&after.1)
        .execute(&mut **tx)
        .await?;
    Ok(after)
}

/// Entries with their places, chain hashes and leaf hashes computed
/// after a given head: everything an append writes, made before any lock
/// is taken, so the lock is held for the SQL alone.
pub(crate) struct Sealed<'a> {
    entries: &'a [LogEntry],
    head: (i64, String),
    /// The chain hash of each entry, hex.
    hashes: Vec<String>,
    /// Each entry's `codes` as stored (a JSON list).
    codes: Vec<String>,
    /// The Merkle leaf hash of each entry.
    pub leaves: Vec<super::merkle::Hash>,
}

/// Hashes `entries` as the successors of `head` (no database access).
pub(crate) fn seal<'a>(head: &(i64, String), entries: &'a [LogEntry]) -> Sealed<'a> {
    let (mut seq, mut prev) = (head.0, head.1.clone());
    let mut hashes = Vec::with_capacity(entries.len());
    let mut leaves = Vec::with_capacity(entries.len());
    let mut codes = Vec::with_capacity(entries.len());
    for e in entries {
        seq += 1;
        let bytes = entry_bytes(seq, e, &prev);
        let h = hex::encode(Sha256::digest(&bytes));
        leaves.push(super::merkle::leaf_hash(&bytes));
        codes.push(serde_json::to_string(&e.codes).unwrap_or_default());
        prev.clone_from(&h);
        hashes.push(h);
    }
    Sealed {
        entries,
        head: head.clone(),
        hashes,
        codes,
        leaves,
    }
}

impl Sealed<'_> {
    /// The chain's head once these entries are appended.
    pub(crate) fn head_after(&self) -> (i64, String) {
        match self.hashes.last() {
            Some(h) => (self.head.0 + self.hashes.len() as i64, h.clone()),
            None => self.head.clone(),
        }
    }
}

/// Moves the chain's head from `from` to `to` inside `tx`, if the head is
/// still `from`: the lock an append takes when it hashed its entries
/// before taking it ([`seal`]). `false` (nothing changed) when another
/// writer appended meanwhile; the caller then locks with [`lock`] and
/// hashes again.
pub(crate) async fn advance(
    tx: &mut Transaction<'_, Any>,
    from: &(i64, String),
    to: &(i64, String),
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE chain_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4",
    )
    .bind(to.0)
    .bind(to.1.as_str())
    .bind(from.0)
    .bind(from.1.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Rows per INSERT statement at most: per-statement overhead, not
/// hashing, is what limits a large batch.
const ROWS_PER_STATEMENT: usize = 64;

/// Inserts sealed entries into `decision_log` (the head is the caller's:
/// [`advance`], or [`lock`] and an update).
pub(crate) async fn insert_sealed(
    tx: &mut Transaction<'_, Any>,
    sealed: &Sealed<'_>,
) -> Result<(), StoreError> {
    const COLUMNS: &str = "INSERT INTO decision_log (seq, decision_id, at, kind, outcome, codes, bundle, bundle_version, bundle_digest, request_digest, request, deployment_id, actor, record_table, record_id, prev_hash, hash) VALUES ";
    const COLUMNS_READ_ONLY: &str = "INSERT INTO decision_log (seq, decision_id, at, kind, outcome, codes, bundle, bundle_version, bundle_digest, request_digest, request, deployment_id, actor, record_table, record_id, prev_hash, hash, read_only) VALUES ";
    let mut at = 0usize;
    for rows in statements::sizes(sealed.entries.len(), ROWS_PER_STATEMENT) {
        let range = at..at + rows;
        at += rows;
        let chunk = &sealed.entries[range.clone()];
        // `read_only` is written only by statements holding a read-only
        // evaluation; every other entry leaves it NULL. So this writer
        // also works on the schema of the migration that first seals
        // existing rows, which comes before the column does.
        let read_only = chunk.iter().any(|e| e.read_only);
        let sql = if read_only {
            statements::insert_sql(COLUMNS_READ_ONLY, 18, rows)
        } else {
            statements::insert_sql(COLUMNS, 17, rows)
        };
        let mut q = sqlx::query(sql);
        for i in range {
            let e = &sealed.entries[i];
            let seq = sealed.head.0 + i as i64 + 1;
            let prev = if i == 0 {
                sealed.head.1.as_str()
            } else {
                sealed.hashes[i - 1].as_str()
            };
            q = q
                .bind(seq)
                .bind(e.decision_id.as_str())
                .bind(e.at)
                .bind(e.kind.as_str())
                .bind(e.outcome.as_str())
                .bind(sealed.codes[i].as_str())
                .bind(e.bundle.as_str())
                .bind(e.bundle_version.as_str())
                .bind(e.bundle_digest.as_str())
                .bind(e.request_digest.as_str())
                .bind(e.request.as_deref())
                .bind(e.deployment_id.as_deref())
                .bind(e.actor.as_str())
                .bind(e.record.as_ref().map(|r| r.table.as_str()))
                .bind(e.record.as_ref().map(|r| r.id.as_str()))
                .bind(prev)
                .bind(sealed.hashes[i].as_str());
            if read_only {
                q = q.bind(e.read_only.then_some(1i64));
            }
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Reads a stored entry.
pub fn from_row(row: &AnyRow) -> Result<Chained, StoreError> {
    let codes: String = row.try_get("codes")?;
    Ok(Chained {
        seq: row.try_get("seq")?,
        entry: LogEntry {
            decision_id: row.try_get("decision_id")?,
            at: row.try_get("at")?,
            kind: row.try_get("kind")?,
            outcome: row.try_get("outcome")?,
            codes: serde_json::from_str(&codes)
                .map_err(|e| StoreError::Corrupt(format!("codes: {e}")))?,
            bundle: row.try_get("bundle")?,
            bundle_version: row.try_get("bundle_version")?,
            bundle_digest: row.try_get("bundle_digest")?,
            request_digest: row.try_get("request_digest")?,
            request: row.try_get("request")?,
            deployment_id: row.try_get("deployment_id")?,
            actor: row.try_get("actor")?,
            record: match (
                row.try_get::<Option<String>, _>("record_table")?,
                row.try_get::<Option<String>, _>("record_id")?,
            ) {
                (Some(table), Some(id)) => Some(RecordRef { table, id }),
                _ => None,
            },
            read_only: row
                .try_get::<Option<i64>, _>("read_only")?
                .is_some_and(|v| v != 0),
        },
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// The columns of [`SELECT`] as one JSON array per entry, for reads that
/// fold many entries into one row ([`from_json_rows`]): on SQLite each row
/// a query returns is handed from the connection's thread to the caller
/// on its own, and for thousands of entries those hand-offs cost more
/// than the entries.
pub(crate) fn json_columns(dialect: super::store::Dialect) -> &'static str {
    match dialect {
        super::store::Dialect::Sqlite => {
            "json_array(seq, decision_id, at, kind, outcome, codes, bundle, bundle_version, bundle_digest, request_digest, request, deployment_id, actor, record_table, record_id, read_only, prev_hash, hash)"
        }
        super::store::Dialect::Postgres => {
            "json_build_array(seq, decision_id, at, kind, outcome, codes, bundle, bundle_version, bundle_digest, request_digest, request, deployment_id, actor, record_table, record_id, read_only, prev_hash, hash)"
        }
    }
}

/// One entry as [`json_columns`] gives it, the columns in [`SELECT`]'s
/// order and with [`from_row`]'s types.
#[derive(serde::Deserialize)]
struct JsonRow(
    i64,
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    String,
    String,
);

/// Entries from a JSON list of [`json_columns`] arrays, as [`from_row`]
/// reads each from its row.
pub(crate) fn from_json_rows(text: &str) -> Result<Vec<Chained>, StoreError> {
    let rows: Vec<JsonRow> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("log entries as JSON: {e}")))?;
    rows.into_iter()
        .map(|r| {
            Ok(Chained {
                seq: r.0,
                entry: LogEntry {
                    decision_id: r.1,
                    at: r.2,
                    kind: r.3,
                    outcome: r.4,
                    codes: serde_json::from_str(&r.5)
                        .map_err(|e| StoreError::Corrupt(format!("codes: {e}")))?,
                    bundle: r.6,
                    bundle_version: r.7,
                    bundle_digest: r.8,
                    request_digest: r.9,
                    request: r.10,
                    deployment_id: r.11,
                    actor: r.12,
                    record: match (r.13, r.14) {
                        (Some(table), Some(id)) => Some(RecordRef { table, id }),
                        _ => None,
                    },
                    read_only: r.15.is_some_and(|v| v != 0),
                },
                prev_hash: r.16,
                hash: r.17,
            })
        })
        .collect()
}

pub const SELECT: &str = "SELECT seq, decision_id, at, kind, outcome, codes, bundle, bundle_version, bundle_digest, request_digest, request, deployment_id, actor, record_table, record_id, read_only, prev_hash, hash FROM decision_log";

/// The result of recomputing the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub entries: i64,
    pub head_seq: i64,
    pub head_hash: String,
    /// The first entry that does not match, and why.
    pub broken: Option<Broken>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Broken {
    pub seq: i64,
    pub decision_id: String,
    pub reason: String,
}

/// Recomputes every hash from the genesis, in pages, and compares the
/// result with the stored head.
pub async fn verify(pool: &sqlx::AnyPool) -> Result<Verification, StoreError> {
    let mut prev = "genesis".to_string();
    let mut expected_seq = 0i64;
    let mut count = 0i64;
    loop {
        let rows = sqlx::query(&format!("{SELECT} WHERE seq > $1 ORDER BY seq LIMIT 1000"))
            .bind(expected_seq)
            .fetch_all(pool)
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let c = from_row(row)?;
            expected_seq += 1;
            count += 1;
            let broken = |reason: String| Broken {
                seq: c.seq,
                decision_id: c.entry.decision_id.clone(),
                reason,
            };
            let problem = if c.seq != expected_seq {
                Some(format!(
                    "entry {expected_seq} is missing (next stored entry is {})",
                    c.seq
                ))
            } else if c.prev_hash != prev {
                Some("its prev_hash does not match the entry before it: an entry was removed or replaced".to_string())
            } else if hash(c.seq, &c.entry, &c.prev_hash) != c.hash {
                Some("its contents do not match its hash: the row was altered".to_string())
            } else {
                None
            };
            if let Some(reason) = problem {
                return Ok(Verification {
                    entries: count,
                    head_seq: c.seq,
                    head_hash: c.hash.clone(),
                    broken: Some(broken(reason)),
                });
            }
            prev = c.hash;
        }
    }
    let head = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1")
        .fetch_one(pool)
        .await?;
    let (head_seq, head_hash): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
    let broken = (head_seq != expected_seq || head_hash != prev).then(|| Broken {
        seq: head_seq,
        decision_id: String::new(),
        reason: format!(
            "the chain head says entry {head_seq} but the log ends at entry {expected_seq}: entries were removed from the end"
        ),
    });
    Ok(Verification {
        entries: count,
        head_seq,
        head_hash,
        broken,
    })
}
