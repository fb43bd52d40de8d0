//! Background work that keeps watching after the last request: the
//! monitoring scheduler and the escalation webhook deliverer.
//!
//! The scheduler evaluates the monitoring policy for every active
//! deployment on a schedule (every minute during the intensive period,
//! every 15 minutes after, by default), with no observation posted, so
//! silence itself raises `monitoring.stale`. Its `rollback` and `suspend`
//! outcomes change the deployment exactly as a posted observation would,
//! with the scheduler as actor. Several replicas share the work through
//! leases in the database: each due deployment is claimed by exactly one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::Service as Engine;
use crate::config::Config;
use crate::decision::{Outcome, Timestamp};
use crate::records::{Actor, DeploymentStatus, RecordError, webhooks};

/// Starts the scheduler and the deliverer (each if enabled).
pub(crate) fn start(engine: Engine, config: &Config) {
    let app = Arc::new(engine);
    let app = &app;
    let replica =
        config.scheduler.replica.clone().unwrap_or_else(|| {
            format!("scheduler-{}", ulid::Ulid::new().to_string().to_lowercase())
        });
    if config.scheduler.enabled {
        let (app, replica) = (app.clone(), replica.clone());
        let tick = Duration::from_millis(config.scheduler.tick_ms);
        tokio::spawn(async move {
            tracing::info!(replica = %replica, "monitoring scheduler started");
            loop {
                tokio::time::sleep(tick).await;
                if let Err(e) = scheduler_pass(&app, &replica).await {
                    tracing::warn!(error = %e, "scheduler pass failed; retrying next tick");
                }
            }
        });
    }
    if config.records.checkpoint_interval_ms > 0 {
        let app = app.clone();
        let every = Duration::from_millis(config.records.checkpoint_interval_ms);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = app.records.checkpoint_if_moved().await {
                    tracing::warn!(error = %e, "signing a checkpoint failed; retrying next interval");
                }
            }
        });
    }
    if config.webhooks.enabled {
        let app = app.clone();
        let tick = Duration::from_millis(config.webhooks.tick_ms);
        let deliverer = Arc::new(Deliverer::new(&config.webhooks));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                if let Err(e) = delivery_pass(&app, &deliverer, &replica).await {
                    tracing::warn!(error = %e, "webhook delivery pass failed; retrying next tick");
                }
            }
        });
    }
}

/// Evaluates every due deployment this replica can claim. Returns how
/// many were evaluated.
pub(crate) async fn scheduler_pass(app: &Engine, replica: &str) -> Result<usize, RecordError> {
    let records = &app.records;
    let mut evaluated = 0;
    // The most overdue claim of this pass, for the lag alert.
    let mut lag_ms: i64 = 0;
    loop {
        let now = Timestamp::now().millis();
        let due = records.claim_due(replica, now, 100).await?;
        if due.is_empty() {
            app.metrics
                .ops
                .scheduler_pass(lag_ms as f64 / 1000.0, super::ops_metrics::unix_now());
            return Ok(evaluated);
        }
        for d in due {
            lag_ms = lag_ms.max(now - d.next_due);
            let started = Instant::now();
            let Ok(pipeline) = app.pipeline(None) else {
                // No policy to ask: leave the claim to expire and retry.
                tracing::warn!(deployment = %d.deployment_id, "no active default bundle; scheduled evaluation postponed");
                return Ok(evaluated);
            };
            let actor = Actor {
                name: format!("scheduler@{replica}"),
                title: None,
            };
            match records
                .observe(&pipeline, &actor, &d.deployment_id, &[], true, None)
                .await
            {
                Ok(t) => {
                    evaluated += 1;
                    app.metrics.scheduled(started.elapsed().as_secs_f64());
                    if t.deployment.status != DeploymentStatus::Active {
                        records.unschedule(&d.deployment_id).await?;
                        continue;
                    }
                    if let Some(decision) = &t.decision
                        && decision.outcome != Outcome::Healthy
                    {
                        tracing::info!(deployment = %d.deployment_id, decision_id = %decision.decision_id, outcome = decision.outcome.as_str(), "scheduled monitoring evaluation");
                    }
                }
                Err(RecordError::NotFound(_)) => {
                    records.unschedule(&d.deployment_id).await?;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(deployment = %d.deployment_id, error = %e, "scheduled evaluation failed; its claim expires and it is retried");
                    continue;
                }
            }
            let still_ours = records
                .complete_due(replica, &d, Timestamp::now().millis())
                .await?;
            if !still_ours {
                app.metrics.ops.lease_lost();
                tracing::warn!(deployment = %d.deployment_id, replica = %replica, "the scheduler's lease on this deployment expired before its evaluation was recorded; another replica may evaluate it again");
            }
        }
    }
}

