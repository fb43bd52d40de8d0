//! The records API: systems, releases, reviews, authorisations, risk
//! acceptances, deployments and their transitions, the decision log and
//! the auditor's export.
//!
//! Handlers decode bodies into the records' typed inputs (a malformed body
//! is 400, a well-formed invalid one 422, as for decisions), call the
//! records service and choose the status. Writes accept `Idempotency-Key`
//! (a retry returns the first answer) and state changes accept
//! `If-Match: <version>` (409 when the deployment moved on). Actors always
//! come from the token.

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::respond::json;
use crate::auth::Caller;
use crate::auth::Role;
use crate::decision::decode::decode_as;
use crate::records::idempotency::IdempotencyKey;
use crate::records::model::{
    MisplacedReleaseFields, NewAcceptance, NewAuthorisation, NewDeployment, NewIntervention,
    NewIssue, NewObservations, NewProgression, NewReview, NewSystem, ReleaseEvidence,
};
use crate::records::oscal;
use crate::records::{Actor, Intervention, RecordError};
use crate::server::App;
use crate::server::auth::RequireRole;
use crate::server::body;
use crate::server::error::ApiError;
use crate::service::pipeline::Pipeline;

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

/// Decodes a body with the decision decoder's errors (JSON path, 400 for
/// malformed, 422 for invalid).
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    Ok(decode_as(bytes)?)
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

/// The decision pipeline of the default bundle: what deployment
/// transitions are decided by.
fn pipeline(app: &App) -> Result<Pipeline, ApiError> {
    app.pipeline(None).map_err(super::decisions::resolve_error)
}

/// Runs a write with `Idempotency-Key` handling: a known key replays the
/// stored answer; a new one is stored with the write; a concurrent
/// request with the same key that commits first is answered with its
/// answer.
async fn idempotent<T, F, Fut>(
    app: &App,
    caller: &Caller,
    headers: &HeaderMap,
    what: &str,
    bytes: &[u8],
    status: StatusCode,
    op: F,
) -> Result<Response, ApiError>
where
    T: Serialize,
    F: FnOnce(Option<IdempotencyKey>) -> Fut,
    Fut: Future<Output = Result<T, RecordError>>,
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
    let replay = |body: String| {
        let mut res = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        res
    };
    if let Some(k) = &key
        && let Some(body) = app.records.idempotent_answer(k).await?
    {
        return Ok(replay(body));
    }
    match op(key.clone()).await {
        Ok(result) => json(status, &result),
        Err(RecordError::IdempotencyRace) => {
            let stored = match &key {
                Some(k) => app.records.idempotent_answer(k).await?,
                None => None,
            };
            match stored {
                Some(body) => Ok(replay(body)),
                None => Err(RecordError::IdempotencyRace.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The start every write shares, in the order its errors are reported:
/// who is calling (401), whether one of `roles` may (403), then the JSON
/// body (415, 413). Nothing of the body is read before the caller is known
/// to be allowed.
async fn writer(
    app: &App,
    headers: &HeaderMap,
    roles: &[Role],
    b: Body,
) -> Result<(Caller, Bytes), ApiError> {
    let caller = app.auth.caller(headers)?;
    caller.require(roles)?;
    body::require_json(headers)?;
    body::require_non_form(headers, app.auth.is_open())?;
    let bytes = body::read(headers, b, app.limits.body_bytes).await?;
    Ok((caller, bytes))
}

pub(crate) async fn create_system(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Operator, Role::Approver], b).await?;
    let new: NewSystem = parse(&bytes)?;
    let system = app.records.register_system(&actor(&caller), new).await?;
    json(StatusCode::CREATED, &system)
}

pub(crate) async fn get_system(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    json(StatusCode::OK, &app.records.system(&id).await?.system)
}

pub(crate) async fn create_release(
    State(app): State<Arc<App>>,
    Path(system): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Operator, Role::Approver], b).await?;
    let evidence: ReleaseEvidence = parse(&bytes)?;
    let misplaced: MisplacedReleaseFields = parse(&bytes)?;
    let attested: ReleaseAttestations = parse(&bytes)?;
    let release = app
        .records
        .register_release(
            &actor(&caller),
            &system,
            evidence,
            &misplaced,
            &attested.attestations,
        )
        .await?;
    json(StatusCode::CREATED, &release)
}

/// A release body's `attestations`: DSSE envelopes, kept as sent.
#[derive(serde::Deserialize)]
struct ReleaseAttestations {
    #[serde(default)]
    attestations: Vec<Box<serde_json::value::RawValue>>,
}

