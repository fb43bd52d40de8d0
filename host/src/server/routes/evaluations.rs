//! `GET /v1/deployments/{id}/evaluations/{progression|monitoring}`: the
//! policy asked about a deployment's records without changing them
//! (records::evaluations). Each is a decision: logged in the chain marked
//! `read_only`, counted like every decision.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::auth::Role;
use crate::records::DeploymentSelector;
use crate::server::App;
use crate::server::auth::RequireRole;
use crate::server::error::ApiError;
use crate::service::pipeline::Pipeline;

/// Who may ask: gateways and controllers (`gateway`), operators, and
/// auditors.
pub(crate) const EVALUATORS: &[Role] = &[Role::Gateway, Role::Operator, Role::Auditor];

/// A query string as its parameters; a malformed one is 400.
pub(crate) fn query_params(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
}

/// The default bundle's pipeline: what deployments are decided by.
pub(crate) fn pipeline(app: &App) -> Result<Pipeline, ApiError> {
    app.pipeline(None).map_err(super::decisions::resolve_error)
}

/// A 200 with the value as JSON.
fn json<T: serde::Serialize>(v: &T) -> Result<Response, ApiError> {
    super::respond::json(StatusCode::OK, v)
}

pub(crate) async fn progression(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = app.auth.caller(&headers)?;
    caller.require(EVALUATORS)?;
    let params = query_params(query)?;
    let target = params
        .get("target_stage")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_query",
                "target_stage is required: the stage the progression would move to",
            )
            .at("target_stage")
        })?;
    let pipeline = pipeline(&app)?;
    let evaluation = app
        .records
        .evaluate_progression(&pipeline, &caller.name, &DeploymentSelector::Id(id), target)
        .await?;
    json(&evaluation)
}

pub(crate) async fn monitoring(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = app.auth.caller(&headers)?;
    caller.require(EVALUATORS)?;
    let pipeline = pipeline(&app)?;
    let evaluation = app
        .records
        .evaluate_monitoring(&pipeline, &caller.name, &DeploymentSelector::Id(id))
        .await?;
    json(&evaluation)
}

/// `GET /v1/deployments?ref=NAMESPACE/NAME`: the deployment a ref resolves
/// to (the newest created with it), with its history — what an adapter
/// sees when it finds a deployment by ref.
pub(crate) async fn find(
    State(app): State<Arc<App>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(&[
        Role::Auditor,
        Role::Operator,
        Role::Approver,
        Role::Gateway,
        Role::Publisher,
    ])?;
    let params = query_params(query)?;
    let selector = DeploymentSelector::from_query(
        params.get("deployment").map(String::as_str),
        params.get("ref").map(String::as_str),
    )?;
    let d = app.records.find_deployment(&selector).await?;
    json(&app.records.deployment_view(&d.id).await?)
}
