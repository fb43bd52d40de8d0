//! A deployment's record as an OSCAL assessment-results document
//! (docs/oscal.md), for the compliance tools auditors already use.
//!
//! The document is a pure function of the stored records and the bundle's
//! control map: every UUID is a version-5 UUID of a stable record id, and
//! every timestamp comes from a record (never the clock), so two exports of
//! the same record are byte-identical and an unchanged deployment keeps its
//! identifiers across exports.
//!
//! - one `result` per deployment, reviewing every control `controls.json`
//!   cites;
//! - one `observation` per piece of evidence: authorisations, reviews,
//!   risk acceptances, verification results, monitoring observations, and
//!   the policy's decisions;
//! - one `finding` per control: not satisfied when the latest decision of
//!   some kind (gate, progression, monitoring) has a negative outcome and a
//!   finding code citing that control; those codes are the decisive ones.

pub mod model;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use self::model::*;
use super::chain::Chained;
use super::export::Export;
use super::{RecordError, Records};
use crate::decision::{Controls, Timestamp};

/// A monitoring observation as stored.
#[derive(Debug, Clone)]
pub struct MonitoringRow {
    pub id: String,
    pub metric: String,
    pub value: f64,
    pub samples: Option<i64>,
    pub window_end: Timestamp,
    pub recorded_at: Timestamp,
    pub actor: String,
}

/// Everything the document is made of, read from the records.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub export: Export,
    pub monitoring: Vec<MonitoringRow>,
}

impl Evidence {
    /// The bundle that decided this deployment (its first decision's), whose
    /// control map the findings are judged by.
    pub fn bundle(&self) -> Option<&str> {
        self.export
            .decisions
            .first()
            .map(|c| c.entry.bundle.as_str())
    }
}

