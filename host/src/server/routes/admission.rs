//! `POST /v1/integrations/kubernetes/admission`: a Kubernetes
//! ValidatingAdmissionWebhook (docs/integrations/kubernetes.md).
//!
//! The API server sends an `admission.k8s.io/v1` `AdmissionReview` and
//! expects one back with the same `request.uid`. Any other answer (a non-200
//! status, another `uid`, another `apiVersion`) makes the call fail, and
//! with `failurePolicy: Fail` the object is refused with a message the user
//! cannot act on. So once a review carries a `uid`, every outcome —
//! including "stagegate cannot read its records" — is a review answer with
//! `allowed: false` and a message; only a body that is not a v1
//! AdmissionReview with a `uid` gets a `400`.
//!
//! Objects opt in with the annotation `stagegate.dev/deployment` (a
//! deployment id) or `stagegate.dev/system` (the newest active deployment of
//! that system). The rules read the deployment's route and its release and
//! never change either; each answer about an annotated object is one entry
//! of the decision log.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::decision::verdict::FindingSeverity;
use crate::records::chain::LogEntry;
use crate::records::model::Deployment;
use crate::records::{DeploymentSelector, DeploymentStatus, RecordError};
use crate::server::App;
use crate::server::body;
use crate::server::error::ApiError;

/// The only review version served (the webhook's `admissionReviewVersions`).
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The annotation naming a deployment id.
pub const DEPLOYMENT_ANNOTATION: &str = "stagegate.dev/deployment";
/// The annotation naming a system; its newest active deployment applies.
pub const SYSTEM_ANNOTATION: &str = "stagegate.dev/system";
/// The decision log's kind for these answers.
const LOG_KIND: &str = "kubernetes.admission";

/// How severe a finding is: a `deny` refuses the object, a `warn` is
/// returned to the client as an admission warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Deny,
    Warn,
}

/// One reason in an answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    pub code: String,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    fn deny(code: &str, message: impl Into<String>) -> Self {
        Finding {
            code: code.into(),
            severity: Severity::Deny,
            message: message.into(),
        }
    }

    fn warn(code: &str, message: impl Into<String>) -> Self {
        Finding {
            code: code.into(),
            severity: Severity::Warn,
            message: message.into(),
        }
    }
}

/// The handler: the `gateway` role (the API server's token).
pub async fn review(
    State(app): State<Arc<App>>,
    tls: Option<axum::Extension<crate::server::admission_access::TlsConnection>>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
    // A refusal is answered after the body is read (bounded): the client
    // then sees the 401 or 403, not a reset connection. On the TLS
    // listener the API server may come without a token
    // (`server::admission_access`).
    let caller = match app
        .admission_access
        .caller(&app.auth, &headers, tls.as_deref())
    {
        Ok(c) => c,
        Err(e) => return Err(body::refuse_after_drain(&headers, request_body, e).await),
    };
    body::require_json(&headers)?;
    let bytes = body::read(&headers, request_body, app.limits.body_bytes).await?;
    let review: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("bad_admission_review", format!("the body is not JSON: {e}"))
    })?;
    let request = envelope(&review)?;
    let uid = request.uid.to_string();
    let answer = decide(&app, &request, &caller.name).await;
    app.metrics
        .admission(match (answer.opted_in, answer.allowed()) {
            (false, _) => "not_annotated",
            (true, true) => "allowed",
            (true, false) => "denied",
        });
    let mut codes: Vec<String> = answer.findings.iter().map(|f| f.code.clone()).collect();
    if request.dry_run {
        codes.push("admission.dry_run".into());
    }
    // Objects that did not opt in are not decisions about a deployment:
    // logging every object of an opted-in namespace would flood the chain.
    let decision_id = if answer.opted_in {
        let entry = LogEntry {
            decision_id: crate::records::new_id(),
            at: crate::decision::Timestamp::now().millis(),
            kind: LOG_KIND.into(),
            outcome: if answer.allowed() {
                "allowed"
            } else {
                "denied"
            }
            .into(),
            codes,
            bundle: String::new(),
            bundle_version: String::new(),
            bundle_digest: String::new(),
            request_digest: crate::records::chain::digest(&bytes),
            request: None,
            deployment_id: answer.deployment.as_ref().map(|d| d.id.clone()),
            actor: caller.name.clone(),
            record: None,
            // An admission answer changes nothing but the log.
            read_only: true,
        };
        let id = entry.decision_id.clone();
        if let Err(e) = app.records.log.record(entry).await {
            tracing::error!(error = %e, uid = %uid, "could not log an admission decision");
            let refused = Answer {
                findings: vec![Finding::deny(
                    "admission.log_unavailable",
                    format!("stagegate could not log its decision ({e}); retry shortly"),
                )],
                ..answer
            };
            return Ok(respond(
                &uid,
                &refused,
                None,
                StatusCode::SERVICE_UNAVAILABLE,
            ));
        }
        Some(id)
    } else {
        None
    };
    Ok(respond(
        &uid,
        &answer,
        decision_id.as_deref(),
        StatusCode::FORBIDDEN,
    ))
}

