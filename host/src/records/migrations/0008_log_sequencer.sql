-- One sequencer per PostgreSQL log (docs/log.md, "Replicas"): the replica
-- holding this lease appends to the log; the others queue their entries
-- in log_queue for it. SQLite has one process and never uses either.
CREATE TABLE log_sequencer (
    id BIGINT PRIMARY KEY,
    holder TEXT,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
INSERT INTO log_sequencer (id, holder, epoch, expires_at) VALUES (1, NULL, 0, 0);

-- Entries waiting for the sequencer, oldest first: `entry` is the entry as
-- JSON, `replica` the holder id of the replica that queued it (which waits
-- for it). A row is deleted in the transaction that appends its entry.
CREATE TABLE log_queue (
    id BIGINT PRIMARY KEY,
    replica TEXT NOT NULL,
    entry TEXT NOT NULL
);
CREATE INDEX log_queue_replica ON log_queue(replica, id);