impl Records {
    /// The records an OSCAL export of deployment `id` is made of.
    pub async fn oscal_evidence(&self, id: &str) -> Result<Evidence, RecordError> {
        let export = self.export(id).await?;
        let rows = sqlx::query(
            "SELECT id, metric, value, samples, window_end, recorded_at, actor \
             FROM observations WHERE deployment_id = $1 ORDER BY window_end, id",
        )
        .bind(id)
        .fetch_all(&self.store.pool)
        .await?;
        let monitoring = rows
            .iter()
            .map(|r| {
                Ok(MonitoringRow {
                    id: r.try_get("id")?,
                    metric: r.try_get("metric")?,
                    value: r.try_get("value")?,
                    samples: r.try_get("samples")?,
                    window_end: Timestamp(r.try_get("window_end")?),
                    recorded_at: Timestamp(r.try_get("recorded_at")?),
                    actor: r.try_get("actor")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(Evidence { export, monitoring })
    }
}

/// The document as served and printed: pretty JSON and a final newline, so
/// the HTTP answer and `stagegate audit export --format oscal` are the same
/// bytes.
pub fn to_bytes(doc: &Document) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = serde_json::to_vec_pretty(doc)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The namespace of every UUID in an export: itself a v5 UUID, of
/// stagegate's OSCAL namespace URN.
fn namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, NS.as_bytes())
}

/// The v5 UUID of a stable id such as `finding/<deployment>/<control>`.
fn uuid_of(ns: &Uuid, stable_id: &str) -> String {
    Uuid::new_v5(ns, stable_id.as_bytes()).to_string()
}

/// One line of text: OSCAL strings may not start or end with whitespace,
/// and property values may not span lines.
fn line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A property, or none when the value is blank.
fn prop(name: &'static str, value: impl AsRef<str>) -> Option<Property> {
    let value = line(value.as_ref());
    (!value.is_empty()).then_some(Property {
        name,
        ns: NS,
        value,
    })
}

/// The serde name of a unit enum value (`approved_with_conditions`).
fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A number as JSON writes it (`0.05`, not `0.05000000000000000277`).
fn number(v: f64) -> String {
    serde_json::to_string(&v).unwrap_or_default()
}

/// Outcomes that hold a deployment back: a decision with one of these is
/// a failed check of the controls its finding codes cite.
fn negative(outcome: &str) -> bool {
    matches!(outcome, "deny" | "hold" | "rollback" | "suspend" | "alert")
}

/// OSCAL control ids are tokens (a letter or `_`, then letters, digits,
/// `.`, `-`, `_`); control references are citations such as
/// `ISO/IEC 42001:2023 A.6.2.7`. Each reference gets a token of its own:
/// lower-cased, every other character run a `-`, numbered on collision.
fn control_ids(refs: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut taken = BTreeSet::new();
    let mut ids = BTreeMap::new();
    for r in refs {
        let mut id = String::new();
        for c in r.chars().flat_map(char::to_lowercase) {
            if c.is_alphanumeric() || matches!(c, '.' | '_') {
                id.push(c);
            } else if !id.ends_with('-') {
                id.push('-');
            }
        }
        let id = id.trim_matches(|c| c == '-' || c == '.').to_string();
        let id = match id.chars().next() {
            Some(c) if c.is_alphabetic() || c == '_' => id,
            _ => format!("control-{id}"),
        };
        let mut unique = id.clone();
        let mut n = 2;
        while !taken.insert(unique.clone()) {
            unique = format!("{id}-{n}");
            n += 1;
        }
        ids.insert(r.clone(), unique);
    }
    ids
}

/// An observation and the control references it bears on.
struct Seen {
    observation: Observation,
    controls: BTreeSet<String>,
}

/// The references a piece of evidence bears on: those `controls.json`
/// gives the finding codes about that kind of evidence (`review.`, ...).
fn cited(controls: &Controls, prefixes: &[&str]) -> BTreeSet<String> {
    prefixes
        .iter()
        .flat_map(|p| controls.lookup(p).iter().cloned())
        .collect()
}

/// Builds the assessment-results document of one deployment.
pub fn document(ev: &Evidence, controls: &Controls) -> Document {
    let ns = namespace();
    let x = &ev.export;
    let d = &x.deployment;
    let mut seen: Vec<Seen> = Vec::new();
    let mut latest = d.updated_at.max(d.deployed_at);

    for c in &x.decisions {
        let obs = decision_observation(&ns, c);
        latest = latest.max(obs.collected);
        let refs = c
            .entry
            .codes
            .iter()
            .flat_map(|code| controls.lookup(code).iter().cloned())
            .collect();
        seen.push(Seen {
            observation: obs,
            controls: refs,
        });
    }
    for a in &x.authorisations {
        let r = &a.record;
        let mut props: Vec<Property> = [
            prop("record-id", &a.id),
            prop("authorised-by", &r.authorised_by),
            prop("role", &r.role),
        ]
        .into_iter()
        .flatten()
        .collect();
        props.extend(r.conditions.iter().filter_map(|c| prop("condition", c)));
        props.extend(r.scope.iter().flatten().filter_map(|s| prop("scope", s)));
        let scope = match &r.scope {
            Some(s) if !s.is_empty() => format!(" for {}", line(&s.join(", "))),
            _ => String::new(),
        };
        seen.push(Seen {
            observation: Observation {
                uuid: uuid_of(&ns, &format!("observation/authorisation/{}", a.id)),
                title: line(&format!(
                    "Authorisation by {} ({})",
                    r.authorised_by, r.role
                )),
                description: line(&format!(
                    "{} ({}) authorised the deployment of release {}{scope}.",
                    r.authorised_by, r.role, x.release.release_id
                )),
                props,
                methods: vec![Method::Examine],
                types: vec![ObservationType::ControlObjective],
                collected: r.authorised_at,
                expires: r.expires_at,
                remarks: None,
            },
            controls: cited(controls, &["authorisation."]),
        });
    }
    for rv in &x.reviews {
        let r = &rv.record;
        let mut props: Vec<Property> = [
            prop("record-id", &rv.id),
            prop("reviewer", &r.reviewer),
            prop("review-outcome", word(&r.outcome)),
            r.target_stage
                .as_ref()
                .and_then(|s| prop("target-stage", s)),
        ]
        .into_iter()
        .flatten()
        .collect();
        props.extend(r.conditions.iter().filter_map(|c| prop("condition", c)));
        seen.push(Seen {
            observation: Observation {
                uuid: uuid_of(&ns, &format!("observation/review/{}", rv.id)),
                title: line(&format!("Review by {}: {}", r.reviewer, word(&r.outcome))),
                description: line(&format!(
                    "{} completed a review of release {} with the outcome {}.",
                    r.reviewer,
                    x.release.release_id,
                    word(&r.outcome)
                )),
                props,
                methods: vec![Method::Examine],
                types: vec![ObservationType::ControlObjective],
                collected: r.completed_at,
                expires: None,
                remarks: r.notes.as_deref().map(line).filter(|n| !n.is_empty()),
            },
            controls: cited(controls, &["review."]),
        });
    }
    for ac in &x.acceptances {
        let r = &ac.record.acceptance;
        seen.push(Seen {
            observation: Observation {
                uuid: uuid_of(&ns, &format!("observation/acceptance/{}", ac.id)),
                title: line(&format!(
                    "Risk acceptance of {} by {}",
                    ac.record.deficiency_id, r.accepted_by
                )),
                description: line(&format!(
                    "{} accepted the residual risk of deficiency {}: {}",
                    r.accepted_by, ac.record.deficiency_id, r.rationale
                )),
                props: [
                    prop("record-id", &ac.id),
                    prop("deficiency-id", &ac.record.deficiency_id),
                    prop("accepted-by", &r.accepted_by),
                ]
                .into_iter()
                .flatten()
                .collect(),
                methods: vec![Method::Examine],
                types: vec![ObservationType::Mitigation],
                collected: r.accepted_at,
                expires: r.expires_at,
                remarks: None,
            },
            controls: cited(controls, &["deficiency."]),
        });
    }
    if let Some(v) = &x.release.release.verification {
        let rel = &x.release;
        let refs = cited(controls, &["verification.", "integration."]);
        seen.push(Seen {
            observation: Observation {
                uuid: uuid_of(&ns, &format!("observation/verification/{}", rel.release_id)),
                title: line(&format!("Verification of release {}", rel.release_id)),
                description: line(&format!(
                    "Verification complete: {}; integration testing required: {}, done: {}; {} result(s) submitted.",
                    v.complete,
                    v.integration_required,
                    v.integration_tested,
                    v.results.len()
                )),
                props: [
                    prop("release-id", &rel.release_id),
                    prop("complete", v.complete.to_string()),
                    prop("integration-required", v.integration_required.to_string()),
                    prop("integration-tested", v.integration_tested.to_string()),
                    prop("submitted-by", &rel.created_by),
                ]
                .into_iter()
                .flatten()
                .collect(),
                methods: vec![Method::Examine],
                types: vec![ObservationType::ControlObjective],
                collected: rel.created_at,
                expires: None,
                remarks: None,
            },
            controls: refs.clone(),
        });
        for (i, r) in v.results.iter().enumerate() {
            let name = r
                .name
                .clone()
                .unwrap_or_else(|| format!("result {}", i + 1));
            let mut props: Vec<Property> = [
                prop("release-id", &rel.release_id),
                prop("verification-result", &name),
                prop("passed", r.passed.to_string()),
                r.metric.and_then(|m| prop("metric", number(m))),
                r.threshold.and_then(|t| prop("threshold", number(t))),
                r.evidence.as_ref().and_then(|e| prop("evidence", e)),
                // No verification result is attested yet: each is the
                // release submitter's assertion (docs/oscal.md#observations).
                prop("attested", "false"),
                prop("submitted-by", &rel.created_by),
            ]
            .into_iter()
            .flatten()
            .collect();
            props.dedup();
            seen.push(Seen {
                observation: Observation {
                    uuid: uuid_of(
                        &ns,
                        &format!("observation/verification/{}/{i}", rel.release_id),
                    ),
                    title: line(&format!(
                        "Verification result {name}: {}",
                        if r.passed { "passed" } else { "failed" }
                    )),
                    description: line(&format!(
                        "Release {} reports the verification result {name} as {}{}; asserted by {}, not attested.",
                        rel.release_id,
                        if r.passed { "passed" } else { "failed" },
                        match (r.metric, r.threshold) {
                            (Some(m), Some(t)) => format!(" (metric {}, threshold {})", number(m), number(t)),
                            (Some(m), None) => format!(" (metric {})", number(m)),
                            _ => String::new(),
                        },
                        rel.created_by
                    )),
                    props,
                    methods: vec![Method::Examine],
                    types: vec![ObservationType::ControlObjective],
                    collected: rel.created_at,
                    expires: None,
                    remarks: None,
                },
                controls: refs.clone(),
            });
        }
    }
    let monitoring_refs = cited(controls, &["monitoring.", "trigger."]);
    for m in &ev.monitoring {
        latest = latest.max(m.recorded_at);
        seen.push(Seen {
            observation: Observation {
                uuid: uuid_of(&ns, &format!("observation/monitoring/{}", m.id)),
                title: line(&format!("{} = {}", m.metric, number(m.value))),
                description: line(&format!(
                    "Monitoring measured {} = {}{} over the window ending {}, recorded by {}.",
                    m.metric,
                    number(m.value),
                    m.samples
                        .map(|n| format!(" from {n} samples"))
                        .unwrap_or_default(),
                    m.window_end,
                    m.actor
                )),
                props: [
                    prop("record-id", &m.id),
                    prop("metric", &m.metric),
                    prop("value", number(m.value)),
                    m.samples.and_then(|n| prop("samples", n.to_string())),
                    prop("recorded-by", &m.actor),
                ]
                .into_iter()
                .flatten()
                .collect(),
                methods: vec![Method::Test],
                types: vec![ObservationType::ControlObjective],
                collected: m.window_end,
                expires: None,
                remarks: None,
            },
            controls: monitoring_refs.clone(),
        });
    }
    for s in &seen {
        latest = latest.max(s.observation.collected);
    }
    for e in &x.history {
        latest = latest.max(e.at);
    }

    let refs: BTreeSet<String> = controls.map.values().flatten().cloned().collect();
    let ids = control_ids(&refs);
    let findings = findings(&ns, &d.id, &x.decisions, controls, &ids, &seen);

    let decided_by = x.decisions.first().map(|c| &c.entry);
    let (href, plan) = match decided_by {
        Some(e) => (
            format!("urn:stagegate:bundle:{}:{}", e.bundle, e.bundle_version),
            format!(
                "The assessment plan is the policy bundle {} version {} (digest {}) that decided this deployment: its controls.json names the controls reviewed and its rules are the tests applied. Fetch it with GET /v1/bundles/{} or from the bundle source.",
                e.bundle, e.bundle_version, e.bundle_digest, e.bundle
            ),
        ),
        None => (
            "urn:stagegate:bundle:none".to_string(),
            "No policy decision has been recorded for this deployment, so no bundle is its assessment plan.".to_string(),
        ),
    };
    let version = x
        .chain
        .proof
        .last()
        .map_or_else(|| "0".to_string(), |p| p.seq.to_string());
    let selection = if ids.is_empty() {
        ControlSelection::All {
            description: "The bundle has no controls.json: all controls of its catalogue."
                .to_string(),
            include_all: IncludeAll {},
        }
    } else {
        ControlSelection::Listed {
            description: line(&format!(
                "Every control the bundle's controls.json cites{}.",
                controls
                    .catalogue
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            )),
            include_controls: ids
                .values()
                .map(|id| SelectControl {
                    control_id: id.clone(),
                })
                .collect(),
        }
    };
    let release = &x.release;
    let system = &x.system.system;
    Document {
        assessment_results: AssessmentResults {
            uuid: uuid_of(&ns, &format!("assessment-results/{}", d.id)),
            metadata: Metadata {
                title: line(&format!(
                    "stagegate assessment results: deployment {} of {}",
                    d.id, release.release_id
                )),
                last_modified: latest,
                version,
                oscal_version: OSCAL_VERSION,
                props: [
                    prop("deployment-id", &d.id),
                    prop("log-verified", x.chain.log_verified.to_string()),
                ]
                .into_iter()
                .flatten()
                .collect(),
                remarks: Some(
                    "Generated by stagegate from its hash-chained records. The version is the sequence number of the deployment's last decision-log entry."
                        .to_string(),
                ),
            },
            import_ap: ImportAp {
                href,
                remarks: plan,
            },
            results: vec![AssessmentResult {
                uuid: uuid_of(&ns, &format!("result/{}", d.id)),
                title: line(&format!(
                    "Deployment {} of release {} ({})",
                    d.id,
                    release.release_id,
                    d.status
                )),
                description: line(&format!(
                    "The deployment of {} release {} from {} to its {} stage ({}% of traffic), status {}, as decided by the policy and recorded by stagegate.",
                    system.name.as_deref().unwrap_or(&system.id),
                    release.release.version,
                    d.deployed_at,
                    d.stage,
                    number(d.traffic_percent),
                    d.status
                )),
                start: d.deployed_at,
                end: latest,
                props: [
                    prop("deployment-id", &d.id),
                    prop("system-id", &d.system_id),
                    prop("release-id", &d.release_id),
                    prop("risk-tier", word(&system.risk_tier)),
                    prop("status", d.status.as_str()),
                    prop("stage", &d.stage),
                    prop("traffic-percent", number(d.traffic_percent)),
                ]
                .into_iter()
                .flatten()
                .collect(),
                reviewed_controls: ReviewedControls {
                    control_selections: vec![selection],
                },
                observations: seen.into_iter().map(|s| s.observation).collect(),
                findings,
            }],
        },
    }
}

/// A decision as an observation of the policy's test.
fn decision_observation(ns: &Uuid, c: &Chained) -> Observation {
    let e = &c.entry;
    let codes = if e.codes.is_empty() {
        "no finding".to_string()
    } else {
        e.codes.join(", ")
    };
    let mut props: Vec<Property> = [
        prop("decision-id", &e.decision_id),
        prop("decision-kind", &e.kind),
        prop("outcome", &e.outcome),
    ]
    .into_iter()
    .flatten()
    .collect();
    props.extend(e.codes.iter().filter_map(|c| prop("finding-code", c)));
    props.extend(
        [
            prop("bundle", &e.bundle),
            prop("bundle-version", &e.bundle_version),
            prop("bundle-digest", &e.bundle_digest),
            prop("request-digest", &e.request_digest),
            prop("log-seq", c.seq.to_string()),
            prop("log-hash", &c.hash),
            prop("asked-by", &e.actor),
        ]
        .into_iter()
        .flatten(),
    );
    Observation {
        uuid: uuid_of(ns, &format!("observation/decision/{}", e.decision_id)),
        title: line(&format!("{} decision: {}", e.kind, e.outcome)),
        description: line(&format!(
            "Policy {} {} decided {} ({codes}) on a {} request by {}.",
            e.bundle, e.bundle_version, e.outcome, e.kind, e.actor
        )),
        props,
        methods: vec![Method::Test],
        types: vec![ObservationType::Finding],
        collected: Timestamp(e.at),
        expires: None,
        remarks: None,
    }
}

/// One finding per control reference.
fn findings(
    ns: &Uuid,
    deployment: &str,
    decisions: &[Chained],
    controls: &Controls,
    ids: &BTreeMap<String, String>,
    seen: &[Seen],
) -> Vec<Finding> {
    // The standing decision of each kind: the latest one that decided a
    // transition. Read-only evaluations (what rollout controllers and the
    // admission webhook ask) change nothing, so they do not decide a
    // control's status: a controller polling every minute would otherwise
    // flip it back and forth.
    let mut standing: BTreeMap<&str, &Chained> = BTreeMap::new();
    for c in decisions.iter().filter(|c| !c.entry.read_only) {
        standing.insert(c.entry.kind.as_str(), c);
    }
    ids.iter()
        .map(|(reference, id)| {
            let mut decisive: Vec<&str> = Vec::new();
            let mut failing: Vec<String> = Vec::new();
            for c in standing.values() {
                if !negative(&c.entry.outcome) {
                    continue;
                }
                let codes: Vec<&str> = c
                    .entry
                    .codes
                    .iter()
                    .map(String::as_str)
                    .filter(|code| controls.lookup(code).contains(reference))
                    .collect();
                if !codes.is_empty() {
                    failing.push(format!(
                        "the latest {} decision ({}) was {} with {}",
                        c.entry.kind,
                        c.entry.decision_id,
                        c.entry.outcome,
                        codes.join(", ")
                    ));
                    decisive.extend(codes);
                }
            }
            decisive.sort_unstable();
            decisive.dedup();
            let (state, reason, description) = if decisions.is_empty() {
                (
                    State::NotSatisfied,
                    Reason::Other,
                    format!("{reference}: not assessed, no policy decision has been recorded for this deployment."),
                )
            } else if failing.is_empty() {
                (
                    State::Satisfied,
                    Reason::Pass,
                    format!("{reference}: satisfied; no standing decision of this deployment fails a rule citing it."),
                )
            } else {
                (
                    State::NotSatisfied,
                    Reason::Fail,
                    format!("{reference}: not satisfied; {}.", failing.join("; ")),
                )
            };
            let mut props: Vec<Property> = prop("control-reference", reference)
                .into_iter()
                .collect();
            props.extend(decisive.iter().filter_map(|c| prop("decisive-code", c)));
            let related = seen
                .iter()
                .filter(|s| s.controls.contains(reference))
                .map(|s| RelatedObservation {
                    observation_uuid: s.observation.uuid.clone(),
                })
                .collect();
            Finding {
                uuid: uuid_of(ns, &format!("finding/{deployment}/{reference}")),
                title: line(reference),
                description: line(&description),
                props,
                target: FindingTarget {
                    kind: "objective-id",
                    target_id: id.clone(),
                    title: line(reference),
                    status: TargetStatus {
                        state,
                        reason,
                        remarks: None,
                    },
                },
                related_observations: related,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_references_become_distinct_tokens() {
        let refs: BTreeSet<String> = [
            "ISO/IEC 42001:2023 A.6.2.7",
            "ISO/IEC 42001:2023 A.6.2.7 ",
            "9.3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let ids = control_ids(&refs);
        assert_eq!(
            ids["ISO/IEC 42001:2023 A.6.2.7"],
            "iso-iec-42001-2023-a.6.2.7"
        );
        assert_eq!(
            ids["ISO/IEC 42001:2023 A.6.2.7 "],
            "iso-iec-42001-2023-a.6.2.7-2"
        );
        assert_eq!(ids["9.3"], "control-9.3");
    }

    #[test]
    fn uuids_are_version_5_and_stable() {
        let ns = namespace();
        let a = uuid_of(&ns, "finding/d/x");
        assert_eq!(a, uuid_of(&ns, "finding/d/x"));
        assert_ne!(a, uuid_of(&ns, "finding/d/y"));
        assert_eq!(a.as_bytes()[14], b'5', "{a}");
    }

    fn decided(seq: i64, kind: &str, outcome: &str, codes: &[&str]) -> Chained {
        Chained {
            seq,
            entry: crate::records::chain::LogEntry {
                decision_id: format!("D{seq}"),
                at: seq * 1000,
                kind: kind.into(),
                outcome: outcome.into(),
                codes: codes.iter().map(|c| c.to_string()).collect(),
                bundle: "b".into(),
                bundle_version: "1.0.0".into(),
                bundle_digest: "sha256:0".into(),
                request_digest: "sha256:1".into(),
                request: None,
                deployment_id: Some("d".into()),
                read_only: false,
                actor: "ops".into(),
                record: None,
            },
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn states(decisions: &[Chained]) -> Vec<(String, State, Vec<String>)> {
        let controls = Controls::parse(
            br#"{"map": {"progression.": ["P"], "trigger.": ["M"], "risk.": ["R"]}}"#,
        )
        .unwrap();
        let refs = controls.map.values().flatten().cloned().collect();
        let ns = namespace();
        findings(&ns, "d", decisions, &controls, &control_ids(&refs), &[])
            .into_iter()
            .map(|f| {
                let codes = f
                    .props
                    .iter()
                    .filter(|p| p.name == "decisive-code")
                    .map(|p| p.value.clone())
                    .collect();
                (f.title, f.target.status.state, codes)
            })
            .collect()
    }

    #[test]
    fn a_control_fails_on_a_standing_negative_decision_citing_it_and_passes_once_superseded() {
        let gate = decided(1, "gate", "allow", &["risk.note"]);
        let held = decided(2, "progression", "hold", &["progression.too_early"]);
        assert_eq!(
            states(&[gate.clone(), held.clone()]),
            [
                ("M".to_string(), State::Satisfied, vec![]),
                (
                    "P".to_string(),
                    State::NotSatisfied,
                    vec!["progression.too_early".to_string()]
                ),
                // A code on a positive decision decides nothing.
                ("R".to_string(), State::Satisfied, vec![]),
            ]
        );
        // The hold is superseded by a promotion: satisfied again, while a
        // rollback now fails the monitoring control.
        let promoted = decided(3, "progression", "promote", &[]);
        let rolled = decided(4, "monitoring", "rollback", &["trigger.rollback"]);
        assert_eq!(
            states(&[gate, held, promoted, rolled]),
            [
                (
                    "M".to_string(),
                    State::NotSatisfied,
                    vec!["trigger.rollback".to_string()]
                ),
                ("P".to_string(), State::Satisfied, vec![]),
                ("R".to_string(), State::Satisfied, vec![]),
            ]
        );
        // Nothing decided: nothing is satisfied.
        assert!(
            states(&[])
                .iter()
                .all(|(_, s, _)| *s == State::NotSatisfied)
        );
    }

    #[test]
    fn property_values_are_one_trimmed_line_and_blank_ones_are_dropped() {
        assert_eq!(prop("n", "  a\n b ").unwrap().value, "a b");
        assert!(prop("n", " \n").is_none());
    }
}
