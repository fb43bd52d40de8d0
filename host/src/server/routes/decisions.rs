//! `POST /v1/decisions/{gate,progression,monitoring}[?bundle=NAME]`

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::decision::{self, DecisionKind, RequestErrorKind};
use crate::server::App;
use crate::server::body;
use crate::server::config::Role;
use crate::server::error::ApiError;
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
    let request = decision::decode_with(kind, &bytes, app.limits.decode()).map_err(|e| {
        let status = match e.kind {
            RequestErrorKind::Malformed => StatusCode::BAD_REQUEST,
            RequestErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.code(), e.message.clone()).at(e.path.clone())
    })?;
    let policy = active.clone();
    let decided = slot
        .lane
        .run(move || policy.policy.decide(request))
        .await
        .map_err(|e| ApiError::internal(format!("decision task failed: {e}")))?;
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
    if app.log_decisions {
        let entry = app.records.entry(envelope, &bytes, &caller.name, None);
        app.records
            .log
            .record(entry)
            .await
            .map_err(|e| ApiError::unavailable("decision_log_unavailable", e.to_string()))?;
    }
    let json = serde_json::to_vec(envelope)
        .map_err(|e| ApiError::internal(format!("encoding the decision: {e}")))?;
    app.metrics
        .observe_latency(kind, started.elapsed().as_secs_f64());
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
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
