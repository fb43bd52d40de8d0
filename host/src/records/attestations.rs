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
//! A stateless gate may carry DSSE envelopes in `attestations` too: they
//! are verified here by the same rules ([`check_gate`]) and mapped into
//! the request the policy sees. Receipts are derived from what this
//! module verified (records/receipts.rs).

use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::{AnyConnection, Row};

use super::ledger::{self, RowValues};
pub use super::model::AttestationView;
use super::model::ReleaseEvidence;
use super::write::Write;
use super::{RecordError, new_id};
use crate::attest::predicates::{self, Attested};
use crate::attest::receipt::InputAttestation;
use crate::attest::{AttestError, EvidenceTrust};
use crate::decision::request::{Attestation, GateRequest, SupplyChain, Verification};

/// Attestations one release may carry: each is verified while the caller
/// waits, so their number is bounded.
pub const MAX_ATTESTATIONS: usize = 64;

/// An attestation as the auditor's export shows it: what was read from it
/// and the envelope, verbatim.
#[derive(Debug, Clone, Serialize)]
pub struct StoredAttestation {
    #[serde(flatten)]
    pub view: AttestationView,
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

/// The evidence attestations map into: a release's, or a stateless gate
/// request's. `at` is the JSON pointer of the object holding these fields
/// in the caller's body ("" for a release, "/release" for the artifact of
/// a gate request), so every error names the caller's own path.
pub(crate) struct EvidenceFields<'a> {
    pub artifact_digest: Option<&'a str>,
    /// Where `artifact_digest` is in the caller's body.
    pub artifact_path: &'static str,
    pub verification: &'a mut Option<Verification>,
    pub supply_chain: &'a mut Option<SupplyChain>,
}

/// Evidence says "attested" only where stagegate verified the signature
/// itself: an `attestation` typed into the body is refused.
fn refuse_typed_attestations(fields: &EvidenceFields<'_>) -> Result<(), RecordError> {
    const WHY: &str = "set by stagegate from a verified attestation, never typed in: send the signed envelope in `attestations`";
    if let Some(v) = fields.verification.as_ref()
        && let Some(i) = v.results.iter().position(|r| r.attestation.is_some())
    {
        return Err(RecordError::invalid(
            format!("/verification/results/{i}/attestation"),
            WHY,
        ));
    }
    if fields
        .supply_chain
        .as_ref()
        .is_some_and(|s| s.attestation.is_some())
    {
        return Err(RecordError::invalid("/supply_chain/attestation", WHY));
    }
    Ok(())
}

/// Checks that an `artifact_uri` is content-addressed and names
/// `artifact_digest`: `…@sha256:<hex>`, or a last path segment that is the
/// digest (`…/<hex>` or `…/sha256:<hex>`). Never a substring match. `at` is
/// the JSON pointer of the URI in the caller's body.
pub(crate) fn check_artifact_uri(
    uri: Option<&str>,
    artifact_digest: Option<&str>,
    at: &str,
) -> Result<(), RecordError> {
    let Some(uri) = uri else { return Ok(()) };
    let hex = artifact_digest
        .and_then(crate::attest::sha256_hex)
        .ok_or_else(|| {
            RecordError::invalid(
                at,
                "an artifact_uri needs the artifact_digest (sha256:<64 hex digits>) it is addressed by",
            )
        })?;
    if content_addressed(uri, &hex) {
        Ok(())
    } else {
        Err(RecordError::invalid(
            at,
            format!(
                "'{uri}' is not content-addressed by the artifact_digest: expected an image reference ending in @sha256:{hex}, or a URI whose last path segment is the digest"
            ),
        ))
    }
}

fn content_addressed(uri: &str, hex: &str) -> bool {
    let named = |tail: &str| {
        crate::attest::sha256_hex(tail).as_deref() == Some(hex)
            || (tail.len() == 64 && tail.eq_ignore_ascii_case(hex))
    };
    if let Some((_, tail)) = uri.rsplit_once('@') {
        return named(tail);
    }
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    named(last)
}

/// Verifies a new release's attestations and maps them into `evidence`.
pub(crate) fn check(
    trust: &EvidenceTrust,
    evidence: &mut ReleaseEvidence,
    attestations: &[Box<RawValue>],
) -> Result<Vec<Checked>, RecordError> {
    check_fields(
        trust,
        EvidenceFields {
            artifact_digest: evidence.artifact_digest.as_deref(),
            artifact_path: "/artifact_digest",
            verification: &mut evidence.verification,
            supply_chain: &mut evidence.supply_chain,
        },
        attestations,
    )
}

/// Verifies the envelopes a stateless gate request carries in
/// `attestations`, exactly as at release registration ([`check`]), and
/// maps them into the request the policy sees. A request that carries
/// envelopes may not also type `attestation` objects (refused, with the
/// path); one without envelopes is left as it is: its evidence is the
/// caller's word, and it gets no receipt.
pub(crate) fn check_gate(
    trust: &EvidenceTrust,
    request: &mut GateRequest,
) -> Result<Vec<Checked>, RecordError> {
    if request.attestations.is_empty() {
        return Ok(Vec::new());
    }
    let digest = request
        .release
        .as_ref()
        .and_then(|r| r.artifact_digest.clone());
    check_fields(
        trust,
        EvidenceFields {
            artifact_digest: digest.as_deref(),
            artifact_path: "/release/artifact_digest",
            verification: &mut request.verification,
            supply_chain: &mut request.supply_chain,
        },
        &request.attestations,
    )
}

fn check_fields(
    trust: &EvidenceTrust,
    fields: EvidenceFields<'_>,
    attestations: &[Box<RawValue>],
) -> Result<Vec<Checked>, RecordError> {
    refuse_typed_attestations(&fields)?;
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
    let hex = fields
        .artifact_digest
        .and_then(crate::attest::sha256_hex)
        .ok_or_else(|| {
            RecordError::invalid(
                fields.artifact_path,
                "attestations are about an artifact: give the artifact_digest as sha256:<64 hex digits>",
            )
        })?;
    let EvidenceFields {
        verification,
        supply_chain,
        ..
    } = fields;
    let mut out = Vec::with_capacity(attestations.len());
    for (i, raw) in attestations.iter().enumerate() {
        let (verified, envelope_digest) =
            trust.verify_text(raw.get()).map_err(|e| refused(i, e))?;
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
            envelope_digest,
            evidence: Vec::new(),
            provenance: None,
        };
        match mapped {
            Attested::Result(result) => {
                let v = verification.get_or_insert_with(Default::default);
                view.evidence
                    .push(format!("/verification/results/{}", v.results.len()));
                v.results.push(result);
            }
            Attested::Provenance(p) => {
                let s = supply_chain.get_or_insert_with(Default::default);
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
                uri: format!("urn:stagegate:release:{release_id}:attestation:{position}"),
                digest: r.try_get("envelope_digest")?,
            })
        })
        .collect()
}
