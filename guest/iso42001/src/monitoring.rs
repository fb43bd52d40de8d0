//! The `monitoring` decision: is live behaviour within the plan's limits,
//! or must the deployment roll back or be suspended?
//!
//! Silence is a finding: during the intensive period after deployment, a
//! monitored metric that has not been observed recently raises
//! `monitoring.stale`, because monitoring that has stopped looks exactly like
//! a healthy system.
//!
//! Cost: O(n log n) in the request's size. Observations are indexed once
//! (O(n log m)); each trigger and criterion is a map lookup, and the set of
//! monitored metrics is a `BTreeSet`.

use std::collections::BTreeSet;

use stagegate_sdk::criteria::{self, CriterionStatus, FUTURE_OBSERVATION, Observations, describe};
use stagegate_sdk::text::non_blank;
use stagegate_sdk::time::{MINUTE_MS, hours, rfc3339};
use stagegate_sdk::{
    FindingSeverity, Findings, MonitoringDecision, MonitoringOutcome, MonitoringRequest,
};

use crate::params::Params;
use crate::triggers::{self, Breach};

/// Decides a monitoring request under `params`.
pub fn decide(req: &MonitoringRequest, params: &Params) -> MonitoringDecision {
    let mut f = Findings::new();
    // Observations dated after `now` never count (see `stagegate_sdk::criteria`).
    let obs = Observations::as_of(&req.observations, req.now);
    obs.report_future(&mut f);
    let breach = triggers::check(&req.plan, &obs, &mut f);
    let tier = req.system.risk_tier;

    let stage = req
        .plan
        .stages
        .iter()
        .position(|s| non_blank(&s.name) == Some(req.current_stage.trim()));
    if stage.is_none() {
        f.warn(
            "monitoring.unknown_stage",
            "/current_stage",
            format!(
                "current stage '{}' is not in the deployment plan: its criteria cannot be watched",
                req.current_stage
            ),
        );
    }
    let criteria = stage
        .map(|i| req.plan.stages[i].criteria.as_slice())
        .unwrap_or_default();

    let intensive_hours = *params.min_intensive_period_hours.get(tier);
    let intensive_until = req.deployed_at.saturating_add(hours(intensive_hours));
    if req.now < intensive_until {
        let max_silence = *params.max_silence_minutes.get(tier);
        let oldest_allowed = req
            .now
            .saturating_sub((max_silence * MINUTE_MS as f64) as i64);
        let rollback = req
            .plan
            .rollback
            .as_ref()
            .map(|r| r.triggers.as_slice())
            .unwrap_or_default();
        let monitored: BTreeSet<&str> = rollback
            .iter()
            .chain(&req.plan.suspension_triggers)
            .chain(criteria)
            .filter_map(|c| non_blank(&c.metric))
            .collect();
        for metric in monitored {
            match obs.last_seen(metric) {
                Some(seen) if seen >= oldest_allowed => {}
                Some(seen) => {
                    f.warn(
                        "monitoring.stale",
                        "/observations",
                        format!(
                            "'{metric}' was last observed at {}, more than {max_silence} minutes ago, during the intensive period (until {})",
                            rfc3339(seen),
                            rfc3339(intensive_until)
                        ),
                    );
                }
                None => {
                    f.warn(
                        "monitoring.stale",
                        "/observations",
                        format!(
                            "'{metric}' has no observation during the intensive period (until {})",
                            rfc3339(intensive_until)
                        ),
                    );
                }
            }
        }
        f.oblige(
            "monitoring.intensive",
            format!(
                "intensive monitoring: every monitored metric at least every {max_silence} minutes"
            ),
            Some(intensive_until),
        );
    }

    for (j, c) in criteria.iter().enumerate() {
        let path = format!("/plan/stages/{}/criteria/{j}", stage.unwrap_or_default());
        let why = match criteria::status(c, &obs) {
            CriterionStatus::Met { .. } => continue,
            CriterionStatus::NotMet { value } => format!("observed {value}"),
            CriterionStatus::NoData => "no observation".to_string(),
            CriterionStatus::TooFewSamples {
                samples,
                min_samples,
            } => {
                format!("{samples} of {min_samples} required samples")
            }
            CriterionStatus::Incomplete => "it lacks a metric, op or threshold".to_string(),
        };
        f.warn(
            "monitoring.criterion_drift",
            path,
            format!(
                "criterion '{}' of the current stage is not met: {why}",
                describe(c)
            ),
        );
    }

    // Stale data and drift alert a human; they block nothing by themselves.
    // A future-dated observation does not: it is ignored, and what it leaves
    // unobserved is already `monitoring.stale` or `monitoring.criterion_drift`.
    let alert = f
        .findings()
        .iter()
        .any(|x| x.severity != FindingSeverity::Info && x.code != FUTURE_OBSERVATION);
    let outcome = match breach {
        Some(Breach::Suspend) => MonitoringOutcome::Suspend,
        Some(Breach::Rollback) => MonitoringOutcome::Rollback,
        None if alert => MonitoringOutcome::Alert,
        None => MonitoringOutcome::Healthy,
    };
    f.into_monitoring(outcome)
}