/// The fields of an `AdmissionRequest` the rules read.
pub(crate) struct Request<'a> {
    pub uid: &'a str,
    pub operation: &'a str,
    /// `request.kind`: the group and kind of the object.
    pub group: &'a str,
    pub kind: &'a str,
    /// `request.namespace` and `request.name` (else the object's): the
    /// `kubernetes` ref `NAMESPACE/NAME`.
    pub namespace: &'a str,
    pub name: &'a str,
    pub object: Option<&'a Value>,
    pub old_object: Option<&'a Value>,
    pub dry_run: bool,
}

/// Checks the envelope: `apiVersion`, `kind`, `request.uid`. What is wrong
/// here cannot be answered with a review (no `uid` to echo), so it is a 400.
pub(crate) fn envelope(review: &Value) -> Result<Request<'_>, ApiError> {
    let bad = |path: &str, message: String| {
        ApiError::bad_request("bad_admission_review", message).at(path)
    };
    let Some(map) = review.as_object() else {
        return Err(bad("", "an AdmissionReview must be a JSON object".into()));
    };
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) => {}
        Some(other) => {
            return Err(bad(
                "apiVersion",
                format!(
                    "apiVersion '{other}' is not served; configure the webhook with admissionReviewVersions: [\"v1\"] ({API_VERSION})"
                ),
            ));
        }
        None => {
            return Err(bad(
                "apiVersion",
                format!("apiVersion is missing; expected '{API_VERSION}'"),
            ));
        }
    }
    if map.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Err(bad("kind", "kind must be 'AdmissionReview'".into()));
    }
    let Some(request) = map.get("request").filter(|r| r.is_object()) else {
        return Err(bad(
            "request",
            "request is missing: an AdmissionReview sent to a webhook carries one".into(),
        ));
    };
    let uid = match request.get("uid").and_then(Value::as_str) {
        Some(uid) if !uid.trim().is_empty() => uid,
        _ => {
            return Err(bad(
                "request.uid",
                "request.uid is missing or empty; the answer must echo it".into(),
            ));
        }
    };
    fn text(v: Option<&Value>) -> &str {
        v.and_then(Value::as_str).unwrap_or_default()
    }
    let object = request.get("object").filter(|o| !o.is_null());
    let kind = request.get("kind");
    Ok(Request {
        uid,
        operation: text(request.get("operation")),
        group: text(kind.and_then(|k| k.get("group"))),
        kind: match text(kind.and_then(|k| k.get("kind"))) {
            "" => text(object.and_then(|o| o.get("kind"))),
            k => k,
        },
        namespace: match text(request.get("namespace")) {
            "" => text(object.and_then(|o| o.pointer("/metadata/namespace"))),
            ns => ns,
        },
        name: match text(request.get("name")) {
            "" => text(object.and_then(|o| o.pointer("/metadata/name"))),
            name => name,
        },
        object,
        old_object: request.get("oldObject").filter(|o| !o.is_null()),
        dry_run: request.get("dryRun").and_then(Value::as_bool) == Some(true),
    })
}

/// What was decided about one request.
pub(crate) struct Answer {
    /// The object carries a stagegate annotation.
    pub opted_in: bool,
    pub deployment: Option<Deployment>,
    pub findings: Vec<Finding>,
}

