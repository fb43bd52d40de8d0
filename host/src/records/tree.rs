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

fn hex_hash(text: &str) -> Result<Hash, StoreError> {
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
/// transaction that appends them to the log.
pub async fn append(
    tx: &mut Transaction<'_, Any>,
    size: u64,
    leaves: &[Hash],
) -> Result<(), StoreError> {
    if leaves.is_empty() {
        return Ok(());
    }
    let frontier = fetch(&mut **tx, &merkle::frontier(size)).await?;
    let nodes = merkle::append(size, &frontier, leaves).map_err(|n| {
        StoreError::Corrupt(format!(
            "log_tree: the subtree at level {} index {} is missing: the tree does not match the log (run stagegate audit verify --full)",
            n.level, n.index
        ))
    })?;
    // Many rows per statement, as the chain does.
    for chunk in nodes.chunks(256) {
        let mut sql = String::from("INSERT INTO log_tree (level, idx, hash) VALUES ");
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${}, ${})", i * 3 + 1, i * 3 + 2, i * 3 + 3));
        }
        let mut q = sqlx::query(&sql);
        for (n, h) in chunk {
            q = q
                .bind(n.level as i64)
                .bind(n.index as i64)
                .bind(hex::encode(h));
        }
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

/// Hashes every entry already in the log into the tree, in order (the
/// migration that introduced the tree), a page at a time.
pub(crate) async fn build_from_log(tx: &mut Transaction<'_, Any>) -> Result<u64, StoreError> {
    let mut size = 0u64;
    loop {
        let rows = sqlx::query(&format!(
            "{} WHERE seq > $1 ORDER BY seq LIMIT 4096",
            super::chain::SELECT
        ))
        .bind(size as i64)
        .fetch_all(&mut **tx)
        .await?;
        if rows.is_empty() {
            return Ok(size);
        }
        let mut leaves = Vec::with_capacity(rows.len());
        for row in &rows {
            let c = super::chain::from_row(row)?;
            if c.seq as u64 != size + leaves.len() as u64 + 1 {
                return Err(StoreError::Corrupt(format!(
                    "decision_log: entry {} is missing (next stored entry is {})",
                    size + leaves.len() as u64 + 1,
                    c.seq
                )));
            }
            leaves.push(merkle::leaf_hash(&super::chain::entry_bytes(
                c.seq,
                &c.entry,
                &c.prev_hash,
            )));
        }
        append(tx, size, &leaves).await?;
        size += leaves.len() as u64;
    }
}

/// What [`verify_leaves`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafCheck {
    /// The first entry whose stored leaf does not hash it, and why.
    pub broken: Option<(i64, String)>,
    /// The root computed from the entries themselves at the size asked
    /// for (a checkpoint's), if the log reaches it.
    pub root_at: Option<Hash>,
    /// The root computed from the entries themselves, at the log's size.
    pub root: Hash,
}

/// Streams the complete subtrees of the leaves seen so far: the root of
/// any prefix without storing the tree.
#[derive(Default)]
struct Stack(Vec<(u32, Hash)>);

impl Stack {
    fn push(&mut self, leaf: Hash) {
        let mut top = (0u32, leaf);
        while let Some((level, h)) = self.0.last().copied() {
            if level != top.0 {
                break;
            }
            self.0.pop();
            top = (level + 1, merkle::node_hash(&h, &top.1));
        }
        self.0.push(top);
    }

    fn root(&self) -> Hash {
        let mut it = self.0.iter().rev();
        let Some((_, last)) = it.next() else {
            return merkle::empty_root();
        };
        it.fold(*last, |acc, (_, h)| merkle::node_hash(h, &acc))
    }
}

/// Checks every entry against its stored leaf (the leaf hash of its
/// bytes), and computes the tree's root from the entries themselves, at
/// `at` entries and at the log's size: what a signed root is compared
/// with, whatever the stored interior nodes say.
pub async fn verify_leaves(pool: &sqlx::AnyPool, at: u64) -> Result<LeafCheck, StoreError> {
    let mut after = 0i64;
    let mut stack = Stack::default();
    let mut root_at = (at == 0).then(merkle::empty_root);
    let mut broken = None;
    loop {
        let rows = sqlx::query(&format!(
            "{} WHERE seq > $1 ORDER BY seq LIMIT 4096",
            super::chain::SELECT
        ))
        .bind(after)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else {
            break;
        };
        let last_seq: i64 = last.try_get("seq")?;
        let stored = range_partial(pool, 0, after as u64, last_seq as u64).await?;
        for row in &rows {
            let c = super::chain::from_row(row)?;
            let leaf = merkle::leaf_hash(&super::chain::entry_bytes(c.seq, &c.entry, &c.prev_hash));
            if broken.is_none() {
                match stored.get(&((c.seq - 1) as u64)) {
                    Some(h) if *h == leaf => {}
                    Some(_) => {
                        broken = Some((
                            c.seq,
                            "its leaf in the tree does not hash its contents: the row or the tree was altered".into(),
                        ));
                    }
                    None => broken = Some((c.seq, "it has no leaf in the tree".into())),
                }
            }
            stack.push(leaf);
            if c.seq as u64 == at {
                root_at = Some(stack.root());
            }
        }
        after = last_seq;
    }
    Ok(LeafCheck {
        broken,
        root_at,
        root: stack.root(),
    })
}

/// The stored hashes of `level` at indexes `[from, to)` that exist.
async fn range_partial(
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
