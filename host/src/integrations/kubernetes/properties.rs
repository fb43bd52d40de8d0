//! Properties of the admission rules: random mutations of an admitted
//! object — a container added, the model's digest changed, the annotation
//! swapped or removed, a weight raised — are never admitted unless the
//! mutation keeps the object within what was authorised. The oracle
//! below states "within what was authorised" independently of the rules:
//! an added image is pinned to the release's artifact or an allow-listed
//! digest, the model keeps its digest, the annotation names the governing
//! deployment, and no weight exceeds the stage's percent.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::review::Request;
use super::workload::Kind;
use super::{Severity, annotation_removed, annotations_disagree, check_object};
use crate::decision::Timestamp;
use crate::records::DeploymentStatus;
use crate::records::model::Deployment;

const MODEL: &str = "sha256:5f2b0c7e9a1d4e8b3c6f0a2d9e7b1c4a8f3e6d0b2a5c9e1f4d7b0a3c6e9f2d5b";
const SIDECAR: &str = "sha256:5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c";
const OTHER: &str = "sha256:e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7";
const ID: &str = "01JDX3W6Q8ZB5N2V7K4M9T0R1C";
const STAGE_PERCENT: f64 = 5.0;

fn deployment() -> Deployment {
    Deployment {
        id: ID.into(),
        release_id: "credit-scoring@2.3.0".into(),
        system_id: "credit-scoring".into(),
        status: DeploymentStatus::Active,
        stage: "pilot".into(),
        traffic_percent: STAGE_PERCENT,
        stage_entered_at: Timestamp(0),
        deployed_at: Timestamp(0),
        version: 1,
        updated_at: Timestamp(0),
        plan: Default::default(),
        refs: [(
            "kubernetes".to_string(),
            "credit/credit-scoring".to_string(),
        )]
        .into(),
    }
}

/// The admitted object: a Rollout with traffic routing at the stage's 5 %,
/// asking stagegate before its final 100 %, running the model and an
/// allow-listed sidecar, annotated with its deployment.
fn admitted() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "credit-scoring", "namespace": "credit",
            "annotations": {"stagegate.dev/deployment": ID}},
        "spec": {"replicas": 10, "template": {"spec": {"containers": [
                {"name": "model", "image": format!("registry.example/credit-scoring@{MODEL}")},
                {"name": "proxy", "image": format!("registry.example/proxy@{SIDECAR}")}]}},
            "strategy": {"canary": {"trafficRouting": {"nginx": {"stableIngress": "credit-scoring"}},
                "steps": [{"setWeight": 5}, {"pause": {}},
                    {"analysis": {"templates": [{"templateName": "stagegate-step"}],
                        "args": [{"name": "deployment", "value": ID}, {"name": "weight", "value": "100"}]}},
                    {"setWeight": 100}]}}}
    })
}

/// One mutation and whether it stays within what was authorised.
#[derive(Debug, Clone)]
enum Mutation {
    /// A container (in `list`) with an image: pinned to a digest, or a tag.
    AddContainer { list: usize, image: Image },
    /// The model container's digest replaced.
    ModelDigest(Image),
    /// The annotation set to another deployment id (or the same).
    Annotation(Option<String>),
    /// The first `setWeight` raised (or lowered) to this.
    Weight(u8),
}

#[derive(Debug, Clone)]
enum Image {
    Model,
    Sidecar,
    Other,
    Tag,
}

impl Image {
    fn reference(&self) -> String {
        match self {
            Image::Model => format!("r/x@{MODEL}"),
            Image::Sidecar => format!("r/x@{SIDECAR}"),
            Image::Other => format!("r/x@{OTHER}"),
            Image::Tag => "r/x:1.0".into(),
        }
    }
}

