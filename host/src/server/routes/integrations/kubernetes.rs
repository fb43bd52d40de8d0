//! `POST /v1/integrations/kubernetes/admission`: a Kubernetes
//! ValidatingAdmissionWebhook (docs/integrations/kubernetes.md). Parses the
//! AdmissionReview, asks `crate::integrations::kubernetes`, logs the answer
//! about a governed object (not a dry run's: the webhook declares
//! `sideEffects: None`) and serialises the review answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::integrations::kubernetes::review::{self, ReviewError};
use crate::integrations::kubernetes::{self, Answer, Context, Finding, LOG_KIND};
use crate::records::chain::LogEntry;
use crate::server::App;
use crate::server::body;
use crate::server::error::ApiError;

/// A body that is not a v1 AdmissionReview with a `uid`: 400, naming the
/// field.
fn bad_review(e: ReviewError) -> ApiError {
    ApiError::bad_request("bad_admission_review", e.message).at(e.path)
}

/// The handler: the `gateway` role (the API server's token).
pub(crate) async fn review(
    State(app): State<Arc<App>>,
    tls: Option<axum::Extension<crate::server::admission_access::TlsConnection>>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
    // A refusal is answered after the body is read (bounded): the client
    // then sees the 401 or 403, not a reset connection. On the TLS
    // listener the API server may come without a token
    // (`server::admission_access`).
    let caller = match app
        .admission_access
        .caller(&app.auth, &headers, tls.as_deref())
    {
        Ok(c) => c,
        Err(e) => return Err(body::refuse_after_drain(&headers, request_body, e).await),
    };
    body::require_json(&headers)?;
    let bytes = body::read(&headers, request_body, app.limits.body_bytes).await?;
    let parsed: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("bad_admission_review", format!("the body is not JSON: {e}"))
    })?;
    let request = review::envelope(&parsed).map_err(bad_review)?;
    let uid = request.uid.to_string();
    let ctx = Context {
        records: &app.records,
        monitoring: app.pipeline(None).map_err(|e| e.to_string()),
        config: &app.kubernetes,
        actor: &caller.name,
    };
    let answer = kubernetes::decide(&ctx, &request).await;
    app.metrics
        .admission(match (answer.governed, answer.allowed()) {
            (false, _) => "not_annotated",
            (true, true) => "allowed",
            (true, false) => "denied",
        });
    // Objects that are not governed are not decisions about a deployment:
    // logging every object of a governed namespace would flood the chain.
    // A dry run changes nothing, not even the log.
    if !answer.governed || request.dry_run {
        return Ok(respond(&uid, &answer, None, 403));
    }
    let entry = LogEntry {
        decision_id: crate::records::new_id(),
        at: crate::decision::Timestamp::now().millis(),
        kind: LOG_KIND.into(),
        outcome: if answer.allowed() {
            "allowed"
        } else {
            "denied"
        }
        .into(),
        codes: answer.findings.iter().map(|f| f.code.clone()).collect(),
        bundle: String::new(),
        bundle_version: String::new(),
        bundle_digest: String::new(),
        request_digest: crate::records::chain::digest(&bytes),
        request: None,
        deployment_id: answer.deployment.as_ref().map(|d| d.id.clone()),
        actor: caller.name.clone(),
        record: None,
        // An admission answer changes nothing but the log.
        read_only: true,
    };
    let id = entry.decision_id.clone();
    if let Err(e) = app.records.log.record(entry).await {
        tracing::error!(error = %e, uid = %uid, "could not log an admission decision");
        let refused = Answer {
            findings: vec![Finding::deny(
                "admission.log_unavailable",
                format!("stagegate could not log its decision ({e}); retry shortly"),
            )],
            ..answer
        };
        return Ok(respond(&uid, &refused, None, 503));
    }
    Ok(respond(&uid, &answer, Some(&id), 403))
}

/// The review answer, always a 200 (the API server reads `allowed`).
fn respond(uid: &str, answer: &Answer, decision_id: Option<&str>, deny_code: u16) -> Response {
    let body = review::answer(uid, answer, decision_id, deny_code);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
