//! The `progression` decision: may the deployment widen its exposure from
//! the current stage to the target stage?
//!
//! The outcome is ranked (docs/decisions.md#progression-rules): a breached
//! suspension trigger outranks a breached rollback trigger, which outranks
//! every `hold` reason. All findings are reported whatever the outcome.
//!
//! Cost: O(n log n) in the request's size. Observations are indexed once
//! (O(n log m)); each trigger and criterion is a map lookup; stages,
//! material issues and the authorisation's scope are each scanned once.

use stagegate_sdk::criteria::{self, CriterionStatus, Observations, describe};
use stagegate_sdk::text::{non_blank, same_identity};
use stagegate_sdk::time::{hours, hours_between, rfc3339};
use stagegate_sdk::{
    Findings, ItemStatus, Plan, ProgressionDecision, ProgressionOutcome, ProgressionRequest,
    RiskTier, Severity,
};

use crate::authorisation::{self, ReviewGap};
use crate::params::Params;
use crate::triggers::{self, Breach};

/// Decides a progression request under `params`: one function per group
/// of rows of the progression table, in its order.
pub fn decide(req: &ProgressionRequest, params: &Params) -> ProgressionDecision {
    let mut f = Findings::new();
    // Observations dated after `now` never count (see `stagegate_sdk::criteria`).
    let obs = Observations::as_of(&req.observations, req.now);
    obs.report_future(&mut f);
    let breach = triggers::check(&req.plan, &obs, &mut f);
    let (current, target) = stages(req, &mut f);
    if let Some(c) = current {
        duration(req, c, &mut f);
        criteria_of(req, c, &obs, &mut f);
    }
    material_issues(req, &mut f);
    review(req, &mut f);
    authorised(req, params, &mut f);

    let outcome = match breach {
        Some(Breach::Suspend) => ProgressionOutcome::Suspend,
        Some(Breach::Rollback) => ProgressionOutcome::Rollback,
        None if f.has_blocking() => ProgressionOutcome::Hold,
        None => ProgressionOutcome::Promote,
    };
    let next = target.map(|t| &req.plan.stages[t]);
    if let Some(a) = req.authorisation.as_ref() {
        for c in &a.conditions {
            f.oblige("authorisation.condition", c.clone(), a.expires_at);
        }
    }
    f.into_progression(
        outcome,
        next.and_then(|s| non_blank(&s.name)).map(str::to_string),
        next.and_then(|s| s.traffic_percent),
        rollback_procedure(&req.plan),
    )
}

/// `progression.unknown_stage`, `progression.out_of_order`: both stages
/// are in the plan and the target is the next one. Returns their indexes.
fn stages(req: &ProgressionRequest, f: &mut Findings) -> (Option<usize>, Option<usize>) {
    let stage_index = |name: &str| {
        req.plan
            .stages
            .iter()
            .position(|s| non_blank(&s.name) == Some(name.trim()))
    };
    let current = stage_index(&req.current_stage);
    let target = stage_index(&req.target_stage);
    if current.is_none() {
        f.block(
            "progression.unknown_stage",
            "/current_stage",
            format!(
                "current stage '{}' is not in the deployment plan",
                req.current_stage
            ),
        );
    }
    if target.is_none() {
        f.block(
            "progression.unknown_stage",
            "/target_stage",
            format!(
                "target stage '{}' is not in the deployment plan",
                req.target_stage
            ),
        );
    }
    if let (Some(c), Some(t)) = (current, target)
        && t != c + 1
    {
        f.block(
            "progression.out_of_order",
            "/target_stage",
            format!(
                "'{}' is not the stage right after '{}': stages are widened one at a time",
                req.target_stage, req.current_stage
            ),
        );
    }
    (current, target)
}

/// `progression.too_early`: the current stage (index `c`) has run its
/// minimum duration.
fn duration(req: &ProgressionRequest, c: usize, f: &mut Findings) {
    let min_hours = req.plan.stages[c].min_duration_hours.unwrap_or(0.0);
    let until = req.stage_entered_at.saturating_add(hours(min_hours));
    if req.now < until {
        f.block(
            "progression.too_early",
            "/stage_entered_at",
            format!(
                "stage '{}' must run at least {min_hours} hours; {:.1} have passed (earliest {})",
                req.current_stage,
                hours_between(req.stage_entered_at, req.now),
                rfc3339(until)
            ),
        );
    }
}

