//! Kubernetes admission (docs/integrations/kubernetes.md): whether the API
//! server may store an object, decided by stagegate's records, never by
//! the object's own word. No HTTP here: the handler
//! (`server::routes::integrations::kubernetes`) parses the review, calls
//! [`decide`] and serialises [`review::answer`].
//!
//! - **Governed by the records.** An object of a governed kind
//!   ([`workload::Kind`]) is governed whenever its `NAMESPACE/NAME` is a
//!   `kubernetes` ref of a deployment, annotated or not. An annotation
//!   (`stagegate.dev/deployment`, `stagegate.dev/system`) must name the
//!   deployment holding that ref; an UPDATE may not remove it. A field the
//!   rules cannot read denies, naming its path.
//! - **Artifacts matched exactly** ([`artifacts`]).
//! - **Exposure bounded on the object** ([`traffic`], [`analysis`]).
//! - With `require_receipt`, a receipt of a decision of the deployment
//!   holding the ref, whose subject is the admitted artifact.
//!
//! The rules read the deployment's route and its release and never change
//! either; the handler logs each answer about a governed object (not a
//! dry run's) as one entry of the decision log.

pub mod analysis;
mod answer;
pub mod artifacts;
#[cfg(test)]
mod properties;
pub mod review;
pub mod traffic;
pub mod workload;

use serde_json::Value;

use crate::attest::receipt;
use crate::attest::{Envelope as AttestEnvelope, PublicKey};
use crate::config::KubernetesConfig;
use crate::decision::verdict::FindingSeverity;
use crate::records::model::Deployment;
use crate::records::{Decide, DeploymentSelector, DeploymentStatus, RecordError, Records};
pub use answer::{Answer, Finding, Severity};
use review::Request;
use workload::Kind;

/// The annotation naming a deployment id.
pub const DEPLOYMENT_ANNOTATION: &str = "stagegate.dev/deployment";
/// The annotation naming a system.
pub const SYSTEM_ANNOTATION: &str = "stagegate.dev/system";
/// The decision log's kind for these answers.
pub const LOG_KIND: &str = "kubernetes.admission";

/// What the rules read besides the request.
pub struct Context<'a, P> {
    pub records: &'a Records,
    /// The pipeline asked for the monitoring policy's warnings, or why
    /// there is none.
    pub monitoring: Result<P, String>,
    pub config: &'a KubernetesConfig,
    /// Who asked (the API server's identity), for the read-only
    /// evaluation's log entry.
    pub actor: &'a str,
}

