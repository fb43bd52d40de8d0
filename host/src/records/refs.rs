//! External references on deployments, and finding a deployment by one.
//!
//! Rollout controllers (Argo Rollouts, Flagger, the Kubernetes API server)
//! know the object they roll out — `NAMESPACE/NAME` — not a stagegate
//! deployment id. A deployment created with `"refs": {"kubernetes":
//! "NAMESPACE/NAME"}` can be found by that name: a ref resolves to the
//! newest deployment created with it. An older deployment holding the same
//! ref keeps its status (it still serves the traffic the newer one does
//! not) until the newer one reaches its plan's last stage; then the older
//! one's history records that it was superseded
//! ([`Records::supersede_older`]).
//!
//! The refs are part of the deployment row the chain commits to; the
//! `deployment_refs` table is only the index they are looked up through,
//! and a deployment found through it is checked against its own refs.

use std::fmt;

use sqlx::Row;

use super::deployments::deployment_row;
use super::model::{Deployment, EventDetail, EventKind, Refs};
use super::store::StoreError;
use super::write::Write;
use super::{RecordError, Records};

/// The ref key Kubernetes objects are named under, and the default key of
/// a `ref=NAMESPACE/NAME` query.
pub const KUBERNETES: &str = "kubernetes";

/// Refs one deployment may hold: a few objects serve one release.
pub const MAX_REFS: usize = 8;

/// Longest value of a ref under a key other than `kubernetes`.
const MAX_VALUE: usize = 256;

/// How an adapter names the deployment it asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentSelector {
    /// A deployment id.
    Id(String),
    /// The newest deployment created with this ref.
    Ref { key: String, value: String },
}

impl DeploymentSelector {
    /// A `kubernetes` ref from `NAMESPACE/NAME`, checked.
    pub fn kubernetes(value: &str) -> Result<Self, RecordError> {
        check_value(KUBERNETES, value).map_err(|m| RecordError::invalid("ref", m))?;
        Ok(DeploymentSelector::Ref {
            key: KUBERNETES.into(),
            value: value.to_string(),
        })
    }

    /// From an adapter's query: exactly one of `deployment` (an id) and
    /// `reference` (`NAMESPACE/NAME`); errors name the query parameter.
    pub fn from_query(
        deployment: Option<&str>,
        reference: Option<&str>,
    ) -> Result<Self, RecordError> {
        match (
            deployment.filter(|s| !s.is_empty()),
            reference.filter(|s| !s.is_empty()),
        ) {
            (Some(id), None) => Ok(DeploymentSelector::Id(id.to_string())),
            (None, Some(r)) => DeploymentSelector::kubernetes(r),
            (Some(_), Some(_)) => Err(RecordError::invalid(
                "deployment",
                "give either deployment=ID or ref=NAMESPACE/NAME, not both",
            )),
            (None, None) => Err(RecordError::invalid(
                "deployment",
                "name the deployment: deployment=ID or ref=NAMESPACE/NAME",
            )),
        }
    }
}

impl fmt::Display for DeploymentSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeploymentSelector::Id(id) => write!(f, "deployment '{id}'"),
            DeploymentSelector::Ref { key, value } => write!(f, "ref {key}={value}"),
        }
    }
}

/// Checks a deployment body's refs; errors name `/refs/KEY`.
pub fn check(refs: &Refs) -> Result<(), RecordError> {
    if refs.len() > MAX_REFS {
        return Err(RecordError::invalid(
            "/refs",
            format!("expected at most {MAX_REFS} refs, found {}", refs.len()),
        ));
    }
    for (key, value) in refs {
        let path = format!("/refs/{key}");
        check_key(key).map_err(|m| RecordError::invalid(&path, m))?;
        check_value(key, value).map_err(|m| RecordError::invalid(&path, m))?;
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "ref key '{key}': expected 1-63 lowercase letters, digits, '-', '.' or '_', starting with a letter"
        ))
    }
}

fn check_value(key: &str, value: &str) -> Result<(), String> {
    if key == KUBERNETES {
        let Some((namespace, name)) = value.split_once('/') else {
            return Err(format!(
                "'{value}': expected NAMESPACE/NAME (the Kubernetes object that serves the release)"
            ));
        };
        if !is_dns_label(namespace) {
            return Err(format!(
                "'{value}': namespace '{namespace}' is not a Kubernetes namespace name (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit)"
            ));
        }
        if !is_dns_subdomain(name) {
            return Err(format!(
                "'{value}': name '{name}' is not a Kubernetes object name (1-253 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit)"
            ));
        }
        return Ok(());
    }
    if value.is_empty() || value.len() > MAX_VALUE {
        return Err(format!(
            "expected 1-{MAX_VALUE} characters, found {}",
            value.len()
        ));
    }
    if value.trim() != value || value.chars().any(char::is_control) {
        return Err("no control characters and no leading or trailing spaces".into());
    }
    Ok(())
}

/// RFC 1123 label: what Kubernetes namespaces are.
fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: what most Kubernetes object names are.
fn is_dns_subdomain(s: &str) -> bool {
    (1..=253).contains(&s.len()) && s.split('.').all(is_dns_label)
}

