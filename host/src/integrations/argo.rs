//! Argo Rollouts' web metric provider.
//!
//! An AnalysisRun measures a metric by an HTTP GET (by default; headers
//! as configured, no body) with a timeout (10 s unless `timeoutSeconds`);
//! a non-2xx answer is an *Error* measurement, not a failure, so every
//! judgement is a 200. The JSON answer's `result` (`jsonPath:
//! "{$.result}"`) is compared by the template's conditions: `result ==
//! "successful"` succeeds, `result == "failed"` fails, and when neither
//! holds the measurement is *Inconclusive*, which pauses the rollout
//! until a human resumes it or the analysis is retried.
//!
//! - With `weight` (an inline analysis step before `setWeight: W`):
//!   `successful` when the deployment is active and its current stage —
//!   the one its authorisation reached — allows at least W percent;
//!   `inconclusive` when a later stage would, but it is not authorised yet
//!   (the findings are the read-only progression evaluation's, toward the
//!   first stage that allows W); `failed` when the deployment is rolled
//!   back or suspended, the monitoring evaluation says roll back or
//!   suspend, or no stage of the plan allows W percent.
//! - Without `weight` (background analysis): the monitoring evaluation —
//!   healthy is `successful`, alert `inconclusive`, rollback or suspend
//!   (or a deployment no longer active) `failed`.

use serde::Serialize;

use super::{findings, must_stop, standing};
use crate::decision::{Finding, FindingSeverity, Outcome};
use crate::records::model::Deployment;
use crate::records::{Decide, DeploymentSelector, DeploymentStatus, RecordError, Records};

/// What the template's conditions compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisResult {
    Successful,
    Inconclusive,
    Failed,
}

/// The web metric's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub result: AnalysisResult,
    pub deployment_id: String,
    pub stage: String,
    pub traffic_percent: f64,
    pub status: DeploymentStatus,
    /// The weight asked about, for an inline step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Why, in one line.
    pub reason: String,
    pub findings: Vec<Finding>,
    /// The read-only evaluation the result rests on (in the decision log).
    pub decision_id: String,
}

/// Checks a `weight` query value: a percentage.
pub fn parse_weight(text: &str) -> Result<f64, RecordError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|w| w.is_finite() && (0.0..=100.0).contains(w))
        .ok_or_else(|| {
            RecordError::invalid(
                "weight",
                format!("'{text}' is not a traffic weight: expected a number from 0 to 100"),
            )
        })
}

/// The first stage of the plan that allows at least `weight` percent.
fn stage_allowing(d: &Deployment, weight: f64) -> Option<String> {
    d.plan
        .stages
        .iter()
        .find(|s| s.traffic_percent.is_some_and(|p| p + 1e-9 >= weight))
        .and_then(|s| s.name.as_deref())
        .map(|n| n.trim().to_string())
}

/// Answers one measurement.
pub async fn analyse(
    records: &Records,
    decide: &impl Decide,
    actor: &str,
    selector: &DeploymentSelector,
    weight: Option<f64>,
) -> Result<Analysis, RecordError> {
    let monitoring = records.evaluate_monitoring(decide, actor, selector).await?;
    let d = &monitoring.deployment;
    let answer = |result, reason: String, envelope: &crate::decision::Envelope| Analysis {
        result,
        deployment_id: d.id.clone(),
        stage: d.stage.clone(),
        traffic_percent: d.traffic_percent,
        status: d.status,
        weight,
        reason,
        findings: findings(envelope),
        decision_id: envelope.decision_id.clone(),
    };
    let m = &monitoring.decision;
    if must_stop(d, m) {
        let reason = if d.status == DeploymentStatus::Active {
            format!("{}; monitoring says {}", standing(d), m.summary())
        } else {
            standing(d)
        };
        return Ok(answer(AnalysisResult::Failed, reason, m));
    }
    let Some(w) = weight else {
        let result = match m.outcome {
            Outcome::Alert => AnalysisResult::Inconclusive,
            _ => AnalysisResult::Successful,
        };
        return Ok(answer(
            result,
            format!("{}; monitoring says {}", standing(d), m.summary()),
            m,
        ));
    };
    if d.traffic_percent + 1e-9 >= w {
        return Ok(answer(
            AnalysisResult::Successful,
            format!("{}: {w}% is within the authorised stage", standing(d)),
            m,
        ));
    }
    let Some(target) = stage_allowing(d, w) else {
        let mut a = answer(
            AnalysisResult::Failed,
            format!(
                "{}: no stage of the plan allows {w}% of traffic",
                standing(d)
            ),
            m,
        );
        a.findings.push(Finding {
            code: "integration.weight_beyond_plan".into(),
            severity: FindingSeverity::Blocking,
            message: format!("the rollout asks for {w}% but the plan's stages never allow it"),
            path: "weight".into(),
            controls: Vec::new(),
            bundle: None,
        });
        return Ok(a);
    };
    let progression = records
        .evaluate_progression(
            decide,
            actor,
            &DeploymentSelector::Id(d.id.clone()),
            &target,
        )
        .await?;
    Ok(answer(
        AnalysisResult::Inconclusive,
        format!(
            "{}: {w}% needs stage '{target}', not authorised yet (progression would {})",
            standing(d),
            progression.decision.summary()
        ),
        &progression.decision,
    ))
}
