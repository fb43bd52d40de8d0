//! The Kubernetes admission webhook over real TLS: a CA made here, a
//! client that trusts only that CA, the AdmissionReviews the API server
//! sends, answered at each point of the records' story (pilot at 5 %,
//! promotion to regional, a breach and its automatic rollback); plain HTTP
//! sent to the TLS port; a certificate rotated under a running server.
//!
//! The AdmissionReview requests follow `admission.k8s.io/v1` as defined in
//! kubernetes/api `admission/v1/types.go` (AdmissionReview, AdmissionRequest:
//! uid, kind, resource, name, namespace, operation, userInfo, object,
//! oldObject, dryRun, options); the objects follow the manifests in
//! examples/kubernetes/.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::records::{
    Backend, World, deploy, get, observe, post, registered_release_with, token,
};
use support::server::{Reply, Server, reply_of};

const DIGEST: &str = "sha256:5f2b0c7e9a1d4e8b3c6f0a2d9e7b1c4a8f3e6d0b2a5c9e1f4d7b0a3c6e9f2d5b";
const OTHER: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
const ADMISSION: &str = "/v1/integrations/kubernetes/admission";
/// The init container's image, on the allow-list of the system.
const BUSYBOX: &str = "sha256:1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b";
const ALLOW_BUSYBOX: &str = "[[integrations.kubernetes.allowed_images]]\nsystem = \"credit-scoring\"\ndigests = [\"sha256:1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b\"]\n";

/// A deployment of `release` holding the ref `credit/credit-scoring`, the
/// objects' own: admission governs an object by its ref.
fn deploy_with_ref(s: &Server, release: &str) -> String {
    let r = post(
        s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": release, "plan": support::records::plan(),
            "refs": {"kubernetes": "credit/credit-scoring"}}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["deployment"]["id"].as_str().unwrap().to_string()
}

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A server certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
    fn server_pair(&self) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "stagegate.stagegate.svc");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// An HTTPS agent that trusts this CA and nothing else.
    fn client(&self) -> ureq::Agent {
        client_trusting(self.cert.der().clone())
    }
}

/// An HTTPS agent that trusts `ca` and nothing else.
fn client_trusting(ca: rustls::pki_types::CertificateDer<'static>) -> ureq::Agent {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .timeout(Duration::from_secs(30))
        .build()
}

