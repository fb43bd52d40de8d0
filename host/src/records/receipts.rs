//! Decision receipts, derived from the decision log (docs/evidence-and-receipts.md#receipts).
//!
//! A receipt states nothing the records do not already hold: the decision
//! (its log entry: id, kind, outcome, time, policy bundle), the artifact and
//! the attestations it rested on (the release, or the envelopes a stateless
//! gate carried, which its log entry keeps). Ed25519 signatures are
//! deterministic, so the receipt is signed when first asked for, not when
//! the decision is made, and the same bytes come back every time: a
//! decision path that wrote a second row for every `allow` now writes
//! exactly what a `deny` writes.
//!
//! A receipt exists only for evidence stagegate verified:
//!
//! - a records-backed gate `allow` or progression `promote` (the release's
//!   attestations were verified at registration; its other evidence is
//!   what the release registered);
//! - a stateless gate `allow` whose request carried DSSE envelopes in
//!   `attestations`, verified as at release registration
//!   ([`super::attestations::check_gate`]).
//!
//! A stateless decision on caller-stated evidence gets none, and its
//! response says why ([`ReceiptStatus`]). Receipts signed per decision
//! before this (the `receipts` table) are still served as they were.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::Row;

use super::chain::{self, LogEntry};
use super::{RecordError, Records, StoreError};
use crate::attest::receipt::{self, InputAttestation, ReceiptFacts};
use crate::attest::{Envelope, PublicKey, ReceiptKey};
use crate::decision::request::GateRequest;
use crate::decision::{DecisionKind, Envelope as Decision, Outcome, PolicyRef, Timestamp};

/// Receipts kept in memory once signed; when full the cache starts over
/// (signing again gives the same bytes, so forgetting costs only time).
const CACHE_CAPACITY: usize = 4_096;

/// Signed receipts by decision id.
#[derive(Default)]
pub(crate) struct Cache {
    map: Mutex<HashMap<String, Arc<str>>>,
}

impl Cache {
    fn get(&self, id: &str) -> Option<Arc<str>> {
        self.map.lock().ok()?.get(id).cloned()
    }

    fn put(&self, id: &str, text: Arc<str>) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= CACHE_CAPACITY {
                m.clear();
            }
            m.insert(id.to_string(), text);
        }
    }
}

/// Whether a stateless decision got a receipt, as its response says
/// (`receipt` beside the decision's fields; docs/decisions.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptStatus {
    pub issued: bool,
    /// Where to fetch it, when issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// Why there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl ReceiptStatus {
    fn none(reason: &'static str) -> Self {
        ReceiptStatus {
            issued: false,
            href: None,
            reason: Some(reason),
        }
    }
}

/// A receipt as the export lists it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredReceipt {
    pub decision_id: String,
    pub subject_digest: String,
    pub keyid: String,
    pub created_at: Timestamp,
    pub envelope: Box<RawValue>,
}

/// Everything a receipt states, read from the records.
#[derive(Debug, Clone)]
pub(crate) struct Basis {
    pub decision_id: String,
    pub kind: DecisionKind,
    pub outcome: Outcome,
    pub at: Timestamp,
    pub policy: PolicyRef,
    /// Lowercase hex SHA-256 of the artifact.
    pub artifact_sha256: String,
    pub artifact_uri: Option<String>,
    /// `system@version`.
    pub release_id: String,
    pub deployment_id: Option<String>,
    /// The stage a gate opened or a promotion reached.
    pub stage: Option<String>,
    pub inputs: Vec<InputAttestation>,
}

/// Whether a decision of `kind` with `outcome` is one a receipt is for.
fn passes(kind: DecisionKind, outcome: Outcome) -> bool {
    matches!(
        (kind, outcome),
        (DecisionKind::Gate, Outcome::Allow) | (DecisionKind::Progression, Outcome::Promote)
    )
}

