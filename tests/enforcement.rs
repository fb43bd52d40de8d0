//! Enforcement that holds (issue 22 §1–3, §6 and the admission half of §4):
//! each way the admission webhook was walked around, tried against a
//! running server as an attacker would, must now be denied with a message
//! naming the field and the rule.
//!
//! The AdmissionReview requests follow `admission.k8s.io/v1`
//! (kubernetes/api `admission/v1/types.go`: AdmissionReview,
//! AdmissionRequest with uid, kind, name, namespace, operation, object,
//! oldObject, dryRun). The objects' fields are the tools' own: apps/v1
//! PodSpec `containers`/`initContainers`/`ephemeralContainers`
//! (kubernetes/api `core/v1/types.go`); Argo Rollouts' `RolloutAnalysis`
//! (`templates`, `args`, `dryRun`) and `CanaryStrategy` (`steps`,
//! `trafficRouting`, `maxSurge`) in argoproj/argo-rollouts
//! `pkg/apis/rollouts/v1alpha1/types.go`; Flagger's `CanaryAnalysis`
//! (`maxWeight`, `stepWeight`, `stepWeights`, `webhooks`) in
//! fluxcd/flagger `pkg/apis/flagger/v1beta1/canary.go`; KServe's
//! `PredictorSpec.canaryTrafficPercent` and `storageUri`.

use crate::support;

use serde_json::{Value, json};
use support::records::{ARTIFACT, Backend, World, observe, plan, post, registered_release_with};
use support::server::Server;

const ADMISSION: &str = "/v1/integrations/kubernetes/admission";
/// The rolled-back (or active) deployment's artifact.
const MODEL: &str = ARTIFACT;
/// The healthy deployment's artifact.
const HEALTHY_MODEL: &str =
    "sha256:b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1";
/// A sidecar on the allow-list of the system.
const SIDECAR: &str = "sha256:5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c";
/// An image nobody authorised.
const EVIL: &str = "sha256:e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7";

const ALLOW_SIDECAR: &str = "[[integrations.kubernetes.allowed_images]]\nsystem = \"credit-scoring\"\ndigests = [\"sha256:5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c\"]\n";

/// The world of the issue: a deployment holding the ref
/// `kubernetes: serving/credit-scoring` (rolled back after a breach when
/// `rolled_back`), and a second, healthy deployment at pilot 5 % holding
/// `serving/fraud-model`.
struct Scene {
    _world: World,
    s: Server,
    governing: String,
    healthy: String,
}

fn deploy_with_ref(s: &Server, release: &str, reference: &str) -> String {
    let r = post(
        s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": release, "plan": plan(), "refs": {"kubernetes": reference}}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["deployment"]["id"].as_str().unwrap().to_string()
}

fn scene(rolled_back: bool) -> Scene {
    let world = World::new(Backend::Sqlite, ALLOW_SIDECAR).expect("SQLite is always available");
    let s = world.start();
    let a = registered_release_with(&s, "2.3.0", json!({"artifact_digest": MODEL}));
    let b = registered_release_with(&s, "2.4.0", json!({"artifact_digest": HEALTHY_MODEL}));
    let governing = deploy_with_ref(&s, &a, "serving/credit-scoring");
    let healthy = deploy_with_ref(&s, &b, "serving/fraud-model");
    if rolled_back {
        let v = observe(&s, &governing, 0.08, 3000).json();
        assert_eq!(v["deployment"]["status"], "rolled_back", "{v:#}");
    }
    Scene {
        _world: world,
        s,
        governing,
        healthy,
    }
}

/// An AdmissionReview for `object` (its namespace and name are the ref).
fn review(operation: &str, group: &str, kind: &str, object: &Value, old: Option<&Value>) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0d2f5c3e-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:ci:deployer"},
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    })
}