/// A records world whose server also listens with TLS, on a certificate
/// of `ca`.
struct TlsWorld {
    world: World,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsWorld {
    fn new(ca: &Ca) -> TlsWorld {
        Self::on(Backend::Sqlite, ca).expect("SQLite is always available")
    }

    /// On `backend`; None when PostgreSQL is not available and not required.
    fn on(backend: Backend, ca: &Ca) -> Option<TlsWorld> {
        let (c, k) = ca.server_pair();
        Self::with_pair_on(backend, &c, &k)
    }

    /// A world serving the certificate `c` with its key `k` (PEM).
    fn with_pair(c: &str, k: &str) -> TlsWorld {
        Self::with_pair_on(Backend::Sqlite, c, k).expect("SQLite is always available")
    }

    fn with_pair_on(backend: Backend, c: &str, k: &str) -> Option<TlsWorld> {
        let world = World::new(backend, "")?;
        let (cert, key) = (world.d.path("tls/tls.crt"), world.d.path("tls/tls.key"));
        std::fs::create_dir_all(world.d.path("tls")).unwrap();
        std::fs::write(&cert, c).unwrap();
        std::fs::write(&key, k).unwrap();
        let config = std::fs::read_to_string(world.d.config()).unwrap();
        std::fs::write(
            world.d.config(),
            format!(
                "listen_tls = \"127.0.0.1:0\"\n{config}\n[tls]\ncertificate = \"{}\"\nkey = \"{}\"\n[limits]\nwatch_interval_ms = 200\n",
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        Some(TlsWorld { world, cert, key })
    }

    /// Appends `text` (TOML tables) to the configuration.
    fn configure(self, text: &str) -> TlsWorld {
        let config = std::fs::read_to_string(self.world.d.config()).unwrap();
        std::fs::write(self.world.d.config(), format!("{config}\n{text}\n")).unwrap();
        self
    }

    /// Starts the server; returns it with its TLS address.
    fn start(&self) -> (Server, String) {
        let s = self.world.start();
        let mut addr = None;
        support::wait_until("the TLS listener", support::HANG, || {
            addr = tls_address(&s.logs());
            addr.is_some()
        });
        (s, addr.unwrap())
    }
}

/// The address of the "TLS listener ready" log line.
fn tls_address(logs: &str) -> Option<String> {
    logs.lines()
        .filter(|l| l.contains("TLS listener ready"))
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .and_then(|v| v["address"].as_str().map(str::to_string))
}

/// POSTs `body` over HTTPS as `who`.
fn https_post(agent: &ureq::Agent, addr: &str, who: &str, body: &[u8]) -> Reply {
    reply_of(
        agent
            .post(&format!("https://{addr}{ADMISSION}"))
            .set("Authorization", &format!("Bearer {}", token(who)))
            .set("Content-Type", "application/json")
            .send_bytes(body),
    )
}

/// An AdmissionReview as the API server sends it.
fn review(uid: &str, operation: &str, group: &str, kind: &str, object: Value) -> Value {
    let version = if group == "apps" { "v1" } else { "v1beta1" };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_lowercase())},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "name": object["metadata"]["name"],
            "namespace": "credit",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:ci:deployer", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": if operation == "CREATE" { "CreateOptions" } else { "UpdateOptions" }}
        }
    })
}

fn annotations(by: &str) -> Value {
    match by.split_once('=') {
        Some(("deployment", id)) => json!({"stagegate.dev/deployment": id}),
        Some(("system", s)) => json!({"stagegate.dev/system": s}),
        _ => json!({}),
    }
}

/// A KServe InferenceService (examples/kubernetes/inferenceservice.yaml).
fn inference_service(by: &str, digest: &str, canary: Option<u32>) -> Value {
    let mut predictor = json!({"model": {
        "modelFormat": {"name": "sklearn"},
        "storageUri": format!("oci://registry.example/credit-scoring@{digest}")
    }});
    if let Some(p) = canary {
        predictor["canaryTrafficPercent"] = json!(p);
    }
    json!({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "credit-scoring", "namespace": "credit", "annotations": annotations(by)},
        "spec": {"predictor": predictor}
    })
}

/// An apps/v1 Deployment (examples/kubernetes/deployment.yaml).
fn deployment(by: &str, digest: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "credit-scoring", "namespace": "credit", "annotations": annotations(by)},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "credit-scoring"}},
            "template": {"metadata": {"labels": {"app": "credit-scoring"}}, "spec": {
                "initContainers": [{"name": "fetch", "image": format!("busybox@{BUSYBOX}")}],
                "containers": [{"name": "model", "image": format!("registry.example/credit-scoring@{digest}")}]}}}
    })
}

/// An Argo Rollout with `steps`.
fn rollout(by: &str, steps: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "credit-scoring", "namespace": "credit", "annotations": annotations(by)},
        "spec": {"selector": {"matchLabels": {"app": "credit-scoring"}},
            "template": {"metadata": {"labels": {"app": "credit-scoring"}}, "spec": {
                "containers": [{"name": "model", "image": format!("registry.example/credit-scoring@{DIGEST}")}]}},
            "strategy": {"canary": {"trafficRouting": {"nginx": {"stableIngress": "credit-scoring"}},
                "steps": steps}}}
    })
}

