//! Deployment records: stagegate as the system of record for who
//! authorised what, which stage a deployment is in and why it moved, and
//! what monitoring saw (ISO/IEC 42001 A.6.2.8 documentation).
//!
//! - [`model`]: the typed vocabulary — systems, releases, evidence,
//!   deployments, their status and history;
//! - [`store`]: SQLite or PostgreSQL, one schema, embedded migrations;
//! - [`chain`], [`ledger`], [`log`] and [`checkpoint`]: the hash-chained
//!   decision log that also commits to every record row, its batched
//!   writer, and signed checkpoints of its head;
//! - [`merkle`], [`tree`], [`proofs`], [`last`], [`witness`]: the same log
//!   as an RFC 6962 Merkle tree: its hashing and proofs, its storage, the
//!   tiles and proofs it serves, the last checkpoint kept outside the
//!   database so a rewound log is never signed, and witnesses'
//!   cosignatures (docs/log.md); [`inclusion`]: a set of entries (a
//!   deployment's) proved by inclusion in the newest signed checkpoint;
//! - [`evidence`]: systems, releases, reviews, authorisations, acceptances;
//! - [`attestations`]: a release's verified attestations, and the signed
//!   receipts of `allow` and `promote` decisions;
//! - [`assemble`]: decision requests built from the records;
//! - [`deployments`] and [`transitions`]: reading deployments, and the
//!   lifecycle in which every transition is decided by the policy;
//! - [`refs`]: external references (`kubernetes: NAMESPACE/NAME`) that
//!   rollout controllers find deployments by;
//! - [`evaluations`]: read-only evaluations, the policy asked about a
//!   deployment's records without changing them (what adapters build on);
//! - [`schedule`], [`webhooks`]: monitoring from the first minute, and
//!   escalations;
//! - [`export`]: one document per deployment for auditors, and
//!   [`oscal`]: the same record as OSCAL assessment results.
//! - [`console`]: the read queries of the auditor's console.
//!
//! Records never see HTTP: they take typed inputs ([`model`]) and return
//! typed results or a [`RecordError`]; the routes choose status codes.

pub(crate) mod assemble;
pub mod attestations;
pub mod chain;
pub mod checkpoint;
pub mod console;
pub(crate) mod deployments;
pub mod destinations;
mod error;
mod evaluations;
pub(crate) mod evidence;
pub(crate) mod export;
pub mod exposure;
pub(crate) mod idempotency;
pub mod inclusion;
pub mod last;
pub mod leaves;
pub(crate) mod ledger;
mod log;
pub mod merkle;
mod migrations;
pub mod model;
mod notice;
pub mod oscal;
pub mod proofs;
mod receipts;
pub mod refs;
mod reports;
pub mod schedule;
mod sequencer;
mod signing;
mod statements;
pub mod store;
pub(crate) mod transitions;
pub mod tree;
pub mod webhooks;
pub mod witness;
mod write;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub use error::RecordError;
pub use evaluations::Evaluation;
pub use log::{DecisionLog, Durability, LogError, warn_unless_durable};
pub use model::{Actor, DeploymentStatus, Route};
pub use receipts::{ReceiptStatus, StoredReceipt, verify_gate_attestations};
pub use refs::DeploymentSelector;
pub use store::{Store, StoreError};
pub use transitions::Intervention;

use crate::decision::{Envelope, Request, Timestamp};
use crate::policy::Decided;

/// How the records ask a policy: the service's one decision pipeline (the
/// bundle's lane with its deadline, metrics, logs and the fail-closed
/// contract). Deployment transitions call it while they hold the chain
/// lock; the pipeline's deadline bounds how long.
pub trait Decide: Sync {
    fn decide(&self, request: Request, actor: &str) -> impl Future<Output = Decided> + Send;
}

/// How long a cached route is served before it is re-read; bounds how
/// stale another replica's change can look.
pub const ROUTE_TTL: Duration = Duration::from_secs(1);

/// The key that signs checkpoints of the chain head, and the log's name.
#[derive(Clone)]
pub struct CheckpointSigner {
    pub key: ed25519_dalek::SigningKey,
    pub origin: String,
    /// Where the last signed checkpoint is kept, outside the database
    /// ([`last`]).
    pub last: std::path::PathBuf,
    /// Sign on read when the log moved and the newest checkpoint is older.
    pub max_age_ms: u64,
}

