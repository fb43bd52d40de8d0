-- Every record in the chain: a decision log entry may commit to a record
-- row (its digest in request_digest), so that an edited, inserted or
-- deleted row is found by `stagegate audit verify`. Rows written before
-- this migration are committed by it (see records/store.rs).
ALTER TABLE decision_log ADD COLUMN record_table TEXT;
ALTER TABLE decision_log ADD COLUMN record_id TEXT;
CREATE INDEX decision_log_record ON decision_log(record_table, record_id, seq);

-- Signed checkpoints of the chain head (records/checkpoint.rs), kept so
-- that the service can show the latest; auditors keep their own copies
-- outside the database.
CREATE TABLE checkpoints (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    at BIGINT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX checkpoints_seq ON checkpoints(seq);
