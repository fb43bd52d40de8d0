//! `GET /v1/openapi.json`: the published contract (OpenAPI 3.1), so that
//! clients can be generated and tools (schemathesis, validators) can check
//! that the service answers what it says it does.
//!
//! The schemas are derived by `utoipa` from the handlers' own request and
//! response types (`records::model`, `decision::request`, the decision
//! envelope, the records' answers), so a field added to a type is in the
//! document without anyone remembering to write it down. The operations
//! are one table here ([`operations`]): for each route of the router, who
//! may call it, what it reads and every status it answers with. A unit
//! test reads the router's `.route(…)` calls and fails when a route is
//! missing from the table or the table names a route that does not exist.
//!
//! Payloads whose shape belongs to another tool (a Kubernetes
//! AdmissionReview, Argo Rollouts' and Flagger's bodies, GitHub's webhook,
//! DSSE envelopes, OSCAL) are described here as objects with the fields
//! the service reads or writes: their parsers accept what those tools
//! send, which is more than this document should promise.

use std::sync::{Arc, OnceLock};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Components, OpenApi, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::decision::Timestamp;

mod operations;
mod payloads;

pub use operations::PATH;
use operations::{Access, Answer, Body, Loc, Method, Op, operations};

/// The error envelope every refusal carries (`server::error`), as a
/// schema. A unit test decodes `ApiError`'s real output into this type,
/// unknown fields refused, so the two cannot drift apart.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Error)]
pub struct ErrorEnvelope {
    pub error: ErrorDetail,
    /// The decision behind a refusal: a gate that denied a deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::decision::Envelope>)]
    pub decision: Option<Value>,
}

/// What went wrong, and where.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// A stable code (docs/decisions.md#http-errors).
    pub code: String,
    pub message: String,
    /// The JSON path, query parameter or header at fault; empty when the
    /// request as a whole is refused.
    pub path: String,
}

/// Timestamps are RFC 3339 text (`decision::timestamp`).
impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                )))
                .description(Some("An RFC 3339 timestamp such as 2026-11-26T12:00:00Z"))
                .build(),
        ))
    }
}

impl ToSchema for Timestamp {}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(openapi)
}

/// `GET /v1/openapi.json`: public, like the documentation it mirrors.
pub async fn serve(_: axum::extract::State<Arc<super::App>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        document().to_string(),
    )
        .into_response()
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// Adds `T` and every schema it refers to.
fn component<T: ToSchema>(c: &mut Components) {
    let mut deps = Vec::new();
    T::schemas(&mut deps);
    for (name, schema) in deps {
        c.schemas.entry(name).or_insert(schema);
    }
    c.schemas.insert(T::name().into_owned(), T::schema());
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema_ref("Error")}},
    })
}

fn content(media: &str, schema: Value) -> Value {
    json!({ media: {"schema": schema} })
}

fn text() -> Value {
    json!({"type": "string"})
}

/// What every operation of an access class may also answer: refusals of
/// the capacity gate and of the caller.
fn access_answers(access: Access) -> Vec<(u16, &'static str)> {
    let mut v = vec![
        (
            403,
            "Open mode: a Host that is not loopback; or the caller's roles may not call this",
        ),
        (
            503,
            "Overloaded, timed out, or the records, log or bundles unavailable (Retry-After)",
        ),
    ];
    match access {
        Access::Token(_) => v.push((401, "No token, or an unknown one (WWW-Authenticate)")),
        Access::Public => {
            v.push((
                408,
                "A caller without a token did not finish within its deadline",
            ));
            v.push((
                429,
                "Too many requests without a token from this address (Retry-After)",
            ));
        }
        Access::Probe | Access::Console => {}
    }
    v
}

