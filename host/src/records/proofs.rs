//! What the log serves to verifiers: tiles, entries and proofs, each
//! bounded by the tree's size (nothing past it is ever read or served).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;

use super::merkle::{self, Hash};
use super::{RecordError, Records, chain, tree};

/// Hashes per tile row, and levels per tile (C2SP tlog-tiles: height 8).
pub const TILE_WIDTH: u64 = 256;
pub const TILE_HEIGHT: u32 = 8;

/// A stored entry as verifiers read it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntryView {
    pub index: u64,
    /// base64 of the entry bytes the leaf hashes.
    pub entry: String,
    #[schema(value_type = Object)]
    pub decoded: chain::Chained,
}

/// `GET /v1/decisions/{id}/proof`: a decision's entry, its inclusion
/// proof and a signed checkpoint that covers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DecisionProof {
    pub index: u64,
    pub leaf_hash: String,
    pub checkpoint: String,
    pub inclusion: Inclusion,
    /// base64 of the entry bytes (their leaf hash is `leaf_hash`), and
    /// the entry decoded: it names the decision.
    pub entry: String,
    #[schema(value_type = Object)]
    pub decoded: chain::Chained,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Inclusion {
    pub size: u64,
    pub hashes: Vec<String>,
}

fn b64(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h)).collect()
}

fn bad(path: &str, message: String) -> RecordError {
    RecordError::invalid(path, message)
}

impl Records {
    /// Entries in the log: the tree's size.
    pub async fn tree_size(&self) -> Result<u64, RecordError> {
        Ok(chain::head(&self.store.pool).await?.0 as u64)
    }

