//! The predicates stagegate maps into a release's evidence.
//!
//! - in-toto test-result v0.1 ([`TEST_RESULT`]): one verification result,
//!   passed when `result` is `PASSED`, named after the test configuration;
//! - the stagegate evaluation predicate ([`EVALUATION`],
//!   docs/evidence-and-receipts.md): one verification result with its metric and
//!   threshold, passed when `value comparison threshold` holds;
//! - SLSA provenance v1 ([`SLSA_PROVENANCE`]): the release's supply-chain
//!   statement, with the builder and the source it was built from.
//!
//! Other predicate types are kept (verbatim, in the records) but map to
//! nothing, unless `evidence.require_known_predicates` refuses them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AttestError;
use super::statement::Statement;
use crate::decision::request::{Attestation, Comparison, VerificationResult};

pub const TEST_RESULT: &str = "https://in-toto.io/attestation/test-result/v0.1";
pub const EVALUATION: &str = "https://stagegate.dev/attestation/evaluation/v1";
pub const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
/// The predicate of stagegate's own receipts.
pub const VERIFICATION_SUMMARY: &str = "https://slsa.dev/verification_summary/v1";

/// Whether stagegate maps `predicate_type` into evidence.
pub fn is_known(predicate_type: &str) -> bool {
    [TEST_RESULT, EVALUATION, SLSA_PROVENANCE].contains(&predicate_type)
}

/// What an attestation contributes to a release.
#[derive(Debug, Clone)]
pub enum Attested {
    /// A verification result.
    Result(VerificationResult),
    /// The supply-chain statement: who built the artifact, from what.
    Provenance(Provenance),
    /// A predicate type stagegate does not map: kept, not used.
    Unmapped,
}

/// The parts of a SLSA provenance the release view shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub builder_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The stagegate evaluation predicate: one measured metric of the release
/// against its acceptance threshold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    /// `<`, `<=`, `>` or `>=`: passed when `value comparison threshold`.
    pub comparison: Comparison,
    /// The dataset evaluated on (a name or a URI).
    pub dataset: String,
    /// How many samples the value rests on.
    pub samples: u64,
}