/// The rules (docs/integrations/kubernetes.md).
pub async fn decide<P: Decide>(ctx: &Context<'_, P>, request: &Request<'_>) -> Answer {
    if !matches!(request.operation, "CREATE" | "UPDATE") {
        return Answer::not_governed();
    }
    let Some(kind) = Kind::of(request.group, request.kind) else {
        return Answer::not_governed();
    };
    let Some(object) = request.object.filter(|o| o.is_object()) else {
        return Answer::refused(Finding::deny(
            "admission.malformed_object",
            format!(
                "request.object of a {} {} is missing or not an object: stagegate cannot read it, so it cannot admit it",
                request.operation, request.kind
            ),
        ));
    };
    let by_id = match workload::annotation(object, DEPLOYMENT_ANNOTATION) {
        Ok(a) => a,
        Err(m) => return Answer::refused(Finding::malformed(&m)),
    };
    let by_system = match workload::annotation(object, SYSTEM_ANNOTATION) {
        Ok(a) => a,
        Err(m) => return Answer::refused(Finding::malformed(&m)),
    };
    if let Some(finding) = annotation_removed(request, by_id, by_system) {
        return Answer::refused(finding);
    }
    let deployment = match govern(ctx.records, request, by_id, by_system).await {
        Ok(d) => d,
        Err(finding) => return Answer::refused(finding),
    };
    if kind == Kind::AnalysisTemplate {
        // Governed by name too: the templates a Rollout counts as asking
        // stagegate must ask it.
        if deployment.is_none() && !analysis::is_stagegate_template(request.name) {
            return Answer::not_governed();
        }
        return Answer {
            governed: true,
            findings: analysis::template(object, ctx.config.analysis_url.as_deref()),
            deployment,
        };
    }
    let Some(deployment) = deployment else {
        return Answer::not_governed();
    };
    if deployment.status != DeploymentStatus::Active {
        return Answer {
            governed: true,
            findings: vec![Finding::deny(
                "admission.deployment_not_active",
                format!(
                    "deployment {} of {} is {} (at stage {}): nothing of it may be rolled out",
                    deployment.id, deployment.release_id, deployment.status, deployment.stage
                ),
            )],
            deployment: Some(deployment),
        };
    }
    let digest = if kind.runs_artifact() {
        match ctx.records.release(&deployment.release_id).await {
            Ok(r) => r.release.artifact_digest.filter(|d| !d.trim().is_empty()),
            Err(e) => {
                return Answer {
                    governed: true,
                    findings: vec![records_unavailable(&e)],
                    deployment: Some(deployment),
                };
            }
        }
    } else {
        None
    };
    let allowed_images = artifacts::allowed_for(&ctx.config.allowed_images, &deployment);
    let mut findings = check_object(
        kind,
        request,
        object,
        &deployment,
        digest.as_deref(),
        &allowed_images,
        by_id,
    );
    if ctx.config.require_receipt && kind.runs_artifact() {
        findings.extend(receipt_finding(ctx.records, &deployment, digest.as_deref()).await);
    }
    findings.extend(monitoring_warnings(ctx, &deployment).await);
    Answer {
        governed: true,
        deployment: Some(deployment),
        findings,
    }
}

/// The rules on the object itself, once its deployment is known and
/// active: its artifacts ([`artifacts`]) and its exposure ([`traffic`],
/// [`analysis`]). Pure, so that properties can be tested on it.
pub fn check_object(
    kind: Kind,
    request: &Request<'_>,
    object: &Value,
    deployment: &Deployment,
    digest: Option<&str>,
    allowed_images: &[&str],
    by_id: Option<&str>,
) -> Vec<Finding> {
    let mut findings = artifacts::check(kind, object, deployment, digest, allowed_images);
    let reference = request.reference();
    let own = analysis::Own {
        deployment_id: &deployment.id,
        reference: &reference,
        annotation: by_id,
    };
    findings.extend(exposure(kind, request, object, deployment, &own));
    findings
}

/// The exposure rules of each kind against the authorised stage.
fn exposure(
    kind: Kind,
    request: &Request<'_>,
    object: &Value,
    deployment: &Deployment,
    own: &analysis::Own<'_>,
) -> Vec<Finding> {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let allowed = deployment.traffic_percent;
    let stage = &deployment.stage;
    match kind {
        Kind::InferenceService => traffic::inference_service(request, spec, allowed, stage),
        Kind::Rollout => {
            let mut f = traffic::rollout(spec, allowed, stage, own);
            if spec.get("workloadRef").is_some_and(|w| !w.is_null()) {
                f.push(Finding::deny(
                    "admission.rollout_workload_ref",
                    "spec.workloadRef: stagegate checks the pod template on the Rollout itself; inline it as spec.template",
                ));
            }
            f
        }
        Kind::Canary => traffic::canary(spec, allowed, stage),
        Kind::AppsWorkload if allowed < 100.0 => vec![Finding::warn(
            "admission.traffic_not_enforced",
            format!(
                "a {} replaces every pod on rollout: stagegate authorises {allowed}% (stage {stage}) but cannot hold the traffic there; split traffic with a Rollout, a Flagger Canary or a mesh",
                request.kind
            ),
        )],
        Kind::AppsWorkload | Kind::AnalysisTemplate => Vec::new(),
    }
}