fn stagegate_analysis(weight: u32) -> Value {
    json!({"analysis": {"templates": [{"templateName": "stagegate"}],
        "args": [{"name": "deployment", "valueFrom": {"fieldRef":
                {"fieldPath": "metadata.annotations['stagegate.dev/deployment']"}}},
            {"name": "weight", "value": weight.to_string()}]}})
}

/// The answer to one review: (allowed, status.code, message, warnings,
/// decision id), after checking the envelope the API server checks.
struct Answer {
    allowed: bool,
    code: u64,
    message: String,
    warnings: Vec<String>,
    decision_id: Option<String>,
}

fn admit(agent: &ureq::Agent, addr: &str, review: &Value) -> Answer {
    let r = https_post(agent, addr, "gw", &serde_json::to_vec(review).unwrap());
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1", "{v:#}");
    assert_eq!(v["kind"], "AdmissionReview", "{v:#}");
    let response = &v["response"];
    assert_eq!(response["uid"], review["request"]["uid"], "{v:#}");
    Answer {
        allowed: response["allowed"].as_bool().expect("allowed is a boolean"),
        code: response["status"]["code"].as_u64().unwrap_or_default(),
        message: response["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .into(),
        warnings: response["warnings"]
            .as_array()
            .map(|w| w.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default(),
        decision_id: response["auditAnnotations"]["decision-id"]
            .as_str()
            .map(str::to_string),
    }
}

fn deployment_version(s: &Server, id: &str) -> (i64, usize) {
    let v = get(s, "audit", &format!("/v1/deployments/{id}")).json();
    (
        v["version"].as_i64().unwrap(),
        v["history"].as_array().unwrap().len(),
    )
}

fn promote(s: &Server, id: &str, target: &str) {
    let v = observe(s, id, 0.01, 20_000).json();
    assert_eq!(v["decision"]["outcome"], "healthy", "{v:#}");
    let r = post(
        s,
        "a.lee",
        &format!("/v1/deployments/{id}/reviews"),
        &json!({"outcome": "approved", "target_stage": target}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = post(
        s,
        "j.doe",
        &format!("/v1/deployments/{id}/progressions"),
        &json!({"target_stage": target, "authorisation": {"scope": [target]}}),
        &[],
    )
    .json();
    assert_eq!(v["deployment"]["stage"], target, "{v:#}");
}

support::on_both_backends!(
    admission_answers_follow_the_deployment_from_pilot_through_promotion_to_rollback
);

fn admission_answers_follow_the_deployment_from_pilot_through_promotion_to_rollback(
    backend: Backend,
) {
    let ca = Ca::new("admission test CA");
    let Some(w) = TlsWorld::on(backend, &ca) else {
        return;
    };
    let w = w.configure(ALLOW_BUSYBOX);
    let (s, addr) = w.start();
    let client = ca.client();
    let release = registered_release_with(&s, "2.3.0", json!({"artifact_digest": DIGEST}));
    let id = deploy_with_ref(&s, &release);
    // Healthy observations: the monitoring policy has nothing to warn of.
    let v = observe(&s, &id, 0.01, 20_000).json();
    assert_eq!(v["decision"]["outcome"], "healthy", "{v:#}");
    let by_id = format!("deployment={id}");
    let mut n = 0;
    let mut uid = || {
        n += 1;
        format!("705ab4f5-6393-11e8-b7cc-42010a80{n:04}")
    };

    // Pilot, 5 %: the InferenceService at 5 % with the release's artifact.
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "CREATE",
            "serving.kserve.io",
            "InferenceService",
            inference_service("system=credit-scoring", DIGEST, Some(5)),
        ),
    );
    assert!(a.allowed, "{}", a.message);
    assert_eq!(a.code, 200);
    assert!(
        a.message.contains(&id) && a.message.contains("pilot"),
        "{}",
        a.message
    );
    let decision = a.decision_id.expect("an admission decision is logged");
    let logged = get(&s, "audit", &format!("/v1/decisions/{decision}"));
    assert_eq!(logged.status, 200, "{}", logged.body);
    assert_eq!(
        logged.json()["kind"],
        "kubernetes.admission",
        "{}",
        logged.body
    );
    assert_eq!(logged.json()["outcome"], "allowed");
    assert_eq!(logged.json()["deployment_id"], id.as_str());

    // More canary traffic than the stage allows.
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "UPDATE",
            "serving.kserve.io",
            "InferenceService",
            inference_service(&by_id, DIGEST, Some(25)),
        ),
    );
    assert!(!a.allowed);
    assert_eq!(a.code, 403);
    assert!(
        a.message.contains("canaryTrafficPercent is 25"),
        "{}",
        a.message
    );

    // Another artifact than the release's.
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "CREATE",
            "apps",
            "Deployment",
            deployment(&by_id, OTHER),
        ),
    );
    assert!(!a.allowed);
    assert!(
        a.message.contains(DIGEST) && a.message.contains("spec.template.spec.containers[0].image"),
        "{}",
        a.message
    );
    let logged = get(
        &s,
        "audit",
        &format!("/v1/decisions/{}", a.decision_id.unwrap()),
    )
    .json();
    assert_eq!(logged["outcome"], "denied");
    assert_eq!(
        logged["codes"],
        json!([
            "admission.image_not_allowed",
            "admission.digest_mismatch",
            "admission.traffic_not_enforced"
        ])
    );

    // The right artifact in a Deployment: allowed, with a warning that a
    // Deployment cannot hold traffic at 5 %.
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "CREATE",
            "apps",
            "Deployment",
            deployment(&by_id, DIGEST),
        ),
    );
    assert!(a.allowed, "{}", a.message);
    assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
    assert!(a.warnings[0].contains("5%"), "{:?}", a.warnings);

    // A Rollout: weights above the stage only right after a stagegate
    // analysis, and a stagegate analysis before the implicit final 100 %.
    let gated = json!([{"setWeight": 5}, {"pause": {}}, stagegate_analysis(25), {"setWeight": 25},
        stagegate_analysis(100)]);
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "CREATE",
            "argoproj.io",
            "Rollout",
            rollout(&by_id, gated),
        ),
    );
    assert!(a.allowed, "{}", a.message);
    let ungated =
        json!([{"setWeight": 5}, {"pause": {}}, {"setWeight": 25}, stagegate_analysis(100)]);
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "CREATE",
            "argoproj.io",
            "Rollout",
            rollout(&by_id, ungated.clone()),
        ),
    );
    assert!(!a.allowed);
    assert!(
        a.message.contains("steps[2].setWeight is 25"),
        "{}",
        a.message
    );

    // Objects no deployment governs (no ref, no annotation) are not
    // stagegate's business.
    let mut unrelated = deployment("none", OTHER);
    unrelated["metadata"]["name"] = json!("unrelated");
    let a = admit(
        &client,
        &addr,
        &review(&uid(), "CREATE", "apps", "Deployment", unrelated),
    );
    assert!(a.allowed);
    assert!(
        a.decision_id.is_none(),
        "objects that are not governed are not logged"
    );

    // dryRun: the same answer, not logged, and nothing about the
    // deployment changes.
    let before = deployment_version(&s, &id);
    for canary in [5, 25] {
        let mut r = review(
            &uid(),
            "UPDATE",
            "serving.kserve.io",
            "InferenceService",
            inference_service(&by_id, DIGEST, Some(canary)),
        );
        r["request"]["dryRun"] = json!(true);
        let a = admit(&client, &addr, &r);
        assert_eq!(a.allowed, canary == 5, "{}", a.message);
        assert_eq!(a.decision_id, None, "a dry run was logged");
    }
    assert_eq!(deployment_version(&s, &id), before);

    // A deployment id that is not the one holding the object's ref: a
    // denial naming both, not an error (which the API server would turn
    // into an opaque failure).
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "CREATE",
            "apps",
            "Deployment",
            deployment("deployment=01NOSUCHDEPLOYMENT0000000", DIGEST),
        ),
    );
    assert!(!a.allowed);
    assert!(
        a.message.contains("'01NOSUCHDEPLOYMENT0000000'")
            && a.message.contains(&format!("held by deployment '{id}'")),
        "{}",
        a.message
    );

    // Promotion to regional, 25 %: the canary at 25 % is allowed now, the
    // ungated Rollout still not (its final 100 % is above 25 %)... and with
    // the analysis before its last weight, allowed.
    promote(&s, &id, "regional");
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "UPDATE",
            "serving.kserve.io",
            "InferenceService",
            inference_service("system=credit-scoring", DIGEST, Some(25)),
        ),
    );
    assert!(a.allowed, "{}", a.message);
    assert!(a.message.contains("regional"), "{}", a.message);
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "UPDATE",
            "argoproj.io",
            "Rollout",
            rollout(&by_id, json!([{"setWeight": 25}, stagegate_analysis(100)])),
        ),
    );
    assert!(a.allowed, "{}", a.message);
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "UPDATE",
            "serving.kserve.io",
            "InferenceService",
            inference_service(&by_id, DIGEST, Some(50)),
        ),
    );
    assert!(!a.allowed, "{}", a.message);

    // Monitoring raises an alert: the object is still admitted, and whoever
    // changes it sees the monitoring policy's warnings.
    let v = observe(&s, &id, 0.03, 3000).json();
    assert_eq!(v["decision"]["outcome"], "alert", "{v:#}");
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "UPDATE",
            "serving.kserve.io",
            "InferenceService",
            inference_service(&by_id, DIGEST, Some(25)),
        ),
    );
    assert!(a.allowed, "{}", a.message);
    assert!(
        !a.warnings.is_empty()
            && a.warnings
                .iter()
                .all(|w| w.starts_with("stagegate: monitoring: ")),
        "{:?}",
        a.warnings
    );

    // A breach rolls the deployment back: nothing of it is admitted.
    let v = observe(&s, &id, 0.08, 3000).json();
    assert_eq!(v["deployment"]["status"], "rolled_back", "{v:#}");
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "UPDATE",
            "serving.kserve.io",
            "InferenceService",
            inference_service(&by_id, DIGEST, Some(5)),
        ),
    );
    assert!(!a.allowed);
    assert!(a.message.contains("rolled_back"), "{}", a.message);
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "UPDATE",
            "serving.kserve.io",
            "InferenceService",
            inference_service("system=credit-scoring", DIGEST, Some(5)),
        ),
    );
    assert!(!a.allowed);
    assert!(a.message.contains("rolled_back"), "{}", a.message);

    // DELETE is not checked (the webhook registers CREATE and UPDATE).
    let a = admit(
        &client,
        &addr,
        &review(
            &uid(),
            "DELETE",
            "apps",
            "Deployment",
            deployment(&by_id, OTHER),
        ),
    );
    assert!(a.allowed);

    // Counted: every answer, by result.
    let metrics = s.get("/metrics", None).body;
    for result in ["allowed", "denied", "not_annotated"] {
        let series = format!("stagegate_admissions_total{{result=\"{result}\"}} ");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&series) && !l.ends_with(" 0")),
            "{metrics}"
        );
    }

    // The decision log still verifies with the admission entries in it.
    drop(s);
    let (code, out) = w.world.audit_verify();
    assert_eq!(code, 0, "{out}");
}

