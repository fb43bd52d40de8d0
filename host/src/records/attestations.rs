//! Attested evidence of releases, and decision receipts.
//!
//! A release may bring DSSE-signed in-toto attestations. Each is verified
//! against the evidence trust store ([`crate::attest::EvidenceTrust`]),
//! must name the release's artifact as a subject, and is mapped into the
//! release's evidence (docs/evidence-and-receipts.md); one bad
//! attestation refuses the release and nothing is stored. Accepted ones
//! are kept verbatim, committed to the chain, shown with the release and
//! exported to auditors.
//!
//! Every gate `allow` and progression `promote` with a known artifact
//! digest gets a receipt signed with the receipt key (docs/evidence-and-receipts.md), stored by decision id in the same transaction as the
//! decision, so a decision that committed has its receipt and one that
//! did not has none.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::{AnyConnection, Row};

use super::ledger::{self, RowValues};
use super::model::ReleaseEvidence;
use super::write::Write;
use super::{RecordError, Records, new_id};
use crate::attest::predicates::{self, Attested, Provenance};
use crate::attest::receipt::{self, InputAttestation, ReceiptFacts};
use crate::attest::{AttestError, Envelope, EvidenceTrust, PublicKey, ReceiptKey};
use crate::decision::request::Attestation;
use crate::decision::{Envelope as Decision, Outcome, Timestamp};

/// Attestations one release may carry: each is verified while the caller
/// waits, so their number is bounded.
pub const MAX_ATTESTATIONS: usize = 64;

/// What stagegate read from one attestation of a release: who signed it,
/// what it states and where in the release's evidence that went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttestationView {
    /// Its index in the release's `attestations`.
    pub index: usize,
    /// The trusted key that signed it.
    pub keyid: String,
    pub predicate_type: String,
    /// `sha256:` of the signed statement (the DSSE payload).
    pub statement_digest: String,
    /// `sha256:` of the envelope as sent (what receipts cite).
    pub envelope_digest: String,
    /// JSON pointers into the release of the evidence taken from it
    /// (`/verification/results/2`, `/supply_chain`); empty when its
    /// predicate type maps to nothing.
    pub evidence: Vec<String>,
    /// For SLSA provenance: the builder and the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// An attestation as the auditor's export shows it: what was read from it
/// and the envelope, verbatim.
#[derive(Debug, Clone, Serialize)]
pub struct StoredAttestation {
    #[serde(flatten)]
    pub view: AttestationView,
    pub envelope: Box<RawValue>,
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

/// An attestation that verified, ready to be stored with its release.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub view: AttestationView,
    pub envelope: String,
}

fn refused(i: usize, e: impl std::fmt::Display) -> RecordError {
    RecordError::invalid(
        format!("/attestations/{i}"),
        format!("attestations[{i}]: {e}"),
    )
}

/// A release's evidence says "attested" only where stagegate verified the
/// signature itself: an `attestation` typed into the body is refused.
fn refuse_typed_attestations(evidence: &ReleaseEvidence) -> Result<(), RecordError> {
    const WHY: &str = "set by stagegate from a verified attestation, never typed in: send the signed envelope in `attestations`";
    if let Some(v) = &evidence.verification
        && let Some(i) = v.results.iter().position(|r| r.attestation.is_some())
    {
        return Err(RecordError::invalid(
            format!("/verification/results/{i}/attestation"),
            WHY,
        ));
    }
    if evidence
        .supply_chain
        .as_ref()
        .is_some_and(|s| s.attestation.is_some())
    {
        return Err(RecordError::invalid("/supply_chain/attestation", WHY));
    }
    Ok(())
}

