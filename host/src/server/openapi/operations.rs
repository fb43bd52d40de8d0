//! The operations of the document: one entry per route and method, with
//! who may call it, its parameters, its body and every answer. The
//! builder in `mod.rs` turns them into OpenAPI operations; the tests there
//! hold this table to the router's routes.

use serde_json::{Value, json};

use super::payloads::*;

/// The methods the router uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// Where the document is served.
pub const PATH: &str = "/v1/openapi.json";

/// Who may call an operation.
#[derive(Debug, Clone, Copy)]
pub(super) enum Access {
    /// A bearer token with one of these roles (any role when empty).
    Token(&'static [&'static str]),
    /// No token needed: public, or authenticated otherwise (HMAC, a
    /// token in the payload); such callers are served from the
    /// unauthenticated pool (429 per peer, 408 deadline).
    Public,
    /// Health and readiness: answered from a reserved pool.
    Probe,
    /// A console page: the session cookie (any caller in open mode).
    Console,
}

/// How the request body is read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Body {
    None,
    /// JSON of this schema; `required = false` when an empty body is
    /// accepted.
    Json(&'static str, bool),
    /// JSON described inline.
    JsonInline(fn() -> Value),
    /// A bundle archive (gzipped tar).
    Bundle,
    /// A console form.
    Form(fn() -> Value),
}

