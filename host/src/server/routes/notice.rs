//! `GET /v1/systems/{id}/notice`: what users and operators are told before
//! they rely on the system (ISO/IEC 42001 A.6.2.7, user and operator
//! communication): capabilities, intended use, limitations, when outputs
//! may be relied on, whom to contact, and which release is live, at which
//! stage, since when. JSON by default; a plain, accessible HTML page for
//! `Accept: text/html`. Public: the people it informs hold no token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::decision::Timestamp;
use crate::records::RecordError;
use crate::server::App;
use crate::server::error::ApiError;

/// Notices served from memory. The notice is public, so anyone can ask
/// for it as often as they like: each one is built at most once per
/// change of the records (and once a second, to see other replicas'
/// changes), and at most one is built at a time, so a flood of notice
/// requests — for real systems or made-up ones — can hold at most one
/// database connection and never starves the decision log's writer.
pub(crate) struct NoticeCache {
    entries: std::sync::Mutex<HashMap<String, Cached>>,
    build: tokio::sync::Semaphore,
}

#[derive(Clone)]
struct Cached {
    at: Instant,
    changes: u64,
    notice: Result<Arc<Notice>, String>,
}

/// How long a notice is served without looking at the records again.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// Notices kept at most; beyond it the cache starts over.
const CAPACITY: usize = 4096;

impl NoticeCache {
    pub(crate) fn new() -> Self {
        NoticeCache {
            entries: Default::default(),
            build: tokio::sync::Semaphore::new(1),
        }
    }

    fn fresh(&self, id: &str, changes: u64) -> Option<Result<Arc<Notice>, String>> {
        let entries = self.entries.lock().ok()?;
        let c = entries.get(id)?;
        (c.changes == changes && c.at.elapsed() < FRESH_FOR).then(|| c.notice.clone())
    }

    async fn get(&self, app: &App, id: &str) -> Result<Arc<Notice>, ApiError> {
        let not_found = |m: String| ApiError::not_found(m);
        let changes = app.records.changes();
        if let Some(hit) = self.fresh(id, changes) {
            return hit.map_err(not_found);
        }
        let _permit = self
            .build
            .acquire()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        // Built by the request that held the permit before us?
        if let Some(hit) = self.fresh(id, changes) {
            return hit.map_err(not_found);
        }
        let notice = match build(app, id).await {
            Ok(n) => Ok(Arc::new(n)),
            Err(RecordError::NotFound(m)) => Err(m),
            Err(e) => return Err(e.into()),
        };
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(
                id.to_string(),
                Cached {
                    at: Instant::now(),
                    changes,
                    notice: notice.clone(),
                },
            );
        }
        notice.map_err(not_found)
    }
}

pub(crate) async fn notice(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let notice = app.notices.get(&app, &id).await?;
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        Ok((
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html(&notice),
        )
            .into_response())
    } else {
        Ok((
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&*notice).unwrap_or_default(),
        )
            .into_response())
    }
}

/// The notice as JSON, for the console's system page.
pub(crate) async fn notice_value(app: &App, id: &str) -> Result<serde_json::Value, ApiError> {
    let notice = app.notices.get(app, id).await?;
    serde_json::to_value(&*notice).map_err(|e| ApiError::internal(e.to_string()))
}

/// Which release is live, at which stage, since when.
#[derive(Debug, Clone, Serialize)]
struct Operational {
    in_operational_use: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traffic_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage_since: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployed_since: Option<Timestamp>,
}

/// What users and operators are told.
#[derive(Debug, Clone, Serialize)]
struct Notice {
    system_id: String,
    name: Option<String>,
    release: String,
    release_id: String,
    capabilities: Option<String>,
    intended_use: Option<String>,
    limitations: Vec<String>,
    reliance_conditions: Option<String>,
    published_at: Option<Timestamp>,
    user_guidance: Option<String>,
    human_oversight: bool,
    escalation_contact: Option<String>,
    operational: Operational,
}