    /// RFC 9162 inclusion proof of entry `index` in the tree of `size`.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<String>, RecordError> {
        let tree_size = self.tree_size().await?;
        if size > tree_size {
            return Err(RecordError::NotFound(format!(
                "size {size} is beyond the tree, which holds {tree_size} entries"
            )));
        }
        if index >= size {
            return Err(bad(
                "/index",
                format!("index {index} is not below size {size}"),
            ));
        }
        let hashes = tree::compute(&self.store.pool, &merkle::inclusion_plan(index, size)).await?;
        Ok(b64(&hashes))
    }

    /// RFC 9162 consistency proof from the tree of `from` to that of `to`.
    pub async fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<String>, RecordError> {
        let tree_size = self.tree_size().await?;
        if to > tree_size {
            return Err(RecordError::NotFound(format!(
                "to {to} is beyond the tree, which holds {tree_size} entries"
            )));
        }
        if from == 0 {
            return Err(bad("/from", "from must be at least 1".into()));
        }
        if from > to {
            return Err(bad("/from", format!("from {from} is larger than to {to}")));
        }
        let hashes = tree::compute(&self.store.pool, &merkle::consistency_plan(from, to)).await?;
        Ok(b64(&hashes))
    }

    /// The tree's root at `size` (not beyond the tree).
    pub async fn tree_root(&self, size: u64) -> Result<Hash, RecordError> {
        Ok(tree::root(&self.store.pool, size).await?)
    }

    /// The hashes of tile `level`/`index` of `width` (C2SP tlog-tiles):
    /// the tree's level `8 * level` nodes `index * 256 ..+ width`, each
    /// 32 bytes. Not found unless every one is complete in today's tree.
    pub async fn tile(&self, level: u32, index: u64, width: u64) -> Result<Vec<u8>, RecordError> {
        let tree_size = self.tree_size().await?;
        let node_level = level * TILE_HEIGHT;
        let end = index
            .checked_mul(TILE_WIDTH)
            .and_then(|n| n.checked_add(width))
            .filter(|_| node_level < 64);
        let within = end
            .and_then(|e| e.checked_shl(node_level).filter(|v| v >> node_level == e))
            .is_some_and(|leaves| leaves <= tree_size);
        let Some(end) = end.filter(|_| within) else {
            return Err(RecordError::NotFound(format!(
                "tile {level}/{index} of width {width} is beyond the tree, which holds {tree_size} entries"
            )));
        };
        let hashes = tree::range(&self.store.pool, node_level, end - width, end).await?;
        Ok(hashes.concat())
    }

    /// Entry bundle `index` of `width` (C2SP tlog-tiles): each entry's
    /// bytes after its length as a big-endian u16.
    pub async fn entry_bundle(&self, index: u64, width: u64) -> Result<Vec<u8>, RecordError> {
        let tree_size = self.tree_size().await?;
        let end = index
            .checked_mul(TILE_WIDTH)
            .and_then(|n| n.checked_add(width));
        let Some(end) = end.filter(|e| *e <= tree_size) else {
            return Err(RecordError::NotFound(format!(
                "entry bundle {index} of width {width} is beyond the tree, which holds {tree_size} entries"
            )));
        };
        let entries = self.entries_between(end - width, end).await?;
        let mut out = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let bytes = chain::entry_bytes(e.seq, &e.entry, &e.prev_hash);
            let Ok(len) = u16::try_from(bytes.len()) else {
                return Err(RecordError::invalid(
                    "/entries",
                    format!(
                        "entry {} is {} bytes, more than an entry bundle holds (65535): read it at /v1/log/entries/{}",
                        end - width + i as u64,
                        bytes.len(),
                        end - width + i as u64
                    ),
                ));
            };
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Entries `[from, to)` (0-based), as stored.
    async fn entries_between(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<chain::Chained>, RecordError> {
        let rows = sqlx::query(&format!(
            "{} WHERE seq > $1 AND seq <= $2 ORDER BY seq",
            chain::SELECT
        ))
        .bind(from as i64)
        .bind(to as i64)
        .fetch_all(&self.store.pool)
        .await?;
        let entries = rows
            .iter()
            .map(chain::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if entries.len() as u64 != to - from {
            return Err(RecordError::Store(super::StoreError::Corrupt(format!(
                "decision_log: entries {from}..{to} are not all stored"
            ))));
        }
        Ok(entries)
    }

    /// Entry `index` (0-based), not beyond the tree.
    pub async fn log_entry(&self, index: u64) -> Result<EntryView, RecordError> {
        let tree_size = self.tree_size().await?;
        if index >= tree_size {
            return Err(RecordError::NotFound(format!(
                "entry {index} is beyond the tree, which holds {tree_size} entries"
            )));
        }
        let c = self
            .entries_between(index, index + 1)
            .await?
            .pop()
            .ok_or_else(|| RecordError::NotFound(format!("entry {index}")))?;
        Ok(EntryView {
            index,
            entry: B64.encode(chain::entry_bytes(c.seq, &c.entry, &c.prev_hash)),
            decoded: c,
        })
    }

    /// A decision's proof of inclusion under a signed checkpoint.
    pub async fn decision_proof(&self, id: &str) -> Result<DecisionProof, RecordError> {
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT seq FROM decision_log WHERE decision_id = $1 AND record_table IS NULL ORDER BY seq LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&self.store.pool)
        .await?
        .ok_or_else(|| RecordError::NotFound(format!("no decision '{id}' in the log")))?;
        let seq: i64 = row.try_get("seq")?;
        let index = (seq - 1) as u64;
        let (size, note) = self.checkpoint_covering(seq).await?.ok_or_else(|| {
            RecordError::NotFound(
                "checkpoints are not signed: configure records.checkpoint_key".into(),
            )
        })?;
        let size = size as u64;
        let hashes = tree::compute(&self.store.pool, &merkle::inclusion_plan(index, size)).await?;
        let view = self.log_entry(index).await?;
        let bytes = chain::entry_bytes(
            view.decoded.seq,
            &view.decoded.entry,
            &view.decoded.prev_hash,
        );
        Ok(DecisionProof {
            index,
            leaf_hash: B64.encode(merkle::leaf_hash(&bytes)),
            checkpoint: note,
            inclusion: Inclusion {
                size,
                hashes: b64(&hashes),
            },
            entry: view.entry,
            decoded: view.decoded,
        })
    }
}
