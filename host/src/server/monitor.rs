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

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::App;
use super::config::Config;
use super::pipeline::Pipeline;
use crate::decision::{Outcome, Timestamp};
use crate::records::{Actor, DeploymentStatus, RecordError, schedule, webhooks};

/// Starts the scheduler and the deliverer (each if enabled).
pub fn start(app: &Arc<App>, config: &Config) {
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
        let lease = i64::try_from(config.webhooks.lease_ms).unwrap_or(30_000);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                if let Err(e) = delivery_pass(&app, &replica, lease).await {
                    tracing::warn!(error = %e, "webhook delivery pass failed; retrying next tick");
                }
            }
        });
    }
}

/// Evaluates every due deployment this replica can claim. Returns how
/// many were evaluated.
pub async fn scheduler_pass(app: &App, replica: &str) -> Result<usize, RecordError> {
    let records = &app.records;
    let intervals = records.intervals;
    let mut evaluated = 0;
    loop {
        let now = Timestamp::now().millis();
        let due = schedule::claim(&records.store, replica, now, intervals.lease_ms, 100).await?;
        if due.is_empty() {
            return Ok(evaluated);
        }
        for d in due {
            let started = Instant::now();
            let Ok(pipeline) = Pipeline::resolve(app, None) else {
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
                        schedule::remove(&records.store, &d.deployment_id).await?;
                        continue;
                    }
                    if let Some(decision) = &t.decision
                        && decision.outcome != Outcome::Healthy
                    {
                        tracing::info!(deployment = %d.deployment_id, decision_id = %decision.decision_id, outcome = decision.outcome.as_str(), "scheduled monitoring evaluation");
                    }
                }
                Err(RecordError::NotFound(_)) => {
                    schedule::remove(&records.store, &d.deployment_id).await?;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(deployment = %d.deployment_id, error = %e, "scheduled evaluation failed; its claim expires and it is retried");
                    continue;
                }
            }
            schedule::complete(
                &records.store,
                replica,
                &d,
                Timestamp::now().millis(),
                &intervals,
            )
            .await?;
        }
    }
}

/// Sends every due webhook delivery this replica can claim.
pub async fn delivery_pass(app: &App, replica: &str, lease_ms: i64) -> Result<usize, RecordError> {
    let records = &app.records;
    let now = Timestamp::now().millis();
    let claimed = webhooks::claim(&records.store, replica, now, lease_ms, 50).await?;
    let mut sent = 0;
    for d in claimed {
        let secret = records
            .webhook_secret(&d.system_id, &d.url)
            .await?
            .unwrap_or_default();
        let (url, payload, attempt) = (d.url.clone(), d.payload.clone(), d.attempts + 1);
        let event_id = d.id.clone();
        let result = tokio::task::spawn_blocking(move || {
            webhooks::send(&url, &secret, &event_id, attempt, &payload)
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match &result {
            Ok(_) => {
                sent += 1;
                app.metrics.webhook(true);
            }
            Err(e) => {
                app.metrics.webhook(false);
                tracing::warn!(event_id = %d.id, url = %d.url, attempt, error = %e, "webhook delivery failed; will retry");
            }
        }
        webhooks::finish(&records.store, &d, result, Timestamp::now().millis()).await?;
    }
    if let Ok(pending) = records.pending_deliveries().await {
        app.metrics.webhooks_pending(pending);
    }
    Ok(sent)
}
