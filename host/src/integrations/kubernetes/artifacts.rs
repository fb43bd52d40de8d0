//! What a governed object may run: every image pinned by digest, the
//! release's artifact among them (or as a content-addressed storage URI),
//! and any other image on the allow-list of its system or deployment
//! (`[[integrations.kubernetes.allowed_images]]`). Digests are compared
//! whole, never as substrings.

use serde_json::Value;

use super::Finding;
use super::workload::{self, Kind};
use crate::config::AllowedImages;
use crate::records::model::Deployment;

/// The digests the allow-list grants `deployment`: the entries naming its
/// system or its id.
pub fn allowed_for<'a>(list: &'a [AllowedImages], deployment: &Deployment) -> Vec<&'a str> {
    list.iter()
        .filter(|a| {
            a.system.as_deref() == Some(deployment.system_id.as_str())
                || a.deployment.as_deref() == Some(deployment.id.as_str())
        })
        .flat_map(|a| a.digests.iter().map(String::as_str))
        .collect()
}

/// The artifact rules on an object of `kind` of `deployment`, whose release
/// is the artifact `digest` (`None`: the release records none).
pub fn check(
    kind: Kind,
    object: &Value,
    deployment: &Deployment,
    digest: Option<&str>,
    allowed: &[&str],
) -> Vec<Finding> {
    if !kind.runs_artifact() {
        return Vec::new();
    }
    let release = &deployment.release_id;
    let Some(digest) = digest.filter(|d| workload::is_digest(d)) else {
        let why = match digest {
            None => "records no artifact_digest".to_string(),
            Some(d) => {
                format!("records the artifact_digest '{d}', which is not sha256:<64 hex digits>")
            }
        };
        return vec![Finding::deny(
            "admission.release_without_digest",
            format!(
                "release {release} {why}, so stagegate cannot tell which artifact it authorised; register the release with its artifact_digest"
            ),
        )];
    };
    let images = match workload::images(kind, object) {
        Ok(i) => i,
        Err(m) => return vec![Finding::malformed(&m)],
    };
    let uris = if kind == Kind::InferenceService {
        match workload::storage_uris(object) {
            Ok(u) => u,
            Err(m) => return vec![Finding::malformed(&m)],
        }
    } else {
        Vec::new()
    };
    let mut findings = Vec::new();
    let mut carried = false;
    for i in &images {
        match workload::image_digest(i.image) {
            None => findings.push(Finding::deny(
                "admission.image_not_pinned",
                format!(
                    "{} is '{}', which is not pinned by digest (NAME@sha256:…): a tag can name other bytes tomorrow",
                    i.path, i.image
                ),
            )),
            Some(d) if d == digest => carried = true,
            Some(d) if allowed.contains(&d) => {}
            Some(d) => findings.push(Finding::deny(
                "admission.image_not_allowed",
                format!(
                    "{} is pinned to {d}, which is neither release {release}'s artifact {digest} nor on the allow-list of system '{}' or deployment '{}' ([[integrations.kubernetes.allowed_images]])",
                    i.path, deployment.system_id, deployment.id
                ),
            )),
        }
    }
    for u in &uris {
        match workload::storage_digest(u.image) {
            None => findings.push(Finding::deny(
                "admission.storage_not_content_addressed",
                format!(
                    "{} is '{}', which is not content-addressed: use oci://…@sha256:… or a URI whose last path segment is the digest",
                    u.path, u.image
                ),
            )),
            Some(d) if d == digest => carried = true,
            Some(d) => findings.push(Finding::deny(
                "admission.storage_not_allowed",
                format!(
                    "{} is addressed by {d}, not release {release}'s artifact {digest}",
                    u.path
                ),
            )),
        }
    }
    if !carried {
        let seen: Vec<String> = images
            .iter()
            .chain(&uris)
            .take(5)
            .map(|i| format!("{}={}", i.path, i.image))
            .collect();
        let seen = if seen.is_empty() {
            "the object names no image or storageUri".to_string()
        } else {
            format!("it names {}", seen.join(", "))
        };
        findings.push(Finding::deny(
            "admission.digest_mismatch",
            format!(
                "release {release} is the artifact {digest}, but no container image pinned to it and no storageUri addressed by it is in the object; {seen}"
            ),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Timestamp;
    use crate::records::DeploymentStatus;
    use serde_json::json;

    const D: &str = "sha256:5f2b0c7e9a1d4e8b3c6f0a2d9e7b1c4a8f3e6d0b2a5c9e1f4d7b0a3c6e9f2d5b";

    fn deployment() -> Deployment {
        Deployment {
            id: "dep".into(),
            release_id: "credit-scoring@2.3.0".into(),
            system_id: "credit-scoring".into(),
            status: DeploymentStatus::Active,
            stage: "pilot".into(),
            traffic_percent: 5.0,
            stage_entered_at: Timestamp(0),
            deployed_at: Timestamp(0),
            version: 1,
            updated_at: Timestamp(0),
            plan: Default::default(),
            refs: Default::default(),
        }
    }

    fn pod(images: &[&str]) -> Value {
        let containers: Vec<Value> = images.iter().map(|i| json!({"image": i})).collect();
        json!({"spec": {"template": {"spec": {"containers": containers}}}})
    }

    fn codes(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn a_release_without_an_artifact_digest_is_denied_saying_why() {
        let object = pod(&[&format!("r/m@{D}")]);
        let f = check(Kind::AppsWorkload, &object, &deployment(), None, &[]);
        assert_eq!(codes(&f), ["admission.release_without_digest"]);
        assert!(f[0].message.contains("records no artifact_digest"), "{f:?}");
        let f = check(
            Kind::AppsWorkload,
            &object,
            &deployment(),
            Some("md5:ab"),
            &[],
        );
        assert_eq!(codes(&f), ["admission.release_without_digest"]);
        // A Canary runs no artifact of its own.
        assert!(check(Kind::Canary, &json!({}), &deployment(), None, &[]).is_empty());
    }

    #[test]
    fn only_the_model_and_allow_listed_digests_may_run() {
        let sidecar = format!("sha256:{}", "5c".repeat(32));
        let d = deployment();
        let ok = pod(&[&format!("r/m@{D}"), &format!("r/proxy@{sidecar}")]);
        assert!(check(Kind::Rollout, &ok, &d, Some(D), &[&sidecar]).is_empty());
        let f = check(Kind::Rollout, &ok, &d, Some(D), &[]);
        assert_eq!(codes(&f), ["admission.image_not_allowed"]);
        // The allow-list never stands in for the model.
        let f = check(
            Kind::Rollout,
            &pod(&[&format!("r/proxy@{sidecar}")]),
            &d,
            Some(D),
            &[&sidecar],
        );
        assert_eq!(codes(&f), ["admission.digest_mismatch"]);
        let list = [
            AllowedImages {
                system: Some("credit-scoring".into()),
                deployment: None,
                digests: vec![sidecar.clone()],
            },
            AllowedImages {
                system: None,
                deployment: Some("other".into()),
                digests: vec!["sha256:x".into()],
            },
        ];
        assert_eq!(allowed_for(&list, &d), [sidecar.as_str()]);
    }
}
