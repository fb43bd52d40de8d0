//! Attested evidence in and signed decision receipts out, tested against
//! implementations stagegate did not write: attestations are made by
//! securesystemslib's Ed25519 and ECDSA P-256 signers
//! (`tests/interop/attestations.py`), receipts are checked by
//! securesystemslib's DSSE verification and read by in-toto.
//!
//! Without python3, securesystemslib or in-toto these tests are skipped
//! and listed ([`support::require_tool`]), except under `CI`, where that is
//! a failure.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::records::{Backend, EVIDENCE_KEYID, World, get, plan, post, release_body};

support::on_both_backends!(
    attestations_signed_by_securesystemslib_become_the_releases_verified_evidence,
    every_bad_attestation_is_refused_naming_it_and_nothing_is_stored,
);

const TEST_RESULT: &str = "https://in-toto.io/attestation/test-result/v0.1";
const EVALUATION: &str = "https://stagegate.dev/attestation/evaluation/v1";
const PROVENANCE: &str = "https://slsa.dev/provenance/v1";
const CUSTOM: &str = "https://example.com/custom/v1";

fn digest() -> String {
    format!("sha256:{}", "5f2b0c7e".repeat(8))
}

fn script() -> PathBuf {
    support::root().join("tests/interop/attestations.py")
}

/// Runs the interop script; `None` (the test skipped, through
/// [`support::require_tool`]) when in-toto or securesystemslib is missing.
fn python(args: &[&str]) -> Option<std::process::Output> {
    if !support::require_tool("in-toto") {
        return None;
    }
    let out = Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .expect("running python3, which require_tool just ran");
    assert_ne!(
        out.status.code(),
        Some(3),
        "the interop script is missing a package: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out)
}

/// Attestations and keys made by securesystemslib.
struct Fixtures {
    dir: tempfile::TempDir,
    ed25519_keyid: String,
    p256_keyid: String,
}

impl Fixtures {
    fn make() -> Option<Fixtures> {
        let dir = tempfile::tempdir().unwrap();
        let out = python(&["make", &dir.path().display().to_string(), &digest()])?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let keys: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("keys.json")).unwrap())
                .unwrap();
        Some(Fixtures {
            ed25519_keyid: keys["ed25519"].as_str().unwrap().into(),
            p256_keyid: keys["p256"].as_str().unwrap().into(),
            dir,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn envelope(&self, name: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.path(name)).unwrap()).unwrap()
    }

    /// The evidence trust store: the Ed25519 key (named by
    /// securesystemslib's key id) attests test results and a custom
    /// predicate; the P-256 key (default key id) evaluations and
    /// provenance.
    fn config(&self, require_known: bool) -> String {
        format!(
            "\n[evidence]\nrequire_known_predicates = {require_known}\n\
             [[evidence.keys]]\nfile = \"{}\"\nkeyid = \"{}\"\npredicates = [\"{TEST_RESULT}\", \"{CUSTOM}\"]\n\
             [[evidence.keys]]\nfile = \"{}\"\npredicates = [\"{EVALUATION}\", \"{PROVENANCE}\"]\n",
            self.path("ed25519.pem").display(),
            self.ed25519_keyid,
            self.path("p256.pem").display(),
        )
    }
}

fn release_with(version: &str, attestations: Vec<Value>) -> Value {
    let mut body = release_body(version);
    body["artifact_digest"] = json!(digest());
    // What the attestations bring is the release's whole verification:
    // the high tier accepts no asserted result beside them.
    body["verification"]["results"] = json!([]);
    body["attestations"] = json!(attestations);
    body
}

fn register_system(s: &support::server::Server) {
    let r = post(
        s,
        "ops",
        "/v1/systems",
        &json!({"id": "credit-scoring", "risk_tier": "high", "consequential": true,
        "escalation_contact": "risk-desk on-call"}),
        &[],
    );
    assert!(r.status == 201 || r.status == 409, "{}", r.body);
}

