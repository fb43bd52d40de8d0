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

use bytes::Bytes;

use super::lane;
use super::metrics::Metrics;
use super::registry::{Active, Registry, ResolveError, Target};
use crate::decision::{DecisionKind, DecodeLimits, Request, RequestError, Timestamp, decode_with};
use crate::policy::{Decided, PolicyError};

/// A bundle or policy set resolved for one request: every decision of that
/// request sees this one version of each bundle involved, whatever is
/// activated meanwhile.
#[derive(Clone)]
pub struct Pipeline {
    target: Target,
    /// One member for a bundle; every member, in order, for a set.
    members: Arc<Vec<Arc<Active>>>,
    metrics: Arc<Metrics>,
}

impl Pipeline {
    /// The pipeline of bundle or policy set `name`, or of the default,
    /// counting into `metrics`.
    pub(crate) fn resolve(
        registry: &Registry,
        metrics: &Arc<Metrics>,
        name: Option<&str>,
    ) -> Result<Pipeline, ResolveError> {
        let (target, members) = registry.resolve(name)?;
        Ok(Pipeline {
            target,
            members: Arc::new(members),
            metrics: metrics.clone(),
        })
    }

    /// The control map findings are judged by: the bundle's, or for a set
    /// every member's merged.
    pub fn controls(&self) -> crate::decision::Controls {
        crate::decision::Controls::merged(self.members.iter().map(|a| &a.policy.controls))
    }

    /// The bundle's or the set's name.
    pub fn bundle(&self) -> &str {
        self.target.name()
    }

    /// The version(s) answering, for logs: `1.1.0`, or for a set
    /// `a@1.1.0+b@0.1.0`.
    fn version(&self) -> String {
        match &self.target {
            Target::Bundle(_) => self
                .members
                .first()
                .map(|a| a.version.to_string())
                .unwrap_or_default(),
            Target::Set(_) => self
                .members
                .iter()
                .map(|a| format!("{}@{}", a.policy.policy_ref.bundle, a.version))
                .collect::<Vec<_>>()
                .join("+"),
        }
    }

    /// Decides with the snapshot this pipeline holds (in whatever thread
    /// calls it).
    fn run(target: &Target, members: &[Arc<Active>], request: Request) -> Decided {
        match target {
            Target::Bundle(_) => members[0].policy.decide(request),
            Target::Set(set) => {
                let policies: Vec<_> = members.iter().map(|a| &a.policy).collect();
                crate::policy::set::decide(&set.name, &policies, request)
            }
        }
    }

    fn fail_closed(&self, kind: DecisionKind, now: Timestamp, e: PolicyError) -> Decided {
        match &self.target {
            Target::Bundle(_) => self.members[0].policy.fail_closed(kind, now, e),
            Target::Set(set) => {
                let policies: Vec<_> = self.members.iter().map(|a| &a.policy).collect();
                crate::policy::set::fail_closed(&set.name, &policies, kind, now, e)
            }
        }
    }

    /// Decides `request` for `actor`: in the lane, which takes a heavy
    /// request (many list items) off the async workers without marking
    /// the bundle slow for every other caller.
    pub async fn decide(&self, request: Request, actor: &str) -> Decided {
        let (kind, now) = (request.kind(), request.now());
        let started = Instant::now();
        let heavy = lane::is_heavy_request(&request);
        let (target, members) = (self.target.clone(), self.members.clone());
        let ran = self
            .target
            .lane()
            .run(heavy, move || Self::run(&target, &members, request))
            .await;
        let decided = match ran {
            Ok(decided) => decided,
            // The task running the policy died (it cannot panic by design;
            // this is the last line of defence): fail closed all the same.
            Err(e) => self.fail_closed(
                kind,
                now,
                PolicyError::Trap(format!("the decision task failed: {e}")),
            ),
        };
        self.account(kind, &decided, actor, started);
        decided
    }

    /// Decodes `body` as a `kind` request, runs `prepare` on it (which may
    /// refuse it, e.g. envelopes that do not verify), decides it, then runs
    /// `finish` on the decision and what `prepare` returned, where the
    /// decision ran. A heavy body is decoded in the lane too, and what grows
    /// with the request (its log entry, its JSON) is made there by
    /// `finish`, so no part of a large request holds an async worker.
    pub async fn decide_body<P: Send + 'static, T: Send + 'static>(
        &self,
        kind: DecisionKind,
        body: Bytes,
        limits: DecodeLimits,
        actor: &str,
        prepare: impl FnOnce(&mut Request) -> Result<P, RequestError> + Send + 'static,
        finish: impl FnOnce(&Decided, P) -> T + Send + 'static,
    ) -> Result<(Decided, T), PipelineError> {
        let started = Instant::now();
        let (target, members) = (self.target.clone(), self.members.clone());
        let job = move |mut request: Request| -> Result<(Decided, T), RequestError> {
            let prepared = prepare(&mut request)?;
            let decided = Self::run(&target, &members, request);
            let more = finish(&decided, prepared);
            Ok((decided, more))
        };
        let ran = if lane::is_heavy_body(body.len()) {
            self.target
                .lane()
                .run(true, move || decode_with(kind, &body, limits).and_then(job))
                .await
        } else {
            let request = decode_with(kind, &body, limits)?;
            let heavy = lane::is_heavy_request(&request);
            self.target.lane().run(heavy, move || job(request)).await
        };
        let (decided, more) = ran.map_err(|e| PipelineError::Task(e.to_string()))??;
        self.account(kind, &decided, actor, started);
        Ok((decided, more))
    }

    /// Counts a decision, and a policy failure by cause, and logs it.
    fn account(&self, kind: DecisionKind, decided: &Decided, actor: &str, started: Instant) {
        let envelope = &decided.envelope;
        self.target.counters().count(kind, envelope.outcome);
        if let Some(e) = &decided.error {
            self.metrics.policy_error(self.bundle(), e.cause());
            tracing::warn!(
                decision_id = %envelope.decision_id,
                decision = %kind,
                bundle = %self.bundle(),
                version = %self.version(),
                caller = %actor,
                cause = e.cause(),
                error = %e,
                "policy failed; decision fails closed"
            );
        } else {
            tracing::debug!(
                decision_id = %envelope.decision_id,
                decision = %kind,
                bundle = %self.bundle(),
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

impl crate::records::Decide for Pipeline {
    fn decide(
        &self,
        request: Request,
        actor: &str,
    ) -> impl std::future::Future<Output = Decided> + Send {
        Pipeline::decide(self, request, actor)
    }
}
