//! Bundle management: `GET /v1/bundles`, `GET|PUT /v1/bundles/{name}`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::bundle::Signer;
use crate::decision::Timestamp;
use crate::server::App;
use crate::server::auth::RequireRole;
use crate::server::body;
use crate::server::error::ApiError;
use crate::service::registry::{Active, Event, Origin, Rejection, Slot};

#[derive(Serialize)]
pub(crate) struct ActiveView {
    name: String,
    version: String,
    digest: String,
    signers: Vec<Signer>,
    activated_at: Timestamp,
    origin: Origin,
    isolation: crate::policy::Isolation,
    default: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    forced: bool,
    compiled_from_cache: bool,
    load_millis: u128,
}

fn view(slot: &Slot, a: &Active, default: bool) -> ActiveView {
    ActiveView {
        name: slot.name.clone(),
        version: a.version.to_string(),
        digest: a.digest.clone(),
        signers: a.signers.clone(),
        activated_at: a.activated_at,
        origin: a.origin.clone(),
        isolation: a.policy.loaded.isolation(),
        default,
        forced: a.forced,
        compiled_from_cache: a.compiled == crate::policy::CacheOutcome::Hit,
        load_millis: a.load_millis,
    }
}

#[derive(Serialize)]
pub(crate) struct BundleList {
    bundles: Vec<ActiveView>,
    default: Option<String>,
}

/// Active bundles: any authenticated caller.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<BundleList>, ApiError> {
    app.auth.caller(&headers)?;
    let default = app.registry.default_name();
    let bundles = app
        .registry
        .slots()
        .values()
        .filter_map(|s| {
            s.active()
                .map(|a| view(s, &a, default.as_deref() == Some(s.name.as_str())))
        })
        .collect();
    Ok(Json(BundleList { bundles, default }))
}

#[derive(Serialize)]
pub(crate) struct BundleStatus {
    name: String,
    active: Option<ActiveView>,
    last_rejection: Option<Event>,
    /// The polled remote source (`url`, `oci`), if the bundle has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<crate::service::registry::SourceStatus>,
    history: Vec<Event>,
}

/// One bundle's status, including the last rejected candidate and why.
pub(crate) async fn status(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<BundleStatus>, ApiError> {
    app.auth.caller(&headers)?;
    let slots = app.registry.slots();
    let slot = slots.get(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_bundle",
            format!("unknown bundle '{name}'"),
        )
    })?;
    let default = app.registry.default_name();
    Ok(Json(BundleStatus {
        name: slot.name.clone(),
        active: slot
            .active()
            .map(|a| view(slot, &a, default.as_deref() == Some(slot.name.as_str()))),
        last_rejection: slot.last_rejection(),
        source: slot.source_status(),
        history: slot.history(),
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    #[serde(default)]
    force: bool,
    /// Why a forced activation is needed: kept with the forced-activation
    /// event. The `X-Reason` header says the same.
    #[serde(default)]
    reason: Option<String>,
}

/// The longest reason kept.
const MAX_REASON: usize = 1024;

/// Uploads a bundle version: verified, compiled, smoke-called, then
/// swapped in. A rejected upload leaves the active version serving.
pub(crate) async fn upload(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Json<crate::service::registry::Activated>, ApiError> {
    // `force=true` overrides the version floor, which only a bundle
    // administrator may do; the query is checked before the body is read.
    let wants_force = matches!(&query, Ok(Query(q)) if q.force);
    let caller = match app
        .auth
        .caller(&headers)
        .and_then(|c| c.require(&[Role::Publisher, Role::BundleAdmin]).map(|_| c))
        .and_then(|c| {
            if wants_force {
                c.require(&[Role::BundleAdmin]).map_err(|e| {
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        format!(
                            "{}; force=true overrides the bundle's version floor",
                            e.message
                        ),
                    )
                })?;
            }
            Ok(c)
        }) {
        Ok(c) => c,
        Err(e) => return Err(body::refuse_after_drain(&headers, request_body, e).await),
    };
    if let Err(e) = body::require_non_form(&headers, app.auth.is_open()) {
        return Err(body::refuse_after_drain(&headers, request_body, e).await);
    }
    crate::bundle::manifest::check_name(&name)
        .map_err(|e| ApiError::bad_request("bad_bundle_name", e.to_string()))?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let reason = match query.reason.clone().or_else(|| {
        headers
            .get("x-reason")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }) {
        Some(r) if r.len() > MAX_REASON => {
            return Err(ApiError::bad_request(
                "bad_reason",
                format!(
                    "reason is {} bytes, over the {MAX_REASON}-byte limit",
                    r.len()
                ),
            ));
        }
        Some(r) => Some(r.trim().to_string()).filter(|r| !r.is_empty()),
        None => None,
    };
    let bytes = body::read(&headers, request_body, app.limits.upload_bytes).await?;
    let registry = app.registry.clone();
    let origin = Origin::Upload {
        by: caller.name.clone(),
    };
    let result = tokio::task::spawn_blocking(move || {
        registry.activate(&name, &bytes, origin, query.force, reason.as_deref())
    })
    .await
    .map_err(|e| ApiError::internal(format!("activation task failed: {e}")))?;
    match result {
        Ok(a) => Ok(Json(a)),
        Err(e) => {
            let status = match &e {
                Rejection::Downgrade { .. } | Rejection::SameVersion { .. } => StatusCode::CONFLICT,
                Rejection::Persist(_) | Rejection::Floor(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let code = e.code();
            Err(ApiError::new(status, code, e.to_string()))
        }
    }
}
