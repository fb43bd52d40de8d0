//! Reading a governed object: which kind it is, its stagegate annotations,
//! the images of its pod template and its storage URIs, each with the JSON
//! path it was read at. What cannot be read is [`Malformed`], never
//! skipped: a field the rules cannot read is a field they cannot hold.

use serde_json::{Map, Value};

/// The kinds admission governs (docs/integrations/kubernetes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `apps/v1` Deployment, StatefulSet, DaemonSet: a pod template that
    /// replaces every pod on rollout.
    AppsWorkload,
    /// `argoproj.io` Rollout.
    Rollout,
    /// `serving.kserve.io` InferenceService.
    InferenceService,
    /// `flagger.app` Canary.
    Canary,
    /// `argoproj.io` AnalysisTemplate or ClusterAnalysisTemplate.
    AnalysisTemplate,
}

impl Kind {
    /// The governed kind of `group`/`kind`, if any.
    pub fn of(group: &str, kind: &str) -> Option<Kind> {
        match (group, kind) {
            ("apps", "Deployment" | "StatefulSet" | "DaemonSet") => Some(Kind::AppsWorkload),
            ("argoproj.io", "Rollout") => Some(Kind::Rollout),
            ("argoproj.io", "AnalysisTemplate" | "ClusterAnalysisTemplate") => {
                Some(Kind::AnalysisTemplate)
            }
            ("serving.kserve.io", "InferenceService") => Some(Kind::InferenceService),
            ("flagger.app", "Canary") => Some(Kind::Canary),
            _ => None,
        }
    }

    /// Whether the object runs an artifact (and so carries the release's).
    pub fn runs_artifact(self) -> bool {
        matches!(
            self,
            Kind::AppsWorkload | Kind::Rollout | Kind::InferenceService
        )
    }
}

/// A field that could not be read: its JSON path (dotted, from the
/// object's root) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub path: String,
    pub message: String,
}

impl Malformed {
    fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Malformed {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// `value` as an object, or malformed at `path`; `None` when absent.
fn object_at<'a>(
    value: Option<&'a Value>,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, Malformed> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(Malformed::at(path, "must be an object")),
    }
}

/// The value of annotation `name` of the object, trimmed; malformed when
/// `metadata`, `metadata.annotations` or the value has the wrong type.
pub fn annotation<'a>(object: &'a Value, name: &str) -> Result<Option<&'a str>, Malformed> {
    let Some(metadata) = object_at(object.get("metadata"), "metadata")? else {
        return Ok(None);
    };
    let Some(annotations) = object_at(metadata.get("annotations"), "metadata.annotations")? else {
        return Ok(None);
    };
    match annotations.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim())),
        Some(_) => Err(Malformed::at(
            format!("metadata.annotations.{name}"),
            "must be a string",
        )),
    }
}

/// One image of the object, with where it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Image<'a> {
    pub path: String,
    pub image: &'a str,
}

/// The container lists of a pod spec.
const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Every image of the pod spec at `path` (`containers`, `initContainers`,
/// `ephemeralContainers`).
fn pod_spec_images<'a>(
    spec: &'a Map<String, Value>,
    path: &str,
    out: &mut Vec<Image<'a>>,
) -> Result<(), Malformed> {
    for list in CONTAINER_LISTS {
        let here = format!("{path}.{list}");
        let items = match spec.get(list) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) => items,
            Some(_) => return Err(Malformed::at(here, "must be a list of containers")),
        };
        for (i, c) in items.iter().enumerate() {
            let at = format!("{here}[{i}]");
            let Some(c) = c.as_object() else {
                return Err(Malformed::at(at, "must be a container object"));
            };
            match c.get("image") {
                Some(Value::String(image)) => out.push(Image {
                    path: format!("{at}.image"),
                    image,
                }),
                // KServe fills a model container's image from its serving
                // runtime; elsewhere Kubernetes itself refuses it.
                None if path.starts_with("spec.predictor")
                    || path.starts_with("spec.transformer")
                    || path.starts_with("spec.explainer") => {}
                _ => return Err(Malformed::at(format!("{at}.image"), "must be a string")),
            }
        }
    }
    Ok(())
}

