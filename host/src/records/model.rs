//! The records' vocabulary as types: what a system, a release, a review, an
//! authorisation, a deployment and its history *are*, independent of HTTP
//! and of SQL. Routes decode bodies into the `New*` inputs; the records
//! layer checks them, stores them and answers with these types; the routes
//! choose status codes and serialise.
//!
//! Evidence reuses the decision request's own types
//! ([`crate::decision::request`]), so what a release records is exactly
//! what the gate is asked about, checked by the same decoder.

use std::fmt;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::decision::request::{
    self, Autonomy, Communication, Deficiency, Extensions, MonitoringSetup, Plan, ReviewOutcome,
    RiskAssessment, RiskTier, Safeguards, Severity, SupplyChain, Verification,
};
use crate::decision::{Envelope, Obligation, Outcome, Timestamp};

/// Who is acting: the token's name and, for authorisations, its title.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    /// The accountable role recorded on authorisations ("Head of AI Risk").
    pub title: Option<String>,
}

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Serving its current stage; progressions and monitoring apply.
    Active,
    /// Rolled back by the policy or an operator: no longer exposed.
    RolledBack,
    /// Suspended by the policy or an operator: exposure stopped until
    /// rolled back.
    Suspended,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Active => "active",
            DeploymentStatus::RolledBack => "rolled_back",
            DeploymentStatus::Suspended => "suspended",
        }
    }

    /// The status stored as `text`, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(DeploymentStatus::Active),
            "rolled_back" => Some(DeploymentStatus::RolledBack),
            "suspended" => Some(DeploymentStatus::Suspended),
            _ => None,
        }
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a deployment, as its history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Promoted,
    Held,
    Alert,
    RolledBack,
    Suspended,
    /// A newer deployment holding one of this deployment's refs reached
    /// its plan's last stage: it serves what this one served. The status
    /// does not change (docs/records.md, "Refs").
    Superseded,
    /// A rollout controller reported a phase of its rollout (a Flagger
    /// `post-rollout` or `event` webhook); nothing changes.
    Reported,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Promoted => "promoted",
            EventKind::Held => "held",
            EventKind::Alert => "alert",
            EventKind::RolledBack => "rolled_back",
            EventKind::Suspended => "suspended",
            EventKind::Superseded => "superseded",
            EventKind::Reported => "reported",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            EventKind::Created,
            EventKind::Promoted,
            EventKind::Held,
            EventKind::Alert,
            EventKind::RolledBack,
            EventKind::Suspended,
            EventKind::Superseded,
            EventKind::Reported,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    /// The escalation this event raises, if any.
    pub fn escalation(self) -> Option<Escalation> {
        match self {
            EventKind::Held => Some(Escalation::Held),
            EventKind::Alert => Some(Escalation::Alert),
            EventKind::RolledBack => Some(Escalation::RolledBack),
            EventKind::Suspended => Some(Escalation::Suspended),
            EventKind::Created
            | EventKind::Promoted
            | EventKind::Superseded
            | EventKind::Reported => None,
        }
    }
}

/// Events worth telling a human about: what escalation webhooks receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Escalation {
    Alert,
    Held,
    RolledBack,
    Suspended,
    GateDenied,
}

impl Escalation {
    pub fn as_str(self) -> &'static str {
        match self {
            Escalation::Alert => "alert",
            Escalation::Held => "held",
            Escalation::RolledBack => "rolled_back",
            Escalation::Suspended => "suspended",
            Escalation::GateDenied => "gate_denied",
        }
    }
}

/// An escalation receiver of a system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// HMAC-SHA256 key the receiver checks signatures with. Never shown.
    pub secret: String,
    /// The events this receiver wants; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Escalation>>,
}

impl Webhook {
    pub fn wants(&self, event: Escalation) -> bool {
        self.events.as_ref().is_none_or(|e| e.contains(&event))
    }
}

/// A registered AI system, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct System {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub risk_tier: RiskTier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autonomy: Option<Autonomy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consequential: Option<bool>,
    /// Who users and operators contact when outputs are uncertain or disputed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_contact: Option<String>,
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
}

impl System {
    /// The `system` part of a decision request about this system.
    pub fn subject(&self) -> request::System {
        request::System {
            id: self.id.clone(),
            risk_tier: self.risk_tier,
            autonomy: self.autonomy,
            consequential: self.consequential,
        }
    }
}

/// A system registration body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSystem {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub risk_tier: RiskTier,
    #[serde(default)]
    pub autonomy: Option<Autonomy>,
    #[serde(default)]
    pub consequential: Option<bool>,
    #[serde(default)]
    pub escalation_contact: Option<String>,
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
}

/// A system as shown to callers: webhook secrets are never included and
/// receiver URLs lose their credentials and query strings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SystemView {
    pub system: System,
    pub created_at: Timestamp,
    pub created_by: String,
}

impl SystemView {
    pub fn new(mut system: System, created_at: Timestamp, created_by: String) -> Self {
        for hook in &mut system.webhooks {
            hook.url = redact_url(&hook.url);
            hook.secret = "(redacted)".into();
        }
        SystemView {
            system,
            created_at,
            created_by,
        }
    }
}