/// Verifies a new release's attestations and maps them into `evidence`.
pub(crate) fn check(
    trust: &EvidenceTrust,
    evidence: &mut ReleaseEvidence,
    attestations: &[Box<RawValue>],
) -> Result<Vec<Checked>, RecordError> {
    refuse_typed_attestations(evidence)?;
    if attestations.is_empty() {
        return Ok(Vec::new());
    }
    if attestations.len() > MAX_ATTESTATIONS {
        return Err(RecordError::invalid(
            "/attestations",
            format!(
                "expected at most {MAX_ATTESTATIONS} attestations, found {}",
                attestations.len()
            ),
        ));
    }
    let hex = evidence
        .artifact_digest
        .as_deref()
        .and_then(crate::attest::sha256_hex)
        .ok_or_else(|| {
            RecordError::invalid(
                "/artifact_digest",
                "attestations are about an artifact: give the release's artifact_digest as sha256:<64 hex digits>",
            )
        })?;
    let mut out = Vec::with_capacity(attestations.len());
    for (i, raw) in attestations.iter().enumerate() {
        let env = Envelope::parse(raw.get()).map_err(|e| refused(i, e))?;
        let verified = trust.verify(&env).map_err(|e| refused(i, e))?;
        let statement = &verified.statement;
        statement.require_subject(&hex).map_err(|e| refused(i, e))?;
        if trust.require_known_predicates && !predicates::is_known(&statement.predicate_type) {
            return Err(refused(
                i,
                AttestError::UnknownPredicate(statement.predicate_type.clone()),
            ));
        }
        let attestation = Attestation {
            keyid: verified.keyid.clone(),
            predicate_type: statement.predicate_type.clone(),
            statement_digest: verified.statement_digest.clone(),
        };
        let mapped = predicates::map(statement, &attestation).map_err(|e| refused(i, e))?;
        let mut view = AttestationView {
            index: i,
            keyid: verified.keyid.clone(),
            predicate_type: statement.predicate_type.clone(),
            statement_digest: verified.statement_digest.clone(),
            envelope_digest: crate::attest::sha256_digest(raw.get().as_bytes()),
            evidence: Vec::new(),
            provenance: None,
        };
        match mapped {
            Attested::Result(result) => {
                let v = evidence.verification.get_or_insert_with(Default::default);
                view.evidence
                    .push(format!("/verification/results/{}", v.results.len()));
                v.results.push(result);
            }
            Attested::Provenance(p) => {
                let s = evidence.supply_chain.get_or_insert_with(Default::default);
                s.controls_confirmed = true;
                s.attestation = Some(attestation);
                view.evidence.push("/supply_chain".into());
                view.provenance = Some(p);
            }
            Attested::Unmapped => {}
        }
        out.push(Checked {
            view,
            envelope: raw.get().to_string(),
        });
    }
    Ok(out)
}

/// Inserts a release's checked attestations in `w`.
pub(crate) async fn insert(
    w: &mut Write<'_>,
    release_id: &str,
    checked: &[Checked],
) -> Result<(), RecordError> {
    for c in checked {
        let v = &c.view;
        let row = RowValues {
            table: &ledger::ATTESTATIONS,
            cells: vec![
                new_id().into(),
                release_id.into(),
                i64::try_from(v.index).unwrap_or(i64::MAX).into(),
                v.keyid.as_str().into(),
                v.predicate_type.as_str().into(),
                v.statement_digest.as_str().into(),
                v.envelope_digest.as_str().into(),
                c.envelope.as_str().into(),
                serde_json::to_string(v).unwrap_or_default().into(),
                w.now().into(),
            ],
        };
        w.insert(row, None, String::new).await?;
    }
    Ok(())
}

/// A release's attestations, in order, with their envelopes.
pub(crate) async fn of_release(
    conn: &mut AnyConnection,
    release_id: &str,
) -> Result<Vec<StoredAttestation>, RecordError> {
    let rows = sqlx::query(
        "SELECT doc, envelope FROM attestations WHERE release_id = $1 ORDER BY position",
    )
    .bind(release_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let view: AttestationView = super::store::json_column(r, "doc")?;
            let text: String = r.try_get("envelope")?;
            let envelope = RawValue::from_string(text).map_err(|e| {
                RecordError::Store(super::StoreError::Corrupt(format!("envelope: {e}")))
            })?;
            Ok(StoredAttestation { view, envelope })
        })
        .collect()
}