/// The records service: the store, the decision log and the route cache.
#[derive(Clone)]
pub struct Records {
    /// Private: SQL lives in this module (docs/architecture.md).
    store: Store,
    pub log: DecisionLog,
    /// Keep request bodies in the decision log.
    log_requests: bool,
    /// Monitoring schedule intervals.
    pub intervals: schedule::Intervals,
    routes: Arc<RwLock<HashMap<String, (Route, Instant)>>>,
    /// Woken after every committed transition, so that what serves routes
    /// from memory on this replica (the per-request exposure check)
    /// refreshes at once instead of at its next tick.
    route_changed: Arc<tokio::sync::Notify>,
    signer: Option<Arc<CheckpointSigner>>,
    /// The newest checkpoint, and whether the log still extends it.
    heads: Arc<signing::Heads>,
    /// How far past the service's clock an observation's window may end.
    clock_skew_ms: i64,
    /// Where escalation webhooks may point.
    pub destinations: destinations::Destinations,
    /// Which keys may attest a release's evidence, and to what.
    evidence: Arc<crate::attest::EvidenceTrust>,
    /// The key receipts are signed with; none: no receipts.
    receipts: Option<Arc<crate::attest::ReceiptSigner>>,
    /// Receipts signed so far, by decision id (records/receipts.rs).
    receipt_cache: Arc<receipts::Cache>,
    /// Told (log size, Unix seconds) after each checkpoint is signed: the
    /// service's metrics.
    on_checkpoint: Option<Arc<CheckpointObserver>>,
}

/// What [`Records::with_checkpoint_observer`] takes.
type CheckpointObserver = dyn Fn(i64, i64) + Send + Sync;

impl Records {
    pub fn new(
        store: Store,
        log: DecisionLog,
        log_requests: bool,
        intervals: schedule::Intervals,
    ) -> Self {
        Records {
            store,
            log,
            log_requests,
            intervals,
            routes: Arc::new(RwLock::new(HashMap::new())),
            route_changed: Arc::new(tokio::sync::Notify::new()),
            signer: None,
            heads: Default::default(),
            clock_skew_ms: transitions::DEFAULT_CLOCK_SKEW_MS,
            destinations: Default::default(),
            evidence: Default::default(),
            receipts: None,
            receipt_cache: Default::default(),
            on_checkpoint: None,
        }
    }

    /// Calls `observer(log size, Unix seconds)` after each checkpoint is
    /// signed and stored.
    pub fn with_checkpoint_observer(
        mut self,
        observer: impl Fn(i64, i64) + Send + Sync + 'static,
    ) -> Self {
        self.on_checkpoint = Some(Arc::new(observer));
        self
    }

    /// Calls `observer(holds the lease, leases lost)` whenever this
    /// replica takes or loses the decision log's sequencer lease (never
    /// without a sequencer: SQLite, or one process).
    pub fn observe_sequencer(&self, observer: impl Fn(bool, u64) + Send + Sync + 'static) {
        if let Some(s) = &self.store.sequencing {
            s.observe(Box::new(observer));
        }
    }

    /// Gives up the decision log's sequencer lease if this replica holds
    /// it (when it stops, once its requests are answered), so another
    /// replica sequences at once rather than after the lease runs out.
    pub async fn release_sequencer(&self) {
        if let Some(s) = &self.store.sequencing
            && let Err(e) = s.release().await
        {
            tracing::warn!(error = %e, "could not give up the decision log's sequencer lease; another replica takes it when it runs out");
        }
    }

    /// Records on a fresh SQLite database in `dir`, logging with the
    /// default durability and hourly-scale schedule intervals: the unit
    /// tests' records.
    #[cfg(test)]
    pub(crate) async fn in_test_dir(dir: &std::path::Path) -> Records {
        let url = format!("sqlite://{}", dir.join("r.db").display());
        let store = open_store(&url).await.unwrap();
        let log = DecisionLog::start(store.clone(), Default::default(), 16);
        let intervals = schedule::Intervals {
            intensive_ms: 60_000,
            normal_ms: 600_000,
            lease_ms: 60_000,
        };
        Records::new(store, log, false, intervals)
    }

    /// Verifies releases' attestations against `trust`.
    pub fn with_evidence(mut self, trust: crate::attest::EvidenceTrust) -> Self {
        self.evidence = Arc::new(trust);
        self
    }

    /// Signs receipts with `signer` (records/receipts.rs says which
    /// decisions have one).
    pub fn with_receipts(mut self, signer: Option<crate::attest::ReceiptSigner>) -> Self {
        self.receipts = signer.map(Arc::new);
        self
    }

    /// Allows escalation webhooks to reach the internal destinations in
    /// `destinations` (public ones are always allowed).
    pub fn with_destinations(mut self, destinations: destinations::Destinations) -> Self {
        self.destinations = destinations;
        self
    }

    /// Refuses observations whose window ends more than `ms` after the
    /// service's clock.
    pub fn with_clock_skew(mut self, ms: i64) -> Self {
        self.clock_skew_ms = ms;
        self
    }

    /// Signs checkpoints with `signer` ([`Records::checkpoint`]).
    pub fn with_checkpoints(mut self, signer: CheckpointSigner) -> Self {
        self.signer = Some(Arc::new(signer));
        self
    }

    /// Notified after every committed transition on this replica.
    pub fn route_changes(&self) -> Arc<tokio::sync::Notify> {
        self.route_changed.clone()
    }

    fn cache_route(&self, route: &Route) {
        if let Ok(mut m) = self.routes.write() {
            m.insert(route.deployment_id.clone(), (route.clone(), Instant::now()));
        }
    }

    fn cached_route(&self, id: &str) -> Option<Route> {
        let m = self.routes.read().ok()?;
        let (route, at) = m.get(id)?;
        (at.elapsed() < ROUTE_TTL).then(|| route.clone())
    }

