//! The `gate` decision: may this release enter operational use, and in
//! which first stage? One check per row of the gate table in
//! docs/decisions.md#gate-rules; every failing check is reported.
//!
//! Cost: O(n log n) in the request's size. Every list is walked once; the
//! only lookup across lists (is a trigger's or criterion's metric monitored?)
//! goes through a `BTreeSet` of the monitored metrics.

use std::collections::BTreeSet;

use stagegate_sdk::criteria::{describe, parts};
use stagegate_sdk::text::{non_blank, present};
use stagegate_sdk::time::{hours, rfc3339};
use stagegate_sdk::{
    Autonomy, Criterion, Findings, GateDecision, GateRequest, ItemStatus, Plan, ReviewOutcome,
    RiskTier, Severity,
};

use crate::authorisation::{self, ReviewGap};
use crate::params::Params;

/// Decides a gate request under `params`.
pub fn decide(req: &GateRequest, params: &Params) -> GateDecision {
    let mut f = Findings::new();
    let tier = req.system.risk_tier;
    risk(req, params, &mut f);
    verification(req, params, &mut f);
    review(req, &mut f);
    authorisation(req, params, &mut f);
    deficiencies(req, params, &mut f);
    if let Some(plan) = &req.plan {
        plan_rules(plan, tier, params, &mut f);
    } else {
        f.block("plan.missing", "/plan", "no deployment plan is recorded");
    }
    safeguards(req, &mut f);
    communication(req, &mut f);
    monitoring(req, params, &mut f);
    supply_chain(req, &mut f);

    let intensive_hours = *params.min_intensive_period_hours.get(tier);
    f.oblige(
        "monitoring.intensive",
        format!(
            "monitor intensively for the first {intensive_hours} hours of operational use ({} risk)",
            tier.as_str()
        ),
        Some(req.now.saturating_add(hours(intensive_hours))),
    );
    let first_stage = req
        .plan
        .as_ref()
        .and_then(|p| p.stages.first())
        .and_then(|s| non_blank(&s.name))
        .map(str::to_string);
    f.into_gate(first_stage)
}

fn risk(req: &GateRequest, params: &Params, f: &mut Findings) {
    let tier = req.system.risk_tier;
    if !params.deployable(tier) {
        f.block(
            "risk.prohibited",
            "/system/risk_tier",
            format!(
                "{} risk systems may not be deployed under this policy",
                tier.as_str()
            ),
        );
    }
    if !req
        .risk
        .as_ref()
        .is_some_and(|r| present(&r.assessment_ref))
    {
        f.block(
            "risk.assessment_missing",
            "/risk/assessment_ref",
            "no risk assessment is referenced: the deployment approach must rest on one",
        );
    }
}

fn verification(req: &GateRequest, params: &Params, f: &mut Findings) {
    let Some(v) = &req.verification else {
        f.block(
            "verification.incomplete",
            "/verification",
            "no verification and validation record is given",
        );
        return;
    };
    if !v.complete {
        f.block(
            "verification.incomplete",
            "/verification/complete",
            "verification and validation are not recorded as complete",
        );
    }
    for (i, r) in v.results.iter().enumerate() {
        if !r.passed {
            let name = non_blank(&r.name).unwrap_or("unnamed result");
            let detail = match (r.metric, r.threshold) {
                (Some(m), Some(t)) => format!(" (metric {m}, threshold {t})"),
                _ => String::new(),
            };
            f.block(
                "verification.failed",
                format!("/verification/results/{i}"),
                format!("verification result '{name}' did not pass{detail}"),
            );
        }
    }
    if *params
        .require_attested_verification
        .get(req.system.risk_tier)
    {
        unattested(req, f);
    }
    if v.integration_required && !v.integration_tested {
        f.block(
            "integration.untested",
            "/verification/integration_tested",
            "integration with existing systems is required but not tested in the target environment",
        );
    }
}

/// Where the tier requires attested verification: every passed result
/// must name the signed statement it was taken from. A failed result blocks
/// already, attested or not; a verification without any result would
/// otherwise satisfy the requirement by saying nothing.
fn unattested(req: &GateRequest, f: &mut Findings) {
    let Some(v) = &req.verification else {
        return;
    };
    let tier = req.system.risk_tier.as_str();
    if v.results.is_empty() {
        f.block(
            "verification.unattested",
            "/verification/results",
            format!("{tier} risk requires attested verification results, and none is given"),
        );
    }
    for (i, r) in v.results.iter().enumerate() {
        if r.passed && r.attestation.is_none() {
            let name = non_blank(&r.name).unwrap_or("unnamed result");
            f.block(
                "verification.unattested",
                format!("/verification/results/{i}/attestation"),
                format!(
                    "verification result '{name}' is asserted, not attested: {tier} risk requires each result to come from a verified signed statement"
                ),
            );
        }
    }
}

