//! Exposure bounded on the object itself: the weight each tool will send
//! to the new version, read from the object, against the traffic of the
//! authorised stage. Once the stage is promoted, the operator raises the
//! value and admission allows it up to the new stage.
//!
//! - Argo Rollout: every `setWeight` above the stage needs, since the
//!   previous `setWeight`, a stagegate analysis step for that weight (the
//!   analysis endpoint answers `successful` only once the stage allows it).
//!   Without `trafficRouting` the weight is what the replica counts give,
//!   computed as Argo computes it ([`basic_canary_percent`]).
//! - Flagger Canary: `analysis.maxWeight`, or the largest `stepWeights`
//!   entry, must be within the stage; promotion (100 %) waits for the
//!   `confirm-promotion` hook, which must ask stagegate.
//! - KServe InferenceService: `canaryTrafficPercent` within the stage.

use serde_json::Value;

use super::Finding;
use super::analysis::{self, Own};
use super::review::Request;

/// A tolerance for comparing percentages read as floats.
const EPSILON: f64 = 1e-9;

/// The share of traffic (in percent) that Argo Rollouts' basic canary (no
/// `trafficRouting`) gives the new version at `weight`: the Service spreads
/// requests over pods, so it is canary pods over all pods. Argo chooses the
/// pod counts in `approximateWeightedCanaryStableReplicaCounts`
/// (argoproj/argo-rollouts, utils/replicaset/canary.go, called from
/// `CalculateReplicaCountsForBasicCanary`): among ceil/floor of
/// `replicas × weight / 100` canary pods out of `replicas`, or out of
/// `replicas + 1` when `maxSurge` allows a surge, the option closest to the
/// weight; floor is skipped when ceil and floor tie (x.5), and a zero count
/// is allowed only at weight 0 or 100 or with one replica and no surge.
/// Each option is written out here in Argo's order, and the first of equally
/// close options wins, as in Argo's loop.
pub fn basic_canary_percent(replicas: i64, weight: i64, surge: bool) -> f64 {
    if replicas <= 0 {
        return 0.0;
    }
    let max = 100i64;
    let exact = replicas as f64 * weight as f64 / max as f64;
    let ceil = exact.ceil() as i64;
    let floor = exact.floor() as i64;
    let tied = |total: i64| (total as f64 * (weight as f64 / max as f64)).fract() == 0.5;
    let zero_allowed = weight == max || weight == 0 || (replicas == 1 && !surge);
    let mut options: Vec<(i64, i64)> = Vec::new();
    if ceil < replicas || zero_allowed {
        options.push((ceil, replicas));
    }
    if !tied(replicas) && (floor != 0 || zero_allowed) {
        options.push((floor, replicas));
    }
    if surge {
        options.push((ceil, replicas + 1));
        if !tied(replicas + 1) && (floor != 0 || zero_allowed) {
            options.push((floor, replicas + 1));
        }
    }
    let delta = |(c, t): (i64, i64)| ((c * max) as f64 / t as f64 - weight as f64).abs();
    let Some(mut best) = options.first().copied() else {
        return 0.0;
    };
    for o in options.into_iter().skip(1) {
        if delta(o) < delta(best) {
            best = o;
        }
    }
    100.0 * best.0 as f64 / best.1 as f64
}

/// Whether an int-or-percent (`maxSurge`) is above zero; Argo's default
/// is `25%`.
fn surges(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n > 0.0),
        Some(Value::String(s)) => s
            .trim()
            .trim_end_matches('%')
            .parse::<f64>()
            .is_ok_and(|n| n > 0.0),
        Some(_) => false,
    }
}

