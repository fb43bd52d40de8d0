//! The console's pages: each handler reads the records through
//! [`crate::records`] (no SQL here), shapes what the template shows, and
//! renders it. Bad input — an unknown id, a malformed filter — is a page
//! saying what is wrong with a 4xx status, never a 500.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::charts::{self, MetricChart, Timeline, outcome_class};
use super::{ROLES, Viewer, viewer};
use crate::decision::Timestamp;
use crate::records::RecordError;
use crate::records::chain::Chained;
use crate::records::console::{LogFilter, MAX_PAGE};
use crate::server::App;

/// Decision kinds the log filter accepts.
pub const KINDS: [&str; 4] = [
    "gate",
    "progression",
    "monitoring",
    "bundle.forced_activation",
];
/// Outcomes the log filter accepts.
pub const OUTCOMES: [&str; 9] = [
    "allow", "deny", "promote", "hold", "rollback", "suspend", "healthy", "alert", "recorded",
];
/// Decisions per log page unless asked otherwise.
pub const PAGE: i64 = 50;

/// What every page's frame shows: who is signed in, the sign-out form
/// with its CSRF token, and the JSON behind the page.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub title: String,
    pub section: &'static str,
    pub user: Option<String>,
    pub roles: String,
    pub csrf: Option<String>,
    pub open_mode: bool,
    /// (label, href) of the JSON (and OSCAL) documents behind the page.
    pub api: Vec<(String, String)>,
}

impl Chrome {
    fn new(v: &Viewer, title: impl Into<String>, section: &'static str) -> Self {
        Chrome {
            title: title.into(),
            section,
            user: Some(v.caller.name.clone()),
            roles: v
                .caller
                .roles
                .iter()
                .filter(|r| ROLES.contains(r))
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            csrf: v.session.as_ref().map(|s| s.csrf.clone()),
            open_mode: v.session.is_none(),
            api: Vec::new(),
        }
    }

    fn api(mut self, label: &str, href: String) -> Self {
        self.api.push((label.to_string(), href));
        self
    }
}

/// A response the console renders.
pub enum Page {
    Html(StatusCode, Result<String, askama::Error>),
    Error {
        status: StatusCode,
        title: String,
        message: String,
        viewer: Option<Viewer>,
    },
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorTemplate<'a> {
    chrome: Chrome,
    message: &'a str,
    status: u16,
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInTemplate<'a> {
    chrome: Chrome,
    message: Option<&'a str>,
    open: bool,
    /// The form's token (console::csrf).
    csrf: &'a str,
}

impl Page {
    pub fn error(status: StatusCode, title: &str, message: &str) -> Self {
        Page::Error {
            status,
            title: title.to_string(),
            message: message.to_string(),
            viewer: None,
        }
    }

    pub fn for_viewer(self, v: &Viewer) -> Self {
        match self {
            Page::Error {
                status,
                title,
                message,
                ..
            } => Page::Error {
                status,
                title,
                message,
                viewer: Some(v.clone()),
            },
            p => p,
        }
    }

    pub fn sign_in(status: StatusCode, message: Option<&str>, open: bool, csrf: &str) -> Self {
        let t = SignInTemplate {
            chrome: Chrome {
                title: "Sign in".into(),
                section: "sign-in",
                ..Chrome::default()
            },
            message,
            open,
            csrf,
        };
        Page::Html(status, t.render())
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Page::Html(status, body) => (status, body),
            Page::Error {
                status,
                title,
                message,
                viewer,
            } => {
                let chrome = match &viewer {
                    Some(v) => Chrome::new(v, title, ""),
                    None => Chrome {
                        title,
                        ..Chrome::default()
                    },
                };
                let t = ErrorTemplate {
                    chrome,
                    message: &message,
                    status: status.as_u16(),
                };
                (status, t.render())
            }
        };
        match body {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "console template failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "the console could not render this page",
                )
                    .into_response()
            }
        }
    }
}