/// What a receipt is about, besides the decision.
pub(crate) struct ReceiptSubject<'a> {
    /// `sha256:<hex>` of the artifact; no receipt without one.
    pub artifact_digest: Option<&'a str>,
    /// `system@version`.
    pub release_id: &'a str,
    pub deployment_id: Option<&'a str>,
    pub inputs: Vec<InputAttestation>,
}

impl Records {
    /// The receipt keys' public halves (the current one first).
    pub fn receipt_keys(&self) -> Vec<ReceiptKey> {
        self.receipts.iter().map(|s| s.public()).collect()
    }

    /// The signed receipt row of `decision`, if it is an `allow` or
    /// `promote`, receipts are configured and the artifact digest is known.
    fn receipt_row(
        &self,
        decision: &Decision,
        subject: &ReceiptSubject<'_>,
        now: Timestamp,
    ) -> Option<RowValues> {
        let signer = self.receipts.as_ref()?;
        if !matches!(decision.outcome, Outcome::Allow | Outcome::Promote) {
            return None;
        }
        let hex = subject
            .artifact_digest
            .and_then(crate::attest::sha256_hex)?;
        let resource = match subject.deployment_id {
            Some(d) => format!("stagegate:deployment/{d}"),
            None => format!("stagegate:release/{}", subject.release_id),
        };
        let stage = match decision.outcome {
            Outcome::Promote => decision.next_stage.as_deref(),
            _ => decision.first_stage.as_deref(),
        };
        let env = signer.sign(&ReceiptFacts {
            decision_id: &decision.decision_id,
            decision: decision.decision.as_str(),
            outcome: decision.outcome.as_str(),
            artifact_sha256: &hex,
            subject_name: subject.release_id,
            resource_uri: &resource,
            policy: &decision.policy,
            inputs: &subject.inputs,
            at: now,
            stage,
        });
        // An envelope of strings: serialising cannot fail.
        let text = serde_json::to_string(&env).unwrap_or_default();
        Some(RowValues {
            table: &ledger::RECEIPTS,
            cells: vec![
                decision.decision_id.as_str().into(),
                format!("sha256:{hex}").into(),
                Some(subject.release_id.to_string()).into(),
                subject.deployment_id.map(str::to_string).into(),
                signer.keyid.as_str().into(),
                now.into(),
                text.into(),
            ],
        })
    }

    /// Signs and stores the receipt of `decision` in `w` (see
    /// [`Records::receipt_row`] for when there is one).
    pub(crate) async fn write_receipt(
        &self,
        w: &mut Write<'_>,
        decision: &Decision,
        subject: ReceiptSubject<'_>,
    ) -> Result<(), RecordError> {
        match self.receipt_row(decision, &subject, w.now()) {
            Some(row) => w.insert(row, subject.deployment_id, String::new).await,
            None => Ok(()),
        }
    }

    /// Logs a stateless decision (`entry`, when stateless decisions are
    /// logged) and, for a gate `allow` about the artifact named in
    /// `request` (`system.id`, `release.version`,
    /// `release.artifact_digest`), stores its signed receipt, both in the
    /// decision log's group commit: a receipt costs one more row in a
    /// commit the decision makes anyway.
    pub async fn log_stateless(
        &self,
        decision: &Decision,
        entry: Option<super::chain::LogEntry>,
        request: &[u8],
        actor: &str,
    ) -> Result<(), super::LogError> {
        let mut entries: Vec<_> = entry.into_iter().collect();
        let mut rows = Vec::new();
        if let Some(row) = self.gate_receipt_row(decision, request) {
            entries.push(ledger::entry(&row, actor, Timestamp::now(), None));
            rows.push(row);
        }
        if entries.is_empty() {
            return Ok(());
        }
        self.log.record_all(entries, rows).await
    }

