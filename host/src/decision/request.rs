//! Decision requests as they arrive on the wire (docs/decisions.md#requests),
//! decoded by serde.
//!
//! The shapes mirror `wit/policy.wit`; conversion into the sandbox's typed
//! records is in [`super::convert`]. The conventions of
//! docs/decisions.md#conventions live here: unknown fields are ignored;
//! absent or `null` optional fields are missing (`Option` / empty list /
//! `false`); `system.consequential` defaults to `true` when absent; only
//! `now`, `system.id`, `system.risk_tier` and the per-decision required
//! fields make a request malformed when absent.
//! Every list is bounded while it is decoded ([`super::limits`]).

use serde::{Deserialize, Deserializer, Serialize};

use super::Timestamp;
use super::limits::{bounded_list, bounded_optional_list};

/// `null` and absence both mean the type's default (`false`). Lists use
/// [`bounded_list`], which reads `null` the same way.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskTier {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Autonomy {
    HumanInTheLoop,
    HumanOnTheLoop,
    Autonomous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
pub enum Comparison {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewOutcome {
    Approved,
    ApprovedWithConditions,
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Open,
    Resolved,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = DecisionSystem)]
pub struct System {
    pub id: String,
    pub risk_tier: RiskTier,
    pub autonomy: Option<Autonomy>,
    /// Absent counts as `true`: assume outputs matter until told otherwise.
    pub consequential: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = DecisionRelease)]
pub struct Release {
    pub version: Option<String>,
    pub artifact_digest: Option<String>,
    /// The artifact's own URI, content-addressed: an image reference with
    /// its digest (`registry/repo@sha256:…`) or a storage URI whose last
    /// path segment is the digest. Receipts state it as `resourceUri`
    /// (docs/evidence-and-receipts.md#receipts); policies do not see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_uri: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct RiskAssessment {
    pub assessment_ref: Option<String>,
    pub assessed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct VerificationResult {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub passed: bool,
    pub metric: Option<f64>,
    pub threshold: Option<f64>,
    pub evidence: Option<String>,
    /// The signed statement this result was taken from; absent when the
    /// result is only asserted (docs/decisions.md#attestations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Attestation>,
}

/// Who signed the evidence a field was taken from
/// (docs/decisions.md#attestations): the host sets it after verifying a
/// DSSE envelope over an in-toto Statement. All three fields are required
/// when the object is present; its absence means "not attested".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Attestation {
    /// The trusted key that signed the envelope.
    pub keyid: String,
    /// The in-toto predicate type of the statement
    /// (e.g. `https://in-toto.io/attestation/test-result/v0.1`).
    pub predicate_type: String,
    /// `sha256:` and the lowercase hex SHA-256 of the statement (the DSSE
    /// payload as signed).
    pub statement_digest: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Verification {
    #[serde(default, deserialize_with = "nullable")]
    pub complete: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub integration_required: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub integration_tested: bool,
    #[serde(default, deserialize_with = "bounded_list")]
    pub results: Vec<VerificationResult>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = DecisionReview)]
pub struct Review {
    pub reviewer: Option<String>,
    pub completed_at: Option<Timestamp>,
    pub outcome: Option<ReviewOutcome>,
    #[serde(default, deserialize_with = "bounded_list")]
    pub conditions: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = DecisionAuthorisation)]
pub struct Authorisation {
    pub authorised_by: Option<String>,
    pub role: Option<String>,
    pub authorised_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "bounded_list")]
    pub conditions: Vec<String>,
    #[serde(default, deserialize_with = "bounded_optional_list")]
    pub scope: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = DecisionAcceptance)]
