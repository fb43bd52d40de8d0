//! One JSON encoder for the routes' answers: the value serialised with
//! `application/json`, and an encoding failure reported as the error
//! envelope rather than a bare 500 body.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::server::error::ApiError;

/// The value as JSON with the given status.
pub(super) fn json<T: Serialize>(status: StatusCode, v: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(v)
        .map_err(|e| ApiError::internal(format!("encoding the answer: {e}")))?;
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}
