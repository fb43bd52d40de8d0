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

use super::App;
use super::metrics::Metrics;
use super::registry::{Active, ResolveError, Slot};
use crate::decision::Request;
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

    /// Decides `request` for `actor`.
    pub async fn decide(&self, request: Request, actor: &str) -> Decided {
        let kind = request.kind();
        let now = request.now();
        let started = Instant::now();
        let policy = self.active.clone();
        let decided = match self
            .slot
            .lane
            .run(move || policy.policy.decide(request))
            .await
        {
            Ok(decided) => decided,
            // The task running the policy died (it cannot panic by design;
            // this is the last line of defence): fail closed all the same.
            Err(e) => self.active.policy.fail_closed(
                kind,
                now,
                PolicyError::Trap(format!("the decision task failed: {e}")),
            ),
        };
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
        decided
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
