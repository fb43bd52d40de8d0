//! What the benchmarks share: the requests, and one way to run each variant
//! from request bytes to decision bytes.

#![allow(dead_code)]

use std::path::Path;

use serde_json::{Value, json};
use stagegate::bundle::Bundle;
use stagegate::bundle::source::PolicySource;
use stagegate::decision::{self, Controls, DecisionKind, Envelope, PolicyRef, Request};
use stagegate::policy::{ActivePolicy, Isolation, Limits, Runtime};

#[path = "../rego/mod.rs"]
pub mod rego;

/// The reference policy's rules linked natively, converted with the same
/// macro the host uses for wasmtime's types.
pub mod native {
    stagegate::wit_conversions!(v1_1: stagegate_sdk::bindings::stagegate::policy::types);
}

pub fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The reference bundle, built from policies/iso42001.
pub fn reference_bundle() -> Bundle {
    PolicySource::open(&root().join("policies/iso42001"))
        .and_then(|s| s.bundle())
        .expect("building the reference bundle")
}

fn base_gate() -> Value {
    serde_json::from_slice(&std::fs::read(root().join("examples/gate-high-risk.json")).unwrap())
        .unwrap()
}

fn stages(n: usize) -> Value {
    let pct = [1, 5, 10, 25, 50, 100];
    let names = ["canary", "pilot", "early", "regional", "half", "general"];
    let list: Vec<Value> = (0..n)
        .map(|i| {
            let (name, p) = if n == 2 {
                (["pilot", "general"][i], [5, 100][i])
            } else {
                (names[i], pct[i])
            };
            let criteria = if i + 1 == n {
                json!([])
            } else {
                json!([
                    {"metric": "error_rate", "op": "<=", "threshold": 0.02, "min_samples": 1000},
                    {"metric": "latency_p99_ms", "op": "<", "threshold": 800}
                ])
            };
            json!({"name": name, "traffic_percent": p, "min_duration_hours": 24, "criteria": criteria})
        })
        .collect();
    Value::Array(list)
}

fn plan(n: usize) -> Value {
    json!({
        "stages": stages(n),
        "rollback": {"procedure": "route 100% to 2.2.1", "tested": true,
                     "triggers": [{"metric": "error_rate", "op": ">", "threshold": 0.05}]},
        "suspension_triggers": [{"metric": "harmful_output_rate", "op": ">", "threshold": 0.001}]
    })
}

/// Small: 3 results, 2 stages (a low-risk pair). Large: 50 results, 6
/// stages, 20 deficiencies.
pub fn gate(large: bool) -> Vec<u8> {
    let mut r = base_gate();
    r["monitoring"]["metrics"] = json!(["error_rate", "harmful_output_rate", "latency_p99_ms"]);
    if large {
        r["verification"]["results"] = Value::Array(
            (0..50)
                .map(|i| json!({"name": format!("check-{i}"), "passed": true, "metric": 0.9, "threshold": 0.8, "evidence": format!("sha256:{i:064x}")}))
                .collect(),
        );
        r["plan"] = plan(6);
        r["deficiencies"] = Value::Array(
            (0..20)
                .map(|i| {
                    json!({"id": format!("D-{i}"), "severity": "medium", "status": "open",
                           "acceptance": {"accepted_by": "j.doe", "accepted_at": "2026-11-21T10:00:00Z",
                                          "rationale": "within tolerance, monitored", "expires_at": "2027-05-21T00:00:00Z"}})
                })
                .collect(),
        );
    } else {
        r["system"]["risk_tier"] = json!("medium");
        r["plan"] = plan(2);
        r["deficiencies"] = json!([]);
    }
    serde_json::to_vec(&r).unwrap()
}

fn observations(n: usize) -> Value {
    let metrics = ["error_rate", "latency_p99_ms", "harmful_output_rate"];
    Value::Array(
        (0..n)
            .map(|i| {
                let m = metrics[i % 3];
                let v = match m {
                    "error_rate" => 0.01,
                    "latency_p99_ms" => 420.0,
                    _ => 0.0,
                };
                json!({"metric": m, "value": v, "samples": 48211, "window_end": format!("2026-11-26T11:{:02}:00Z", 59 - (i % 50))})
            })
            .collect(),
    )
}

pub fn progression(large: bool) -> Vec<u8> {
    let n = if large { 6 } else { 2 };
    let target = if large { "early" } else { "general" };
    let r = json!({
        "now": "2026-11-26T12:00:00Z",
        "system": {"id": "credit-scoring", "risk_tier": "high"},
        "plan": plan(n),
        "current_stage": "pilot", "target_stage": target,
        "stage_entered_at": "2026-11-23T12:00:00Z",
        "observations": observations(if large { 50 } else { 3 }),
        "material_issues": [{"id": "INC-9", "severity": "low", "status": "open"}],
        "review": {"reviewer": "a.lee", "completed_at": "2026-11-25T09:00:00Z", "outcome": "approved"},
        "authorisation": {"authorised_by": "j.doe", "role": "Head of AI Risk", "authorised_at": "2026-11-25T10:00:00Z"}
    });
    serde_json::to_vec(&r).unwrap()
}

pub fn monitoring(large: bool) -> Vec<u8> {
    let r = json!({
        "now": "2026-11-26T12:00:00Z",
        "system": {"id": "credit-scoring", "risk_tier": "high"},
        "plan": plan(if large { 6 } else { 2 }),
        "current_stage": "pilot", "deployed_at": "2026-11-25T12:00:00Z",
        "observations": observations(if large { 50 } else { 3 })
    });
    serde_json::to_vec(&r).unwrap()
}