impl Records {
    /// The receipt keys' public halves (the current one first).
    pub fn receipt_keys(&self) -> Vec<ReceiptKey> {
        self.receipts.iter().map(|s| s.public()).collect()
    }

    /// The evidence trust store the service verifies attestations with.
    pub fn evidence_trust(&self) -> &crate::attest::EvidenceTrust {
        &self.evidence
    }

    /// Logs a stateless decision (`entry`, when stateless decisions are
    /// logged). Nothing else is written: a receipt, when there is one, is
    /// derived from the entry when asked for.
    pub async fn log_stateless(
        &self,
        entry: Option<chain::LogEntry>,
    ) -> Result<(), super::LogError> {
        match entry {
            Some(entry) => self.log.record_all(vec![entry], Vec::new()).await,
            None => Ok(()),
        }
    }

    /// Whether the stateless `decision` has a receipt, and if not why.
    /// `verified` says whether its request carried envelopes the service
    /// verified; `logged` whether its log entry (which keeps the request)
    /// was written.
    pub fn stateless_receipt(
        &self,
        decision: &Decision,
        verified: bool,
        logged: bool,
    ) -> ReceiptStatus {
        if self.receipts.is_none() {
            return ReceiptStatus::none("receipts are disabled ([receipts] enabled = false)");
        }
        if decision.decision != DecisionKind::Gate {
            return ReceiptStatus::none(
                "a stateless progression or monitoring decision gets no receipt: progress a registered deployment (POST /v1/deployments/{id}/progress) for one",
            );
        }
        if decision.outcome != Outcome::Allow {
            return ReceiptStatus::none("receipts are issued for allow decisions only");
        }
        if !verified {
            return ReceiptStatus::none(
                "the evidence is the caller's word: send its signed DSSE envelopes in `attestations` for the service to verify, or register the release, to get a receipt",
            );
        }
        if !logged {
            return ReceiptStatus::none(
                "stateless decisions are not logged ([records] log_decisions = false), and a receipt is derived from the decision's log entry",
            );
        }
        ReceiptStatus {
            issued: true,
            href: Some(format!("/v1/decisions/{}/receipt", decision.decision_id)),
            reason: None,
        }
    }

    /// The receipt of a decision, as its DSSE envelope's JSON text: signed
    /// on first request and the same bytes every time after.
    pub async fn receipt(&self, decision_id: &str) -> Result<String, RecordError> {
        if let Some(text) = self.receipt_cache.get(decision_id) {
            return Ok(text.to_string());
        }
        if let Some(stored) = self.stored_receipt(decision_id).await? {
            return Ok(stored);
        }
        let signer = self.receipts.as_ref().ok_or_else(|| {
            RecordError::NotFound(format!(
                "no receipt for decision '{decision_id}': receipts are disabled"
            ))
        })?;
        let basis = self.basis(decision_id).await?;
        let text: Arc<str> = sign(signer, &basis).into();
        self.receipt_cache.put(decision_id, text.clone());
        Ok(text.to_string())
    }

    /// A receipt signed and stored per decision before receipts were
    /// derived (kept readable as it was signed).
    async fn stored_receipt(&self, decision_id: &str) -> Result<Option<String>, RecordError> {
        let row = sqlx::query("SELECT envelope FROM receipts WHERE decision_id = $1")
            .bind(decision_id)
            .fetch_optional(&self.store.pool)
            .await?;
        Ok(row.map(|r| r.try_get("envelope")).transpose()?)
    }