/// `scheme://host[:port]/path` without user information, query or fragment.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or_default();
    let marker = if authority.contains('@') { "***@" } else { "" };
    let query = if url.contains('?') { "?***" } else { "" };
    if scheme.is_empty() {
        format!("{marker}{host}{path}{query}")
    } else {
        format!("{scheme}://{marker}{host}{path}{query}")
    }
}

/// A release's evidence: the gate request's own fields for everything a
/// release carries. Reviews, authorisations and risk acceptances are facts
/// with an author and are recorded separately.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseEvidence {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_digest: Option<String>,
    /// The artifact's own URI, content-addressed (see
    /// [`crate::decision::request::Release::artifact_uri`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskAssessment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    #[serde(default)]
    pub deficiencies: Vec<Deficiency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safeguards: Option<Safeguards>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication: Option<Communication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringSetup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supply_chain: Option<SupplyChain>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Value)]
    pub extensions: Extensions,
}

/// Gate request fields that do not belong in a release, caught to say
/// where they go instead (decoded beside [`ReleaseEvidence`] from the same
/// body).
#[derive(Debug, Default, Deserialize)]
pub struct MisplacedReleaseFields {
    #[serde(default)]
    pub now: Option<IgnoredAny>,
    #[serde(default)]
    pub system: Option<IgnoredAny>,
    #[serde(default)]
    pub review: Option<IgnoredAny>,
    #[serde(default)]
    pub authorisation: Option<IgnoredAny>,
    #[serde(default)]
    pub plan: Option<IgnoredAny>,
}

impl MisplacedReleaseFields {
    /// The first field present that a release may not carry.
    pub fn first(&self) -> Option<&'static str> {
        [
            ("now", self.now.is_some()),
            ("system", self.system.is_some()),
            ("review", self.review.is_some()),
            ("authorisation", self.authorisation.is_some()),
            ("plan", self.plan.is_some()),
        ]
        .into_iter()
        .find_map(|(name, present)| present.then_some(name))
    }
}

/// A release as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Release {
    pub release_id: String,
    pub system_id: String,
    pub release: ReleaseEvidence,
    pub created_at: Timestamp,
    pub created_by: String,
    /// The verified attestations the evidence took results and statements
    /// from: for each, the attesting key, the predicate type and where
    /// its evidence went (docs/evidence-and-receipts.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub attestations: Vec<AttestationView>,
}

/// A review body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    pub outcome: ReviewOutcome,
    #[serde(default)]
    pub conditions: Vec<String>,
    #[serde(default)]
    pub target_stage: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// A completed review, by its reviewer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Review {
    pub reviewer: String,
    pub completed_at: Timestamp,
    pub outcome: ReviewOutcome,
    #[serde(default)]
    pub conditions: Vec<String>,
    #[serde(default)]
    pub target_stage: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

impl Review {
    pub fn evidence(&self) -> request::Review {
        request::Review {
            reviewer: Some(self.reviewer.clone()),
            completed_at: Some(self.completed_at),
            outcome: Some(self.outcome),
            conditions: self.conditions.clone(),
        }
    }
}

/// What a caller may say about the authorisation they give: conditions,
/// expiry and scope. `authorised_by`, if given, must name the caller.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAuthorisation {
    #[serde(default)]
    pub authorised_by: Option<String>,
    #[serde(default)]
    pub conditions: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub scope: Option<Vec<String>>,
}

/// A deployment authorisation by an accountable party.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Authorisation {
    pub authorised_by: String,
    pub role: String,
    pub authorised_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub conditions: Vec<String>,
    pub scope: Option<Vec<String>>,
}

impl Authorisation {
    pub fn evidence(&self) -> request::Authorisation {
        request::Authorisation {
            authorised_by: Some(self.authorised_by.clone()),
            role: Some(self.role.clone()),
            authorised_at: Some(self.authorised_at),
            expires_at: self.expires_at,
            conditions: self.conditions.clone(),
            scope: self.scope.clone(),
        }
    }
}

/// A risk acceptance body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAcceptance {
    pub deficiency_id: String,
    pub rationale: String,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

/// A risk acceptance of one deficiency, by its approver.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Acceptance {
    pub accepted_by: String,
    pub accepted_at: Timestamp,
    pub rationale: String,
    pub expires_at: Option<Timestamp>,
}

impl Acceptance {
    pub fn evidence(&self) -> request::Acceptance {
        request::Acceptance {
            accepted_by: Some(self.accepted_by.clone()),
            accepted_at: Some(self.accepted_at),
            rationale: Some(self.rationale.clone()),
            expires_at: self.expires_at,
        }
    }
}

/// A material issue body (or a change of an issue's status).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIssue {
    pub id: String,
    pub severity: Severity,
    pub status: request::ItemStatus,
    #[serde(default)]
    pub description: Option<String>,
}

/// A material issue as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaterialIssue {
    pub id: String,
    pub severity: Severity,
    pub status: request::ItemStatus,
    #[serde(default)]
    pub description: Option<String>,
    pub recorded_by: String,
}