pub(crate) async fn get_release(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    json(StatusCode::OK, &app.records.release(&id).await?)
}

pub(crate) async fn release_review(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Approver], b).await?;
    let new: NewReview = parse(&bytes)?;
    let review = app
        .records
        .record_review(&actor(&caller), &id, None, new)
        .await?;
    json(StatusCode::CREATED, &review)
}

pub(crate) async fn release_authorisation(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Approver], b).await?;
    // An empty body authorises with none of the optional parts.
    let new: NewAuthorisation = if bytes.iter().all(u8::is_ascii_whitespace) {
        NewAuthorisation::default()
    } else {
        parse(&bytes)?
    };
    let auth = app
        .records
        .record_authorisation(&actor(&caller), &id, new)
        .await?;
    json(StatusCode::CREATED, &auth)
}

pub(crate) async fn release_acceptance(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Approver], b).await?;
    let new: NewAcceptance = parse(&bytes)?;
    let acceptance = app
        .records
        .record_acceptance(&actor(&caller), &id, new)
        .await?;
    json(StatusCode::CREATED, &acceptance)
}

pub(crate) async fn create_deployment(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Operator], b).await?;
    let new: NewDeployment = parse(&bytes)?;
    let pipeline = pipeline(&app)?;
    let who = actor(&caller);
    let records = app.records.clone();
    idempotent(
        &app,
        &caller,
        &headers,
        "POST /v1/deployments",
        &bytes,
        StatusCode::CREATED,
        |k| async move {
            records
                .create_deployment(&pipeline, &who, new, k.as_ref())
                .await
        },
    )
    .await
}

pub(crate) async fn get_deployment(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    let view = app.records.deployment_view(&id).await?;
    let mut res = json(StatusCode::OK, &view)?;
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", view.deployment.version)) {
        res.headers_mut().insert(header::ETAG, etag);
    }
    Ok(res)
}

pub(crate) async fn route(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth
        .caller(&headers)?
        .require(&[Role::Gateway, Role::Auditor, Role::Operator])?;
    json(StatusCode::OK, &app.records.route(&id).await?)
}

pub(crate) async fn deployment_review(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Approver], b).await?;
    let new: NewReview = parse(&bytes)?;
    let d = app.records.deployment(&id).await?;
    let review = app
        .records
        .record_review(&actor(&caller), &d.release_id, Some(&id), new)
        .await?;
    json(StatusCode::CREATED, &review)
}

pub(crate) async fn progress(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Approver], b).await?;
    let expected = if_match(&headers)?;
    let new: NewProgression = parse(&bytes)?;
    let pipeline = pipeline(&app)?;
    let who = actor(&caller);
    let what = format!("POST /v1/deployments/{id}/progressions");
    let records = app.records.clone();
    idempotent(
        &app,
        &caller,
        &headers,
        &what,
        &bytes,
        StatusCode::OK,
        |k| async move {
            records
                .progress(&pipeline, &who, &id, new, expected, k.as_ref())
                .await
        },
    )
    .await
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct ObserveQuery {
    /// `false`: record only, the scheduler judges them later.
    #[serde(default = "yes")]
    evaluate: bool,
}

fn yes() -> bool {
    true
}

pub(crate) async fn observe(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<ObserveQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let axum::extract::Query(query) =
        query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let (caller, bytes) = writer(&app, &headers, &[Role::Operator], b).await?;
    let new: NewObservations = parse(&bytes)?;
    let pipeline = pipeline(&app)?;
    let who = actor(&caller);
    let what = format!("POST /v1/deployments/{id}/observations");
    let records = app.records.clone();
    idempotent(
        &app,
        &caller,
        &headers,
        &what,
        &bytes,
        StatusCode::OK,
        |k| async move {
            records
                .observe(
                    &pipeline,
                    &who,
                    &id,
                    &new.observations,
                    query.evaluate,
                    k.as_ref(),
                )
                .await
        },
    )
    .await
}

pub(crate) async fn issue(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Operator], b).await?;
    let new: NewIssue = parse(&bytes)?;
    let issue = app.records.record_issue(&actor(&caller), &id, new).await?;
    json(
        StatusCode::CREATED,
        &serde_json::json!({ "material_issue": issue }),
    )
}

