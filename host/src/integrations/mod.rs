//! The integrations' rules, without HTTP: what Argo Rollouts ([`argo`])
//! and Flagger ([`flagger`]) are told about a deployment, and how a GitHub
//! deployment protection rule is judged ([`github`]).
//!
//! Neither holds a rule of its own. Every answer is made of the
//! deployment's route (stage, traffic percent, status) and the policy's
//! read-only evaluations of its records
//! ([`Records::evaluate_monitoring`](crate::records::Records::evaluate_monitoring),
//! [`Records::evaluate_progression`](crate::records::Records::evaluate_progression)),
//! so a controller and a human asking the records API see the same
//! judgement. The HTTP routes (`server::routes::integrations`) only parse
//! and serialise. docs/integrations/ describes the mapping.

pub mod argo;
pub mod flagger;
pub mod gateway;
pub mod github;
pub mod kubernetes;

use crate::decision::{Envelope, Finding, Outcome};
use crate::records::DeploymentStatus;
use crate::records::model::Deployment;

/// Whether exposure must stop: the deployment is no longer active, or the
/// monitoring policy says roll back or suspend.
pub(crate) fn must_stop(d: &Deployment, monitoring: &Envelope) -> bool {
    d.status != DeploymentStatus::Active
        || matches!(monitoring.outcome, Outcome::Rollback | Outcome::Suspend)
}

/// One line saying where a deployment stands, for controllers' events.
pub(crate) fn standing(d: &Deployment) -> String {
    format!(
        "deployment '{}' is {} at stage '{}' ({}% of traffic)",
        d.id, d.status, d.stage, d.traffic_percent
    )
}

/// The findings an answer carries: the deciding evaluation's.
pub(crate) fn findings(envelope: &Envelope) -> Vec<Finding> {
    envelope.findings.clone()
}
