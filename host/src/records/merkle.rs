//! The decision log's Merkle tree: RFC 6962 hashing (RFC 9162 §2.1),
//! inclusion and consistency proofs, and their verification.
//!
//! Written here rather than taken from the `tlog_tiles` crate: the tree
//! lives in SQL and is read asynchronously, so a proof is planned first
//! (which complete subtrees it needs), fetched in one query, then
//! computed; the crate's synchronous `HashReader` does not fit that, and
//! the algorithms are short and checked by an independent verifier in
//! the tests (`tests/tlog_verify.py`). See docs/log.md.
//!
//! Every hash is built from *complete* subtrees ([`Node`]): the subtree
//! of `2^level` leaves starting at leaf `index << level`. Those never
//! change once their last leaf is appended, so they are stored once and
//! any tree size's root, or proof, is a fold over a few of them.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// SHA-256(0x00 ‖ entry): the hash of a leaf.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// SHA-256(0x01 ‖ left ‖ right): the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A complete subtree: `2^level` leaves from leaf `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    pub level: u32,
    pub index: u64,
}

/// The largest power of two smaller than `n` (`n > 1`).
fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    1 << (63 - (n - 1).leading_zeros())
}

/// The complete subtrees, left to right, whose fold is the hash of the
/// leaves `[start, end)` as RFC 6962 splits them (`start` aligned as the
/// recursion leaves it).
pub fn decompose(mut start: u64, end: u64) -> Vec<Node> {
    let mut out = Vec::new();
    while start < end {
        let n = end - start;
        let k = if n.is_power_of_two() { n } else { split(n) };
        let level = k.trailing_zeros();
        out.push(Node {
            level,
            index: start >> level,
        });
        start += k;
    }
    out
}

/// The complete subtrees a tree of `size` leaves ends with (its "right
/// edge"): what an append needs to hash the next nodes.
pub fn frontier(size: u64) -> Vec<Node> {
    decompose(0, size)
}

/// Folds the hashes of [`decompose`]'s nodes into the range's hash.
fn fold(nodes: &[Node], known: &HashMap<Node, Hash>) -> Result<Hash, Node> {
    let mut it = nodes.iter().rev();
    let Some(last) = it.next() else {
        return Ok(empty_root());
    };
    let mut h = *known.get(last).ok_or(*last)?;
    for n in it {
        h = node_hash(known.get(n).ok_or(*n)?, &h);
    }
    Ok(h)
}

/// A proof or root to compute: the leaf ranges whose hashes it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub ranges: Vec<(u64, u64)>,
}

impl Plan {
    /// The complete subtrees the plan needs, each once.
    pub fn nodes(&self) -> Vec<Node> {
        let mut out: Vec<Node> = self
            .ranges
            .iter()
            .flat_map(|(a, b)| decompose(*a, *b))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The ranges' hashes, given the nodes' (`Err`: a missing node).
    pub fn hashes(&self, known: &HashMap<Node, Hash>) -> Result<Vec<Hash>, Node> {
        self.ranges
            .iter()
            .map(|(a, b)| fold(&decompose(*a, *b), known))
            .collect()
    }
}

/// The root of a tree of `size` leaves.
pub fn root_plan(size: u64) -> Plan {
    Plan {
        ranges: vec![(0, size)],
    }
}

/// RFC 9162 §2.1.3.1 PATH(index, D[0:size]), leaf to root
/// (`index < size`).
pub fn inclusion_plan(index: u64, size: u64) -> Plan {
    fn path(m: u64, start: u64, end: u64, out: &mut Vec<(u64, u64)>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            path(m, start, start + k, out);
            out.push((start + k, end));
        } else {
            path(m - k, start + k, end, out);
            out.push((start, start + k));
        }
    }
    let mut ranges = Vec::new();
    path(index, 0, size, &mut ranges);
    Plan { ranges }
}

/// RFC 9162 §2.1.4.1 PROOF(from, D[0:to]) (`0 < from <= to`).
pub fn consistency_plan(from: u64, to: u64) -> Plan {
    fn sub(m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<(u64, u64)>) {
        let n = end - start;
        if m == n {
            if !whole {
                out.push((start, end));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            sub(m, start, start + k, whole, out);
            out.push((start + k, end));
        } else {
            sub(m - k, start + k, end, false, out);
            out.push((start, start + k));
        }
    }
    let mut ranges = Vec::new();
    if from > 0 && from < to {
        sub(from, 0, to, true, &mut ranges);
    }
    Plan { ranges }
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("index {index} is outside a tree of {size} entries")]
    OutOfRange { index: u64, size: u64 },
    #[error("the proof has the wrong number of hashes for its sizes")]
    WrongLength,
    #[error("the proof does not lead to the checkpoint's root hash")]
    RootMismatch,
    #[error("the proof does not lead to the earlier checkpoint's root hash")]
    FirstRootMismatch,
    #[error("a consistency proof needs 0 < from <= to, got from {from} to {to}")]
    BadSizes { from: u64, to: u64 },
}