    /// What the receipt of `decision_id` states, from its log entry and the
    /// records; `NotFound` naming why when there is no receipt.
    async fn basis(&self, decision_id: &str) -> Result<Basis, RecordError> {
        let none = |why: &str| {
            RecordError::NotFound(format!("no receipt for decision '{decision_id}': {why}"))
        };
        let entry = match self.decision_entry(decision_id).await {
            Ok(c) => c.entry,
            Err(RecordError::NotFound(_)) => return Err(none("no such decision in the log")),
            Err(e) => return Err(e),
        };
        let kind: DecisionKind = entry
            .kind
            .parse()
            .map_err(|_| none("it is not a gate or progression decision"))?;
        let outcome =
            serde_json::from_value::<Outcome>(serde_json::Value::String(entry.outcome.clone()))
                .ok()
                .ok_or_else(|| none("its outcome is not one stagegate decides"))?;
        if !passes(kind, outcome) {
            return Err(none(
                "receipts are made for gate allow and progression promote decisions",
            ));
        }
        match entry.deployment_id.clone() {
            Some(deployment) => {
                self.deployment_basis(entry, kind, outcome, &deployment)
                    .await
            }
            None => self.stateless_basis(entry, kind, outcome),
        }
    }

    /// A records-backed decision: the deployment's release, its verified
    /// attestations, and the stage the decision opened or reached.
    async fn deployment_basis(
        &self,
        entry: LogEntry,
        kind: DecisionKind,
        outcome: Outcome,
        deployment: &str,
    ) -> Result<Basis, RecordError> {
        let mut conn = self.store.pool.acquire().await?;
        let release_id: String = sqlx::query("SELECT release_id FROM deployments WHERE id = $1")
            .bind(deployment)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| RecordError::NotFound(format!("no deployment '{deployment}'")))?
            .try_get("release_id")?;
        let release = super::evidence::release_row(&mut conn, &release_id).await?;
        let artifact_sha256 = release
            .release
            .artifact_digest
            .as_deref()
            .and_then(crate::attest::sha256_hex)
            .ok_or_else(|| {
                RecordError::NotFound(format!(
                    "no receipt for decision '{}': release '{release_id}' has no sha256 artifact_digest",
                    entry.decision_id
                ))
            })?;
        let stage: Option<String> = sqlx::query(
            "SELECT stage FROM deployment_events WHERE decision_id = $1 ORDER BY seq LIMIT 1",
        )
        .bind(&entry.decision_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get("stage"))
        .transpose()?;
        let inputs = super::attestations::inputs(&mut conn, &release_id).await?;
        Ok(Basis {
            policy: policy_of(&entry_policy(&entry)),
            decision_id: entry.decision_id,
            kind,
            outcome,
            at: Timestamp(entry.at),
            artifact_sha256,
            artifact_uri: release.release.artifact_uri.clone(),
            release_id,
            deployment_id: Some(deployment.to_string()),
            stage,
            inputs,
        })
    }

    /// A stateless gate: only one whose request (kept in its log entry)
    /// carried envelopes, verified again here by the same rules.
    fn stateless_basis(
        &self,
        entry: LogEntry,
        kind: DecisionKind,
        outcome: Outcome,
    ) -> Result<Basis, RecordError> {
        let id = entry.decision_id.clone();
        let none =
            |why: &str| RecordError::NotFound(format!("no receipt for decision '{id}': {why}"));
        let caller_stated = "a stateless gate on caller-stated evidence gets no receipt (send the signed envelopes in `attestations`)";
        let text = entry
            .request
            .as_deref()
            .ok_or_else(|| none(caller_stated))?;
        let request = crate::decision::decode::decode_as::<GateRequest>(text.as_bytes())
            .map_err(|e| none(&format!("its logged request no longer reads: {e}")))?;
        let basis = stateless_gate(&self.evidence, &entry, kind, outcome, request)?;
        basis.ok_or_else(|| none(caller_stated))
    }

    /// The receipts of a release's decisions, oldest first: those signed
    /// per decision before, and those derived from the log.
    pub(crate) async fn receipts_of_release(
        &self,
        release_id: &str,
    ) -> Result<Vec<StoredReceipt>, RecordError> {
        let rows = sqlx::query(
            "SELECT decision_id, subject_digest, keyid, created_at, envelope FROM receipts WHERE release_id = $1 ORDER BY created_at, decision_id",
        )
        .bind(release_id)
        .fetch_all(&self.store.pool)
        .await?;
        let mut out: Vec<StoredReceipt> =
            rows.iter().map(stored_receipt).collect::<Result<_, _>>()?;
        if self.receipts.is_none() {
            return Ok(out);
        }
        for id in self.passing_decisions(release_id, 1_000).await? {
            if out.iter().any(|r| r.decision_id == id) {
                continue;
            }
            let text = match self.receipt(&id).await {
                Ok(text) => text,
                Err(RecordError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            out.push(derived_receipt(&id, &text)?);
        }
        out.sort_by(|a, b| {
            (a.created_at.millis(), &a.decision_id).cmp(&(b.created_at.millis(), &b.decision_id))
        });
        Ok(out)
    }

    /// The newest gate allow and promote decisions about `release_id`'s
    /// deployments, newest first.
    async fn passing_decisions(
        &self,
        release_id: &str,
        limit: i64,
    ) -> Result<Vec<String>, RecordError> {
        let rows = sqlx::query(
            "SELECT l.decision_id FROM decision_log l JOIN deployments d ON d.id = l.deployment_id WHERE d.release_id = $1 AND l.record_table IS NULL AND ((l.kind = 'gate' AND l.outcome = 'allow') OR (l.kind = 'progression' AND l.outcome = 'promote')) ORDER BY l.seq DESC LIMIT $2",
        )
        .bind(release_id)
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("decision_id"))
            .collect::<Result<_, _>>()?)
    }

    /// Verifies that a valid receipt exists for an artifact: the newest
    /// receipt of a registered deployment whose subject is `digest`
    /// (`sha256:<hex>`), checked against this service's receipt keys. For
    /// admission control ("run only what passed the gate"): `Ok(Some(decision
    /// id))` when one verifies, `Ok(None)` when the artifact has none.
    /// Receipts stored before receipts were derived count only when they
    /// belong to a deployment: a stateless one then rested on the caller's
    /// word.
    pub async fn verify_receipt_for_digest(
        &self,
        digest: &str,
    ) -> Result<Option<String>, RecordError> {
        let hex = crate::attest::sha256_hex(digest)
            .ok_or_else(|| RecordError::invalid("/digest", "expected sha256:<64 hex digits>"))?;
        let subject = format!("sha256:{hex}");
        let keys = self.receipt_public_keys();
        let check = |text: &str| {
            Envelope::parse(text)
                .ok()
                .and_then(|env| receipt::verify(&env, &keys, Some(&subject)).ok())
        };
        if self.receipts.is_some() {
            for release_id in self.releases_of_artifact(&hex).await? {
                for id in self.passing_decisions(&release_id, 16).await? {
                    let text = match self.receipt(&id).await {
                        Ok(text) => text,
                        Err(RecordError::NotFound(_)) => continue,
                        Err(e) => return Err(e),
                    };
                    if let Some(v) = check(&text) {
                        return Ok(Some(v.decision_id.unwrap_or(id)));
                    }
                }
            }
        }
        let rows = sqlx::query(
            "SELECT decision_id, subject_digest, keyid, created_at, envelope FROM receipts WHERE subject_digest = $1 AND deployment_id IS NOT NULL ORDER BY created_at DESC, decision_id DESC LIMIT 16",
        )
        .bind(&subject)
        .fetch_all(&self.store.pool)
        .await?;
        for row in &rows {
            let stored = stored_receipt(row)?;
            if let Some(v) = check(stored.envelope.get()) {
                return Ok(Some(v.decision_id.unwrap_or(stored.decision_id)));
            }
        }
        Ok(None)
    }

    /// The releases whose artifact is `hex`, newest first.
    async fn releases_of_artifact(&self, hex: &str) -> Result<Vec<String>, RecordError> {
        // The digest lives in the release's document: narrow by text, then
        // compare the parsed digest exactly.
        let rows = sqlx::query(
            "SELECT id, doc FROM releases WHERE LOWER(doc) LIKE $1 ORDER BY created_at DESC, id DESC LIMIT 64",
        )
        .bind(format!("%{hex}%"))
        .fetch_all(&self.store.pool)
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            let doc: super::model::ReleaseEvidence = super::store::json_column(row, "doc")?;
            if doc
                .artifact_digest
                .as_deref()
                .and_then(crate::attest::sha256_hex)
                .as_deref()
                == Some(hex)
            {
                out.push(row.try_get("id")?);
            }
        }
        Ok(out)
    }

    fn receipt_public_keys(&self) -> Vec<(String, PublicKey)> {
        self.receipts
            .iter()
            .map(|s| (s.keyid.clone(), PublicKey::Ed25519(s.key.verifying_key())))
            .collect()
    }
}

