//! The `admission.k8s.io/v1` `AdmissionReview`: reading the request the
//! API server sends and writing the answer it expects.
//!
//! The API server expects an answer with the same `request.uid`. Any other
//! answer (a non-200 status, another `uid`, another `apiVersion`) makes
//! the call fail, and with `failurePolicy: Fail` the object is refused with
//! a message the user cannot act on. So once a review carries a `uid`,
//! every outcome — including "stagegate cannot read its records" — is a
//! review answer with `allowed: false` and a message; only a body that is
//! not a v1 AdmissionReview with a `uid` is refused outright
//! ([`ReviewError`], a 400 at the HTTP layer).

use serde_json::{Value, json};

use super::{Answer, Severity};

/// The only review version served (the webhook's `admissionReviewVersions`).
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// A body that is not a v1 AdmissionReview with a `uid`: where and what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ReviewError {
    pub path: String,
    pub message: String,
}

/// The fields of an `AdmissionRequest` the rules read.
#[derive(Debug, Clone)]
pub struct Request<'a> {
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

impl Request<'_> {
    /// The object's `kubernetes` ref.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Checks the envelope: `apiVersion`, `kind`, `request.uid`. What is wrong
/// here cannot be answered with a review (no `uid` to echo).
pub fn envelope(review: &Value) -> Result<Request<'_>, ReviewError> {
    let bad = |path: &str, message: String| ReviewError {
        path: path.into(),
        message,
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

/// The AdmissionReview answer. `deny_code` is the HTTP-like code a refusal
/// carries in `status.code` (403; 503 when the decision could not be
/// logged).
pub fn answer(uid: &str, answer: &Answer, decision_id: Option<&str>, deny_code: u16) -> Value {
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
        (None, true) => {
            "stagegate: the object is not governed (no deployment holds its ref and it carries no stagegate annotation)".into()
        }
    };
    let code = if allowed { 200 } else { deny_code };
    let mut response = json!({
        "uid": uid,
        "allowed": allowed,
        "status": {"code": code, "message": message},
    });
    if !allowed {
        response["status"]["reason"] = json!(if code == 403 {
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
    json!({
        "apiVersion": API_VERSION,
        "kind": "AdmissionReview",
        "response": response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_without_uid_or_of_another_version_is_refused_naming_the_field() {
        let e = envelope(
            &json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
            "request": {"uid": "x"}}),
        )
        .unwrap_err();
        assert_eq!(e.path, "apiVersion");
        let e = envelope(
            &json!({"apiVersion": API_VERSION, "kind": "AdmissionReview",
            "request": {"operation": "CREATE"}}),
        )
        .unwrap_err();
        assert_eq!(e.path, "request.uid");
        let e = envelope(&json!({"apiVersion": API_VERSION, "kind": "Pod"})).unwrap_err();
        assert_eq!(e.path, "kind");
    }
}
