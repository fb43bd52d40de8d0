//! A policy serving decisions: from a typed request to the response
//! envelope (docs/decisions.md#the-response-envelope).

use super::bindings::{v1_0, v1_1};
use super::{LoadedPolicy, Policy, PolicyError};
use crate::decision::{
    self, Controls, DecisionKind, Envelope, PolicyRef, Request, RequestError, Verdict,
};

/// A loaded policy together with what the envelope and findings need from
/// its bundle: name, version and digest, and the control map.
pub struct ActivePolicy {
    pub policy_ref: PolicyRef,
    pub controls: Controls,
    pub loaded: LoadedPolicy,
}

/// One answered decision. `error` is set when the policy failed and the
/// envelope is the fail-closed answer.
#[derive(Debug)]
pub struct Decided {
    pub envelope: Envelope,
    pub error: Option<PolicyError>,
}

/// Why a bundle could not be made active.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error("policy {0}")]
    Policy(#[from] PolicyError),
}

impl ActivePolicy {
    /// Compiles a bundle's component and loads it with the bundle's
    /// parameters and control map. The bundle's signatures are the caller's
    /// business: this only runs what it is given.
    pub fn load(
        runtime: &super::Runtime,
        bundle: &crate::bundle::Bundle,
        isolation: super::Isolation,
    ) -> Result<Self, LoadError> {
        let component = runtime.compile(bundle.wasm())?;
        Self::with_component(runtime, bundle, &component, bundle.params()?, isolation)
    }

    /// Like [`ActivePolicy::load`], with a component compiled earlier and
    /// the parameters to configure it with (normally `bundle.params()`).
    pub fn with_component(
        runtime: &super::Runtime,
        bundle: &crate::bundle::Bundle,
        component: &wasmtime::component::Component,
        params: String,
        isolation: super::Isolation,
    ) -> Result<Self, LoadError> {
        Self::with_limits(
            runtime,
            bundle,
            component,
            params,
            isolation,
            &super::BundleLimits::default(),
        )
    }

    /// Like [`ActivePolicy::with_component`], under the bundle's own
    /// sandbox limits where it has them.
    pub fn with_limits(
        runtime: &super::Runtime,
        bundle: &crate::bundle::Bundle,
        component: &wasmtime::component::Component,
        params: String,
        isolation: super::Isolation,
        own: &super::BundleLimits,
    ) -> Result<Self, LoadError> {
        let controls = bundle.controls()?;
        let loaded = LoadedPolicy::with_limits(runtime, component, params, isolation, own)?;
        Ok(ActivePolicy {
            policy_ref: bundle.policy_ref(),
            controls,
            loaded,
        })
    }

    /// Asks the policy; a failure of the policy becomes the fail-closed
    /// verdict (docs/decisions.md#failing-closed-policyerror), so this never
    /// returns a positive outcome for a policy that could not answer.
    pub fn verdict(&self, request: Request) -> (Verdict, Option<PolicyError>) {
        let kind = request.kind();
        // The request becomes the records of the instance's WIT version
        // (chosen when the component was loaded): one match per decision.
        let result = match request {
            Request::Gate(r) => self.loaded.call(|p, s| match p {
                Policy::V1_0(p) => {
                    use v1_0::convert as c;
                    let r = c::gate_request(r);
                    let d = p.stagegate_policy_evaluate().call_gate(s, &r)?;
                    Ok(d.map(c::gate_verdict))
                }
                Policy::V1_1(p) => {
                    use v1_1::convert as c;
                    let r = c::gate_request(r);
                    let d = p.stagegate_policy_evaluate().call_gate(s, &r)?;
                    Ok(d.map(c::gate_verdict))
                }
            }),
            Request::Progression(r) => self.loaded.call(|p, s| match p {
                Policy::V1_0(p) => {
                    use v1_0::convert as c;
                    let r = c::progression_request(r);
                    let d = p.stagegate_policy_evaluate().call_progression(s, &r)?;
                    Ok(d.map(c::progression_verdict))
                }
                Policy::V1_1(p) => {
                    use v1_1::convert as c;
                    let r = c::progression_request(r);
                    let d = p.stagegate_policy_evaluate().call_progression(s, &r)?;
                    Ok(d.map(c::progression_verdict))
                }
            }),
            Request::Monitoring(r) => self.loaded.call(|p, s| match p {
                Policy::V1_0(p) => {
                    use v1_0::convert as c;
                    let r = c::monitoring_request(r);
                    let d = p.stagegate_policy_evaluate().call_monitoring(s, &r)?;
                    Ok(d.map(c::monitoring_verdict))
                }
                Policy::V1_1(p) => {
                    use v1_1::convert as c;
                    let r = c::monitoring_request(r);
                    let d = p.stagegate_policy_evaluate().call_monitoring(s, &r)?;
                    Ok(d.map(c::monitoring_verdict))
                }
            }),
        };
        match result.and_then(|v| check_contract(kind, v)) {
            Ok(v) => (v, None),
            Err(e) => (e.verdict(kind), Some(e)),
        }
    }

    /// Decides a typed request and wraps the answer in its envelope.
    pub fn decide(&self, request: Request) -> Decided {
        let kind = request.kind();
        let now = request.now();
        let (mut verdict, error) = self.verdict(request);
        self.controls.annotate(&mut verdict.findings);
        Decided {
            envelope: Envelope::new(kind, verdict, self.policy_ref.clone(), now),
            error,
        }
    }

    /// The fail-closed answer for a decision that `error` kept this policy
    /// from making (e.g. the task running it died).
    pub fn fail_closed(
        &self,
        kind: DecisionKind,
        now: crate::decision::Timestamp,
        error: PolicyError,
    ) -> Decided {
        let mut verdict = error.verdict(kind);
        self.controls.annotate(&mut verdict.findings);
        Decided {
            envelope: Envelope::new(kind, verdict, self.policy_ref.clone(), now),
            error: Some(error),
        }
    }

    /// Decodes a JSON body and decides it.
    pub fn decide_json(&self, kind: DecisionKind, body: &[u8]) -> Result<Decided, RequestError> {
        Ok(self.decide(decision::decode(kind, body)?))
    }
}

/// Holds a policy to the envelope's promises, which the WIT types alone cannot:
/// a negative outcome carries at least one finding saying why, and a
/// positive one carries no blocking finding. A policy that breaks them is
/// failing, and fails closed like any other failure.
fn check_contract(kind: DecisionKind, v: Verdict) -> Result<Verdict, PolicyError> {
    use crate::decision::{FindingSeverity, Outcome};
    let positive = matches!(
        v.outcome,
        Outcome::Allow | Outcome::Promote | Outcome::Healthy
    );
    if positive
        && v.findings
            .iter()
            .any(|f| f.severity == FindingSeverity::Blocking)
    {
        return Err(PolicyError::Guest(format!(
            "{kind} outcome '{}' carries a blocking finding",
            v.outcome.as_str()
        )));
    }
    if !positive && v.findings.is_empty() {
        return Err(PolicyError::Guest(format!(
            "{kind} outcome '{}' gives no finding saying why",
            v.outcome.as_str()
        )));
    }
    Ok(v)
}
