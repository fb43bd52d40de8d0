//! Argo Rollouts analysis as admission sees it: a Rollout step counts as
//! asking stagegate only when it asks about the object's own deployment
//! and nothing makes its answer advisory; a template named like
//! stagegate's must really ask stagegate, in the documented form
//! (examples/argo-rollouts/analysis-templates.yaml).
//!
//! Field names are Argo's (`pkg/apis/rollouts/v1alpha1/types.go`:
//! `RolloutAnalysis{templates, args, dryRun, measurementRetention}`,
//! `AnalysisTemplateSpec{metrics, args, dryRun}`, `WebMetric{url, method,
//! headers, body, jsonPath, timeoutSeconds}`; `analysis_types.go`).

use serde_json::Value;

use super::Finding;

/// What a step must name: the object's own deployment.
pub struct Own<'a> {
    pub deployment_id: &'a str,
    /// The object's `NAMESPACE/NAME` (a `ref` arg may name it).
    pub reference: &'a str,
    /// The object's `stagegate.dev/deployment` annotation, checked to name
    /// `deployment_id` before these rules run.
    pub annotation: Option<&'a str>,
}

/// The field path a `fieldRef` to the deployment annotation uses.
const ANNOTATION_FIELD: &str = "metadata.annotations['stagegate.dev/deployment']";

/// Whether a template name is one of stagegate's (`stagegate`,
/// `stagegate-…`): the templates a Rollout counts as asking stagegate, and
/// so the templates admission governs.
pub fn is_stagegate_template(name: &str) -> bool {
    name == "stagegate" || name.starts_with("stagegate-")
}

/// An analysis (a step's `analysis`, `prePromotionAnalysis`, the canary's
/// background `analysis`) at `path`: the weight it asks stagegate to
/// authorise, when it asks stagegate at all, and what is wrong with it.
/// A step that asks about another deployment or runs stagegate's metric
/// as a dry run asks nothing.
pub fn step(analysis: Option<&Value>, path: &str, own: &Own<'_>) -> (Option<f64>, Vec<Finding>) {
    let Some(analysis) = analysis else {
        return (None, Vec::new());
    };
    let consults = analysis
        .get("templates")
        .and_then(Value::as_array)
        .is_some_and(|ts| {
            ts.iter().any(|t| {
                t.get("templateName")
                    .and_then(Value::as_str)
                    .is_some_and(is_stagegate_template)
            })
        });
    if !consults {
        return (None, Vec::new());
    }
    let mut findings = Vec::new();
    if analysis
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty())
    {
        findings.push(Finding::deny(
            "admission.analysis_dry_run",
            format!(
                "{path}.dryRun is set on an analysis with a stagegate template: a dry-run metric cannot fail the rollout, so stagegate's answer would be advisory; remove dryRun"
            ),
        ));
    }
    let empty = Vec::new();
    let args = analysis
        .get("args")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let arg = |name: &str| {
        args.iter()
            .position(|a| a.get("name").and_then(Value::as_str) == Some(name))
            .map(|i| (i, &args[i]))
    };
    let names_own = match (arg("deployment"), arg("ref")) {
        (Some((i, a)), _) => {
            let literal = a.get("value").and_then(Value::as_str).map(str::trim);
            let field = a
                .pointer("/valueFrom/fieldRef/fieldPath")
                .and_then(Value::as_str);
            let ok = literal == Some(own.deployment_id)
                || (field == Some(ANNOTATION_FIELD) && own.annotation == Some(own.deployment_id));
            if !ok {
                findings.push(Finding::deny(
                    "admission.analysis_other_deployment",
                    format!(
                        "{path}.args[{i}] (deployment) must be this object's deployment '{}' (a literal value, or a fieldRef to {ANNOTATION_FIELD} naming it), not {}",
                        own.deployment_id,
                        literal.map_or_else(|| "a value stagegate cannot check".to_string(), |v| format!("'{v}'"))
                    ),
                ));
            }
            ok
        }
        (None, Some((i, a))) => {
            let literal = a.get("value").and_then(Value::as_str).map(str::trim);
            let ok = literal == Some(own.reference);
            if !ok {
                findings.push(Finding::deny(
                    "admission.analysis_other_deployment",
                    format!(
                        "{path}.args[{i}] (ref) must be this object's own ref '{}'",
                        own.reference
                    ),
                ));
            }
            ok
        }
        (None, None) => {
            findings.push(Finding::deny(
                "admission.analysis_other_deployment",
                format!(
                    "{path}.args names no deployment: a stagegate analysis needs a deployment arg naming '{}' (or a ref arg '{}')",
                    own.deployment_id, own.reference
                ),
            ));
            false
        }
    };
    let weight = arg("weight")
        .and_then(|(_, a)| a.get("value"))
        .and_then(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|w: &f64| w.is_finite());
    let counts = names_own && findings.is_empty();
    (if counts { weight } else { None }, findings)
}

