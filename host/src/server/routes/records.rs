//! The records API: systems, releases, reviews, authorisations, risk
//! acceptances, deployments and their transitions, the decision log and
//! the auditor's export.
//!
//! Writes accept `Idempotency-Key` (a retry returns the first answer) and
//! state changes accept `If-Match: <version>` (409 when the deployment
//! moved on). Actors always come from the token.

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::decision::request::Observation;
use crate::records::idempotency::{self, IdempotencyKey};
use crate::records::{Actor, RecordError};
use crate::server::App;
use crate::server::auth::Caller;
use crate::server::body;
use crate::server::config::Role;
use crate::server::error::ApiError;
use crate::server::registry::Active;

/// Every role may read records; `auditor` exists for those who only read.
const READERS: &[Role] = &[
    Role::Auditor,
    Role::Operator,
    Role::Approver,
    Role::Gateway,
    Role::Publisher,
];

fn actor(c: &Caller) -> Actor {
    Actor {
        name: c.name.clone(),
        title: c.title.clone(),
    }
}

fn json(status: u16, v: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or_default().trim().trim_matches('"');
    text.parse::<i64>().map(Some).map_err(|_| {
        ApiError::bad_request(
            "bad_if_match",
            "If-Match must be the deployment's version number",
        )
        .at("If-Match")
    })
}

fn policy(app: &App) -> Result<Arc<Active>, ApiError> {
    let (_, active) = app
        .registry
        .resolve(None)
        .map_err(super::decisions::resolve_error)?;
    Ok(active)
}

/// Runs a write with `Idempotency-Key` handling: a known key replays the
/// stored answer; a new one is stored with the write.
async fn idempotent<F, Fut>(
    app: &App,
    caller: &Caller,
    headers: &HeaderMap,
    what: &str,
    bytes: &[u8],
    op: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Option<IdempotencyKey>) -> Fut,
    Fut: Future<Output = Result<(u16, Value), RecordError>>,
{
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(IdempotencyKey::new(
            &caller.name,
            v.to_str().unwrap_or_default(),
            what,
            bytes,
        )?),
        None => None,
    };
    if let Some(k) = &key
        && let Some(replay) = idempotency::lookup(&app.records.store, k).await?
    {
        let mut res = json(
            replay.status,
            &serde_json::from_str(&replay.body).unwrap_or(Value::Null),
        );
        res.headers_mut().insert(
            "idempotent-replayed",
            header::HeaderValue::from_static("true"),
        );
        return Ok(res);
    }
    match op(key.clone()).await {
        Ok((status, body)) => Ok(json(status, &body)),
        Err(RecordError::Conflict(m)) if key.is_some() => {
            // Lost a race with the same key: answer what the winner stored.
            match idempotency::lookup(&app.records.store, key.as_ref().expect("checked")).await? {
                Some(replay) => Ok(json(
                    replay.status,
                    &serde_json::from_str(&replay.body).unwrap_or(Value::Null),
                )),
                None => Err(RecordError::Conflict(m).into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The start every write shares, in the order its errors are reported:
/// who is calling (401), whether one of `roles` may (403), then the JSON
/// body (415, 413).
async fn writer(
    app: &App,
    headers: &HeaderMap,
    roles: &[Role],
    b: Body,
) -> Result<(Caller, Bytes), ApiError> {
    let caller = app.auth.caller(headers)?;
    caller.require(roles)?;
    body::require_json(headers)?;
    let bytes = body::read(headers, b, app.limits.body_bytes).await?;
    Ok((caller, bytes))
}

pub async fn create_system(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Operator, Role::Approver], b).await?;
    Ok(json(
        201,
        &app.records.register_system(&actor(&caller), &bytes).await?,
    ))
}

pub async fn get_system(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    Ok(json(200, &app.records.system(&id).await?))
}

pub async fn create_release(
    State(app): State<Arc<App>>,
    Path(system): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Operator, Role::Approver], b).await?;
    Ok(json(
        201,
        &app.records
            .register_release(&actor(&caller), &system, &bytes)
            .await?,
    ))
}

pub async fn get_release(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    let (system_id, doc) = app.records.release(&id).await?;
    Ok(json(
        200,
        &serde_json::json!({"release_id": id, "system_id": system_id, "release": doc}),
    ))
}

pub async fn release_review(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Approver], b).await?;
    Ok(json(
        201,
        &app.records
            .record_review(&actor(&caller), &id, None, &bytes)
            .await?,
    ))
}

pub async fn release_authorisation(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Approver], b).await?;
    Ok(json(
        201,
        &app.records
            .record_authorisation(&actor(&caller), &id, &bytes)
            .await?,
    ))
}