/// The rules on a Rollout's strategy.
pub fn rollout(spec: &Value, allowed: f64, stage: &str, own: &Own<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let strategy = spec.get("strategy").unwrap_or(&Value::Null);
    if let Some(canary) = strategy.get("canary") {
        let routed = canary.get("trafficRouting").filter(|t| !t.is_null());
        // With traffic routing a weight is out of maxTrafficWeight (100
        // unless set); without it, the replica counts decide.
        let max_weight = routed
            .and_then(|t| t.get("maxTrafficWeight"))
            .and_then(Value::as_f64)
            .filter(|m| *m > 0.0)
            .unwrap_or(100.0);
        let replicas = spec.get("replicas").and_then(Value::as_i64).unwrap_or(1);
        let surge = surges(canary.get("maxSurge"));
        let percent = |w: f64| -> f64 {
            if routed.is_some() {
                100.0 * w / max_weight
            } else if w.fract() == 0.0 && (0.0..=100.0).contains(&w) {
                basic_canary_percent(replicas, w as i64, surge)
            } else {
                w
            }
        };
        let (_, background) =
            analysis::step(canary.get("analysis"), "spec.strategy.canary.analysis", own);
        findings.extend(background);
        let empty = Vec::new();
        let steps = canary
            .get("steps")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        // The highest weight stagegate was asked about since the last
        // setWeight, and the share the canary is at.
        let mut asked: f64 = 0.0;
        let mut share: f64 = 0.0;
        for (i, step) in steps.iter().enumerate() {
            let at = format!("spec.strategy.canary.steps[{i}]");
            let (w, wrong) = analysis::step(step.get("analysis"), &format!("{at}.analysis"), own);
            findings.extend(wrong);
            if let Some(w) = w {
                asked = asked.max(w);
            }
            if step.get("setHeaderRoute").is_some() && allowed < 100.0 {
                findings.push(Finding::deny(
                    "admission.rollout_weight_exceeds_stage",
                    format!("{at}.setHeaderRoute sends every request that matches its headers to the new version, a share stagegate cannot bound; the stage {stage} allows {allowed}%"),
                ));
            }
            let Some(set) = step.get("setWeight") else {
                continue;
            };
            let Some(w) = set.as_f64() else {
                findings.push(Finding::deny(
                    "admission.malformed_object",
                    format!("{at}.setWeight must be a number, not {set}"),
                ));
                continue;
            };
            let p = percent(w);
            if p > allowed + EPSILON && asked + EPSILON < p {
                let how = if routed.is_some() {
                    if max_weight == 100.0 {
                        String::new()
                    } else {
                        format!(" ({p:.2}% of maxTrafficWeight {max_weight})")
                    }
                } else {
                    format!(
                        " ({p:.2}% of traffic without trafficRouting: Argo runs canary pods for it among {replicas} replica(s), maxSurge {})",
                        if surge { "above 0" } else { "0" }
                    )
                };
                findings.push(Finding::deny(
                    "admission.rollout_weight_exceeds_stage",
                    format!("{at}.setWeight is {set}{how}, above the {allowed}% of stage {stage}, and no stagegate analysis step asking for {p:.2} or more comes before it"),
                ));
            }
            share = p;
            asked = 0.0;
        }
        if share + EPSILON < 100.0 && allowed + EPSILON < 100.0 && asked + EPSILON < 100.0 {
            findings.push(Finding::deny(
                "admission.rollout_weight_exceeds_stage",
                format!("spec.strategy.canary.steps: after its last step the Rollout sends 100% of traffic to the new version, above the {allowed}% of stage {stage}; end the steps with a stagegate analysis step with weight 100, or a setWeight: 100 that has one"),
            ));
        }
    } else if let Some(blue_green) = strategy.get("blueGreen") {
        let (w, wrong) = analysis::step(
            blue_green.get("prePromotionAnalysis"),
            "spec.strategy.blueGreen.prePromotionAnalysis",
            own,
        );
        findings.extend(wrong);
        if allowed + EPSILON < 100.0 && w.is_none_or(|w| w + EPSILON < 100.0) {
            findings.push(Finding::deny(
                "admission.rollout_weight_exceeds_stage",
                format!("spec.strategy.blueGreen: a promotion sends 100% of traffic to the new version, above the {allowed}% of stage {stage}; add a stagegate template with weight 100 to spec.strategy.blueGreen.prePromotionAnalysis"),
            ));
        }
    }
    findings
}