/// Verifies the envelopes a stateless gate request carries and maps them
/// into it ([`super::attestations::check_gate`]); `true` when it carried
/// any (and they all verified).
pub fn verify_gate_attestations(
    records: &Records,
    request: &mut GateRequest,
) -> Result<bool, RecordError> {
    if request.attestations.is_empty() {
        return Ok(false);
    }
    let release = request.release.as_ref();
    super::attestations::check_artifact_uri(
        release.and_then(|r| r.artifact_uri.as_deref()),
        release.and_then(|r| r.artifact_digest.as_deref()),
        "/release/artifact_uri",
    )?;
    super::attestations::check_gate(&records.evidence, request)?;
    Ok(true)
}

/// What a stateless gate's receipt states, from its log entry and its
/// typed request: `None` when the request carried no envelopes (its
/// evidence is the caller's word). The envelopes are verified again, by
/// the rules they passed when the decision was made.
pub(crate) fn stateless_gate(
    trust: &crate::attest::EvidenceTrust,
    entry: &LogEntry,
    kind: DecisionKind,
    outcome: Outcome,
    mut request: GateRequest,
) -> Result<Option<Basis>, RecordError> {
    if request.attestations.is_empty() {
        return Ok(None);
    }
    let checked = super::attestations::check_gate(trust, &mut request)?;
    let release = request.release.unwrap_or_default();
    let Some(artifact_sha256) = release
        .artifact_digest
        .as_deref()
        .and_then(crate::attest::sha256_hex)
    else {
        return Ok(None);
    };
    let inputs = checked
        .iter()
        .map(|c| InputAttestation {
            uri: format!(
                "urn:stagegate:decision:{}:attestation:{}",
                entry.decision_id, c.view.index
            ),
            digest: c.view.envelope_digest.clone(),
        })
        .collect();
    Ok(Some(Basis {
        decision_id: entry.decision_id.clone(),
        kind,
        outcome,
        at: Timestamp(entry.at),
        policy: policy_of(&entry_policy(entry)),
        artifact_sha256,
        artifact_uri: release.artifact_uri,
        release_id: format!(
            "{}@{}",
            request.system.id,
            release.version.unwrap_or_default()
        ),
        deployment_id: None,
        stage: None,
        inputs,
    }))
}