/// One operation of the table as OpenAPI.
fn operation(op: &Op) -> Value {
    let parameters: Vec<Value> = op
        .params
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "in": match p.at {
                    Loc::Path => "path",
                    Loc::Query => "query",
                    Loc::Header => "header",
                },
                "required": p.required,
                "description": p.description,
                "schema": (p.schema)(),
            })
        })
        .collect();
    let body = |media: &str, schema: Value, required: bool| json!({"required": required, "content": content(media, schema)});
    let request_body = match op.body {
        Body::None => None,
        Body::Json(name, required) => Some(body("application/json", schema_ref(name), required)),
        Body::JsonInline(f) => Some(body("application/json", f(), true)),
        Body::Bundle => Some(body(
            "application/octet-stream",
            json!({"type": "string", "format": "binary", "description": "A signed bundle (gzipped tar)"}),
            true,
        )),
        Body::Form(f) => Some(body("application/x-www-form-urlencoded", f(), true)),
    };
    let mut statuses = std::collections::BTreeMap::new();
    for a in &op.answers {
        let (status, response) = match *a {
            Answer::Json(s, d, name) => (
                s,
                json!({"description": d, "content": content("application/json", schema_ref(name))}),
            ),
            Answer::JsonInline(s, d, f) => (
                s,
                json!({"description": d, "content": content("application/json", f())}),
            ),
            Answer::Text(s, d, media) => (
                s,
                json!({"description": d, "content": content(media, text())}),
            ),
            Answer::Html(s, d) => (
                s,
                json!({"description": d, "content": content("text/html; charset=utf-8", text())}),
            ),
            Answer::JsonOrHtml(s, d, f) => (
                s,
                json!({"description": d, "content": {
                    "application/json": {"schema": f()},
                    "text/html; charset=utf-8": {"schema": text()},
                }}),
            ),
            Answer::Empty(s, d) => (s, json!({ "description": d })),
            Answer::Error(s, d) => (s, error_response(d)),
        };
        statuses.insert(status, response);
    }
    // Writes to the records share their errors.
    if matches!(op.body, Body::Json(..) | Body::JsonInline(..)) && op.tag == "records" {
        for (s, d) in [
            (
                400u16,
                "The body is not JSON, or of the wrong shape (`path` names where)",
            ),
            (404, "No such record"),
            (
                409,
                "A conflict: the record exists, or the deployment moved on",
            ),
            (413, "The body is over `limits.body_bytes`"),
            (415, "The body is not `application/json`"),
            (
                422,
                "A well-formed body with a value outside its domain; a denied gate carries its decision",
            ),
        ] {
            statuses.entry(s).or_insert_with(|| error_response(d));
        }
    }
    // A path parameter may name nothing, or be empty (no route matches):
    // the JSON 404 either way. The console answers its own 404 pages.
    if !matches!(op.access, Access::Console) && op.params.iter().any(|p| matches!(p.at, Loc::Path))
    {
        statuses.entry(404).or_insert_with(|| {
            error_response("No such record, or no route for an empty path segment")
        });
    }
    for (s, d) in access_answers(op.access) {
        statuses.entry(s).or_insert_with(|| error_response(d));
    }
    let mut responses = serde_json::Map::new();
    for (status, mut response) in statuses {
        if status == 401 && matches!(op.access, Access::Token(_)) {
            response["headers"]["WWW-Authenticate"] = json!({"schema": text()});
        }
        if status == 503 || status == 429 {
            response["headers"]["Retry-After"] = json!({"schema": text()});
        }
        responses.insert(status.to_string(), response);
    }
    let (security, description) = match op.access {
        Access::Token(roles) => (
            json!([{"bearer": []}]),
            if roles.is_empty() {
                "Any role.".to_string()
            } else {
                format!("Roles: {}.", roles.join(", "))
            },
        ),
        Access::Console => (
            json!([{"console_session": []}]),
            "Console roles: auditor, approver, operator (any caller in open mode).".to_string(),
        ),
        Access::Public | Access::Probe => (json!([{}]), "No token needed.".to_string()),
    };
    let mut v = json!({
        "operationId": op.id,
        "summary": op.summary,
        "description": description,
        "tags": [op.tag],
        "responses": responses,
        "security": security,
    });
    if !parameters.is_empty() {
        v["parameters"] = Value::Array(parameters);
    }
    if let Some(b) = request_body {
        v["requestBody"] = b;
    }
    v
}

