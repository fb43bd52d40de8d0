//! The log's entries as the tree's leaves: building the tree from an
//! existing hash chain (the migration that introduced it) and checking
//! every entry against its leaf (`stagegate audit verify`).
//!
//! Kept apart from [`super::tree`], which [`super::chain`] appends to, so
//! that reading chain rows here closes no circle between the two.

use sqlx::{Any, Row, Transaction};

use super::merkle::{self, Hash};
use super::store::StoreError;
use super::tree::{append, range_partial};

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