pub fn request(kind: DecisionKind, large: bool) -> Vec<u8> {
    match kind {
        DecisionKind::Gate => gate(large),
        DecisionKind::Progression => progression(large),
        DecisionKind::Monitoring => monitoring(large),
    }
}

/// stagegate with the given isolation: bytes → envelope → bytes.
pub struct Sandboxed {
    pub policy: ActivePolicy,
}

impl Sandboxed {
    pub fn new(runtime: &Runtime, bundle: &Bundle, isolation: Isolation) -> Self {
        Sandboxed {
            policy: ActivePolicy::load(runtime, bundle, isolation).expect("load"),
        }
    }

    pub fn decide(&self, kind: DecisionKind, body: &[u8]) -> Vec<u8> {
        let d = self.policy.decide_json(kind, body).expect("valid request");
        assert!(d.error.is_none(), "{:?}", d.error);
        serde_json::to_vec(&d.envelope).unwrap()
    }
}

pub fn runtime() -> Runtime {
    Runtime::new(Limits::default()).expect("runtime")
}

/// The same rules natively: same decoder, same conversion macro, same
/// envelope; only the sandbox is missing.
pub struct Native {
    params: iso42001::params::Params,
    controls: Controls,
    policy_ref: PolicyRef,
}

impl Native {
    pub fn new(bundle: &Bundle) -> Self {
        Native {
            params: iso42001::params::Params::parse(&bundle.params().unwrap()).unwrap(),
            controls: bundle.controls().unwrap(),
            policy_ref: bundle.policy_ref(),
        }
    }

    pub fn decide(&self, kind: DecisionKind, body: &[u8]) -> Vec<u8> {
        let request = decision::decode(kind, body).expect("valid request");
        let now = request.now();
        let mut verdict = match request {
            Request::Gate(r) => native::gate_verdict(iso42001::gate::decide(
                &native::gate_request(r),
                &self.params,
            )),
            Request::Progression(r) => native::progression_verdict(iso42001::progression::decide(
                &native::progression_request(r),
                &self.params,
            )),
            Request::Monitoring(r) => native::monitoring_verdict(iso42001::monitoring::decide(
                &native::monitoring_request(r),
                &self.params,
            )),
        };
        self.controls.annotate(&mut verdict.findings);
        serde_json::to_vec(&Envelope::new(kind, verdict, self.policy_ref.clone(), now)).unwrap()
    }
}

/// The same gate rules in Rego on regorus.
pub struct Rego {
    gate: rego::RegoGate,
}

impl Rego {
    pub fn new(bundle: &Bundle) -> Self {
        Rego {
            gate: rego::RegoGate::new(&bundle.params().unwrap()),
        }
    }

    pub fn decide(&mut self, body: &[u8]) -> Vec<u8> {
        self.gate
            .decide(std::str::from_utf8(body).unwrap())
            .into_bytes()
    }
}

const EVALUATION: &str = "https://stagegate.dev/attestation/evaluation/v1";

/// The key that signs the benches' release evidence.
fn evidence_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
}

/// The `[[evidence.keys]]` entry that trusts [`attested_release`]'s
/// signer, its public key written into `dir`.
pub fn evidence_trust(dir: &Path) -> stagegate::attest::trust::KeyConfig {
    let public = stagegate::attest::ReceiptSigner::new(evidence_key(), "bench").public();
    let pem = dir.join("evidence.pem");
    std::fs::write(&pem, &public.public_key_pem).expect("writing the evidence key");
    stagegate::attest::trust::KeyConfig {
        file: pem,
        keyid: None,
        predicates: vec![EVALUATION.to_string()],
    }
}

/// The example release's evidence for the records, as a release pipeline
/// sends it to a high-risk system: every verification result as a signed
/// evaluation statement about the artifact (typed `attestation` fields are
/// stagegate's to set). Returns the evidence and the attestations.
pub fn attested_release(
    example: &Value,
    version: &str,
) -> (Value, Vec<Box<serde_json::value::RawValue>>) {
    let key = evidence_key();
    let keyid = stagegate::attest::ReceiptSigner::new(key.clone(), "bench")
        .public()
        .keyid;
    let digest = example["release"]["artifact_digest"]
        .as_str()
        .expect("digest");
    let hex = digest.trim_start_matches("sha256:");
    let mut rel = json!({"version": version, "artifact_digest": digest});
    for k in [
        "risk",
        "verification",
        "safeguards",
        "communication",
        "monitoring",
        "supply_chain",
    ] {
        rel[k] = example[k].clone();
    }
    rel["deficiencies"] = json!([]);
    let results = rel["verification"]["results"].take();
    rel["verification"]["results"] = json!([]);
    let attestations = results
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let (value, threshold) = (
                r["metric"].as_f64().unwrap(),
                r["threshold"].as_f64().unwrap(),
            );
            let predicate = json!({"metric": r["name"], "value": value, "threshold": threshold,
                "comparison": if value >= threshold { ">=" } else { "<=" },
                "dataset": "holdout", "samples": 10000});
            let env =
                stagegate::attest::Statement::about_sha256("model", hex, EVALUATION, predicate)
                    .sign_ed25519(&keyid, &key);
            serde_json::value::to_raw_value(&env).expect("an envelope is JSON")
        })
        .collect();
    (rel, attestations)
}
