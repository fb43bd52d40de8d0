//! The decision log's Merkle tree in the records database.
//!
//! The tree's leaves are the log's entries in order (leaf `i` is entry
//! `seq = i + 1`), each hashed over the same canonical bytes the hash
//! chain hashes ([`super::chain::entry_bytes`]), so the chain's hashes
//! stay what they were and the tree commits to exactly what they commit
//! to. Every complete subtree's hash is stored once (`log_tree`), in the
//! transaction that appends its last leaf; roots and proofs of any size
//! are folds over a few of them ([`super::merkle`]), read in one query.

use std::collections::HashMap;

use sqlx::{Any, Row, Transaction};

use super::merkle::{self, Hash, Node, Plan};
use super::store::StoreError;

pub(super) fn hex_hash(text: &str) -> Result<Hash, StoreError> {
    let bytes = hex::decode(text).map_err(|e| StoreError::Corrupt(format!("log_tree: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("log_tree: a hash is not 32 bytes".into()))
}

/// Reads the stored hashes of `nodes` (absent ones are left out).
pub async fn fetch<'c, E>(ex: E, nodes: &[Node]) -> Result<HashMap<Node, Hash>, StoreError>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let mut out = HashMap::new();
    if nodes.is_empty() {
        return Ok(out);
    }
    // Literal integers: they are computed here, never taken from input.
    // A proof or root needs a few dozen nodes (each range of a plan is at
    // most 64 complete subtrees, most are one), far below SQLite's
    // expression depth (1,000) that a longer `OR` chain would reach; the
    // primary key serves each term.
    let mut sql = String::from("SELECT level, idx, hash FROM log_tree WHERE ");
    for (i, n) in nodes.iter().enumerate() {
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str(&format!("(level = {} AND idx = {})", n.level, n.index));
    }
    for row in sqlx::query(&sql).fetch_all(ex).await? {
        let level: i64 = row.try_get("level")?;
        let idx: i64 = row.try_get("idx")?;
        let hash: String = row.try_get("hash")?;
        out.insert(
            Node {
                level: level as u32,
                index: idx as u64,
            },
            hex_hash(&hash)?,
        );
    }
    Ok(out)
}

/// Computes a plan's hashes from the stored subtrees.
pub async fn compute<'c, E>(ex: E, plan: &Plan) -> Result<Vec<Hash>, StoreError>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let known = fetch(ex, &plan.nodes()).await?;
    plan.hashes(&known).map_err(|n| {
        StoreError::Corrupt(format!(
            "log_tree: the subtree at level {} index {} is missing",
            n.level, n.index
        ))
    })
}

/// The root hash of the first `size` entries.
pub async fn root<'c, E>(ex: E, size: u64) -> Result<Hash, StoreError>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(compute(ex, &merkle::root_plan(size)).await?[0])
}

/// Appends `leaves` after the first `size` entries, inside the
/// transaction that appends them to the log; returns the frontier of the
/// grown tree (what the next append needs, see [`merkle::frontier_after`]).
pub async fn append(
    tx: &mut Transaction<'_, Any>,
    size: u64,
    leaves: &[Hash],
) -> Result<HashMap<Node, Hash>, StoreError> {
    let frontier = fetch(&mut **tx, &merkle::frontier(size)).await?;
    let nodes = grow(size, &frontier, leaves)?;
    insert_nodes(tx, &nodes).await?;
    Ok(merkle::frontier_after(
        size + leaves.len() as u64,
        &frontier,
        &nodes,
    ))
}

/// The subtrees appending `leaves` to a tree of `size` with `frontier`
/// creates (no database access: what a writer computes before it locks).
pub(crate) fn grow(
    size: u64,
    frontier: &HashMap<Node, Hash>,
    leaves: &[Hash],
) -> Result<Vec<(Node, Hash)>, StoreError> {
    merkle::append(size, frontier, leaves).map_err(|n| {
        StoreError::Corrupt(format!(
            "log_tree: the subtree at level {} index {} is missing: the tree does not match the log (run stagegate audit verify --full)",
            n.level, n.index
        ))
    })
}

/// Stores new subtrees, many rows per statement, as the chain does.
pub(crate) async fn insert_nodes(
    tx: &mut Transaction<'_, Any>,
    nodes: &[(Node, Hash)],
) -> Result<(), StoreError> {
    let hexes: Vec<String> = nodes.iter().map(|(_, h)| hex::encode(h)).collect();
    let mut at = 0usize;
    for rows in super::statements::sizes(nodes.len(), 256) {
        let sql = super::statements::insert_sql(
            "INSERT INTO log_tree (level, idx, hash) VALUES ",
            3,
            rows,
        );
        let mut q = sqlx::query(sql);
        for ((n, _), hash) in nodes[at..at + rows].iter().zip(&hexes[at..at + rows]) {
            q = q
                .bind(n.level as i64)
                .bind(n.index as i64)
                .bind(hash.as_str());
        }
        at += rows;
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The stored hashes of level `level`, indexes `[from, to)`, in order
/// (what a tile serves). Fails if one is missing.
pub async fn range(
    pool: &sqlx::AnyPool,
    level: u32,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, StoreError> {
    let rows = sqlx::query(
        "SELECT idx, hash FROM log_tree WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
    )
    .bind(level as i64)
    .bind(from as i64)
    .bind(to as i64)
    .fetch_all(pool)
    .await?;
    if rows.len() as u64 != to - from {
        return Err(StoreError::Corrupt(format!(
            "log_tree: level {level} holds {} of the hashes {from}..{to}",
            rows.len()
        )));
    }
    rows.iter()
        .map(|r| hex_hash(&r.try_get::<String, _>("hash")?))
        .collect()
}

/// The stored hashes of `level` at indexes `[from, to)` that exist.
pub(super) async fn range_partial(
    pool: &sqlx::AnyPool,
    level: u32,
    from: u64,
    to: u64,
) -> Result<HashMap<u64, Hash>, StoreError> {
    let rows =
        sqlx::query("SELECT idx, hash FROM log_tree WHERE level = $1 AND idx >= $2 AND idx < $3")
            .bind(level as i64)
            .bind(from as i64)
            .bind(to as i64)
            .fetch_all(pool)
            .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>("idx")? as u64,
                hex_hash(&r.try_get::<String, _>("hash")?)?,
            ))
        })
        .collect()
}

/// Recomputes every interior node of the tree of `size` from its stored
/// leaves, level by level, and compares it with the stored one.
pub async fn verify_nodes(pool: &sqlx::AnyPool, size: u64) -> Result<Option<String>, StoreError> {
    let mut below: Vec<Hash> = range(pool, 0, 0, size).await?;
    let mut level = 0u32;
    while below.len() > 1 {
        level += 1;
        let computed: Vec<Hash> = below
            .chunks_exact(2)
            .map(|p| merkle::node_hash(&p[0], &p[1]))
            .collect();
        let stored = range(pool, level, 0, computed.len() as u64).await?;
        if let Some(i) = (0..computed.len()).find(|i| computed[*i] != stored[*i]) {
            return Ok(Some(format!(
                "the subtree at level {level} index {i} does not hash its children"
            )));
        }
        below = computed;
    }
    Ok(None)
}
