//! `POST /v1/integrations/flagger/{hook}`: Flagger's webhooks
//! (crate::integrations::flagger).
//!
//! Flagger's webhook spec has no headers, so besides `Authorization` the
//! token may come in the payload's `metadata.token` (docs/integrations/flagger.md
//! says what that exposes).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::CONTROLLERS;
use crate::decision::decode::decode_as;
use crate::integrations::flagger::{self, Hook, Payload};
use crate::server::App;
use crate::server::auth::RequireRole;
use crate::server::body;
use crate::server::error::ApiError;
use crate::server::routes::evaluations::pipeline;

/// A Flagger payload is a few names and a small map.
const MAX_PAYLOAD: usize = 64 * 1024;

pub(crate) async fn hook(
    State(app): State<Arc<App>>,
    Path(hook): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let Some(hook) = Hook::parse(&hook) else {
        let known: Vec<&str> = Hook::ALL.iter().map(|h| h.as_str()).collect();
        return Err(ApiError::not_found(format!(
            "no Flagger hook '{hook}'; the hooks are {}",
            known.join(", ")
        ))
        .at("hook"));
    };
    // Who is calling is known before the payload is read when the header
    // is there; otherwise the payload's metadata names the token.
    if headers.contains_key(header::AUTHORIZATION) || app.auth.is_open() {
        app.auth.caller(&headers)?.require(CONTROLLERS)?;
    }
    body::require_json(&headers)?;
    let bytes = body::read(&headers, b, MAX_PAYLOAD.min(app.limits.body_bytes)).await?;
    let payload: Payload = decode_as(&bytes)?;
    let caller = if headers.contains_key(header::AUTHORIZATION) || app.auth.is_open() {
        app.auth.caller(&headers)?
    } else {
        let mut with_token = HeaderMap::new();
        if let Some(token) = payload.metadata.get("token")
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
        {
            with_token.insert(header::AUTHORIZATION, v);
        }
        app.auth.caller(&with_token)?
    };
    caller.require(CONTROLLERS)?;
    let pipeline = pipeline(&app)?;
    let answer = flagger::answer(&app.records, &pipeline, &caller.name, hook, &payload).await?;
    let status = StatusCode::from_u16(answer.verdict.status()).unwrap_or(StatusCode::FORBIDDEN);
    let body = serde_json::to_vec(&answer)
        .map_err(|e| ApiError::internal(format!("encoding the answer: {e}")))?;
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}
