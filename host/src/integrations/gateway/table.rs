//! The route table and the check: which deployment a gateway names, and
//! whether the subject's bucket is within its traffic.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hmac::{Hmac, Mac};
use prometheus_client::metrics::counter::Counter;
use sha2::Sha256;

use super::{AuthzConfig, BUCKETS};
use crate::records::{RecordError, Records};
use crate::service::Metrics;

/// An active deployment as the check needs it, with its counters made once
/// per refresh.
pub struct Route {
    pub deployment_id: String,
    /// `traffic_percent × 100`: buckets below it are admitted.
    threshold: u64,
    pub traffic_percent: f64,
    pub stage: Arc<str>,
    pub release: Arc<str>,
    admitted: Counter,
    refused: Counter,
}

/// What a ref names: the newest deployment created with it.
enum Named {
    Active(Arc<Route>),
    Inactive {
        deployment_id: String,
        status: String,
    },
}

#[derive(Default)]
struct Snapshot {
    by_id: HashMap<String, Arc<Route>>,
    by_ref: HashMap<String, Named>,
}

/// One question from a gateway: the deployment (by id or by Kubernetes
/// ref) and the subject the gateway authenticated.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask<'a> {
    pub deployment: Option<&'a str>,
    pub reference: Option<&'a str>,
    pub subject: Option<&'a str>,
}

/// Why a question could not be asked: it names neither or both ways of
/// naming the deployment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    #[error("give X-Stagegate-Deployment or X-Stagegate-Ref, not both")]
    Both,
    #[error("name the deployment: X-Stagegate-Deployment: ID or X-Stagegate-Ref: NAMESPACE/NAME")]
    Neither,
}

impl AskError {
    /// The header the error is about.
    pub fn header(&self) -> &'static str {
        match self {
            AskError::Both => "X-Stagegate-Ref",
            AskError::Neither => "X-Stagegate-Deployment",
        }
    }
}

/// The answer: admitted or not, the deployment's route when one was
/// found, and why (which names the bucket: for the gateway's logs only).
pub struct Answer {
    pub admitted: bool,
    pub route: Option<Arc<Route>>,
    pub why: String,
}

impl Answer {
    fn out(route: Option<Arc<Route>>, why: String) -> Self {
        Answer {
            admitted: false,
            route,
            why,
        }
    }
}

/// The route table and the key.
pub struct Exposure {
    snapshot: ArcSwap<Snapshot>,
    refreshed: ArcSwap<Instant>,
    stale_after: Duration,
    mac: Hmac<Sha256>,
    metrics: Arc<Metrics>,
    unknown_refused: Counter,
}

impl Exposure {
    /// Reads (or creates) the key; the table starts empty until the first
    /// refresh.
    pub fn new(
        config: &AuthzConfig,
        data_dir: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Exposure, super::key::KeyFileError> {
        let path = config
            .key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("authz.key"));
        let key = super::key::load_or_create_key(&path)?;
        let mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| super::key::KeyFileError {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        Ok(Exposure {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            refreshed: ArcSwap::from_pointee(Instant::now()),
            stale_after: Duration::from_millis(config.stale_after_ms),
            mac,
            unknown_refused: metrics.authz_counter("unknown", "out"),
            metrics,
        })
    }

    /// The subject's bucket in `deployment_id`: 0..[`BUCKETS`].
    pub fn bucket(&self, deployment_id: &str, subject: &str) -> u64 {
        let mut mac = self.mac.clone();
        mac.update(deployment_id.as_bytes());
        mac.update(&[0]);
        mac.update(subject.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first) % BUCKETS
    }

    /// Rebuilds the table from the records: every active deployment, and
    /// for each Kubernetes ref the newest deployment holding it.
    pub async fn refresh(&self, records: &Records) -> Result<(), RecordError> {
        let routes = records.active_routes().await?;
        let old = self.snapshot.load();
        let mut by_id = HashMap::with_capacity(routes.len());
        for r in routes {
            // Counters are label lookups: reuse the handles of a deployment
            // already in the table.
            let (admitted, refused) = match old.by_id.get(&r.deployment_id) {
                Some(t) => (t.admitted.clone(), t.refused.clone()),
                None => (
                    self.metrics.authz_counter(&r.deployment_id, "in"),
                    self.metrics.authz_counter(&r.deployment_id, "out"),
                ),
            };
            let route = Route {
                threshold: threshold(r.traffic_percent),
                traffic_percent: r.traffic_percent,
                stage: r.stage.into(),
                release: r.release_id.into(),
                admitted,
                refused,
                deployment_id: r.deployment_id.clone(),
            };
            by_id.insert(r.deployment_id, Arc::new(route));
        }
        let mut by_ref = HashMap::new();
        for holder in records.kubernetes_ref_holders().await? {
            if by_ref.contains_key(&holder.value) {
                continue; // an older deployment holding the same ref
            }
            let named = match by_id.get(&holder.deployment_id) {
                Some(t) => Named::Active(t.clone()),
                None => Named::Inactive {
                    deployment_id: holder.deployment_id,
                    status: holder.status,
                },
            };
            by_ref.insert(holder.value, named);
        }
        self.snapshot.store(Arc::new(Snapshot { by_id, by_ref }));
        self.refreshed.store(Arc::new(Instant::now()));
        self.metrics
            .ops
            .exposure_refreshed(crate::service::ops_metrics::unix_now());
        Ok(())
    }

    /// Keeps the table fresh: every `refresh`, and at once after a
    /// transition on this replica.
    pub fn spawn_refresh(self: &Arc<Self>, records: Records, every: Duration) {
        let this = self.clone();
        let changed = records.route_changes();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                match this.refresh(&records).await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("exposure route table refreshed again");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::error!(error = %e, "exposure route table could not be refreshed");
                    }
                    Err(_) => {}
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = changed.notified() => {}
                }
            }
        });
    }

    /// Judges one question.
    pub fn check(&self, ask: Ask<'_>) -> Result<Answer, AskError> {
        if self.refreshed.load().elapsed() > self.stale_after {
            self.unknown_refused.inc();
            return Ok(Answer::out(
                None,
                "out: the route table is stale (records unreachable)".into(),
            ));
        }
        let snapshot = self.snapshot.load();
        let route = match (ask.deployment, ask.reference) {
            (Some(id), None) => match snapshot.by_id.get(id) {
                Some(t) => t.clone(),
                None => {
                    self.unknown_refused.inc();
                    return Ok(Answer::out(
                        None,
                        format!("out: no active deployment '{id}'"),
                    ));
                }
            },
            (None, Some(r)) => match snapshot.by_ref.get(r) {
                Some(Named::Active(t)) => t.clone(),
                Some(Named::Inactive {
                    deployment_id,
                    status,
                }) => {
                    self.unknown_refused.inc();
                    return Ok(Answer::out(
                        None,
                        format!("out: deployment '{deployment_id}' for ref {r} is {status}"),
                    ));
                }
                None => {
                    self.unknown_refused.inc();
                    return Ok(Answer::out(
                        None,
                        format!("out: no deployment holds ref {r}"),
                    ));
                }
            },
            (Some(_), Some(_)) => return Err(AskError::Both),
            (None, None) => return Err(AskError::Neither),
        };
        let (admitted, why) = match ask.subject {
            Some(subject) => {
                let bucket = self.bucket(&route.deployment_id, subject);
                if bucket < route.threshold {
                    (true, format!("in: bucket {bucket} < {}", route.threshold))
                } else {
                    (
                        false,
                        format!("out: bucket {bucket} >= {}", route.threshold),
                    )
                }
            }
            None if route.threshold >= BUCKETS => (true, "in: no subject, traffic 100%".into()),
            None => (
                false,
                format!("out: no subject, traffic {}% < 100%", route.traffic_percent),
            ),
        };
        if admitted {
            route.admitted.inc();
        } else {
            route.refused.inc();
        }
        Ok(Answer {
            admitted,
            route: Some(route),
            why,
        })
    }
}

