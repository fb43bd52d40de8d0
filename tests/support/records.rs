//! Records tests run on SQLite and on PostgreSQL.
//!
//! PostgreSQL comes from `STAGEGATE_TEST_POSTGRES` (a server URL such as
//! `postgres://postgres:postgres@127.0.0.1:5432`); each test gets a fresh
//! database on it. Without the variable the PostgreSQL variants are skipped
//! and listed, and fail under `CI` ([`super::require_tool`]).

use super::server::{Deployment, Server};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A deployment directory whose config uses `backend`, with tokens for the
/// roles of a governance workflow. Returns None when PostgreSQL is not
/// available and not required.
pub struct World {
    pub d: Deployment,
    pub database: String,
}

pub const TOKENS: [(&str, &str, &str); 6] = [
    ("ops", "operator", ""),
    ("a.lee", "approver", "Model Risk Reviewer"),
    ("j.doe", "approver", "Head of AI Risk"),
    ("audit", "auditor", ""),
    ("gw", "gateway", ""),
    ("pub", "publisher", ""),
];

/// The token of a named holder: its name plus a fixed suffix.
pub fn token(name: &str) -> String {
    format!("tok-{name}-0123456789abcdef")
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// Runs `f` to completion on a runtime of its own (the tests are sync).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A fresh PostgreSQL database URL, or None (the test skipped, through
/// [`super::require_tool`]) when no server is configured.
pub fn postgres_database() -> Option<String> {
    if !super::require_tool("postgresql") {
        return None;
    }
    let server = super::tools::postgres_server()?;
    let name = format!("sg_test_{}", ulid::Ulid::new().to_string().to_lowercase());
    block_on(async {
        sqlx::any::install_default_drivers();
        let mut conn =
            <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("{server}/postgres"))
                .await
                .expect("connecting to the PostgreSQL test server");
        sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("creating a test database");
    });
    Some(format!("{server}/{name}"))
}

impl World {
    pub fn new(backend: Backend, extra: &str) -> Option<World> {
        let database = match backend {
            Backend::Sqlite => String::new(),
            Backend::Postgres => postgres_database()?,
        };
        let tokens: String = TOKENS
            .iter()
            .map(|(name, role, title)| {
                let title = if title.is_empty() {
                    String::new()
                } else {
                    format!("title = \"{title}\"\n")
                };
                format!(
                    "[[tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nroles = [\"{role}\"]\n{title}",
                    sha256_hex(&token(name))
                )
            })
            .collect();
        let records = if database.is_empty() {
            String::new()
        } else {
            format!("database = \"{database}\"\n")
        };
        let d = Deployment::new(&format!(
            "[records]\n{records}{extra}\n[[bundles]]\nname = \"iso42001-reference\"\nfile = \"ref.bundle\"\ndefault = true\n{tokens}"
        ));
        std::fs::write(d.path("ref.bundle"), d.reference("1.0.0")).unwrap();
        let trust = evidence_trust(&d.path("evidence-test.pem"));
        let config = std::fs::read_to_string(d.config()).unwrap();
        std::fs::write(d.config(), format!("{config}\n{trust}")).unwrap();
        let database = if database.is_empty() {
            format!("sqlite://{}", d.path("data/stagegate.db").display())
        } else {
            database
        };
        Some(World { d, database })
    }

    pub fn start(&self) -> Server {
        self.d.start()
    }

    /// Runs SQL directly against the records database (to play the part of
    /// someone editing it by hand).
    pub fn sql(&self, statement: &str) -> u64 {
        let url = self.database.clone();
        let statement = statement.to_string();
        block_on(async move {
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::Executor::execute(&mut conn, statement.as_str())
                .await
                .unwrap()
                .rows_affected()
        })
    }

    /// One integer the database answers (`SELECT …`).
    pub fn query_i64(&self, sql: &str) -> i64 {
        let (url, sql) = (self.database.clone(), sql.to_string());
        block_on(async move {
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            let row = sqlx::query(&sql).fetch_one(&mut conn).await.unwrap();
            sqlx::Row::try_get::<i64, _>(&row, 0).unwrap()
        })
    }

    /// The rows of one text column the database answers.
    pub fn query_strings(&self, sql: &str) -> Vec<String> {
        let (url, sql) = (self.database.clone(), sql.to_string());
        block_on(async move {
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            let rows = sqlx::query(&sql).fetch_all(&mut conn).await.unwrap();
            rows.iter()
                .map(|r| sqlx::Row::try_get(r, 0).unwrap())
                .collect()
        })
    }

    /// `stagegate audit verify` on this world's database.
    pub fn audit_verify(&self) -> (i32, String) {
        self.audit_verify_with(&[])
    }

    /// `stagegate audit verify` with extra arguments.
    pub fn audit_verify_with(&self, extra: &[&str]) -> (i32, String) {
        let mut args = vec!["audit", "verify", "--database", &self.database];
        args.extend_from_slice(extra);
        let out = super::run(self.d.dir.path(), &args, None);
        let (o, e) = super::text(&out);
        (out.status.code().unwrap_or(-1), format!("{o}{e}"))
    }
}