/// A records error as a page: not found is 404, invalid input 400.
fn failed(e: RecordError, v: &Viewer) -> Page {
    let (status, title) = match &e {
        RecordError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        RecordError::Invalid { .. } => (StatusCode::BAD_REQUEST, "Not a valid request"),
        _ => {
            tracing::error!(error = %e, "console could not read the records");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The records could not be read",
            )
        }
    };
    Page::error(status, title, &e.to_string()).for_viewer(v)
}

fn render<T: Template>(t: &T) -> Page {
    Page::Html(StatusCode::OK, t.render())
}

fn time(t: Timestamp) -> String {
    t.to_string()
}

fn opt_time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "—".into(), time)
}

fn pct(v: f64) -> String {
    format!("{}%", charts::number(v))
}

/// Path segments are ids made of letters, digits and `.`, `_`, `-`, `@`,
/// `:`: what is put into a link is escaped by the template anyway, but an
/// id that cannot exist is refused before any query.
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b':'))
}

fn bad_id(what: &str, id: &str, v: &Viewer) -> Page {
    Page::error(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("no {what} '{id}'"),
    )
    .for_viewer(v)
}

// ----------------------------------------------------------------- overview

struct SystemRow {
    id: String,
    name: String,
    risk_tier: String,
    release: String,
    deployment: Option<String>,
    stage: String,
    status: String,
    status_class: &'static str,
    alerts: i64,
}

struct BundleRow {
    name: String,
    version: String,
    digest: String,
    signers: String,
    source: String,
    activated_at: String,
    default: bool,
    rejected: Option<String>,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewTemplate {
    chrome: Chrome,
    systems: Vec<SystemRow>,
    bundles: Vec<BundleRow>,
}

fn status_class(status: crate::records::DeploymentStatus) -> &'static str {
    match status {
        crate::records::DeploymentStatus::Active => "good",
        crate::records::DeploymentStatus::RolledBack => "bad",
        crate::records::DeploymentStatus::Suspended => "warn",
    }
}

/// Where the active bundle came from, and for a polled source how its
/// polling stands (the same fields as `GET /v1/bundles/{name}`).
fn source_text(
    origin: &crate::server::registry::Origin,
    source: Option<crate::server::remote::SourceStatus>,
) -> String {
    let mut text = origin.to_string();
    if let Some(s) = source {
        let last = match (s.last_result, s.last_poll_at) {
            (Some(r), Some(at)) => format!("last poll {} at {}", r.as_str(), time(at)),
            _ => "not polled yet".to_string(),
        };
        text.push_str(&format!("; {} {}: {last}", s.kind, s.location));
        if s.consecutive_failures > 0 {
            text.push_str(&format!(
                ", {} consecutive failure(s)",
                s.consecutive_failures
            ));
        }
        if let Some(e) = s.last_error {
            text.push_str(&format!(" ({e})"));
        }
        if s.stale {
            text.push_str(", STALE: no successful poll within stale_after");
        }
    }
    text
}

