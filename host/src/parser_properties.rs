//! Properties of the parsers added since the last hardening: whatever
//! bytes arrive, each answers with a value or an error, never a panic; and
//! where the input is JSON with one field made wrong, the error names
//! where (a JSON path or the field).
//!
//! Covered: Kubernetes AdmissionReview envelopes and the workload rules
//! (Argo Rollout steps, the stagegate analysis weight), the Argo Rollouts
//! weight and the Flagger webhook payload, DSSE envelopes and in-toto
//! statements, OCI image manifests (and indexes given in their place),
//! GitHub `deployment_protection_rule` bodies.

use proptest::prelude::*;
use serde_json::{Value, json};

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer into `v` (the root excluded).
fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(c, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(c, &p, out);
            }
        }
        _ => {}
    }
}

/// `doc` with the value at its `pick`-th pointer replaced by `with`.
fn mutated(doc: &Value, pick: usize, with: Value) -> (Value, String) {
    let mut all = Vec::new();
    pointers(doc, "", &mut all);
    let at = all[pick % all.len()].clone();
    let mut out = doc.clone();
    if let Some(slot) = out.pointer_mut(&at) {
        *slot = with;
    }
    (out, at)
}

fn admission_review() -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "argoproj.io", "version": "v1alpha1", "kind": "Rollout"},
            "resource": {"group": "argoproj.io", "version": "v1alpha1", "resource": "rollouts"},
            "name": "credit-scoring",
            "namespace": "models",
            "operation": "UPDATE",
            "userInfo": {"username": "system:serviceaccount:argo:argo-rollouts"},
            "dryRun": false,
            "object": rollout(),
            "oldObject": rollout()
        }
    })
}

fn rollout() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "credit-scoring", "namespace": "models",
                     "annotations": {"stagegate.dev/system": "credit-scoring"}},
        "spec": {
            "template": {"spec": {"containers": [{"name": "m", "image": "registry.example/m@sha256:00"}]}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 5},
                {"analysis": {"templates": [{"templateName": "stagegate"}],
                              "args": [{"name": "weight", "value": "5"}]}},
                {"pause": {"duration": "1h"}},
                {"setWeight": 100}
            ]}}
        }
    })
}

fn github_payload() -> Value {
    json!({
        "action": "requested",
        "environment": "production",
        "event": "push",
        "sha": "4c3f2a1b0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b",
        "ref": "refs/heads/main",
        "deployment_callback_url": "https://api.github.com/repos/acme/m/actions/runs/1/deployment_protection_rule",
        "deployment": {"id": 1, "sha": "4c3f2a1b0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b", "ref": "main"},
        "repository": {"id": 9, "full_name": "acme/credit-scoring"},
        "installation": {"id": 77}
    })
}

fn dsse_envelope() -> Value {
    json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==",
        "signatures": [{"keyid": "ci", "sig": "AAAA"}]
    })
}

fn statement() -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model", "digest": {"sha256": "00".repeat(32)}}],
        "predicateType": "https://stagegate.dev/attestation/evaluation/v1",
        "predicate": {"name": "holdout-auc", "metric": 0.91, "threshold": 0.88}
    })
}

fn oci_manifest() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.stagegate.bundle.v1",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": format!("sha256:{}", "44".repeat(32)), "size": 2},
        "layers": [{"mediaType": "application/vnd.stagegate.bundle.v1.tar+gzip",
                    "digest": format!("sha256:{}", "ab".repeat(32)), "size": 10}]
    })
}