fn entry_policy(entry: &LogEntry) -> (String, String, String) {
    (
        entry.bundle.clone(),
        entry.bundle_version.clone(),
        entry.bundle_digest.clone(),
    )
}

fn policy_of((bundle, version, digest): &(String, String, String)) -> PolicyRef {
    PolicyRef {
        bundle: bundle.clone(),
        version: version.clone(),
        digest: digest.clone(),
        members: Vec::new(),
    }
}

/// Signs the receipt `basis` states: deterministic, so the same basis and
/// key give the same bytes.
pub(crate) fn sign(signer: &crate::attest::ReceiptSigner, basis: &Basis) -> String {
    let resource = basis
        .artifact_uri
        .clone()
        .unwrap_or_else(|| receipt::artifact_urn(&basis.artifact_sha256));
    let env = signer.sign(&ReceiptFacts {
        decision_id: &basis.decision_id,
        decision: basis.kind.as_str(),
        outcome: basis.outcome.as_str(),
        artifact_sha256: &basis.artifact_sha256,
        subject_name: &basis.release_id,
        resource_uri: &resource,
        deployment_id: basis.deployment_id.as_deref(),
        policy: &basis.policy,
        inputs: &basis.inputs,
        at: basis.at,
        stage: basis.stage.as_deref(),
    });
    // An envelope of strings: serialising cannot fail.
    serde_json::to_string(&env).unwrap_or_default()
}