/// An UPDATE whose old object carried a stagegate annotation that the new
/// one drops: denied, whatever the records say (an object once annotated
/// cannot leave stagegate's view by losing its label).
pub fn annotation_removed(
    request: &Request<'_>,
    by_id: Option<&str>,
    by_system: Option<&str>,
) -> Option<Finding> {
    if request.operation != "UPDATE" {
        return None;
    }
    let old = request.old_object?;
    for (name, now) in [
        (DEPLOYMENT_ANNOTATION, by_id),
        (SYSTEM_ANNOTATION, by_system),
    ] {
        let before = workload::annotation(old, name).ok().flatten();
        if let (Some(before), None) = (before, now) {
            return Some(Finding::deny(
                "admission.annotation_removed",
                format!(
                    "metadata.annotations.{name}: this UPDATE removes '{before}' from {}/{}; a governed object keeps its stagegate annotation",
                    request.namespace, request.name
                ),
            ));
        }
    }
    None
}

/// The deployment governing the object: the newest deployment holding its
/// ref `kubernetes: NAMESPACE/NAME`. An annotation must name that one (by
/// id or by its system); an annotated object no deployment holds the ref
/// of is denied, naming both. `Ok(None)`: neither ref nor annotation.
async fn govern(
    records: &Records,
    request: &Request<'_>,
    by_id: Option<&str>,
    by_system: Option<&str>,
) -> Result<Option<Deployment>, Finding> {
    let reference = request.reference();
    // An object without a usable name (generateName on CREATE) has no ref.
    let holder = match DeploymentSelector::kubernetes(&reference) {
        Ok(selector) => match records.find_deployment(&selector).await {
            Ok(d) => Some(d),
            Err(RecordError::NotFound(_)) => None,
            Err(e) => return Err(records_unavailable(&e)),
        },
        Err(_) => None,
    };
    match (holder, by_id, by_system) {
        (None, None, None) => Ok(None),
        (None, Some(id), _) => {
            let named = records
                .find_deployment(&DeploymentSelector::Id(id.to_string()))
                .await;
            Err(match named {
                Err(RecordError::NotFound(_)) => Finding::deny(
                    "admission.unknown_deployment",
                    format!(
                        "metadata.annotations.{DEPLOYMENT_ANNOTATION}: no deployment '{id}' in stagegate's records"
                    ),
                ),
                Err(e) => records_unavailable(&e),
                Ok(d) => Finding::deny(
                    "admission.annotation_without_ref",
                    format!(
                        "metadata.annotations.{DEPLOYMENT_ANNOTATION} names deployment '{}' (system '{}'), which does not hold the ref kubernetes={reference}; no deployment does: create the deployment with \"refs\": {{\"kubernetes\": \"{reference}\"}}",
                        d.id, d.system_id
                    ),
                ),
            })
        }
        (None, None, Some(system)) => Err(Finding::deny(
            "admission.annotation_without_ref",
            format!(
                "metadata.annotations.{SYSTEM_ANNOTATION} names system '{system}', but no deployment holds the ref kubernetes={reference}; create the deployment with \"refs\": {{\"kubernetes\": \"{reference}\"}}"
            ),
        )),
        (Some(d), by_id, by_system) => match annotations_disagree(&d, by_id, by_system, &reference)
        {
            Some(finding) => Err(finding),
            None => Ok(Some(d)),
        },
    }
}

/// Whether the annotations of an object whose ref `holder` holds name
/// another deployment or system: the finding naming both, or `None`.
pub fn annotations_disagree(
    holder: &Deployment,
    by_id: Option<&str>,
    by_system: Option<&str>,
    reference: &str,
) -> Option<Finding> {
    if let Some(id) = by_id
        && id != holder.id
    {
        return Some(Finding::deny(
            "admission.annotation_disagrees",
            format!(
                "metadata.annotations.{DEPLOYMENT_ANNOTATION} names deployment '{id}', but the ref kubernetes={reference} is held by deployment '{}' (system '{}'); the annotation must name it",
                holder.id, holder.system_id
            ),
        ));
    }
    if let Some(system) = by_system
        && system != holder.system_id
    {
        return Some(Finding::deny(
            "admission.annotation_disagrees",
            format!(
                "the ref kubernetes={reference} is deployment '{}' of system '{}', but metadata.annotations.{SYSTEM_ANNOTATION} says '{system}'",
                holder.id, holder.system_id
            ),
        ));
    }
    None
}