/// The components of an InferenceService: each is a pod spec plus
/// framework sections (`model`, `sklearn`, …) that embed a container.
const ISVC_COMPONENTS: [&str; 3] = ["predictor", "transformer", "explainer"];

/// Every image the object would run, with its path. For an apps workload
/// and a Rollout: `spec.template.spec`; for an InferenceService: each
/// component's pod spec and the `image` of its framework sections.
pub fn images(kind: Kind, object: &Value) -> Result<Vec<Image<'_>>, Malformed> {
    let mut out = Vec::new();
    let Some(spec) = object_at(object.get("spec"), "spec")? else {
        return Ok(out);
    };
    match kind {
        Kind::AppsWorkload | Kind::Rollout => {
            let template = object_at(spec.get("template"), "spec.template")?;
            let pod = match template {
                Some(t) => object_at(t.get("spec"), "spec.template.spec")?,
                None => None,
            };
            if let Some(pod) = pod {
                pod_spec_images(pod, "spec.template.spec", &mut out)?;
            }
        }
        Kind::InferenceService => {
            for component in ISVC_COMPONENTS {
                let path = format!("spec.{component}");
                let Some(c) = object_at(spec.get(component), &path)? else {
                    continue;
                };
                pod_spec_images(c, &path, &mut out)?;
                for (key, section) in c {
                    if CONTAINER_LISTS.contains(&key.as_str()) {
                        continue;
                    }
                    if let Some(Value::Object(section)) = Some(section)
                        && let Some(image) = section.get("image")
                    {
                        let at = format!("{path}.{key}.image");
                        match image {
                            Value::String(image) => out.push(Image { path: at, image }),
                            _ => return Err(Malformed::at(at, "must be a string")),
                        }
                    }
                }
            }
        }
        Kind::Canary | Kind::AnalysisTemplate => {}
    }
    Ok(out)
}

/// Every `storageUri` of an InferenceService's components, with its path.
pub fn storage_uris(object: &Value) -> Result<Vec<Image<'_>>, Malformed> {
    let mut out = Vec::new();
    let Some(spec) = object_at(object.get("spec"), "spec")? else {
        return Ok(out);
    };
    for component in ISVC_COMPONENTS {
        let path = format!("spec.{component}");
        let Some(c) = object_at(spec.get(component), &path)? else {
            continue;
        };
        for (key, section) in c {
            let (at, uri) = if key == "storageUri" {
                (format!("{path}.storageUri"), Some(section))
            } else {
                (
                    format!("{path}.{key}.storageUri"),
                    section.get("storageUri"),
                )
            };
            match uri {
                None => {}
                Some(Value::String(uri)) => out.push(Image {
                    path: at,
                    image: uri,
                }),
                Some(_) => return Err(Malformed::at(at, "must be a string")),
            }
        }
    }
    Ok(out)
}

/// `sha256:<64 lowercase hex>`: the only digest form matched.
pub fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// The digest an image reference is pinned to: `NAME@sha256:<hex>`.
/// A tag beside the digest (`NAME:TAG@sha256:…`) is ignored by the
/// runtime, so it is allowed; anything else after `@` is not a pin.
pub fn image_digest(image: &str) -> Option<&str> {
    let (name, digest) = image.rsplit_once('@')?;
    (!name.is_empty() && is_digest(digest)).then_some(digest)
}

