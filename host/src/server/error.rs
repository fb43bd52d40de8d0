//! API errors: `{"error": {"code", "message", "path"}}` with the right
//! status; the codes are listed in docs/decisions.md#http-errors. Bad input
//! is never a 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub path: String,
    /// Seconds for `Retry-After` (503).
    pub retry_after: Option<u32>,
    /// The decision behind a refusal (a gate that denied a deployment).
    pub decision: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<&'a serde_json::Value>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    path: &'a str,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            path: String::new(),
            retry_after: None,
            decision: None,
        }
    }

    pub(crate) fn at(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    pub(crate) fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message).retry_after(1)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

/// A request refused before any policy or record saw it: a malformed body
/// (not JSON, wrong types, missing fields) is 400, a well-formed body with
/// a value outside its domain 422 — the same for every endpoint.
impl From<crate::decision::RequestError> for ApiError {
    fn from(e: crate::decision::RequestError) -> Self {
        use crate::decision::RequestErrorKind;
        let status = match e.kind {
            RequestErrorKind::Malformed => StatusCode::BAD_REQUEST,
            RequestErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.code(), e.message).at(e.path)
    }
}

impl From<crate::records::RecordError> for ApiError {
    fn from(e: crate::records::RecordError) -> Self {
        use crate::records::RecordError as R;
        match e {
            R::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            R::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            R::IdempotencyRace => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "a concurrent request with the same Idempotency-Key is being answered; retry to read its answer",
            ),
            R::Invalid { path, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "request.invalid", message).at(path)
            }
            R::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            R::Denied { message, decision } => {
                let mut err =
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "gate_denied", message);
                err.decision = serde_json::to_value(&*decision).ok();
                err
            }
            R::Store(e) => {
                tracing::error!(error = %e, "records store error");
                ApiError::unavailable(
                    "records_unavailable",
                    format!("the records store failed: {e}"),
                )
            }
            R::Log(e) => ApiError::unavailable("decision_log_unavailable", e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                path: &self.path,
            },
            decision: self.decision.as_ref(),
        })
        .unwrap_or_default();
        let mut res = (self.status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(s) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"stagegate\""),
            );
        }
        res
    }
}

impl From<crate::service::PipelineError> for ApiError {
    fn from(e: crate::service::PipelineError) -> Self {
        match e {
            crate::service::PipelineError::Request(e) => e.into(),
            crate::service::PipelineError::Task(m) => {
                ApiError::internal(format!("decision task failed: {m}"))
            }
        }
    }
}