pub async fn overview(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let v = match viewer(&app, &headers) {
        Ok(v) => v,
        Err(refusal) => return *refusal,
    };
    let since = Timestamp(Timestamp::now().millis() - 86_400_000);
    let systems = match app.records.systems_overview(since).await {
        Ok(s) => s,
        Err(e) => return failed(e, &v).into_response(),
    };
    let systems = systems
        .into_iter()
        .map(|s| SystemRow {
            name: s.name.unwrap_or_default(),
            risk_tier: s.risk_tier,
            release: s
                .latest
                .as_ref()
                .map_or_else(|| "—".into(), |d| d.release_id.clone()),
            deployment: s.latest.as_ref().map(|d| d.id.clone()),
            stage: s.latest.as_ref().map_or_else(
                || "not deployed".into(),
                |d| format!("{} at {}", d.stage, pct(d.traffic_percent)),
            ),
            status: s
                .latest
                .as_ref()
                .map_or_else(|| "—".into(), |d| d.status.as_str().replace('_', " ")),
            status_class: s.latest.as_ref().map_or("info", |d| status_class(d.status)),
            alerts: s.alerts,
            id: s.id,
        })
        .collect();
    let default = app.registry.default_name();
    let bundles = app
        .registry
        .slots()
        .values()
        .filter_map(|slot| {
            let a = slot.active()?;
            Some(BundleRow {
                name: slot.name.clone(),
                version: a.version.to_string(),
                digest: a.digest.clone(),
                signers: if a.signers.is_empty() {
                    "unsigned".into()
                } else {
                    a.signers
                        .iter()
                        .map(|s| format!("{} ({})", s.name, s.key_id))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                source: source_text(&a.origin, slot.source_status()),
                activated_at: time(a.activated_at),
                default: default.as_deref() == Some(slot.name.as_str()),
                rejected: slot.last_rejection().map(|r| {
                    format!(
                        "{} at {}: {}",
                        r.version.as_deref().unwrap_or("unknown version"),
                        r.at,
                        r.reason.as_deref().unwrap_or("no reason recorded")
                    )
                }),
            })
        })
        .collect();
    let chrome =
        Chrome::new(&v, "Overview", "overview").api("Bundles (JSON)", "/v1/bundles".into());
    render(&OverviewTemplate {
        chrome,
        systems,
        bundles,
    })
    .into_response()
}

// ------------------------------------------------------------------- system

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

/// Evidence rows shared by the system and deployment pages.
pub struct ReviewView {
    pub reviewer: String,
    pub at: String,
    pub outcome: String,
    pub conditions: String,
    pub target: String,
    pub deployment: Option<String>,
}

pub struct AuthorisationView {
    pub by: String,
    pub role: String,
    pub at: String,
    pub expires: String,
    pub conditions: String,
    pub scope: String,
    pub deployment: Option<String>,
}

pub struct AcceptanceView {
    pub deficiency: String,
    pub by: String,
    pub at: String,
    pub expires: String,
    pub rationale: String,
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
}

pub struct DeploymentRowView {
    pub id: String,
    pub release: String,
    pub stage: String,
    pub status: String,
    pub class: &'static str,
    pub deployed: String,
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join("; ")
    }
}

fn review_view(k: &crate::records::export::Keyed<crate::records::model::Review>) -> ReviewView {
    let r = &k.record;
    ReviewView {
        reviewer: r.reviewer.clone(),
        at: time(r.completed_at),
        outcome: crate::records::evidence::wire_name(&r.outcome).replace('_', " "),
        conditions: list(&r.conditions),
        target: r
            .target_stage
            .clone()
            .unwrap_or_else(|| "the release".into()),
        deployment: k.deployment_id.clone(),
    }
}

fn authorisation_view(
    k: &crate::records::export::Keyed<crate::records::model::Authorisation>,
) -> AuthorisationView {
    let a = &k.record;
    AuthorisationView {
        by: a.authorised_by.clone(),
        role: a.role.clone(),
        at: time(a.authorised_at),
        expires: a.expires_at.map_or_else(|| "no expiry".into(), time),
        conditions: list(&a.conditions),
        scope: a
            .scope
            .as_ref()
            .map_or_else(|| "all stages".into(), |s| s.join(", ")),
        deployment: k.deployment_id.clone(),
    }
}

fn acceptance_view(
    k: &crate::records::export::Keyed<crate::records::export::AcceptanceOf>,
) -> AcceptanceView {
    let a = &k.record.acceptance;
    AcceptanceView {
        deficiency: k.record.deficiency_id.clone(),
        by: a.accepted_by.clone(),
        at: time(a.accepted_at),
        expires: a.expires_at.map_or_else(|| "no expiry".into(), time),
        rationale: a.rationale.clone(),
    }
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

pub async fn system(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let v = match viewer(&app, &headers) {
        Ok(v) => v,
        Err(refusal) => return *refusal,
    };
    if !plausible_id(&id) {
        return bad_id("system", &id, &v).into_response();
    }
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
        releases: record.releases.iter().map(release_view).collect(),
        deployments: record.deployments.iter().map(deployment_row_view).collect(),
        notice,
        notice_missing,
    })
    .into_response()
}

// --------------------------------------------------------------- deployment

/// A finding of a logged decision: its code and the control references
/// the bundle maps it to.
pub struct FindingRow {
    pub code: String,
    pub controls: Vec<String>,
}

