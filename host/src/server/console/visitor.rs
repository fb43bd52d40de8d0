//! Who is looking at a console page: the caller behind the session cookie
//! (or, in open development mode, the local caller), or the response that
//! sends a browser without a live session to the sign-in form.
//!
//! Apart from the router (`mod.rs`) and the pages, which both depend on it,
//! so that neither has to import the other.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::session::{self, COOKIE, Lookup, Session};
use crate::auth::{Caller, Role};
use crate::server::App;

/// The roles that may use the console.
pub const ROLES: &[Role] = &[Role::Auditor, Role::Approver, Role::Operator];

/// Who is looking at a page: the caller, and the session behind it (none
/// in open mode).
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    pub session: Option<Session>,
}

/// The session id in a request's cookie.
pub(super) fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie(h, COOKIE))
}

/// The viewer of a request, or the response that refuses it: a redirect
/// to the sign-in form without a live session, saying so when it expired.
pub(crate) fn viewer(app: &App, headers: &HeaderMap) -> Result<Viewer, Box<Response>> {
    if app.auth.is_open() {
        return Ok(Viewer {
            // Open mode names every caller (anonymous or X-Actor).
            caller: app.auth.caller(headers).map_err(|_| {
                Box::new((StatusCode::UNAUTHORIZED, "Sign in first.").into_response())
            })?,
            session: None,
        });
    }
    let lookup = match session_id(headers) {
        Some(id) => app.console.sessions.get(id),
        None => Err(Lookup::Unknown),
    };
    match lookup {
        Ok(s) => Ok(Viewer {
            caller: s.caller.clone(),
            session: Some(s),
        }),
        Err(Lookup::Expired) => Err(Box::new(to_sign_in(app, "/ui/sign-in?expired=1"))),
        Err(Lookup::Unknown) => Err(Box::new(to_sign_in(app, "/ui/sign-in"))),
    }
}

/// A browser without a live session is sent to the sign-in form (a 303:
/// a refusal the browser follows without logging an error), and a stale
/// cookie is dropped.
pub(super) fn to_sign_in(app: &App, location: &'static str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location.to_string()),
            (header::SET_COOKIE, app.console.cookie("", 0)),
        ],
    )
        .into_response()
}