fn derived_receipt(decision_id: &str, text: &str) -> Result<StoredReceipt, RecordError> {
    let corrupt = |e: String| RecordError::Store(StoreError::Corrupt(format!("receipt: {e}")));
    let env = Envelope::parse(text).map_err(|e| corrupt(e.to_string()))?;
    let statement =
        crate::attest::Statement::parse(&env.payload_bytes().map_err(|e| corrupt(e.to_string()))?)
            .map_err(|e| corrupt(e.to_string()))?;
    let subject_digest = statement
        .subject
        .first()
        .and_then(|s| s.digest.get("sha256"))
        .map(|h| format!("sha256:{h}"))
        .unwrap_or_default();
    let at = statement
        .predicate
        .pointer("/timeVerified")
        .and_then(|v| v.as_str())
        .and_then(Timestamp::parse)
        .unwrap_or(Timestamp(0));
    Ok(StoredReceipt {
        decision_id: decision_id.to_string(),
        subject_digest,
        keyid: env
            .signatures
            .first()
            .map(|s| s.keyid.clone())
            .unwrap_or_default(),
        created_at: at,
        envelope: RawValue::from_string(text.to_string()).map_err(|e| corrupt(e.to_string()))?,
    })
}

fn stored_receipt(r: &sqlx::any::AnyRow) -> Result<StoredReceipt, RecordError> {
    let text: String = r.try_get("envelope")?;
    Ok(StoredReceipt {
        decision_id: r.try_get("decision_id")?,
        subject_digest: r.try_get("subject_digest")?,
        keyid: r.try_get("keyid")?,
        created_at: Timestamp(r.try_get("created_at")?),
        envelope: RawValue::from_string(text).map_err(|e| {
            RecordError::Store(StoreError::Corrupt(format!("receipt envelope: {e}")))
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::ReceiptSigner;

    fn hex() -> String {
        "ab".repeat(32)
    }

    fn basis() -> Basis {
        Basis {
            decision_id: "01J".into(),
            kind: DecisionKind::Gate,
            outcome: Outcome::Allow,
            at: Timestamp(1_795_694_400_000),
            policy: PolicyRef {
                bundle: "b".into(),
                version: "1.0.0".into(),
                digest: format!("sha256:{}", "0".repeat(64)),
                members: Vec::new(),
            },
            artifact_sha256: hex(),
            artifact_uri: None,
            release_id: "s@1".into(),
            deployment_id: Some("d1".into()),
            stage: Some("pilot".into()),
            inputs: Vec::new(),
        }
    }

    #[test]
    fn an_artifact_uri_counts_only_when_content_addressed_by_the_digest() {
        use super::super::attestations::check_artifact_uri;
        let h = hex();
        let digest = format!("sha256:{h}");
        for ok in [
            format!("registry.example/model@sha256:{h}"),
            format!("oci://registry.example/model@sha256:{h}"),
            format!("s3://bucket/models/{h}"),
            format!("s3://bucket/models/{h}/"),
            format!("gs://bucket/models/sha256:{h}"),
        ] {
            assert!(
                check_artifact_uri(Some(&ok), Some(&digest), "/a").is_ok(),
                "{ok}"
            );
        }
        for bad in [
            format!("s3://attacker/{h}/model.bin"),
            format!("registry.example/model:{h}"),
            format!("registry.example/model@sha256:{}", "cd".repeat(32)),
            "s3://bucket/models/latest".to_string(),
        ] {
            let e =
                check_artifact_uri(Some(&bad), Some(&digest), "/release/artifact_uri").unwrap_err();
            assert!(
                matches!(&e, RecordError::Invalid { path, .. } if path == "/release/artifact_uri"),
                "{bad}: {e}"
            );
        }
        assert!(check_artifact_uri(Some("s3://b/x"), None, "/a").is_err());
        assert!(check_artifact_uri(None, None, "/a").is_ok());
    }

    #[test]
    fn a_receipt_is_the_same_bytes_for_the_same_facts_and_states_its_uris() {
        let signer = ReceiptSigner::new(ed25519_dalek::SigningKey::from_bytes(&[5; 32]), "v");
        let mut b = basis();
        let first = sign(&signer, &b);
        assert_eq!(first, sign(&signer, &b), "deterministic");
        let statement = crate::attest::Statement::parse(
            &Envelope::parse(&first).unwrap().payload_bytes().unwrap(),
        )
        .unwrap();
        let p = &statement.predicate;
        assert_eq!(
            p["resourceUri"],
            format!("urn:stagegate:artifact:sha256:{}", hex())
        );
        assert_eq!(p["decision"]["deployment"], "urn:stagegate:deployment:d1");
        assert_eq!(p["policy"]["uri"], "urn:stagegate:bundle:b:1.0.0");
        b.artifact_uri = Some(format!("registry.example/m@sha256:{}", hex()));
        let second = sign(&signer, &b);
        assert_ne!(first, second);
        let statement = crate::attest::Statement::parse(
            &Envelope::parse(&second).unwrap().payload_bytes().unwrap(),
        )
        .unwrap();
        assert_eq!(
            statement.predicate["resourceUri"],
            format!("registry.example/m@sha256:{}", hex())
        );
    }

    #[tokio::test]
    async fn a_stored_receipt_of_a_stateless_gate_no_longer_admits_its_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let signer = ReceiptSigner::new(ed25519_dalek::SigningKey::from_bytes(&[1; 32]), "test");
        let records = Records::in_test_dir(dir.path())
            .await
            .with_receipts(Some(signer.clone()));
        let digest = format!("sha256:{}", hex());
        // Receipts stored per decision by an earlier version: one of a
        // stateless gate (the caller's word), one of a deployment.
        let mut b = basis();
        for (id, deployment) in [("stateless", None), ("deployed", Some("d1"))] {
            b.decision_id = id.into();
            b.deployment_id = deployment.map(str::to_string);
            sqlx::query("INSERT INTO receipts (decision_id, subject_digest, release_id, deployment_id, keyid, created_at, envelope) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(id)
                .bind(&digest)
                .bind("s@1")
                .bind(deployment)
                .bind(&signer.keyid)
                .bind(if deployment.is_some() { 1i64 } else { 2 })
                .bind(sign(&signer, &b))
                .execute(&records.store.pool)
                .await
                .unwrap();
        }
        // Both stay readable, as they were stored.
        assert!(records.receipt("stateless").await.is_ok());
        assert_eq!(
            records.verify_receipt_for_digest(&digest).await.unwrap(),
            Some("deployed".into())
        );
        sqlx::query("DELETE FROM receipts WHERE decision_id = 'deployed'")
            .execute(&records.store.pool)
            .await
            .unwrap();
        assert_eq!(
            records.verify_receipt_for_digest(&digest).await.unwrap(),
            None
        );
        assert!(records.verify_receipt_for_digest("latest").await.is_err());
        // No decision of that id in the log: no receipt, saying why.
        let e = records.receipt("unknown").await.unwrap_err();
        assert!(e.to_string().contains("no such decision"), "{e}");
    }
}
