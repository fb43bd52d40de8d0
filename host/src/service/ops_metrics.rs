//! Metrics of the service's background work, for the alert rules in
//! `deploy/prometheus/rules.yml` (docs/deploy.md, "Alerts"): the
//! decision log's checkpoints, the monitoring scheduler's lag and leases,
//! and the exposure route table's freshness. Each is set by the code that
//! knows the value.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Registered beside [`super::metrics::Metrics`], in the same registry.
pub struct OpsMetrics {
    checkpoint_size: Gauge,
    checkpoint_timestamp: Gauge,
    scheduler_lag: Gauge<f64, AtomicU64>,
    scheduler_last_pass: Gauge,
    leases_lost: Counter,
    exposure_refreshed: Gauge,
    sequencer: Gauge,
    sequencer_leases_lost: Counter,
}

impl OpsMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let checkpoint_size = Gauge::default();
        registry.register(
            "log_checkpoint_size",
            "Entries in the decision log at its latest checkpoint signed by this replica",
            checkpoint_size.clone(),
        );
        let checkpoint_timestamp = Gauge::default();
        registry.register(
            "log_checkpoint_timestamp_seconds",
            "When this replica last signed a checkpoint of the decision log, Unix seconds (0: not yet)",
            checkpoint_timestamp.clone(),
        );
        let scheduler_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "scheduler_lag_seconds",
            "How late the monitoring scheduler's last pass started the most overdue evaluation it claimed (0 when none was overdue)",
            scheduler_lag.clone(),
        );
        let scheduler_last_pass = Gauge::default();
        registry.register(
            "scheduler_last_pass_timestamp_seconds",
            "When this replica's monitoring scheduler last finished a pass, Unix seconds (0: scheduler off or no pass yet)",
            scheduler_last_pass.clone(),
        );
        let leases_lost = Counter::default();
        registry.register(
            "scheduler_leases_lost",
            "Scheduled evaluations whose lease expired before this replica completed them (another replica may evaluate the deployment again)",
            leases_lost.clone(),
        );
        let exposure_refreshed = Gauge::default();
        registry.register(
            "exposure_table_refresh_timestamp_seconds",
            "When the exposure route table was last refreshed from the records, Unix seconds",
            exposure_refreshed.clone(),
        );
        let sequencer = Gauge::default();
        registry.register(
            "log_sequencer",
            "1 while this replica holds the decision log's sequencer lease (PostgreSQL: the one replica that appends), else 0",
            sequencer.clone(),
        );
        let sequencer_leases_lost = Counter::default();
        registry.register(
            "log_sequencer_leases_lost",
            "Times this replica lost the decision log's sequencer lease (to another replica, or by failing to renew it in time)",
            sequencer_leases_lost.clone(),
        );
        OpsMetrics {
            checkpoint_size,
            checkpoint_timestamp,
            scheduler_lag,
            scheduler_last_pass,
            leases_lost,
            exposure_refreshed,
            sequencer,
            sequencer_leases_lost,
        }
    }

    /// The sequencer lease changed hands: whether this replica holds it,
    /// and how many times it lost it so far.
    pub fn sequencer(&self, held: bool, lost: u64) {
        self.sequencer.set(i64::from(held));
        let counted = self.sequencer_leases_lost.get();
        if lost > counted {
            self.sequencer_leases_lost.inc_by(lost - counted);
        }
    }

    /// A checkpoint was signed: its log size and time (Unix seconds).
    pub fn checkpoint_signed(&self, size: i64, unix_seconds: i64) {
        self.checkpoint_size.set(size);
        self.checkpoint_timestamp.set(unix_seconds);
    }

    /// A scheduler pass ended; `lag_seconds` is how overdue its most
    /// overdue evaluation was.
    pub fn scheduler_pass(&self, lag_seconds: f64, unix_seconds: i64) {
        self.scheduler_lag.set(lag_seconds.max(0.0));
        self.scheduler_last_pass.set(unix_seconds);
    }

    pub fn lease_lost(&self) {
        self.leases_lost.inc();
    }

    pub fn exposure_refreshed(&self, unix_seconds: i64) {
        self.exposure_refreshed.set(unix_seconds);
    }
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    crate::decision::Timestamp::now().millis() / 1000
}
