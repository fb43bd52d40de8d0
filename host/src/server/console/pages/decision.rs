//! One decision (`/ui/decisions/{id}`): its request hash, bundle, chain
//! hashes, findings with their control references, obligations and the
//! state change it recorded.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::decision_row::decision_row;
use super::*;
use crate::records::chain::Chained;
use crate::server::App;

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
    let v = match viewer_of(&app, &headers, "decision", &id) {
        Ok(v) => v,
        Err(answer) => return *answer,
    };
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
