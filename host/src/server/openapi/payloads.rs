//! Inline schemas: the payloads of other tools (AdmissionReview, Flagger,
//! GitHub, DSSE), the small JSON answers built in handlers, and the
//! console's forms. Each names the fields the service reads or writes.

use serde_json::{Value, json};

pub(super) fn decision_request() -> Value {
    json!({"anyOf": [
        {"$ref": "#/components/schemas/GateRequest"},
        {"$ref": "#/components/schemas/ProgressionRequest"},
        {"$ref": "#/components/schemas/MonitoringRequest"},
    ], "description": "The request of the decision named in the path (docs/decisions.md#requests)"})
}

pub(super) fn new_release() -> Value {
    json!({"allOf": [
        {"$ref": "#/components/schemas/ReleaseEvidence"},
        {"type": "object", "properties": {
            "attestations": {"type": "array", "items": dsse_envelope(),
                "description": "DSSE envelopes over in-toto statements; verified results replace asserted ones"}
        }}
    ]})
}

pub(super) fn dsse_envelope() -> Value {
    json!({"type": "object", "required": ["payload", "payloadType", "signatures"], "properties": {
        "payload": {"type": "string", "description": "base64"},
        "payloadType": {"type": "string"},
        "signatures": {"type": "array", "items": {"type": "object", "properties": {
            "keyid": {"type": "string"}, "sig": {"type": "string"}
        }}}
    }})
}

pub(super) fn receipt() -> Value {
    json!({"oneOf": [
        dsse_envelope(),
        {"type": "object", "required": ["dsse_envelope", "log"], "properties": {
            "dsse_envelope": dsse_envelope(),
            "log": {"$ref": "#/components/schemas/DecisionProof"}
        }}
    ]})
}

pub(super) fn include_proof() -> Value {
    json!({"type": "string", "enum": ["proof"]})
}

pub(super) fn record_format() -> Value {
    json!({"type": "string", "enum": ["json", "oscal"]})
}

pub(super) fn receipt_keys() -> Value {
    json!({"type": "object", "required": ["keys"], "properties": {
        "keys": {"type": "array", "items": {"type": "object"}}
    }})
}

pub(super) fn log_entry() -> Value {
    json!({"type": "object", "required": ["seq", "prev_hash", "hash"], "properties": {
        "seq": {"type": "integer"},
        "prev_hash": {"type": "string"},
        "hash": {"type": "string"}
    }})
}

pub(super) fn bundle_list() -> Value {
    json!({"type": "object", "required": ["bundles", "default"], "properties": {
        "bundles": {"type": "array", "items": active_bundle()},
        "default": {"type": ["string", "null"]}
    }})
}

pub(super) fn active_bundle() -> Value {
    json!({"type": "object", "required": ["name", "version", "digest", "signers", "activated_at", "origin", "default"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "digest": {"type": "string"},
        "signers": {"type": "array", "items": {"type": "object"}},
        "activated_at": {"type": "string", "format": "date-time"},
        "origin": {"type": "object"},
        "isolation": {},
        "default": {"type": "boolean"},
        "forced": {"type": "boolean"},
        "compiled_from_cache": {"type": "boolean"},
        "load_millis": {"type": "integer", "minimum": 0}
    }})
}

pub(super) fn bundle_status() -> Value {
    json!({"type": "object", "required": ["name", "active", "last_rejection", "history"], "properties": {
        "name": {"type": "string"},
        "active": {"oneOf": [active_bundle(), {"type": "null"}]},
        "last_rejection": {"type": ["object", "null"]},
        "source": {"type": "object"},
        "history": {"type": "array", "items": {"type": "object"}}
    }})
}

pub(super) fn activated() -> Value {
    json!({"type": "object", "description": "The bundle now active, with its version and digest"})
}

pub(super) fn deliveries() -> Value {
    json!({"type": "object", "required": ["deployment_id", "deliveries"], "properties": {
        "deployment_id": {"type": "string"},
        "deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}}
    }})
}

pub(super) fn issue_recorded() -> Value {
    json!({"type": "object", "required": ["material_issue"], "properties": {
        "material_issue": {"$ref": "#/components/schemas/MaterialIssue"}
    }})
}

pub(super) fn checkpoint_key() -> Value {
    json!({"type": "object", "required": ["origin", "public_key_pem", "verifier_key"], "properties": {
        "origin": {"type": "string"},
        "public_key_pem": {"type": "string"},
        "verifier_key": {"type": "string"}
    }})
}

pub(super) fn inclusion_proof() -> Value {
    json!({"type": "object", "required": ["index", "size", "hashes"], "properties": {
        "index": {"type": "integer", "minimum": 0},
        "size": {"type": "integer", "minimum": 0},
        "hashes": {"type": "array", "items": {"type": "string"}}
    }})
}

pub(super) fn consistency_proof() -> Value {
    json!({"type": "object", "required": ["from", "to", "hashes"], "properties": {
        "from": {"type": "integer", "minimum": 0},
        "to": {"type": "integer", "minimum": 0},
        "hashes": {"type": "array", "items": {"type": "string"}}
    }})
}

pub(super) fn flagger_payload() -> Value {
    json!({"type": "object", "required": ["name", "namespace"], "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "phase": {"type": "string"},
        "checksum": {"type": "string"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}}
    }})
}

pub(super) fn flagger_answer() -> Value {
    json!({"type": "object", "description": "What Flagger records: the verdict and why"})
}

pub(super) fn flagger_answer_or_error() -> Value {
    json!({"anyOf": [flagger_answer(), {"$ref": "#/components/schemas/Error"}]})
}

pub(super) fn admission_review() -> Value {
    json!({"type": "object", "required": ["apiVersion", "kind"], "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "request": {"type": "object"},
        "response": {"type": "object"}
    }})
}

pub(super) fn github_payload() -> Value {
    json!({"type": "object", "properties": {
        "action": {"type": "string"},
        "environment": {"type": "string"},
        "sha": {"type": "string"},
        "deployment_callback_url": {"type": "string"},
        "repository": {"type": "object"},
        "deployment": {"type": "object"}
    }})
}

pub(super) fn health() -> Value {
    json!({"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}})
}

pub(super) fn ready() -> Value {
    json!({"type": "object", "required": ["status", "bundles"], "properties": {
        "status": {"const": "ready"},
        "bundles": {"type": "array", "items": {"type": "string"}}
    }})
}

pub(super) fn sign_in_form() -> Value {
    json!({"type": "object", "required": ["token"], "properties": {
        "token": {"type": "string"},
        "csrf": {"type": "string", "description": "The form's token, as the sign-in page set it"}
    }})
}

pub(super) fn sign_out_form() -> Value {
    json!({"type": "object", "required": ["csrf"], "properties": {"csrf": {"type": "string"}}})
}
