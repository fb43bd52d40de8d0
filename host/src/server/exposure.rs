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
//!   caller to the stable release instead of refusing it.
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
    let checked = app
        .auth
        .caller(&headers)
        .and_then(|c| c.require(&[Role::Gateway]))
        .and_then(|()| ask(&headers))
        .and_then(|(ask, by_route)| {
            app.exposure
                .check(ask)
                .map(|answer| (answer, by_route))
                .map_err(|e| ApiError::bad_request("bad_header", e.to_string()).at(e.header()))
        });
    match checked {
        Ok((answer, by_route)) => respond(answer, by_route),
        Err(e) => e.into_response(),
    }
}

/// The question the headers ask, and whether the answer is wanted by route.
fn ask(headers: &HeaderMap) -> Result<(Ask<'_>, bool), ApiError> {
    let text = |name: &'static str| -> Result<Option<&str>, ApiError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim()).filter(|s| !s.is_empty()))
                .map_err(|_| {
                    ApiError::bad_request("bad_header", format!("{name} is not visible ASCII"))
                        .at(name)
                }),
        }
    };
    let by_route = match text(ANSWER_MODE)? {
        None | Some("status") => false,
        Some("route") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_header",
                format!("X-Stagegate-Answer is '{other}': expected 'status' or 'route'"),
            )
            .at("X-Stagegate-Answer"));
        }
    };
    Ok((
        Ask {
            deployment: text("x-stagegate-deployment")?,
            reference: text("x-stagegate-ref")?,
            subject: text("x-stagegate-subject")?,
        },
        by_route,
    ))
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