/// Writes the index rows of a new deployment's refs.
pub(crate) async fn index(w: &mut Write<'_>, d: &Deployment) -> Result<(), RecordError> {
    for (key, value) in &d.refs {
        sqlx::query(
            "INSERT INTO deployment_refs (ref_key, ref_value, deployment_id, deployed_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key)
        .bind(value)
        .bind(&d.id)
        .bind(d.deployed_at.millis())
        .execute(&mut *w.conn())
        .await?;
    }
    Ok(())
}

impl Records {
    /// The deployment a selector names: by id, or the newest deployment
    /// created with the ref.
    pub async fn find_deployment(
        &self,
        selector: &DeploymentSelector,
    ) -> Result<Deployment, RecordError> {
        let (key, value) = match selector {
            DeploymentSelector::Id(id) => return self.deployment(id).await,
            DeploymentSelector::Ref { key, value } => (key, value),
        };
        let mut conn = self.store.pool.acquire().await?;
        let row = sqlx::query(
            "SELECT deployment_id FROM deployment_refs WHERE ref_key = $1 AND ref_value = $2 ORDER BY deployed_at DESC, deployment_id DESC LIMIT 1",
        )
        .bind(key)
        .bind(value)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| RecordError::NotFound(format!("no deployment holds ref {key}={value}")))?;
        let id: String = row.try_get("deployment_id")?;
        let d = deployment_row(&mut conn, &id).await?;
        if d.refs.get(key) != Some(value) {
            return Err(RecordError::Store(StoreError::Corrupt(format!(
                "the ref index names deployment '{id}' for {key}={value}, but its sealed refs do not hold it"
            ))));
        }
        Ok(d)
    }

    /// When `newer` has just reached its plan's last stage: every older
    /// deployment holding one of its refs gets a `superseded` event (once)
    /// and leaves the monitoring schedule — it no longer serves traffic.
    /// Its status is unchanged: it was neither rolled back nor suspended.
    pub(crate) async fn supersede_older(
        &self,
        w: &mut Write<'_>,
        newer: &Deployment,
    ) -> Result<(), RecordError> {
        let mut done = std::collections::BTreeSet::new();
        for (key, value) in &newer.refs {
            let rows = sqlx::query(
                "SELECT deployment_id FROM deployment_refs WHERE ref_key = $1 AND ref_value = $2 AND deployment_id <> $3 AND (deployed_at < $4 OR (deployed_at = $4 AND deployment_id < $3)) ORDER BY deployed_at, deployment_id",
            )
            .bind(key)
            .bind(value)
            .bind(&newer.id)
            .bind(newer.deployed_at.millis())
            .fetch_all(&mut *w.conn())
            .await?;
            for row in &rows {
                let id: String = row.try_get("deployment_id")?;
                if !done.insert(id.clone()) {
                    continue;
                }
                let already: Option<(i64,)> = sqlx::query_as(
                    "SELECT seq FROM deployment_events WHERE deployment_id = $1 AND kind = $2 LIMIT 1",
                )
                .bind(&id)
                .bind(EventKind::Superseded.as_str())
                .fetch_optional(&mut *w.conn())
                .await?;
                if already.is_some() {
                    continue;
                }
                let older = deployment_row(w.conn(), &id).await?;
                let detail = EventDetail {
                    superseded_by: Some(newer.id.clone()),
                    shared_ref: Some(format!("{key}={value}")),
                    ..EventDetail::default()
                };
                let reason = format!(
                    "deployment '{}' holding ref {key}={value} reached its plan's last stage '{}'",
                    newer.id, newer.stage
                );
                self.write_event(
                    w,
                    &older,
                    EventKind::Superseded,
                    None,
                    Some(reason),
                    &detail,
                )
                .await?;
                sqlx::query("DELETE FROM monitor_schedule WHERE deployment_id = $1")
                    .bind(&id)
                    .execute(&mut *w.conn())
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(pairs: &[(&str, &str)]) -> Refs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn path_of(e: RecordError) -> String {
        match e {
            RecordError::Invalid { path, .. } => path,
            other => panic!("expected an invalid-input error, got {other:?}"),
        }
    }

    #[test]
    fn kubernetes_refs_are_namespace_slash_name() {
        check(&refs(&[("kubernetes", "risk/credit-scoring")])).unwrap();
        check(&refs(&[
            ("kubernetes", "risk/credit-scoring.v2"),
            ("argocd", "apps/credit"),
        ]))
        .unwrap();
        for bad in [
            "credit-scoring",
            "Risk/credit",
            "risk/",
            "/credit",
            "risk/credit/x",
            "risk/-x",
        ] {
            let e = check(&refs(&[("kubernetes", bad)])).unwrap_err();
            assert_eq!(path_of(e), "/refs/kubernetes", "{bad}");
        }
    }

    #[test]
    fn bad_keys_values_and_counts_are_named() {
        assert_eq!(
            path_of(check(&refs(&[("Kube", "x")])).unwrap_err()),
            "/refs/Kube"
        );
        assert_eq!(
            path_of(check(&refs(&[("git", " padded")])).unwrap_err()),
            "/refs/git"
        );
        assert_eq!(
            path_of(check(&refs(&[("git", "")])).unwrap_err()),
            "/refs/git"
        );
        let many: Vec<(String, String)> = (0..=MAX_REFS)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert_eq!(
            path_of(check(&many.into_iter().collect()).unwrap_err()),
            "/refs"
        );
    }

    #[test]
    fn a_query_names_a_deployment_by_id_or_by_ref_but_not_both() {
        assert_eq!(
            DeploymentSelector::from_query(Some("01J"), None).unwrap(),
            DeploymentSelector::Id("01J".into())
        );
        assert_eq!(
            DeploymentSelector::from_query(None, Some("risk/credit")).unwrap(),
            DeploymentSelector::Ref {
                key: "kubernetes".into(),
                value: "risk/credit".into()
            }
        );
        assert!(DeploymentSelector::from_query(Some("a"), Some("b/c")).is_err());
        assert!(DeploymentSelector::from_query(None, None).is_err());
        assert_eq!(
            path_of(DeploymentSelector::from_query(None, Some("no-slash")).unwrap_err()),
            "ref"
        );
    }
}
