//! The console's pages: each handler reads the records through
//! [`crate::records`] (no SQL here), shapes what the template shows, and
//! renders it. Bad input — an unknown id, a malformed filter — is a page
//! saying what is wrong with a 4xx status, never a 500.
//!
//! One file per page; this module holds the frame every page shares (the
//! chrome, the error and sign-in pages, formatting helpers).

mod decision;
mod decision_row;
mod decisions;
mod deployment;
mod evidence;
mod overview;
mod system;

pub use decision::decision;
pub use decision_row::{DecisionRow, FindingRow};
pub use decisions::{
    DecisionsTemplate, FilterError, FilterForm, decisions, decisions_page, parse_filter,
};
pub use deployment::{
    DeliveryView, DeploymentTemplate, HistoryView, ProofView, StageView, deployment,
    deployment_page,
};
pub use evidence::{AcceptanceView, AuthorisationView, ReviewView};
pub use overview::overview;
pub use system::{DeploymentRowView, ReleaseView, ResultView, system};

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::charts;
use super::visitor::{ROLES, Viewer};
use crate::decision::Timestamp;
use crate::records::RecordError;

/// Decision kinds the log filter accepts.
pub const KINDS: [&str; 4] = [
    "gate",
    "progression",
    "monitoring",
    "bundle.forced_activation",
];
/// Outcomes the log filter accepts.
pub const OUTCOMES: [&str; 9] = [
    "allow", "deny", "promote", "hold", "rollback", "suspend", "healthy", "alert", "recorded",
];
/// Decisions per log page unless asked otherwise.
pub const PAGE: i64 = 50;

/// What every page's frame shows: who is signed in, the sign-out form
/// with its CSRF token, and the JSON behind the page.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub title: String,
    pub section: &'static str,
    pub user: Option<String>,
    pub roles: String,
    pub csrf: Option<String>,
    pub open_mode: bool,
    /// (label, href) of the JSON (and OSCAL) documents behind the page.
    pub api: Vec<(String, String)>,
}

impl Chrome {
    fn new(v: &Viewer, title: impl Into<String>, section: &'static str) -> Self {
        Chrome {
            title: title.into(),
            section,
            user: Some(v.caller.name.clone()),
            roles: v
                .caller
                .roles
                .iter()
                .filter(|r| ROLES.contains(r))
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            csrf: v.session.as_ref().map(|s| s.csrf.clone()),
            open_mode: v.session.is_none(),
            api: Vec::new(),
        }
    }

    fn api(mut self, label: &str, href: String) -> Self {
        self.api.push((label.to_string(), href));
        self
    }
}

/// A response the console renders.
pub enum Page {
    Html(StatusCode, Result<String, askama::Error>),
    Error {
        status: StatusCode,
        title: String,
        message: String,
        viewer: Option<Viewer>,
    },
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorTemplate<'a> {
    chrome: Chrome,
    message: &'a str,
    status: u16,
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInTemplate<'a> {
    chrome: Chrome,
    message: Option<&'a str>,
    open: bool,
    /// The form's token (console::csrf).
    csrf: &'a str,
}

impl Page {
    pub fn error(status: StatusCode, title: &str, message: &str) -> Self {
        Page::Error {
            status,
            title: title.to_string(),
            message: message.to_string(),
            viewer: None,
        }
    }

    pub fn for_viewer(self, v: &Viewer) -> Self {
        match self {
            Page::Error {
                status,
                title,
                message,
                ..
            } => Page::Error {
                status,
                title,
                message,
                viewer: Some(v.clone()),
            },
            p => p,
        }
    }

    pub fn sign_in(status: StatusCode, message: Option<&str>, open: bool, csrf: &str) -> Self {
        let t = SignInTemplate {
            chrome: Chrome {
                title: "Sign in".into(),
                section: "sign-in",
                ..Chrome::default()
            },
            message,
            open,
            csrf,
        };
        Page::Html(status, t.render())
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Page::Html(status, body) => (status, body),
            Page::Error {
                status,
                title,
                message,
                viewer,
            } => {
                let chrome = match &viewer {
                    Some(v) => Chrome::new(v, title, ""),
                    None => Chrome {
                        title,
                        ..Chrome::default()
                    },
                };
                let t = ErrorTemplate {
                    chrome,
                    message: &message,
                    status: status.as_u16(),
                };
                (status, t.render())
            }
        };
        match body {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "console template failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "the console could not render this page",
                )
                    .into_response()
            }
        }
    }
}

/// A records error as a page: not found is 404, invalid input 400.
fn failed(e: RecordError, v: &Viewer) -> Page {
    let (status, title) = match &e {
        RecordError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        RecordError::Invalid { .. } => (StatusCode::BAD_REQUEST, "Not a valid request"),
        _ => {
            tracing::error!(error = %e, "console could not read the records");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The records could not be read",
            )
        }
    };
    Page::error(status, title, &e.to_string()).for_viewer(v)
}

fn render<T: Template>(t: &T) -> Page {
    Page::Html(StatusCode::OK, t.render())
}

fn time(t: Timestamp) -> String {
    t.to_string()
}

fn opt_time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "—".into(), time)
}

fn pct(v: f64) -> String {
    format!("{}%", charts::number(v))
}

/// Path segments are ids made of letters, digits and `.`, `_`, `-`, `@`,
/// `:`: what is put into a link is escaped by the template anyway, but an
/// id that cannot exist is refused before any query.
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b':'))
}

/// The viewer of the page about the `what` called `id`, or the answer that
/// ends the request there: the sign-in (or its refusal), or a 404 for an
/// id no record can have, before any query.
fn viewer_of(
    app: &crate::server::App,
    headers: &axum::http::HeaderMap,
    what: &str,
    id: &str,
) -> Result<Viewer, Box<axum::response::Response>> {
    use axum::response::IntoResponse;
    let v = crate::server::console::visitor::viewer(app, headers)?;
    if !plausible_id(id) {
        return Err(Box::new(bad_id(what, id, &v).into_response()));
    }
    Ok(v)
}

fn bad_id(what: &str, id: &str, v: &Viewer) -> Page {
    Page::error(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("no {what} '{id}'"),
    )
    .for_viewer(v)
}

fn status_class(status: crate::records::DeploymentStatus) -> &'static str {
    match status {
        crate::records::DeploymentStatus::Active => "good",
        crate::records::DeploymentStatus::RolledBack => "bad",
        crate::records::DeploymentStatus::Suspended => "warn",
    }
}
