//! `GET /v1/integrations/argo-rollouts/analysis?deployment=ID|ref=NS/NAME[&weight=W]`:
//! Argo Rollouts' web metric provider (crate::integrations::argo).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::CONTROLLERS;
use crate::integrations::argo;
use crate::records::DeploymentSelector;
use crate::server::App;
use crate::server::auth::RequireRole;
use crate::server::error::ApiError;
use crate::server::routes::evaluations::{pipeline, query_params};

pub(crate) async fn analysis(
    State(app): State<Arc<App>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = app.auth.caller(&headers)?;
    caller.require(CONTROLLERS)?;
    let params = query_params(query)?;
    let selector = DeploymentSelector::from_query(
        params.get("deployment").map(String::as_str),
        params.get("ref").map(String::as_str),
    )?;
    let weight = params
        .get("weight")
        .map(|w| argo::parse_weight(w))
        .transpose()?;
    let pipeline = pipeline(&app)?;
    let analysis = argo::analyse(&app.records, &pipeline, &caller.name, &selector, weight).await?;
    let body = serde_json::to_vec(&analysis)
        .map_err(|e| ApiError::internal(format!("encoding the answer: {e}")))?;
    // Always 200: Argo counts any other status as an Error measurement,
    // not as the failure or pause the result says.
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