/// The rules on a Flagger Canary's analysis (`spec.analysis`, else the
/// older `spec.canaryAnalysis`, as Flagger's `Canary.GetAnalysis` reads
/// it: fluxcd/flagger, pkg/apis/flagger/v1beta1/canary.go).
pub fn canary(spec: &Value, allowed: f64, stage: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let (field, analysis) = match spec.get("analysis").filter(|a| !a.is_null()) {
        Some(a) => ("spec.analysis", a),
        None => (
            "spec.canaryAnalysis",
            spec.get("canaryAnalysis").unwrap_or(&Value::Null),
        ),
    };
    let exceeds = |what: &str, w: f64| {
        Finding::deny(
            "admission.canary_weight_exceeds_stage",
            format!(
                "{field}.{what} is {w}, above the {allowed}% of stage {stage}: Flagger would route that much traffic to the canary without asking stagegate"
            ),
        )
    };
    // Flagger's weight ceiling (pkg/controller/scheduler.go, `maxWeight`):
    // the last stepWeights entry when there are any, else maxWeight, else
    // 100. Every stepWeights entry is held, not only the last.
    match analysis.get("stepWeights") {
        Some(Value::Array(steps)) if !steps.is_empty() => {
            for (i, s) in steps.iter().enumerate() {
                match s.as_f64() {
                    Some(w) if w > allowed + EPSILON => {
                        findings.push(exceeds(&format!("stepWeights[{i}]"), w))
                    }
                    Some(_) => {}
                    None => findings.push(Finding::deny(
                        "admission.malformed_object",
                        format!("{field}.stepWeights[{i}] must be a number"),
                    )),
                }
            }
        }
        _ => match analysis.get("maxWeight") {
            Some(m) => match m.as_f64() {
                Some(w) if w > allowed + EPSILON => findings.push(exceeds("maxWeight", w)),
                Some(_) => {}
                None => findings.push(Finding::deny(
                    "admission.malformed_object",
                    format!("{field}.maxWeight must be a number"),
                )),
            },
            None if analysis.get("stepWeight").is_some() && allowed + EPSILON < 100.0 => {
                findings.push(exceeds("maxWeight (unset: Flagger's default)", 100.0))
            }
            None => {}
        },
    }
    if analysis.get("match").is_some() && allowed + EPSILON < 100.0 {
        findings.push(Finding::deny(
            "admission.canary_weight_exceeds_stage",
            format!("{field}.match routes every request that matches it to the canary, a share stagegate cannot bound; the stage {stage} allows {allowed}%"),
        ));
    }
    // Promotion sends 100%: below full exposure it must wait on stagegate.
    if allowed + EPSILON < 100.0 {
        let asks = analysis
            .get("webhooks")
            .and_then(Value::as_array)
            .is_some_and(|hooks| {
                hooks.iter().any(|h| {
                    h.get("type").and_then(Value::as_str) == Some("confirm-promotion")
                        && h.get("url").and_then(Value::as_str).is_some_and(|u| {
                            u.split('?').next().is_some_and(|p| {
                                p.ends_with("/v1/integrations/flagger/confirm-promotion")
                            })
                        })
                })
            });
        if !asks {
            findings.push(Finding::deny(
                "admission.canary_weight_exceeds_stage",
                format!("{field}.webhooks has no confirm-promotion hook calling stagegate (…/v1/integrations/flagger/confirm-promotion): Flagger would promote to 100% of traffic, above the {allowed}% of stage {stage}"),
            ));
        }
    }
    findings
}