/// A decision as the console lists it.
pub struct DecisionRow {
    pub id: String,
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub outcome: String,
    pub class: &'static str,
    pub actor: String,
    pub deployment: Option<String>,
    pub bundle: String,
    pub findings: Vec<FindingRow>,
    /// Why, as the deployment's history recorded it.
    pub reason: Option<String>,
}

/// The control references of `code` under the active bundle `bundle`,
/// and a note when that bundle is not the one that decided.
fn controls(app: &App, bundle: &str, codes: &[String]) -> Vec<FindingRow> {
    let active = app.registry.slots().get(bundle).and_then(|s| s.active());
    codes
        .iter()
        .map(|c| FindingRow {
            code: c.clone(),
            controls: active
                .as_ref()
                .map(|a| a.policy.controls.lookup(c).to_vec())
                .unwrap_or_default(),
        })
        .collect()
}

fn decision_row(app: &App, c: &Chained, reason: Option<String>) -> DecisionRow {
    let e = &c.entry;
    DecisionRow {
        id: e.decision_id.clone(),
        seq: c.seq,
        at: time(Timestamp(e.at)),
        kind: e.kind.clone(),
        outcome: e.outcome.clone(),
        class: outcome_class(&e.outcome),
        actor: e.actor.clone(),
        deployment: e.deployment_id.clone(),
        bundle: format!("{} {}", e.bundle, e.bundle_version),
        findings: controls(app, &e.bundle, &e.codes),
        reason,
    }
}

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

pub struct ProofView {
    pub seq: i64,
    pub decision_id: String,
    pub hash: String,
    pub matches: bool,
}

#[derive(Template)]
#[template(path = "console/deployment.html")]
pub struct DeploymentTemplate {
    /// The viewer is an auditor: the audit record's sections are shown.
    auditor: bool,
    chrome: Chrome,
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
    verified: bool,
    proof: Vec<ProofView>,
    head: String,
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
    // Two independent reads: the export (with its chain proof) and the
    // observations behind the charts, side by side.
    let (x, observations) = tokio::join!(app.records.export(id), app.records.observations(id));
    let (x, observations) = (x?, observations?);
    let reasons: HashMap<&str, &str> = x
        .history
        .iter()
        .filter_map(|e| Some((e.decision_id.as_deref()?, e.reason.as_deref()?)))
        .collect();
    let decisions: Vec<DecisionRow> = x
        .decisions
        .iter()
        .map(|c| {
            let reason = reasons
                .get(c.entry.decision_id.as_str())
                .map(|r| r.to_string());
            decision_row(app, c, reason)
        })
        .collect();
    let timeline = charts::timeline(x.deployment.deployed_at, &x.history, &x.decisions, |d| {
        format!("/ui/decisions/{d}")
    });
    let charts = charts::metric_charts(&x.deployment.plan, &observations);
    // The page shows what the API gives the same role: the audit record
    // (the release's evidence, the chain proof, the checkpoint) is the
    // auditors' (`GET /v1/deployments/{id}/record`).
    let auditor = v.caller.has(crate::server::config::Role::Auditor);
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
        verified: x.chain.log_verified,
        proof: x
            .chain
            .proof
            .iter()
            .map(|p| ProofView {
                seq: p.seq,
                decision_id: p.decision_id.clone(),
                hash: p.hash.clone(),
                matches: p.matches,
            })
            .collect(),
        head: format!("entry {}, hash {}", x.chain.head.seq, x.chain.head.hash),
        checkpoint: x.chain.checkpoint.clone(),
    };
    if !auditor {
        page.reviews.clear();
        page.authorisations.clear();
        page.acceptances.clear();
        page.proof.clear();
        page.head.clear();
        page.checkpoint = None;
    }
    Ok(page)
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
    let v = match viewer(&app, &headers) {
        Ok(v) => v,
        Err(refusal) => return *refusal,
    };
    if !plausible_id(&id) {
        return bad_id("deployment", &id, &v).into_response();
    }
    match deployment_page(&app, &id, &v).await {
        Ok(t) => render(&t).into_response(),
        Err(e) => failed(e, &v).into_response(),
    }
}

// ------------------------------------------------------------- decision log

