//! `POST /v1/decisions/{gate,progression,monitoring}[?bundle=NAME]`

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::decision::{self, DecisionKind, Request, RequestError, RequestErrorKind};
use crate::server::App;
use crate::server::body;
use crate::server::config::Role;
use crate::server::error::ApiError;
use crate::server::lane;
use crate::server::registry::ResolveError;

#[derive(Debug, Deserialize)]
pub struct DecideQuery {
    bundle: Option<String>,
}

pub async fn decide(
    State(app): State<Arc<App>>,
    kind: Result<Path<String>, PathRejection>,
    query: Result<Query<DecideQuery>, QueryRejection>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
    let caller = app.auth.caller(&headers)?;
    caller.require(&[Role::Gateway])?;
    let Path(kind) = kind.map_err(|e| ApiError::not_found(e.body_text()))?;
    let kind: DecisionKind = kind
        .parse()
        .map_err(|e: decision::UnknownDecision| ApiError::not_found(e.to_string()))?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    body::require_json(&headers)?;
    let (slot, active) = app
        .registry
        .resolve(query.bundle.as_deref())
        .map_err(resolve_error)?;
    let bytes = body::read(&headers, request_body, app.limits.body_bytes).await?;

    let started = Instant::now();
    // A heavy request must not hold an async worker nor mark the bundle
    // slow for every other caller (see `lane`): a heavy body is decoded in
    // the lane, a light one inline and then weighed by its list items. What
    // grows with the request (the decision, its log entry, its JSON) is
    // made in the lane too.
    let limits = app.limits.decode();
    let work = {
        let (app, active, body, caller) = (
            app.clone(),
            active.clone(),
            bytes.clone(),
            caller.name.clone(),
        );
        move |request: Request| {
            let decided = active.policy.decide(request);
            let entry = app
                .log_decisions
                .then(|| app.records.entry(&decided.envelope, &body, &caller, None));
            let json = serde_json::to_vec(&decided.envelope);
            (decided, entry, json)
        }
    };
    let (decided, entry, json) = if lane::is_heavy_body(bytes.len()) {
        let body = bytes.clone();
        slot.lane
            .run(true, move || {
                decision::decode_with(kind, &body, limits).map(work)
            })
            .await
    } else {
        let request = decision::decode_with(kind, &bytes, limits).map_err(refusal)?;
        slot.lane
            .run(lane::is_heavy_request(&request), move || Ok(work(request)))
            .await
    }
    .map_err(|e| ApiError::internal(format!("decision task failed: {e}")))?
    .map_err(refusal)?;
    let envelope = &decided.envelope;
    slot.counters.count(kind, envelope.outcome);
    if let Some(e) = &decided.error {
        app.metrics.policy_error(&slot.name, e.cause());
        tracing::warn!(
            decision_id = %envelope.decision_id,
            decision = %kind,
            bundle = %slot.name,
            version = %active.version,
            cause = e.cause(),
            error = %e,
            "policy failed; decision fails closed"
        );
    } else {
        tracing::debug!(
            decision_id = %envelope.decision_id,
            decision = %kind,
            bundle = %slot.name,
            outcome = envelope.outcome.as_str(),
            caller = %caller.name,
            "decided"
        );
    }
    // The decision is answered only once it is in the log (or queued, per
    // `records.durability`); a log that cannot take it is a 503, never a
    // decision that leaves no record.
    if let Some(entry) = entry {
        app.records
            .log
            .record(entry)
            .await
            .map_err(|e| ApiError::unavailable("decision_log_unavailable", e.to_string()))?;
    }
    let json = json.map_err(|e| ApiError::internal(format!("encoding the decision: {e}")))?;
    app.metrics
        .observe_latency(kind, started.elapsed().as_secs_f64());
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// A request the decoder refused: 400 if malformed, 422 if invalid.
fn refusal(e: RequestError) -> ApiError {
    let status = match e.kind {
        RequestErrorKind::Malformed => StatusCode::BAD_REQUEST,
        RequestErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.code(), e.message.clone()).at(e.path.clone())
}

pub fn resolve_error(e: ResolveError) -> ApiError {
    match e {
        ResolveError::Unknown(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_bundle", e.to_string())
        }
        ResolveError::Inactive(_) | ResolveError::NoDefault => {
            ApiError::unavailable("no_bundle", e.to_string())
        }
    }
}