/// The whole document.
pub fn openapi() -> Value {
    let mut components = Components::new();
    component::<ErrorEnvelope>(&mut components);
    component::<crate::decision::request::GateRequest>(&mut components);
    component::<crate::decision::request::ProgressionRequest>(&mut components);
    component::<crate::decision::request::MonitoringRequest>(&mut components);
    component::<crate::decision::Envelope>(&mut components);
    {
        use crate::records::model::*;
        component::<NewSystem>(&mut components);
        component::<System>(&mut components);
        component::<SystemView>(&mut components);
        component::<ReleaseEvidence>(&mut components);
        component::<Release>(&mut components);
        component::<NewReview>(&mut components);
        component::<NewAuthorisation>(&mut components);
        component::<NewAcceptance>(&mut components);
        component::<NewIssue>(&mut components);
        component::<MaterialIssue>(&mut components);
        component::<NewDeployment>(&mut components);
        component::<NewProgression>(&mut components);
        component::<NewIntervention>(&mut components);
        component::<NewObservations>(&mut components);
        component::<Deployment>(&mut components);
        component::<DeploymentView>(&mut components);
        component::<Route>(&mut components);
        component::<Transition>(&mut components);
    }
    component::<crate::records::evidence::ReviewRecorded>(&mut components);
    component::<crate::records::evidence::AuthorisationRecorded>(&mut components);
    component::<crate::records::evidence::AcceptanceRecorded>(&mut components);
    component::<crate::records::Evaluation>(&mut components);
    component::<crate::records::proofs::EntryView>(&mut components);
    component::<crate::records::proofs::DecisionProof>(&mut components);
    component::<crate::records::webhooks::Delivery>(&mut components);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An access token from [[tokens]]; its roles decide what it may call",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "console_session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            super::console::session::COOKIE,
            "The console's session, from POST /ui/sign-in",
        ))),
    );
    let mut doc = OpenApi::new(
        utoipa::openapi::Info::builder()
            .title("stagegate")
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(
                "Deployment governance for AI systems: decisions, records, the decision log and the integrations (docs/http-api.md).",
            ))
            .build(),
        utoipa::openapi::Paths::new(),
    );
    doc.components = Some(components);
    let mut doc = serde_json::to_value(doc).unwrap_or_else(|e| json!({"error": e.to_string()}));
    let mut paths = serde_json::Map::new();
    for op in operations() {
        let method = match op.method {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Patch => "patch",
            Method::Delete => "delete",
        };
        let item = paths.entry(op.path).or_insert_with(|| json!({}));
        item[method] = operation(&op);
    }
    doc["paths"] = Value::Object(paths);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router's routes, read from the `.route("PATH", METHOD(...)…)`
    /// calls of the files that build it: (path in OpenAPI form, methods).
    fn routes_in(source: &str) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        let mut rest = source;
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + ".route(".len()..];
            let Some(start) = rest.find('"') else { break };
            let after = &rest[start + 1..];
            let Some(end) = after.find('"') else { break };
            let raw = &after[..end];
            // The handler part runs to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let mut close = after.len();
            for (j, c) in after[end + 1..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            close = end + 1 + j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let handlers = &after[end + 1..close];
            let mut methods = Vec::new();
            for m in ["get", "post", "put", "patch", "delete", "any"] {
                let plain = format!("{m}(");
                let chained = format!(".{m}(");
                let trimmed = handlers.trim_start_matches([',', ' ', '\n']);
                if trimmed.starts_with(&plain) || handlers.contains(&chained) {
                    methods.push(m.to_string());
                }
            }
            let path = raw.replace("{*", "{");
            out.push((path, methods));
        }
        out
    }

    fn router_routes() -> Vec<(String, Vec<String>)> {
        let mut routes = routes_in(include_str!("../mod.rs"));
        routes.extend(routes_in(include_str!("../console/mod.rs")));
        routes
    }

    fn doc() -> Value {
        openapi()
    }

    #[test]
    fn every_route_of_the_router_is_in_the_document() {
        let doc = doc();
        let routes = router_routes();
        assert!(routes.len() > 50, "read only {} routes", routes.len());
        let mut missing = Vec::new();
        for (path, methods) in &routes {
            assert!(!methods.is_empty(), "no method read for {path}");
            for m in methods {
                let one = [m.as_str()];
                let wanted: &[&str] = if m == "any" {
                    &["get", "post", "put", "patch", "delete"]
                } else {
                    &one
                };
                for w in wanted {
                    if doc["paths"][path.as_str()][*w].is_null() {
                        missing.push(format!("{} {path}", w.to_uppercase()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "routes missing from the document: {missing:?}"
        );
    }

    #[test]
    fn the_document_names_no_route_the_router_lacks() {
        let doc = doc();
        let routes = router_routes();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let found = routes
                    .iter()
                    .any(|(p, ms)| p == path && ms.iter().any(|m| m == method || m == "any"));
                assert!(
                    found,
                    "{} {path} is documented but not routed",
                    method.to_uppercase()
                );
            }
        }
    }

    #[test]
    fn every_operation_documents_its_errors_with_the_envelope_and_has_an_id() {
        let doc = doc();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_default();
                assert!(
                    ids.insert(id.to_string()),
                    "duplicate operationId {id} ({method} {path})"
                );
                assert!(
                    op["responses"]["503"].is_object(),
                    "{method} {path}: no 503"
                );
                for (status, r) in op["responses"].as_object().unwrap() {
                    assert!(
                        !r["description"].as_str().unwrap_or_default().is_empty(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = doc();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(
                schemas.contains_key(name),
                "unresolved schema reference {name}"
            );
        }
    }

    #[test]
    fn the_error_schema_is_what_api_errors_send() {
        use crate::server::error::ApiError;
        let res = ApiError::bad_request("request.malformed", "bad").at("/now");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt.block_on(async {
            axum::body::to_bytes(res.into_response().into_body(), 1 << 20)
                .await
                .unwrap()
        });
        let parsed: ErrorEnvelope = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed.error.code, "request.malformed");
        assert_eq!(parsed.error.path, "/now");
        let doc = doc();
        let schema = &doc["components"]["schemas"]["Error"];
        assert_eq!(schema["required"], json!(["error"]));
        assert!(schema["properties"]["decision"].is_object());
    }

    #[test]
    fn the_document_is_openapi_3_1_with_both_security_schemes() {
        let doc = doc();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["console_session"]["in"], "cookie");
    }
}