impl Answer {
    fn allowed(&self) -> bool {
        !self.findings.iter().any(|f| f.severity == Severity::Deny)
    }

    fn not_concerned() -> Self {
        Answer {
            opted_in: false,
            deployment: None,
            findings: Vec::new(),
        }
    }

    fn refused(finding: Finding) -> Self {
        Answer {
            opted_in: true,
            deployment: None,
            findings: vec![finding],
        }
    }
}

/// The rules (docs/integrations/kubernetes.md).
async fn decide(app: &App, request: &Request<'_>, actor: &str) -> Answer {
    if !matches!(request.operation, "CREATE" | "UPDATE") {
        return Answer::not_concerned();
    }
    let Some(object) = request.object else {
        return Answer::not_concerned();
    };
    let annotation = |name: &str| {
        object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .map(str::trim)
    };
    let by_id = annotation(DEPLOYMENT_ANNOTATION);
    let by_system = annotation(SYSTEM_ANNOTATION);
    if by_id.is_none() && by_system.is_none() {
        return Answer::not_concerned();
    }
    let deployment = match resolve(app, request, by_id, by_system).await {
        Ok(d) => d,
        Err(finding) => return Answer::refused(finding),
    };
    if deployment.status != DeploymentStatus::Active {
        return Answer {
            opted_in: true,
            findings: vec![Finding::deny(
                "admission.deployment_not_active",
                format!(
                    "deployment {} of {} is {} (at stage {}): nothing of it may be rolled out",
                    deployment.id, deployment.release_id, deployment.status, deployment.stage
                ),
            )],
            deployment: Some(deployment),
        };
    }
    let digest = match app.records.release(&deployment.release_id).await {
        Ok(r) => r.release.artifact_digest.filter(|d| !d.trim().is_empty()),
        Err(e) => {
            return Answer {
                opted_in: true,
                findings: vec![records_unavailable(&e)],
                deployment: Some(deployment),
            };
        }
    };
    let mut findings = check_object(request, object, &deployment, digest.as_deref());
    if app.admission_requires_receipt {
        findings.extend(receipt_finding(app, &deployment, digest.as_deref()).await);
    }
    findings.extend(monitoring_warnings(app, &deployment, actor).await);
    Answer {
        opted_in: true,
        deployment: Some(deployment),
        findings,
    }
}

/// With `[integrations.kubernetes] require_receipt`: the release's
/// artifact (whose digest the object must contain, see [`check_object`])
/// must hold a decision receipt of this service that verifies. `None`
/// when it does.
async fn receipt_finding(
    app: &App,
    deployment: &Deployment,
    digest: Option<&str>,
) -> Option<Finding> {
    let Some(digest) = digest else {
        return Some(Finding::deny(
            "admission.receipt_missing",
            format!(
                "a decision receipt is required, but release {} records no artifact_digest to look one up by",
                deployment.release_id
            ),
        ));
    };
    if crate::attest::sha256_hex(digest).is_none() {
        return Some(Finding::deny(
            "admission.receipt_missing",
            format!(
                "a decision receipt is required, but the release's artifact_digest {digest} is not sha256:<64 hex digits>, which receipts name"
            ),
        ));
    }
    match app.records.verify_receipt_for_digest(digest).await {
        Ok(Some(_)) => None,
        Ok(None) => Some(Finding::deny(
            "admission.receipt_missing",
            format!(
                "no decision receipt of this service verifies for {digest}: the artifact has not passed the gate here"
            ),
        )),
        Err(e) => Some(records_unavailable(&e)),
    }
}