/// The notice: the release in operational use (the newest active
/// deployment's), or before any deployment the newest registered release.
async fn build(app: &App, id: &str) -> Result<Notice, RecordError> {
    let records = &app.records;
    let system = records.system(id).await?.system;
    let live = records.live_deployment_of(id).await?;
    let (release_id, operational) = match live {
        Some(deployment_id) => {
            let d = records.deployment(&deployment_id).await?;
            (
                d.release_id.clone(),
                Operational {
                    in_operational_use: true,
                    deployment_id: Some(d.id),
                    stage: Some(d.stage),
                    traffic_percent: Some(d.traffic_percent),
                    stage_since: Some(d.stage_entered_at),
                    deployed_since: Some(d.deployed_at),
                },
            )
        }
        None => {
            let release_id = records.newest_release_of(id).await?.ok_or_else(|| {
                RecordError::NotFound(format!("system '{id}' has no release to describe yet"))
            })?;
            (
                release_id,
                Operational {
                    in_operational_use: false,
                    deployment_id: None,
                    stage: None,
                    traffic_percent: None,
                    stage_since: None,
                    deployed_since: None,
                },
            )
        }
    };
    let release = records.release(&release_id).await?.release;
    let c = release.communication.unwrap_or_default();
    let safeguards = release.safeguards.unwrap_or_default();
    Ok(Notice {
        system_id: id.to_string(),
        name: system.name,
        release: release.version,
        release_id,
        capabilities: c.capabilities,
        intended_use: c.intended_use,
        limitations: c.limitations,
        reliance_conditions: c.reliance_conditions,
        published_at: c.published_at,
        user_guidance: safeguards.user_guidance,
        human_oversight: safeguards.human_oversight,
        escalation_contact: system.escalation_contact.or(safeguards.escalation_path),
        operational,
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn text(v: Option<&str>) -> String {
    v.map_or_else(|| "not stated".into(), esc)
}

/// A plain page: semantic headings and lists, no script, readable by
/// screen readers and in any browser.
fn html(n: &Notice) -> String {
    let title = n.name.as_deref().unwrap_or(&n.system_id);
    let limitations: String = n
        .limitations
        .iter()
        .map(|x| format!("<li>{}</li>", esc(x)))
        .collect();
    let op = &n.operational;
    let status = if op.in_operational_use {
        format!(
            "<p>Release <strong>{}</strong> is in operational use at stage <strong>{}</strong> ({}% of traffic) since {}; first deployed {}.</p>",
            esc(&n.release),
            text(op.stage.as_deref()),
            op.traffic_percent.unwrap_or_default(),
            text(op.stage_since.map(|t| t.to_string()).as_deref()),
            text(op.deployed_since.map(|t| t.to_string()).as_deref())
        )
    } else {
        format!(
            "<p>Release <strong>{}</strong> is not yet in operational use.</p>",
            esc(&n.release)
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>About {t}: what it can and cannot do</title>\n</head>\n<body>\n<main>\n<h1>About {t}</h1>\n{status}\n\
<h2>What it does</h2>\n<p>{cap}</p>\n<h2>What it is for</h2>\n<p>{use_}</p>\n<h2>Known limitations</h2>\n<ul>{lim}</ul>\n\
<h2>When you can rely on its outputs</h2>\n<p>{rel}</p>\n<h2>Guidance</h2>\n<p>{guide}</p>\n\
<h2>If an output seems wrong or is disputed</h2>\n<p>Contact: {contact}</p>\n<p><small>Published {published}.</small></p>\n</main>\n</body>\n</html>\n",
        t = esc(title),
        cap = text(n.capabilities.as_deref()),
        use_ = text(n.intended_use.as_deref()),
        lim = limitations,
        rel = text(n.reliance_conditions.as_deref()),
        guide = text(n.user_guidance.as_deref()),
        contact = text(n.escalation_contact.as_deref()),
        published = text(n.published_at.map(|t| t.to_string()).as_deref()),
    )
}
