//! The per-request exposure check for serving gateways
//! (docs/integrations/gateways.md): `ANY /v1/integrations/authz[/…]`.
//!
//! nginx `auth_request` and Envoy `ext_authz` (HTTP service) ask before
//! every inference request whether this caller may reach the new release.
//! The answer comes from memory: a table of the active deployments' routes
//! (and of which deployment each Kubernetes ref names), rebuilt from the
//! records every `refresh_ms` (default 250 ms) on every replica, and at
//! once on the replica that commits a transition. So a rollback anywhere
//! stops admissions everywhere within `refresh_ms` plus one query, and a
//! request costs one HMAC and no database access at all.
//!
//! A subject's bucket is HMAC-SHA256(key, deployment id ‖ 0 ‖ subject)
//! reduced to 0..9,999; the subject is admitted while its bucket is below
//! `traffic_percent × 100`. A bucket does not change as the stage does, so
//! a subject admitted at 5 % stays admitted at 25 % and 100 %. The key is a
//! server secret (`[integrations.authz] key_file`), the same on every
//! replica and across restarts, so that callers cannot choose subjects that
//! land in the pilot and every replica assigns a subject alike.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use prometheus_client::metrics::counter::Counter;
use sha2::Sha256;
use sqlx::Row;

use super::App;
use super::error::ApiError;
use crate::auth::Role;
use crate::records::Records;
use crate::server::auth::RequireRole;
use crate::service::Metrics;

/// Buckets a subject can fall in: 0..9,999, so traffic is honoured to a
/// hundredth of a percent.
pub const BUCKETS: u64 = 10_000;

pub use crate::config::AuthzConfig;

/// An active deployment as the gateway check needs it, with its header
/// values and counters made once per refresh.
struct Target {
    deployment_id: String,
    /// `traffic_percent × 100`: buckets below it are admitted.
    threshold: u64,
    traffic_percent: f64,
    stage: HeaderValue,
    release: HeaderValue,
    admitted: Counter,
    refused: Counter,
}

/// What a ref names: the newest deployment created with it.
enum Named {
    Active(Arc<Target>),
    Inactive {
        deployment_id: String,
        status: String,
    },
}

#[derive(Default)]
struct Snapshot {
    by_id: HashMap<String, Arc<Target>>,
    by_ref: HashMap<String, Named>,
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
    ) -> Result<Exposure, String> {
        let path = config
            .key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("authz.key"));
        let key = load_or_create_key(&path)?;
        let mac = Hmac::<Sha256>::new_from_slice(&key)
            .map_err(|e| format!("integrations.authz.key_file {}: {e}", path.display()))?;
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
    pub async fn refresh(&self, records: &Records) -> Result<(), sqlx::Error> {
        let pool = &records.store.pool;
        let rows = sqlx::query(
            "SELECT id, release_id, stage, traffic_percent FROM deployments WHERE status = 'active'",
        )
        .fetch_all(pool)
        .await?;
        let old = self.snapshot.load();
        let mut by_id = HashMap::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            let release: String = row.try_get("release_id")?;
            let stage: String = row.try_get("stage")?;
            let traffic_percent: f64 = row.try_get("traffic_percent")?;
            // Counters are label lookups: reuse the handles of a deployment
            // already in the table.
            let (admitted, refused) = match old.by_id.get(&id) {
                Some(t) => (t.admitted.clone(), t.refused.clone()),
                None => (
                    self.metrics.authz_counter(&id, "in"),
                    self.metrics.authz_counter(&id, "out"),
                ),
            };
            let target = Target {
                threshold: threshold(traffic_percent),
                traffic_percent,
                stage: header_value(&stage),
                release: header_value(&release),
                admitted,
                refused,
                deployment_id: id.clone(),
            };
            by_id.insert(id, Arc::new(target));
        }
        let refs = sqlx::query(
            "SELECT r.ref_value, r.deployment_id, d.status FROM deployment_refs r JOIN deployments d ON d.id = r.deployment_id WHERE r.ref_key = $1 ORDER BY r.ref_value, r.deployed_at DESC, r.deployment_id DESC",
        )
        .bind(crate::records::refs::KUBERNETES)
        .fetch_all(pool)
        .await?;
        let mut by_ref = HashMap::new();
        for row in &refs {
            let value: String = row.try_get("ref_value")?;
            if by_ref.contains_key(&value) {
                continue; // an older deployment holding the same ref
            }
            let id: String = row.try_get("deployment_id")?;
            let named = match by_id.get(&id) {
                Some(t) => Named::Active(t.clone()),
                None => Named::Inactive {
                    deployment_id: id,
                    status: row.try_get("status")?,
                },
            };
            by_ref.insert(value, named);
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

    /// Judges one request's headers.
    fn check(&self, headers: &HeaderMap) -> Result<Answer, ApiError> {
        let text = |name: &'static str| -> Result<Option<&str>, ApiError> {
            match headers.get(name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(|s| Some(s.trim()).filter(|s| !s.is_empty()))
                    .map_err(|_| {
                        ApiError::bad_request("bad_header", format!("{name} is not visible ASCII"))
                            .at(name)
                    }),
            }
        };
        let deployment = text("x-stagegate-deployment")?;
        let reference = text("x-stagegate-ref")?;
        let subject = text("x-stagegate-subject")?;
        if self.refreshed.load().elapsed() > self.stale_after {
            self.unknown_refused.inc();
            return Ok(Answer::out(
                None,
                "out: the route table is stale (records unreachable)".into(),
            ));
        }
        let snapshot = self.snapshot.load();
        let target = match (deployment, reference) {
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
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "bad_header",
                    "give X-Stagegate-Deployment or X-Stagegate-Ref, not both",
                )
                .at("X-Stagegate-Ref"));
            }
            (None, None) => {
                return Err(ApiError::bad_request(
                    "bad_header",
                    "name the deployment: X-Stagegate-Deployment: ID or X-Stagegate-Ref: NAMESPACE/NAME",
                )
                .at("X-Stagegate-Deployment"));
            }
        };
        let (admitted, why) = match subject {
            Some(subject) => {
                let bucket = self.bucket(&target.deployment_id, subject);
                if bucket < target.threshold {
                    (true, format!("in: bucket {bucket} < {}", target.threshold))
                } else {
                    (
                        false,
                        format!("out: bucket {bucket} >= {}", target.threshold),
                    )
                }
            }
            None if target.threshold >= BUCKETS => (true, "in: no subject, traffic 100%".into()),
            None => (
                false,
                format!(
                    "out: no subject, traffic {}% < 100%",
                    target.traffic_percent
                ),
            ),
        };
        if admitted {
            target.admitted.inc();
        } else {
            target.refused.inc();
        }
        Ok(Answer {
            admitted,
            target: Some(target),
            why,
        })
    }
}