/// The rules on an AnalysisTemplate or ClusterAnalysisTemplate named like
/// stagegate's: no dry run, and every metric a web metric that asks
/// stagegate's analysis endpoint about `{{args.deployment}}` (or
/// `{{args.ref}}`) and the template's `{{args.weight}}`, reads `{$.result}`
/// and succeeds only on `result == "successful"`. `base_url`, when
/// configured, is where the URL must point.
pub fn template(object: &Value, base_url: Option<&str>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    if spec
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty())
    {
        findings.push(Finding::deny(
            "admission.analysis_dry_run",
            "spec.dryRun is set on a stagegate template: its metrics could not fail a rollout",
        ));
    }
    let has_weight = spec.get("args").and_then(Value::as_array).is_some_and(|a| {
        a.iter()
            .any(|a| a.get("name").and_then(Value::as_str) == Some("weight"))
    });
    let metrics = spec.get("metrics").and_then(Value::as_array);
    let Some(metrics) = metrics.filter(|m| !m.is_empty()) else {
        findings.push(Finding::deny(
            "admission.analysis_template_form",
            "spec.metrics must hold stagegate's web metric (docs/integrations/argo-rollouts.md)",
        ));
        return findings;
    };
    for (i, m) in metrics.iter().enumerate() {
        let at = format!("spec.metrics[{i}]");
        let mut wrong = |field: &str, what: String| {
            findings.push(Finding::deny(
                "admission.analysis_template_form",
                format!(
                    "{at}.{field} {what} (the documented form: docs/integrations/argo-rollouts.md)"
                ),
            ));
        };
        let Some(web) = m.pointer("/provider/web") else {
            wrong("provider", "must be a web metric asking stagegate".into());
            continue;
        };
        let url = web.get("url").and_then(Value::as_str).unwrap_or_default();
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let path_ok = base.ends_with("/v1/integrations/argo-rollouts/analysis")
            && base_url.is_none_or(|b| {
                base.strip_suffix("/v1/integrations/argo-rollouts/analysis")
                    == Some(b.trim_end_matches('/'))
            });
        let params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
        let names = params
            .iter()
            .any(|p| *p == "deployment={{args.deployment}}" || *p == "ref={{args.ref}}");
        let weight_ok = !has_weight || params.contains(&"weight={{args.weight}}");
        let only_known = params.iter().all(|p| {
            matches!(
                *p,
                "deployment={{args.deployment}}" | "ref={{args.ref}}" | "weight={{args.weight}}"
            )
        });
        if !(path_ok && names && weight_ok && only_known) {
            wrong(
                "provider.web.url",
                format!(
                    "is '{url}': it must be {}/v1/integrations/argo-rollouts/analysis?deployment={{{{args.deployment}}}}{}",
                    base_url.unwrap_or("STAGEGATE"),
                    if has_weight {
                        "&weight={{args.weight}}"
                    } else {
                        ""
                    }
                ),
            );
        }
        if web
            .get("method")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.eq_ignore_ascii_case("GET"))
        {
            wrong("provider.web.method", "must be GET".into());
        }
        if web.get("jsonPath").and_then(Value::as_str) != Some("{$.result}") {
            wrong("provider.web.jsonPath", "must be \"{$.result}\"".into());
        }
        let condition = |name: &str| m.get(name).and_then(Value::as_str).map(str::trim);
        if condition("successCondition") != Some("result == \"successful\"") {
            wrong(
                "successCondition",
                "must be exactly result == \"successful\"".into(),
            );
        }
        if condition("failureCondition").is_some_and(|c| c != "result == \"failed\"") {
            wrong(
                "failureCondition",
                "must be absent or exactly result == \"failed\"".into(),
            );
        }
    }
    findings
}
