//! Criteria, triggers and the observations they are judged on
//! (docs/decisions.md#observations-criteria-and-triggers).
//!
//! - Where several observations name one metric, the newest (`window_end`)
//!   counts; an observation without `window_end` is older than any with one,
//!   and among equals the later one in the request wins.
//! - A criterion is *met* when `value op threshold` holds and, if it sets
//!   `min_samples`, the observation has at least that many samples.
//! - A trigger is *breached* when `value op threshold` holds for the metric's
//!   newest observation. Triggers state the bad condition.

use std::collections::BTreeMap;

use crate::{Comparison, Criterion, Observation, Timestamp, text};

/// The newest observation per metric.
#[derive(Debug, Default)]
pub struct Observations<'a> {
    newest: BTreeMap<&'a str, &'a Observation>,
}

impl<'a> Observations<'a> {
    /// Indexes observations by metric, keeping the newest of each.
    /// Observations without a metric name cannot be attributed and are skipped.
    pub fn new(observations: &'a [Observation]) -> Self {
        let mut newest: BTreeMap<&'a str, &'a Observation> = BTreeMap::new();
        for obs in observations {
            let Some(metric) = text::non_blank(&obs.metric) else {
                continue;
            };
            match newest.get(metric) {
                Some(seen) if end(seen) > end(obs) => {}
                _ => {
                    newest.insert(metric, obs);
                }
            }
        }
        Self { newest }
    }

    /// The newest observation of `metric`.
    pub fn newest(&self, metric: &str) -> Option<&'a Observation> {
        self.newest.get(metric.trim()).copied()
    }

    /// The newest `window_end` of `metric`, if it was observed with one.
    pub fn last_seen(&self, metric: &str) -> Option<Timestamp> {
        self.newest(metric).and_then(|o| o.window_end)
    }
}

fn end(obs: &Observation) -> Timestamp {
    obs.window_end.unwrap_or(i64::MIN)
}

/// How a criterion stands against the observations.
#[derive(Debug, Clone, PartialEq)]
pub enum CriterionStatus {
    /// `value op threshold` holds with enough samples.
    Met { value: f64 },
    /// The newest observation's value fails the comparison.
    NotMet { value: f64 },
    /// No observation of the metric, or it has no value.
    NoData,
    /// Observed, but with fewer samples than the criterion requires.
    TooFewSamples { samples: u64, min_samples: u64 },
    /// The criterion lacks a metric, operator or threshold: it cannot be judged.
    Incomplete,
}

impl CriterionStatus {
    pub fn is_met(&self) -> bool {
        matches!(self, CriterionStatus::Met { .. })
    }
}

/// The parts of a criterion needed to judge it, when all are present.
pub fn parts(c: &Criterion) -> Option<(&str, Comparison, f64)> {
    Some((text::non_blank(&c.metric)?, c.op?, c.threshold?))
}

/// Judges a progression criterion (the good condition) on the newest observation.
pub fn status(c: &Criterion, obs: &Observations<'_>) -> CriterionStatus {
    let Some((metric, op, threshold)) = parts(c) else {
        return CriterionStatus::Incomplete;
    };
    let Some(o) = obs.newest(metric) else {
        return CriterionStatus::NoData;
    };
    let Some(value) = o.value else {
        return CriterionStatus::NoData;
    };
    if let Some(min) = c.min_samples {
        let samples = o.samples.unwrap_or(0);
        if samples < min {
            return CriterionStatus::TooFewSamples {
                samples,
                min_samples: min,
            };
        }
    }
    if op.holds(value, threshold) {
        CriterionStatus::Met { value }
    } else {
        CriterionStatus::NotMet { value }
    }
}

/// The observed value if a trigger (the bad condition) is breached by the
/// newest observation of its metric. Incomplete triggers never fire; the gate
/// is where a plan's triggers are checked for completeness.
pub fn breached(trigger: &Criterion, obs: &Observations<'_>) -> Option<f64> {
    let (metric, op, threshold) = parts(trigger)?;
    let value = obs.newest(metric)?.value?;
    op.holds(value, threshold).then_some(value)
}

/// `metric op threshold` as a plan would write it, for messages.
pub fn describe(c: &Criterion) -> String {
    let metric = text::non_blank(&c.metric).unwrap_or("<metric?>");
    let op = c.op.map(Comparison::symbol).unwrap_or("<op?>");
    match c.threshold {
        Some(t) => format!("{metric} {op} {t}"),
        None => format!("{metric} {op} <threshold?>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(metric: &str, value: f64, samples: u64, end: i64) -> Observation {
        Observation {
            metric: Some(metric.into()),
            value: Some(value),
            samples: Some(samples),
            window_end: Some(end),
        }
    }

    fn crit(metric: &str, op: Comparison, threshold: f64, min: Option<u64>) -> Criterion {
        Criterion {
            metric: Some(metric.into()),
            op: Some(op),
            threshold: Some(threshold),
            min_samples: min,
        }
    }

    #[test]
    fn the_newest_observation_of_a_metric_counts() {
        let list = vec![obs("err", 0.5, 10, 200), obs("err", 0.01, 10, 100)];
        let o = Observations::new(&list);
        assert_eq!(o.newest("err").and_then(|o| o.value), Some(0.5));
        assert_eq!(o.last_seen("err"), Some(200));
    }

    #[test]
    fn a_criterion_needs_enough_samples_to_be_met() {
        let list = vec![obs("err", 0.01, 10, 1)];
        let o = Observations::new(&list);
        let c = crit("err", Comparison::Le, 0.02, Some(1000));
        assert_eq!(
            status(&c, &o),
            CriterionStatus::TooFewSamples {
                samples: 10,
                min_samples: 1000
            }
        );
        let c = crit("err", Comparison::Le, 0.02, None);
        assert!(status(&c, &o).is_met());
    }

    #[test]
    fn unobserved_and_incomplete_criteria_are_not_met() {
        let o = Observations::new(&[]);
        assert_eq!(
            status(&crit("err", Comparison::Le, 0.02, None), &o),
            CriterionStatus::NoData
        );
        let incomplete = Criterion {
            metric: Some("err".into()),
            op: None,
            threshold: Some(1.0),
            min_samples: None,
        };
        assert_eq!(status(&incomplete, &o), CriterionStatus::Incomplete);
    }

    #[test]
    fn a_trigger_fires_on_the_bad_condition_only() {
        let list = vec![obs("err", 0.06, 1, 1)];
        let o = Observations::new(&list);
        assert_eq!(
            breached(&crit("err", Comparison::Gt, 0.05, None), &o),
            Some(0.06)
        );
        assert_eq!(breached(&crit("err", Comparison::Gt, 0.1, None), &o), None);
        assert_eq!(
            breached(&crit("other", Comparison::Gt, 0.0, None), &o),
            None
        );
    }
}
