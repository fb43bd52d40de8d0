//! Proving a set of log entries (a deployment's, for the console) by
//! inclusion in the newest signed checkpoint, in logarithmic time.
//!
//! Each entry's leaf is recomputed from its stored row, so an altered row
//! is caught, and the entries are proved together by one batch inclusion
//! proof: the root is folded from their recomputed leaves and the stored
//! hashes of the complete subtrees that hold none of them, and compared
//! with the root the checkpoint signs (its signature checked with the log
//! key, so a root forged in the database proves nothing). When they are
//! equal, every entry has an RFC 9162 §2.1.3 inclusion proof against that
//! checkpoint: its siblings are hashes the fold computed. When they are
//! not, each entry is checked alone with its own inclusion proof from the
//! stored tree, and the ones that fail are named with the reason.
//!
//! The fold hashes each subtree that holds an entry once: at most
//! entries × log2(size) hashes, far fewer when the entries are close
//! together, as a deployment's mostly are; the stored hashes it needs are
//! read a level at a time, in a few queries. Nothing walks the log.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use sqlx::Row;

use super::chain::{self, Chained};
use super::checkpoint::Checkpoint;
use super::merkle::{self, Hash, Node, Plan};
use super::store::StoreError;
use super::{RecordError, Records};
use crate::decision::Timestamp;

/// The signed checkpoint a set of entries was proved against.
#[derive(Debug, Clone, Serialize)]
pub struct ProvedAgainst {
    /// Its tree size.
    pub size: u64,
    pub signed_at: Timestamp,
    /// The signed note, as `GET /v1/log/checkpoint` serves it.
    pub note: String,
}

/// One entry's result.
#[derive(Debug, Clone, Serialize)]
pub struct EntryVerdict {
    pub seq: i64,
    pub decision_id: String,
    /// base64 of the leaf hash recomputed from the stored row.
    pub leaf_hash: String,
    pub proven: bool,
    /// Why it is not proven.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The entries' results against one checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct InclusionCheck {
    /// `None` when no checkpoint could be had; `unavailable` says why.
    pub checkpoint: Option<ProvedAgainst>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// One per entry, in the order given.
    pub entries: Vec<EntryVerdict>,
    /// Stored hashes read from the tree for the proof.
    pub tree_hashes_read: usize,
    /// Hashes in one entry's inclusion proof at the checkpoint's size (at
    /// most): what a verifier holding only the checkpoint needs.
    pub proof_length: usize,
}

impl InclusionCheck {
    pub fn proven(&self) -> usize {
        self.entries.iter().filter(|e| e.proven).count()
    }

    /// Every entry is proven (and there is at least a checkpoint).
    pub fn all_proven(&self) -> bool {
        self.checkpoint.is_some() && self.entries.iter().all(|e| e.proven)
    }
}

