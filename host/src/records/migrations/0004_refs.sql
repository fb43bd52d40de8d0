-- External references on deployments (records/refs.rs): the workload,
-- Rollout, Canary or InferenceService that serves a release, so rollout
-- controllers that can send only a name find the deployment.

-- The refs as the caller gave them, a JSON object; part of the row the
-- chain commits to (the migration re-commits every deployment row).
ALTER TABLE deployments ADD COLUMN refs TEXT;

-- One row per (ref, deployment): the index a ref is resolved through.
-- Derived from deployments.refs in the same transaction; the deployment
-- found is checked against its own sealed refs.
CREATE TABLE deployment_refs (
    ref_key TEXT NOT NULL,
    ref_value TEXT NOT NULL,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    deployed_at BIGINT NOT NULL,
    PRIMARY KEY (ref_key, ref_value, deployment_id)
);
CREATE INDEX deployment_refs_newest ON deployment_refs(ref_key, ref_value, deployed_at);

-- Read-only evaluations are decisions that change no state: their log
-- entries say so (1), so an auditor tells them from transitions.
ALTER TABLE decision_log ADD COLUMN read_only BIGINT;
