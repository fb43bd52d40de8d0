//! Attested evidence and receipts: the cost of verifying one attestation
//! (Ed25519 and ECDSA P-256), of signing one receipt, and a stateless gate
//! decision through the HTTP router (decide, log, and — when receipts are
//! on — sign and store the receipt) with and without receipts, in the same
//! run. `cargo bench -p stagegate --bench attest`.

mod support;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use stagegate::attest::dsse::{Envelope, Signature, pae};
use stagegate::attest::receipt::{InputAttestation, ReceiptFacts};
use stagegate::attest::trust::{EvidenceTrust, TrustedKey};
use stagegate::attest::{PAYLOAD_TYPE, PublicKey, ReceiptSigner, predicates};
use stagegate::config::Config;
use stagegate::decision::request::Attestation;
use stagegate::decision::{PolicyRef, Timestamp};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HEX: &str = "5f2b0c7e9a1d4e8b3c6f0a2d9e7b1c4a8f3e6d0b2a5c9e1f4d7b0a3c6e9f2d5b";

fn statement() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model", "digest": {"sha256": HEX}}],
        "predicateType": predicates::EVALUATION,
        "predicate": {"metric": "accuracy", "value": 0.93, "threshold": 0.9,
            "comparison": ">=", "dataset": "holdout", "samples": 5000}
    }))
    .unwrap()
}

/// One attestation as a release brings it: signature, statement, subject,
/// predicate mapping.
fn verify_one(trust: &EvidenceTrust, env: &Envelope) {
    let v = trust.verify(env).unwrap();
    v.statement.require_subject(HEX).unwrap();
    let by = Attestation {
        keyid: v.keyid.clone(),
        predicate_type: v.statement.predicate_type.clone(),
        statement_digest: v.statement_digest.clone(),
    };
    std::hint::black_box(predicates::map(&v.statement, &by).unwrap());
}

fn attestations(c: &mut Criterion) {
    let payload = statement();
    let ed = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let ed_env = Envelope::sign_ed25519(PAYLOAD_TYPE, &payload, "ed", &ed);
    let p256 = p256::ecdsa::SigningKey::from_slice(&[6; 32]).unwrap();
    let sig: p256::ecdsa::Signature =
        p256::ecdsa::signature::Signer::sign(&p256, &pae(PAYLOAD_TYPE, &payload));
    let p256_env = Envelope {
        payload: STANDARD.encode(&payload),
        payload_type: PAYLOAD_TYPE.into(),
        signatures: vec![Signature {
            keyid: "p256".into(),
            sig: STANDARD.encode(sig.to_der().as_bytes()),
        }],
    };
    let trust = EvidenceTrust {
        keys: vec![
            TrustedKey {
                keyid: "ed".into(),
                key: PublicKey::Ed25519(ed.verifying_key()),
                predicates: vec![predicates::EVALUATION.into()],
            },
            TrustedKey {
                keyid: "p256".into(),
                key: PublicKey::P256(*p256.verifying_key()),
                predicates: vec![predicates::EVALUATION.into()],
            },
        ],
        require_known_predicates: true,
        ..Default::default()
    };
    let mut g = c.benchmark_group("attestation");
    g.bench_function("verify-ed25519", |b| b.iter(|| verify_one(&trust, &ed_env)));
    g.bench_function("verify-p256", |b| b.iter(|| verify_one(&trust, &p256_env)));
    let signer = ReceiptSigner::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]), "bench");
    let policy = PolicyRef {
        bundle: "iso42001-reference".into(),
        version: "1.0.0".into(),
        digest: format!("sha256:{HEX}"),
        members: Vec::new(),
    };
    let inputs: Vec<InputAttestation> = (0..3)
        .map(|i| InputAttestation {
            uri: format!("urn:stagegate:release:s@1:attestation:{i}"),
            digest: format!("sha256:{HEX}"),
        })
        .collect();
    g.bench_function("sign-receipt", |b| {
        b.iter(|| {
            signer.sign(&ReceiptFacts {
                decision_id: "01JBENCH",
                decision: "gate",
                outcome: "allow",
                artifact_sha256: HEX,
                subject_name: "s@1.0.0",
                resource_uri: "registry.example/s@sha256:0000",
                deployment_id: Some("01JBENCHDEPLOYMENT"),
                policy: &policy,
                inputs: &inputs,
                at: Timestamp::now(),
                stage: Some("pilot"),
            })
        })
    });
    g.finish();
}

/// The service as `stagegate serve` builds it, in-process, receipts on or
/// off; its router.
fn service(rt: &tokio::runtime::Runtime, name: &str, receipts: bool) -> axum::Router {
    let dir = std::env::temp_dir().join(format!(
        "stagegate-attest-bench-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let mut config = Config::embedded();
    config.data_dir = dir.clone();
    config.trust.dir = dir.join("keys");
    config.bundles[0].build = Some(support::root().join("policies/iso42001"));
    config.bundles[0].sign_with = Some(dir.join("keys/dev"));
    config.scheduler.enabled = false;
    config.webhooks.enabled = false;
    config.records.checkpoint_interval_ms = 0;
    config.receipts.enabled = receipts;
    let app = rt.block_on(stagegate::server::prepare(&config)).unwrap();
    stagegate::server::router(app)
}

fn gate(c: &mut Criterion) {
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    let body = support::gate(false);
    let mut g = c.benchmark_group("gate-http");
    for (name, receipts) in [("without-receipts", false), ("with-receipts", true)] {
        let router = service(&rt, name, receipts);
        let call = || {
            let router = router.clone();
            let body = body.clone();
            rt.block_on(async move {
                use tower::ServiceExt;
                let req = axum::http::Request::post("/v1/decisions/gate")
                    .header("content-type", "application/json")
                    .header("host", "127.0.0.1")
                    .body(axum::body::Body::from(body))
                    .unwrap();
                router.oneshot(req).await.unwrap()
            })
        };
        // The benchmark only means something if the gate allows.
        let res = call();
        let status = res.status();
        let bytes = rt
            .block_on(axum::body::to_bytes(res.into_body(), 1 << 20))
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert!(status == 200 && v["outcome"] == "allow", "{status}: {v}");
        g.bench_function(name, |b| b.iter(call));
    }
    g.finish();
}

criterion_group!(benches, attestations, gate);
criterion_main!(benches);
