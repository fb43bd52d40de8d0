//! `POST /v1/integrations/github/deployment-protection` (docs/integrations/github.md):
//! authenticated by the webhook signature, not a bearer token (GitHub sends
//! none). The rules live in `crate::integrations::github`; this handler
//! reads the body, answers 202 at once and runs the review off the request
//! path (GitHub gives a webhook 10 s; the gate, a token exchange and the
//! callback may take longer).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::decision::{Envelope, Outcome, Request};
use crate::integrations::github::{
    GithubGate, Payload, PayloadError, WEBHOOK_MAX, comment, parse_payload, truncate,
};
use crate::records::RecordError;
use crate::server::App;
use crate::server::body;
use crate::server::error::ApiError;

/// A payload that cannot be read: a 400 naming the JSON path.
pub(crate) fn payload_error(e: PayloadError) -> ApiError {
    ApiError::bad_request("request.malformed", e.message).at(e.pointer)
}

/// The handler.
pub(crate) async fn deployment_protection(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
    let Some(gate) = app.github.clone() else {
        return Err(ApiError::not_found(
            "the GitHub integration is not configured ([integrations.github])",
        ));
    };
    // Read before the HMAC can be checked, so read little: a webhook body
    // is a few KiB, and callers without a token get a short deadline
    // (server::capacity).
    let bytes = body::read(
        &headers,
        request_body,
        WEBHOOK_MAX.min(app.limits.body_bytes),
    )
    .await?;
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !gate.signed(signature, &bytes) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Hub-Signature-256 is missing or does not match the body under the webhook secret",
        )
        .at("X-Hub-Signature-256"));
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let delivery = headers
        .get("x-github-delivery")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    if let Some(id) = &delivery
        && !gate.first_delivery(id)
    {
        return Ok(accepted(
            serde_json::json!({"duplicate": true, "delivery": id}),
            StatusCode::OK,
        ));
    }
    if event == "ping" {
        return Ok(accepted(serde_json::json!({"pong": true}), StatusCode::OK));
    }
    if event != "deployment_protection_rule" {
        return Ok(accepted(
            serde_json::json!({"ignored": format!("event '{event}'")}),
            StatusCode::ACCEPTED,
        ));
    }
    let payload = parse_payload(&bytes).map_err(payload_error)?;
    if payload.action != "requested" {
        return Ok(accepted(
            serde_json::json!({"ignored": format!("action '{}'", payload.action)}),
            StatusCode::ACCEPTED,
        ));
    }
    let sha = payload.commit().map_err(payload_error)?;
    let answer = serde_json::json!({
        "accepted": true,
        "repository": payload.repository.full_name,
        "environment": payload.environment,
        "sha": sha,
    });
    tokio::spawn(review(app.clone(), gate, payload, sha, delivery));
    Ok(accepted(answer, StatusCode::ACCEPTED))
}

fn accepted(body: serde_json::Value, status: StatusCode) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Judges the deployment and reports to GitHub; every way of not reaching
/// an `allow` rejects.
async fn review(
    app: Arc<App>,
    gate: Arc<GithubGate>,
    payload: Payload,
    sha: String,
    delivery: Option<String>,
) {
    let repository = payload.repository.full_name.clone();
    let environment = payload.environment.clone();
    let (state, comment) = match judge(&app, &gate, &payload, &sha).await {
        Ok(envelope) => {
            let state = if envelope.outcome == Outcome::Allow {
                "approved"
            } else {
                "rejected"
            };
            (state, comment(&envelope))
        }
        Err(why) => ("rejected", truncate(&format!("stagegate: {why}"))),
    };
    tracing::info!(%repository, %environment, %sha, state, "GitHub deployment protection review");
    let body = serde_json::json!({
        "environment_name": environment,
        "state": state,
        "comment": comment,
    });
    let reporter = gate.clone();
    let sent = tokio::task::spawn_blocking(move || reporter.report(&payload, &body)).await;
    match sent {
        Ok(Ok(status)) => {
            tracing::info!(%repository, %environment, state, status, "reported to GitHub")
        }
        Ok(Err(e)) => {
            gate.forget(delivery.as_deref());
            tracing::error!(%repository, %environment, error = %e, "could not report to GitHub")
        }
        Err(e) => {
            gate.forget(delivery.as_deref());
            tracing::error!(%repository, %environment, error = %e, "GitHub report task failed")
        }
    }
}

/// The gate's decision on the mapped release, logged; or why there is none.
async fn judge(
    app: &Arc<App>,
    gate: &GithubGate,
    payload: &Payload,
    sha: &str,
) -> Result<Envelope, String> {
    let target = gate.target(payload, sha).map_err(|e| e.to_string())?;
    let request = app
        .records
        .gate_request_for(&target.release_id, target.plan)
        .await
        .map_err(|e| match e {
            RecordError::NotFound(m) => format!("{m}: register the release first"),
            e => format!("the records could not be read: {e}"),
        })?;
    let pipeline = app
        .pipeline(target.bundle)
        .map_err(|e| format!("no bundle to decide with: {e}"))?;
    let actor = format!("github:{}", payload.repository.full_name);
    let request = Request::Gate(request);
    let bytes = request.to_json();
    let decided = pipeline.decide(request, &actor).await;
    let entry = app.records.entry(&decided.envelope, &bytes, &actor, None);
    app.records
        .log
        .record(entry)
        .await
        .map_err(|e| format!("the decision could not be logged: {e}"))?;
    Ok(decided.envelope)
}
