//! Charts drawn on the server as SVG geometry: the templates only place
//! what is computed here, so a page needs no script to be read.
//!
//! Every mark carries its meaning in text too (a `<title>` per point, a
//! legend, and the tables beside each chart), so the charts are readable
//! without colour and by screen readers.

use crate::decision::Timestamp;
use crate::decision::request::{Comparison, Criterion, Plan};
use crate::records::chain::Chained;
use crate::records::console::ObservationPoint;
use crate::records::model::Event;

/// Drawing area, in SVG user units.
pub const WIDTH: f64 = 880.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 16.0;
/// Timeline plot height, and the lane of decision marks under it.
const TIMELINE_PLOT: f64 = 180.0;
const LANE: f64 = 36.0;
const METRIC_PLOT: f64 = 160.0;
const AXIS: f64 = 36.0;

/// How an outcome is drawn: a class (colour) and a shape, so the two
/// kinds of signal never depend on colour alone.
pub fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "allow" | "promote" | "healthy" => "good",
        "hold" | "alert" => "warn",
        "deny" | "rollback" | "suspend" => "bad",
        _ => "info",
    }
}

/// A label on an axis.
#[derive(Debug, Clone)]
pub struct Tick {
    pub x: f64,
    pub y: f64,
    pub anchor: &'static str,
    pub label: String,
}

/// A horizontal threshold line.
#[derive(Debug, Clone)]
pub struct Rule {
    pub y: f64,
    pub class: &'static str,
    pub label: String,
    pub label_y: f64,
}

/// A decision mark in the timeline's lane.
#[derive(Debug, Clone)]
pub struct Mark {
    pub x: f64,
    pub y: f64,
    pub class: &'static str,
    /// An SVG path drawing the mark's shape around (x, y).
    pub shape: String,
    pub title: String,
    pub href: String,
}

/// A stage label on the traffic line.
#[derive(Debug, Clone)]
pub struct StageLabel {
    pub x: f64,
    pub y: f64,
    pub anchor: &'static str,
    pub text: String,
}

/// Time and traffic of a deployment, with its decisions.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub height: f64,
    pub plot_top: f64,
    pub plot_bottom: f64,
    pub plot_left: f64,
    pub plot_right: f64,
    pub lane_y: f64,
    /// The traffic percent as a step line (an SVG path).
    pub path: String,
    pub stages: Vec<StageLabel>,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub marks: Vec<Mark>,
}

/// One monitored metric.
#[derive(Debug, Clone)]
pub struct MetricChart {
    pub metric: String,
    pub height: f64,
    pub plot_top: f64,
    pub plot_bottom: f64,
    pub plot_left: f64,
    pub plot_right: f64,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub rules: Vec<Rule>,
    /// Points as one SVG path of tiny segments: thousands of observations
    /// cost one element, not thousands.
    pub points: String,
    pub count: usize,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub latest: Option<(Timestamp, f64)>,
    /// Thresholds in text, for the table beside the chart.
    pub thresholds: Vec<String>,
}

/// Maps times onto the x axis.
#[derive(Debug, Clone, Copy)]
struct TimeScale {
    start: i64,
    end: i64,
}

impl TimeScale {
    fn new(mut start: i64, mut end: i64) -> Self {
        if end <= start {
            start -= 30_000;
            end += 30_000;
        }
        // A little air on both sides.
        let pad = (end - start) / 20;
        TimeScale {
            start: start - pad,
            end: end + pad,
        }
    }

    fn x(&self, t: i64) -> f64 {
        let span = (self.end - self.start) as f64;
        LEFT + (t - self.start) as f64 / span * (WIDTH - LEFT - RIGHT)
    }

    fn ticks(&self, y: f64) -> Vec<Tick> {
        (0..=4)
            .map(|i| {
                let t = self.start + (self.end - self.start) * i / 4;
                Tick {
                    x: self.x(t),
                    y,
                    anchor: match i {
                        0 => "start",
                        4 => "end",
                        _ => "middle",
                    },
                    label: short_time(t, self.end - self.start),
                }
            })
            .collect()
    }
}