fn review(req: &GateRequest, f: &mut Findings) {
    match authorisation::review_gap(req.review.as_ref(), req.now) {
        Some(ReviewGap::Missing) => {
            f.block(
                "review.missing",
                "/review/completed_at",
                "no completed pre-deployment review is recorded",
            );
        }
        Some(ReviewGap::Rejected) => {
            f.block(
                "review.rejected",
                "/review/outcome",
                "the pre-deployment review rejected the release",
            );
        }
        None => {}
    }
    if let Some(r) = &req.review
        && r.outcome == Some(ReviewOutcome::ApprovedWithConditions)
    {
        f.info(
            "review.conditions",
            "/review/outcome",
            "the review approved the release with conditions; they become obligations",
        );
        if r.conditions.is_empty() {
            f.oblige(
                "review.condition",
                "honour the conditions of the pre-deployment review",
                None,
            );
        }
        for c in &r.conditions {
            f.oblige("review.condition", c.clone(), None);
        }
    }
}

fn authorisation(req: &GateRequest, params: &Params, f: &mut Findings) {
    let cx = authorisation::Context {
        now: req.now,
        tier: req.system.risk_tier,
        authorisation: req.authorisation.as_ref(),
        review: req.review.as_ref(),
        params,
    };
    let problems = authorisation::problems(&cx);
    for p in &problems {
        f.block(p.code, p.path, p.message.clone());
    }
    if problems.is_empty()
        && let Some(a) = &req.authorisation
    {
        for c in &a.conditions {
            f.oblige("authorisation.condition", c.clone(), a.expires_at);
        }
    }
}

fn deficiencies(req: &GateRequest, params: &Params, f: &mut Findings) {
    let tier = req.system.risk_tier;
    let acceptable = params.acceptable_severity(tier);
    for (i, d) in req.deficiencies.iter().enumerate() {
        // Absent status or severity: the safe reading is open and critical.
        if d.status == Some(ItemStatus::Resolved) {
            continue;
        }
        let severity = d.severity.unwrap_or(Severity::Critical);
        let id = non_blank(&d.id).unwrap_or("unnamed");
        let needs_acceptance = acceptable.is_none_or(|a| severity.rank() > a.rank());
        match &d.acceptance {
            None if needs_acceptance => {
                f.block(
                    "deficiency.unaccepted",
                    format!("/deficiencies/{i}"),
                    format!(
                        "open {} deficiency {id} exceeds what {} risk tolerates and is neither fixed nor formally accepted",
                        severity.as_str(),
                        tier.as_str()
                    ),
                );
            }
            None => {}
            Some(a) => {
                let mut lacking = Vec::new();
                if !present(&a.accepted_by) {
                    lacking.push("accepted_by");
                }
                if a.accepted_at.is_none() {
                    lacking.push("accepted_at");
                }
                if !present(&a.rationale) {
                    lacking.push("rationale");
                }
                if !lacking.is_empty() {
                    f.block(
                        "deficiency.acceptance_incomplete",
                        format!("/deficiencies/{i}/acceptance"),
                        format!(
                            "the risk acceptance of deficiency {id} lacks {}",
                            lacking.join(", ")
                        ),
                    );
                }
                if let Some(exp) = a.expires_at.filter(|e| *e < req.now) {
                    f.block(
                        "deficiency.acceptance_expired",
                        format!("/deficiencies/{i}/acceptance/expires_at"),
                        format!(
                            "the risk acceptance of deficiency {id} expired at {}",
                            rfc3339(exp)
                        ),
                    );
                }
            }
        }
    }
}