/// RFC 9162 §2.1.3.2: checks that `leaf` is entry `index` of the tree of
/// `size` entries whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: checks that the tree of `to` entries with root
/// `second` extends the tree of `from` entries with root `first`.
pub fn verify_consistency(
    from: u64,
    to: u64,
    first: &Hash,
    second: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if from > to {
        return Err(ProofError::BadSizes { from, to });
    }
    if from == to {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if first == second {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if from == 0 {
        // Every tree extends the empty one.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*first);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (from - 1, to - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != first {
        return Err(ProofError::FirstRootMismatch);
    }
    if &sr != second {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The complete subtrees that appending `leaves` to a tree of `size`
/// leaves creates, given its [`frontier`]'s hashes: the leaves
/// themselves, and each interior node whose last leaf is among them.
pub fn append(
    size: u64,
    frontier: &HashMap<Node, Hash>,
    leaves: &[Hash],
) -> Result<Vec<(Node, Hash)>, Node> {
    let mut made: HashMap<Node, Hash> = HashMap::new();
    let mut out = Vec::with_capacity(leaves.len() * 2);
    for (i, leaf) in leaves.iter().enumerate() {
        let mut node = Node {
            level: 0,
            index: size + i as u64,
        };
        let mut h = *leaf;
        made.insert(node, h);
        out.push((node, h));
        while node.index & 1 == 1 {
            let left = Node {
                level: node.level,
                index: node.index - 1,
            };
            let l = made
                .get(&left)
                .or_else(|| frontier.get(&left))
                .ok_or(left)?;
            h = node_hash(l, &h);
            node = Node {
                level: node.level + 1,
                index: node.index >> 1,
            };
            made.insert(node, h);
            out.push((node, h));
        }
    }
    Ok(out)
}

/// The [`frontier`] of the tree of `size` leaves made by an append to a
/// tree whose frontier was `before`, given the subtrees the append `made`.
/// Every node of the new frontier is one of the two, so a writer that
/// keeps the frontier never reads it back from the database.
pub fn frontier_after(
    size: u64,
    before: &HashMap<Node, Hash>,
    made: &[(Node, Hash)],
) -> HashMap<Node, Hash> {
    let wanted = frontier(size);
    let mut out = HashMap::with_capacity(wanted.len());
    for n in wanted {
        if let Some(h) = made
            .iter()
            .rev()
            .find(|(m, _)| *m == n)
            .map(|(_, h)| h)
            .or_else(|| before.get(&n))
        {
            out.insert(n, *h);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH straight from RFC 9162 §2.1.1, recursively over the leaves.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// Every complete subtree of `leaves`, built by appending in uneven
    /// batches.
    fn stored(leaves: &[Hash]) -> HashMap<Node, Hash> {
        let mut all = HashMap::new();
        let mut size = 0u64;
        for chunk in leaves.chunks(3).flat_map(|c| [&c[..1], &c[1..]]) {
            let f: HashMap<Node, Hash> = frontier(size).into_iter().map(|n| (n, all[&n])).collect();
            for (n, h) in append(size, &f, chunk).unwrap() {
                all.insert(n, h);
            }
            size += chunk.len() as u64;
        }
        all
    }

    #[test]
    fn roots_from_stored_subtrees_match_the_rfc_definition() {
        let l = leaves(70);
        let all = stored(&l);
        for size in 0..=70u64 {
            let root = root_plan(size).hashes(&all).unwrap()[0];
            assert_eq!(root, mth(&l[..size as usize]), "size {size}");
        }
    }

    #[test]
    fn inclusion_proofs_verify_and_fail_for_another_leaf_or_position() {
        let l = leaves(45);
        let all = stored(&l);
        for size in 1..=45u64 {
            let root = mth(&l[..size as usize]);
            for index in 0..size {
                let proof = inclusion_plan(index, size).hashes(&all).unwrap();
                verify_inclusion(index, size, &l[index as usize], &proof, &root).unwrap();
                let other = leaf_hash(b"other");
                assert!(verify_inclusion(index, size, &other, &proof, &root).is_err());
                if size > 1 {
                    let elsewhere = (index + 1) % size;
                    assert!(
                        verify_inclusion(elsewhere, size, &l[index as usize], &proof, &root)
                            .is_err(),
                        "{index} {size}"
                    );
                }
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_between_every_pair_of_sizes() {
        let l = leaves(40);
        let all = stored(&l);
        for to in 1..=40u64 {
            let second = mth(&l[..to as usize]);
            for from in 1..=to {
                let first = mth(&l[..from as usize]);
                let proof = consistency_plan(from, to).hashes(&all).unwrap();
                verify_consistency(from, to, &first, &second, &proof)
                    .unwrap_or_else(|e| panic!("{from}->{to}: {e}"));
                if from < to {
                    let forged = leaf_hash(b"forged");
                    assert!(verify_consistency(from, to, &forged, &second, &proof).is_err());
                }
            }
        }
    }

    #[test]
    fn a_kept_frontier_equals_the_one_read_from_every_subtree() {
        let l = leaves(300);
        let mut all = HashMap::new();
        let mut kept: HashMap<Node, Hash> = HashMap::new();
        let mut size = 0u64;
        for n in [1usize, 2, 3, 64, 5, 1, 100, 7, 117] {
            let batch = &l[size as usize..size as usize + n];
            let made = append(size, &kept, batch).unwrap();
            for (node, h) in &made {
                all.insert(*node, *h);
            }
            size += n as u64;
            kept = frontier_after(size, &kept, &made);
            let read: HashMap<Node, Hash> =
                frontier(size).into_iter().map(|n| (n, all[&n])).collect();
            assert_eq!(kept, read, "size {size}");
        }
        assert_eq!(size, 300);
    }

    #[test]
    fn the_rfc_example_proof_sizes_hold() {
        // RFC 9162 §2.1.5: the tree of 7 leaves; inclusion of d0 has 3
        // hashes, consistency 3 -> 7 has 4 (c, d, g, l), 4 -> 7 has 1 (l).
        assert_eq!(inclusion_plan(0, 7).ranges.len(), 3);
        assert_eq!(consistency_plan(3, 7).ranges.len(), 4);
        assert_eq!(consistency_plan(4, 7).ranges, vec![(4, 7)]);
        assert_eq!(consistency_plan(6, 7).ranges.len(), 3);
    }
}