/// `progression.no_data`, `progression.criterion_failed`: every criterion
/// of the current stage (index `c`) is met by the newest observations.
fn criteria_of(req: &ProgressionRequest, c: usize, obs: &Observations, f: &mut Findings) {
    for (j, criterion) in req.plan.stages[c].criteria.iter().enumerate() {
        let path = format!("/plan/stages/{c}/criteria/{j}");
        let (code, message) = match criteria::status(criterion, obs) {
            CriterionStatus::Met { .. } => continue,
            CriterionStatus::NoData => (
                "progression.no_data",
                format!("no observation for criterion '{}'", describe(criterion)),
            ),
            CriterionStatus::TooFewSamples {
                samples,
                min_samples,
            } => (
                "progression.no_data",
                format!(
                    "criterion '{}' needs {min_samples} samples, {samples} observed",
                    describe(criterion)
                ),
            ),
            CriterionStatus::NotMet { value } => (
                "progression.criterion_failed",
                format!(
                    "criterion '{}' is not met: observed {value}",
                    describe(criterion)
                ),
            ),
            CriterionStatus::Incomplete => (
                "progression.criterion_failed",
                format!(
                    "criterion '{}' lacks a metric, op or threshold and cannot be met",
                    describe(criterion)
                ),
            ),
        };
        f.block(code, path, message);
    }
}

/// `progression.material_issue`: no open issue of medium severity or more.
fn material_issues(req: &ProgressionRequest, f: &mut Findings) {
    for (i, issue) in req.material_issues.iter().enumerate() {
        let severity = issue.severity.unwrap_or(Severity::Critical);
        if issue.status != Some(ItemStatus::Resolved) && severity.at_least(Severity::Medium) {
            f.block(
                "progression.material_issue",
                format!("/material_issues/{i}"),
                format!(
                    "open {} material issue {} blocks progression",
                    severity.as_str(),
                    non_blank(&issue.id).unwrap_or("unnamed")
                ),
            );
        }
    }
}

/// `progression.review_missing`: from medium risk up, a completed review
/// that did not reject the progression.
fn review(req: &ProgressionRequest, f: &mut Findings) {
    let tier = req.system.risk_tier;
    if !tier.at_least(RiskTier::Medium) {
        return;
    }
    match authorisation::review_gap(req.review.as_ref(), req.now) {
        Some(ReviewGap::Missing) => {
            f.block(
                "progression.review_missing",
                "/review",
                format!(
                    "{} risk requires a completed review of this progression",
                    tier.as_str()
                ),
            );
        }
        Some(ReviewGap::Rejected) => {
            f.block(
                "progression.review_missing",
                "/review/outcome",
                "the progression review rejected it",
            );
        }
        None => {}
    }
}

/// `progression.unauthorised`, `progression.separation_of_duties`: a valid
/// authorisation whose scope covers the target, given by someone other
/// than the reviewer from high risk up.
fn authorised(req: &ProgressionRequest, params: &Params, f: &mut Findings) {
    let tier = req.system.risk_tier;
    let cx = authorisation::Context {
        now: req.now,
        tier,
        authorisation: req.authorisation.as_ref(),
        review: req.review.as_ref(),
        params,
    };
    for p in authorisation::problems(&cx) {
        f.block(
            "progression.unauthorised",
            p.path,
            format!("{} ({})", p.message, p.code),
        );
    }
    if let Some(scope) = req.authorisation.as_ref().and_then(|a| a.scope.as_ref())
        && !scope.iter().any(|s| s.trim() == req.target_stage.trim())
    {
        f.block(
            "progression.unauthorised",
            "/authorisation/scope",
            format!(
                "the authorisation's scope does not cover stage '{}'",
                req.target_stage
            ),
        );
    }
    if tier.at_least(RiskTier::High)
        && let (Some(reviewer), Some(authoriser)) = (
            authorisation::reviewer(req.review.as_ref()),
            req.authorisation
                .as_ref()
                .and_then(|a| non_blank(&a.authorised_by)),
        )
        && same_identity(reviewer, authoriser)
    {
        f.block(
            "progression.separation_of_duties",
            "/authorisation/authorised_by",
            format!(
                "{reviewer} both reviewed and authorised this {} risk progression",
                tier.as_str()
            ),
        );
    }
}

/// The plan's rollback procedure, or a note that it has none.
pub(crate) fn rollback_procedure(plan: &Plan) -> Option<String> {
    Some(
        plan.rollback
            .as_ref()
            .and_then(|r| non_blank(&r.procedure))
            .unwrap_or("no rollback procedure is recorded: stop serving this release")
            .to_string(),
    )
}