#[test]
fn an_annotated_object_is_governed_by_the_deployment_holding_its_ref_and_never_by_the_system_alone()
{
    let ca = Ca::new("admission test CA");
    let w = TlsWorld::new(&ca);
    let (s, addr) = w.start();
    let client = ca.client();
    let release = registered_release_with(&s, "2.3.0", json!({"artifact_digest": DIGEST}));
    let r = post(
        &s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": release, "plan": support::records::plan(),
            "refs": {"kubernetes": "credit/credit-scoring"}}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let with_ref = r.json()["deployment"]["id"].as_str().unwrap().to_string();
    let newest = deploy(&s, &release);
    assert_ne!(with_ref, newest);

    let named = |name: &str, system: &str| {
        let mut object = inference_service(&format!("system={system}"), DIGEST, Some(5));
        object["metadata"]["name"] = json!(name);
        review(
            "ref-1",
            "CREATE",
            "serving.kserve.io",
            "InferenceService",
            object,
        )
    };
    let a = admit(&client, &addr, &named("credit-scoring", "credit-scoring"));
    assert!(a.allowed && a.message.contains(&with_ref), "{}", a.message);
    // The system's newest active deployment no longer stands in for a
    // ref no deployment holds (issue 22 §1: the object's word chose it).
    let a = admit(&client, &addr, &named("fraud-model", "credit-scoring"));
    assert!(!a.allowed, "{}", a.message);
    assert!(
        a.message
            .contains("no deployment holds the ref kubernetes=credit/fraud-model"),
        "{}",
        a.message
    );
    let a = admit(&client, &addr, &named("credit-scoring", "fraud-detection"));
    assert!(!a.allowed);
    assert!(
        a.message.contains("says 'fraud-detection'"),
        "{}",
        a.message
    );
    let a = admit(&client, &addr, &named("fraud-model", "fraud-detection"));
    assert!(!a.allowed);
    assert!(
        a.message.contains("no deployment holds the ref"),
        "{}",
        a.message
    );
}

