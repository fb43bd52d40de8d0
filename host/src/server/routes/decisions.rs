//! `POST /v1/decisions/{gate,progression,monitoring}[?bundle=NAME]`

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::auth::Role;
use crate::decision::{self, DecisionKind};
use crate::server::App;
use crate::server::auth::RequireRole;
use crate::server::body;
use crate::server::error::ApiError;
use crate::service::registry::ResolveError;

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
    let pipeline = app
        .pipeline(query.bundle.as_deref())
        .map_err(resolve_error)?;
    let bytes = body::read(&headers, request_body, app.limits.body_bytes).await?;
    // The log entry and the JSON grow with the request: they are made
    // where the decision runs (see `Pipeline::decide_body`).
    let finish = {
        let (app, body, caller) = (app.clone(), bytes.clone(), caller.name.clone());
        move |d: &crate::policy::Decided| {
            let entry = app
                .log_decisions
                .then(|| app.records.entry(&d.envelope, &body, &caller, None));
            (entry, serde_json::to_vec(&d.envelope))
        }
    };
    let (decided, (entry, json)) = pipeline
        .decide_body(
            kind,
            bytes.clone(),
            app.limits.decode(),
            &caller.name,
            finish,
        )
        .await?;
    // The decision is answered only once it is in the log (or queued, per
    // `records.durability`); a log that cannot take it is a 503, never a
    // decision that leaves no record. A gate `allow` about an artifact
    // gets its signed receipt in the same commit, so a caller holding an
    // `allow` can always fetch it.
    app.records
        .log_stateless(&decided.envelope, entry, &bytes, &caller.name)
        .await
        .map_err(|e| ApiError::unavailable("decision_log_unavailable", e.to_string()))?;
    let json = json.map_err(|e| ApiError::internal(format!("encoding the decision: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

pub fn resolve_error(e: ResolveError) -> ApiError {
    match e {
        ResolveError::Unknown(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_bundle", e.to_string())
        }
        ResolveError::Inactive(_)
        | ResolveError::MemberInactive { .. }
        | ResolveError::NoDefault => ApiError::unavailable("no_bundle", e.to_string()),
    }
}