fn image() -> impl Strategy<Value = Image> {
    prop_oneof![
        Just(Image::Model),
        Just(Image::Sidecar),
        Just(Image::Other),
        Just(Image::Tag)
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0usize..3, image()).prop_map(|(list, image)| Mutation::AddContainer { list, image }),
        image().prop_map(Mutation::ModelDigest),
        prop_oneof![
            Just(None),
            Just(Some(ID.to_string())),
            "[0-9A-Z]{26}".prop_map(Some),
        ]
        .prop_map(Mutation::Annotation),
        (0u8..=100).prop_map(Mutation::Weight),
    ]
}

/// Applies `m` to `object`.
fn apply(object: &mut Value, m: &Mutation) {
    let pod = object.pointer_mut("/spec/template/spec").unwrap();
    match m {
        Mutation::AddContainer { list, image } => {
            let list = ["containers", "initContainers", "ephemeralContainers"][*list];
            let entry = pod
                .as_object_mut()
                .unwrap()
                .entry(list)
                .or_insert_with(|| json!([]));
            entry
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "added", "image": image.reference()}));
        }
        Mutation::ModelDigest(image) => {
            pod["containers"][0]["image"] = json!(image.reference());
        }
        Mutation::Annotation(id) => {
            let annotations = object.pointer_mut("/metadata/annotations").unwrap();
            match id {
                Some(id) => annotations["stagegate.dev/deployment"] = json!(id),
                None => {
                    annotations
                        .as_object_mut()
                        .unwrap()
                        .remove("stagegate.dev/deployment");
                }
            }
        }
        Mutation::Weight(w) => {
            object["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = json!(w);
        }
    }
}

/// The oracle: whether `object` is within what was authorised, read
/// directly from the mutated object. Every image is the model's or the
/// allow-listed sidecar's (by digest), the model is among them, the
/// annotation names the deployment, and the first weight is within the
/// stage (the later 100 is asked for).
fn within(object: &Value) -> bool {
    let pod = &object["spec"]["template"]["spec"];
    let images: Vec<String> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|l| pod[*l].as_array().cloned().unwrap_or_default())
        .map(|c| c["image"].as_str().unwrap_or_default().to_string())
        .collect();
    let pinned_to = |i: &String, d: &str| i.ends_with(&format!("@{d}"));
    images
        .iter()
        .all(|i| pinned_to(i, MODEL) || pinned_to(i, SIDECAR))
        && images.iter().any(|i| pinned_to(i, MODEL))
        && object["metadata"]["annotations"]["stagegate.dev/deployment"] == ID
        && object["spec"]["strategy"]["canary"]["steps"][0]["setWeight"]
            .as_f64()
            .is_some_and(|w| w <= STAGE_PERCENT)
}

/// Whether the rules admit `object` as an UPDATE of [`admitted`] by the
/// deployment holding its ref: the annotation rules, then the object rules.
fn admits(object: &Value) -> bool {
    let old = admitted();
    let request = Request {
        uid: "u",
        operation: "UPDATE",
        group: "argoproj.io",
        kind: "Rollout",
        namespace: "credit",
        name: "credit-scoring",
        object: Some(object),
        old_object: Some(&old),
        dry_run: false,
    };
    let by_id = super::workload::annotation(object, super::DEPLOYMENT_ANNOTATION).unwrap();
    let d = deployment();
    if annotation_removed(&request, by_id, None).is_some()
        || annotations_disagree(&d, by_id, None, "credit/credit-scoring").is_some()
    {
        return false;
    }
    let findings = check_object(
        Kind::Rollout,
        &request,
        object,
        &d,
        Some(MODEL),
        &[SIDECAR],
        by_id,
    );
    !findings.iter().any(|f| f.severity == Severity::Deny)
}

#[test]
fn the_unmutated_object_is_admitted() {
    assert!(admits(&admitted()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutations_are_admitted_only_within_what_was_authorised(
        mutations in prop::collection::vec(mutation(), 1..4)
    ) {
        let mut object = admitted();
        for m in &mutations {
            apply(&mut object, m);
        }
        prop_assert_eq!(admits(&object), within(&object), "{:?}", mutations);
    }
}
