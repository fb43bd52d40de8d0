//! `POST /v1/decisions/{gate,progression,monitoring}[?bundle=NAME]`

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::auth::Role;
use crate::decision::{self, DecisionKind, RequestError};
use crate::server::App;
use crate::server::auth::RequireRole;
use crate::server::body;
use crate::server::error::ApiError;
use crate::service::registry::ResolveError;

#[derive(Debug, Deserialize)]
pub(crate) struct DecideQuery {
    bundle: Option<String>,
}

pub(crate) async fn decide(
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
    // A gate carrying DSSE envelopes in `attestations` has them verified,
    // as at release registration, and mapped into what the policy sees;
    // `prepare` says whether it did (only then can there be a receipt).
    let prepare = {
        let app = app.clone();
        move |request: &mut crate::decision::Request| -> Result<bool, RequestError> {
            let crate::decision::Request::Gate(gate) = request else {
                return Ok(false);
            };
            let checked = crate::records::verify_gate_attestations(&app.records, gate).map_err(
                |e| match e {
                    crate::records::RecordError::Invalid { path, message } => {
                        RequestError::invalid(path, message)
                    }
                    other => RequestError::invalid(String::new(), other.to_string()),
                },
            )?;
            Ok(checked)
        }
    };
    // The log entry and the JSON grow with the request: they are made
    // where the decision runs (see `Pipeline::decide_body`).
    let finish = {
        let (app, body, caller) = (app.clone(), bytes.clone(), caller.name.clone());
        move |d: &crate::policy::Decided, verified: bool| {
            let entry = app.log_decisions.then(|| {
                let mut entry = app.records.entry(&d.envelope, &body, &caller, None);
                // A receipt is derived from the entry: it keeps the
                // envelopes the decision rested on.
                if verified && entry.request.is_none() {
                    entry.request = Some(String::from_utf8_lossy(&body).into_owned());
                }
                entry
            });
            let receipt = app
                .records
                .stateless_receipt(&d.envelope, verified, entry.is_some());
            let json = serde_json::to_vec(&Answer {
                decision: &d.envelope,
                receipt,
            });
            (entry, json)
        }
    };
    let (_decided, (entry, json)) = pipeline
        .decide_body(
            kind,
            bytes,
            app.limits.decode(),
            &caller.name,
            prepare,
            finish,
        )
        .await?;
    // The decision is answered only once it is in the log (or queued, per
    // `records.durability`); a log that cannot take it is a 503, never a
    // decision that leaves no record. Nothing else is written: a receipt is
    // derived from the entry when first asked for.
    app.records
        .log_stateless(entry)
        .await
        .map_err(|e| ApiError::unavailable("decision_log_unavailable", e.to_string()))?;
    let json = json.map_err(|e| ApiError::internal(format!("encoding the decision: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// A stateless decision's answer: the decision, and whether it got a
/// receipt (docs/decisions.md#receipts-of-stateless-decisions).
#[derive(serde::Serialize)]
struct Answer<'a> {
    #[serde(flatten)]
    decision: &'a crate::decision::Envelope,
    receipt: crate::records::ReceiptStatus,
}

pub(crate) fn resolve_error(e: ResolveError) -> ApiError {
    match e {
        ResolveError::Unknown(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_bundle", e.to_string())
        }
        ResolveError::Inactive(_)
        | ResolveError::MemberInactive { .. }
        | ResolveError::NoDefault => ApiError::unavailable("no_bundle", e.to_string()),
    }
}