/// Why a log filter was refused: the parameter and what it must be.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterError {
    pub parameter: String,
    pub message: String,
}

/// A filter value as the form shows it back.
#[derive(Debug, Clone, Default)]
pub struct FilterForm {
    pub system: String,
    pub kind: String,
    pub outcome: String,
    pub code: String,
    pub from: String,
    pub to: String,
    pub limit: i64,
}

/// `2026-11-27T04:00` (a `datetime-local` field, read as UTC), a date, or
/// RFC 3339.
fn parse_time(s: &str) -> Option<Timestamp> {
    if let Some(t) = Timestamp::parse(s) {
        return Some(t);
    }
    let candidate = match s.len() {
        10 => format!("{s}T00:00:00Z"),
        16 => format!("{s}:00Z"),
        19 => format!("{s}Z"),
        _ => return None,
    };
    Timestamp::parse(&candidate)
}

/// Reads the log page's query: every parameter checked, the first wrong
/// one named.
pub fn parse_filter(query: &[(String, String)]) -> Result<(LogFilter, FilterForm), FilterError> {
    let mut filter = LogFilter::default();
    let mut form = FilterForm {
        limit: PAGE,
        ..FilterForm::default()
    };
    let err = |p: &str, m: String| FilterError {
        parameter: p.to_string(),
        message: m,
    };
    for (k, value) in query {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match k.as_str() {
            "system" => {
                if !plausible_id(value) {
                    return Err(err(
                        "system",
                        "expected a system id (letters, digits, '.', '_', '-')".into(),
                    ));
                }
                filter.system = Some(value.to_string());
                form.system = value.to_string();
            }
            "kind" => {
                if !KINDS.contains(&value) {
                    return Err(err("kind", format!("expected one of {}", KINDS.join(", "))));
                }
                filter.kind = Some(value.to_string());
                form.kind = value.to_string();
            }
            "outcome" => {
                if !OUTCOMES.contains(&value) {
                    return Err(err(
                        "outcome",
                        format!("expected one of {}", OUTCOMES.join(", ")),
                    ));
                }
                filter.outcome = Some(value.to_string());
                form.outcome = value.to_string();
            }
            "code" => {
                let ok = value.len() <= 128
                    && value.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'.' | b'_' | b'-')
                    });
                if !ok {
                    return Err(err(
                        "code",
                        "expected a finding code such as trigger.rollback (lower-case letters, digits, '.', '_', '-')".into(),
                    ));
                }
                filter.code = Some(value.to_string());
                form.code = value.to_string();
            }
            "from" | "to" => {
                let t = parse_time(value).ok_or_else(|| {
                    err(
                        k,
                        format!("'{value}' is not a time: expected RFC 3339 (2026-11-27T04:00:00Z) or YYYY-MM-DDTHH:MM (UTC)"),
                    )
                })?;
                if k == "from" {
                    filter.from = Some(t);
                    form.from = value.to_string();
                } else {
                    filter.to = Some(t);
                    form.to = value.to_string();
                }
            }
            "before" => {
                let n: i64 = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    err("before", "expected a positive log sequence number".into())
                })?;
                filter.before = Some(n);
            }
            "limit" => {
                form.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| err("limit", format!("expected 1 to {MAX_PAGE}")))?;
            }
            other => {
                return Err(err(
                    other,
                    "unknown parameter: the log filters by system, kind, outcome, code, from, to (and pages with before, limit)".into(),
                ));
            }
        }
    }
    if let (Some(f), Some(t)) = (filter.from, filter.to)
        && t <= f
    {
        return Err(err("to", "must be after 'from'".into()));
    }
    Ok((filter, form))
}

#[derive(Template)]
#[template(path = "console/decisions.html")]
pub struct DecisionsTemplate {
    chrome: Chrome,
    form: FilterForm,
    kinds: &'static [&'static str],
    outcomes: &'static [&'static str],
    systems: Vec<String>,
    rows: Vec<DecisionRow>,
    /// The query string of the next (older) page.
    next: Option<String>,
    filtered: bool,
}

impl DecisionsTemplate {
    /// The page as HTML.
    pub fn html(&self) -> Result<String, askama::Error> {
        self.render()
    }
}