    fn gate_receipt_row(&self, decision: &Decision, request: &[u8]) -> Option<RowValues> {
        if self.receipts.is_none()
            || decision.outcome != Outcome::Allow
            || decision.decision != crate::decision::DecisionKind::Gate
        {
            return None;
        }
        #[derive(Deserialize)]
        struct Sys {
            id: Option<String>,
        }
        #[derive(Deserialize)]
        struct Rel {
            version: Option<String>,
            artifact_digest: Option<String>,
        }
        #[derive(Deserialize)]
        struct Attested {
            attestation: Option<Attestation>,
        }
        #[derive(Deserialize)]
        struct Verification {
            #[serde(default)]
            results: Vec<Attested>,
        }
        #[derive(Deserialize)]
        struct Subject {
            system: Option<Sys>,
            release: Option<Rel>,
            verification: Option<Verification>,
            supply_chain: Option<Attested>,
        }
        let s = serde_json::from_slice::<Subject>(request).ok()?;
        // The attestations a stateless gate rested on are those its
        // request names (the caller's word: stagegate saw no envelope).
        let mut inputs: Vec<InputAttestation> = Vec::new();
        let results = s.verification.map(|v| v.results).unwrap_or_default();
        for (i, r) in results.into_iter().enumerate() {
            if let Some(a) = r.attestation {
                inputs.push(InputAttestation {
                    name: format!("/verification/results/{i}"),
                    digest: a.statement_digest,
                });
            }
        }
        if let Some(a) = s.supply_chain.and_then(|c| c.attestation) {
            inputs.push(InputAttestation {
                name: "/supply_chain".into(),
                digest: a.statement_digest,
            });
        }
        let release = s.release?;
        let release_id = format!(
            "{}@{}",
            s.system.and_then(|s| s.id).unwrap_or_default(),
            release.version.unwrap_or_default()
        );
        self.receipt_row(
            decision,
            &ReceiptSubject {
                artifact_digest: release.artifact_digest.as_deref(),
                release_id: &release_id,
                deployment_id: None,
                inputs,
            },
            Timestamp::now(),
        )
    }

    /// The receipt of a decision, as its DSSE envelope's JSON text.
    pub async fn receipt(&self, decision_id: &str) -> Result<String, RecordError> {
        let row = sqlx::query("SELECT envelope FROM receipts WHERE decision_id = $1")
            .bind(decision_id)
            .fetch_optional(&self.store.pool)
            .await?
            .ok_or_else(|| {
                RecordError::NotFound(format!(
                    "no receipt for decision '{decision_id}': receipts are made for gate allow and progression promote decisions about a release with a sha256 artifact_digest"
                ))
            })?;
        Ok(row.try_get("envelope")?)
    }

    /// The receipts of a release's decisions, oldest first.
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
        rows.iter().map(stored_receipt).collect()
    }

    /// Verifies that a valid receipt exists for an artifact: the newest
    /// stored receipt whose subject is `digest` (`sha256:<hex>`), checked
    /// against this service's receipt keys. For admission control ("run
    /// only what passed the gate"): `Ok(Some(decision id))` when one
    /// verifies, `Ok(None)` when the artifact has no receipt.
    pub async fn verify_receipt_for_digest(
        &self,
        digest: &str,
    ) -> Result<Option<String>, RecordError> {
        let hex = crate::attest::sha256_hex(digest)
            .ok_or_else(|| RecordError::invalid("/digest", "expected sha256:<64 hex digits>"))?;
        let subject = format!("sha256:{hex}");
        let rows = sqlx::query(
            "SELECT decision_id, subject_digest, keyid, created_at, envelope FROM receipts WHERE subject_digest = $1 ORDER BY created_at DESC, decision_id DESC LIMIT 16",
        )
        .bind(&subject)
        .fetch_all(&self.store.pool)
        .await?;
        let keys = self.receipt_public_keys();
        for row in &rows {
            let stored = stored_receipt(row)?;
            let Ok(env) = Envelope::parse(stored.envelope.get()) else {
                continue;
            };
            if let Ok(v) = receipt::verify(&env, &keys, Some(&subject)) {
                return Ok(Some(v.decision_id.unwrap_or(stored.decision_id)));
            }
        }
        Ok(None)
    }

    fn receipt_public_keys(&self) -> Vec<(String, PublicKey)> {
        self.receipts
            .iter()
            .map(|s| (s.keyid.clone(), PublicKey::Ed25519(s.key.verifying_key())))
            .collect()
    }
}

