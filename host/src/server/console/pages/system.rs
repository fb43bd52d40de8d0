//! One system (`/ui/systems/{id}`): its deployments, each release with its
//! evidence, and the notice as users see it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::evidence::{acceptance_view, authorisation_view, review_view};
use super::*;
use crate::server::App;

struct NoticeView {
    release: String,
    capabilities: String,
    intended_use: String,
    limitations: Vec<String>,
    reliance_conditions: String,
    user_guidance: String,
    human_oversight: bool,
    escalation_contact: String,
    operational: String,
}

pub struct ResultView {
    pub name: String,
    pub passed: bool,
    pub measured: String,
    pub evidence: Option<String>,
}

pub struct ReleaseView {
    pub id: String,
    pub version: String,
    pub created: String,
    pub artifact: String,
    pub verification: String,
    pub results: Vec<ResultView>,
    pub deficiencies: Vec<String>,
    pub reviews: Vec<ReviewView>,
    pub authorisations: Vec<AuthorisationView>,
    pub acceptances: Vec<AcceptanceView>,
    /// Reviews, authorisations and acceptances are shown (auditors only).
    pub audit_facts: bool,
}

pub struct DeploymentRowView {
    pub id: String,
    pub release: String,
    pub stage: String,
    pub status: String,
    pub class: &'static str,
    pub deployed: String,
}

fn release_view(r: &crate::records::console::ReleaseRecord) -> ReleaseView {
    let e = &r.release.release;
    let (verification, results) = match &e.verification {
        None => ("no verification evidence recorded".to_string(), Vec::new()),
        Some(v) => (
            format!(
                "{}; integration {}",
                if v.complete { "complete" } else { "incomplete" },
                match (v.integration_required, v.integration_tested) {
                    (false, _) => "not required",
                    (true, true) => "required and tested",
                    (true, false) => "required, not tested",
                }
            ),
            v.results
                .iter()
                .map(|x| ResultView {
                    name: x.name.clone().unwrap_or_else(|| "unnamed".into()),
                    passed: x.passed,
                    measured: match (x.metric, x.threshold) {
                        (Some(m), Some(t)) => {
                            format!("{} (threshold {})", charts::number(m), charts::number(t))
                        }
                        (Some(m), None) => charts::number(m),
                        _ => "—".into(),
                    },
                    evidence: x.evidence.clone(),
                })
                .collect(),
        ),
    };
    ReleaseView {
        id: r.release.release_id.clone(),
        version: e.version.clone(),
        created: format!("{} by {}", r.release.created_at, r.release.created_by),
        artifact: e
            .artifact_digest
            .clone()
            .unwrap_or_else(|| "not recorded".into()),
        verification,
        results,
        deficiencies: e
            .deficiencies
            .iter()
            .map(|d| {
                format!(
                    "{} ({}, {})",
                    d.id.as_deref().unwrap_or("unnamed"),
                    d.severity.as_ref().map_or_else(
                        || "severity not stated".into(),
                        crate::records::evidence::wire_name
                    ),
                    d.status.as_ref().map_or_else(
                        || "status not stated".into(),
                        crate::records::evidence::wire_name
                    ),
                )
            })
            .collect(),
        reviews: r.reviews.iter().map(review_view).collect(),
        authorisations: r.authorisations.iter().map(authorisation_view).collect(),
        acceptances: r.acceptances.iter().map(acceptance_view).collect(),
        audit_facts: true,
    }
}

fn deployment_row_view(d: &crate::records::model::Deployment) -> DeploymentRowView {
    DeploymentRowView {
        id: d.id.clone(),
        release: d.release_id.clone(),
        stage: format!("{} at {}", d.stage, pct(d.traffic_percent)),
        status: d.status.as_str().replace('_', " "),
        class: status_class(d.status),
        deployed: time(d.deployed_at),
    }
}

#[derive(Template)]
#[template(path = "console/system.html")]
struct SystemTemplate {
    chrome: Chrome,
    id: String,
    name: String,
    risk_tier: String,
    consequential: String,
    escalation_contact: String,
    created: String,
    releases: Vec<ReleaseView>,
    deployments: Vec<DeploymentRowView>,
    notice: Option<NoticeView>,
    notice_missing: Option<String>,
}

/// A JSON value in one line, strings without quotes.
fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    }
}

fn text(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(|s| s.as_str())
        .unwrap_or("not stated")
        .to_string()
}

/// What the API gives the viewer's role of a release: reviews,
/// authorisations and risk acceptances are facts of the auditor's record
/// (`GET /v1/deployments/{id}/record`); `GET /v1/releases/{id}` gives the
/// other roles the evidence only.
fn scoped(mut r: ReleaseView, v: &Viewer) -> ReleaseView {
    if !v.caller.has(crate::auth::Role::Auditor) {
        r.reviews.clear();
        r.authorisations.clear();
        r.acceptances.clear();
        r.audit_facts = false;
    }
    r
}

pub async fn system(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let v = match viewer_of(&app, &headers, "system", &id) {
        Ok(v) => v,
        Err(answer) => return *answer,
    };
    let record = match app.records.system_record(&id).await {
        Ok(r) => r,
        Err(e) => return failed(e, &v).into_response(),
    };
    let (notice, notice_missing) =
        match crate::server::routes::notice::notice_value(&app, &id).await {
            Ok(n) => {
                let op = &n["operational"];
                let operational = if op["in_operational_use"].as_bool() == Some(true) {
                    format!(
                        "in operational use: {} at {}% since {}",
                        text(op, "stage"),
                        op["traffic_percent"]
                            .as_f64()
                            .map(charts::number)
                            .unwrap_or_default(),
                        text(op, "stage_since")
                    )
                } else {
                    "not in operational use".into()
                };
                (
                    Some(NoticeView {
                        release: text(&n, "release"),
                        capabilities: text(&n, "capabilities"),
                        intended_use: text(&n, "intended_use"),
                        limitations: n["limitations"]
                            .as_array()
                            .map(|a| a.iter().map(compact).collect())
                            .unwrap_or_default(),
                        reliance_conditions: text(&n, "reliance_conditions"),
                        user_guidance: text(&n, "user_guidance"),
                        human_oversight: n["human_oversight"].as_bool().unwrap_or(false),
                        escalation_contact: text(&n, "escalation_contact"),
                        operational,
                    }),
                    None,
                )
            }
            Err(e) => (None, Some(e.message)),
        };
    let s = &record.system.system;
    let chrome = Chrome::new(&v, format!("System {id}"), "systems")
        .api("System (JSON)", format!("/v1/systems/{id}"))
        .api(
            "User notice (JSON or HTML)",
            format!("/v1/systems/{id}/notice"),
        );
    render(&SystemTemplate {
        chrome,
        name: s.name.clone().unwrap_or_default(),
        risk_tier: crate::records::evidence::wire_name(&s.risk_tier),
        consequential: match s.consequential {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => "not stated".into(),
        },
        escalation_contact: s
            .escalation_contact
            .clone()
            .unwrap_or_else(|| "not stated".into()),
        created: format!(
            "{} by {}",
            record.system.created_at, record.system.created_by
        ),
        id,
        releases: record
            .releases
            .iter()
            .map(release_view)
            .map(|r| scoped(r, &v))
            .collect(),
        deployments: record.deployments.iter().map(deployment_row_view).collect(),
        notice,
        notice_missing,
    })
    .into_response()
}
