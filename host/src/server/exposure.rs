//! `ANY /v1/integrations/authz[/…]`: the per-request exposure check for
//! serving gateways over HTTP (docs/integrations/gateways.md). The rules
//! are in `crate::integrations::gateway`; this reads the request's headers
//! into a question and writes the answer back.
//!
//! Two ways to answer, chosen by the gateway:
//!
//! - by status (nginx `auth_request`, the default): 200 admits, 403
//!   refuses;
//! - by route (Envoy `ext_authz` with `clear_route_cache`, when the request
//!   carries `X-Stagegate-Answer: route`): 200 either way, with
//!   `X-Stagegate-Route: new` or `stable`, so the gateway routes a refused
//!   caller to the stable release instead of refusing it. A request
//!   refused before the check (no or a refused gateway credential, a token
//!   without the `gateway` role, an unreadable header) is routed to stable
//!   too: see [`refused_by_route`].
//!
//! Either way the answer carries `X-Stagegate-Stage`, `X-Stagegate-Release`
//! and `X-Stagegate-Decision` (why, naming the bucket): for the gateway and
//! its logs, never for the client (the examples strip them).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::App;
use super::error::ApiError;
use crate::auth::Role;
use crate::integrations::gateway::{Answer, Ask};
use crate::server::auth::RequireRole;

pub(crate) use crate::integrations::gateway::Exposure;

/// The header asking for an answer by route.
const ANSWER_MODE: &str = "x-stagegate-answer";

/// `ANY /v1/integrations/authz[/…]`: a gateway token is required; no body
/// is read.
pub(crate) async fn authz(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let by_route = match answer_mode(&headers) {
        Ok(by_route) => by_route,
        Err(e) => return e.into_response(),
    };
    let checked = app
        .auth
        .caller(&headers)
        .and_then(|c| c.require(&[Role::Gateway]))
        .and_then(|()| ask(&headers))
        .and_then(|ask| {
            app.exposure
                .check(ask)
                .map_err(|e| ApiError::bad_request("bad_header", e.to_string()).at(e.header()))
        });
    match checked {
        Ok(answer) => respond(answer, by_route),
        Err(refusal) if by_route => routed_to_stable(&app, &refusal),
        Err(refusal) => refusal.into_response(),
    }
}

/// A request to the exposure check refused before its handler ran (no
/// valid credential: the capacity layer answers those without a permit),
/// answered the way it asked: by route, it is routed to stable; by status,
/// `None`, and the caller sends the refusal itself.
///
/// By route, every refusal is a route to stable, 401 included: Envoy's
/// `ext_authz` hands any non-5xx refusal to the client as it is, so a
/// gateway whose token was revoked or rotated would otherwise turn every
/// user away instead of serving them the stable release, the fallback
/// `failure_mode_allow` already gives when stagegate is down. The refusal
/// is still counted (`stagegate_authz_refused_total{reason}`) and named in
/// `X-Stagegate-Decision`, which the example keeps from the client.
pub(crate) fn refused_by_route(
    app: &App,
    headers: &HeaderMap,
    refusal: &ApiError,
) -> Option<Response> {
    matches!(answer_mode(headers), Ok(true)).then(|| routed_to_stable(app, refusal))
}

/// 200 with `X-Stagegate-Route: stable` for a refused caller; nothing of
/// the deployment (stage, release) is said to a caller that was refused.
fn routed_to_stable(app: &App, refusal: &ApiError) -> Response {
    app.metrics.authz_refused(refusal.code);
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    h.insert("x-stagegate-route", HeaderValue::from_static("stable"));
    h.insert(
        "x-stagegate-decision",
        header_value(&format!("refused ({}): {}", refusal.code, refusal.message)),
    );
    response
}

/// Whether the answer is wanted by route (`X-Stagegate-Answer: route`) or
/// by status (absent or `status`); anything else is the gateway's
/// configuration error, answered 400 either way.
fn answer_mode(headers: &HeaderMap) -> Result<bool, ApiError> {
    match header_text(headers, ANSWER_MODE)? {
        None | Some("status") => Ok(false),
        Some("route") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            "bad_header",
            format!("X-Stagegate-Answer is '{other}': expected 'status' or 'route'"),
        )
        .at("X-Stagegate-Answer")),
    }
}

/// A header's trimmed text (`None` when absent or blank); 400 naming the
/// header when it is not visible ASCII.
fn header_text<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()).filter(|s| !s.is_empty()))
            .map_err(|_| {
                ApiError::bad_request("bad_header", format!("{name} is not visible ASCII")).at(name)
            }),
    }
}

/// The question the headers ask.
fn ask(headers: &HeaderMap) -> Result<Ask<'_>, ApiError> {
    Ok(Ask {
        deployment: header_text(headers, "x-stagegate-deployment")?,
        reference: header_text(headers, "x-stagegate-ref")?,
        subject: header_text(headers, "x-stagegate-subject")?,
    })
}

fn respond(answer: Answer, by_route: bool) -> Response {
    let status = if answer.admitted || by_route {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    let mut response = status.into_response();
    let h = response.headers_mut();
    if let Some(r) = &answer.route {
        h.insert("x-stagegate-stage", header_value(&r.stage));
        h.insert("x-stagegate-release", header_value(&r.release));
    }
    if by_route {
        h.insert(
            "x-stagegate-route",
            HeaderValue::from_static(if answer.admitted { "new" } else { "stable" }),
        );
    }
    h.insert("x-stagegate-decision", header_value(&answer.why));
    response
}

/// A header value from text the records hold (visible ASCII, else
/// replaced), so a stage name can never break the response.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| {
        let clean: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        HeaderValue::from_str(&clean).unwrap_or(HeaderValue::from_static("?"))
    })
}