fn invalid(predicate: &str, message: impl Into<String>) -> AttestError {
    AttestError::Predicate {
        predicate: predicate.to_string(),
        message: message.into(),
    }
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Maps a verified statement; `attestation` names who signed it, and is
/// what a mapped result carries to the policy (its `evidence` is the
/// statement's digest).
pub fn map(statement: &Statement, attestation: &Attestation) -> Result<Attested, AttestError> {
    let p = &statement.predicate;
    let evidence = attestation.statement_digest.as_str();
    match statement.predicate_type.as_str() {
        TEST_RESULT => {
            let result = text(p, "/result").ok_or_else(|| {
                invalid(
                    TEST_RESULT,
                    "`result` is required (PASSED, WARNED or FAILED)",
                )
            })?;
            if !["PASSED", "WARNED", "FAILED"].contains(&result.as_str()) {
                return Err(invalid(
                    TEST_RESULT,
                    format!("`result` is '{result}', expected PASSED, WARNED or FAILED"),
                ));
            }
            let name = text(p, "/configuration/0/name")
                .or_else(|| text(p, "/configuration/0/uri"))
                .or_else(|| text(p, "/url"))
                .ok_or_else(|| {
                    invalid(
                        TEST_RESULT,
                        "name the test: `configuration[0].name` or `.uri`, or `url`",
                    )
                })?;
            Ok(Attested::Result(VerificationResult {
                name: Some(name),
                passed: result == "PASSED",
                metric: None,
                threshold: None,
                evidence: Some(evidence.to_string()),
                attestation: Some(attestation.clone()),
            }))
        }
        EVALUATION => {
            let e: Evaluation = serde_json::from_value(p.clone())
                .map_err(|err| invalid(EVALUATION, err.to_string()))?;
            if e.metric.trim().is_empty() {
                return Err(invalid(EVALUATION, "`metric` is empty"));
            }
            if !e.value.is_finite() || !e.threshold.is_finite() {
                return Err(invalid(
                    EVALUATION,
                    "`value` and `threshold` must be finite",
                ));
            }
            if e.samples == 0 {
                return Err(invalid(EVALUATION, "`samples` must be at least 1"));
            }
            let passed = match e.comparison {
                Comparison::Lt => e.value < e.threshold,
                Comparison::Le => e.value <= e.threshold,
                Comparison::Gt => e.value > e.threshold,
                Comparison::Ge => e.value >= e.threshold,
            };
            Ok(Attested::Result(VerificationResult {
                name: Some(e.metric),
                passed,
                metric: Some(e.value),
                threshold: Some(e.threshold),
                evidence: Some(evidence.to_string()),
                attestation: Some(attestation.clone()),
            }))
        }
        SLSA_PROVENANCE => {
            let builder_id = text(p, "/runDetails/builder/id")
                .ok_or_else(|| invalid(SLSA_PROVENANCE, "`runDetails.builder.id` is required"))?;
            let source = text(p, "/buildDefinition/externalParameters/source/uri")
                .or_else(|| text(p, "/buildDefinition/externalParameters/source"))
                .or_else(|| text(p, "/buildDefinition/resolvedDependencies/0/uri"));
            Ok(Attested::Provenance(Provenance { builder_id, source }))
        }
        _ => Ok(Attested::Unmapped),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::statement::STATEMENT_V1;

    fn by(predicate_type: &str) -> Attestation {
        Attestation {
            keyid: "k".into(),
            predicate_type: predicate_type.into(),
            statement_digest: format!("sha256:{}", "0".repeat(64)),
        }
    }

    fn statement(predicate_type: &str, predicate: Value) -> Statement {
        Statement {
            type_: STATEMENT_V1.into(),
            subject: vec![],
            predicate_type: predicate_type.into(),
            predicate,
        }
    }

    #[test]
    fn a_test_result_passes_only_when_passed_and_is_named_by_its_configuration() {
        let s = |r: &str| {
            statement(
                TEST_RESULT,
                serde_json::json!({"result": r, "configuration": [{"name": "fairness-suite"}]}),
            )
        };
        let Attested::Result(ok) = map(&s("PASSED"), &by(TEST_RESULT)).unwrap() else {
            panic!()
        };
        assert!(ok.passed);
        assert_eq!(ok.name.as_deref(), Some("fairness-suite"));
        assert_eq!(ok.attestation, Some(by(TEST_RESULT)));
        let Attested::Result(warned) = map(&s("WARNED"), &by(TEST_RESULT)).unwrap() else {
            panic!()
        };
        assert!(!warned.passed);
        assert!(
            map(&s("MAYBE"), &by(TEST_RESULT))
                .unwrap_err()
                .to_string()
                .contains("MAYBE")
        );
    }

    #[test]
    fn an_evaluation_passes_by_its_comparison_and_keeps_metric_and_threshold() {
        let s = |cmp: &str| {
            statement(
                EVALUATION,
                serde_json::json!({"metric": "accuracy", "value": 0.93, "threshold": 0.9,
                    "comparison": cmp, "dataset": "holdout-2026", "samples": 5000}),
            )
        };
        let Attested::Result(r) = map(&s(">="), &by(EVALUATION)).unwrap() else {
            panic!()
        };
        assert!(r.passed);
        assert_eq!((r.metric, r.threshold), (Some(0.93), Some(0.9)));
        let Attested::Result(r) = map(&s("<"), &by(EVALUATION)).unwrap() else {
            panic!()
        };
        assert!(!r.passed);
        let e = map(&s("~"), &by(EVALUATION)).unwrap_err();
        assert!(e.to_string().contains(EVALUATION), "{e}");
    }

    #[test]
    fn a_provenance_needs_its_builder() {
        let p = statement(
            SLSA_PROVENANCE,
            serde_json::json!({"buildDefinition": {"resolvedDependencies": [{"uri": "git+https://git.example/m@refs/tags/v1"}]},
                "runDetails": {"builder": {"id": "https://ci.example/builder"}}}),
        );
        let Attested::Provenance(got) = map(&p, &by(SLSA_PROVENANCE)).unwrap() else {
            panic!("a provenance maps to the supply chain")
        };
        assert_eq!(
            got,
            Provenance {
                builder_id: "https://ci.example/builder".into(),
                source: Some("git+https://git.example/m@refs/tags/v1".into()),
            }
        );
        let e = map(
            &statement(SLSA_PROVENANCE, serde_json::json!({})),
            &by(SLSA_PROVENANCE),
        )
        .unwrap_err();
        assert!(e.to_string().contains("builder.id"), "{e}");
    }
}