/// The answer: (allowed, message, decision id).
fn admit(s: &Server, review: &Value) -> (bool, String, Option<String>) {
    let r = post(s, "gw", ADMISSION, review, &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let response = &v["response"];
    (
        response["allowed"].as_bool().expect("allowed is a boolean"),
        response["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        response["auditAnnotations"]["decision-id"]
            .as_str()
            .map(str::to_string),
    )
}

/// An apps/v1 Deployment `serving/credit-scoring` with `containers`.
fn workload(annotations: Value, containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "credit-scoring", "namespace": "serving", "annotations": annotations},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "credit-scoring"}},
            "template": {"metadata": {"labels": {"app": "credit-scoring"}},
                "spec": {"containers": containers}}}
    })
}

fn model() -> Value {
    json!({"name": "model", "image": format!("registry.example/credit-scoring@{MODEL}")})
}

/// An Argo Rollout `serving/credit-scoring` with `canary` as its strategy.
fn rollout(deployment: &str, replicas: u32, canary: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "credit-scoring", "namespace": "serving",
            "annotations": {"stagegate.dev/deployment": deployment}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "credit-scoring"}},
            "template": {"metadata": {"labels": {"app": "credit-scoring"}}, "spec": {"containers": [model()]}},
            "strategy": {"canary": canary}}
    })
}

fn ask(deployment: &str, weight: u32) -> Value {
    json!({"analysis": {"templates": [{"templateName": "stagegate-step"}],
        "args": [{"name": "deployment", "value": deployment}, {"name": "weight", "value": weight.to_string()}]}})
}

fn routed() -> Value {
    json!({"nginx": {"stableIngress": "credit-scoring"}})
}

/// Issue 22 §1: the object without any annotation, image `evil/x:1`, whose
/// ref a rolled-back deployment holds. Before: allowed ("the object
/// carries no stagegate annotation").
#[test]
fn an_unannotated_object_whose_ref_a_rolled_back_deployment_holds_is_denied() {
    let sc = scene(true);
    let object = workload(json!({}), json!([{"name": "model", "image": "evil/x:1"}]));
    let (allowed, message, decision) = admit(
        &sc.s,
        &review("CREATE", "apps", "Deployment", &object, None),
    );
    assert!(
        !allowed,
        "the rolled-back deployment's object was admitted: {message}"
    );
    assert!(
        message.contains(&sc.governing) && message.contains("rolled_back"),
        "{message}"
    );
    assert!(decision.is_some(), "a governed answer is logged");
}

/// Issue 22 §1: annotated with another (healthy) deployment's id. Before:
/// allowed; the object's own namespace/name was never compared with that
/// deployment's refs.
#[test]
fn an_annotation_naming_another_deployment_is_denied_naming_both() {
    let sc = scene(true);
    let object = workload(
        json!({"stagegate.dev/deployment": sc.healthy}),
        json!([{"name": "model", "image": format!("registry.example/fraud@{HEALTHY_MODEL}")}]),
    );
    let (allowed, message, _) = admit(
        &sc.s,
        &review("CREATE", "apps", "Deployment", &object, None),
    );
    assert!(
        !allowed,
        "an annotation chose the governing deployment: {message}"
    );
    assert!(
        message.contains(&sc.healthy) && message.contains(&sc.governing),
        "the message names both deployments: {message}"
    );
    // An annotated object whose ref no deployment holds: denied too.
    let mut elsewhere = object.clone();
    elsewhere["metadata"]["name"] = json!("shadow");
    let (allowed, message, _) = admit(
        &sc.s,
        &review("CREATE", "apps", "Deployment", &elsewhere, None),
    );
    assert!(!allowed, "{message}");
    assert!(message.contains("serving/shadow"), "{message}");
}