impl World {
    /// Plays someone with write access to the database who rewrites
    /// history carefully: entry `seq` gets `outcome`, and every hash from
    /// there on, and the chain head, are recomputed so that the chain is
    /// consistent again.
    pub fn rewrite_history(&self, seq: i64, outcome: &str) {
        use sqlx::Row;
        let url = self.database.clone();
        let outcome = outcome.to_string();
        block_on(async move {
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            let rows = sqlx::query(&format!(
                "{} WHERE seq >= $1 ORDER BY seq",
                stagegate::records::chain::SELECT
            ))
            .bind(seq)
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let mut prev: String = rows[0].try_get("prev_hash").unwrap();
            let mut last = 0;
            for row in &rows {
                let mut c = stagegate::records::chain::from_row(row).unwrap();
                if c.seq == seq {
                    c.entry.outcome = outcome.clone();
                }
                let h = stagegate::records::chain::hash(c.seq, &c.entry, &prev);
                sqlx::query("UPDATE decision_log SET outcome = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
                    .bind(&c.entry.outcome)
                    .bind(&prev)
                    .bind(&h)
                    .bind(c.seq)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                prev = h;
                last = c.seq;
            }
            sqlx::query("UPDATE chain_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(last)
                .bind(&prev)
                .execute(&mut conn)
                .await
                .unwrap();
        });
    }
}

/// POST JSON as `who`, with optional extra headers.
pub fn post(
    s: &Server,
    who: &str,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> super::server::Reply {
    super::server::Request::post(&s.url(path))
        .bearer(Some(&token(who)))
        .json(body)
        .headers(headers)
        .send()
}

pub fn get(s: &Server, who: &str, path: &str) -> super::server::Reply {
    s.get(path, Some(&token(who)))
}

/// The release evidence of the high-risk example, without its inline
/// acceptance (acceptances are recorded by approvers).
/// The key id of the test evidence key, which every [`World`] trusts.
pub const EVIDENCE_KEYID: &str = "test-evidence";
const EVALUATION: &str = "https://stagegate.dev/attestation/evaluation/v1";
const TEST_RESULT: &str = "https://in-toto.io/attestation/test-result/v0.1";
/// The artifact a test release is, unless the test names another.
pub const ARTIFACT: &str =
    "sha256:5f2b0c7e9a1d4e8b3c6f0a2d9e7b1c4a8f3e6d0b2a5c9e1f4d7b0a3c6e9f2d5b";

/// The key that signs the test releases' attestations.
fn evidence_signer() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
}

/// Writes the test evidence key's public half to `pem` and returns the
/// `[[evidence.keys]]` entry that trusts it.
pub fn evidence_trust(pem: &std::path::Path) -> String {
    let public = stagegate::attest::receipt::ReceiptSigner::new(evidence_signer(), "test").public();
    std::fs::write(pem, public.public_key_pem).unwrap();
    format!(
        "[[evidence.keys]]\nfile = \"{}\"\nkeyid = \"{EVIDENCE_KEYID}\"\npredicates = [\"{EVALUATION}\", \"{TEST_RESULT}\"]\n",
        pem.display()
    )
}

/// Turns a release body's typed verification results into signed
/// attestations about its artifact (as a release pipeline sends them):
/// each result with a metric and threshold becomes a stagegate evaluation
/// statement, any other a test-result statement. The high and critical
/// tiers of the reference policy accept only attested results.
pub fn attest(release: &mut Value) {
    let digest = release["artifact_digest"]
        .as_str()
        .unwrap_or(ARTIFACT)
        .to_string();
    release["artifact_digest"] = json!(digest);
    let hex = digest
        .strip_prefix("sha256:")
        .expect("sha256 digest")
        .to_string();
    let results = release["verification"]["results"].take();
    release["verification"]["results"] = json!([]);
    let mut envelopes = Vec::new();
    for r in results.as_array().cloned().unwrap_or_default() {
        let name = r["name"].as_str().unwrap_or("test").to_string();
        let passed = r["passed"].as_bool().unwrap_or(false);
        let (predicate_type, predicate) = match (r["metric"].as_f64(), r["threshold"].as_f64()) {
            (Some(value), Some(threshold)) => {
                // The comparison under which the recorded verdict holds.
                let comparison = if (value >= threshold) == passed {
                    ">="
                } else {
                    "<"
                };
                (
                    EVALUATION,
                    json!({"metric": name, "value": value, "threshold": threshold,
                        "comparison": comparison, "dataset": "holdout-2026-10", "samples": 10000}),
                )
            }
            _ => (
                TEST_RESULT,
                json!({"result": if passed { "PASSED" } else { "FAILED" },
                    "configuration": [{"name": name}]}),
            ),
        };
        let envelope =
            stagegate::attest::Statement::about_sha256("model", &hex, predicate_type, predicate)
                .sign_ed25519(EVIDENCE_KEYID, &evidence_signer());
        envelopes.push(serde_json::to_value(envelope).unwrap());
    }
    release["attestations"] = Value::Array(envelopes);
}

/// The high-risk example gate with its results signed by the test
/// evidence key, as DSSE envelopes in `attestations` (the typed
/// `attestation` objects are gone: only stagegate sets them). The only
/// kind of stateless gate that gets a receipt.
pub fn attested_gate() -> Value {
    let mut gate = super::high_risk_gate();
    let mut release = json!({
        "artifact_digest": gate["release"]["artifact_digest"].clone(),
        "verification": gate["verification"].clone(),
    });
    attest(&mut release);
    gate["verification"] = release["verification"].take();
    gate["attestations"] = release["attestations"].take();
    gate
}

/// The example release's evidence, as a release pipeline types it: the
/// example's `attestation` fields (which only stagegate may set, from a
/// verified statement) are left out; [`attest`] adds signed statements.
pub fn release_body(version: &str) -> Value {
    let g = super::high_risk_gate();
    let mut r = json!({"version": version});
    for k in [
        "risk",
        "verification",
        "deficiencies",
        "safeguards",
        "communication",
        "monitoring",
        "supply_chain",
    ] {
        r[k] = g[k].clone();
    }
    for d in r["deficiencies"].as_array_mut().unwrap() {
        d.as_object_mut().unwrap().remove("acceptance");
    }
    for res in r["verification"]["results"].as_array_mut().unwrap() {
        res.as_object_mut().unwrap().remove("attestation");
    }
    if let Some(s) = r["supply_chain"].as_object_mut() {
        s.remove("attestation");
    }
    r
}

/// A three-stage plan whose stages need no minimum duration (so a test
/// can walk it in seconds).
pub fn plan() -> Value {
    let mut p = super::high_risk_gate()["plan"].clone();
    for s in p["stages"].as_array_mut().unwrap() {
        s["min_duration_hours"] = json!(0);
    }
    p
}

/// Registers the system and release `version` with a review, an
/// authorisation and the acceptance of D-7; returns the release id.
/// A registered, authorised release deployed under [`plan`] with the
/// `kubernetes` ref `reference` (what gateways and admission name it by):
/// the deployment's JSON.
pub fn deployed_with_ref(s: &Server, reference: &str) -> Value {
    let release = registered_release(s, "2.3.0");
    let r = post(
        s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": release, "plan": plan(), "refs": {"kubernetes": reference}}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["deployment"].clone()
}

pub fn registered_release(s: &Server, version: &str) -> String {
    registered_release_with(s, version, json!({}))
}

/// Like [`registered_release`], with the top-level keys of `extra` (an
/// `artifact_digest`, say) added to the release evidence.
pub fn registered_release_with(s: &Server, version: &str, extra: Value) -> String {
    let mut release = release_body(version);
    if let (Some(r), Some(extra)) = (release.as_object_mut(), extra.as_object()) {
        r.extend(extra.clone());
    }
    attest(&mut release);
    let r = post(
        s,
        "ops",
        "/v1/systems",
        &json!({"id": "credit-scoring", "risk_tier": "high", "consequential": true,
        "escalation_contact": "risk-desk on-call"}),
        &[],
    );
    assert!(r.status == 201 || r.status == 409, "{}", r.body);
    let r = post(
        s,
        "ops",
        "/v1/systems/credit-scoring/releases",
        &release,
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = format!("credit-scoring@{version}");
    let r = post(
        s,
        "a.lee",
        &format!("/v1/releases/{id}/reviews"),
        &json!({"outcome": "approved"}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(
        s,
        "j.doe",
        &format!("/v1/releases/{id}/authorisations"),
        &json!({"conditions": ["EU only"]}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(
        s,
        "j.doe",
        &format!("/v1/releases/{id}/acceptances"),
        &json!({"deficiency_id": "D-7", "rationale": "within tolerance, monitored"}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    id
}

/// A new deployment of `release`; returns its id.
pub fn deploy(s: &Server, release: &str) -> String {
    let r = post(
        s,
        "ops",
        "/v1/deployments",
        &json!({"release_id": release, "plan": plan()}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["deployment"]["id"].as_str().unwrap().to_string()
}

/// Posts observations (window ending now).
pub fn observe(s: &Server, id: &str, error_rate: f64, samples: u64) -> super::server::Reply {
    post(
        s,
        "ops",
        &format!("/v1/deployments/{id}/observations"),
        &json!({"observations": [
            {"metric": "error_rate", "value": error_rate, "samples": samples},
            {"metric": "harmful_output_rate", "value": 0.0, "samples": samples},
            {"metric": "complaint_rate", "value": 0.0, "samples": samples}
        ]}),
        &[],
    )
}