struct Answer {
    admitted: bool,
    target: Option<Arc<Target>>,
    why: String,
}

impl Answer {
    fn out(target: Option<Arc<Target>>, why: String) -> Self {
        Answer {
            admitted: false,
            target,
            why,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = if self.admitted {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        let mut response = status.into_response();
        let h = response.headers_mut();
        if let Some(t) = &self.target {
            h.insert("x-stagegate-stage", t.stage.clone());
            h.insert("x-stagegate-release", t.release.clone());
        }
        h.insert("x-stagegate-decision", header_value(&self.why));
        response
    }
}

/// `ANY /v1/integrations/authz[/…]`: 200 admits, 403 refuses; a gateway
/// token is required; no body is read.
pub async fn authz(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let checked = app
        .auth
        .caller(&headers)
        .and_then(|c| c.require(&[Role::Gateway]))
        .and_then(|()| app.exposure.check(&headers));
    match checked {
        Ok(answer) => answer.into_response(),
        Err(e) => e.into_response(),
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

/// A header value from text the records hold (visible ASCII, else
/// replaced), so a stage name can never break the response.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| {
        let clean: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        HeaderValue::from_str(&clean).unwrap_or(HeaderValue::from_static("?"))
    })
}

/// The bucket key: the file's content, or 32 new random bytes (hex)
/// written with mode 0600 when the file does not exist.
fn load_or_create_key(path: &Path) -> Result<Vec<u8>, String> {
    let at =
        |e: &dyn std::fmt::Display| format!("integrations.authz.key_file {}: {e}", path.display());
    if !path.exists() {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| at(&e))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        use std::io::Write;
        options
            .open(path)
            .and_then(|mut f| f.write_all(format!("{}\n", hex::encode(key)).as_bytes()))
            .map_err(|e| at(&e))?;
        tracing::info!(key = %path.display(), "created the exposure bucket key (share it with every replica)");
    }
    let text = std::fs::read(path).map_err(|e| at(&e))?;
    let key = text.trim_ascii_end().to_vec();
    if key.len() < 16 {
        return Err(at(&"the key must be at least 16 bytes"));
    }
    Ok(key)
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
        assert!(c.validate().unwrap_err().contains("within a second"));
    }
}