/// The deployment an annotated object belongs to: the one named by
/// `stagegate.dev/deployment`; else the newest deployment holding the ref
/// `kubernetes: NAMESPACE/NAME` of the object; else the newest active
/// deployment of the system named by `stagegate.dev/system`.
async fn resolve(
    app: &App,
    request: &Request<'_>,
    by_id: Option<&str>,
    by_system: Option<&str>,
) -> Result<Deployment, Finding> {
    let agrees = |d: Deployment, how: &str| match by_system {
        Some(system) if system != d.system_id => Err(Finding::deny(
            "admission.annotations_disagree",
            format!(
                "{how} is deployment '{}' of system '{}', but {SYSTEM_ANNOTATION} says '{system}'",
                d.id, d.system_id
            ),
        )),
        _ => Ok(d),
    };
    if let Some(id) = by_id {
        let d = app
            .records
            .find_deployment(&DeploymentSelector::Id(id.to_string()))
            .await
            .map_err(|e| match e {
                RecordError::NotFound(_) => Finding::deny(
                    "admission.unknown_deployment",
                    format!("annotation {DEPLOYMENT_ANNOTATION}: no deployment '{id}' in stagegate's records"),
                ),
                e => records_unavailable(&e),
            })?;
        return agrees(d, &format!("annotation {DEPLOYMENT_ANNOTATION}: '{id}'"));
    }
    let reference = format!("{}/{}", request.namespace, request.name);
    // An object without a usable name (generateName on CREATE) has no ref.
    if let Ok(selector) = DeploymentSelector::kubernetes(&reference) {
        match app.records.find_deployment(&selector).await {
            Ok(d) => return agrees(d, &format!("ref kubernetes={reference}")),
            Err(RecordError::NotFound(_)) => {}
            Err(e) => return Err(records_unavailable(&e)),
        }
    }
    let system = by_system.unwrap_or_default();
    match app.records.newest_active_of_system(system).await {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(Finding::deny(
            "admission.no_active_deployment",
            format!(
                "annotation {SYSTEM_ANNOTATION}: system '{system}' has no active deployment, and no deployment holds the ref kubernetes={reference}; create one (POST /v1/deployments) once its gate allows"
            ),
        )),
        Err(e) => Err(records_unavailable(&e)),
    }
}

/// The monitoring policy's warnings about the deployment now (a read-only
/// evaluation, logged as such): returned as admission warnings, so whoever
/// changes the object sees them. They never refuse the object; an
/// evaluation that cannot run is itself a warning.
async fn monitoring_warnings(app: &App, deployment: &Deployment, actor: &str) -> Vec<Finding> {
    let pipeline = match app.pipeline(None) {
        Ok(p) => p,
        Err(e) => {
            return vec![Finding::warn(
                "admission.monitoring_unavailable",
                format!("the monitoring policy could not be asked: {e}"),
            )];
        }
    };
    let selector = DeploymentSelector::Id(deployment.id.clone());
    match app
        .records
        .evaluate_monitoring(&pipeline, actor, &selector)
        .await
    {
        Ok(evaluation) => evaluation
            .decision
            .findings
            .iter()
            .filter(|f| f.severity == FindingSeverity::Warning)
            .map(|f| Finding::warn(&f.code, format!("monitoring: {}", f.message)))
            .collect(),
        Err(e) => vec![Finding::warn(
            "admission.monitoring_unavailable",
            format!("the monitoring policy could not be asked: {e}"),
        )],
    }
}

fn records_unavailable(e: &RecordError) -> Finding {
    Finding::deny(
        "admission.records_unavailable",
        format!("stagegate could not read its records ({e}); retry shortly"),
    )
}