/// With `require_receipt`, an object is admitted only when the release's
/// artifact holds a verified decision receipt: the gate's `allow` makes
/// one; a service that signs none refuses the same object.
#[test]
fn admission_can_require_a_verified_receipt_for_the_artifact_it_admits() {
    let ca = Ca::new("admission receipts CA");
    let ask = |extra: &str| {
        let w = TlsWorld::new(&ca).configure(extra);
        let (s, addr) = w.start();
        let release = registered_release_with(&s, "2.3.0", json!({"artifact_digest": DIGEST}));
        let id = deploy_with_ref(&s, &release);
        let object = inference_service(&format!("deployment={id}"), DIGEST, Some(5));
        admit(
            &ca.client(),
            &addr,
            &review(
                "rc-1",
                "CREATE",
                "serving.kserve.io",
                "InferenceService",
                object,
            ),
        )
    };
    let required = "[integrations.kubernetes]\nrequire_receipt = true";
    let a = ask(required);
    assert!(
        a.allowed,
        "the gate's allow signed a receipt: {}",
        a.message
    );
    let a = ask(&format!("{required}\n[receipts]\nenabled = false"));
    assert!(!a.allowed, "no receipt was signed, yet admitted");
    assert!(a.message.contains("no decision receipt"), "{}", a.message);
    // The same service without the requirement admits it: the receipt
    // check is what refused.
    let a = ask("[receipts]\nenabled = false");
    assert!(a.allowed, "{}", a.message);
}

