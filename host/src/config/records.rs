//! `[records]` (the database and the decision log) and `[scheduler]`
//! (scheduled monitoring of active deployments).

use std::path::PathBuf;

use serde::Deserialize;

/// Deployment records and the decision log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordsConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; default
    /// `sqlite://DATA_DIR/stagegate.db`.
    pub database: Option<String>,
    /// Log stateless decisions (`POST /v1/decisions/*`). Decisions about
    /// recorded deployments are always logged.
    pub log_decisions: bool,
    /// Keep each decision's request body in the decision log (its digest
    /// is always kept).
    pub log_requests: bool,
    /// `ack`: answer a decision after its log entry is committed;
    /// `queued`: once it is queued.
    pub durability: crate::records::Durability,
    /// Log entries waiting to be written before decisions wait (backpressure).
    pub queue: usize,
    /// Ed25519 key that signs checkpoints of the decision log's head
    /// (`stagegate keygen` format); created on first start when the file
    /// does not exist. Default `DATA_DIR/log/checkpoint` (not beside the
    /// bundle trust store: this key must never be trusted to sign bundles).
    pub checkpoint_key: Option<PathBuf>,
    /// Sign a checkpoint this often when the log moved (0: only on demand,
    /// `GET /v1/log/checkpoint`).
    pub checkpoint_interval_ms: u64,
    /// `GET /v1/log/checkpoint` signs a new checkpoint when the log moved
    /// and the newest one is older than this; otherwise it serves the
    /// newest (docs/log.md).
    pub checkpoint_max_age_ms: u64,
    /// The log's name in its checkpoints.
    pub checkpoint_origin: String,
    /// How far past the service's clock an observation's `window_end` may
    /// be before the observation is refused (clock skew of metric
    /// pipelines).
    pub max_clock_skew_ms: u64,
    /// On PostgreSQL, one replica at a time appends to the decision log
    /// (the sequencer) and the others queue their entries for it: how
    /// long its lease lasts without renewal (renewed every quarter), so
    /// how soon another replica takes over from a dead one.
    pub sequencer_lease_ms: u64,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            database: None,
            log_decisions: true,
            log_requests: false,
            durability: crate::records::Durability::Ack,
            queue: 8192,
            checkpoint_key: None,
            checkpoint_interval_ms: 60_000,
            checkpoint_max_age_ms: 1000,
            checkpoint_origin: "stagegate/decision-log".into(),
            max_clock_skew_ms: 300_000,
            sequencer_lease_ms: 10_000,
        }
    }
}

/// Scheduled monitoring of active deployments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    pub enabled: bool,
    /// Between evaluations during a deployment's intensive period.
    pub intensive_interval_ms: u64,
    /// Between evaluations after it.
    pub interval_ms: u64,
    /// How often this replica looks for due deployments.
    pub tick_ms: u64,
    /// How long a claim lasts: a replica that dies mid-interval is taken
    /// over once its claims expire.
    pub lease_ms: u64,
    /// This replica's name in claims and as the scheduler's actor
    /// (default: `scheduler-<random>`).
    pub replica: Option<String>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            enabled: true,
            intensive_interval_ms: 60_000,
            interval_ms: 900_000,
            tick_ms: 1_000,
            lease_ms: 30_000,
            replica: None,
        }
    }
}
