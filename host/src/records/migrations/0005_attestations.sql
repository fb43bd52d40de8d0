-- Attested evidence and decision receipts (records/attestations.rs).
--
-- A release's attestations are kept verbatim (the DSSE envelope as the
-- caller sent it), with what stagegate read from them: the key that signed,
-- the predicate type, the statement's digest and where in the release's
-- evidence it was mapped. Receipts are the DSSE envelopes stagegate signs
-- for its `allow` and `promote` decisions, by decision id. Both are
-- committed to the chain like every other record row.
CREATE TABLE attestations (
    id TEXT PRIMARY KEY,
    release_id TEXT NOT NULL REFERENCES releases(id),
    position BIGINT NOT NULL,
    keyid TEXT NOT NULL,
    predicate_type TEXT NOT NULL,
    statement_digest TEXT NOT NULL,
    envelope_digest TEXT NOT NULL,
    envelope TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX attestations_release ON attestations(release_id, position);

CREATE TABLE receipts (
    decision_id TEXT PRIMARY KEY,
    subject_digest TEXT NOT NULL,
    release_id TEXT,
    deployment_id TEXT,
    keyid TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    envelope TEXT NOT NULL
);
CREATE INDEX receipts_subject ON receipts(subject_digest, created_at);
