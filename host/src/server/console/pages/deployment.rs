//! One deployment (`/ui/deployments/{id}`): the traffic timeline with every
//! decision marked, one chart per monitored metric, the decisions, history,
//! plan, evidence, escalation deliveries, and (for auditors) the proof that
//! every log entry of the deployment is included in the newest signed
//! checkpoint, with that checkpoint.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;

use super::decision_row::decision_row;
use super::evidence::{acceptance_view, authorisation_view, review_view};
use super::*;
use crate::server::App;
use crate::server::console::charts::{MetricChart, Timeline};

pub struct StageView {
    pub name: String,
    pub traffic: String,
    pub criteria: String,
    pub current: bool,
}

pub struct HistoryView {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub event: String,
    pub class: &'static str,
    pub state: String,
    pub reason: String,
    pub decision: Option<String>,
}

pub struct DeliveryView {
    pub event: String,
    pub url: String,
    pub status: String,
    pub attempts: i64,
    pub created: String,
    pub delivered: String,
    pub last_error: String,
}

/// An entry of the deployment that is not proven, and why.
pub struct ProofView {
    pub seq: i64,
    pub decision_id: String,
    pub leaf_hash: String,
    pub reason: String,
}

/// Entries listed as not proven, at most: enough to act on, and a page
/// that stays small when a whole log is broken (the count says the rest).
const UNPROVEN_SHOWN: usize = 100;

#[derive(Template)]
#[template(path = "console/deployment.html")]
pub struct DeploymentTemplate {
    chrome: Chrome,
    /// The viewer is an auditor: the audit record's sections are shown.
    auditor: bool,
    id: String,
    system: String,
    system_name: String,
    release: String,
    status: String,
    status_class: &'static str,
    stage: String,
    deployed: String,
    stage_entered: String,
    version: i64,
    stages: Vec<StageView>,
    rollback: String,
    rollback_triggers: String,
    suspension_triggers: String,
    reviews: Vec<ReviewView>,
    authorisations: Vec<AuthorisationView>,
    acceptances: Vec<AcceptanceView>,
    observations: i64,
    timeline: Timeline,
    charts: Vec<MetricChart>,
    decisions: Vec<DecisionRow>,
    history: Vec<HistoryView>,
    escalations: Vec<DeliveryView>,
    /// Every entry of the deployment is proven by inclusion.
    verified: bool,
    /// What was proved, against which checkpoint, at what cost.
    proof_summary: String,
    /// Entries not proven (at most [`UNPROVEN_SHOWN`]), and how many in all.
    unproven: Vec<ProofView>,
    unproven_total: usize,
    checkpoint: Option<String>,
}

