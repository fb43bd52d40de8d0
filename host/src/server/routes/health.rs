//! `GET /healthz`, `GET /readyz`, `GET /metrics`: unauthenticated, so
//! orchestrators and scrapers need no token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use crate::server::App;
use crate::server::error::ApiError;

/// Liveness: the process answers.
pub(crate) async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

/// Readiness: at least one verified bundle is active, and the decision
/// log extends the last checkpoint the service signed.
pub(crate) async fn readyz(
    State(app): State<Arc<App>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(reason) = app.records.log_rewound() {
        return Err(ApiError::unavailable("not_ready", reason));
    }
    let slots = app.registry.slots();
    let active: Vec<String> = slots
        .values()
        .filter_map(|s| s.active().map(|a| format!("{} {}", s.name, a.version)))
        .collect();
    if active.is_empty() {
        return Err(ApiError::unavailable(
            "not_ready",
            "no verified bundle is active",
        ));
    }
    Ok(Json(json!({ "status": "ready", "bundles": active })))
}

/// Prometheus text exposition.
pub(crate) async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    app.metrics.log_rewound(app.records.log_rewound().is_some());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.encode(),
    )
}