pub struct Acceptance {
    pub accepted_by: Option<String>,
    pub accepted_at: Option<Timestamp>,
    pub rationale: Option<String>,
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Deficiency {
    pub id: Option<String>,
    pub severity: Option<Severity>,
    pub status: Option<ItemStatus>,
    pub acceptance: Option<Acceptance>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Criterion {
    pub metric: Option<String>,
    pub op: Option<Comparison>,
    pub threshold: Option<f64>,
    pub min_samples: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Stage {
    pub name: Option<String>,
    pub traffic_percent: Option<f64>,
    pub population: Option<String>,
    pub min_duration_hours: Option<f64>,
    #[serde(default, deserialize_with = "bounded_list")]
    pub criteria: Vec<Criterion>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct RollbackPlan {
    pub procedure: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tested: bool,
    #[serde(default, deserialize_with = "bounded_list")]
    pub triggers: Vec<Criterion>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Plan {
    #[serde(default, deserialize_with = "bounded_list")]
    pub stages: Vec<Stage>,
    pub rollback: Option<RollbackPlan>,
    #[serde(default, deserialize_with = "bounded_list")]
    pub suspension_triggers: Vec<Criterion>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Safeguards {
    #[serde(default, deserialize_with = "nullable")]
    pub human_oversight: bool,
    pub escalation_path: Option<String>,
    pub user_guidance: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub autonomy_rationale_accepted: bool,
    #[serde(default, deserialize_with = "bounded_list")]
    pub compensating_controls: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Communication {
    pub capabilities: Option<String>,
    pub intended_use: Option<String>,
    #[serde(default, deserialize_with = "bounded_list")]
    pub limitations: Vec<String>,
    pub reliance_conditions: Option<String>,
    pub published_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct MonitoringSetup {
    #[serde(default, deserialize_with = "nullable")]
    pub activated: bool,
    #[serde(default, deserialize_with = "bounded_list")]
    pub metrics: Vec<String>,
    pub intensive_period_hours: Option<f64>,
    #[serde(default, deserialize_with = "bounded_list")]
    pub contacts: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct SupplyChain {
    #[serde(default, deserialize_with = "nullable")]
    pub third_party: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub controls_confirmed: bool,
    /// The signed statement (e.g. SLSA provenance) the confirmation rests
    /// on; absent when it is only asserted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Attestation>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Observation {
    pub metric: Option<String>,
    pub value: Option<f64>,
    pub samples: Option<u64>,
    pub window_end: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = DecisionMaterialIssue)]
pub struct MaterialIssue {
    pub id: Option<String>,
    pub severity: Option<Severity>,
    pub status: Option<ItemStatus>,
}

/// Free-form evidence for custom policies, passed through as JSON text.
pub type Extensions = Option<Box<serde_json::value::RawValue>>;

/// A gate request (docs/decisions.md#gate-request).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct GateRequest {
    pub now: Timestamp,
    pub system: System,
    pub release: Option<Release>,
    pub risk: Option<RiskAssessment>,
    pub verification: Option<Verification>,
    pub review: Option<Review>,
    pub authorisation: Option<Authorisation>,
    #[serde(default, deserialize_with = "bounded_list")]
    pub deficiencies: Vec<Deficiency>,
    pub plan: Option<Plan>,
    pub safeguards: Option<Safeguards>,
    pub communication: Option<Communication>,
    pub monitoring: Option<MonitoringSetup>,
    pub supply_chain: Option<SupplyChain>,
    #[serde(default)]
    #[schema(value_type = Value)]
    pub extensions: Extensions,
    /// DSSE envelopes over in-toto Statements about `release.artifact_digest`
    /// (docs/evidence-and-receipts.md#stateless-gates): verified by the
    /// service as at release registration and mapped into `verification`
    /// and `supply_chain` before the policy sees the request. Only a gate
    /// whose evidence stagegate verified this way gets a receipt.
    #[serde(
        default,
        deserialize_with = "bounded_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schema(value_type = Vec<Object>)]
    pub attestations: Vec<Box<serde_json::value::RawValue>>,
}

/// A progression request (docs/decisions.md#progression-request).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ProgressionRequest {
    pub now: Timestamp,
    pub system: System,
    pub plan: Plan,
    pub current_stage: String,
    pub target_stage: String,
    pub stage_entered_at: Timestamp,
    #[serde(default, deserialize_with = "bounded_list")]
    pub observations: Vec<Observation>,
    #[serde(default, deserialize_with = "bounded_list")]
    pub material_issues: Vec<MaterialIssue>,
    pub review: Option<Review>,
    pub authorisation: Option<Authorisation>,
    #[serde(default)]
    #[schema(value_type = Value)]
    pub extensions: Extensions,
}

/// A monitoring request (docs/decisions.md#monitoring-request).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct MonitoringRequest {
    pub now: Timestamp,
    pub system: System,
    pub plan: Plan,
    pub current_stage: String,
    pub deployed_at: Timestamp,
    #[serde(default, deserialize_with = "bounded_list")]
    pub observations: Vec<Observation>,
    #[serde(default)]
    #[schema(value_type = Value)]
    pub extensions: Extensions,
}

/// A decoded request of any kind.
// Moved once per decision; boxing the gate variant would add an allocation
// to the hot path to save a memcpy.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Request {
    Gate(GateRequest),
    Progression(ProgressionRequest),
    Monitoring(MonitoringRequest),
}

impl Request {
    /// The request's `now`, echoed as `evaluated_at`.
    pub fn now(&self) -> Timestamp {
        match self {
            Request::Gate(r) => r.now,
            Request::Progression(r) => r.now,
            Request::Monitoring(r) => r.now,
        }
    }

    /// Which decision this request asks for.
    pub fn kind(&self) -> super::DecisionKind {
        match self {
            Request::Gate(_) => super::DecisionKind::Gate,
            Request::Progression(_) => super::DecisionKind::Progression,
            Request::Monitoring(_) => super::DecisionKind::Monitoring,
        }
    }

    /// The request as JSON, in the wire format it is decoded from: what the
    /// decision log digests (and keeps, when configured) for a request the
    /// service assembled itself from its records.
    pub fn to_json(&self) -> Vec<u8> {
        let encoded = match self {
            Request::Gate(r) => serde_json::to_vec(r),
            Request::Progression(r) => serde_json::to_vec(r),
            Request::Monitoring(r) => serde_json::to_vec(r),
        };
        // Plain data (strings, numbers, timestamps, raw JSON already
        // validated): serialising it cannot fail.
        encoded.unwrap_or_default()
    }

    /// How many list items the request holds, nested lists included: a
    /// measure of the work it asks of a policy whose rules are O(n log n).
    pub fn list_items(&self) -> usize {
        fn criteria(list: &[Criterion]) -> usize {
            list.len()
        }
        fn plan(p: &Plan) -> usize {
            p.stages.len()
                + p.stages
                    .iter()
                    .map(|s| criteria(&s.criteria))
                    .sum::<usize>()
                + p.rollback.as_ref().map_or(0, |r| criteria(&r.triggers))
                + criteria(&p.suspension_triggers)
        }
        fn authorisation(a: &Option<Authorisation>) -> usize {
            a.as_ref().map_or(0, |a| {
                a.conditions.len() + a.scope.as_ref().map_or(0, Vec::len)
            })
        }
        fn review(r: &Option<Review>) -> usize {
            r.as_ref().map_or(0, |r| r.conditions.len())
        }
        match self {
            Request::Gate(r) => {
                r.plan.as_ref().map_or(0, plan)
                    + r.verification.as_ref().map_or(0, |v| v.results.len())
                    + review(&r.review)
                    + authorisation(&r.authorisation)
                    + r.deficiencies.len()
                    + r.safeguards
                        .as_ref()
                        .map_or(0, |s| s.compensating_controls.len())
                    + r.communication.as_ref().map_or(0, |c| c.limitations.len())
                    + r.monitoring
                        .as_ref()
                        .map_or(0, |m| m.metrics.len() + m.contacts.len())
            }
            Request::Progression(r) => {
                plan(&r.plan)
                    + r.observations.len()
                    + r.material_issues.len()
                    + review(&r.review)
                    + authorisation(&r.authorisation)
            }
            Request::Monitoring(r) => plan(&r.plan) + r.observations.len(),
        }
    }
}