/// The object rules, on the deployment's route and the release's digest.
pub(crate) fn check_object(
    request: &Request<'_>,
    object: &Value,
    deployment: &Deployment,
    digest: Option<&str>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    if let Some(digest) = digest {
        let mut refs = Vec::new();
        artifact_references(spec, "spec", &mut refs);
        if !refs.iter().any(|(_, r)| r.contains(digest)) {
            let seen = if refs.is_empty() {
                "the object names no image or storageUri under spec".to_string()
            } else {
                let list: Vec<String> = refs
                    .iter()
                    .take(5)
                    .map(|(path, r)| format!("{path}={r}"))
                    .collect();
                format!("it names {}", list.join(", "))
            };
            findings.push(Finding::deny(
                "admission.digest_mismatch",
                format!(
                    "release {} is the artifact {digest}, but no image or storageUri under spec contains it; {seen}",
                    deployment.release_id
                ),
            ));
        }
    }
    let allowed = deployment.traffic_percent;
    let stage = &deployment.stage;
    match (request.group, request.kind) {
        ("serving.kserve.io", "InferenceService") => {
            let predictor = spec.get("predictor").unwrap_or(&Value::Null);
            match predictor.get("canaryTrafficPercent") {
                Some(p) => match p.as_f64() {
                    Some(p) if p > allowed => findings.push(Finding::deny(
                        "admission.canary_traffic_exceeds_stage",
                        format!("spec.predictor.canaryTrafficPercent is {p}, above the {allowed}% of stage {stage}"),
                    )),
                    Some(_) => {}
                    None => findings.push(Finding::deny(
                        "admission.canary_traffic_exceeds_stage",
                        "spec.predictor.canaryTrafficPercent must be a number",
                    )),
                },
                None => {
                    // Without it, KServe moves all traffic to a new
                    // revision; a new revision is made only when the
                    // predictor changes.
                    let old = request
                        .old_object
                        .and_then(|o| o.pointer("/spec/predictor"));
                    let rolls = request.operation == "UPDATE" && old != Some(predictor);
                    if rolls && allowed < 100.0 {
                        findings.push(Finding::deny(
                            "admission.canary_traffic_exceeds_stage",
                            format!("spec.predictor changed without canaryTrafficPercent, so KServe would send 100% of traffic to the new revision; stage {stage} allows {allowed}%: set canaryTrafficPercent"),
                        ));
                    }
                }
            }
        }
        ("argoproj.io", "Rollout") => findings.extend(rollout_findings(spec, allowed, stage)),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet") if allowed < 100.0 => {
            findings.push(Finding::warn(
                "admission.traffic_not_enforced",
                format!("a {} replaces every pod on rollout: stagegate authorises {allowed}% (stage {stage}) but cannot hold the traffic there; split traffic with a Rollout or a mesh", request.kind),
            ));
        }
        _ => {}
    }
    findings
}