#[test]
fn malformed_reviews_are_400s_naming_the_field_and_only_the_gateway_role_may_ask() {
    let ca = Ca::new("admission test CA");
    let w = TlsWorld::new(&ca);
    let (s, addr) = w.start();
    let client = ca.client();
    let object = deployment("system=credit-scoring", DIGEST);
    let mut no_uid = review("x", "CREATE", "apps", "Deployment", object.clone());
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let mut v1beta1 = review("x", "CREATE", "apps", "Deployment", object.clone());
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut not_a_review = review("x", "CREATE", "apps", "Deployment", object.clone());
    not_a_review["kind"] = json!("Deployment");
    for (body, path) in [
        (serde_json::to_vec(&no_uid).unwrap(), "request.uid"),
        (serde_json::to_vec(&v1beta1).unwrap(), "apiVersion"),
        (serde_json::to_vec(&not_a_review).unwrap(), "kind"),
        (
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}".to_vec(),
            "request",
        ),
        (b"{not json".to_vec(), ""),
    ] {
        let r = https_post(&client, &addr, "gw", &body);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let e = &r.json()["error"];
        assert_eq!(e["code"], "bad_admission_review", "{}", r.body);
        assert_eq!(e["path"], path, "{}", r.body);
    }
    // A review whose object is missing on CREATE is answered, not failed,
    // and denied: what cannot be read cannot be admitted.
    let mut no_object = review("no-object", "CREATE", "apps", "Deployment", object.clone());
    no_object["request"]["object"] = Value::Null;
    let a = admit(&client, &addr, &no_object);
    assert!(!a.allowed, "{}", a.message);
    assert!(a.message.contains("request.object"), "{}", a.message);
    // Roles: an auditor may read, not answer admissions.
    let body = serde_json::to_vec(&review("x", "CREATE", "apps", "Deployment", object)).unwrap();
    assert_eq!(https_post(&client, &addr, "audit", &body).status, 403);
    let r = reply_of(
        client
            .post(&format!("https://{addr}{ADMISSION}"))
            .set("Content-Type", "application/json")
            .send_bytes(&body),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    // The plain listener serves the same route.
    let r = post(
        &s,
        "gw",
        ADMISSION,
        &serde_json::from_slice(&body).unwrap(),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn plain_http_to_the_tls_port_fails_cleanly_and_the_server_keeps_serving() {
    let ca = Ca::new("admission test CA");
    let w = TlsWorld::new(&ca);
    let (s, addr) = w.start();
    let client = ca.client();
    let raw = support::server::raw(
        &addr,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
    assert!(raw.contains("tls_required"), "{raw}");
    let r = support::server::send(&format!("http://{addr}/healthz"), "GET", None, None, None);
    assert_eq!(r.status, 400, "{}", r.body);
    // Garbage that is neither HTTP nor TLS, and a TLS client that gives up
    // mid-handshake: the connection closes, nothing else happens.
    use std::io::Write;
    let mut junk = std::net::TcpStream::connect(&addr).unwrap();
    junk.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    drop(junk);
    for _ in 0..3 {
        let r = reply_of(client.get(&format!("https://{addr}/healthz")).call());
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // A client that does not trust the CA refuses the server.
    let r = support::server::send(&format!("https://{addr}/healthz"), "GET", None, None, None);
    assert_eq!(r.status, 0, "{}", r.body);
    assert!(!s.logs().contains("panicked"), "{}", s.logs());
    // Shutdown drains both listeners and exits 0.
    assert_eq!(s.terminate(), Some(0));
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart_and_a_bad_one_keeps_the_old() {
    let first = Ca::new("first CA");
    let w = TlsWorld::new(&first);
    let (s, addr) = w.start();
    let url = format!("https://{addr}/healthz");
    assert_eq!(reply_of(first.client().get(&url).call()).status, 200);

    // A broken pair (a certificate without its key) is refused; the old
    // one keeps serving.
    let second = Ca::new("second CA");
    let (cert, key) = second.server_pair();
    std::fs::write(&w.cert, &cert).unwrap();
    support::wait_until(
        "the refusal of the half-rotated pair",
        support::HANG,
        || s.logs().contains("new TLS certificate refused"),
    );
    assert_eq!(reply_of(first.client().get(&url).call()).status, 200);

    // The key arrives: the new pair is served.
    std::fs::write(&w.key, &key).unwrap();
    support::wait_until("the new certificate", support::HANG, || {
        reply_of(second.client().get(&url).call()).status == 200
    });
    assert_eq!(reply_of(first.client().get(&url).call()).status, 0);
    assert!(s.logs().contains("TLS certificate reloaded"));
}

#[test]
fn a_missing_or_mismatched_certificate_stops_the_start_naming_the_file() {
    let ca = Ca::new("admission test CA");
    let w = TlsWorld::new(&ca);
    let check = |what: &str| {
        let out = support::run(
            w.world.d.dir.path(),
            &[
                "serve",
                "--check",
                "--config",
                w.world.d.config().to_str().unwrap(),
            ],
            None,
        );
        let (o, e) = support::text(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {o}{e}");
        e
    };
    let (_, other_key) = ca.server_pair();
    std::fs::write(&w.key, other_key).unwrap();
    let e = check("mismatched");
    assert!(
        e.contains("does not belong") && e.contains(&display(&w.cert)),
        "{e}"
    );
    std::fs::remove_file(&w.cert).unwrap();
    let e = check("missing");
    assert!(
        e.contains("tls.certificate") && e.contains(&display(&w.cert)),
        "{e}"
    );
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn the_shipped_certificate_script_and_manifests_work_against_a_running_server() {
    for tool in ["bash", "openssl", "pyyaml"] {
        if !support::require_tool(tool) {
            return;
        }
    }
    let examples = support::root().join("examples/kubernetes");
    let certs = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(examples.join("make-certs.sh"))
        .arg(certs.path())
        .env("EXTRA_SANS", "IP:127.0.0.1")
        .output()
        .expect("running examples/kubernetes/make-certs.sh (needs bash and openssl)");
    let (o, e) = support::text(&out);
    assert!(out.status.success(), "make-certs.sh failed:\n{o}\n{e}");
    let read = |name: &str| std::fs::read_to_string(certs.path().join(name)).unwrap();

    // The webhook configuration, with the script's CA as its caBundle.
    let webhook = &support::yaml_documents(&certs.path().join("webhook.yaml"))[0];
    assert_eq!(webhook["kind"], "ValidatingWebhookConfiguration");
    let hook = &webhook["webhooks"][0];
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
    assert!(
        hook["timeoutSeconds"]
            .as_u64()
            .is_some_and(|t| (1..=30).contains(&t))
    );
    assert!(hook["namespaceSelector"]["matchLabels"].is_object());
    assert_eq!(hook["clientConfig"]["service"]["path"], ADMISSION);
    use base64::Engine;
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(hook["clientConfig"]["caBundle"].as_str().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(bundle).unwrap(), read("ca.crt"));

    // stagegate serves the script's certificate; a client trusting only
    // the script's CA is admitted.
    let w = TlsWorld::with_pair(&read("tls.crt"), &read("tls.key"));
    let (s, addr) = w.start();
    use rustls::pki_types::pem::PemObject;
    let ca = rustls::pki_types::CertificateDer::from_pem_slice(read("ca.crt").as_bytes()).unwrap();
    let client = client_trusting(ca);
    let release = registered_release_with(&s, "2.3.0", json!({"artifact_digest": DIGEST}));
    let id = deploy_with_ref(&s, &release);
    observe(&s, &id, 0.01, 20_000);

    // The example objects, as the API server would send them.
    for (file, group, warnings) in [
        ("inferenceservice.yaml", "serving.kserve.io", 0),
        ("deployment.yaml", "apps", 1),
    ] {
        let object = support::yaml_documents(&examples.join(file)).remove(0);
        let kind = object["kind"].as_str().unwrap().to_string();
        let a = admit(
            &client,
            &addr,
            &review(file, "CREATE", group, &kind, object),
        );
        assert!(a.allowed, "{file}: {}", a.message);
        assert!(a.message.contains(&id), "{file}: {}", a.message);
        assert_eq!(a.warnings.len(), warnings, "{file}: {:?}", a.warnings);
    }
    let sample = support::yaml_documents(&examples.join("apiserver-admission.yaml"));
    assert_eq!(sample[0]["kind"], "AdmissionConfiguration");
}