/// The largest power of two smaller than `n` (`n > 1`): where RFC 6962
/// splits a range of `n` leaves.
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The complete subtrees a batch proof of the leaves `indexes` (sorted,
/// distinct, each below `size`) reads from the stored tree: those the
/// RFC 6962 recursion over the tree of `size` reaches that hold none of
/// them.
pub fn batch_nodes(indexes: &[u64], size: u64) -> Vec<Node> {
    fn walk(start: u64, end: u64, idx: &[u64], out: &mut Vec<Node>) {
        if idx.is_empty() {
            out.extend(merkle::decompose(start, end));
            return;
        }
        let n = end - start;
        if n == 1 {
            return;
        }
        let mid = start + split(n);
        let p = idx.partition_point(|i| *i < mid);
        walk(start, mid, &idx[..p], out);
        walk(mid, end, &idx[p..], out);
    }
    let mut out = Vec::new();
    if size > 0 {
        walk(0, size, indexes, &mut out);
    }
    out
}

/// The root of the tree of `size` from the given leaves (sorted by
/// index, distinct, each below `size`) and the stored hashes of
/// [`batch_nodes`] (`Err`: one is missing).
pub fn batch_root(
    leaves: &[(u64, Hash)],
    size: u64,
    known: &HashMap<Node, Hash>,
) -> Result<Hash, Node> {
    fn hash(
        start: u64,
        end: u64,
        leaves: &[(u64, Hash)],
        known: &HashMap<Node, Hash>,
    ) -> Result<Hash, Node> {
        if leaves.is_empty() {
            let plan = Plan {
                ranges: vec![(start, end)],
            };
            return Ok(plan.hashes(known)?[0]);
        }
        let n = end - start;
        if n == 1 {
            return Ok(leaves[0].1);
        }
        let mid = start + split(n);
        let p = leaves.partition_point(|(i, _)| *i < mid);
        Ok(merkle::node_hash(
            &hash(start, mid, &leaves[..p], known)?,
            &hash(mid, end, &leaves[p..], known)?,
        ))
    }
    hash(0, size, leaves, known)
}

/// Hashes in an inclusion proof at `size`, at most: ⌈log2 size⌉.
fn proof_length(size: u64) -> usize {
    if size <= 1 {
        0
    } else {
        (64 - (size - 1).leading_zeros()) as usize
    }
}

/// Reads the stored hashes of `nodes` a level at a time, in chunks (a
/// batch may need thousands: one `OR` term each, as [`super::tree`] reads
/// a proof's few dozen, would pass SQLite's expression depth).
async fn fetch_nodes(
    pool: &sqlx::AnyPool,
    nodes: &[Node],
) -> Result<HashMap<Node, Hash>, StoreError> {
    let mut by_level: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for n in nodes {
        by_level.entry(n.level).or_default().push(n.index);
    }
    let mut out = HashMap::with_capacity(nodes.len());
    for (level, mut indexes) in by_level {
        indexes.sort_unstable();
        indexes.dedup();
        for chunk in indexes.chunks(500) {
            // Literal integers: computed here, never taken from input.
            let list = chunk
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let sql =
                format!("SELECT idx, hash FROM log_tree WHERE level = {level} AND idx IN ({list})");
            for row in sqlx::query(&sql).fetch_all(pool).await? {
                let idx: i64 = row.try_get("idx")?;
                let hash: String = row.try_get("hash")?;
                out.insert(
                    Node {
                        level,
                        index: idx as u64,
                    },
                    super::tree::hex_hash(&hash)?,
                );
            }
        }
    }
    Ok(out)
}

/// Each entry alone: its stored leaf against its row, then its own
/// inclusion proof from the stored tree against the signed root.
async fn one_by_one(
    pool: &sqlx::AnyPool,
    leaves: &[(u64, Hash)],
    size: u64,
    root: &Hash,
) -> Result<(HashMap<u64, Option<String>>, usize), StoreError> {
    let plans: Vec<(u64, Plan)> = leaves
        .iter()
        .map(|(i, _)| (*i, merkle::inclusion_plan(*i, size)))
        .collect();
    let mut nodes: Vec<Node> = plans.iter().flat_map(|(_, p)| p.nodes()).collect();
    nodes.extend(leaves.iter().map(|(i, _)| Node {
        level: 0,
        index: *i,
    }));
    let known = fetch_nodes(pool, &nodes).await?;
    let mut out = HashMap::with_capacity(leaves.len());
    for ((index, leaf), (_, plan)) in leaves.iter().zip(&plans) {
        let stored = known.get(&Node {
            level: 0,
            index: *index,
        });
        let reason = match stored {
            None => Some("it has no leaf in the tree".to_string()),
            Some(s) if s != leaf => Some(
                "its row no longer hashes to its leaf in the tree: the entry was altered".to_string(),
            ),
            Some(_) => match plan.hashes(&known) {
                Err(n) => Some(format!(
                    "the tree lacks the subtree at level {} index {} on its path",
                    n.level, n.index
                )),
                Ok(proof) => merkle::verify_inclusion(*index, size, leaf, &proof, root)
                    .err()
                    .map(|e| format!("its inclusion proof from the stored tree fails: {e}: the tree was altered")),
            },
        };
        out.insert(*index, reason);
    }
    Ok((out, known.len()))
}

/// Each entry's index and leaf hash, recomputed from its stored row. A long
/// deployment's thousands of entries are hashed on up to four threads (as
/// many as there are cores): re-encoding and hashing them is most of its
/// proof.
fn leaves_of(entries: &[Chained]) -> Vec<(u64, Hash)> {
    let leaf = |c: &Chained| {
        (
            c.seq.max(1) as u64 - 1,
            merkle::leaf_hash(&chain::entry_bytes(c.seq, &c.entry, &c.prev_hash)),
        )
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads < 2 || entries.len() < 1024 {
        return entries.iter().map(leaf).collect();
    }
    std::thread::scope(|s| {
        let parts: Vec<_> = entries
            .chunks(entries.len().div_ceil(threads))
            .map(|part| s.spawn(move || part.iter().map(leaf).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

impl Records {
    /// Proves `entries` by inclusion in the newest signed checkpoint that
    /// covers them all (signing one when the newest does not, as `GET
    /// /v1/decisions/{id}/proof` does). Entries that cannot be proven are
    /// named with the reason; a log the service refuses to sign (rewound,
    /// rewritten) or a service without a checkpoint key proves none.
    pub async fn prove_inclusion(
        &self,
        entries: &[Chained],
    ) -> Result<InclusionCheck, RecordError> {
        let leaves = leaves_of(entries);
        let verdicts = |reasons: &dyn Fn(usize) -> Option<String>| -> Vec<EntryVerdict> {
            entries
                .iter()
                .zip(&leaves)
                .enumerate()
                .map(|(i, (c, (_, leaf)))| {
                    let reason = reasons(i);
                    EntryVerdict {
                        seq: c.seq,
                        decision_id: c.entry.decision_id.clone(),
                        leaf_hash: B64.encode(leaf),
                        proven: reason.is_none(),
                        reason,
                    }
                })
                .collect()
        };
        let none_proven = |why: String| InclusionCheck {
            checkpoint: None,
            entries: verdicts(&|_| Some(why.clone())),
            unavailable: Some(why.clone()),
            tree_hashes_read: 0,
            proof_length: 0,
        };
        let Some(newest) = entries.iter().map(|c| c.seq).max() else {
            return Ok(InclusionCheck {
                checkpoint: None,
                unavailable: None,
                entries: Vec::new(),
                tree_hashes_read: 0,
                proof_length: 0,
            });
        };
        let Some((_, key)) = self.checkpoint_key() else {
            return Ok(none_proven(
                "no checkpoint key is configured: there is no signed root to prove against".into(),
            ));
        };
        let note = match self.checkpoint_covering(newest).await {
            Ok(Some((_, note))) => note,
            Ok(None) => {
                return Ok(none_proven("no checkpoint is signed".into()));
            }
            Err(RecordError::Log(e)) => return Ok(none_proven(e.0)),
            Err(e) => return Err(e),
        };
        let cp = match Checkpoint::open(&note, &key) {
            Ok(cp) => cp,
            Err(e) => {
                return Ok(none_proven(format!(
                    "the newest checkpoint does not verify with the log key: {e}"
                )));
            }
        };
        let size = cp.seq.max(0) as u64;
        let root: Hash = match hex::decode(&cp.hash).ok().and_then(|b| b.try_into().ok()) {
            Some(r) => r,
            None => return Ok(none_proven("the checkpoint's root is not 32 bytes".into())),
        };
        let against = ProvedAgainst {
            size,
            signed_at: cp.at,
            note: note.clone(),
        };
        let mut covered: Vec<(u64, Hash)> =
            leaves.iter().filter(|(i, _)| *i < size).copied().collect();
        covered.sort_unstable_by_key(|(i, _)| *i);
        covered.dedup_by_key(|(i, _)| *i);
        let pool = &self.store.pool;
        let nodes = batch_nodes(&covered.iter().map(|(i, _)| *i).collect::<Vec<_>>(), size);
        let known = fetch_nodes(pool, &nodes).await?;
        let mut read = known.len();
        let batch_holds = batch_root(&covered, size, &known).is_ok_and(|r| r == root);
        let beyond = |index: u64| {
            (index >= size)
                .then(|| format!("it is beyond the newest signed checkpoint, of {size} entries"))
        };
        let entries = if batch_holds {
            verdicts(&|i| beyond(leaves[i].0))
        } else {
            let (reasons, n) = one_by_one(pool, &covered, size, &root).await?;
            read += n;
            verdicts(&|i| {
                let index = leaves[i].0;
                beyond(index).or_else(|| reasons.get(&index).cloned().flatten())
            })
        };
        Ok(InclusionCheck {
            checkpoint: Some(against),
            unavailable: None,
            entries,
            tree_hashes_read: read,
            proof_length: proof_length(size),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect()
    }

    /// Every complete subtree of `leaves`, appended in one go.
    fn stored(leaves: &[Hash]) -> HashMap<Node, Hash> {
        merkle::append(0, &HashMap::new(), leaves)
            .unwrap()
            .into_iter()
            .collect()
    }

    fn root(all: &HashMap<Node, Hash>, size: u64) -> Hash {
        merkle::root_plan(size).hashes(all).unwrap()[0]
    }

    /// Deterministic subsets of `0..size`: empty, single, runs, scattered.
    fn subsets(size: u64) -> Vec<Vec<u64>> {
        let mut out = vec![vec![], vec![0], vec![size - 1], (0..size).collect()];
        out.push(
            (size / 3..size / 3 + size.min(5))
                .filter(|i| *i < size)
                .collect(),
        );
        out.push((0..size).filter(|i| i % 3 == 1).collect());
        out.push((0..size).filter(|i| i % 7 == 0 || i % 11 == 5).collect());
        out
    }

    #[test]
    fn a_batch_of_true_leaves_folds_to_the_root_reading_only_what_it_lacks() {
        let l = leaves(70);
        for size in 1..=70u64 {
            // The tree as stored at `size` (no subtree past it).
            let all = stored(&l[..size as usize]);
            let want = root(&all, size);
            for subset in subsets(size) {
                let nodes = batch_nodes(&subset, size);
                for n in &nodes {
                    let first = n.index << n.level;
                    assert!(
                        !subset
                            .iter()
                            .any(|i| *i >= first && *i < first + (1 << n.level)),
                        "size {size}: {n:?} holds a leaf of the batch"
                    );
                }
                let known: HashMap<Node, Hash> = nodes.iter().map(|n| (*n, all[n])).collect();
                let batch: Vec<(u64, Hash)> = subset.iter().map(|i| (*i, l[*i as usize])).collect();
                assert_eq!(
                    batch_root(&batch, size, &known),
                    Ok(want),
                    "size {size} subset {subset:?}"
                );
            }
        }
    }

    #[test]
    fn one_altered_leaf_in_the_batch_changes_the_root() {
        let l = leaves(45);
        let all = stored(&l);
        let want = root(&all, 45);
        let subset: Vec<u64> = (10..30).collect();
        let known: HashMap<Node, Hash> = batch_nodes(&subset, 45)
            .iter()
            .map(|n| (*n, all[n]))
            .collect();
        for altered in &subset {
            let batch: Vec<(u64, Hash)> = subset
                .iter()
                .map(|i| {
                    let h = if i == altered {
                        merkle::leaf_hash(b"altered")
                    } else {
                        l[*i as usize]
                    };
                    (*i, h)
                })
                .collect();
            assert_ne!(batch_root(&batch, 45, &known), Ok(want), "{altered}");
        }
    }

    #[test]
    fn a_batch_reads_few_stored_hashes_for_a_run_of_entries() {
        // 6,000 consecutive entries in a tree of 106,000: the subtrees
        // beside the run, about two per level, not one per entry.
        let run: Vec<u64> = (2_000..8_000).collect();
        let nodes = batch_nodes(&run, 106_000);
        assert!(nodes.len() <= 2 * 17 + 2, "{}", nodes.len());
        assert_eq!(proof_length(106_000), 17);
        assert_eq!(proof_length(1), 0);
        assert_eq!(proof_length(2), 1);
    }
}