/// Issue 22 §1: `evil/x:1` with the approved digest in a pod-template
/// annotation, or in a sidecar. Before: both allowed (any string under
/// `spec` containing the digest passed).
#[test]
fn the_digest_elsewhere_in_the_object_does_not_stand_for_the_model_image() {
    let sc = scene(false);
    let by = json!({"stagegate.dev/deployment": sc.governing});
    let mut annotated = workload(by.clone(), json!([{"name": "model", "image": "evil/x:1"}]));
    annotated["spec"]["template"]["metadata"]["annotations"] = json!({"image": MODEL});
    let (allowed, message, _) = admit(
        &sc.s,
        &review("CREATE", "apps", "Deployment", &annotated, None),
    );
    assert!(!allowed, "a digest in an annotation passed: {message}");
    assert!(
        message.contains("spec.template.spec.containers[0].image is 'evil/x:1'")
            && message.contains("not pinned"),
        "{message}"
    );

    let sidecar = workload(
        by.clone(),
        json!([{"name": "model", "image": format!("evil/x@{EVIL}")}, model()]),
    );
    let (allowed, message, _) = admit(
        &sc.s,
        &review("CREATE", "apps", "Deployment", &sidecar, None),
    );
    assert!(!allowed, "a sidecar carrying the digest passed: {message}");
    assert!(
        message.contains("spec.template.spec.containers[0].image is pinned to")
            && message.contains(EVIL),
        "{message}"
    );

    // Every container list counts, including ephemeral ones.
    let mut ephemeral = workload(by.clone(), json!([model()]));
    ephemeral["spec"]["template"]["spec"]["ephemeralContainers"] =
        json!([{"name": "debug", "image": "busybox:1.36"}]);
    let (allowed, message, _) = admit(
        &sc.s,
        &review("UPDATE", "apps", "Deployment", &ephemeral, None),
    );
    assert!(!allowed, "{message}");
    assert!(
        message.contains("ephemeralContainers[0].image"),
        "{message}"
    );

    // The model and an allow-listed sidecar: admitted.
    let fine = workload(
        by,
        json!([model(), {"name": "proxy", "image": format!("registry.example/proxy@{SIDECAR}")}]),
    );
    let (allowed, message, _) = admit(&sc.s, &review("CREATE", "apps", "Deployment", &fine, None));
    assert!(allowed, "{message}");
}

/// Issue 22 §1: `storageUri: s3://attacker/<digest>/` is not content
/// addressed. Before: allowed (substring match).
#[test]
fn a_storage_uri_counts_only_when_content_addressed() {
    let sc = scene(false);
    let isvc = |uri: String| {
        json!({
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "credit-scoring", "namespace": "serving"},
            "spec": {"predictor": {"canaryTrafficPercent": 5,
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}}
        })
    };
    let (allowed, message, _) = admit(
        &sc.s,
        &review(
            "CREATE",
            "serving.kserve.io",
            "InferenceService",
            &isvc(format!("s3://attacker/{MODEL}/")),
            None,
        ),
    );
    assert!(!allowed, "a prefix holding the digest passed: {message}");
    assert!(
        message.contains("spec.predictor.model.storageUri")
            && message.contains("not content-addressed"),
        "{message}"
    );
    let (allowed, message, _) = admit(
        &sc.s,
        &review(
            "CREATE",
            "serving.kserve.io",
            "InferenceService",
            &isvc(format!(
                "oci://registry.example/models/credit-scoring@{MODEL}"
            )),
            None,
        ),
    );
    assert!(allowed, "{message}");
}

/// Issue 22 §1: an UPDATE that removes the annotation. Before: allowed.
#[test]
fn an_update_removing_the_annotation_is_denied() {
    let sc = scene(false);
    let old = workload(
        json!({"stagegate.dev/deployment": sc.governing}),
        json!([model()]),
    );
    let new = workload(json!({}), json!([model()]));
    let (allowed, message, _) = admit(
        &sc.s,
        &review("UPDATE", "apps", "Deployment", &new, Some(&old)),
    );
    assert!(!allowed, "the annotation was dropped silently: {message}");
    assert!(
        message.contains("metadata.annotations.stagegate.dev/deployment")
            && message.contains("removes"),
        "{message}"
    );
}