/// The digest a storage URI is addressed by: `oci://…@sha256:<hex>`, or a
/// URI whose last path segment is the digest itself (no trailing slash, no
/// query, no fragment: a prefix or a query can name other bytes). Never a
/// substring.
pub fn storage_digest(uri: &str) -> Option<&str> {
    if let Some(rest) = uri.strip_prefix("oci://") {
        return image_digest(rest);
    }
    let (scheme, rest) = uri.split_once("://")?;
    if scheme.is_empty() || rest.contains('?') || rest.contains('#') {
        return None;
    }
    let (_, last) = rest.rsplit_once('/')?;
    is_digest(last).then_some(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D: &str = "sha256:9f2c1d0e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e";

    #[test]
    fn every_container_list_of_the_pod_template_is_read_with_its_path() {
        let object = json!({"spec": {"template": {"spec": {
            "initContainers": [{"name": "i", "image": "busybox:1"}],
            "containers": [{"name": "m", "image": "r/app@sha256:ab"}, {"name": "s", "image": "side"}],
            "ephemeralContainers": [{"name": "e", "image": "debug"}]}}}});
        let paths: Vec<String> = images(Kind::Rollout, &object)
            .unwrap()
            .into_iter()
            .map(|i| i.path)
            .collect();
        assert_eq!(
            paths,
            [
                "spec.template.spec.containers[0].image",
                "spec.template.spec.containers[1].image",
                "spec.template.spec.initContainers[0].image",
                "spec.template.spec.ephemeralContainers[0].image",
            ]
        );
    }

    #[test]
    fn a_container_list_of_the_wrong_type_is_malformed_at_its_path() {
        let object = json!({"spec": {"template": {"spec": {"containers": {"image": "x"}}}}});
        let e = images(Kind::AppsWorkload, &object).unwrap_err();
        assert_eq!(e.path, "spec.template.spec.containers");
        let object = json!({"spec": {"template": {"spec": {"containers": [{"image": 7}]}}}});
        let e = images(Kind::AppsWorkload, &object).unwrap_err();
        assert_eq!(e.path, "spec.template.spec.containers[0].image");
        let e = annotation(&json!({"metadata": {"annotations": {"a": 1}}}), "a").unwrap_err();
        assert_eq!(e.path, "metadata.annotations.a");
    }

    #[test]
    fn only_a_digest_pin_counts_as_pinned() {
        assert_eq!(image_digest(&format!("r/app@{D}")), Some(D));
        assert_eq!(image_digest(&format!("r/app:1.0@{D}")), Some(D));
        assert_eq!(image_digest("r/app:1.0"), None);
        assert_eq!(image_digest(&format!("r/app:{D}")), None);
        assert_eq!(image_digest(&format!("@{D}")), None);
        assert_eq!(image_digest(&format!("r/app@{}", D.to_uppercase())), None);
    }

    #[test]
    fn a_storage_uri_counts_only_when_content_addressed() {
        assert_eq!(storage_digest(&format!("oci://r.example/m@{D}")), Some(D));
        assert_eq!(storage_digest(&format!("s3://bucket/models/{D}")), Some(D));
        // A prefix (trailing slash), a query, a substring: other bytes.
        assert_eq!(storage_digest(&format!("s3://attacker/{D}/")), None);
        assert_eq!(storage_digest(&format!("s3://b/{D}?v=2")), None);
        assert_eq!(storage_digest(&format!("s3://b/model-{D}")), None);
        assert_eq!(storage_digest(&format!("oci://r.example/m:{D}")), None);
        assert_eq!(storage_digest(D), None);
    }

    #[test]
    fn inference_service_images_and_storage_uris_are_read_per_component() {
        let object = json!({"spec": {
            "predictor": {"model": {"storageUri": format!("oci://r/m@{D}"), "image": "rt@x"},
                "containers": [{"name": "c", "image": "side"}]},
            "transformer": {"containers": [{"name": "t", "image": "tr"}]}}});
        let img: Vec<String> = images(Kind::InferenceService, &object)
            .unwrap()
            .into_iter()
            .map(|i| i.path)
            .collect();
        assert!(img.contains(&"spec.predictor.containers[0].image".to_string()));
        assert!(img.contains(&"spec.predictor.model.image".to_string()));
        assert!(img.contains(&"spec.transformer.containers[0].image".to_string()));
        let uris = storage_uris(&object).unwrap();
        assert_eq!(uris[0].path, "spec.predictor.model.storageUri");
    }
}
