//! The overview (`/ui`): each system with its newest deployment and its
//! escalating events of the last 24 hours, and each active bundle with its
//! signers, source and last refused candidate.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::*;
use crate::server::App;
use crate::server::console::visitor::viewer;

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

/// Where the active bundle came from, and for a polled source how its
/// polling stands (the same fields as `GET /v1/bundles/{name}`).
fn source_text(
    origin: &crate::service::registry::Origin,
    source: Option<crate::service::registry::SourceStatus>,
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