fn stored_receipt(r: &sqlx::any::AnyRow) -> Result<StoredReceipt, RecordError> {
    let text: String = r.try_get("envelope")?;
    Ok(StoredReceipt {
        decision_id: r.try_get("decision_id")?,
        subject_digest: r.try_get("subject_digest")?,
        keyid: r.try_get("keyid")?,
        created_at: Timestamp(r.try_get("created_at")?),
        envelope: RawValue::from_string(text).map_err(|e| {
            RecordError::Store(super::StoreError::Corrupt(format!("receipt envelope: {e}")))
        })?,
    })
}

/// The attestations a decision about `release_id` rested on, as receipts
/// cite them.
pub(crate) async fn inputs(
    conn: &mut AnyConnection,
    release_id: &str,
) -> Result<Vec<InputAttestation>, RecordError> {
    let rows = sqlx::query(
        "SELECT position, envelope_digest FROM attestations WHERE release_id = $1 ORDER BY position",
    )
    .bind(release_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let position: i64 = r.try_get("position")?;
            Ok(InputAttestation {
                name: format!("{release_id}/attestations/{position}"),
                digest: r.try_get("envelope_digest")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::ReceiptSigner;
    use crate::decision::{DecisionKind, PolicyRef, Verdict};

    fn decision(outcome: Outcome) -> Decision {
        Decision::new(
            DecisionKind::Gate,
            Verdict {
                outcome,
                findings: Vec::new(),
                obligations: Vec::new(),
                first_stage: Some("pilot".into()),
                next_stage: None,
                traffic_percent: None,
                rollback_to: None,
            },
            PolicyRef {
                bundle: "b".into(),
                version: "1.0.0".into(),
                digest: format!("sha256:{}", "0".repeat(64)),
                members: Vec::new(),
            },
            Timestamp::now(),
        )
    }

    #[tokio::test]
    async fn a_receipt_is_found_for_its_artifact_only_while_it_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let store = super::super::open_store(&url).await.unwrap();
        let log = super::super::DecisionLog::start(store.clone(), Default::default(), 16);
        let intervals = crate::config::Config::default().intervals();
        let records = Records::new(store, log, false, intervals).with_receipts(Some(
            ReceiptSigner::new(ed25519_dalek::SigningKey::from_bytes(&[1; 32]), "test"),
        ));
        let digest = format!("sha256:{}", "ab".repeat(32));
        let request = serde_json::json!({"system": {"id": "s"},
            "release": {"version": "1", "artifact_digest": digest}})
        .to_string();
        let allow = decision(Outcome::Allow);
        records
            .log_stateless(&allow, None, request.as_bytes(), "gw")
            .await
            .unwrap();
        // A deny gets no receipt.
        let deny = decision(Outcome::Deny);
        records
            .log_stateless(&deny, None, request.as_bytes(), "gw")
            .await
            .unwrap();
        assert!(records.receipt(&deny.decision_id).await.is_err());
        assert_eq!(
            records.verify_receipt_for_digest(&digest).await.unwrap(),
            Some(allow.decision_id.clone())
        );
        let other = format!("sha256:{}", "cd".repeat(32));
        assert_eq!(
            records.verify_receipt_for_digest(&other).await.unwrap(),
            None
        );
        assert!(records.verify_receipt_for_digest("latest").await.is_err());
        // A stored receipt whose signature no longer verifies does not count.
        let text = records.receipt(&allow.decision_id).await.unwrap();
        let mut env: Envelope = serde_json::from_str(&text).unwrap();
        env.signatures[0].sig = env.signatures[0].sig.replace(
            env.signatures[0].sig.chars().nth(3).unwrap(),
            if env.signatures[0].sig.chars().nth(3) == Some('A') {
                "B"
            } else {
                "A"
            },
        );
        sqlx::query("UPDATE receipts SET envelope = $1")
            .bind(serde_json::to_string(&env).unwrap())
            .execute(&records.store.pool)
            .await
            .unwrap();
        assert_eq!(
            records.verify_receipt_for_digest(&digest).await.unwrap(),
            None
        );
    }
}
