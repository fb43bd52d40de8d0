//! `GET /v1/systems/{id}/notice`: what users and operators are told before
//! they rely on the system (ISO/IEC 42001 A.6.2.7, user and operator
//! communication): capabilities, intended use, limitations, when outputs
//! may be relied on, whom to contact, and which release is live, at which
//! stage, since when. JSON by default; a plain, accessible HTML page for
//! `Accept: text/html`. Public: the people it informs hold no token.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sqlx::Row;

use crate::decision::Timestamp;
use crate::records::RecordError;
use crate::server::App;
use crate::server::error::ApiError;

pub async fn notice(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let notice = build(&app, &id).await?;
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
            notice.to_string(),
        )
            .into_response())
    }
}

/// The notice: the release in operational use (the newest active
/// deployment's), or before any deployment the newest registered release.
async fn build(app: &App, id: &str) -> Result<Value, RecordError> {
    let records = &app.records;
    let system = records.system(id).await?;
    let pool = &records.store.pool;
    let live = sqlx::query("SELECT id FROM deployments WHERE system_id = $1 AND status = 'active' ORDER BY deployed_at DESC, id DESC LIMIT 1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    let (release_id, operational) = match live {
        Some(row) => {
            let d = records.deployment(&row.try_get::<String, _>("id")?).await?;
            (
                d.release_id.clone(),
                json!({"in_operational_use": true, "deployment_id": d.id, "stage": d.stage,
                       "traffic_percent": d.traffic_percent, "stage_since": Timestamp(d.stage_entered_at),
                       "deployed_since": Timestamp(d.deployed_at)}),
            )
        }
        None => {
            let row = sqlx::query("SELECT id FROM releases WHERE system_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| RecordError::NotFound(format!("system '{id}' has no release to describe yet")))?;
            (row.try_get("id")?, json!({"in_operational_use": false}))
        }
    };
    let (_, release) = records.release(&release_id).await?;
    let c = &release["communication"];
    let contact = system
        .get("escalation_contact")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| release["safeguards"]["escalation_path"].clone());
    Ok(json!({
        "system_id": id,
        "name": system.get("name").cloned().unwrap_or(Value::Null),
        "release": release["version"],
        "release_id": release_id,
        "capabilities": c["capabilities"],
        "intended_use": c["intended_use"],
        "limitations": c["limitations"],
        "reliance_conditions": c["reliance_conditions"],
        "published_at": c["published_at"],
        "user_guidance": release["safeguards"]["user_guidance"],
        "human_oversight": release["safeguards"]["human_oversight"],
        "escalation_contact": contact,
        "operational": operational,
    }))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => esc(s),
        Value::Null => "not stated".into(),
        other => esc(&other.to_string()),
    }
}

/// A plain page: semantic headings and lists, no script, readable by
/// screen readers and in any browser.
fn html(n: &Value) -> String {
    let title = n["name"]
        .as_str()
        .or(n["system_id"].as_str())
        .unwrap_or("AI system");
    let limitations: String = n["limitations"]
        .as_array()
        .map(|l| l.iter().map(|x| format!("<li>{}</li>", text(x))).collect())
        .unwrap_or_default();
    let op = &n["operational"];
    let status = if op["in_operational_use"] == true {
        format!(
            "<p>Release <strong>{}</strong> is in operational use at stage <strong>{}</strong> ({}% of traffic) since {}; first deployed {}.</p>",
            text(&n["release"]),
            text(&op["stage"]),
            text(&op["traffic_percent"]),
            text(&op["stage_since"]),
            text(&op["deployed_since"])
        )
    } else {
        format!(
            "<p>Release <strong>{}</strong> is not yet in operational use.</p>",
            text(&n["release"])
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>About {t}: what it can and cannot do</title>\n</head>\n<body>\n<main>\n<h1>About {t}</h1>\n{status}\n\
<h2>What it does</h2>\n<p>{cap}</p>\n<h2>What it is for</h2>\n<p>{use_}</p>\n<h2>Known limitations</h2>\n<ul>{lim}</ul>\n\
<h2>When you can rely on its outputs</h2>\n<p>{rel}</p>\n<h2>Guidance</h2>\n<p>{guide}</p>\n\
<h2>If an output seems wrong or is disputed</h2>\n<p>Contact: {contact}</p>\n<p><small>Published {published}.</small></p>\n</main>\n</body>\n</html>\n",
        t = esc(title),
        cap = text(&n["capabilities"]),
        use_ = text(&n["intended_use"]),
        lim = limitations,
        rel = text(&n["reliance_conditions"]),
        guide = text(&n["user_guidance"]),
        contact = text(&n["escalation_contact"]),
        published = text(&n["published_at"]),
    )
}