async fn intervene(
    app: Arc<App>,
    id: String,
    headers: HeaderMap,
    b: Body,
    action: Intervention,
) -> Result<Response, ApiError> {
    let (caller, bytes) = writer(&app, &headers, &[Role::Operator], b).await?;
    let expected = if_match(&headers)?;
    let new: NewIntervention = parse(&bytes)?;
    let who = actor(&caller);
    let records = app.records.clone();
    let what = format!(
        "POST /v1/deployments/{id}/{}",
        match action {
            Intervention::Rollback => "rollback",
            Intervention::Suspend => "suspend",
        }
    );
    idempotent(
        &app,
        &caller,
        &headers,
        &what,
        &bytes,
        StatusCode::OK,
        |k| async move {
            records
                .intervene(&who, &id, action, new, expected, k.as_ref())
                .await
        },
    )
    .await
}

pub(crate) async fn rollback(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    intervene(app, id, headers, b, Intervention::Rollback).await
}

pub(crate) async fn suspend(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, ApiError> {
    intervene(app, id, headers, b, Intervention::Suspend).await
}

/// `?format=` of a deployment's record.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct RecordQuery {
    #[serde(default)]
    format: Option<String>,
}

/// `GET /v1/deployments/{id}/record[?format=json|oscal]`: the auditor's
/// document, as stagegate's own JSON or as OSCAL assessment results
/// (docs/oscal.md).
pub(crate) async fn record(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<RecordQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(&[Role::Auditor])?;
    let Query(query) = query
        .map_err(|e| ApiError::bad_request("bad_query", format!("invalid query string: {e}")))?;
    match query.format.as_deref() {
        None | Some("json") => json(StatusCode::OK, &app.records.export(&id).await?),
        Some("oscal") => {
            let evidence = app.records.oscal_evidence(&id).await?;
            // Findings are judged by the control map of the bundle that
            // decided the deployment, as loaded now.
            let pipeline = app
                .pipeline(evidence.bundle())
                .map_err(super::decisions::resolve_error)?;
            let doc = oscal::document(&evidence, &pipeline.controls());
            let body = oscal::to_bytes(&doc)
                .map_err(|e| ApiError::internal(format!("encoding the answer: {e}")))?;
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response())
        }
        Some(other) => Err(ApiError::bad_request(
            "bad_format",
            format!(
                "format must be json or oscal, not '{}'",
                other.escape_debug()
            ),
        )
        .at("format")),
    }
}

pub(crate) async fn decision(
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
    json(StatusCode::OK, &app.records.decision_entry(&id).await?)
}

pub(crate) async fn deliveries(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    app.records.deployment(&id).await?;
    let list = app.records.deliveries(&id).await?;
    json(
        StatusCode::OK,
        &serde_json::json!({"deployment_id": id, "deliveries": list}),
    )
}

/// `GET /v1/log/checkpoint`: the newest signed checkpoint of the log's
/// Merkle tree (`text/plain`), for an auditor or witness to keep outside
/// the database; signs one only when the log moved and the newest is
/// older than `records.checkpoint_max_age_ms` (docs/log.md).
pub(crate) async fn checkpoint(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth
        .caller(&headers)?
        .require(&[Role::Auditor, Role::Operator])?;
    match app.records.checkpoint().await? {
        Some(note) => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            note,
        )
            .into_response()),
        None => Err(ApiError::not_found(
            "checkpoints are not signed: configure records.checkpoint_key",
        )),
    }
}

/// `GET /v1/log/key`: the public key checkpoints are signed with, as PEM
/// and as a signed-note verifier key.
pub(crate) async fn checkpoint_key(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    let Some((origin, key)) = app.records.checkpoint_key() else {
        return Err(ApiError::not_found(
            "checkpoints are not signed: configure records.checkpoint_key",
        ));
    };
    use ed25519_dalek::pkcs8::EncodePublicKey;
    let pem = key
        .to_public_key_pem(Default::default())
        .map_err(|e| ApiError::internal(format!("encoding the key: {e}")))?;
    json(
        StatusCode::OK,
        &serde_json::json!({
            "origin": origin,
            "public_key_pem": pem,
            "verifier_key": crate::records::checkpoint::verifier_key(&origin, &key),
        }),
    )
}

/// `GET /v1/decisions/{id}/receipt`: the decision's signed receipt, a DSSE
/// envelope (docs/evidence-and-receipts.md).
pub(crate) async fn receipt(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(&[
        Role::Auditor,
        Role::Gateway,
        Role::Operator,
        Role::Approver,
    ])?;
    let text = app.records.receipt(&id).await?;
    if q.get("include").is_some_and(|v| v == "proof") {
        return super::log::receipt_with_proof(&app, &id, &text).await;
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response())
}

/// `GET /v1/receipts/keys`: the public keys receipts are signed with.
pub(crate) async fn receipt_keys(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    json(
        StatusCode::OK,
        &serde_json::json!({"keys": app.records.receipt_keys()}),
    )
}