/// `traffic_percent × 100`, rounded: 5 % → 500, 100 % → 10,000.
fn threshold(traffic_percent: f64) -> u64 {
    if traffic_percent.is_finite() && traffic_percent > 0.0 {
        (traffic_percent * 100.0).round().min(BUCKETS as f64) as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure() -> Exposure {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef").unwrap();
        Exposure::new(
            &AuthzConfig {
                key_file: Some(path),
                ..AuthzConfig::default()
            },
            dir.path(),
            Arc::new(Metrics::new()),
        )
        .unwrap()
    }

    #[test]
    fn admission_is_monotone_in_traffic_and_shares_match_the_percentages() {
        let e = exposure();
        let buckets: Vec<u64> = (0..20_000)
            .map(|i| e.bucket("dep-1", &format!("user-{i}")))
            .collect();
        let mut previous: Option<Vec<bool>> = None;
        for pct in [0.0, 1.0, 5.0, 25.0, 30.0, 50.0, 100.0] {
            let t = threshold(pct);
            let admitted: Vec<bool> = buckets.iter().map(|b| *b < t).collect();
            let share = admitted.iter().filter(|a| **a).count() as f64 / 200.0;
            assert!((share - pct).abs() < 1.0, "{pct}%: {share}%");
            if let Some(before) = &previous {
                assert!(
                    before.iter().zip(&admitted).all(|(b, a)| !*b || *a),
                    "a subject admitted below {pct}% is refused at {pct}%"
                );
            }
            previous = Some(admitted);
        }
        assert_eq!(threshold(100.0), BUCKETS);
        assert_eq!(threshold(5.0), 500);
        assert_eq!(threshold(f64::NAN), 0);
    }

    #[test]
    fn buckets_depend_on_the_key_and_the_deployment() {
        let a = exposure();
        let dir = tempfile::tempdir().unwrap();
        let other = Exposure::new(
            &AuthzConfig::default(),
            dir.path(),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let same = (0..200)
            .filter(|i| {
                let s = format!("s{i}");
                a.bucket("d", &s) == other.bucket("d", &s)
            })
            .count();
        assert!(same < 5, "{same} of 200 buckets equal under another key");
        let moved = (0..200)
            .filter(|i| {
                let s = format!("s{i}");
                a.bucket("d1", &s) != a.bucket("d2", &s)
            })
            .count();
        assert!(moved > 190);
        // The created key is kept and reused.
        let again = Exposure::new(
            &AuthzConfig::default(),
            dir.path(),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        assert_eq!(other.bucket("d", "x"), again.bucket("d", "x"));
    }

    #[test]
    fn config_keeps_refresh_within_a_second() {
        let mut c = AuthzConfig::default();
        assert!(c.validate().is_ok());
        c.refresh_ms = 2_000;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("within a second")
        );
    }
}
