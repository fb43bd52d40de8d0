//! The auditor's console at `/ui` (docs/console.md): a
//! read-only, server-rendered view of the records for people who would
//! rather look than `curl`.
//!
//! Pages are askama templates (`host/templates/console/`), compiled into
//! the binary and checked at build time, escaping every value by default.
//! No script: every page reads completely without one, so the
//! `Content-Security-Policy` can forbid them outright.
//!
//! Sign-in exchanges an auditor, approver or operator token for a
//! server-side session ([`session`]); in open development mode (no tokens
//! configured, loopback only) the console is open like the API.

pub mod charts;
pub mod csrf;
pub mod pages;
pub mod session;
pub mod visitor;
pub use visitor::Viewer;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::App;
use crate::config::ConsoleConfig;
use crate::server::auth::RequireRole;
use pages::Page;
use session::{COOKIE, Sessions};
use visitor::{ROLES, session_id, viewer};

/// The console's state: its sessions and cookie settings.
#[derive(Debug)]
pub struct Console {
    pub(crate) sessions: Sessions,
    secure_cookie: bool,
}

impl Console {
    pub fn new(config: &ConsoleConfig) -> Self {
        Console {
            sessions: Sessions::new(Duration::from_secs(config.session_seconds)),
            secure_cookie: config.secure_cookie,
        }
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={max_age}{secure}")
    }
}

/// The console's routes (all under `/ui`), with their security headers.
pub(crate) fn routes(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/ui", get(pages::overview))
        .route("/ui/", get(pages::overview))
        .route("/ui/sign-in", get(sign_in_form).post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route("/ui/systems/{id}", get(pages::system))
        .route("/ui/deployments/{id}", get(pages::deployment))
        .route("/ui/decisions", get(pages::decisions))
        .route("/ui/decisions/{id}", get(pages::decision))
        .route("/ui/console.css", get(stylesheet))
        .route("/ui/favicon.svg", get(favicon))
        .route("/ui/{*rest}", get(unknown_page))
        .layer(middleware::from_fn_with_state(app, headers))
}

/// What every console response carries: scripts, frames, plugins and
/// other origins forbidden; nothing cached or sniffed; no referrer leaves.
async fn headers(State(_app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let over_tls = req
        .extensions()
        .get::<crate::server::capacity::OverTls>()
        .is_some();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if over_tls {
        secure_cookies(h);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Reached over TLS, every cookie the console sets is `Secure`, whatever
/// `console.secure_cookie` says: a browser must never send it in clear.
fn secure_cookies(h: &mut HeaderMap) {
    let cookies: Vec<HeaderValue> = h
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| match v.to_str() {
            Ok(c) if !c.contains("; Secure") => {
                HeaderValue::from_str(&format!("{c}; Secure")).unwrap_or_else(|_| v.clone())
            }
            _ => v.clone(),
        })
        .collect();
    h.remove(header::SET_COOKIE);
    for c in cookies {
        h.append(header::SET_COOKIE, c);
    }
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../../templates/console/console.css"),
    )
        .into_response()
}

async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        include_str!("../../../templates/console/favicon.svg"),
    )
        .into_response()
}

async fn unknown_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match viewer(&app, &headers) {
        Ok(v) => Page::error(
            StatusCode::NOT_FOUND,
            "Page not found",
            "The console has no such page.",
        )
        .for_viewer(&v)
        .into_response(),
        Err(refusal) => *refusal,
    }
}

/// The sign-in form, with a fresh form token in a hidden field and in its
/// cookie ([`csrf`]).
fn sign_in_page(status: StatusCode, message: Option<&str>, app: &App) -> Response {
    let token = csrf::new_token();
    let mut res = Page::sign_in(status, message, app.auth.is_open(), &token).into_response();
    if let Ok(v) = HeaderValue::from_str(&csrf::cookie(&token)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    #[serde(default)]
    expired: Option<String>,
}

async fn sign_in_form(
    State(app): State<Arc<App>>,
    query: Result<axum::extract::Query<SignInQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let expired = query.is_ok_and(|q| q.expired.is_some());
    let message = if expired {
        "Your session has expired. Sign in again to continue."
    } else {
        "Sign in to see the records."
    };
    sign_in_page(StatusCode::OK, Some(message), &app)
}

#[derive(Deserialize)]
pub(crate) struct SignIn {
    token: String,
    /// The form's token ([`csrf`]).
    #[serde(default)]
    csrf: String,
}

/// Exchanges a token for a session: 303 to the overview, or the form
/// again saying why not (401 unknown token, 403 a token without a console
/// role, 400 no token field).
async fn sign_in(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<SignIn>, FormRejection>,
) -> Response {
    if app.auth.is_open() {
        return Redirect::to("/ui").into_response();
    }
    let Ok(Form(form)) = form else {
        return sign_in_page(
            StatusCode::BAD_REQUEST,
            Some("The form must send a field named 'token'."),
            &app,
        );
    };
    if let Err(refusal) = csrf::check(&headers, &form.csrf) {
        tracing::warn!(?refusal, origin = ?headers.get(header::ORIGIN), "console sign-in refused: not from the console's own form");
        return sign_in_page(StatusCode::FORBIDDEN, Some(refusal.message()), &app);
    }
    let token = form.token.trim();
    let mut h = HeaderMap::new();
    let caller = HeaderValue::from_str(&format!("Bearer {token}"))
        .ok()
        .filter(|_| !token.is_empty())
        .and_then(|v| {
            h.insert(header::AUTHORIZATION, v);
            app.auth.caller(&h).ok()
        });
    let Some(caller) = caller else {
        return sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some("That token is not known to this service."),
            &app,
        );
    };
    if caller.require(ROLES).is_err() {
        let message = format!(
            "The token of '{}' has no console role: the console needs auditor, approver or operator.",
            caller.name
        );
        return sign_in_page(StatusCode::FORBIDDEN, Some(&message), &app);
    }
    tracing::info!(actor = %caller.name, "console sign-in");
    let (id, _) = app.console.sessions.create(caller);
    let cookie = app
        .console
        .cookie(&id, app.console.sessions.ttl().as_secs());
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/ui".to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct SignOut {
    csrf: String,
}

/// Ends the session: needs the session's CSRF token from the page's form.
async fn sign_out(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<SignOut>, FormRejection>,
) -> Response {
    let v = match viewer(&app, &headers) {
        Ok(v) => v,
        Err(refusal) => return *refusal,
    };
    let Some(session) = &v.session else {
        return Redirect::to("/ui").into_response();
    };
    let valid = form
        .as_ref()
        .is_ok_and(|Form(f)| session::same_secret(&f.csrf, &session.csrf));
    if !valid {
        return Page::error(
            StatusCode::FORBIDDEN,
            "Sign-out refused",
            "The sign-out form did not carry this session's token; use the Sign out button of a console page.",
        )
        .for_viewer(&v)
        .into_response();
    }
    if let Some(id) = session_id(&headers) {
        app.console.sessions.revoke(id);
    }
    tracing::info!(actor = %v.caller.name, "console sign-out");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/ui/sign-in".to_string()),
            (header::SET_COOKIE, app.console.cookie("", 0)),
        ],
    )
        .into_response()
}
