//! The parts of the OSCAL assessment-results model that stagegate emits,
//! as typed structs (field names as OSCAL spells them in JSON).
//!
//! Only what the export fills in is modelled; every optional list is
//! skipped when empty, because OSCAL's JSON schema requires every array it
//! allows to have at least one item.

use serde::Serialize;

use crate::decision::Timestamp;

/// The OSCAL release whose published JSON schema the export is validated
/// against (tests/fixtures/oscal/SOURCE.md).
pub const OSCAL_VERSION: &str = "1.2.1";

/// Namespace of stagegate's own property names.
pub const NS: &str = "urn:stagegate:oscal";

fn no_items<T>(v: &[T]) -> bool {
    v.is_empty()
}

/// The document: `{"assessment-results": {...}}`.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    #[serde(rename = "assessment-results")]
    pub assessment_results: AssessmentResults,
}

#[derive(Debug, Clone, Serialize)]
pub struct AssessmentResults {
    pub uuid: String,
    pub metadata: Metadata,
    #[serde(rename = "import-ap")]
    pub import_ap: ImportAp,
    pub results: Vec<AssessmentResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metadata {
    pub title: String,
    #[serde(rename = "last-modified")]
    pub last_modified: Timestamp,
    pub version: String,
    #[serde(rename = "oscal-version")]
    pub oscal_version: &'static str,
    #[serde(skip_serializing_if = "no_items")]
    pub props: Vec<Property>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
}

/// What the results were assessed under: for stagegate, the policy bundle
/// (docs/oscal.md#import-ap).
#[derive(Debug, Clone, Serialize)]
pub struct ImportAp {
    pub href: String,
    pub remarks: String,
}

/// A name/value pair in stagegate's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Property {
    pub name: &'static str,
    pub ns: &'static str,
    pub value: String,
}

/// One `result`: the assessment of one deployment.
#[derive(Debug, Clone, Serialize)]
pub struct AssessmentResult {
    pub uuid: String,
    pub title: String,
    pub description: String,
    pub start: Timestamp,
    pub end: Timestamp,
    #[serde(skip_serializing_if = "no_items")]
    pub props: Vec<Property>,
    #[serde(rename = "reviewed-controls")]
    pub reviewed_controls: ReviewedControls,
    #[serde(skip_serializing_if = "no_items")]
    pub observations: Vec<Observation>,
    #[serde(skip_serializing_if = "no_items")]
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReviewedControls {
    #[serde(rename = "control-selections")]
    pub control_selections: Vec<ControlSelection>,
}

/// Either the listed controls, or (for a bundle without `controls.json`)
/// all of them.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ControlSelection {
    Listed {
        description: String,
        #[serde(rename = "include-controls")]
        include_controls: Vec<SelectControl>,
    },
    All {
        description: String,
        #[serde(rename = "include-all")]
        include_all: IncludeAll,
    },
}

/// OSCAL's empty `include-all` object.
#[derive(Debug, Clone, Serialize)]
pub struct IncludeAll {}

#[derive(Debug, Clone, Serialize)]
pub struct SelectControl {
    #[serde(rename = "control-id")]
    pub control_id: String,
}

/// How an observation was made (OSCAL's `methods` vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Method {
    /// Records read: authorisations, reviews, submitted evidence.
    #[serde(rename = "EXAMINE")]
    Examine,
    /// Measured or decided: monitoring observations, policy decisions.
    #[serde(rename = "TEST")]
    Test,
}

/// What an observation is about (OSCAL's `types` vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObservationType {
    ControlObjective,
    Finding,
    Mitigation,
    Historic,
}

#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    pub uuid: String,
    pub title: String,
    pub description: String,
    #[serde(skip_serializing_if = "no_items")]
    pub props: Vec<Property>,
    pub methods: Vec<Method>,
    pub types: Vec<ObservationType>,
    pub collected: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub uuid: String,
    pub title: String,
    pub description: String,
    #[serde(skip_serializing_if = "no_items")]
    pub props: Vec<Property>,
    pub target: FindingTarget,
    #[serde(rename = "related-observations", skip_serializing_if = "no_items")]
    pub related_observations: Vec<RelatedObservation>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingTarget {
    /// Always `objective-id`: the control's objective as a whole.
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(rename = "target-id")]
    pub target_id: String,
    pub title: String,
    pub status: TargetStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub state: State,
    pub reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Satisfied,
    NotSatisfied,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    Pass,
    Fail,
    Other,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelatedObservation {
    #[serde(rename = "observation-uuid")]
    pub observation_uuid: String,
}
