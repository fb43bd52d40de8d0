//! Criteria, triggers and the observations they are judged on
//! (docs/decisions.md#observations-criteria-and-triggers).
//!
//! - Where several observations name one metric, the newest (`window_end`)
//!   counts; an observation without `window_end` is older than any with one,
//!   and among equals the later one in the request wins.
//! - An observation whose `window_end` is after the request's `now` never
//!   counts: not for criteria, not for triggers, not as proof that a metric
//!   is still watched. Otherwise one far-future value (a skewed clock, a
//!   typo, or a hostile sender) would stay "the newest" forever and mask
//!   every real observation after it. Such observations are reported with
//!   the warning `observation.future` ([`Observations::report_future`]).
//! - A criterion is *met* when `value op threshold` holds and, if it sets
//!   `min_samples`, the observation has at least that many samples.
//! - A trigger is *breached* when `value op threshold` holds for the metric's
//!   newest observation. Triggers state the bad condition.
//!
//! Cost: indexing is O(n log m) for n observations of m metrics, and each
//! criterion or trigger is one O(log m) lookup, so no rule built on this
//! module is quadratic in the request's size.

use std::collections::BTreeMap;

use crate::time::rfc3339;
use crate::{Comparison, Criterion, Findings, Observation, Timestamp, text};

/// The finding code of an observation dated after `now`.
pub const FUTURE_OBSERVATION: &str = "observation.future";

/// The newest observation per metric as of a request's `now`.
#[derive(Debug)]
pub struct Observations<'a> {
    newest: BTreeMap<&'a str, &'a Observation>,
    /// Observations ignored because they end after `now`: (index in the
    /// request, window end), in request order.
    future: Vec<(usize, Timestamp)>,
    now: Timestamp,
}

impl<'a> Observations<'a> {
    /// Indexes observations by metric as of `now`, keeping the newest of
    /// each. Observations without a metric name cannot be attributed and are
    /// skipped; observations ending after `now` are set aside (see
    /// [`Observations::future`]) and never count.
    pub fn as_of(observations: &'a [Observation], now: Timestamp) -> Self {
        let mut newest: BTreeMap<&'a str, &'a Observation> = BTreeMap::new();
        let mut future = Vec::new();
        for (i, obs) in observations.iter().enumerate() {
            if let Some(end) = obs.window_end.filter(|end| *end > now) {
                future.push((i, end));
                continue;
            }
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
        Self {
            newest,
            future,
            now,
        }
    }

    /// The newest observation of `metric` that ends no later than `now`.
    pub fn newest(&self, metric: &str) -> Option<&'a Observation> {
        self.newest.get(metric.trim()).copied()
    }

    /// The newest `window_end` of `metric`, if it was observed with one
    /// (never after `now`).
    pub fn last_seen(&self, metric: &str) -> Option<Timestamp> {
        self.newest(metric).and_then(|o| o.window_end)
    }

    /// The observations that were ignored because their window ends after
    /// `now`: (index in the request's `observations`, window end).
    pub fn future(&self) -> &[(usize, Timestamp)] {
        &self.future
    }

    /// Adds one warning `observation.future` per ignored observation, with
    /// the JSON pointer of its `window_end`. A warning, not a block: the
    /// observation simply does not count, and the rules decide on the rest.
    pub fn report_future(&self, f: &mut Findings) {
        for &(i, end) in &self.future {
            f.warn(
                FUTURE_OBSERVATION,
                format!("/observations/{i}/window_end"),
                format!(
                    "observation window ends at {}, after now ({}): it is ignored until then",
                    rfc3339(end),
                    rfc3339(self.now)
                ),
            );
        }
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

    /// The request's `now` in these tests, after every window they use
    /// unless a test says otherwise.
    const NOW: Timestamp = 1_000;

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
        let o = Observations::as_of(&list, NOW);
        assert_eq!(o.newest("err").and_then(|o| o.value), Some(0.5));
        assert_eq!(o.last_seen("err"), Some(200));
    }

    #[test]
    fn a_criterion_needs_enough_samples_to_be_met() {
        let list = vec![obs("err", 0.01, 10, 1)];
        let o = Observations::as_of(&list, NOW);
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
        let o = Observations::as_of(&[], NOW);
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
        let o = Observations::as_of(&list, NOW);
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

    #[test]
    fn a_far_future_observation_is_never_the_newest() {
        let list = vec![
            obs("err", 0.9, 10, 900),
            obs("err", 0.0, 1_000_000, i64::MAX),
        ];
        let o = Observations::as_of(&list, NOW);
        assert_eq!(o.newest("err").and_then(|o| o.value), Some(0.9));
        assert_eq!(o.last_seen("err"), Some(900));
        assert_eq!(o.future(), &[(1, i64::MAX)]);
    }

    #[test]
    fn a_future_observation_neither_meets_a_criterion_nor_hides_a_breach() {
        let list = vec![obs("err", 0.001, 1_000_000, NOW + 1)];
        let o = Observations::as_of(&list, NOW);
        let c = crit("err", Comparison::Le, 0.02, None);
        assert_eq!(status(&c, &o), CriterionStatus::NoData);
        assert_eq!(o.last_seen("err"), None);

        let list = vec![obs("err", 0.9, 10, NOW - 1), obs("err", 0.0, 10, NOW + 1)];
        let o = Observations::as_of(&list, NOW);
        let trigger = crit("err", Comparison::Gt, 0.05, None);
        assert_eq!(breached(&trigger, &o), Some(0.9));
    }

    #[test]
    fn an_observation_ending_exactly_at_now_counts() {
        let list = vec![obs("err", 0.01, 10, NOW)];
        let o = Observations::as_of(&list, NOW);
        assert_eq!(o.last_seen("err"), Some(NOW));
        assert!(o.future().is_empty());
    }

    #[test]
    fn each_future_observation_is_reported_as_a_warning_at_its_window_end() {
        let list = vec![
            obs("err", 0.01, 10, NOW),
            obs("err", 0.01, 10, NOW + 60_000),
            obs("lat", 0.01, 10, NOW + 1),
        ];
        let o = Observations::as_of(&list, NOW);
        let mut f = Findings::new();
        o.report_future(&mut f);
        let found: Vec<_> = f
            .findings()
            .iter()
            .map(|x| (x.code.as_str(), x.severity, x.path.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    FUTURE_OBSERVATION,
                    crate::FindingSeverity::Warning,
                    "/observations/1/window_end"
                ),
                (
                    FUTURE_OBSERVATION,
                    crate::FindingSeverity::Warning,
                    "/observations/2/window_end"
                ),
            ]
        );
        let message = &f.findings()[0].message;
        assert!(
            message.contains(&rfc3339(NOW + 60_000)) && message.contains(&rfc3339(NOW)),
            "{message}"
        );
    }
}