/// A deployment body: the release, the plan it follows and, optionally,
/// the external objects that serve it ([`super::refs`]).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    pub release_id: String,
    pub plan: Plan,
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub refs: Refs,
}

/// External references of a deployment: `{"kubernetes": "NAMESPACE/NAME",
/// …}` (checked by [`super::refs::check`]).
pub type Refs = std::collections::BTreeMap<String, String>;

/// A progression body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProgression {
    pub target_stage: String,
    #[serde(default)]
    pub authorisation: Option<NewAuthorisation>,
}

/// An operator's rollback or suspension body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIntervention {
    pub reason: String,
}

/// A batch of observations.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewObservations {
    pub observations: Vec<request::Observation>,
}

/// A deployment as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Deployment {
    pub id: String,
    pub release_id: String,
    pub system_id: String,
    pub status: DeploymentStatus,
    pub stage: String,
    pub traffic_percent: f64,
    pub stage_entered_at: Timestamp,
    pub deployed_at: Timestamp,
    pub version: i64,
    pub updated_at: Timestamp,
    pub plan: Plan,
    /// The external objects that serve this deployment; a ref resolves to
    /// the newest deployment created with it.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub refs: Refs,
}

impl Deployment {
    pub fn route(&self) -> Route {
        Route {
            deployment_id: self.id.clone(),
            release_id: self.release_id.clone(),
            status: self.status,
            stage: self.stage.clone(),
            traffic_percent: self.traffic_percent,
            version: self.version,
        }
    }

    /// The plan's last stage: full exposure.
    pub fn last_stage(&self) -> Option<&str> {
        self.plan
            .stages
            .last()
            .and_then(|s| s.name.as_deref())
            .map(str::trim)
    }

    /// The traffic percent of stage `name` in the plan.
    pub fn stage_percent(&self, name: &str) -> Option<f64> {
        self.plan
            .stages
            .iter()
            .find(|s| s.name.as_deref().map(str::trim) == Some(name.trim()))
            .and_then(|s| s.traffic_percent)
    }

    /// Whether `name` is a stage of the plan.
    pub fn has_stage(&self, name: &str) -> bool {
        self.plan
            .stages
            .iter()
            .any(|s| s.name.as_deref().map(str::trim) == Some(name.trim()))
    }
}

/// What a deployment's route looks like to a serving gateway.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Route {
    pub deployment_id: String,
    pub release_id: String,
    pub status: DeploymentStatus,
    pub stage: String,
    pub traffic_percent: f64,
    pub version: i64,
}

/// What a history event says beyond its kind and the state it left.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventDetail {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub obligations: Vec<Obligation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorised_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The monitoring policy acted by itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub automatic: bool,
    /// An operator acted, without a policy decision.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
    /// For `superseded`: the newer deployment, and the ref they share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_ref: Option<String>,
    /// For `reported`: who reported (e.g. `flagger`), the hook, and the
    /// rollout's phase and checksum as the controller gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// One entry of a deployment's history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub seq: i64,
    pub at: Timestamp,
    pub actor: String,
    pub event: EventKind,
    pub status: DeploymentStatus,
    pub stage: String,
    pub traffic_percent: f64,
    pub decision_id: Option<String>,
    pub reason: Option<String>,
    pub detail: EventDetail,
}

/// A deployment with its history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeploymentView {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub history: Vec<Event>,
}

/// The result of a state-changing operation on a deployment: its state
/// after, and the decision that moved it (none for an operator's action).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Transition {
    pub deployment: Deployment,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Envelope>,
    /// Observations stored by the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<usize>,
}

/// What stagegate read from one attestation of a release: who signed it,
/// what it states and where in the release's evidence that went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttestationView {
    /// Its index in the release's `attestations`.
    pub index: usize,
    /// The trusted key that signed it.
    pub keyid: String,
    pub predicate_type: String,
    /// `sha256:` of the signed statement (the DSSE payload).
    pub statement_digest: String,
    /// `sha256:` of the envelope as sent (what receipts cite).
    pub envelope_digest: String,
    /// JSON pointers into the release of the evidence taken from it
    /// (`/verification/results/2`, `/supply_chain`); empty when its
    /// predicate type maps to nothing.
    pub evidence: Vec<String>,
    /// For SLSA provenance: the builder and the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<crate::attest::predicates::Provenance>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_urls_lose_credentials_and_queries() {
        assert_eq!(
            redact_url("https://user:pw@hooks.example/a/b?token=x#f"),
            "https://***@hooks.example/a/b?***"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:9001/hook"),
            "http://127.0.0.1:9001/hook"
        );
    }

    #[test]
    fn statuses_and_event_kinds_read_back_what_they_write() {
        for s in [
            DeploymentStatus::Active,
            DeploymentStatus::RolledBack,
            DeploymentStatus::Suspended,
        ] {
            assert_eq!(DeploymentStatus::parse(s.as_str()), Some(s));
        }
        for k in [EventKind::Created, EventKind::Held, EventKind::RolledBack] {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(DeploymentStatus::parse("gone"), None);
    }
}
