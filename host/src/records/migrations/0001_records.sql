-- stagegate records, portable between SQLite and PostgreSQL: TEXT, BIGINT,
-- DOUBLE PRECISION and BOOLEAN only; ids are assigned by the service (ULIDs),
-- times are milliseconds since the Unix epoch, documents are JSON text.

CREATE TABLE systems (
    id TEXT PRIMARY KEY,
    risk_tier TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE releases (
    id TEXT PRIMARY KEY,
    system_id TEXT NOT NULL REFERENCES systems(id),
    version TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX releases_system ON releases(system_id);

-- Authorisations, risk acceptances and reviews are facts with an author:
-- the author always comes from the caller's token, never from the body.
CREATE TABLE authorisations (
    id TEXT PRIMARY KEY,
    release_id TEXT NOT NULL REFERENCES releases(id),
    deployment_id TEXT,
    authorised_by TEXT NOT NULL,
    role TEXT NOT NULL,
    authorised_at BIGINT NOT NULL,
    expires_at BIGINT,
    doc TEXT NOT NULL
);
CREATE INDEX authorisations_release ON authorisations(release_id, deployment_id);

CREATE TABLE acceptances (
    id TEXT PRIMARY KEY,
    release_id TEXT NOT NULL REFERENCES releases(id),
    deficiency_id TEXT NOT NULL,
    accepted_by TEXT NOT NULL,
    accepted_at BIGINT NOT NULL,
    expires_at BIGINT,
    doc TEXT NOT NULL
);
CREATE INDEX acceptances_release ON acceptances(release_id);

CREATE TABLE reviews (
    id TEXT PRIMARY KEY,
    release_id TEXT NOT NULL REFERENCES releases(id),
    deployment_id TEXT,
    reviewer TEXT NOT NULL,
    completed_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX reviews_release ON reviews(release_id, deployment_id);

CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    release_id TEXT NOT NULL REFERENCES releases(id),
    system_id TEXT NOT NULL REFERENCES systems(id),
    plan TEXT NOT NULL,
    status TEXT NOT NULL,
    stage TEXT NOT NULL,
    traffic_percent DOUBLE PRECISION NOT NULL,
    stage_entered_at BIGINT NOT NULL,
    deployed_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX deployments_system ON deployments(system_id);

-- Every change of a deployment's state, with who and why; `decision_id`
-- links the policy decision that allowed it.
CREATE TABLE deployment_events (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    stage TEXT NOT NULL,
    traffic_percent DOUBLE PRECISION NOT NULL,
    decision_id TEXT,
    reason TEXT,
    doc TEXT NOT NULL,
    UNIQUE (deployment_id, seq)
);

CREATE TABLE observations (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    metric TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    samples BIGINT,
    window_end BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    actor TEXT NOT NULL
);
CREATE INDEX observations_deployment ON observations(deployment_id, metric, window_end);

CREATE TABLE material_issues (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    issue_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX material_issues_deployment ON material_issues(deployment_id, issue_id);

-- The decision log: an append-only hash chain. Each entry's hash commits to
-- its fields and to the previous entry's hash.
CREATE TABLE decision_log (
    seq BIGINT PRIMARY KEY,
    decision_id TEXT NOT NULL UNIQUE,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    codes TEXT NOT NULL,
    bundle TEXT NOT NULL,
    bundle_version TEXT NOT NULL,
    bundle_digest TEXT NOT NULL,
    request_digest TEXT NOT NULL,
    request TEXT,
    deployment_id TEXT,
    actor TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX decision_log_deployment ON decision_log(deployment_id);

CREATE TABLE chain_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, 'genesis');

CREATE TABLE idempotency (
    actor TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (actor, idem_key)
);
