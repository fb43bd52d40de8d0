//! Thresholds that vary by risk tier.

use serde::Deserialize;

use crate::{RiskTier, Severity};

/// A position on the four-step scale shared by risk tiers and severities,
/// as written in `params.json` (`"low"`, `"medium"`, `"high"`, `"critical"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    Medium,
    High,
    Critical,
}

impl From<Level> for Severity {
    fn from(l: Level) -> Self {
        match l {
            Level::Low => Severity::Low,
            Level::Medium => Severity::Medium,
            Level::High => Severity::High,
            Level::Critical => Severity::Critical,
        }
    }
}

impl From<Level> for RiskTier {
    fn from(l: Level) -> Self {
        match l {
            Level::Low => RiskTier::Low,
            Level::Medium => RiskTier::Medium,
            Level::High => RiskTier::High,
            Level::Critical => RiskTier::Critical,
        }
    }
}

/// One value per risk tier, as written in `params.json`:
/// `{"low": …, "medium": …, "high": …, "critical": …}`.
///
/// Every tier must be present: a policy parameter table with a hole would
/// silently fall back to something nobody chose.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerTier<T> {
    pub low: T,
    pub medium: T,
    pub high: T,
    pub critical: T,
}

impl<T> PerTier<T> {
    /// Builds a table from four values, lowest tier first.
    pub const fn new(low: T, medium: T, high: T, critical: T) -> Self {
        Self {
            low,
            medium,
            high,
            critical,
        }
    }

    /// The value for `tier`.
    pub fn get(&self, tier: RiskTier) -> &T {
        match tier {
            RiskTier::Low => &self.low,
            RiskTier::Medium => &self.medium,
            RiskTier::High => &self.high,
            RiskTier::Critical => &self.critical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_returns_the_tiers_value() {
        let t = PerTier::new(1, 2, 3, 4);
        assert_eq!(*t.get(RiskTier::Low), 1);
        assert_eq!(*t.get(RiskTier::Critical), 4);
    }
}