fn oci_index() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{}", "cd".repeat(32)), "size": 400,
                       "platform": {"architecture": "amd64", "os": "linux"}}]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn admission_reviews_never_panic_and_refusals_name_a_place(
        pick in any::<usize>(), with in any_json()
    ) {
        let (review, at) = mutated(&admission_review(), pick, with);
        if let Err(e) = crate::integrations::kubernetes::review::envelope(&review) {
            prop_assert!(!e.message.is_empty());
            // The envelope's own fields are named; a change elsewhere in
            // the review cannot be what was refused.
            prop_assert!(
                !e.path.is_empty() || at.starts_with("/request") || e.message.contains("object"),
                "no path for a change at {}: {}", at, e.message
            );
        }
    }

    #[test]
    fn arbitrary_values_as_admission_reviews_never_panic(review in any_json()) {
        let _ = crate::integrations::kubernetes::review::envelope(&review);
    }

    #[test]
    fn workload_rules_never_panic_on_any_rollout_spec(
        pick in any::<usize>(), with in any_json(), allowed in 0.0f64..=100.0
    ) {
        let (object, _) = mutated(&rollout(), pick, with);
        let spec = object.get("spec").cloned().unwrap_or(Value::Null);
        let own = crate::integrations::kubernetes::analysis::Own {
            deployment_id: "d",
            reference: "credit/credit-scoring",
            annotation: None,
        };
        let findings = crate::integrations::kubernetes::traffic::rollout(&spec, allowed, "pilot", &own);
        for f in findings {
            prop_assert!(!f.code.is_empty() && !f.message.is_empty());
        }
        let _ = crate::integrations::kubernetes::analysis::step(
            object.pointer("/spec/strategy/canary/steps/1/analysis"),
            "spec.strategy.canary.steps[1].analysis",
            &own,
        );
    }

    #[test]
    fn argo_weights_are_numbers_from_0_to_100_or_a_named_error(text in ".{0,16}") {
        match crate::integrations::argo::parse_weight(&text) {
            Ok(w) => prop_assert!((0.0..=100.0).contains(&w)),
            Err(e) => prop_assert!(e.to_string().contains("weight")),
        }
    }

    #[test]
    fn flagger_payloads_decode_or_name_the_field(pick in any::<usize>(), with in any_json()) {
        let doc = json!({"name": "podinfo", "namespace": "test", "phase": "Progressing",
                         "checksum": "85d557f47b", "metadata": {"token": "t", "deployment": "d-1"}});
        let (payload, at) = mutated(&doc, pick, with);
        let bytes = serde_json::to_vec(&payload).unwrap();
        match crate::decision::decode::decode_as::<crate::integrations::flagger::Payload>(&bytes) {
            Ok(p) => { let _ = p.selector(); }
            Err(e) => prop_assert!(
                !e.path.is_empty() && (at.starts_with(&e.path) || e.path.starts_with(&at)),
                "a change at {} refused at '{}': {}", at, e.path, e.message
            ),
        }
    }

    #[test]
    fn dsse_envelopes_parse_or_say_where(pick in any::<usize>(), with in any_json()) {
        let (env, at) = mutated(&dsse_envelope(), pick, with);
        if let Err(e) = crate::attest::Envelope::parse(&env.to_string()) {
            let text = e.to_string();
            prop_assert!(text.starts_with("not a DSSE envelope: "));
            let first = at.split('/').nth(1).unwrap_or_default();
            prop_assert!(
                text.contains(first) || text.contains("signatures"),
                "a change at {} refused without naming it: {}", at, text
            );
        }
    }

    #[test]
    fn any_bytes_as_dsse_or_statement_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = crate::attest::Envelope::parse(&String::from_utf8_lossy(&bytes));
        let _ = crate::attest::statement::Statement::parse(&bytes);
    }

    #[test]
    fn in_toto_statements_parse_or_say_where(pick in any::<usize>(), with in any_json()) {
        let (st, at) = mutated(&statement(), pick, with);
        if let Err(e) = crate::attest::statement::Statement::parse(st.to_string().as_bytes()) {
            let text = e.to_string();
            let first = at.split('/').nth(1).unwrap_or_default();
            prop_assert!(
                text.contains(first),
                "a change at {} refused without naming it: {}", at, text
            );
        }
    }

    #[test]
    fn oci_manifests_and_indexes_give_a_layer_or_a_reason(
        pick in any::<usize>(), with in any_json(), index in any::<bool>()
    ) {
        let base = if index { oci_index() } else { oci_manifest() };
        let (doc, _) = mutated(&base, pick, with);
        match crate::distribution::oci::bundle_layer(&serde_json::to_vec(&doc).unwrap()) {
            Ok(layer) => {
                prop_assert!(!index, "an index was taken for a bundle manifest");
                prop_assert!(layer.digest.starts_with("sha256:") && layer.digest.len() == 71);
            }
            Err(why) => prop_assert!(!why.to_string().is_empty()),
        }
    }

    #[test]
    fn github_webhook_bodies_decode_or_name_the_path(pick in any::<usize>(), with in any_json()) {
        let (body, at) = mutated(&github_payload(), pick, with);
        if let Err(e) = crate::integrations::github::parse_payload(
            &serde_json::to_vec(&body).unwrap(),
        ) {
            let e = crate::server::routes::integrations::github::payload_error(e);
            prop_assert_eq!(e.status.as_u16(), 400);
            prop_assert!(
                !e.path.is_empty() && (at.starts_with(&e.path) || e.path.starts_with(&at)),
                "a change at {} refused at '{}': {}", at, e.path, e.message
            );
        }
    }

    #[test]
    fn any_bytes_as_github_or_oci_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = crate::integrations::github::parse_payload(&bytes);
        let _ = crate::distribution::oci::bundle_layer(&bytes);
    }
}