fn plan_rules(plan: &Plan, tier: RiskTier, params: &Params, f: &mut Findings) {
    if plan.stages.is_empty() {
        f.block(
            "plan.missing",
            "/plan/stages",
            "the deployment plan has no stages",
        );
    }
    let rollback = plan.rollback.as_ref();
    if !rollback.is_some_and(|r| present(&r.procedure)) {
        f.block(
            "plan.rollback_missing",
            "/plan/rollback/procedure",
            "the deployment plan has no rollback procedure",
        );
    }
    if tier.at_least(RiskTier::High) && !rollback.is_some_and(|r| r.tested) {
        f.block(
            "plan.rollback_untested",
            "/plan/rollback/tested",
            format!(
                "{} risk requires a tested rollback procedure",
                tier.as_str()
            ),
        );
    }
    let triggers: &[Criterion] = rollback.map(|r| r.triggers.as_slice()).unwrap_or_default();
    if !triggers.iter().any(|t| parts(t).is_some()) {
        f.block(
            "plan.triggers_missing",
            "/plan/rollback/triggers",
            "the deployment plan defines no complete rollback trigger (metric, op, threshold)",
        );
    }
    for (i, t) in triggers.iter().enumerate() {
        if parts(t).is_none() {
            f.warn(
                "plan.trigger_incomplete",
                format!("/plan/rollback/triggers/{i}"),
                format!(
                    "rollback trigger '{}' cannot fire: it lacks a metric, op or threshold",
                    describe(t)
                ),
            );
        }
    }
    for (i, t) in plan.suspension_triggers.iter().enumerate() {
        if parts(t).is_none() {
            f.warn(
                "plan.trigger_incomplete",
                format!("/plan/suspension_triggers/{i}"),
                format!(
                    "suspension trigger '{}' cannot fire: it lacks a metric, op or threshold",
                    describe(t)
                ),
            );
        }
    }
    let min_stages = *params.min_stages.get(tier);
    if !plan.stages.is_empty() && (plan.stages.len() as u64) < u64::from(min_stages) {
        f.block(
            "plan.staging_required",
            "/plan/stages",
            format!(
                "{} risk requires at least {min_stages} deployment stages, the plan has {}",
                tier.as_str(),
                plan.stages.len()
            ),
        );
    }
    if let Some(first) = plan.stages.first() {
        let max = *params.max_first_stage_percent.get(tier);
        match first.traffic_percent {
            Some(p) if p <= max => {}
            Some(p) => {
                f.block(
                    "plan.first_stage_too_large",
                    "/plan/stages/0/traffic_percent",
                    format!(
                        "the first stage exposes {p}% of traffic; {} risk allows at most {max}%",
                        tier.as_str()
                    ),
                );
            }
            None => {
                f.block(
                    "plan.first_stage_too_large",
                    "/plan/stages/0/traffic_percent",
                    format!(
                        "the first stage states no traffic_percent; {} risk allows at most {max}%",
                        tier.as_str()
                    ),
                );
            }
        }
    }
    for (i, pair) in plan.stages.windows(2).enumerate() {
        if let (Some(a), Some(b)) = (pair[0].traffic_percent, pair[1].traffic_percent)
            && b < a
        {
            f.block(
                "plan.stage_order",
                format!("/plan/stages/{}/traffic_percent", i + 1),
                format!(
                    "traffic decreases from {a}% to {b}% between stages {i} and {}",
                    i + 1
                ),
            );
        }
    }
    let last = plan.stages.len().saturating_sub(1);
    for (i, stage) in plan.stages.iter().enumerate() {
        let name = non_blank(&stage.name).unwrap_or("unnamed");
        if i < last && !stage.criteria.iter().any(|c| parts(c).is_some()) {
            f.block(
                "plan.criteria_missing",
                format!("/plan/stages/{i}/criteria"),
                format!("stage '{name}' defines no progression criteria in advance"),
            );
        }
        for (j, c) in stage.criteria.iter().enumerate() {
            if parts(c).is_none() {
                f.block(
                    "plan.criteria_missing",
                    format!("/plan/stages/{i}/criteria/{j}"),
                    format!(
                        "criterion '{}' of stage '{name}' lacks a metric, op or threshold",
                        describe(c)
                    ),
                );
            }
        }
        if !present(&stage.name) {
            f.warn(
                "plan.stage_unnamed",
                format!("/plan/stages/{i}/name"),
                "a stage without a name cannot be targeted by a progression",
            );
        }
    }
}

fn safeguards(req: &GateRequest, f: &mut Findings) {
    let s = req.safeguards.as_ref();
    if req.system.consequential && !s.is_some_and(|s| s.human_oversight) {
        f.block(
            "safeguards.oversight_missing",
            "/safeguards/human_oversight",
            "outputs inform consequential decisions but no human oversight is in place",
        );
    }
    if !s.is_some_and(|s| present(&s.escalation_path)) {
        f.block(
            "safeguards.escalation_missing",
            "/safeguards/escalation_path",
            "no escalation path for uncertain or disputed outputs",
        );
    }
    if !s.is_some_and(|s| present(&s.user_guidance)) {
        f.block(
            "safeguards.guidance_missing",
            "/safeguards/user_guidance",
            "no user guidance or training for the intended use",
        );
    }
    if req.system.autonomy == Some(Autonomy::Autonomous) {
        let accepted = s.is_some_and(|s| s.autonomy_rationale_accepted);
        let compensated =
            s.is_some_and(|s| s.compensating_controls.iter().any(|c| !c.trim().is_empty()));
        if !(accepted && compensated) {
            let missing = match (accepted, compensated) {
                (false, false) => {
                    "its rationale is not accepted and no compensating control is in place"
                }
                (false, true) => "its rationale is not accepted through risk management",
                _ => "no compensating control is in place",
            };
            f.block(
                "safeguards.autonomy_unjustified",
                "/safeguards/autonomy_rationale_accepted",
                format!("the system operates autonomously but {missing}"),
            );
        }
    }
}