/// The rules on an InferenceService's `canaryTrafficPercent`.
pub fn inference_service(
    request: &Request<'_>,
    spec: &Value,
    allowed: f64,
    stage: &str,
) -> Vec<Finding> {
    let predictor = spec.get("predictor").unwrap_or(&Value::Null);
    match predictor.get("canaryTrafficPercent") {
        Some(p) => match p.as_f64() {
            Some(p) if p > allowed + EPSILON => vec![Finding::deny(
                "admission.canary_traffic_exceeds_stage",
                format!(
                    "spec.predictor.canaryTrafficPercent is {p}, above the {allowed}% of stage {stage}"
                ),
            )],
            Some(_) => Vec::new(),
            None => vec![Finding::deny(
                "admission.malformed_object",
                "spec.predictor.canaryTrafficPercent must be a number",
            )],
        },
        None => {
            // Without it, KServe moves all traffic to a new revision; a
            // new revision is made only when the predictor changes.
            let old = request
                .old_object
                .and_then(|o| o.pointer("/spec/predictor"));
            let rolls = request.operation == "UPDATE" && old != Some(predictor);
            if rolls && allowed + EPSILON < 100.0 {
                vec![Finding::deny(
                    "admission.canary_traffic_exceeds_stage",
                    format!(
                        "spec.predictor changed without canaryTrafficPercent, so KServe would send 100% of traffic to the new revision; stage {stage} allows {allowed}%: set canaryTrafficPercent"
                    ),
                )]
            } else {
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OWN: Own<'static> = Own {
        deployment_id: "d",
        reference: "credit/credit-scoring",
        annotation: None,
    };

    fn steps(steps: Value) -> Value {
        json!({"strategy": {"canary": {"trafficRouting": {"nginx": {"stableIngress": "s"}}, "steps": steps}}})
    }

    fn codes(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.code.as_str()).collect()
    }

    fn asks(template: &str, weight: Value) -> Value {
        json!({"analysis": {"templates": [{"templateName": template}],
            "args": [{"name": "deployment", "value": "d"}, {"name": "weight", "value": weight}]}})
    }

    #[test]
    fn basic_canary_shares_are_argos_replica_counts() {
        // replicas 10, setWeight 5: one canary pod of eleven (surge), as
        // the issue measured; without surge one of ten.
        assert!((basic_canary_percent(10, 5, true) - 100.0 / 11.0).abs() < 1e-9);
        assert!((basic_canary_percent(10, 5, false) - 10.0).abs() < 1e-9);
        // One replica: the canary takes half (one of two with surge).
        assert_eq!(basic_canary_percent(1, 5, true), 50.0);
        assert_eq!(basic_canary_percent(4, 100, true), 100.0);
        assert_eq!(basic_canary_percent(4, 0, true), 0.0);
        assert_eq!(basic_canary_percent(4, 25, true), 25.0);
        // Argo's own example: 3 replicas at 50% tie; the larger count wins.
        assert!((basic_canary_percent(3, 50, false) - 200.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_rollout_that_asks_stagegate_before_each_weight_above_the_stage_is_allowed() {
        let spec = steps(json!([
            {"setWeight": 5}, {"pause": {"duration": "1h"}},
            asks("stagegate", json!("25")), {"pause": {}}, {"setWeight": 25},
            asks("stagegate-step", json!(100)),
        ]));
        assert!(rollout(&spec, 5.0, "pilot", &OWN).is_empty());
    }

    #[test]
    fn a_set_weight_above_the_stage_needs_a_stagegate_analysis_for_that_weight_since_the_last_weight()
     {
        let spec = steps(json!([
            asks("stagegate", json!("50")),
            {"setWeight": 25},
            {"setWeight": 50},
            asks("stagegate", json!("25")),
            {"setWeight": 75},
            asks("stagegate", json!("100")),
        ]));
        let f = rollout(&spec, 25.0, "regional", &OWN);
        assert_eq!(
            codes(&f),
            ["admission.rollout_weight_exceeds_stage"; 2],
            "{f:?}"
        );
        assert!(f[0].message.contains("steps[2].setWeight is 50"), "{f:?}");
        assert!(f[1].message.contains("steps[4].setWeight is 75"), "{f:?}");
    }

    #[test]
    fn an_analysis_about_another_deployment_or_in_dry_run_asks_nothing() {
        let other = json!({"analysis": {"templates": [{"templateName": "stagegate"}],
            "args": [{"name": "deployment", "value": "other"}, {"name": "weight", "value": "100"}]}});
        let f = rollout(
            &steps(json!([other, {"setWeight": 100}])),
            5.0,
            "pilot",
            &OWN,
        );
        assert!(
            codes(&f).contains(&"admission.analysis_other_deployment"),
            "{f:?}"
        );
        assert!(
            codes(&f).contains(&"admission.rollout_weight_exceeds_stage"),
            "{f:?}"
        );
        let mut dry = asks("stagegate", json!("100"));
        dry["analysis"]["dryRun"] = json!([{"metricName": ".*"}]);
        let f = rollout(&steps(json!([dry, {"setWeight": 100}])), 5.0, "pilot", &OWN);
        assert!(codes(&f).contains(&"admission.analysis_dry_run"), "{f:?}");
        assert!(
            codes(&f).contains(&"admission.rollout_weight_exceeds_stage"),
            "{f:?}"
        );
    }

    #[test]
    fn without_traffic_routing_the_replica_share_is_held_not_the_set_weight() {
        let spec = json!({"replicas": 10, "strategy": {"canary": {"steps": [
            asks("stagegate", json!("5")), {"setWeight": 5}, asks("stagegate", json!("100")), {"setWeight": 100}]}}});
        let f = rollout(&spec, 5.0, "pilot", &OWN);
        assert_eq!(
            codes(&f),
            ["admission.rollout_weight_exceeds_stage"],
            "{f:?}"
        );
        assert!(f[0].message.contains("9.09%"), "{f:?}");
        // At 10 % the share of one pod in eleven is within the stage.
        assert!(rollout(&spec, 10.0, "pilot", &OWN).is_empty());
    }

    #[test]
    fn a_blue_green_rollout_needs_a_stagegate_pre_promotion_analysis_for_100_below_full_exposure() {
        let bare = json!({"strategy": {"blueGreen": {"activeService": "a"}}});
        assert_eq!(rollout(&bare, 25.0, "regional", &OWN).len(), 1);
        let gated = json!({"strategy": {"blueGreen": {"activeService": "a",
            "prePromotionAnalysis": asks("stagegate", json!("100"))["analysis"]}}});
        assert!(rollout(&gated, 25.0, "regional", &OWN).is_empty());
    }

    #[test]
    fn a_flagger_canary_is_held_at_the_stage_by_its_largest_weight_and_its_promotion_hook() {
        let hook = json!([{"type": "confirm-promotion", "url": "http://s/v1/integrations/flagger/confirm-promotion"}]);
        let ok = json!({"analysis": {"stepWeight": 5, "maxWeight": 5, "webhooks": hook}});
        assert!(canary(&ok, 5.0, "pilot").is_empty());
        let high = json!({"analysis": {"stepWeight": 5, "maxWeight": 25, "webhooks": hook}});
        let f = canary(&high, 5.0, "pilot");
        assert!(
            f[0].message.contains("spec.analysis.maxWeight is 25"),
            "{f:?}"
        );
        let steps = json!({"analysis": {"stepWeights": [1, 5, 30], "webhooks": hook}});
        let f = canary(&steps, 5.0, "pilot");
        assert!(f[0].message.contains("stepWeights[2] is 30"), "{f:?}");
        let unhooked = json!({"analysis": {"stepWeight": 5, "maxWeight": 5}});
        assert_eq!(canary(&unhooked, 5.0, "pilot").len(), 1);
        // Promoted to 25 %: the same 25 is allowed.
        assert!(canary(&high, 25.0, "regional").is_empty());
    }
}