fn query_string(form: &FilterForm, before: i64) -> String {
    let mut pairs = Vec::new();
    for (k, v) in [
        ("system", &form.system),
        ("kind", &form.kind),
        ("outcome", &form.outcome),
        ("code", &form.code),
        ("from", &form.from),
        ("to", &form.to),
    ] {
        if !v.is_empty() {
            pairs.push(format!("{k}={}", urlencode(v)));
        }
    }
    if form.limit != PAGE {
        pairs.push(format!("limit={}", form.limit));
    }
    pairs.push(format!("before={before}"));
    pairs.join("&")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The decision log page's template for `query`, or why the query is wrong.
pub async fn decisions_page(
    app: &App,
    query: &[(String, String)],
    v: &Viewer,
) -> Result<Result<DecisionsTemplate, FilterError>, RecordError> {
    let (filter, form) = match parse_filter(query) {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let page = app.records.decision_page(&filter, form.limit).await?;
    let rows = page
        .entries
        .iter()
        .map(|c| decision_row(app, c, None))
        .collect();
    let systems = app.records.system_ids().await?;
    let chrome = Chrome::new(v, "Decision log", "decisions")
        .api("Checkpoint of the log", "/v1/log/checkpoint".into());
    Ok(Ok(DecisionsTemplate {
        chrome,
        next: page.next_before.map(|b| query_string(&form, b)),
        filtered: filter != LogFilter::default(),
        form,
        kinds: &KINDS,
        outcomes: &OUTCOMES,
        systems,
        rows,
    }))
}

pub async fn decisions(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let v = match viewer(&app, &headers) {
        Ok(v) => v,
        Err(refusal) => return *refusal,
    };
    let Ok(Query(query)) = query else {
        return Page::error(
            StatusCode::BAD_REQUEST,
            "Not a valid filter",
            "The query string could not be read.",
        )
        .for_viewer(&v)
        .into_response();
    };
    match decisions_page(&app, &query, &v).await {
        Ok(Ok(t)) => render(&t).into_response(),
        Ok(Err(e)) => Page::error(
            StatusCode::BAD_REQUEST,
            "Not a valid filter",
            &format!("Filter '{}': {}.", e.parameter, e.message),
        )
        .for_viewer(&v)
        .into_response(),
        Err(e) => failed(e, &v).into_response(),
    }
}

// ------------------------------------------------------------- one decision

#[derive(Template)]
#[template(path = "console/decision.html")]
struct DecisionTemplate {
    chrome: Chrome,
    c: Chained,
    row: DecisionRow,
    /// (code, message, until)
    obligations: Vec<(String, String, String)>,
    event: Option<String>,
    at: String,
}

pub async fn decision(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let v = match viewer(&app, &headers) {
        Ok(v) => v,
        Err(refusal) => return *refusal,
    };
    if !plausible_id(&id) {
        return bad_id("decision", &id, &v).into_response();
    }
    let c = match app.records.decision_entry(&id).await {
        Ok(c) => c,
        Err(e) => return failed(e, &v).into_response(),
    };
    let event = match app.records.event_of_decision(&id).await {
        Ok(e) => e,
        Err(e) => return failed(e, &v).into_response(),
    };
    let row = decision_row(&app, &c, event.as_ref().and_then(|e| e.reason.clone()));
    let chrome = Chrome::new(&v, format!("Decision {id}"), "decisions")
        .api("Decision (JSON)", format!("/v1/decisions/{id}"));
    render(&DecisionTemplate {
        chrome,
        obligations: event
            .as_ref()
            .map(|e| {
                e.detail
                    .obligations
                    .iter()
                    .map(|o| (o.code.clone(), o.message.clone(), opt_time(o.until)))
                    .collect()
            })
            .unwrap_or_default(),
        at: time(Timestamp(c.entry.at)),
        event: event.map(|e| {
            format!(
                "{} by {}: {} at {} ({})",
                e.event.as_str().replace('_', " "),
                e.actor,
                e.status.as_str().replace('_', " "),
                e.stage,
                pct(e.traffic_percent)
            )
        }),
        row,
        c,
    })
    .into_response()
}