/// `HH:MM:SS.mmm` for spans under a minute, `HH:MM:SS` under a day,
/// `MM-DD HH:MM` beyond (UTC).
fn short_time(ms: i64, span: i64) -> String {
    let full = Timestamp(ms - ms.rem_euclid(1000)).to_string();
    if span < 60_000 {
        format!(
            "{}.{:03}",
            full.get(11..19).unwrap_or(&full),
            ms.rem_euclid(1000)
        )
    } else if span < 86_400_000 {
        full.get(11..19).unwrap_or(&full).to_string()
    } else {
        format!(
            "{} {}",
            full.get(5..10).unwrap_or(&full),
            full.get(11..16).unwrap_or("")
        )
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// A value as people read thresholds: no trailing zeros.
pub fn number(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn shape(class: &str, x: f64, y: f64) -> String {
    let (x, y) = (fmt(x), fmt(y));
    match class {
        // A circle (as a path), a triangle, a square.
        "good" => format!("M{x} {y} m-6 0 a6 6 0 1 0 12 0 a6 6 0 1 0 -12 0z"),
        "warn" => format!("M{x} {y} m0 -7 l7 12 h-14z"),
        "bad" => format!("M{x} {y} m-6 -6 h12 v12 h-12z"),
        _ => format!("M{x} {y} m0 -7 l7 7 l-7 7 l-7 -7z"),
    }
}

/// The deployment's traffic over time from its history, with every
/// decision marked in a lane below by outcome.
pub fn timeline(
    deployed_at: Timestamp,
    history: &[Event],
    decisions: &[Chained],
    decision_href: impl Fn(&str) -> String,
) -> Timeline {
    let start = deployed_at.millis();
    let end = history
        .iter()
        .map(|e| e.at.millis())
        .chain(decisions.iter().map(|d| d.entry.at))
        .chain(std::iter::once(start))
        .max()
        .unwrap_or(start);
    let first = history
        .iter()
        .map(|e| e.at.millis())
        .chain(decisions.iter().map(|d| d.entry.at))
        .chain(std::iter::once(start))
        .min()
        .unwrap_or(start);
    let ts = TimeScale::new(first, end);
    let plot_top = TOP;
    let plot_bottom = TOP + TIMELINE_PLOT;
    let y = |pct: f64| plot_bottom - pct.clamp(0.0, 100.0) / 100.0 * TIMELINE_PLOT;
    let mut path = String::new();
    let mut stages = Vec::new();
    let mut last: Option<(f64, String)> = None;
    let mut previous_y = plot_bottom;
    for e in history {
        let x = ts.x(e.at.millis());
        // A deployment that is rolled back or suspended exposes no one,
        // whatever stage it stopped at.
        let exposed = if e.status == crate::records::DeploymentStatus::Active {
            e.traffic_percent
        } else {
            0.0
        };
        let yy = y(exposed);
        if path.is_empty() {
            path.push_str(&format!("M{} {}", fmt(x), fmt(yy)));
        } else {
            path.push_str(&format!(" H{} V{}", fmt(x), fmt(yy)));
        }
        let label = if e.status == crate::records::DeploymentStatus::Active {
            format!("{} {}%", e.stage, number(e.traffic_percent))
        } else {
            format!("{} at {}", e.status.as_str().replace('_', " "), e.stage)
        };
        if last.as_ref().is_none_or(|(_, l)| *l != label) {
            // Labels near the right edge end at their point instead.
            let (lx, anchor) = if x > LEFT + (WIDTH - LEFT - RIGHT) * 0.7 {
                (x - 4.0, "end")
            } else {
                (x + 4.0, "start")
            };
            stages.push(StageLabel {
                x: lx,
                // Above the line on both sides of a step.
                y: (yy.min(previous_y) - 6.0).max(plot_top + 10.0),
                anchor,
                text: label.clone(),
            });
            last = Some((x, label));
        }
        previous_y = yy;
    }
    if !path.is_empty() {
        path.push_str(&format!(" H{}", fmt(ts.x(end))));
    }
    let lane_y = plot_bottom + LANE / 2.0 + 4.0;
    let marks = decisions
        .iter()
        .map(|d| {
            let class = outcome_class(&d.entry.outcome);
            let x = ts.x(d.entry.at);
            let codes = if d.entry.codes.is_empty() {
                String::new()
            } else {
                format!(": {}", d.entry.codes.join(", "))
            };
            Mark {
                x,
                y: lane_y,
                class,
                shape: shape(class, x, lane_y),
                title: format!(
                    "{} {} at {}{}",
                    d.entry.kind,
                    d.entry.outcome,
                    Timestamp(d.entry.at),
                    codes
                ),
                href: decision_href(&d.entry.decision_id),
            }
        })
        .collect();
    let height = plot_bottom + LANE + AXIS;
    Timeline {
        height,
        plot_top,
        plot_bottom,
        plot_left: LEFT,
        plot_right: WIDTH - RIGHT,
        lane_y,
        path,
        stages,
        x_ticks: ts.ticks(plot_bottom + LANE + 18.0),
        y_ticks: [0.0, 25.0, 50.0, 75.0, 100.0]
            .into_iter()
            .map(|p| Tick {
                anchor: "end",
                x: LEFT - 8.0,
                y: y(p) + 4.0,
                label: format!("{}%", number(p)),
            })
            .collect(),
        marks,
    }
}

fn op(c: Comparison) -> &'static str {
    match c {
        Comparison::Lt => "<",
        Comparison::Le => "≤",
        Comparison::Gt => ">",
        Comparison::Ge => "≥",
    }
}

/// The thresholds of the plan on `metric`: (class, label, value), stages
/// with the same criterion in one label.
fn thresholds(plan: &Plan, metric: &str) -> Vec<(&'static str, String, f64)> {
    let mut merged: Vec<(&'static str, String, f64)> = Vec::new();
    let mut stage_rules: Vec<(Vec<String>, &'static str, f64)> = Vec::new();
    let on = |c: &Criterion| c.metric.as_deref() == Some(metric);
    for s in &plan.stages {
        for c in s.criteria.iter().filter(|c| on(c)) {
            if let (Some(o), Some(t)) = (c.op, c.threshold) {
                let name = s.name.clone().unwrap_or_else(|| "stage".into());
                match stage_rules
                    .iter_mut()
                    .find(|(_, op2, t2)| *op2 == op(o) && *t2 == t)
                {
                    Some(rule) => rule.0.push(name),
                    None => stage_rules.push((vec![name], op(o), t)),
                }
            }
        }
    }
    for (names, o, t) in stage_rules {
        merged.push((
            "criterion",
            format!("{} criterion {o} {}", names.join(", "), number(t)),
            t,
        ));
    }
    merged.extend(triggers(plan, metric));
    merged
}

/// The plan's rollback and suspension triggers on `metric`.
fn triggers(plan: &Plan, metric: &str) -> Vec<(&'static str, String, f64)> {
    let mut out = Vec::new();
    let on = |c: &Criterion| c.metric.as_deref() == Some(metric);
    if let Some(r) = &plan.rollback {
        for c in r.triggers.iter().filter(|c| on(c)) {
            if let (Some(o), Some(t)) = (c.op, c.threshold) {
                out.push((
                    "trigger",
                    format!("rollback trigger {} {}", op(o), number(t)),
                    t,
                ));
            }
        }
    }
    for c in plan.suspension_triggers.iter().filter(|c| on(c)) {
        if let (Some(o), Some(t)) = (c.op, c.threshold) {
            out.push((
                "trigger",
                format!("suspension trigger {} {}", op(o), number(t)),
                t,
            ));
        }
    }
    out
}

/// The metrics a deployment is judged on: those the plan names, then any
/// other that was observed.
pub fn metric_names(plan: &Plan, observations: &[ObservationPoint]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let criteria = plan
        .stages
        .iter()
        .flat_map(|s| s.criteria.iter())
        .chain(plan.rollback.iter().flat_map(|r| r.triggers.iter()))
        .chain(plan.suspension_triggers.iter());
    for c in criteria {
        if let Some(m) = &c.metric
            && !names.contains(m)
        {
            names.push(m.clone());
        }
    }
    for o in observations {
        if !names.contains(&o.metric) {
            names.push(o.metric.clone());
        }
    }
    names
}

/// One chart per monitored metric, sharing the time axis of the
/// deployment's observations.
pub fn metric_charts(plan: &Plan, observations: &[ObservationPoint]) -> Vec<MetricChart> {
    let times = observations.iter().map(|o| o.window_end.millis());
    let (first, end) = times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
    let ts = if first == i64::MAX {
        let now = Timestamp::now().millis();
        TimeScale::new(now, now)
    } else {
        TimeScale::new(first, end)
    };
    metric_names(plan, observations)
        .into_iter()
        .map(|metric| {
            let points: Vec<&ObservationPoint> =
                observations.iter().filter(|o| o.metric == metric).collect();
            let rules_of = thresholds(plan, &metric);
            let vmax = points
                .iter()
                .map(|o| o.value)
                .chain(rules_of.iter().map(|r| r.2))
                .filter(|v| v.is_finite())
                .fold(0.0_f64, f64::max);
            let vmin = points
                .iter()
                .map(|o| o.value)
                .chain(rules_of.iter().map(|r| r.2))
                .filter(|v| v.is_finite())
                .fold(0.0_f64, f64::min);
            let top = if vmax > vmin { vmax * 1.15 } else { vmin + 1.0 };
            let plot_top = TOP;
            let plot_bottom = TOP + METRIC_PLOT;
            let y = |v: f64| plot_bottom - (v - vmin) / (top - vmin) * METRIC_PLOT;
            let mut path = String::with_capacity(points.len() * 24);
            for o in &points {
                if o.value.is_finite() {
                    // A round dot: a zero-length segment with round caps.
                    path.push_str(&format!(
                        "M{} {}h0",
                        fmt(ts.x(o.window_end.millis())),
                        fmt(y(o.value))
                    ));
                }
            }
            let rules = rules_of
                .iter()
                .map(|(class, label, v)| Rule {
                    y: y(*v),
                    class,
                    label: label.clone(),
                    label_y: y(*v) - 4.0,
                })
                .collect();
            let values = points.iter().map(|o| o.value);
            MetricChart {
                metric,
                height: plot_bottom + AXIS,
                plot_top,
                plot_bottom,
                plot_left: LEFT,
                plot_right: WIDTH - RIGHT,
                x_ticks: ts.ticks(plot_bottom + 18.0),
                y_ticks: (0..=4)
                    .map(|i| {
                        let v = vmin + (top - vmin) * f64::from(i) / 4.0;
                        Tick {
                            anchor: "end",
                            x: LEFT - 8.0,
                            y: y(v) + 4.0,
                            label: short_number(v),
                        }
                    })
                    .collect(),
                rules,
                count: points.len(),
                min: values.clone().reduce(f64::min),
                max: values.reduce(f64::max),
                latest: points.last().map(|o| (o.window_end, o.value)),
                points: path,
                thresholds: rules_of.into_iter().map(|r| r.1).collect(),
            }
        })
        .collect()
}

/// A tick label: up to four significant decimals.
fn short_number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        number((v * 10_000.0).round() / 10_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_classed_so_shape_and_colour_agree() {
        assert_eq!(outcome_class("rollback"), "bad");
        assert_eq!(outcome_class("hold"), "warn");
        assert_eq!(outcome_class("promote"), "good");
        assert_eq!(outcome_class("recorded"), "info");
        assert!(shape("bad", 10.0, 10.0).contains('h'));
    }

    #[test]
    fn numbers_lose_trailing_zeros() {
        assert_eq!(number(0.05), "0.05");
        assert_eq!(number(5.0), "5");
        assert_eq!(number(0.0), "0");
    }
}