/// Review, authorisation and the acceptance of D-7, as the gate needs.
fn approve(s: &support::server::Server, id: &str) {
    for (who, path, body) in [
        ("a.lee", "reviews", json!({"outcome": "approved"})),
        ("j.doe", "authorisations", json!({})),
        (
            "j.doe",
            "acceptances",
            json!({"deficiency_id": "D-7", "rationale": "within tolerance, monitored"}),
        ),
    ] {
        let r = post(s, who, &format!("/v1/releases/{id}/{path}"), &body, &[]);
        assert_eq!(r.status, 201, "{path}: {}", r.body);
    }
}

/// The value at a JSON pointer of the release.
fn at<'a>(release: &'a Value, pointer: &str) -> &'a Value {
    release["release"].pointer(pointer).unwrap_or(&Value::Null)
}

/// Checks a receipt with securesystemslib and in-toto; returns its
/// statement.
fn python_verifies_receipt(dir: &Path, receipt: &str, key: &Value) -> Value {
    let receipt_file = dir.join("receipt.json");
    let pem_file = dir.join("receipt.pem");
    std::fs::write(&receipt_file, receipt).unwrap();
    std::fs::write(&pem_file, key["public_key_pem"].as_str().unwrap()).unwrap();
    let out = python(&[
        "verify-receipt",
        &receipt_file.display().to_string(),
        &pem_file.display().to_string(),
        key["keyid"].as_str().unwrap(),
        &digest(),
    ])
    .expect("python was there a moment ago");
    assert!(
        out.status.success(),
        "securesystemslib/in-toto refused the receipt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn attestations_signed_by_securesystemslib_become_the_releases_verified_evidence(b: Backend) {
    let Some(f) = Fixtures::make() else { return };
    let Some(w) = World::new(b, &f.config(true)) else {
        return;
    };
    let s = w.start();
    register_system(&s);
    let sent = vec![
        f.envelope("test-result.json"),
        f.envelope("evaluation.json"),
        f.envelope("provenance.json"),
    ];
    let r = post(
        &s,
        "ops",
        "/v1/systems/credit-scoring/releases",
        &release_with("2.3.0", sent.clone()),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = "credit-scoring@2.3.0";
    let shown = get(&s, "audit", &format!("/v1/releases/{id}")).json();
    for release in [r.json(), shown] {
        let a = release["attestations"].as_array().unwrap();
        assert_eq!(a.len(), 3, "{release:#}");
        // Ed25519 test result → a passed verification result, by its key.
        assert_eq!(a[0]["keyid"], f.ed25519_keyid.as_str());
        assert_eq!(a[0]["predicate_type"], TEST_RESULT);
        let result = at(&release, a[0]["evidence"][0].as_str().unwrap());
        assert_eq!(result["name"], "fairness-suite");
        assert_eq!(result["passed"], true);
        // The result itself says who attested it: this reaches the policy.
        assert_eq!(
            result["attestation"],
            json!({"keyid": f.ed25519_keyid, "predicate_type": TEST_RESULT,
                   "statement_digest": a[0]["statement_digest"]})
        );
        // P-256 evaluation → a result with its metric and threshold.
        assert_eq!(a[1]["keyid"], f.p256_keyid.as_str());
        assert_eq!(a[1]["predicate_type"], EVALUATION);
        let result = at(&release, a[1]["evidence"][0].as_str().unwrap());
        assert_eq!(result["name"], "accuracy");
        assert_eq!(
            (&result["metric"], &result["threshold"]),
            (&json!(0.93), &json!(0.9))
        );
        assert_eq!(result["passed"], true);
        // P-256 provenance → the supply chain, with builder and source.
        assert_eq!(a[2]["predicate_type"], PROVENANCE);
        assert_eq!(a[2]["evidence"][0], "/supply_chain");
        assert_eq!(at(&release, "/supply_chain/controls_confirmed"), true);
        assert_eq!(
            at(&release, "/supply_chain/attestation/predicate_type"),
            PROVENANCE
        );
        assert_eq!(
            at(&release, "/supply_chain/attestation/keyid"),
            f.p256_keyid.as_str()
        );
        assert_eq!(
            a[2]["provenance"]["builder_id"],
            "https://ci.example/builders/gpu-trainer"
        );
        assert_eq!(
            a[2]["provenance"]["source"],
            "git+https://git.example/credit@refs/tags/v2"
        );
    }

    // The gate allows; its receipt verifies with securesystemslib.
    approve(&s, id);
    let r = post(
        &s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": id, "plan": plan()}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    let deployment = created["deployment"]["id"].as_str().unwrap().to_string();
    let decision = created["decision"]["decision_id"].as_str().unwrap();
    let receipt = get(&s, "gw", &format!("/v1/decisions/{decision}/receipt"));
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let keys = get(&s, "audit", "/v1/receipts/keys").json();
    let key = &keys["keys"][0];
    let statement = python_verifies_receipt(f.dir.path(), &receipt.body, key);
    let p = &statement["predicate"];
    assert_eq!(p["verificationResult"], "PASSED");
    assert_eq!(p["decision"]["id"], decision);
    assert_eq!(p["policy"]["name"], "iso42001-reference");
    let inputs = p["inputAttestations"].as_array().unwrap();
    assert_eq!(inputs.len(), 3, "{p:#}");
    // Each input is the SHA-256 of an attestation exactly as sent.
    let export = get(&s, "audit", &format!("/v1/deployments/{deployment}/record")).json();
    for (i, stored) in export["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(stored["envelope"], sent[i], "attestation {i} kept verbatim");
        assert_eq!(
            inputs[i]["digest"]["sha256"],
            stored["envelope_digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
        );
    }
    assert_eq!(export["receipts"][0]["decision_id"], decision);

    // The command line verifies the receipt offline, for this artifact only.
    let trust = f.path("receipt-keys");
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::write(
        trust.join("stagegate.pub"),
        key["public_key_pem"].as_str().unwrap(),
    )
    .unwrap();
    let file = f.path("receipt.json");
    let verify = |subject: &str| {
        let out = support::run(
            f.dir.path(),
            &[
                "receipt",
                "verify",
                &file.display().to_string(),
                "--trust",
                &trust.display().to_string(),
                "--subject",
                subject,
            ],
            None,
        );
        let (o, e) = support::text(&out);
        (out.status.code(), format!("{o}{e}"))
    };
    let (code, text) = verify(&digest());
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(decision), "{text}");
    let (code, text) = verify(&format!("sha256:{}", "0".repeat(64)));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no subject has sha256 digest"), "{text}");

    // A promotion gets its own receipt.
    let v = support::records::observe(&s, &deployment, 0.01, 20_000).json();
    assert_eq!(v["decision"]["outcome"], "healthy", "{v:#}");
    let monitoring = v["decision"]["decision_id"].as_str().unwrap().to_string();
    let r = post(
        &s,
        "a.lee",
        &format!("/v1/deployments/{deployment}/reviews"),
        &json!({"outcome": "approved", "target_stage": "regional"}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = post(
        &s,
        "j.doe",
        &format!("/v1/deployments/{deployment}/progressions"),
        &json!({"target_stage": "regional", "authorisation": {"scope": ["regional"]}}),
        &[],
    )
    .json();
    assert_eq!(v["decision"]["outcome"], "promote", "{v:#}");
    let promoted = v["decision"]["decision_id"].as_str().unwrap();
    let receipt = get(&s, "gw", &format!("/v1/decisions/{promoted}/receipt"));
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let statement = python_verifies_receipt(f.dir.path(), &receipt.body, key);
    assert_eq!(statement["predicate"]["decision"]["outcome"], "promote");
    assert_eq!(statement["predicate"]["decision"]["stage"], "regional");
    // A decision that is neither allow nor promote has no receipt.
    assert_eq!(
        get(&s, "gw", &format!("/v1/decisions/{monitoring}/receipt")).status,
        404
    );

    // The same receipt every time, and no receipt row: receipts are derived
    // from the decision log.
    let again = get(&s, "gw", &format!("/v1/decisions/{promoted}/receipt"));
    assert_eq!(again.body, receipt.body);
    assert_eq!(w.sql("DELETE FROM receipts"), 0, "no receipt row written");
    // Attestation rows are in the chain like every record.
    let (code, out) = w.audit_verify();
    assert_eq!(code, 0, "{out}");
    w.sql("UPDATE attestations SET keyid = 'someone-else'");
    let (code, out) = w.audit_verify();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("attestations"), "{out}");
}

fn every_bad_attestation_is_refused_naming_it_and_nothing_is_stored(b: Backend) {
    let Some(f) = Fixtures::make() else { return };
    let Some(w) = World::new(b, &f.config(true)) else {
        return;
    };
    let s = w.start();
    register_system(&s);
    let good = f.envelope("test-result.json");
    for (file, reason) in [
        ("tampered.json", "does not verify"),
        ("wrong-subject.json", "no subject has sha256 digest"),
        ("untrusted.json", "signed by no trusted key"),
        (
            "not-allowed.json",
            "is not allowed to attest predicate type",
        ),
        ("unknown-predicate.json", "unknown predicate type"),
    ] {
        // The bad one second: its index is named, and the good one before
        // it is not stored either.
        let r = post(
            &s,
            "ops",
            "/v1/systems/credit-scoring/releases",
            &release_with("2.3.0", vec![good.clone(), f.envelope(file)]),
            &[],
        );
        assert_eq!(r.status, 422, "{file}: {}", r.body);
        let e = &r.json()["error"];
        assert_eq!(e["path"], "/attestations/1", "{file}: {e}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.starts_with("attestations[1]: "),
            "{file}: {message}"
        );
        assert!(message.contains(reason), "{file}: {message}");
        assert_eq!(
            get(&s, "audit", "/v1/releases/credit-scoring@2.3.0").status,
            404,
            "{file}: nothing stored"
        );
    }
    // Attestations without the artifact they are about are refused too.
    let mut body = release_with("2.3.0", vec![good.clone()]);
    body.as_object_mut().unwrap().remove("artifact_digest");
    let r = post(&s, "ops", "/v1/systems/credit-scoring/releases", &body, &[]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"]["path"], "/artifact_digest");
    assert_eq!(
        w.sql("DELETE FROM attestations"),
        0,
        "no attestation stored"
    );
}

#[test]
fn an_unknown_predicate_is_kept_unused_when_known_ones_are_not_required() {
    let Some(f) = Fixtures::make() else { return };
    let Some(w) = World::new(Backend::Sqlite, &f.config(false)) else {
        return;
    };
    let s = w.start();
    register_system(&s);
    let r = post(
        &s,
        "ops",
        "/v1/systems/credit-scoring/releases",
        &release_with("2.3.0", vec![f.envelope("unknown-predicate.json")]),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let a = &r.json()["attestations"][0];
    assert_eq!(a["predicate_type"], CUSTOM);
    assert_eq!(a["evidence"], json!([]));
}

/// The statement a receipt's DSSE payload carries.
fn receipt_statement(text: &str) -> Value {
    let env: Value = serde_json::from_str(text).unwrap();
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        env["payload"].as_str().unwrap(),
    )
    .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

#[test]
fn a_stateless_gate_on_caller_stated_evidence_gets_no_receipt_and_its_answer_says_why() {
    let Some(w) = World::new(Backend::Sqlite, "") else {
        return;
    };
    let s = w.start();
    // The example types `attestation` objects on its results: the caller's
    // word, which a policy may weigh but stagegate never signs for.
    let allow = post(
        &s,
        "gw",
        "/v1/decisions/gate",
        &support::high_risk_gate(),
        &[],
    )
    .json();
    assert_eq!(allow["outcome"], "allow", "{allow:#}");
    let id = allow["decision_id"].as_str().unwrap();
    let r = get(&s, "gw", &format!("/v1/decisions/{id}/receipt"));
    assert_eq!(
        r.status, 404,
        "no receipt for caller-stated evidence: {}",
        r.body
    );
    assert_eq!(allow["receipt"]["issued"], false, "{allow:#}");
    let why = allow["receipt"]["reason"].as_str().unwrap_or_default();
    assert!(why.contains("`attestations`"), "{why}");
    // Caller-typed attestations citing any statement mint nothing either.
    let mut typed = support::high_risk_gate();
    typed["verification"]["results"][0]["attestation"] = json!({"keyid": "k1",
        "predicate_type": TEST_RESULT, "statement_digest": format!("sha256:{}", "c".repeat(64))});
    let allow = post(&s, "gw", "/v1/decisions/gate", &typed, &[]).json();
    assert_eq!(allow["outcome"], "allow", "{allow:#}");
    let id = allow["decision_id"].as_str().unwrap();
    assert_eq!(
        get(&s, "gw", &format!("/v1/decisions/{id}/receipt")).status,
        404
    );
    assert_eq!(w.sql("DELETE FROM receipts"), 0, "no receipt row written");
    // A deny says why too.
    let mut denied = support::high_risk_gate();
    denied.as_object_mut().unwrap().remove("authorisation");
    let deny = post(&s, "gw", "/v1/decisions/gate", &denied, &[]).json();
    assert_eq!(deny["outcome"], "deny", "{deny:#}");
    assert_eq!(deny["receipt"]["issued"], false, "{deny:#}");
    assert!(
        deny["receipt"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("allow decisions only"),
        "{deny:#}"
    );
    let id = deny["decision_id"].as_str().unwrap();
    assert_eq!(
        get(&s, "gw", &format!("/v1/decisions/{id}/receipt")).status,
        404
    );
    // The receipt key was created on first start, in a directory the
    // bundle trust store never reads.
    assert!(w.d.path("data/keys/receipts/receipt").exists());
    assert!(w.d.path("data/keys/receipts/receipt.pub").exists());
}

#[test]
fn a_stateless_gate_whose_envelopes_verify_gets_a_receipt_citing_them_the_same_bytes_every_time() {
    let Some(w) = World::new(Backend::Sqlite, "") else {
        return;
    };
    let s = w.start();
    let mut gate = support::records::attested_gate();
    let digest = gate["release"]["artifact_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let image = format!("registry.example/credit-scoring@{digest}");
    gate["release"]["artifact_uri"] = json!(image);
    let allow = post(&s, "gw", "/v1/decisions/gate", &gate, &[]).json();
    assert_eq!(allow["outcome"], "allow", "{allow:#}");
    let id = allow["decision_id"].as_str().unwrap();
    assert_eq!(allow["receipt"]["issued"], true, "{allow:#}");
    assert_eq!(
        allow["receipt"]["href"],
        format!("/v1/decisions/{id}/receipt")
    );
    let first = get(&s, "gw", &format!("/v1/decisions/{id}/receipt"));
    assert_eq!(first.status, 200, "{}", first.body);
    let again = get(&s, "gw", &format!("/v1/decisions/{id}/receipt"));
    assert_eq!(first.body, again.body, "the same bytes every time");
    let statement = receipt_statement(&first.body);
    let p = &statement["predicate"];
    assert_eq!(p["verificationResult"], "PASSED");
    assert_eq!(p["resourceUri"], image, "the artifact's own URI");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    assert_eq!(
        p["policy"]["uri"],
        "urn:stagegate:bundle:iso42001-reference:1.0.0"
    );
    assert_eq!(p["decision"]["uri"], format!("urn:stagegate:decision:{id}"));
    // Each input is the envelope as sent: its URI and its SHA-256.
    let expected: Vec<Value> = gate["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let text = serde_json::to_string(e).unwrap();
            let hex = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
            json!({"uri": format!("urn:stagegate:decision:{id}:attestation:{i}"),
                "digest": {"sha256": hex}})
        })
        .collect();
    assert_eq!(expected.len(), 3);
    assert_eq!(p["inputAttestations"], json!(expected));
    // Nothing but the decision's log entry was written for it.
    assert_eq!(w.sql("DELETE FROM receipts"), 0, "no receipt row written");
    // A restarted service signs the same bytes.
    drop(s);
    let s = w.start();
    let after = get(&s, "gw", &format!("/v1/decisions/{id}/receipt"));
    assert_eq!(after.body, first.body, "the same bytes after a restart");
    // And it verifies offline, for this artifact.
    let keys = get(&s, "audit", "/v1/receipts/keys").json();
    let trust = w.d.path("receipt-keys");
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::write(
        trust.join("stagegate.pub"),
        keys["keys"][0]["public_key_pem"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(w.d.path("receipt.json"), &after.body).unwrap();
    let out = support::run(
        &w.d.path("."),
        &[
            "receipt",
            "verify",
            "receipt.json",
            "--trust",
            &trust.display().to_string(),
            "--subject",
            &digest,
        ],
        None,
    );
    let (o, e) = support::text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
}

#[test]
fn a_stateless_gate_with_envelopes_refuses_typed_attestations_and_bad_envelopes_naming_the_path() {
    let Some(w) = World::new(Backend::Sqlite, "") else {
        return;
    };
    let s = w.start();
    // (The envelopes' results are mapped in by the service; the caller
    // adds one typed result claiming to be attested.)
    let mut typed = support::records::attested_gate();
    typed["verification"]["results"] = json!([{"name": "extra", "passed": true,
        "attestation": {"keyid": EVIDENCE_KEYID, "predicate_type": TEST_RESULT,
            "statement_digest": format!("sha256:{}", "c".repeat(64))}}]);
    let r = post(&s, "gw", "/v1/decisions/gate", &typed, &[]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        r.json()["error"]["path"],
        "/verification/results/0/attestation"
    );
    let mut tampered = support::records::attested_gate();
    let payload = tampered["attestations"][1]["payload"]
        .as_str()
        .unwrap()
        .to_string();
    tampered["attestations"][1]["payload"] = json!(payload.replacen('e', "f", 1));
    let r = post(&s, "gw", "/v1/decisions/gate", &tampered, &[]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"]["path"], "/attestations/1", "{}", r.body);
    let mut elsewhere = support::records::attested_gate();
    elsewhere["release"]["artifact_uri"] = json!("s3://attacker/models/x/");
    let r = post(&s, "gw", "/v1/decisions/gate", &elsewhere, &[]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        r.json()["error"]["path"],
        "/release/artifact_uri",
        "{}",
        r.body
    );
}

/// `stagegate attest` signs a statement with a keygen key that the
/// evidence trust store takes (its `--public-key` PEM, default key id),
/// and refuses a subject that is not a sha256 digest, naming the flag.
#[test]
fn stagegate_attest_signs_what_the_trust_store_verifies_and_refuses_a_bad_subject() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&[u8]>| support::run(dir.path(), args, stdin);
    assert_eq!(run(&["keygen", "--out", "k"], None).status.code(), Some(0));
    let pem = run(&["attest", "--key", "k", "--public-key"], None);
    assert_eq!(pem.status.code(), Some(0));
    let pem = String::from_utf8(pem.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let (key, keyid) = stagegate::attest::PublicKey::from_pem(&pem, "k.pem").unwrap();
    let hex = "ab".repeat(32);
    let out = run(
        &[
            "attest", "--key", "k", "--subject", &format!("sha256:{hex}"),
            "--predicate-type", EVALUATION, "--predicate", "-",
        ],
        Some(br#"{"metric":"auc","value":0.9,"threshold":0.8,"comparison":">=","dataset":"d","samples":10}"#),
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", support::text(&out));
    let env = stagegate::attest::Envelope::parse(std::str::from_utf8(&out.stdout).unwrap().trim())
        .unwrap();
    assert_eq!(env.signatures[0].keyid, keyid);
    let sig = stagegate::attest::dsse::decode_base64(&env.signatures[0].sig).unwrap();
    assert!(
        key.verify(&env.pae().unwrap(), &sig),
        "the signature verifies with the printed key"
    );
    let statement: Value = serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
    assert_eq!(statement["subject"][0]["digest"]["sha256"], hex);
    assert_eq!(statement["predicateType"], EVALUATION);

    let bad = run(
        &[
            "attest",
            "--key",
            "k",
            "--subject",
            "md5:abc",
            "--predicate-type",
            EVALUATION,
            "--predicate",
            "-",
        ],
        Some(b"{}"),
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        support::text(&bad).1.contains("--subject"),
        "{:?}",
        support::text(&bad)
    );
}