fn communication(req: &GateRequest, f: &mut Findings) {
    let c = req.communication.as_ref();
    let mut missing = Vec::new();
    if !c.is_some_and(|c| present(&c.capabilities)) {
        missing.push("capabilities");
    }
    if !c.is_some_and(|c| present(&c.intended_use)) {
        missing.push("intended_use");
    }
    if !c.is_some_and(|c| c.limitations.iter().any(|l| !l.trim().is_empty())) {
        missing.push("limitations");
    }
    if !c.is_some_and(|c| present(&c.reliance_conditions)) {
        missing.push("reliance_conditions");
    }
    for field in missing {
        f.block(
            "communication.incomplete",
            format!("/communication/{field}"),
            format!(
                "users and operators are not told the system's {}",
                field.replace('_', " ")
            ),
        );
    }
    match c.and_then(|c| c.published_at) {
        Some(at) if at <= req.now => {}
        Some(at) => {
            f.block(
                "communication.late",
                "/communication/published_at",
                format!(
                    "the notice to users is published only at {}, after deployment",
                    rfc3339(at)
                ),
            );
        }
        None => {
            f.block(
                "communication.late",
                "/communication/published_at",
                "the notice to users and operators is not published",
            );
        }
    }
}

fn monitoring(req: &GateRequest, params: &Params, f: &mut Findings) {
    let m = req.monitoring.as_ref();
    if !m.is_some_and(|m| m.activated) {
        f.block(
            "monitoring.not_activated",
            "/monitoring/activated",
            "monitoring is not activated: it must run from the first minute of operational use",
        );
    }
    // A set, not a scan per trigger and criterion: with both lists long that
    // scan was quadratic in the request's size.
    let metrics: BTreeSet<&str> = m
        .map(|m| m.metrics.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|m| m.trim())
        .collect();
    let covered = |metric: &str| metrics.contains(metric);
    if let Some(plan) = &req.plan {
        let rollback = plan
            .rollback
            .as_ref()
            .map(|r| r.triggers.as_slice())
            .unwrap_or_default();
        let triggers = rollback
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("/plan/rollback/triggers/{i}/metric"), "rollback", t))
            .chain(plan.suspension_triggers.iter().enumerate().map(|(i, t)| {
                (
                    format!("/plan/suspension_triggers/{i}/metric"),
                    "suspension",
                    t,
                )
            }));
        for (path, kind, t) in triggers {
            if let Some(metric) = non_blank(&t.metric)
                && !covered(metric)
            {
                f.block(
                    "monitoring.uncovered_trigger",
                    path,
                    format!("the {kind} trigger on '{metric}' can never fire: the metric is not monitored"),
                );
            }
        }
        for (i, stage) in plan.stages.iter().enumerate() {
            for (j, c) in stage.criteria.iter().enumerate() {
                if let Some(metric) = non_blank(&c.metric)
                    && !covered(metric)
                {
                    f.warn(
                        "monitoring.uncovered_criterion",
                        format!("/plan/stages/{i}/criteria/{j}/metric"),
                        format!(
                            "progression criterion on '{metric}' is not in the monitored metrics"
                        ),
                    );
                }
            }
        }
    }
    let tier = req.system.risk_tier;
    let min = *params.min_intensive_period_hours.get(tier);
    let planned = m.and_then(|m| m.intensive_period_hours);
    if planned.is_none_or(|h| h < min) {
        let planned = planned.map_or("no".to_string(), |h| format!("{h} hours of"));
        f.block(
            "monitoring.initial_period_short",
            "/monitoring/intensive_period_hours",
            format!(
                "{planned} intensive initial monitoring planned; {} risk requires at least {min} hours",
                tier.as_str()
            ),
        );
    }
}

fn supply_chain(req: &GateRequest, f: &mut Findings) {
    if let Some(s) = &req.supply_chain
        && s.third_party
        && !s.controls_confirmed
    {
        f.block(
            "supply_chain.unconfirmed",
            "/supply_chain/controls_confirmed",
            "third-party infrastructure or services are involved but supply-chain controls are not confirmed",
        );
    }
}
