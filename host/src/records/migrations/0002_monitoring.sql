-- Scheduled monitoring and escalation webhooks.

-- When each active deployment is next evaluated, and which replica holds
-- it. A claim is a lease: a replica that dies mid-interval loses its
-- claims when `claimed_until` passes, and another takes them over.
CREATE TABLE monitor_schedule (
    deployment_id TEXT PRIMARY KEY REFERENCES deployments(id),
    next_due BIGINT NOT NULL,
    intensive_until BIGINT NOT NULL,
    claimed_by TEXT,
    claimed_until BIGINT
);
CREATE INDEX monitor_schedule_due ON monitor_schedule(next_due);

-- The escalation outbox: written in the same transaction as the event it
-- reports, delivered in order per stream (deployment, or system for gate
-- denials) and receiver, retried until delivered, never deleted.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    stream TEXT NOT NULL,
    seq BIGINT NOT NULL,
    system_id TEXT NOT NULL,
    deployment_id TEXT,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    claimed_by TEXT,
    claimed_until BIGINT,
    UNIQUE (stream, url, seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_deployment ON webhook_deliveries(deployment_id);