    /// A log entry for a decision made on `request_bytes`.
    pub fn entry(
        &self,
        envelope: &Envelope,
        request_bytes: &[u8],
        actor: &str,
        deployment_id: Option<&str>,
    ) -> chain::LogEntry {
        chain::LogEntry {
            decision_id: envelope.decision_id.clone(),
            at: Timestamp::now().millis(),
            kind: envelope.decision.as_str().to_string(),
            outcome: envelope.outcome.as_str().to_string(),
            codes: envelope.codes().map(str::to_string).collect(),
            bundle: envelope.policy.bundle.clone(),
            bundle_version: envelope.policy.version.clone(),
            bundle_digest: envelope.policy.digest.clone(),
            request_digest: chain::digest(request_bytes),
            request: self
                .log_requests
                .then(|| String::from_utf8_lossy(request_bytes).into_owned()),
            deployment_id: deployment_id.map(str::to_string),
            actor: actor.to_string(),
            record: None,
            read_only: false,
        }
    }

    /// A log entry for an event of the service that is not a decision (a
    /// forced bundle downgrade): its kind, who, the bundle it concerns and
    /// its full detail, always kept (it is small, and it is the record).
    pub fn event_entry<T: serde::Serialize>(
        &self,
        kind: &str,
        actor: &str,
        (bundle, version, digest): (&str, &str, &str),
        detail: &T,
    ) -> chain::LogEntry {
        let text = serde_json::to_string(detail).unwrap_or_default();
        chain::LogEntry {
            decision_id: new_id(),
            at: Timestamp::now().millis(),
            kind: kind.to_string(),
            outcome: "recorded".into(),
            codes: Vec::new(),
            bundle: bundle.to_string(),
            bundle_version: version.to_string(),
            bundle_digest: digest.to_string(),
            request_digest: chain::digest(text.as_bytes()),
            request: Some(text),
            deployment_id: None,
            actor: actor.to_string(),
            record: None,
            read_only: false,
        }
    }

    /// The store, for benchmarks that seed a database directly; not part of
    /// the API (SQL lives in this module).
    #[doc(hidden)]
    pub fn bench_store(&self) -> &Store {
        &self.store
    }

    /// Answers of this actor's earlier request with the same
    /// `Idempotency-Key` ([`idempotency::lookup`]).
    pub async fn idempotent_answer(
        &self,
        key: &idempotency::IdempotencyKey,
    ) -> Result<Option<String>, RecordError> {
        idempotency::lookup(&self.store, key).await
    }

    /// Claims up to `limit` due monitoring evaluations for `replica`.
    pub async fn claim_due(
        &self,
        replica: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<schedule::Due>, RecordError> {
        schedule::claim(&self.store, replica, now, self.intervals.lease_ms, limit).await
    }

    /// Schedules the next evaluation after `due`; `false` when the claim
    /// was lost to another replica.
    pub async fn complete_due(
        &self,
        replica: &str,
        due: &schedule::Due,
        now: i64,
    ) -> Result<bool, RecordError> {
        schedule::complete(&self.store, replica, due, now, &self.intervals).await
    }

    /// Stops evaluating `deployment_id` on schedule.
    pub async fn unschedule(&self, deployment_id: &str) -> Result<(), RecordError> {
        schedule::remove(&self.store, deployment_id).await
    }

    /// Claims up to `limit` pending webhook deliveries for `replica`.
    pub async fn claim_deliveries(
        &self,
        replica: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<webhooks::Claimed>, RecordError> {
        webhooks::claim(&self.store, replica, now, lease_ms, limit).await
    }

    /// Gives a claimed delivery back, unsent.
    pub async fn release_delivery(&self, d: &webhooks::Claimed) -> Result<(), RecordError> {
        webhooks::release(&self.store, d).await
    }

    /// Records how a claimed delivery went.
    pub async fn finish_delivery(
        &self,
        d: &webhooks::Claimed,
        result: Result<u16, webhooks::DeliveryError>,
        now: i64,
    ) -> Result<(), RecordError> {
        webhooks::finish(&self.store, d, result, now).await
    }

    /// The checkpoint key's public half, if checkpoints are signed.
    pub fn checkpoint_key(&self) -> Option<(String, ed25519_dalek::VerifyingKey)> {
        self.signer
            .as_ref()
            .map(|s| (s.origin.clone(), s.key.verifying_key()))
    }
}

/// Opens the records database at `url` (`sqlite://…` or `postgres://…`),
/// creating and migrating it as needed.
pub async fn open_store(url: &str) -> Result<Store, StoreError> {
    let store = Store::connect(url).await?;
    migrations::run(&store).await?;
    Ok(store)
}

/// A new record id: a ULID, unique and sortable by creation time.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

/// Record ids accepted from callers (systems): short and path-safe.
pub(crate) fn check_id(what: &str, id: &str) -> Result<(), RecordError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RecordError::invalid(
            format!("/{what}"),
            "expected 1-128 characters of letters, digits, '.', '_' or '-'",
        ))
    }
}
