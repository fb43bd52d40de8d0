//! The policy's thresholds, read from the bundle's `params.json`.
//!
//! Every key is optional and falls back to its default ([`Params::default`],
//! tabled in docs/decisions.md#parameters-per-risk-tier); unknown keys are
//! an error, because a misspelt threshold that silently keeps its default is
//! exactly the kind of mistake an auditor would not catch.

use serde::Deserialize;
use stagegate_sdk::tiers::Level;
use stagegate_sdk::{PerTier, RiskTier, Severity};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Risk tiers that may be deployed at all (`risk.prohibited` otherwise).
    pub deployable_tiers: Vec<Level>,
    /// Fewest stages a plan must have (`plan.staging_required`).
    pub min_stages: PerTier<u32>,
    /// Largest traffic share of the first stage (`plan.first_stage_too_large`).
    pub max_first_stage_percent: PerTier<f64>,
    /// Highest severity an open deficiency may have without a documented
    /// acceptance; `null` means every open deficiency needs one.
    pub acceptable_severity: PerTier<Option<Level>>,
    /// Oldest an authorisation may be (`authorisation.expired`).
    pub authorisation_max_age_days: PerTier<f64>,
    /// Shortest intensive monitoring period after deployment.
    pub min_intensive_period_hours: PerTier<f64>,
    /// Longest a monitored metric may go unobserved in the intensive period.
    pub max_silence_minutes: PerTier<f64>,
    /// Whether every passed verification result must come from a signed
    /// statement the host verified (`verification.unattested` otherwise).
    pub require_attested_verification: PerTier<bool>,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            deployable_tiers: vec![Level::Low, Level::Medium, Level::High, Level::Critical],
            min_stages: PerTier::new(1, 2, 3, 3),
            max_first_stage_percent: PerTier::new(100.0, 25.0, 5.0, 0.0),
            acceptable_severity: PerTier::new(
                Some(Level::Medium),
                Some(Level::Low),
                Some(Level::Low),
                None,
            ),
            authorisation_max_age_days: PerTier::new(365.0, 180.0, 90.0, 30.0),
            min_intensive_period_hours: PerTier::new(24.0, 72.0, 168.0, 336.0),
            max_silence_minutes: PerTier::new(60.0, 30.0, 15.0, 5.0),
            require_attested_verification: PerTier::new(false, false, true, true),
        }
    }
}

impl Params {
    /// Parses `params.json`; the error names the offending key and position.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(text).map_err(|e| format!("params.json: {e}"))
    }

    pub fn deployable(&self, tier: RiskTier) -> bool {
        self.deployable_tiers
            .iter()
            .any(|l| RiskTier::from(*l) == tier)
    }

    /// The highest severity an open deficiency may have unaccepted, if any.
    pub fn acceptable_severity(&self, tier: RiskTier) -> Option<Severity> {
        self.acceptable_severity.get(tier).map(Severity::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_params_mean_the_spec_defaults() {
        assert_eq!(Params::parse("").unwrap(), Params::default());
        assert_eq!(Params::parse("{}").unwrap(), Params::default());
    }

    #[test]
    fn a_partial_table_overrides_only_what_it_names() {
        let p = Params::parse(r#"{"deployable_tiers": ["low"], "min_stages": {"low": 2, "medium": 2, "high": 4, "critical": 5}}"#).unwrap();
        assert!(!p.deployable(RiskTier::High));
        assert_eq!(*p.min_stages.get(RiskTier::High), 4);
        assert_eq!(*p.max_silence_minutes.get(RiskTier::High), 15.0);
    }

    #[test]
    fn a_misspelt_key_is_an_error_naming_it() {
        let err = Params::parse(r#"{"min_stage": {}}"#).unwrap_err();
        assert!(err.contains("min_stage"), "{err}");
        let err = Params::parse(r#"{"min_stages": {"low": 1}}"#).unwrap_err();
        assert!(err.contains("medium"), "{err}");
    }

    #[test]
    fn high_and_critical_tiers_require_attested_verification_by_default() {
        let p = Params::default();
        assert!(!*p.require_attested_verification.get(RiskTier::Low));
        assert!(!*p.require_attested_verification.get(RiskTier::Medium));
        assert!(*p.require_attested_verification.get(RiskTier::High));
        assert!(*p.require_attested_verification.get(RiskTier::Critical));
    }

    #[test]
    fn critical_tier_accepts_no_unaccepted_deficiency_by_default() {
        assert_eq!(
            Params::default().acceptable_severity(RiskTier::Critical),
            None
        );
        assert_eq!(
            Params::default().acceptable_severity(RiskTier::Low),
            Some(Severity::Medium)
        );
    }
}