pub async fn release_acceptance(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Approver], b).await?;
    Ok(json(
        201,
        &app.records
            .record_acceptance(&actor(&caller), &id, &bytes)
            .await?,
    ))
}

pub async fn create_deployment(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Operator], b).await?;
    let active = policy(&app)?;
    let who = actor(&caller);
    idempotent(&app, &caller, &headers, "POST /v1/deployments", &bytes, {
        let (app, bytes) = (app.clone(), bytes.clone());
        move |k| async move {
            app.records
                .create_deployment(&who, &active.policy, &bytes, k.as_ref())
                .await
        }
    })
    .await
}

pub async fn get_deployment(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    let view = app.records.deployment_view(&id).await?;
    let mut res = json(200, &view);
    if let Some(v) = view["version"].as_i64() {
        res.headers_mut().insert(
            header::ETAG,
            header::HeaderValue::from_str(&format!("\"{v}\"")).expect("digits"),
        );
    }
    Ok(res)
}

pub async fn route(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth
        .caller(&headers)?
        .require(&[Role::Gateway, Role::Auditor, Role::Operator])?;
    let r = app.records.route(&id).await?;
    Ok(json(200, &serde_json::to_value(r).unwrap_or(Value::Null)))
}

pub async fn deployment_review(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Approver], b).await?;
    let d = app.records.deployment(&id).await?;
    Ok(json(
        201,
        &app.records
            .record_review(&actor(&caller), &d.release_id, Some(&id), &bytes)
            .await?,
    ))
}

pub async fn progress(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Approver], b).await?;
    let expected = if_match(&headers)?;
    let active = policy(&app)?;
    let who = actor(&caller);
    let what = format!("POST /v1/deployments/{id}/progressions");
    idempotent(&app, &caller, &headers, &what, &bytes, {
        let (app, bytes) = (app.clone(), bytes.clone());
        move |k| async move {
            app.records
                .progress(&who, &active.policy, &id, &bytes, expected, k.as_ref())
                .await
        }
    })
    .await
}

#[derive(Debug, serde::Deserialize)]
pub struct ObserveQuery {
    /// `false`: record only, the scheduler judges them later.
    #[serde(default = "yes")]
    evaluate: bool,
}

fn yes() -> bool {
    true
}

pub async fn observe(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<ObserveQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let axum::extract::Query(query) =
        query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct B {
        observations: Vec<Observation>,
    }
    let (caller, bytes) = writer(&app, &headers, &[Role::Operator], b).await?;
    let parsed: B = crate::records::evidence::parse(&bytes)?;
    let active = policy(&app)?;
    let who = actor(&caller);
    let what = format!("POST /v1/deployments/{id}/observations");
    idempotent(&app, &caller, &headers, &what, &bytes, {
        let app = app.clone();
        move |k| async move {
            app.records
                .observe(
                    &who,
                    &active.policy,
                    &id,
                    &parsed.observations,
                    query.evaluate,
                    k.as_ref(),
                )
                .await
        }
    })
    .await
}

pub async fn issue(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Operator], b).await?;
    Ok(json(
        201,
        &app.records
            .record_issue(&actor(&caller), &id, &bytes)
            .await?,
    ))
}

async fn intervene(
    app: Arc<App>,
    id: String,
    headers: HeaderMap,
    b: Body,
    rollback: bool,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Operator], b).await?;
    let expected = if_match(&headers)?;
    let who = actor(&caller);
    let what = format!(
        "POST /v1/deployments/{id}/{}",
        if rollback { "rollback" } else { "suspend" }
    );
    idempotent(&app, &caller, &headers, &what, &bytes, {
        let (app, bytes) = (app.clone(), bytes.clone());
        move |k| async move {
            app.records
                .intervene(&who, &id, rollback, &bytes, expected, k.as_ref())
                .await
        }
    })
    .await
}

pub async fn rollback(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    intervene(app, id, headers, b, true).await
}

pub async fn suspend(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    intervene(app, id, headers, b, false).await
}

pub async fn record(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(&[Role::Auditor])?;
    Ok(json(200, &app.records.export(&id).await?))
}

pub async fn decision(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(&[
        Role::Auditor,
        Role::Gateway,
        Role::Operator,
        Role::Approver,
    ])?;
    let entry = app.records.decision_entry(&id).await?;
    Ok(json(
        200,
        &serde_json::to_value(entry).unwrap_or(Value::Null),
    ))
}

pub async fn deliveries(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    app.records.deployment(&id).await?;
    let list = app.records.deliveries(&id).await?;
    Ok(json(
        200,
        &serde_json::json!({"deployment_id": id, "deliveries": list}),
    ))
}
