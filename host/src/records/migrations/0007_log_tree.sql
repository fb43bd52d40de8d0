-- The decision log as an RFC 6962 Merkle tree (docs/log.md): every
-- complete subtree's hash, once. Level 0 holds the leaf hashes (leaf idx =
-- log seq - 1); level l holds the subtrees of 2^l leaves. Rows are only
-- ever inserted: a complete subtree never changes. Existing logs are
-- hashed in order by this migration.
CREATE TABLE log_tree (
    level BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);

-- Checkpoints signed before this migration carry the hash chain's head
-- where the root hash goes; only those marked here carry a Merkle root,
-- and only those are served or checked against.
ALTER TABLE checkpoints ADD COLUMN merkle BIGINT;
