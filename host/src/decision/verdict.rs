//! What a policy decided, and the envelope it is returned in
//! (docs/decisions.md#the-response-envelope).

use serde::{Deserialize, Serialize};

use super::{DecisionKind, Timestamp};

/// Every outcome of every decision; which ones a decision may return is
/// fixed per decision (docs/decisions.md#the-three-decisions) and enforced
/// by the WIT enums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    Deny,
    Promote,
    Hold,
    Rollback,
    Suspend,
    Healthy,
    Alert,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Promote => "promote",
            Outcome::Hold => "hold",
            Outcome::Rollback => "rollback",
            Outcome::Suspend => "suspend",
            Outcome::Healthy => "healthy",
            Outcome::Alert => "alert",
        }
    }

    /// The outcome a decision takes when its policy cannot answer: never a
    /// positive one (docs/decisions.md#failing-closed-policyerror).
    pub fn fail_closed(kind: DecisionKind) -> Outcome {
        match kind {
            DecisionKind::Gate => Outcome::Deny,
            DecisionKind::Progression => Outcome::Hold,
            DecisionKind::Monitoring => Outcome::Alert,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingSeverity {
    Blocking,
    Warning,
    Info,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Finding {
    pub code: String,
    pub severity: FindingSeverity,
    pub message: String,
    pub path: String,
    pub controls: Vec<String>,
    /// The member of a policy set that raised this finding; absent when a
    /// single bundle answered, or when the set itself raised it
    /// (docs/policy-sets.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Obligation {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
}

/// A policy's answer before it is wrapped in an envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub findings: Vec<Finding>,
    pub obligations: Vec<Obligation>,
    pub first_stage: Option<String>,
    pub next_stage: Option<String>,
    pub traffic_percent: Option<f64>,
    pub rollback_to: Option<String>,
}

impl Verdict {
    /// The fail-closed answer when the policy trapped, ran out of time or
    /// memory, or reported an error: a `policy.error` finding naming `cause`.
    pub fn policy_error(kind: DecisionKind, cause: &str, message: impl Into<String>) -> Self {
        Verdict {
            outcome: Outcome::fail_closed(kind),
            findings: vec![Finding {
                code: "policy.error".into(),
                severity: FindingSeverity::Blocking,
                message: format!(
                    "policy failed ({cause}): {}; failing closed",
                    message.into()
                ),
                path: String::new(),
                controls: Vec::new(),
                bundle: None,
            }],
            obligations: Vec::new(),
            first_stage: None,
            next_stage: None,
            traffic_percent: None,
            rollback_to: None,
        }
    }

    /// This verdict is the host's fail-closed answer to a policy failure.
    pub fn is_policy_error(&self) -> bool {
        self.findings.iter().any(|f| f.code == "policy.error")
    }
}

/// Which bundle answered. For a policy set, `bundle` is the set's name,
/// `version` and `digest` identify the combination of member versions, and
/// `members` names every member (docs/policy-sets.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PolicyRef {
    pub bundle: String,
    pub version: String,
    pub digest: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub members: Vec<PolicyRef>,
}

/// The decision response (docs/decisions.md#the-response-envelope).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Envelope {
    pub decision_id: String,
    pub decision: DecisionKind,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<String>,
    pub findings: Vec<Finding>,
    pub obligations: Vec<Obligation>,
    pub policy: PolicyRef,
    pub evaluated_at: Timestamp,
}

impl Envelope {
    /// Wraps a verdict. `decision_id` is a ULID: unique and sortable by time.
    pub fn new(kind: DecisionKind, verdict: Verdict, policy: PolicyRef, now: Timestamp) -> Self {
        Envelope {
            decision_id: ulid::Ulid::new().to_string(),
            decision: kind,
            outcome: verdict.outcome,
            first_stage: verdict.first_stage,
            next_stage: verdict.next_stage,
            traffic_percent: verdict.traffic_percent,
            rollback_to: verdict.rollback_to,
            findings: verdict.findings,
            obligations: verdict.obligations,
            policy,
            evaluated_at: now,
        }
    }

    /// This decision is the host's fail-closed answer to a policy failure.
    pub fn is_policy_error(&self) -> bool {
        self.findings.iter().any(|f| f.code == "policy.error")
    }

    /// The codes of the findings, in order.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.findings.iter().map(|f| f.code.as_str())
    }

    /// `outcome: code, code`: one line saying what was decided and why,
    /// for history events and refusals.
    pub fn summary(&self) -> String {
        if self.findings.is_empty() {
            self.outcome.as_str().to_string()
        } else {
            let codes: Vec<&str> = self.codes().collect();
            format!("{}: {}", self.outcome.as_str(), codes.join(", "))
        }
    }
}