/// Issue 22 §1: a malformed object is denied with the JSON path of what
/// could not be read. Before: a non-string annotation made the object
/// "not annotated" and allowed.
#[test]
fn a_malformed_governed_object_is_denied_with_the_path() {
    let sc = scene(false);
    let odd = workload(json!({"stagegate.dev/deployment": 5}), json!([model()]));
    let (allowed, message, _) = admit(&sc.s, &review("CREATE", "apps", "Deployment", &odd, None));
    assert!(!allowed, "{message}");
    assert!(
        message.contains("metadata.annotations.stagegate.dev/deployment must be a string"),
        "{message}"
    );
    let broken = workload(
        json!({"stagegate.dev/deployment": sc.governing}),
        json!({"name": "model", "image": format!("r@{MODEL}")}),
    );
    let (allowed, message, _) = admit(
        &sc.s,
        &review("CREATE", "apps", "Deployment", &broken, None),
    );
    assert!(!allowed, "{message}");
    assert!(
        message.contains("spec.template.spec.containers must be a list"),
        "{message}"
    );
}

/// Issue 22 §3: a stagegate analysis about another deployment, a dry run
/// over stagegate's metric, and a weight without traffic routing whose
/// replica share exceeds the stage. Before: all three admitted.
#[test]
fn a_rollout_cannot_borrow_another_deployments_answer_or_run_it_dry_or_overshoot_by_pod_counts() {
    let sc = scene(false);
    let gov = sc.governing.clone();
    // The step's deployment arg names the healthy deployment.
    let borrowed = rollout(
        &gov,
        10,
        json!({"trafficRouting": routed(), "steps": [{"setWeight": 5}, ask(&sc.healthy, 100), {"setWeight": 100}]}),
    );
    let (allowed, message, _) = admit(
        &sc.s,
        &review("CREATE", "argoproj.io", "Rollout", &borrowed, None),
    );
    assert!(
        !allowed,
        "an analysis of another deployment authorised 100%: {message}"
    );
    assert!(
        message.contains("steps[1].analysis.args[0] (deployment)") && message.contains(&sc.healthy),
        "{message}"
    );

    // A dry run over stagegate's metric.
    let mut dry = ask(&gov, 100);
    dry["analysis"]["dryRun"] = json!([{"metricName": "stagegate-authorised-stage"}]);
    let dry_run = rollout(
        &gov,
        10,
        json!({"trafficRouting": routed(), "steps": [{"setWeight": 5}, dry, {"setWeight": 100}]}),
    );
    let (allowed, message, _) = admit(
        &sc.s,
        &review("CREATE", "argoproj.io", "Rollout", &dry_run, None),
    );
    assert!(
        !allowed,
        "a dry-run stagegate analysis authorised 100%: {message}"
    );
    assert!(message.contains("steps[1].analysis.dryRun"), "{message}");

    // No trafficRouting, replicas 10, setWeight 5 at a 5 % stage: one
    // canary pod of eleven, 9.09 % (argo-rollouts utils/replicaset/canary.go).
    let basic = rollout(
        &gov,
        10,
        json!({"steps": [ask(&gov, 5), {"setWeight": 5}, ask(&gov, 100), {"setWeight": 100}]}),
    );
    let (allowed, message, _) = admit(
        &sc.s,
        &review("CREATE", "argoproj.io", "Rollout", &basic, None),
    );
    assert!(
        !allowed,
        "9% of traffic was admitted at a 5% stage: {message}"
    );
    assert!(
        message.contains("steps[1].setWeight is 5") && message.contains("9.09%"),
        "{message}"
    );

    // The same steps with traffic routing hold 5 %: admitted.
    let held = rollout(
        &gov,
        10,
        json!({"trafficRouting": routed(), "steps": [ask(&gov, 5), {"setWeight": 5}, ask(&gov, 100), {"setWeight": 100}]}),
    );
    let (allowed, message, _) = admit(
        &sc.s,
        &review("CREATE", "argoproj.io", "Rollout", &held, None),
    );
    assert!(allowed, "{message}");
}

