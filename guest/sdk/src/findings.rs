//! Collecting findings and turning them into a decision.
//!
//! Rules report every failing check, not just the first, so a rule
//! never returns early: it adds a finding and goes on. The outcome is derived
//! from the findings at the end, which keeps "a deny always carries at least
//! one finding that says why" true by construction.

use crate::{
    Finding, FindingSeverity, GateDecision, GateOutcome, MonitoringDecision, MonitoringOutcome,
    Obligation, ProgressionDecision, ProgressionOutcome, Timestamp,
};

/// Findings and obligations of one decision, in the order they were found.
#[derive(Debug, Default)]
pub struct Findings {
    findings: Vec<Finding>,
    obligations: Vec<Obligation>,
}

impl Findings {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a finding of any severity.
    pub fn add(
        &mut self,
        severity: FindingSeverity,
        code: &str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> &mut Self {
        self.findings.push(Finding {
            code: code.to_string(),
            severity,
            message: message.into(),
            path: path.into(),
            controls: Vec::new(),
        });
        self
    }

    /// Adds a blocking finding: the decision cannot be positive.
    pub fn block(
        &mut self,
        code: &str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> &mut Self {
        self.add(FindingSeverity::Blocking, code, path, message)
    }

    /// Adds a warning: worth a human's attention, not blocking.
    pub fn warn(
        &mut self,
        code: &str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> &mut Self {
        self.add(FindingSeverity::Warning, code, path, message)
    }

    /// Adds an informational finding.
    pub fn info(
        &mut self,
        code: &str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> &mut Self {
        self.add(FindingSeverity::Info, code, path, message)
    }

    /// Adds an obligation the deployment must honour if the decision is positive.
    pub fn oblige(
        &mut self,
        code: &str,
        message: impl Into<String>,
        until: Option<Timestamp>,
    ) -> &mut Self {
        self.obligations.push(Obligation {
            code: code.to_string(),
            message: message.into(),
            until,
        });
        self
    }

    /// Any blocking finding so far.
    pub fn has_blocking(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == FindingSeverity::Blocking)
    }

    /// A finding with exactly this code was added.
    pub fn contains(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    /// The findings so far.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The obligations so far.
    pub fn obligations(&self) -> &[Obligation] {
        &self.obligations
    }

    /// `deny` if any finding blocks, else `allow` with `first_stage`.
    /// Obligations are kept only on `allow`: a denied release owes nothing.
    pub fn into_gate(self, first_stage: Option<String>) -> GateDecision {
        if self.has_blocking() {
            GateDecision {
                outcome: GateOutcome::Deny,
                findings: self.findings,
                obligations: Vec::new(),
                first_stage: None,
            }
        } else {
            GateDecision {
                outcome: GateOutcome::Allow,
                findings: self.findings,
                obligations: self.obligations,
                first_stage,
            }
        }
    }

    /// A progression decision with the given outcome. Stage and traffic are
    /// kept only on `promote`, the rollback procedure only on `rollback`.
    pub fn into_progression(
        self,
        outcome: ProgressionOutcome,
        next_stage: Option<String>,
        traffic_percent: Option<f64>,
        rollback_to: Option<String>,
    ) -> ProgressionDecision {
        let promote = outcome == ProgressionOutcome::Promote;
        ProgressionDecision {
            outcome,
            findings: self.findings,
            obligations: if promote {
                self.obligations
            } else {
                Vec::new()
            },
            next_stage: next_stage.filter(|_| promote),
            traffic_percent: traffic_percent.filter(|_| promote),
            rollback_to: rollback_to.filter(|_| outcome == ProgressionOutcome::Rollback),
        }
    }

    /// A monitoring decision with the given outcome.
    pub fn into_monitoring(self, outcome: MonitoringOutcome) -> MonitoringDecision {
        MonitoringDecision {
            outcome,
            findings: self.findings,
            obligations: self.obligations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocking_finding_denies_and_drops_obligations() {
        let mut f = Findings::new();
        f.oblige("monitoring.intensive", "watch closely", Some(1));
        f.block("plan.missing", "/plan", "no plan");
        let d = f.into_gate(Some("pilot".into()));
        assert_eq!(d.outcome, GateOutcome::Deny);
        assert!(d.obligations.is_empty());
        assert_eq!(d.first_stage, None);
        assert_eq!(d.findings[0].path, "/plan");
    }

    #[test]
    fn warnings_and_info_do_not_block() {
        let mut f = Findings::new();
        f.warn("x.y", "", "careful")
            .info("review.conditions", "/review", "conditions");
        let d = f.into_gate(Some("pilot".into()));
        assert_eq!(d.outcome, GateOutcome::Allow);
        assert_eq!(d.first_stage.as_deref(), Some("pilot"));
    }

    #[test]
    fn progression_keeps_stage_only_on_promote() {
        let d = Findings::new().into_progression(
            ProgressionOutcome::Hold,
            Some("general".into()),
            Some(100.0),
            Some("route back".into()),
        );
        assert_eq!(d.next_stage, None);
        assert_eq!(d.traffic_percent, None);
        assert_eq!(d.rollback_to, None);
    }
}