/// One answer of an operation.
#[derive(Debug, Clone, Copy)]
pub(super) enum Answer {
    /// JSON of a named schema.
    Json(u16, &'static str, &'static str),
    /// JSON described inline.
    JsonInline(u16, &'static str, fn() -> Value),
    /// Text of this media type.
    Text(u16, &'static str, &'static str),
    /// An HTML page.
    Html(u16, &'static str),
    /// JSON, or HTML when `Accept` asks for it.
    JsonOrHtml(u16, &'static str, fn() -> Value),
    /// No body (a redirect, or the exposure check's answer in headers).
    Empty(u16, &'static str),
    /// The error envelope.
    Error(u16, &'static str),
}

pub(super) struct Op {
    pub(super) method: Method,
    pub(super) path: &'static str,
    pub(super) id: &'static str,
    pub(super) tag: &'static str,
    pub(super) summary: &'static str,
    pub(super) access: Access,
    pub(super) params: Vec<Param>,
    pub(super) body: Body,
    pub(super) answers: Vec<Answer>,
}

/// Where a parameter travels.
#[derive(Debug, Clone, Copy)]
pub(super) enum Loc {
    Path,
    Query,
    Header,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Param {
    pub(super) name: &'static str,
    pub(super) at: Loc,
    pub(super) required: bool,
    pub(super) schema: fn() -> Value,
    pub(super) description: &'static str,
}

const fn path(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        at: Loc::Path,
        required: true,
        schema: string,
        description,
    }
}

const fn query(
    name: &'static str,
    required: bool,
    schema: fn() -> Value,
    description: &'static str,
) -> Param {
    Param {
        name,
        at: Loc::Query,
        required,
        schema,
        description,
    }
}

const fn head(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        at: Loc::Header,
        required: false,
        schema: string,
        description,
    }
}

fn string() -> Value {
    json!({"type": "string"})
}
fn boolean() -> Value {
    json!({"type": "boolean"})
}
fn count() -> Value {
    json!({"type": "integer", "minimum": 0})
}
fn any_object() -> Value {
    json!({"type": "object"})
}

const IDEMPOTENCY: Param = head(
    "Idempotency-Key",
    "A retry with the same key returns the first answer (docs/records.md)",
);
const IF_MATCH: Param = head("If-Match", "The deployment's version: 409 when it moved on");

/// Every operation of the router. Console and integration routes
/// included; `any` routes are listed with the methods gateways use.
pub(super) fn operations() -> Vec<Op> {
    use Access::*;
    use Answer::*;
    use Method::{Delete, Get, Patch, Post, Put};
    const READERS: &[&str] = &["auditor", "operator", "approver", "gateway", "publisher"];
    let mut ops = vec![
        Op {
            method: Post,
            path: "/v1/decisions/{kind_or_id}",
            id: "decide",
            tag: "decisions",
            summary: "Ask for a gate, progression or monitoring decision (kind_or_id = gate|progression|monitoring)",
            access: Token(&["gateway"]),
            params: vec![
                path("kind_or_id", "gate, progression or monitoring"),
                query(
                    "bundle",
                    false,
                    string,
                    "The bundle or policy set to decide with; the default when absent",
                ),
            ],
            body: Body::JsonInline(decision_request),
            answers: vec![
                Json(200, "The decision", "Envelope"),
                Error(
                    400,
                    "The body is not JSON, or a required field is missing (`path` names it)",
                ),
                Error(404, "No such decision kind, or no such bundle"),
                Error(413, "The body is over `limits.body_bytes`"),
                Error(415, "The body is not `application/json`"),
                Error(422, "A well-formed request with a value outside its domain"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/decisions/{kind_or_id}",
            id: "getDecision",
            tag: "decisions",
            summary: "A logged decision by id, as its log entry",
            access: Token(&["auditor", "gateway", "operator", "approver"]),
            params: vec![path("kind_or_id", "The decision id")],
            body: Body::None,
            answers: vec![
                JsonInline(200, "The decision's log entry", log_entry),
                Error(404, "No such decision"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/decisions/{id}/proof",
            id: "getDecisionProof",
            tag: "log",
            summary: "A decision's log entry, inclusion proof and a checkpoint that covers it",
            access: Token(READERS),
            params: vec![path("id", "The decision id")],
            body: Body::None,
            answers: vec![
                Json(200, "The proof", "DecisionProof"),
                Error(404, "No such decision, or checkpoints are not signed"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/decisions/{id}/receipt",
            id: "getReceipt",
            tag: "log",
            summary: "A decision's signed receipt (a DSSE envelope); with include=proof, its log proof too",
            access: Token(&["auditor", "gateway", "operator", "approver"]),
            params: vec![
                path("id", "The decision id"),
                query(
                    "include",
                    false,
                    include_proof,
                    "`proof` adds the decision's log proof",
                ),
            ],
            body: Body::None,
            answers: vec![
                JsonInline(200, "The receipt", receipt),
                Error(404, "No such decision, or it has no receipt"),
                Error(500, "The stored receipt could not be read"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/receipts/keys",
            id: "listReceiptKeys",
            tag: "log",
            summary: "The public keys receipts are signed with",
            access: Token(READERS),
            params: vec![],
            body: Body::None,
            answers: vec![JsonInline(200, "The keys", receipt_keys)],
        },
        Op {
            method: Get,
            path: "/v1/bundles",
            id: "listBundles",
            tag: "bundles",
            summary: "The active bundles and the default",
            access: Token(&[]),
            params: vec![],
            body: Body::None,
            answers: vec![JsonInline(200, "The active bundles", bundle_list)],
        },
        Op {
            method: Get,
            path: "/v1/bundles/{name}",
            id: "getBundle",
            tag: "bundles",
            summary: "A bundle slot: its active version, history and last rejection",
            access: Token(&[]),
            params: vec![path("name", "The bundle's name")],
            body: Body::None,
            answers: vec![
                JsonInline(200, "The slot", bundle_status),
                Error(404, "No such bundle"),
            ],
        },
        Op {
            method: Put,
            path: "/v1/bundles/{name}",
            id: "uploadBundle",
            tag: "bundles",
            summary: "Upload a signed bundle; it is verified, compiled and activated",
            access: Token(&["publisher", "bundle_admin"]),
            params: vec![
                path("name", "The bundle's name"),
                query(
                    "force",
                    false,
                    boolean,
                    "Override the version floor (bundle_admin only)",
                ),
                query(
                    "reason",
                    false,
                    string,
                    "Why (recorded; at most 1024 bytes)",
                ),
                head("X-Reason", "Why, when not in the query"),
            ],
            body: Body::Bundle,
            answers: vec![
                JsonInline(200, "Activated", activated),
                Error(400, "A bad bundle name, query or reason"),
                Error(409, "A downgrade, or other content under the same version"),
                Error(413, "The archive is over `limits.upload_bytes`"),
                Error(415, "A form body"),
                Error(422, "The bundle is invalid, unsigned or untrusted"),
                Error(500, "The activation could not be persisted"),
            ],
        },
        Op {
            method: Post,
            path: "/v1/systems",
            id: "createSystem",
            tag: "records",
            summary: "Register an AI system",
            access: Token(&["operator", "approver"]),
            params: vec![],
            body: Body::Json("NewSystem", true),
            answers: vec![Json(201, "Registered", "SystemView")],
        },
        Op {
            method: Get,
            path: "/v1/systems/{id}",
            id: "getSystem",
            tag: "records",
            summary: "A registered system (webhook secrets redacted)",
            access: Token(READERS),
            params: vec![path("id", "The system id")],
            body: Body::None,
            answers: vec![
                Json(200, "The system", "System"),
                Error(404, "No such system"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/systems/{id}/notice",
            id: "getNotice",
            tag: "records",
            summary: "The public notice to users: JSON, or HTML when Accept asks for it",
            access: Public,
            params: vec![path("id", "The system id")],
            body: Body::None,
            answers: vec![
                JsonOrHtml(200, "The notice", any_object),
                Error(404, "No such system"),
                Error(500, "The notice could not be made"),
            ],
        },
        Op {
            method: Post,
            path: "/v1/systems/{id}/releases",
            id: "createRelease",
            tag: "records",
            summary: "Register a release of a system with its evidence",
            access: Token(&["operator", "approver"]),
            params: vec![path("id", "The system id")],
            body: Body::JsonInline(new_release),
            answers: vec![Json(201, "Registered", "Release")],
        },
        Op {
            method: Get,
            path: "/v1/releases/{id}",
            id: "getRelease",
            tag: "records",
            summary: "A release",
            access: Token(READERS),
            params: vec![path("id", "The release id")],
            body: Body::None,
            answers: vec![
                Json(200, "The release", "Release"),
                Error(404, "No such release"),
            ],
        },
        Op {
            method: Post,
            path: "/v1/releases/{id}/reviews",
            id: "reviewRelease",
            tag: "records",
            summary: "Record a review of a release",
            access: Token(&["approver"]),
            params: vec![path("id", "The release id")],
            body: Body::Json("NewReview", true),
            answers: vec![Json(201, "Recorded", "ReviewRecorded")],
        },
        Op {
            method: Post,
            path: "/v1/releases/{id}/authorisations",
            id: "authoriseRelease",
            tag: "records",
            summary: "Authorise a release (an empty body authorises without conditions)",
            access: Token(&["approver"]),
            params: vec![path("id", "The release id")],
            body: Body::Json("NewAuthorisation", false),
            answers: vec![Json(201, "Recorded", "AuthorisationRecorded")],
        },
        Op {
            method: Post,
            path: "/v1/releases/{id}/acceptances",
            id: "acceptRisk",
            tag: "records",
            summary: "Accept the risk of one of a release's deficiencies",
            access: Token(&["approver"]),
            params: vec![path("id", "The release id")],
            body: Body::Json("NewAcceptance", true),
            answers: vec![Json(201, "Recorded", "AcceptanceRecorded")],
        },
        Op {
            method: Post,
            path: "/v1/deployments",
            id: "createDeployment",
            tag: "records",
            summary: "Deploy a release: the gate decides; a denial is 422 with the decision",
            access: Token(&["operator"]),
            params: vec![IDEMPOTENCY],
            body: Body::Json("NewDeployment", true),
            answers: vec![Json(201, "Deployed at its first stage", "Transition")],
        },
        Op {
            method: Get,
            path: "/v1/deployments",
            id: "findDeployment",
            tag: "records",
            summary: "The deployment named by id or by an external ref",
            access: Token(READERS),
            params: vec![
                query("deployment", false, string, "A deployment id"),
                query(
                    "ref",
                    false,
                    string,
                    "An external ref, `KIND:NAMESPACE/NAME` or `NAMESPACE/NAME`",
                ),
            ],
            body: Body::None,
            answers: vec![
                Json(200, "The deployment with its history", "DeploymentView"),
                Error(
                    400,
                    "Neither or both of deployment and ref, or a malformed ref",
                ),
                Error(404, "No such deployment"),
                Error(422, "A ref outside its domain"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/deployments/{id}",
            id: "getDeployment",
            tag: "records",
            summary: "A deployment with its history; ETag is its version",
            access: Token(READERS),
            params: vec![path("id", "The deployment id")],
            body: Body::None,
            answers: vec![
                Json(200, "The deployment", "DeploymentView"),
                Error(404, "No such deployment"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/deployments/{id}/route",
            id: "getRoute",
            tag: "records",
            summary: "What a serving gateway needs: status, stage, traffic",
            access: Token(&["gateway", "auditor", "operator"]),
            params: vec![path("id", "The deployment id")],
            body: Body::None,
            answers: vec![
                Json(200, "The route", "Route"),
                Error(404, "No such deployment"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/deployments/{id}/record",
            id: "getRecord",
            tag: "records",
            summary: "The auditor's export of a deployment: stagegate JSON, or OSCAL assessment results",
            access: Token(&["auditor"]),
            params: vec![
                path("id", "The deployment id"),
                query("format", false, record_format, "json (default) or oscal"),
            ],
            body: Body::None,
            answers: vec![
                JsonInline(200, "The record", any_object),
                Error(400, "An unknown format"),
                Error(404, "No such deployment"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/deployments/{id}/deliveries",
            id: "listDeliveries",
            tag: "records",
            summary: "The escalation webhook deliveries of a deployment",
            access: Token(READERS),
            params: vec![path("id", "The deployment id")],
            body: Body::None,
            answers: vec![
                JsonInline(200, "The deliveries", deliveries),
                Error(404, "No such deployment"),
            ],
        },
        Op {
            method: Post,
            path: "/v1/deployments/{id}/reviews",
            id: "reviewDeployment",
            tag: "records",
            summary: "Record a review of a deployment's release, for a target stage",
            access: Token(&["approver"]),
            params: vec![path("id", "The deployment id")],
            body: Body::Json("NewReview", true),
            answers: vec![Json(201, "Recorded", "ReviewRecorded")],
        },
        Op {
            method: Post,
            path: "/v1/deployments/{id}/progressions",
            id: "progress",
            tag: "records",
            summary: "Ask to move a deployment to a stage: the progression policy decides",
            access: Token(&["approver"]),
            params: vec![path("id", "The deployment id"), IF_MATCH, IDEMPOTENCY],
            body: Body::Json("NewProgression", true),
            answers: vec![Json(200, "The deployment after the decision", "Transition")],
        },
        Op {
            method: Post,
            path: "/v1/deployments/{id}/observations",
            id: "observe",
            tag: "records",
            summary: "Record observations; the monitoring policy judges them unless evaluate=false",
            access: Token(&["operator"]),
            params: vec![
                path("id", "The deployment id"),
                query("evaluate", false, boolean, "false: record only"),
                IDEMPOTENCY,
            ],
            body: Body::Json("NewObservations", true),
            answers: vec![Json(200, "The deployment after the decision", "Transition")],
        },
        Op {
            method: Post,
            path: "/v1/deployments/{id}/issues",
            id: "recordIssue",
            tag: "records",
            summary: "Record a material issue, or change an issue's status",
            access: Token(&["operator"]),
            params: vec![path("id", "The deployment id")],
            body: Body::Json("NewIssue", true),
            answers: vec![JsonInline(201, "Recorded", issue_recorded)],
        },
        Op {
            method: Post,
            path: "/v1/deployments/{id}/rollback",
            id: "rollback",
            tag: "records",
            summary: "Roll a deployment back (an operator's action, no policy)",
            access: Token(&["operator"]),
            params: vec![path("id", "The deployment id"), IF_MATCH, IDEMPOTENCY],
            body: Body::Json("NewIntervention", true),
            answers: vec![Json(200, "Rolled back", "Transition")],
        },
        Op {
            method: Post,
            path: "/v1/deployments/{id}/suspend",
            id: "suspend",
            tag: "records",
            summary: "Suspend a deployment (an operator's action, no policy)",
            access: Token(&["operator"]),
            params: vec![path("id", "The deployment id"), IF_MATCH, IDEMPOTENCY],
            body: Body::Json("NewIntervention", true),
            answers: vec![Json(200, "Suspended", "Transition")],
        },
        Op {
            method: Get,
            path: "/v1/deployments/{id}/evaluations/progression",
            id: "evaluateProgression",
            tag: "records",
            summary: "What the progression policy would say now, changing nothing",
            access: Token(&["gateway", "operator", "auditor"]),
            params: vec![
                path("id", "The deployment id"),
                query(
                    "target_stage",
                    true,
                    string,
                    "The stage the progression would move to",
                ),
            ],
            body: Body::None,
            answers: vec![
                Json(200, "The evaluation", "Evaluation"),
                Error(400, "target_stage is missing"),
                Error(404, "No such deployment"),
                Error(409, "The deployment cannot progress (not active)"),
                Error(422, "A target stage outside the plan"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/deployments/{id}/evaluations/monitoring",
            id: "evaluateMonitoring",
            tag: "records",
            summary: "What the monitoring policy would say now, changing nothing",
            access: Token(&["gateway", "operator", "auditor"]),
            params: vec![path("id", "The deployment id")],
            body: Body::None,
            answers: vec![
                Json(200, "The evaluation", "Evaluation"),
                Error(404, "No such deployment"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/log/checkpoint",
            id: "getCheckpoint",
            tag: "log",
            summary: "The newest signed checkpoint of the decision log (a signed note)",
            access: Token(&["auditor", "operator"]),
            params: vec![],
            body: Body::None,
            answers: vec![
                Text(200, "The checkpoint", "text/plain; charset=utf-8"),
                Error(404, "Checkpoints are not signed"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/log/key",
            id: "getCheckpointKey",
            tag: "log",
            summary: "The key checkpoints are signed with, as PEM and as a signed-note verifier key",
            access: Token(READERS),
            params: vec![],
            body: Body::None,
            answers: vec![
                JsonInline(200, "The key", checkpoint_key),
                Error(404, "Checkpoints are not signed"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/log/tile/{path}",
            id: "getTile",
            tag: "log",
            summary: "A tile of the log's Merkle tree (tlog-tiles); the path may hold slashes",
            access: Token(READERS),
            params: vec![path(
                "path",
                "`[LEVEL/]N[.p/W]`, N in groups of three digits",
            )],
            body: Body::None,
            answers: vec![
                Text(200, "The tile's hashes", "application/octet-stream"),
                Error(404, "No such tile"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/log/proof/inclusion",
            id: "getInclusionProof",
            tag: "log",
            summary: "The inclusion proof of entry `index` in the tree of `size` entries",
            access: Token(READERS),
            params: vec![
                query("index", true, count, "The entry's index"),
                query("size", true, count, "The tree size"),
            ],
            body: Body::None,
            answers: vec![
                JsonInline(200, "The proof", inclusion_proof),
                Error(
                    400,
                    "A missing or malformed parameter, or one outside the tree",
                ),
                Error(404, "No such entry"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/log/proof/consistency",
            id: "getConsistencyProof",
            tag: "log",
            summary: "The consistency proof between the trees of `from` and `to` entries",
            access: Token(READERS),
            params: vec![
                query("from", true, count, "The older tree size"),
                query("to", true, count, "The newer tree size"),
            ],
            body: Body::None,
            answers: vec![
                JsonInline(200, "The proof", consistency_proof),
                Error(
                    400,
                    "A missing or malformed parameter, or one outside the tree",
                ),
                Error(404, "No such entry"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/log/entries/{index}",
            id: "getLogEntry",
            tag: "log",
            summary: "A log entry by index, as its leaf bytes and decoded",
            access: Token(READERS),
            params: vec![path("index", "The entry's index")],
            body: Body::None,
            answers: vec![
                Json(200, "The entry", "EntryView"),
                Error(404, "No such entry"),
            ],
        },
        Op {
            method: Get,
            path: "/v1/integrations/argo-rollouts/analysis",
            id: "argoAnalysis",
            tag: "integrations",
            summary: "Argo Rollouts' web metric provider: always 200, the result in the body",
            access: Token(&["gateway", "operator"]),
            params: vec![
                query("deployment", false, string, "A deployment id"),
                query("ref", false, string, "An external ref of the deployment"),
                query(
                    "weight",
                    false,
                    string,
                    "The rollout's current weight, 0–100",
                ),
            ],
            body: Body::None,
            answers: vec![
                JsonInline(200, "The measurement", any_object),
                Error(
                    400,
                    "Neither or both of deployment and ref, or a bad weight",
                ),
                Error(404, "No such deployment"),
                Error(422, "A ref outside its domain"),
            ],
        },
        Op {
            method: Post,
            path: "/v1/integrations/flagger/{hook}",
            id: "flaggerHook",
            tag: "integrations",
            summary: "Flagger's webhooks; the token in Authorization or the payload's metadata.token",
            access: Public,
            params: vec![path(
                "hook",
                "The Flagger hook (confirm-rollout, pre-rollout, rollout, confirm-promotion, post-rollout, rollback, event)",
            )],
            body: Body::JsonInline(flagger_payload),
            answers: vec![
                JsonInline(200, "Proceed", flagger_answer),
                JsonInline(
                    403,
                    "Halt, or the caller's role may not call",
                    flagger_answer_or_error,
                ),
                JsonInline(409, "Nothing to roll back to", flagger_answer),
                Error(400, "The payload is not JSON, or of the wrong shape"),
                Error(401, "No valid token in Authorization or the payload"),
                Error(404, "No such hook, or no such deployment"),
                Error(413, "The payload is over 64 KiB"),
                Error(415, "The payload is not `application/json`"),
                Error(422, "A payload value outside its domain"),
            ],
        },
        Op {
            method: Post,
            path: "/v1/integrations/kubernetes/admission",
            id: "kubernetesAdmission",
            tag: "integrations",
            summary: "A Kubernetes ValidatingAdmissionWebhook: answers an AdmissionReview",
            access: Token(&["gateway"]),
            params: vec![],
            body: Body::JsonInline(admission_review),
            answers: vec![
                JsonInline(
                    200,
                    "The AdmissionReview with its response (allowed or not)",
                    admission_review,
                ),
                Error(400, "Not an AdmissionReview"),
                Error(413, "The body is over `limits.body_bytes`"),
                Error(415, "The body is not `application/json`"),
                Error(
                    429,
                    "Over the tokenless callers' rate (client certificate mode)",
                ),
            ],
        },
        Op {
            method: Post,
            path: "/v1/integrations/github/deployment-protection",
            id: "githubDeploymentProtection",
            tag: "integrations",
            summary: "GitHub's deployment protection rule webhook, signed by HMAC (X-Hub-Signature-256)",
            access: Public,
            params: vec![
                head(
                    "X-Hub-Signature-256",
                    "sha256= and the HMAC of the body under the webhook secret",
                ),
                head("X-GitHub-Event", "deployment_protection_rule, ping, …"),
                head(
                    "X-GitHub-Delivery",
                    "The delivery id: a repeat within 24 h is answered once",
                ),
            ],
            body: Body::JsonInline(github_payload),
            answers: vec![
                JsonInline(200, "A ping, or a delivery already answered", any_object),
                JsonInline(
                    202,
                    "Accepted: the review is reported to GitHub; or the event is ignored",
                    any_object,
                ),
                Error(
                    400,
                    "The payload is not a deployment protection rule, or names no full commit",
                ),
                Error(401, "The signature is missing or wrong"),
                Error(404, "The GitHub integration is not configured"),
                Error(413, "The body is over 64 KiB"),
            ],
        },
        Op {
            method: Get,
            path: "/healthz",
            id: "healthz",
            tag: "operations",
            summary: "Liveness",
            access: Probe,
            params: vec![],
            body: Body::None,
            answers: vec![JsonInline(200, "Alive", health)],
        },
        Op {
            method: Get,
            path: "/readyz",
            id: "readyz",
            tag: "operations",
            summary: "Readiness: a verified bundle is active and the log extends its last checkpoint",
            access: Probe,
            params: vec![],
            body: Body::None,
            answers: vec![JsonInline(200, "Ready", ready)],
        },
        Op {
            method: Get,
            path: "/metrics",
            id: "metrics",
            tag: "operations",
            summary: "Prometheus metrics",
            access: Public,
            params: vec![],
            body: Body::None,
            answers: vec![Text(
                200,
                "The metrics",
                "text/plain; version=0.0.4; charset=utf-8",
            )],
        },
        Op {
            method: Get,
            path: PATH,
            id: "openapi",
            tag: "operations",
            summary: "This document",
            access: Public,
            params: vec![],
            body: Body::None,
            answers: vec![JsonInline(200, "The OpenAPI 3.1 document", any_object)],
        },
    ];
    // The gateway exposure check: any method, any suffix (Envoy's
    // ext_authz appends the original path); the answer is in the status
    // and headers.
    let exposure_headers = [
        head("X-Stagegate-Deployment", "The deployment to check"),
        head(
            "X-Stagegate-Ref",
            "Instead of the deployment: its kubernetes ref (NAMESPACE/NAME)",
        ),
        head(
            "X-Stagegate-Subject",
            "The subject (user, session) to bucket",
        ),
        head(
            "X-Stagegate-Answer",
            "status (default) or route: by route every answer is 200 with X-Stagegate-Route new or stable, refusals included",
        ),
    ];
    for (path, with_rest) in [
        ("/v1/integrations/authz", false),
        ("/v1/integrations/authz/{rest}", true),
    ] {
        for (method, plain_id, rest_id) in [
            (Get, "authz", "authzPathGet"),
            (Post, "authzPost", "authzPathPost"),
            (Put, "authzPut", "authzPathPut"),
            (Patch, "authzPatch", "authzPathPatch"),
            (Delete, "authzDelete", "authzPathDelete"),
        ] {
            let mut params = Vec::new();
            if with_rest {
                params.push(self::path(
                    "rest",
                    "The original request's path, as Envoy appends it",
                ));
            }
            params.extend(exposure_headers);
            ops.push(Op {
                method,
                path,
                id: if with_rest { rest_id } else { plain_id },
                tag: "integrations",
                summary: "The gateway exposure check: 200 admits the subject to the deployment, 403 refuses",
                access: Token(&["gateway"]),
                params,
                body: Body::None,
                answers: vec![
                    Empty(200, "Admitted (X-Stagegate-Stage, X-Stagegate-Release, X-Stagegate-Decision); asked by route, any answer (X-Stagegate-Route: new or stable)"),
                    Empty(403, "Refused (X-Stagegate-Decision says why)"),
                    Error(400, "A missing or malformed X-Stagegate-* header"),
                ],
            });
        }
    }
    ops.extend(console_operations());
    ops
}

fn console_operations() -> Vec<Op> {
    use Access::Console;
    use Answer::*;
    use Method::{Get, Post};
    const PAGE: &[Answer] = &[
        Html(200, "The page"),
        Empty(303, "No live session: to the sign-in form"),
        Text(
            401,
            "Open mode: the caller could not be named",
            "text/plain; charset=utf-8",
        ),
        Html(404, "No such record"),
        Html(500, "The records could not be read"),
    ];
    let page =
        |path: &'static str, id: &'static str, summary: &'static str, params: Vec<Param>| Op {
            method: Get,
            path,
            id,
            tag: "console",
            summary,
            access: Console,
            params,
            body: Body::None,
            answers: PAGE.to_vec(),
        };
    vec![
        page("/ui", "consoleOverview", "The console's overview", vec![]),
        page(
            "/ui/",
            "consoleOverviewSlash",
            "The console's overview",
            vec![],
        ),
        page(
            "/ui/systems/{id}",
            "consoleSystem",
            "A system's page",
            vec![path("id", "The system id")],
        ),
        page(
            "/ui/deployments/{id}",
            "consoleDeployment",
            "A deployment's page",
            vec![path("id", "The deployment id")],
        ),
        Op {
            method: Get,
            path: "/ui/decisions",
            id: "consoleDecisions",
            tag: "console",
            summary: "The decision log, filtered",
            access: Console,
            params: vec![
                query("kind", false, string, "gate, progression or monitoring"),
                query("outcome", false, string, "An outcome"),
                query("system", false, string, "A system id"),
                query("limit", false, string, "Rows per page"),
                query("before", false, string, "Rows before this sequence number"),
            ],
            body: Body::None,
            answers: vec![
                Html(200, "The page"),
                Empty(303, "No live session: to the sign-in form"),
                Html(400, "A filter that is not valid"),
                Text(
                    401,
                    "Open mode: the caller could not be named",
                    "text/plain; charset=utf-8",
                ),
                Html(500, "The records could not be read"),
            ],
        },
        page(
            "/ui/decisions/{id}",
            "consoleDecision",
            "A decision's page",
            vec![path("id", "The decision id")],
        ),
        Op {
            method: Get,
            path: "/ui/sign-in",
            id: "consoleSignInForm",
            tag: "console",
            summary: "The sign-in form (sets the form's CSRF cookie)",
            access: Access::Public,
            params: vec![query(
                "expired",
                false,
                string,
                "Present: say the session expired",
            )],
            body: Body::None,
            answers: vec![
                Html(200, "The form"),
                Html(500, "The page could not be rendered"),
            ],
        },
        Op {
            method: Post,
            path: "/ui/sign-in",
            id: "consoleSignIn",
            tag: "console",
            summary: "Exchange an auditor, approver or operator token for a session cookie",
            access: Access::Public,
            params: vec![],
            body: Body::Form(sign_in_form),
            answers: vec![
                Empty(303, "Signed in (the session cookie is set), or open mode"),
                Html(400, "The form sent no token"),
                Html(401, "An unknown token"),
                Html(
                    403,
                    "Not from the console's own form (CSRF, Origin), or a token without a console role",
                ),
                Html(500, "The page could not be rendered"),
            ],
        },
        Op {
            method: Post,
            path: "/ui/sign-out",
            id: "consoleSignOut",
            tag: "console",
            summary: "End the session (needs the session's CSRF token)",
            access: Console,
            params: vec![],
            body: Body::Form(sign_out_form),
            answers: vec![
                Empty(303, "Signed out, or no live session"),
                Text(
                    401,
                    "Open mode: the caller could not be named",
                    "text/plain; charset=utf-8",
                ),
                Html(403, "The form did not carry this session's token"),
                Html(500, "The page could not be rendered"),
            ],
        },
        Op {
            method: Get,
            path: "/ui/console.css",
            id: "consoleStylesheet",
            tag: "console",
            summary: "The console's stylesheet",
            access: Access::Public,
            params: vec![],
            body: Body::None,
            answers: vec![Text(200, "The stylesheet", "text/css; charset=utf-8")],
        },
        Op {
            method: Get,
            path: "/ui/favicon.svg",
            id: "consoleFavicon",
            tag: "console",
            summary: "The console's icon",
            access: Access::Public,
            params: vec![],
            body: Body::None,
            answers: vec![Text(200, "The icon", "image/svg+xml")],
        },
        Op {
            method: Get,
            path: "/ui/{rest}",
            id: "consoleUnknownPage",
            tag: "console",
            summary: "Any other console path: not found",
            access: Console,
            params: vec![path("rest", "Any path under /ui")],
            body: Body::None,
            answers: vec![
                Html(404, "No such page"),
                Empty(303, "No live session: to the sign-in form"),
                Text(
                    401,
                    "Open mode: the caller could not be named",
                    "text/plain; charset=utf-8",
                ),
                Html(500, "The page could not be rendered"),
            ],
        },
    ]
}