/// Issue 22 §3: AnalysisTemplates named by a governed Rollout are governed:
/// a `stagegate-step` template that asks somewhere else is denied, the
/// shipped ones are admitted. Before: templates were not admitted at all.
#[test]
fn a_stagegate_analysis_template_must_ask_stagegate_in_the_documented_form() {
    let sc = scene(false);
    let shipped = support::yaml_documents(
        &support::root().join("examples/argo-rollouts/analysis-templates.yaml"),
    );
    assert_eq!(shipped.len(), 2);
    for t in &shipped {
        let mut t = t.clone();
        t["metadata"]["namespace"] = json!("serving");
        let (allowed, message, _) = admit(
            &sc.s,
            &review("CREATE", "argoproj.io", "AnalysisTemplate", &t, None),
        );
        assert!(allowed, "{}: {message}", t["metadata"]["name"]);
    }
    let mut always = shipped[0].clone();
    always["metadata"]["namespace"] = json!("serving");
    always["spec"]["metrics"][0]["provider"]["web"]["url"] = json!(
        "http://always-yes.example/v1/ok?deployment={{args.deployment}}&weight={{args.weight}}"
    );
    always["spec"]["metrics"][0]["successCondition"] = json!("true");
    let (allowed, message, _) = admit(
        &sc.s,
        &review("UPDATE", "argoproj.io", "AnalysisTemplate", &always, None),
    );
    assert!(
        !allowed,
        "a stagegate template that never asks stagegate: {message}"
    );
    assert!(
        message.contains("spec.metrics[0].provider.web.url")
            && message.contains("spec.metrics[0].successCondition"),
        "{message}"
    );
    let mut cluster = always.clone();
    cluster["kind"] = json!("ClusterAnalysisTemplate");
    cluster["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let (allowed, message, _) = admit(
        &sc.s,
        &review(
            "CREATE",
            "argoproj.io",
            "ClusterAnalysisTemplate",
            &cluster,
            None,
        ),
    );
    assert!(!allowed, "{message}");
}

/// Issue 22 §3/§4: the Flagger example's `maxWeight: 25` ramped to 25 %
/// while 5 % was authorised. Before: a Canary was never checked.
#[test]
fn a_flagger_canary_above_the_stage_is_denied_and_the_example_is_held_at_its_first_stage() {
    let sc = scene(false);
    let mut canary =
        support::yaml_documents(&support::root().join("examples/flagger/canary.yaml")).remove(0);
    canary["metadata"]["namespace"] = json!("serving");
    let (allowed, message, _) = admit(
        &sc.s,
        &review("CREATE", "flagger.app", "Canary", &canary, None),
    );
    assert!(allowed, "the example is held at the first stage: {message}");
    canary["spec"]["analysis"]["maxWeight"] = json!(25);
    let (allowed, message, _) = admit(
        &sc.s,
        &review("UPDATE", "flagger.app", "Canary", &canary, None),
    );
    assert!(!allowed, "maxWeight 25 at a 5% stage: {message}");
    assert!(
        message.contains("spec.analysis.maxWeight is 25"),
        "{message}"
    );
    canary["spec"]["analysis"]["maxWeight"] = json!(5);
    canary["spec"]["analysis"]["webhooks"] = json!([]);
    let (allowed, message, _) = admit(
        &sc.s,
        &review("UPDATE", "flagger.app", "Canary", &canary, None),
    );
    assert!(!allowed, "nothing held the promotion to 100%: {message}");
    assert!(message.contains("confirm-promotion"), "{message}");
}

/// Issue 22 §6: a dry run has no side effects, not even a log entry.
/// Before: each dry run was appended to the decision log.
#[test]
fn a_dry_run_is_answered_and_not_logged() {
    let sc = scene(false);
    let object = workload(
        json!({"stagegate.dev/deployment": sc.governing}),
        json!([{"name": "model", "image": "evil/x:1"}]),
    );
    let mut r = review("CREATE", "apps", "Deployment", &object, None);
    r["request"]["dryRun"] = json!(true);
    let (allowed, message, decision) = admit(&sc.s, &r);
    assert!(!allowed, "the dry run gets the real answer: {message}");
    assert_eq!(decision, None, "a dry run was logged");
}