/// With `[integrations.kubernetes] require_receipt`: a receipt of this
/// service that verifies, of a decision of `deployment` (the one holding
/// the object's ref: its gate or a progression, from its history), whose
/// subject is the release's artifact — the digest the object must carry
/// (see [`artifacts`]). `None` when there is one.
async fn receipt_finding(
    records: &Records,
    deployment: &Deployment,
    digest: Option<&str>,
) -> Option<Finding> {
    let digest = match digest {
        Some(d) if workload::is_digest(d) => d,
        // The artifact rules already deny a release without a digest.
        _ => return None,
    };
    let keys: Vec<(String, PublicKey)> = records
        .receipt_keys()
        .into_iter()
        .filter_map(|k| {
            PublicKey::from_pem(&k.public_key_pem, "receipt key")
                .ok()
                .map(|(p, _)| (k.keyid, p))
        })
        .collect();
    let events = match records.events(&deployment.id).await {
        Ok(e) => e,
        Err(e) => return Some(records_unavailable(&e)),
    };
    let mut seen = std::collections::BTreeSet::new();
    for id in events.iter().filter_map(|e| e.decision_id.as_deref()) {
        if !seen.insert(id) {
            continue;
        }
        let text = match records.receipt(id).await {
            Ok(t) => t,
            Err(RecordError::NotFound(_)) => continue,
            Err(e) => return Some(records_unavailable(&e)),
        };
        let Ok(envelope) = AttestEnvelope::parse(&text) else {
            continue;
        };
        if receipt::verify(&envelope, &keys, Some(digest)).is_ok() {
            return None;
        }
    }
    // Say whose receipt there is, if any: the artifact passed a gate, but
    // not this deployment's.
    match records.verify_receipt_for_digest(digest).await {
        Ok(Some(other)) => Some(Finding::deny(
            "admission.receipt_foreign",
            format!(
                "the receipts for {digest} (the newest: decision {other}) are not of a decision of deployment '{}', which holds this object's ref; a receipt admits only the deployment whose gate or progression it records",
                deployment.id
            ),
        )),
        Ok(None) => Some(Finding::deny(
            "admission.receipt_missing",
            format!(
                "no decision receipt of this service verifies for {digest}: the artifact has not passed the gate here"
            ),
        )),
        Err(e) => Some(records_unavailable(&e)),
    }
}

/// The monitoring policy's warnings about the deployment now (a read-only
/// evaluation, logged as such): returned as admission warnings, so whoever
/// changes the object sees them. They never refuse the object; an
/// evaluation that cannot run is itself a warning.
async fn monitoring_warnings<P: Decide>(
    ctx: &Context<'_, P>,
    deployment: &Deployment,
) -> Vec<Finding> {
    let pipeline = match &ctx.monitoring {
        Ok(p) => p,
        Err(e) => {
            return vec![Finding::warn(
                "admission.monitoring_unavailable",
                format!("the monitoring policy could not be asked: {e}"),
            )];
        }
    };
    let selector = DeploymentSelector::Id(deployment.id.clone());
    match ctx
        .records
        .evaluate_monitoring(pipeline, ctx.actor, &selector)
        .await
    {
        Ok(evaluation) => evaluation
            .decision
            .findings
            .iter()
            .filter(|f| f.severity == FindingSeverity::Warning)
            .map(|f| Finding::warn(&f.code, format!("monitoring: {}", f.message)))
            .collect(),
        Err(e) => vec![Finding::warn(
            "admission.monitoring_unavailable",
            format!("the monitoring policy could not be asked: {e}"),
        )],
    }
}

fn records_unavailable(e: &RecordError) -> Finding {
    Finding::deny(
        "admission.records_unavailable",
        format!("stagegate could not read its records ({e}); retry shortly"),
    )
}
