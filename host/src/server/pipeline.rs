//! The one decision pipeline every caller goes through: stateless HTTP
//! decisions, deployment creation, progressions, observations, the
//! scheduler and the integration adapters.
//!
//! A typed request goes in; the bundle's lane runs the policy (inline
//! while the bundle is fast, on the bounded blocking pool once it turned
//! slow) under the decision deadline; the outcome is counted, a policy
//! failure is counted by cause and logged with its decision id, and the
//! fail-closed answer comes out. Nothing else calls a policy.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;

use super::App;
use super::lane;
use super::metrics::Metrics;
use super::registry::{Active, ResolveError, Slot};
use crate::decision::{DecisionKind, DecodeLimits, Request, RequestError, decode_with};
use crate::policy::{Decided, PolicyError};

/// A bundle resolved for one request: every decision of that request sees
/// this one version, whatever is activated meanwhile.
#[derive(Clone)]
pub struct Pipeline {
    slot: Arc<Slot>,
    active: Arc<Active>,
    metrics: Arc<Metrics>,
}

impl Pipeline {
    /// The pipeline of bundle `name`, or of the default bundle.
    pub fn resolve(app: &App, name: Option<&str>) -> Result<Pipeline, ResolveError> {
        let (slot, active) = app.registry.resolve(name)?;
        Ok(Pipeline {
            slot,
            active,
            metrics: app.metrics.clone(),
        })
    }

    pub fn bundle(&self) -> &str {
        &self.slot.name
    }

    pub fn active(&self) -> &Arc<Active> {
        &self.active
    }

    /// Decides `request` for `actor`: in the lane, which takes a heavy
    /// request (many list items) off the async workers without marking
    /// the bundle slow for every other caller.
    pub async fn decide(&self, request: Request, actor: &str) -> Decided {
        let (kind, now) = (request.kind(), request.now());
        let started = Instant::now();
        let heavy = lane::is_heavy_request(&request);
        let policy = self.active.clone();
        let ran = self
            .slot
            .lane
            .run(heavy, move || policy.policy.decide(request))
            .await;
        let decided = match ran {
            Ok(decided) => decided,
            // The task running the policy died (it cannot panic by design;
            // this is the last line of defence): fail closed all the same.
            Err(e) => self.active.policy.fail_closed(
                kind,
                now,
                PolicyError::Trap(format!("the decision task failed: {e}")),
            ),
        };
        self.account(kind, &decided, actor, started);
        decided
    }

    /// Decodes `body` as a `kind` request and decides it, then runs
    /// `finish` on the decision where the decision ran. A heavy body is
    /// decoded in the lane too, and what grows with the request (its log
    /// entry, its JSON) is made there by `finish`, so no part of a large
    /// request holds an async worker.
    pub async fn decide_body<T: Send + 'static>(
        &self,
        kind: DecisionKind,
        body: Bytes,
        limits: DecodeLimits,
        actor: &str,
        finish: impl FnOnce(&Decided) -> T + Send + 'static,
    ) -> Result<(Decided, T), PipelineError> {
        let started = Instant::now();
        let policy = self.active.clone();
        let job = move |request: Request| {
            let decided = policy.policy.decide(request);
            let more = finish(&decided);
            (decided, more)
        };
        let ran = if lane::is_heavy_body(body.len()) {
            self.slot
                .lane
                .run(true, move || decode_with(kind, &body, limits).map(job))
                .await
        } else {
            let request = decode_with(kind, &body, limits)?;
            let heavy = lane::is_heavy_request(&request);
            self.slot.lane.run(heavy, move || Ok(job(request))).await
        };
        let (decided, more) = ran.map_err(PipelineError::Task)??;
        self.account(kind, &decided, actor, started);
        Ok((decided, more))
    }

    /// Counts a decision, and a policy failure by cause, and logs it.
    fn account(&self, kind: DecisionKind, decided: &Decided, actor: &str, started: Instant) {
        let envelope = &decided.envelope;
        self.slot.counters.count(kind, envelope.outcome);
        if let Some(e) = &decided.error {
            self.metrics.policy_error(&self.slot.name, e.cause());
            tracing::warn!(
                decision_id = %envelope.decision_id,
                decision = %kind,
                bundle = %self.slot.name,
                version = %self.active.version,
                caller = %actor,
                cause = e.cause(),
                error = %e,
                "policy failed; decision fails closed"
            );
        } else {
            tracing::debug!(
                decision_id = %envelope.decision_id,
                decision = %kind,
                bundle = %self.slot.name,
                outcome = envelope.outcome.as_str(),
                caller = %actor,
                "decided"
            );
        }
        self.metrics
            .observe_latency(kind, started.elapsed().as_secs_f64());
    }
}

/// Why a body could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The body was refused before any policy saw it.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The task running the decision died.
    #[error("decision task failed: {0}")]
    Task(String),
}

impl From<PipelineError> for super::error::ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Request(e) => e.into(),
            PipelineError::Task(m) => {
                super::error::ApiError::internal(format!("decision task failed: {m}"))
            }
        }
    }
}

impl crate::records::Decide for Pipeline {
    fn decide(
        &self,
        request: Request,
        actor: &str,
    ) -> impl std::future::Future<Output = Decided> + Send {
        Pipeline::decide(self, request, actor)
    }
}