/// Issue 22 §6: the shipped webhook configurations send every governed
/// kind from labelled namespaces, fail closed and declare no side effects.
#[test]
fn the_webhook_configurations_cover_every_governed_kind_and_fail_closed() {
    let wanted = [
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("argoproj.io", "rollouts"),
        ("argoproj.io", "analysistemplates"),
        ("argoproj.io", "clusteranalysistemplates"),
        ("serving.kserve.io", "inferenceservices"),
        ("flagger.app", "canaries"),
    ];
    for file in [
        "examples/kubernetes/validating-webhook.yaml",
        "deploy/kubernetes/base/validatingwebhook.yaml",
    ] {
        let docs = support::yaml_documents(&support::root().join(file));
        let hook = &docs[0]["webhooks"][0];
        assert_eq!(hook["sideEffects"], "None", "{file}");
        assert_eq!(hook["failurePolicy"], "Fail", "{file}");
        assert_eq!(
            hook["namespaceSelector"]["matchLabels"]["stagegate.dev/governed"], "true",
            "{file}"
        );
        let rules = hook["rules"].as_array().unwrap();
        for (group, resource) in wanted {
            assert!(
                rules.iter().any(|r| {
                    r["apiGroups"].as_array().unwrap().contains(&json!(group))
                        && r["resources"]
                            .as_array()
                            .unwrap()
                            .contains(&json!(resource))
                        && r["operations"]
                            .as_array()
                            .unwrap()
                            .contains(&json!("CREATE"))
                        && r["operations"]
                            .as_array()
                            .unwrap()
                            .contains(&json!("UPDATE"))
                }),
                "{file} does not send {group}/{resource} to stagegate"
            );
        }
    }
}

/// `require_receipt` admits only a receipt of a decision of the deployment
/// holding the object's ref, about the admitted artifact. Before, a
/// stateless gate on caller-stated evidence minted a receipt for any
/// digest, and admission took it. Now such a gate gets none (its answer
/// says why), and what admits the object is the governing deployment's own
/// gate decision: its receipt is derived from its log entry, so a
/// deployment made while receipts were off has one once they are on.
#[test]
fn require_receipt_admits_only_a_receipt_of_the_governing_deployment() {
    let world = World::new(Backend::Sqlite, "").expect("SQLite is always available");
    let config = std::fs::read_to_string(world.d.config()).unwrap();
    std::fs::write(
        world.d.config(),
        format!("{config}\n[receipts]\nenabled = false\n"),
    )
    .unwrap();
    let s = world.start();
    let release = registered_release_with(&s, "2.3.0", json!({"artifact_digest": MODEL}));
    let governing = deploy_with_ref(&s, &release, "serving/credit-scoring");
    s.terminate();
    std::fs::write(
        world.d.config(),
        format!("{config}\n[receipts]\nenabled = true\n[integrations.kubernetes]\nrequire_receipt = true\n"),
    )
    .unwrap();
    let s = world.start();
    // A stateless gate on caller-stated evidence about the same artifact
    // gets an answer, and no receipt.
    let mut gate = support::high_risk_gate();
    gate["release"]["artifact_digest"] = json!(MODEL);
    let r = post(&s, "gw", "/v1/decisions/gate", &gate, &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let answer: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(answer["receipt"]["issued"], json!(false), "{answer:#}");
    // The governing deployment's own decision admits the object.
    let object = workload(
        json!({"stagegate.dev/deployment": governing}),
        json!([model()]),
    );
    let (allowed, message, _) = admit(&s, &review("CREATE", "apps", "Deployment", &object, None));
    assert!(
        allowed,
        "the governing deployment's receipt did not admit: {message}"
    );
    // An object governed by another deployment's ref finds no receipt of
    // its own deployment about this artifact.
    let other = registered_release_with(&s, "2.4.0", json!({"artifact_digest": HEALTHY_MODEL}));
    let other_deployment = deploy_with_ref(&s, &other, "serving/fraud-model");
    let mut object = workload(
        json!({"stagegate.dev/deployment": other_deployment}),
        json!([model()]),
    );
    object["metadata"]["name"] = json!("fraud-model");
    let (allowed, message, _) = admit(&s, &review("CREATE", "apps", "Deployment", &object, None));
    assert!(
        !allowed,
        "another deployment's artifact was admitted: {message}"
    );
}