/// The weight an analysis (a step's `analysis` or `prePromotionAnalysis`)
/// asks stagegate to authorise: one of its templates is named `stagegate`
/// or `stagegate-…` and its arg `weight` is a literal number (Argo passes
/// it to stagegate's analysis endpoint, which answers `successful` only
/// when the authorised stage allows that much). Without a `weight` the
/// analysis is a background check of monitoring, not of the stage.
pub(crate) fn stagegate_weight(analysis: Option<&Value>) -> Option<f64> {
    let analysis = analysis?;
    let consults = analysis
        .get("templates")
        .and_then(Value::as_array)?
        .iter()
        .any(|t| {
            t.get("templateName")
                .and_then(Value::as_str)
                .is_some_and(|n| n == "stagegate" || n.starts_with("stagegate-"))
        });
    if !consults {
        return None;
    }
    let value = analysis
        .get("args")
        .and_then(Value::as_array)?
        .iter()
        .find(|a| a.get("name").and_then(Value::as_str) == Some("weight"))?
        .get("value")?;
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A Rollout may raise the canary's weight above the authorised stage only
/// right after asking stagegate for that weight: every `setWeight: W` above
/// the stage's percent needs, since the previous `setWeight`, an analysis
/// step with a stagegate template whose `weight` arg is at least W. After
/// its last step a canary goes to 100 %, and a blue-green Rollout switches
/// all traffic on promotion; both count as a weight of 100 (for blue-green,
/// `prePromotionAnalysis` is the analysis).
pub(crate) fn rollout_findings(spec: &Value, allowed: f64, stage: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let strategy = spec.get("strategy").unwrap_or(&Value::Null);
    if let Some(canary) = strategy.get("canary") {
        let empty = Vec::new();
        let steps = canary
            .get("steps")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        // The highest weight stagegate was asked about since the last
        // setWeight, and the weight the canary is at.
        let mut asked: f64 = 0.0;
        let mut weight: f64 = 0.0;
        for (i, step) in steps.iter().enumerate() {
            if let Some(w) = stagegate_weight(step.get("analysis")) {
                asked = asked.max(w);
            }
            let Some(set) = step.get("setWeight") else {
                continue;
            };
            let w = set.as_f64().unwrap_or(f64::INFINITY);
            if w > allowed && asked < w {
                findings.push(Finding::deny(
                    "admission.rollout_weight_exceeds_stage",
                    format!("spec.strategy.canary.steps[{i}].setWeight is {set}, above the {allowed}% of stage {stage}, and no stagegate analysis step with weight {set} or more comes before it"),
                ));
            }
            weight = w;
            asked = 0.0;
        }
        if weight < 100.0 && allowed < 100.0 && asked < 100.0 {
            findings.push(Finding::deny(
                "admission.rollout_weight_exceeds_stage",
                format!("after its last step the Rollout sends 100% of traffic to the new version, above the {allowed}% of stage {stage}; end spec.strategy.canary.steps with a stagegate analysis step with weight 100, or a setWeight: 100 that has one"),
            ));
        }
    } else if strategy.get("blueGreen").is_some() && allowed < 100.0 {
        let analysis = strategy.pointer("/blueGreen/prePromotionAnalysis");
        if stagegate_weight(analysis).is_none_or(|w| w < 100.0) {
            findings.push(Finding::deny(
                "admission.rollout_weight_exceeds_stage",
                format!("a blue-green promotion sends 100% of traffic to the new version, above the {allowed}% of stage {stage}; add a stagegate template with weight 100 to spec.strategy.blueGreen.prePromotionAnalysis"),
            ));
        }
    }
    findings
}

/// Every `image` and `storageUri` string under `value`, with its path.
fn artifact_references<'a>(value: &'a Value, path: &str, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}.{k}");
                match (k.as_str(), v) {
                    ("image" | "storageUri", Value::String(s)) => out.push((here, s)),
                    _ => artifact_references(v, &here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                artifact_references(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The AdmissionReview answer. `deny_code` is the HTTP-like code a refusal
/// carries in `status.code` (403; 503 when the decision could not be
/// logged).
fn respond(
    uid: &str,
    answer: &Answer,
    decision_id: Option<&str>,
    deny_code: StatusCode,
) -> Response {
    let denials: Vec<&str> = answer
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Deny)
        .map(|f| f.message.as_str())
        .collect();
    let warnings: Vec<String> = answer
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warn)
        .map(|f| format!("stagegate: {}", f.message))
        .collect();
    let allowed = denials.is_empty();
    let message = match (&answer.deployment, allowed) {
        (_, false) => format!("stagegate: {}", denials.join("; ")),
        (Some(d), true) => format!(
            "stagegate: deployment {} of {} is active at stage {} ({}%)",
            d.id, d.release_id, d.stage, d.traffic_percent
        ),
        (None, true) => "stagegate: the object carries no stagegate annotation".into(),
    };
    let code = if allowed { StatusCode::OK } else { deny_code };
    let mut response = json!({
        "uid": uid,
        "allowed": allowed,
        "status": {"code": code.as_u16(), "message": message},
    });
    if !allowed {
        response["status"]["reason"] = json!(if code == StatusCode::FORBIDDEN {
            "Forbidden"
        } else {
            "ServiceUnavailable"
        });
    }
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    if let Some(id) = decision_id {
        response["auditAnnotations"] = json!({"decision-id": id});
    }
    let body = json!({
        "apiVersion": API_VERSION,
        "kind": "AdmissionReview",
        "response": response,
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(steps: Value) -> Value {
        json!({"strategy": {"canary": {"steps": steps}}})
    }

    fn codes(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.code.as_str()).collect()
    }

    fn asks(template: &str, weight: Value) -> Value {
        json!({"analysis": {"templates": [{"templateName": template}],
            "args": [{"name": "deployment", "value": "d"}, {"name": "weight", "value": weight}]}})
    }

    #[test]
    fn a_rollout_that_asks_stagegate_before_each_weight_above_the_stage_is_allowed() {
        let spec = steps(json!([
            {"setWeight": 5}, {"pause": {"duration": "1h"}},
            asks("stagegate", json!("25")), {"pause": {}}, {"setWeight": 25},
            asks("stagegate-step", json!(100)),
        ]));
        assert!(rollout_findings(&spec, 5.0, "pilot").is_empty());
        // The shape of examples/argo-rollouts: ask, then set, up to 100.
        let spec = steps(json!([
            asks("stagegate-step", json!("5")), {"setWeight": 5}, {"pause": {"duration": "72h"}},
            asks("stagegate-step", json!("25")), {"setWeight": 25},
            asks("stagegate-step", json!("100")), {"setWeight": 100},
        ]));
        assert!(rollout_findings(&spec, 5.0, "pilot").is_empty());
    }

    #[test]
    fn a_set_weight_above_the_stage_needs_a_stagegate_analysis_for_that_weight_since_the_last_weight()
     {
        let spec = steps(json!([
            asks("stagegate", json!("50")),
            {"setWeight": 25},
            {"setWeight": 50},
            asks("stagegate", json!("25")),
            {"setWeight": 75},
            asks("stagegate", json!("100")),
        ]));
        let f = rollout_findings(&spec, 25.0, "regional");
        assert_eq!(
            codes(&f),
            ["admission.rollout_weight_exceeds_stage"; 2],
            "{f:?}"
        );
        assert!(f[0].message.contains("steps[2].setWeight is 50"), "{f:?}");
        assert!(f[1].message.contains("steps[4].setWeight is 75"), "{f:?}");
    }

    #[test]
    fn other_templates_and_stagegate_analyses_without_a_weight_do_not_count() {
        let spec = steps(json!([
            {"setWeight": 5},
            {"analysis": {"templates": [{"templateName": "success-rate"}],
                "args": [{"name": "weight", "value": "25"}]}},
            {"setWeight": 25},
            {"analysis": {"templates": [{"templateName": "stagegate-background"}]}},
        ]));
        let f = rollout_findings(&spec, 5.0, "pilot");
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[1].message.contains("after its last step"), "{f:?}");
        // At full exposure nothing is above the stage.
        assert!(rollout_findings(&spec, 100.0, "general").is_empty());
    }

    #[test]
    fn a_blue_green_rollout_needs_a_stagegate_pre_promotion_analysis_for_100_below_full_exposure() {
        let bare = json!({"strategy": {"blueGreen": {"activeService": "a"}}});
        assert_eq!(rollout_findings(&bare, 25.0, "regional").len(), 1);
        let gated = json!({"strategy": {"blueGreen": {"activeService": "a",
            "prePromotionAnalysis": asks("stagegate", json!("100"))["analysis"]}}});
        assert!(rollout_findings(&gated, 25.0, "regional").is_empty());
        let low = json!({"strategy": {"blueGreen": {"activeService": "a",
            "prePromotionAnalysis": asks("stagegate", json!("25"))["analysis"]}}});
        assert_eq!(rollout_findings(&low, 25.0, "regional").len(), 1);
    }

    #[test]
    fn images_and_storage_uris_are_found_anywhere_under_spec_with_their_paths() {
        let spec = json!({"template": {"spec": {
            "initContainers": [{"image": "busybox"}],
            "containers": [{"image": "r/app@sha256:ab"}]}},
            "predictor": {"model": {"storageUri": "s3://m/sha256:cd"}}});
        let mut refs = Vec::new();
        artifact_references(&spec, "spec", &mut refs);
        let paths: Vec<&str> = refs.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"spec.template.spec.containers[0].image"));
        assert!(paths.contains(&"spec.template.spec.initContainers[0].image"));
        assert!(paths.contains(&"spec.predictor.model.storageUri"));
    }

    #[test]
    fn an_envelope_without_uid_or_of_another_version_is_a_400_naming_the_field() {
        let e = envelope(
            &json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
            "request": {"uid": "x"}}),
        )
        .err()
        .unwrap();
        assert_eq!((e.status.as_u16(), e.path.as_str()), (400, "apiVersion"));
        let e = envelope(
            &json!({"apiVersion": API_VERSION, "kind": "AdmissionReview",
            "request": {"operation": "CREATE"}}),
        )
        .err()
        .unwrap();
        assert_eq!((e.status.as_u16(), e.path.as_str()), (400, "request.uid"));
        let e = envelope(&json!({"apiVersion": API_VERSION, "kind": "Pod"}))
            .err()
            .unwrap();
        assert_eq!(e.path, "kind");
    }
}