fn criteria_text(c: &[crate::decision::request::Criterion]) -> String {
    if c.is_empty() {
        return "none".into();
    }
    c.iter()
        .map(|c| {
            let op =
                c.op.as_ref()
                    .map(crate::records::evidence::wire_name)
                    .unwrap_or_default();
            let mut t = format!(
                "{} {} {}",
                c.metric.as_deref().unwrap_or("?"),
                op,
                c.threshold.map(charts::number).unwrap_or_default()
            );
            if let Some(n) = c.min_samples {
                t.push_str(&format!(" (at least {n} samples)"));
            }
            t
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The deployment page's template, filled from the records: what the
/// handler renders, and what the benchmark measures.
pub async fn deployment_page(
    app: &App,
    id: &str,
    v: &Viewer,
) -> Result<DeploymentTemplate, RecordError> {
    // The page shows what the API gives the same role: the audit record
    // (the release's evidence, the inclusion proof, the checkpoint) is the
    // auditors' (`GET /v1/deployments/{id}/record`); nobody else's view
    // pays for the proof.
    let auditor = v.caller.has(crate::auth::Role::Auditor);
    // Side by side: the deployment's records and the proof of its log
    // entries, and the observations behind the charts.
    let proved = async {
        let x = app.records.deployment_record(id).await?;
        let proof = match auditor {
            true => Some(app.records.prove_inclusion(&x.entries).await?),
            false => None,
        };
        Ok::<_, RecordError>((x, proof))
    };
    let (proved, observations) = tokio::join!(proved, app.records.observations(id));
    let ((x, proof), observations) = (proved?, observations?);
    let decision_entries: Vec<_> = x.decisions().cloned().collect();
    let reasons: HashMap<&str, &str> = x
        .history
        .iter()
        .filter_map(|e| Some((e.decision_id.as_deref()?, e.reason.as_deref()?)))
        .collect();
    let decisions: Vec<DecisionRow> = decision_entries
        .iter()
        .map(|c| {
            let reason = reasons
                .get(c.entry.decision_id.as_str())
                .map(|r| r.to_string());
            decision_row(app, c, reason)
        })
        .collect();
    let timeline = charts::timeline(
        x.deployment.deployed_at,
        &x.history,
        &decision_entries,
        |d| format!("/ui/decisions/{d}"),
    );
    let charts = charts::metric_charts(&x.deployment.plan, &observations);
    let mut chrome = Chrome::new(v, format!("Deployment {id}"), "systems")
        .api("Deployment (JSON)", format!("/v1/deployments/{id}"));
    if auditor {
        chrome = chrome
            .api(
                "Audit record (JSON)",
                format!("/v1/deployments/{id}/record"),
            )
            .api(
                "Audit record (OSCAL)",
                format!("/v1/deployments/{id}/record?format=oscal"),
            );
    }
    let d = &x.deployment;
    let plan = &d.plan;
    let mut page = DeploymentTemplate {
        auditor,
        chrome,
        id: d.id.clone(),
        system: d.system_id.clone(),
        system_name: x.system.system.name.clone().unwrap_or_default(),
        release: d.release_id.clone(),
        status: d.status.as_str().replace('_', " "),
        status_class: status_class(d.status),
        stage: format!("{} at {}", d.stage, pct(d.traffic_percent)),
        deployed: time(d.deployed_at),
        stage_entered: time(d.stage_entered_at),
        version: d.version,
        stages: plan
            .stages
            .iter()
            .map(|s| StageView {
                name: s.name.clone().unwrap_or_default(),
                traffic: s.traffic_percent.map(pct).unwrap_or_default(),
                criteria: criteria_text(&s.criteria),
                current: s.name.as_deref() == Some(d.stage.as_str()),
            })
            .collect(),
        rollback: plan
            .rollback
            .as_ref()
            .map(|r| {
                format!(
                    "{} ({})",
                    r.procedure.as_deref().unwrap_or("no procedure stated"),
                    if r.tested { "tested" } else { "not tested" }
                )
            })
            .unwrap_or_else(|| "no rollback plan".into()),
        rollback_triggers: plan
            .rollback
            .as_ref()
            .map_or_else(|| "none".into(), |r| criteria_text(&r.triggers)),
        suspension_triggers: criteria_text(&plan.suspension_triggers),
        reviews: x.reviews.iter().map(review_view).collect(),
        authorisations: x.authorisations.iter().map(authorisation_view).collect(),
        acceptances: x.acceptances.iter().map(acceptance_view).collect(),
        observations: x.observations_recorded,
        timeline,
        charts,
        decisions,
        history: x
            .history
            .iter()
            .map(|e| HistoryView {
                seq: e.seq,
                at: time(e.at),
                actor: e.actor.clone(),
                event: e.event.as_str().replace('_', " "),
                class: match e.event {
                    crate::records::model::EventKind::RolledBack => "bad",
                    crate::records::model::EventKind::Suspended
                    | crate::records::model::EventKind::Held
                    | crate::records::model::EventKind::Alert => "warn",
                    _ => "good",
                },
                state: format!(
                    "{}, {} at {}",
                    e.status.as_str().replace('_', " "),
                    e.stage,
                    pct(e.traffic_percent)
                ),
                reason: e.reason.clone().unwrap_or_default(),
                decision: e.decision_id.clone(),
            })
            .collect(),
        escalations: x
            .escalations
            .iter()
            .map(|e| DeliveryView {
                event: e.event.replace('_', " "),
                url: e.url.clone(),
                status: e.status.clone(),
                attempts: e.attempts,
                created: time(e.created_at),
                delivered: e.delivered_at.map_or_else(|| "not yet".into(), time),
                last_error: e.last_error.clone().unwrap_or_default(),
            })
            .collect(),
        verified: proof.as_ref().is_some_and(|p| p.all_proven()),
        proof_summary: proof
            .as_ref()
            .map(|p| proof_summary(p, decision_entries.len()))
            .unwrap_or_default(),
        unproven: proof
            .iter()
            .flat_map(|p| p.entries.iter())
            .filter(|e| !e.proven)
            .take(UNPROVEN_SHOWN)
            .map(|e| ProofView {
                seq: e.seq,
                decision_id: e.decision_id.clone(),
                leaf_hash: e.leaf_hash.clone(),
                reason: e.reason.clone().unwrap_or_default(),
            })
            .collect(),
        unproven_total: proof.as_ref().map_or(0, |p| p.entries.len() - p.proven()),
        checkpoint: proof
            .as_ref()
            .and_then(|p| p.checkpoint.as_ref())
            .map(|c| c.note.clone()),
    };
    if !auditor {
        page.reviews.clear();
        page.authorisations.clear();
        page.acceptances.clear();
        page.unproven.clear();
        page.proof_summary.clear();
        page.checkpoint = None;
    }
    Ok(page)
}

/// One sentence: what was proved, against which checkpoint, at what cost.
fn proof_summary(p: &crate::records::inclusion::InclusionCheck, decisions: usize) -> String {
    let n = p.entries.len();
    let Some(cp) = &p.checkpoint else {
        return format!(
            "None of the {n} log entries of this deployment is proven: {}.",
            p.unavailable.as_deref().unwrap_or("no signed checkpoint")
        );
    };
    let how = if p.all_proven() {
        "the entries are proved together by one batch inclusion proof"
    } else {
        "the batch inclusion proof of the entries failed, so each was checked alone with its own inclusion proof from the stored tree"
    };
    format!(
        "{} of the {n} log entries of this deployment ({decisions} decisions, {} record rows committed for it) are proven included in the checkpoint of {} entries signed at {}: each entry's leaf is recomputed from its stored row, and {how}, reading {} stored hashes of the tree (one entry's own proof takes at most {} hashes).",
        p.proven(),
        n - decisions,
        cp.size,
        cp.signed_at,
        p.tree_hashes_read,
        p.proof_length
    )
}

impl DeploymentTemplate {
    /// The page as HTML.
    pub fn html(&self) -> Result<String, askama::Error> {
        self.render()
    }
}

pub async fn deployment(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let v = match viewer_of(&app, &headers, "deployment", &id) {
        Ok(v) => v,
        Err(answer) => return *answer,
    };
    match deployment_page(&app, &id, &v).await {
        Ok(t) => render(&t).into_response(),
        Err(e) => failed(e, &v).into_response(),
    }
}