/// Sends escalations concurrently: across receivers and deployments up to
/// `concurrency` at once, to one receiver at most `per_receiver`. A dead
/// receiver, or a backlog of old events failing at one, holds its own
/// permits until its timeout, never another receiver's rollback alert.
/// Order per (deployment, receiver) is kept by the claim, which only
/// offers the oldest pending event of each.
pub(crate) struct Deliverer {
    all: Arc<Semaphore>,
    per_receiver: usize,
    receivers: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    timeout: Duration,
    lease_ms: i64,
}

impl Deliverer {
    pub(crate) fn new(config: &crate::config::WebhooksConfig) -> Self {
        Deliverer {
            all: Arc::new(Semaphore::new(config.concurrency.max(1))),
            per_receiver: config.per_receiver.max(1),
            receivers: Default::default(),
            timeout: Duration::from_millis(config.timeout_ms),
            lease_ms: i64::try_from(config.lease_ms).unwrap_or(30_000),
        }
    }

    fn receiver(&self, url: &str) -> Arc<Semaphore> {
        let mut map = self.receivers.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(url.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_receiver)))
            .clone()
    }
}

/// Starts sending every due webhook delivery this replica can claim and
/// has permits for; returns how many were started.
pub(crate) async fn delivery_pass(
    app: &Arc<Engine>,
    deliverer: &Arc<Deliverer>,
    replica: &str,
) -> Result<usize, RecordError> {
    let records = &app.records;
    let free = deliverer.all.available_permits();
    if free > 0 {
        let now = Timestamp::now().millis();
        let limit = i64::try_from(free).unwrap_or(32);
        let claimed = records
            .claim_deliveries(replica, now, deliverer.lease_ms, limit)
            .await?;
        let mut started = 0;
        for d in claimed {
            let (Ok(one), Ok(theirs)) = (
                deliverer.all.clone().try_acquire_owned(),
                deliverer.receiver(&d.url).try_acquire_owned(),
            ) else {
                records.release_delivery(&d).await?;
                continue;
            };
            started += 1;
            let (app, timeout) = (app.clone(), deliverer.timeout);
            tokio::spawn(async move {
                let _permits = (one, theirs);
                if let Err(e) = deliver(&app, &d, timeout).await {
                    tracing::warn!(event_id = %d.id, error = %e, "recording a webhook delivery failed; its claim expires and it is retried");
                }
            });
        }
        if let Ok(pending) = records.pending_deliveries().await {
            app.metrics.webhooks_pending(pending);
        }
        return Ok(started);
    }
    Ok(0)
}

/// One attempt at one delivery, and its result recorded.
async fn deliver(
    app: &Engine,
    d: &webhooks::Claimed,
    timeout: Duration,
) -> Result<(), RecordError> {
    let records = &app.records;
    let secret = records
        .webhook_secret(&d.system_id, &d.url)
        .await?
        .unwrap_or_default();
    let (url, payload, attempt) = (d.url.clone(), d.payload.clone(), d.attempts + 1);
    let (event_id, destinations) = (d.id.clone(), records.destinations.clone());
    let result = tokio::task::spawn_blocking(move || {
        webhooks::send(
            &destinations,
            timeout,
            &url,
            &secret,
            &event_id,
            attempt,
            &payload,
        )
    })
    .await
    .unwrap_or_else(|e| Err(webhooks::DeliveryError::Aborted(e.to_string())));
    let receiver = crate::records::model::redact_url(&d.url);
    match &result {
        Ok(_) => app.metrics.webhook(true),
        Err(e) => {
            app.metrics.webhook(false);
            tracing::warn!(event_id = %d.id, url = %receiver, attempt, error = %e, "webhook delivery failed; will retry");
        }
    }
    records
        .finish_delivery(d, result, Timestamp::now().millis())
        .await
}
