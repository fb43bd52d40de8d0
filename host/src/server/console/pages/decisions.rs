//! The decision log (`/ui/decisions`): filtered by system, kind, outcome,
//! finding code and time range, newest first, paged by log sequence.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::decision_row::decision_row;
use super::*;
use crate::records::console::{LogFilter, MAX_PAGE};
use crate::server::App;
use crate::server::console::visitor::viewer;

/// Why a log filter was refused: the parameter and what it must be.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterError {
    pub parameter: String,
    pub message: String,
}

/// A filter value as the form shows it back.
#[derive(Debug, Clone, Default)]
pub struct FilterForm {
    pub system: String,
    pub kind: String,
    pub outcome: String,
    pub code: String,
    pub from: String,
    pub to: String,
    pub limit: i64,
}

/// `2026-11-27T04:00` (a `datetime-local` field, read as UTC), a date, or
/// RFC 3339.
fn parse_time(s: &str) -> Option<Timestamp> {
    if let Some(t) = Timestamp::parse(s) {
        return Some(t);
    }
    let candidate = match s.len() {
        10 => format!("{s}T00:00:00Z"),
        16 => format!("{s}:00Z"),
        19 => format!("{s}Z"),
        _ => return None,
    };
    Timestamp::parse(&candidate)
}

/// Reads the log page's query: every parameter checked, the first wrong
/// one named.
pub fn parse_filter(query: &[(String, String)]) -> Result<(LogFilter, FilterForm), FilterError> {
    let mut filter = LogFilter::default();
    let mut form = FilterForm {
        limit: PAGE,
        ..FilterForm::default()
    };
    let err = |p: &str, m: String| FilterError {
        parameter: p.to_string(),
        message: m,
    };
    for (k, value) in query {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match k.as_str() {
            "system" => {
                if !plausible_id(value) {
                    return Err(err(
                        "system",
                        "expected a system id (letters, digits, '.', '_', '-')".into(),
                    ));
                }
                filter.system = Some(value.to_string());
                form.system = value.to_string();
            }
            "kind" => {
                if !KINDS.contains(&value) {
                    return Err(err("kind", format!("expected one of {}", KINDS.join(", "))));
                }
                filter.kind = Some(value.to_string());
                form.kind = value.to_string();
            }
            "outcome" => {
                if !OUTCOMES.contains(&value) {
                    return Err(err(
                        "outcome",
                        format!("expected one of {}", OUTCOMES.join(", ")),
                    ));
                }
                filter.outcome = Some(value.to_string());
                form.outcome = value.to_string();
            }
            "code" => {
                let ok = value.len() <= 128
                    && value.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'.' | b'_' | b'-')
                    });
                if !ok {
                    return Err(err(
                        "code",
                        "expected a finding code such as trigger.rollback (lower-case letters, digits, '.', '_', '-')".into(),
                    ));
                }
                filter.code = Some(value.to_string());
                form.code = value.to_string();
            }
            "from" | "to" => {
                let t = parse_time(value).ok_or_else(|| {
                    err(
                        k,
                        format!("'{value}' is not a time: expected RFC 3339 (2026-11-27T04:00:00Z) or YYYY-MM-DDTHH:MM (UTC)"),
                    )
                })?;
                if k == "from" {
                    filter.from = Some(t);
                    form.from = value.to_string();
                } else {
                    filter.to = Some(t);
                    form.to = value.to_string();
                }
            }
            "before" => {
                let n: i64 = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    err("before", "expected a positive log sequence number".into())
                })?;
                filter.before = Some(n);
            }
            "limit" => {
                form.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| err("limit", format!("expected 1 to {MAX_PAGE}")))?;
            }
            other => {
                return Err(err(
                    other,
                    "unknown parameter: the log filters by system, kind, outcome, code, from, to (and pages with before, limit)".into(),
                ));
            }
        }
    }
    if let (Some(f), Some(t)) = (filter.from, filter.to)
        && t <= f
    {
        return Err(err("to", "must be after 'from'".into()));
    }
    Ok((filter, form))
}

#[derive(Template)]
#[template(path = "console/decisions.html")]
pub struct DecisionsTemplate {
    chrome: Chrome,
    form: FilterForm,
    kinds: &'static [&'static str],
    outcomes: &'static [&'static str],
    systems: Vec<String>,
    rows: Vec<DecisionRow>,
    /// The query string of the next (older) page.
    next: Option<String>,
    filtered: bool,
}

impl DecisionsTemplate {
    /// The page as HTML.
    pub fn html(&self) -> Result<String, askama::Error> {
        self.render()
    }
}

fn query_string(form: &FilterForm, before: i64) -> String {
    let mut pairs = Vec::new();
    for (k, v) in [
        ("system", &form.system),
        ("kind", &form.kind),
        ("outcome", &form.outcome),
        ("code", &form.code),
        ("from", &form.from),
        ("to", &form.to),
    ] {
        if !v.is_empty() {
            pairs.push(format!("{k}={}", urlencode(v)));
        }
    }
    if form.limit != PAGE {
        pairs.push(format!("limit={}", form.limit));
    }
    pairs.push(format!("before={before}"));
    pairs.join("&")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The decision log page's template for `query`, or why the query is wrong.
pub async fn decisions_page(
    app: &App,
    query: &[(String, String)],
    v: &Viewer,
) -> Result<Result<DecisionsTemplate, FilterError>, RecordError> {
    let (filter, form) = match parse_filter(query) {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let page = app.records.decision_page(&filter, form.limit).await?;
    let rows = page
        .entries
        .iter()
        .map(|c| decision_row(app, c, None))
        .collect();
    let systems = app.records.system_ids().await?;
    let mut chrome = Chrome::new(v, "Decision log", "decisions");
    // Offered to the roles the API serves it to.
    if v.caller.has(crate::auth::Role::Auditor) || v.caller.has(crate::auth::Role::Operator) {
        chrome = chrome.api("Checkpoint of the log", "/v1/log/checkpoint".into());
    }
    Ok(Ok(DecisionsTemplate {
        chrome,
        next: page.next_before.map(|b| query_string(&form, b)),
        filtered: filter != LogFilter::default(),
        form,
        kinds: &KINDS,
        outcomes: &OUTCOMES,
        systems,
        rows,
    }))
}

pub async fn decisions(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let v = match viewer(&app, &headers) {
        Ok(v) => v,
        Err(refusal) => return *refusal,
    };
    let Ok(Query(query)) = query else {
        return Page::error(
            StatusCode::BAD_REQUEST,
            "Not a valid filter",
            "The query string could not be read.",
        )
        .for_viewer(&v)
        .into_response();
    };
    match decisions_page(&app, &query, &v).await {
        Ok(Ok(t)) => render(&t).into_response(),
        Ok(Err(e)) => Page::error(
            StatusCode::BAD_REQUEST,
            "Not a valid filter",
            &format!("Filter '{}': {}.", e.parameter, e.message),
        )
        .for_viewer(&v)
        .into_response(),
        Err(e) => failed(e, &v).into_response(),
    }
}
