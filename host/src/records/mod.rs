//! Deployment records: stagegate as the system of record for who
//! authorised what, which stage a deployment is in and why it moved, and
//! what monitoring saw (ISO/IEC 42001 A.6.2.8 documentation).
//!
//! - [`store`]: SQLite or PostgreSQL, one schema, embedded migrations;
//! - [`chain`] and [`log`]: the hash-chained decision log and its batched
//!   writer;
//! - [`evidence`]: systems, releases, reviews, authorisations, acceptances;
//! - [`deployments`]: the lifecycle, every transition decided by the policy;
//! - [`export`]: one document per deployment for auditors.

pub mod chain;
pub mod deployments;
pub mod error;
pub mod evidence;
pub mod export;
pub mod idempotency;
pub mod log;
pub mod schedule;
pub mod store;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use error::RecordError;
pub use log::{DecisionLog, Durability};
pub use store::{Dialect, Store, StoreError};

use crate::decision::{Envelope, Timestamp};

/// Who is acting: the token's name and, for authorisations, its title.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    /// The accountable role recorded on authorisations ("Head of AI Risk").
    pub title: Option<String>,
}

/// What a deployment's route looks like to a serving gateway.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Route {
    pub deployment_id: String,
    pub release_id: String,
    pub status: String,
    pub stage: String,
    pub traffic_percent: f64,
    pub version: i64,
}

/// How long a cached route is served before it is re-read; bounds how
/// stale another replica's change can look.
pub const ROUTE_TTL: Duration = Duration::from_secs(1);

/// The records service: the store, the decision log and the route cache.
#[derive(Clone)]
pub struct Records {
    pub store: Store,
    pub log: DecisionLog,
    /// Keep request bodies in the decision log.
    pub log_requests: bool,
    /// Monitoring schedule intervals.
    pub intervals: schedule::Intervals,
    routes: Arc<RwLock<HashMap<String, (Route, Instant)>>>,
}

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
        }
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
            codes: envelope.findings.iter().map(|f| f.code.clone()).collect(),
            bundle: envelope.policy.bundle.clone(),
            bundle_version: envelope.policy.version.clone(),
            bundle_digest: envelope.policy.digest.clone(),
            request_digest: format!("sha256:{}", hex::encode(Sha256::digest(request_bytes))),
            request: self
                .log_requests
                .then(|| String::from_utf8_lossy(request_bytes).into_owned()),
            deployment_id: deployment_id.map(str::to_string),
            actor: actor.to_string(),
        }
    }
}

/// A new record id: a ULID, unique and sortable by creation time.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

/// Record ids accepted from callers (systems): short and path-safe.
pub fn check_id(what: &str, id: &str) -> Result<(), RecordError> {
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
