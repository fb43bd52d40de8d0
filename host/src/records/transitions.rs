//! The deployment lifecycle. Every transition is decided by the policy and
//! recorded with its actor, time and decision:
//!
//! - create: the gate decides, from the records, whether the release may
//!   enter its first stage;
//! - progress: the progression decision promotes, holds, rolls back or
//!   suspends;
//! - observe: the monitoring decision may roll back or suspend by itself;
//! - intervene: an operator rolls back or suspends, with a reason.
//!
//! Each has the same steps, in this order: load the deployment and check
//! the caller's expected version (`If-Match`); assemble the request from
//! the records and decide it through the service's one decision pipeline
//! ([`Decide`]: the bundle's lane and deadline, fail-closed); then one
//! transaction — take the chain lock ([`Write::begin`]), check that the
//! deployment is still at the version the decision saw, apply the outcome
//! ([`Records::apply`]: the new state, its history event, its
//! escalations), log the decision, commit. So two replicas cannot both
//! promote one deployment (the second finds the version moved: 409), and
//! no state exists that its history and the log do not explain.
//!
//! The policy runs *before* the lock, not under it: a policy that spins to
//! its deadline would otherwise hold the one lock every write and every
//! decision log entry needs, and a few such calls in a row starve the
//! stateless decisions of every other bundle (measured: 10 s timeouts with
//! two clients driving a spinning policy's transitions). The lock is held
//! for database work only.

use serde_json::Value;

use super::assemble;
use super::deployments::{deployment_row, row_values};
use super::evidence::{authorisation, insert_authorisation, release_row, system_row, wire_name};
use super::idempotency::IdempotencyKey;
use super::ledger::{self, RowValues};
use super::model::{
    Actor, Deployment, DeploymentStatus, Escalation, EventDetail, EventKind, MaterialIssue,
    NewDeployment, NewIntervention, NewIssue, NewProgression, System, Transition,
};
use super::webhooks::{self, Notice};
use super::write::Write;
use super::{Decide, RecordError, Records, new_id};
use crate::decision::request::Observation;
use crate::decision::{Envelope, Outcome, Request, Timestamp};

/// Observations one call may record: enough for every metric of a plan
/// many times over, small enough that the chain lock is held briefly.
pub(crate) const MAX_OBSERVATIONS: usize = 1000;

/// How far ahead of the service's clock an observation's window may end:
/// clocks of metric pipelines drift a little, never by days.
pub(crate) const DEFAULT_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// An operator's action that stops exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intervention {
    Rollback,
    Suspend,
}

impl Intervention {
    fn status(self) -> DeploymentStatus {
        match self {
            Intervention::Rollback => DeploymentStatus::RolledBack,
            Intervention::Suspend => DeploymentStatus::Suspended,
        }
    }

    fn event(self) -> EventKind {
        match self {
            Intervention::Rollback => EventKind::RolledBack,
            Intervention::Suspend => EventKind::Suspended,
        }
    }
}

/// A change of a deployment about to be applied: the state after, the
/// history event and what it rests on.
struct Change<'a> {
    next: Deployment,
    event: EventKind,
    decision: Option<&'a Envelope>,
    reason: Option<String>,
    detail: EventDetail,
}

/// What the policy's outcome does to an active deployment.
fn outcome_status(outcome: Outcome) -> Option<(DeploymentStatus, EventKind)> {
    match outcome {
        Outcome::Rollback => Some((DeploymentStatus::RolledBack, EventKind::RolledBack)),
        Outcome::Suspend => Some((DeploymentStatus::Suspended, EventKind::Suspended)),
        _ => None,
    }
}

fn check_version(d: &Deployment, if_match: Option<i64>) -> Result<(), RecordError> {
    match if_match {
        Some(v) if v != d.version => Err(RecordError::Conflict(format!(
            "deployment '{}' is at version {}, not {v}: it changed since you read it",
            d.id, d.version
        ))),
        _ => Ok(()),
    }
}

/// What a monitoring decision does to an active deployment: rollback and
/// suspension stop it, an alert is recorded, healthy changes nothing.
fn monitoring_change<'a>(d: &Deployment, envelope: &'a Envelope) -> Option<Change<'a>> {
    let mut next = d.clone();
    let event = match outcome_status(envelope.outcome) {
        Some((status, event)) => {
            next.status = status;
            event
        }
        None if envelope.outcome == Outcome::Alert => EventKind::Alert,
        None => return None,
    };
    Some(Change {
        next,
        event,
        decision: Some(envelope),
        reason: Some(envelope.summary()),
        detail: EventDetail {
            outcome: Some(envelope.outcome),
            automatic: true,
            ..EventDetail::default()
        },
    })
}

/// Under the lock: the deployment is still at the version the decision
/// was made on, or the decision no longer applies.
async fn still_at(w: &mut Write<'_>, decided_on: &Deployment) -> Result<(), RecordError> {
    let now = deployment_row(w.conn(), &decided_on.id).await?;
    if now.version == decided_on.version {
        Ok(())
    } else {
        Err(RecordError::Conflict(format!(
            "deployment '{}' moved from version {} to {} while the policy decided: read it again",
            now.id, decided_on.version, now.version
        )))
    }
}

fn require_active(d: &Deployment, what: &str) -> Result<(), RecordError> {
    if d.status == DeploymentStatus::Active {
        Ok(())
    } else {
        Err(RecordError::Conflict(format!(
            "deployment '{}' is {}; only an active deployment {what}",
            d.id, d.status
        )))
    }
}

impl Records {
    /// Decides `request` through the pipeline; returns the envelope and the
    /// log entry to write with the transition.
    pub(super) async fn decide(
        &self,
        decide: &impl Decide,
        request: Request,
        actor: &str,
        deployment_id: Option<&str>,
    ) -> (Envelope, super::chain::LogEntry) {
        let bytes = request.to_json();
        let envelope = decide.decide(request, actor).await.envelope;
        let entry = self.entry(&envelope, &bytes, actor, deployment_id);
        (envelope, entry)
    }

    /// Creates a deployment of a release under a plan: the gate decides
    /// from the records. On `deny` nothing but the decision (and its
    /// escalation) is written.
    pub async fn create_deployment(
        &self,
        decide: &impl Decide,
        actor: &Actor,
        new: NewDeployment,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Transition, RecordError> {
        crate::decision::decode::validate_plan(&new.plan)?;
        super::refs::check(&new.refs)?;
        let now = Timestamp::now();
        let mut conn = self.store.pool.acquire().await?;
        let release = release_row(&mut conn, &new.release_id).await?;
        let (system, _, _) = system_row(&mut conn, &release.system_id).await?;
        let request = assemble::gate(&mut conn, &system, &release, &new.plan, now).await?;
        drop(conn);
        let id = new_id();
        let (envelope, entry) = self
            .decide(decide, Request::Gate(request), &actor.name, None)
            .await;
        let mut w = Write::begin(&self.store, &actor.name, now, idem).await?;
        if envelope.outcome != Outcome::Allow {
            return self
                .deny(w, &system, &release.release_id, envelope, entry)
                .await;
        }
        let d = Deployment {
            id: id.clone(),
            release_id: release.release_id.clone(),
            system_id: system.id.clone(),
            status: DeploymentStatus::Active,
            stage: envelope.first_stage.clone().unwrap_or_default(),
            traffic_percent: new
                .plan
                .stages
                .first()
                .and_then(|s| s.traffic_percent)
                .unwrap_or(0.0),
            stage_entered_at: now,
            deployed_at: now,
            version: 1,
            updated_at: now,
            plan: new.plan,
            refs: new.refs,
        };
        w.insert(row_values(&d), Some(&id), || {
            format!("deployment '{id}' exists")
        })
        .await?;
        super::refs::index(&mut w, &d).await?;
        // A plan whose first stage is its last exposes everything at once:
        // older deployments holding the same refs are superseded now.
        if !d.refs.is_empty() && d.last_stage() == Some(d.stage.trim()) {
            self.supersede_older(&mut w, &d).await?;
        }
        let detail = EventDetail {
            obligations: envelope.obligations.clone(),
            ..EventDetail::default()
        };
        self.write_event(
            &mut w,
            &d,
            EventKind::Created,
            Some(&envelope),
            None,
            &detail,
        )
        .await?;
        // No receipt row: a receipt is derived from this decision's log
        // entry and the release when first asked for (records/receipts.rs),
        // so an `allow` writes exactly what a `deny` writes.
        w.decision(super::chain::LogEntry {
            deployment_id: Some(id.clone()),
            ..entry
        });
        // Monitoring runs from the first minute: the first scheduled
        // evaluation is one intensive interval away, and intensive
        // evaluation lasts as long as the policy's obligation says.
        let intensive_until = envelope
            .obligations
            .iter()
            .find(|o| o.code == "monitoring.intensive")
            .and_then(|o| o.until)
            .unwrap_or(now);
        super::schedule::insert(
            w.conn(),
            &id,
            now.millis() + self.intervals.intensive_ms,
            intensive_until.millis(),
        )
        .await?;
        self.done(
            w,
            idem,
            Transition {
                deployment: d,
                decision: Some(envelope),
                recorded: None,
            },
        )
        .await
    }

    /// Commits a transition with its idempotent answer and updates the
    /// route this replica serves from memory.
    async fn done(
        &self,
        w: Write<'_>,
        idem: Option<&IdempotencyKey>,
        result: Transition,
    ) -> Result<Transition, RecordError> {
        w.commit(idem, &result).await?;
        self.cache_route(&result.deployment.route());
        // A stored permit if nobody waits: a transition during a refresh
        // still causes one more.
        self.route_changed.notify_one();
        Ok(result)
    }

    /// A denied gate: the decision is logged and escalated, then refused.
    async fn deny(
        &self,
        mut w: Write<'_>,
        system: &System,
        release_id: &str,
        envelope: Envelope,
        entry: super::chain::LogEntry,
    ) -> Result<Transition, RecordError> {
        let notice = Notice {
            event: Escalation::GateDenied,
            system_id: system.id.clone(),
            deployment_id: None,
            release_id: release_id.to_string(),
            deployment_event_seq: None,
            at: w.now(),
            status: None,
            stage: None,
            traffic_percent: None,
            decision_id: Some(envelope.decision_id.clone()),
            outcome: Some(envelope.outcome),
            codes: Some(envelope.codes().map(str::to_string).collect()),
            reason: None,
            actor: w.actor().to_string(),
            escalation_contact: system.escalation_contact.clone(),
        };
        webhooks::enqueue(w.conn(), system, &format!("system:{}", system.id), &notice).await?;
        w.decision(entry);
        w.commit(None, &()).await?;
        Err(RecordError::Denied {
            message: format!(
                "the gate denied release '{release_id}': {}",
                envelope.codes().collect::<Vec<_>>().join(", ")
            ),
            decision: Box::new(envelope),
        })
    }

    /// Asks the policy to move a deployment to `target_stage`, on the
    /// caller's authorisation and the latest recorded review.
    pub async fn progress(
        &self,
        decide: &impl Decide,
        actor: &Actor,
        id: &str,
        new: NewProgression,
        if_match: Option<i64>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Transition, RecordError> {
        let now = Timestamp::now();
        let auth = authorisation(actor, new.authorisation.unwrap_or_default(), now)?;
        let mut conn = self.store.pool.acquire().await?;
        let d = deployment_row(&mut conn, id).await?;
        check_version(&d, if_match)?;
        require_active(&d, "progresses")?;
        if !d.has_stage(&new.target_stage) {
            return Err(RecordError::invalid(
                "/target_stage",
                format!(
                    "stage '{}' is not in the deployment's plan",
                    new.target_stage
                ),
            ));
        }
        let (system, _, _) = system_row(&mut conn, &d.system_id).await?;
        let request =
            assemble::progression(&mut conn, &system, &d, &new.target_stage, Some(&auth), now)
                .await?;
        drop(conn);
        let (envelope, entry) = self
            .decide(decide, Request::Progression(request), &actor.name, Some(id))
            .await;
        let mut w = Write::begin(&self.store, &actor.name, now, idem).await?;
        still_at(&mut w, &d).await?;
        insert_authorisation(&mut w, &d.release_id, Some(id), &auth).await?;
        let mut next = d.clone();
        let event = match (envelope.outcome, outcome_status(envelope.outcome)) {
            (Outcome::Promote, _) => {
                next.stage = envelope
                    .next_stage
                    .clone()
                    .unwrap_or_else(|| new.target_stage.clone());
                next.traffic_percent = envelope.traffic_percent.unwrap_or(next.traffic_percent);
                next.stage_entered_at = now;
                EventKind::Promoted
            }
            (_, Some((status, event))) => {
                next.status = status;
                event
            }
            _ => EventKind::Held,
        };
        let detail = EventDetail {
            obligations: envelope.obligations.clone(),
            target_stage: Some(new.target_stage),
            authorised_by: Some(actor.name.clone()),
            rollback_to: envelope.rollback_to.clone(),
            ..EventDetail::default()
        };
        let next = self
            .apply(
                &mut w,
                &d,
                Change {
                    next,
                    event,
                    decision: Some(&envelope),
                    reason: Some(envelope.summary()),
                    detail,
                },
            )
            .await?;
        // Full exposure: older deployments holding the same refs no longer
        // serve anything.
        if event == EventKind::Promoted
            && !next.refs.is_empty()
            && next.last_stage() == Some(next.stage.trim())
        {
            self.supersede_older(&mut w, &next).await?;
        }
        w.decision(entry);
        self.done(
            w,
            idem,
            Transition {
                deployment: next,
                decision: Some(envelope),
                recorded: None,
            },
        )
        .await
    }

    /// Records observations and, when `evaluate`, runs the monitoring
    /// policy on the newest observation of each metric; `rollback` and
    /// `suspend` change the deployment's state at once. With no
    /// observations this is a scheduled evaluation: silence is what it
    /// checks.
    pub async fn observe(
        &self,
        decide: &impl Decide,
        actor: &Actor,
        id: &str,
        observations: &[Observation],
        evaluate: bool,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Transition, RecordError> {
        let now = Timestamp::now();
        let (incoming, rows): (Vec<Observation>, Vec<RowValues>) = self
            .observation_rows(actor, id, observations, now)?
            .into_iter()
            .unzip();
        let recorded = Some(observations.len());
        // A deployment that moves while the policy judges it (another
        // observation's rollback, an operator) is judged again on its new
        // state; the observations are never dropped for it.
        let mut attempts = 0;
        let (mut w, d, envelope, entry) = loop {
            attempts += 1;
            let mut conn = self.store.pool.acquire().await?;
            let d = deployment_row(&mut conn, id).await?;
            let judged = if d.status == DeploymentStatus::Active && evaluate {
                let (system, _, _) = system_row(&mut conn, &d.system_id).await?;
                let mut request = assemble::monitoring(&mut conn, &system, &d, now).await?;
                drop(conn);
                assemble::merge_newest(&mut request.observations, &incoming, now);
                Some(
                    self.decide(decide, Request::Monitoring(request), &actor.name, Some(id))
                        .await,
                )
            } else {
                // Observations of a deployment no longer live are kept;
                // there is nothing left for the monitoring policy to
                // change. Ingestion without evaluation leaves judging to
                // the scheduler.
                drop(conn);
                None
            };
            let mut w = Write::begin(&self.store, &actor.name, now, idem).await?;
            for row in &rows {
                w.insert(row.clone(), Some(id), String::new).await?;
            }
            let Some((envelope, entry)) = judged else {
                let deployment = deployment_row(w.conn(), id).await?;
                let result = Transition {
                    deployment,
                    decision: None,
                    recorded,
                };
                return self.done(w, idem, result).await;
            };
            // A healthy answer changes nothing, so it stands whatever
            // happened meanwhile; only a change needs the state it was
            // decided on.
            if envelope.outcome == Outcome::Healthy {
                break (w, d, envelope, entry);
            }
            match still_at(&mut w, &d).await {
                Ok(()) => break (w, d, envelope, entry),
                Err(RecordError::Conflict(_)) if attempts < 3 => continue,
                Err(e) => return Err(e),
            }
        };
        let next = match monitoring_change(&d, &envelope) {
            Some(change) => self.apply(&mut w, &d, change).await?,
            None => d,
        };
        w.decision(entry);
        let result = Transition {
            deployment: next,
            decision: Some(envelope),
            recorded,
        };
        self.done(w, idem, result).await
    }

    /// Checks a batch of observations and turns it into rows, each with
    /// the observation as the monitoring request will see it once stored
    /// (metric trimmed, a missing `window_end` meaning now).
    fn observation_rows(
        &self,
        actor: &Actor,
        id: &str,
        observations: &[Observation],
        now: Timestamp,
    ) -> Result<Vec<(Observation, RowValues)>, RecordError> {
        if observations.len() > MAX_OBSERVATIONS {
            return Err(RecordError::invalid(
                "/observations",
                format!(
                    "expected at most {MAX_OBSERVATIONS} observations per call, found {}",
                    observations.len()
                ),
            ));
        }
        let latest = Timestamp(now.millis().saturating_add(self.clock_skew_ms));
        observations
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let metric = o
                    .metric
                    .as_deref()
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| {
                        RecordError::invalid(format!("/observations/{i}/metric"), "required")
                    })?;
                let value = o.value.ok_or_else(|| {
                    RecordError::invalid(format!("/observations/{i}/value"), "required")
                })?;
                let window_end = o.window_end.unwrap_or(now);
                if window_end > latest {
                    return Err(RecordError::invalid(
                        format!("/observations/{i}/window_end"),
                        format!(
                            "{window_end} is in the future: the service's clock says {now} \
                             (allowed skew {} s); an observation cannot end after it was made",
                            self.clock_skew_ms / 1000
                        ),
                    ));
                }
                let stored = Observation {
                    metric: Some(metric.to_string()),
                    value: Some(value),
                    samples: o.samples,
                    window_end: Some(window_end),
                };
                let row = RowValues {
                    table: &ledger::OBSERVATIONS,
                    cells: vec![
                        new_id().into(),
                        id.into(),
                        metric.into(),
                        value.into(),
                        o.samples
                            .map(|s| i64::try_from(s).unwrap_or(i64::MAX))
                            .into(),
                        window_end.into(),
                        now.into(),
                        actor.name.as_str().into(),
                    ],
                };
                Ok((stored, row))
            })
            .collect()
    }

    /// Records a material issue (or a change of its status) for
    /// progression.
    pub async fn record_issue(
        &self,
        actor: &Actor,
        id: &str,
        new: NewIssue,
    ) -> Result<MaterialIssue, RecordError> {
        let now = Timestamp::now();
        let mut w = Write::begin(&self.store, &actor.name, now, None).await?;
        deployment_row(w.conn(), id).await?;
        let issue = MaterialIssue {
            id: new.id,
            severity: new.severity,
            status: new.status,
            description: new.description,
            recorded_by: actor.name.clone(),
        };
        let row = RowValues {
            table: &ledger::MATERIAL_ISSUES,
            cells: vec![
                new_id().into(),
                id.into(),
                issue.id.as_str().into(),
                wire_name(&issue.severity).into(),
                wire_name(&issue.status).into(),
                now.into(),
                actor.name.as_str().into(),
                serde_json::to_string(&issue).unwrap_or_default().into(),
            ],
        };
        w.insert(row, Some(id), String::new).await?;
        w.commit(None, &()).await?;
        Ok(issue)
    }

    /// An operator's rollback or suspension, with a reason. No policy is
    /// asked: stopping exposure is always allowed.
    pub async fn intervene(
        &self,
        actor: &Actor,
        id: &str,
        action: Intervention,
        new: NewIntervention,
        if_match: Option<i64>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Transition, RecordError> {
        if new.reason.trim().is_empty() {
            return Err(RecordError::invalid(
                "/reason",
                "a manual rollback or suspension needs its reason",
            ));
        }
        let now = Timestamp::now();
        // No policy is asked: the deployment is read under the lock.
        let mut w = Write::begin(&self.store, &actor.name, now, idem).await?;
        let d = deployment_row(w.conn(), id).await?;
        check_version(&d, if_match)?;
        let status = action.status();
        if d.status == DeploymentStatus::RolledBack || d.status == status {
            return Err(RecordError::Conflict(format!(
                "deployment '{id}' is already {}",
                d.status
            )));
        }
        let mut next = d.clone();
        next.status = status;
        let next = self
            .apply(
                &mut w,
                &d,
                Change {
                    next,
                    event: action.event(),
                    decision: None,
                    reason: Some(new.reason),
                    detail: EventDetail {
                        manual: true,
                        ..EventDetail::default()
                    },
                },
            )
            .await?;
        self.done(
            w,
            idem,
            Transition {
                deployment: next,
                decision: None,
                recorded: None,
            },
        )
        .await
    }

    /// Writes the change if the stored version is still `current`'s, its
    /// history event and its escalations. State changes bump the version;
    /// an event that changes nothing (a hold, an alert) does not, so it
    /// never makes a concurrent promotion fail.
    async fn apply(
        &self,
        w: &mut Write<'_>,
        current: &Deployment,
        change: Change<'_>,
    ) -> Result<Deployment, RecordError> {
        let Change {
            mut next,
            event,
            decision,
            reason,
            detail,
        } = change;
        let changed = next.status != current.status
            || next.stage != current.stage
            || next.traffic_percent != current.traffic_percent;
        if changed {
            next.version = current.version + 1;
            next.updated_at = w.now();
            let updated = sqlx::query("UPDATE deployments SET status = $1, stage = $2, traffic_percent = $3, stage_entered_at = $4, version = $5, updated_at = $6 WHERE id = $7 AND version = $8")
                .bind(next.status.as_str())
                .bind(&next.stage)
                .bind(next.traffic_percent)
                .bind(next.stage_entered_at.millis())
                .bind(next.version)
                .bind(next.updated_at.millis())
                .bind(&next.id)
                .bind(current.version)
                .execute(&mut *w.conn())
                .await?;
            if updated.rows_affected() != 1 {
                return Err(RecordError::Conflict(format!(
                    "deployment '{}' changed concurrently; read it again",
                    next.id
                )));
            }
            w.seal(&row_values(&next), Some(&next.id));
        }
        let seq = self
            .write_event(w, &next, event, decision, reason.clone(), &detail)
            .await?;
        if let Some(escalation) = event.escalation() {
            let (system, _, _) = system_row(w.conn(), &next.system_id).await?;
            let notice = Notice {
                event: escalation,
                system_id: next.system_id.clone(),
                deployment_id: Some(next.id.clone()),
                release_id: next.release_id.clone(),
                deployment_event_seq: Some(seq),
                at: w.now(),
                status: Some(next.status),
                stage: Some(next.stage.clone()),
                traffic_percent: Some(next.traffic_percent),
                decision_id: decision.map(|e| e.decision_id.clone()),
                outcome: None,
                codes: None,
                reason,
                actor: w.actor().to_string(),
                escalation_contact: system.escalation_contact.clone(),
            };
            webhooks::enqueue(w.conn(), &system, &next.id, &notice).await?;
        }
        Ok(next)
    }

    /// Appends a history event of `d` (in its state after the event).
    pub(super) async fn write_event(
        &self,
        w: &mut Write<'_>,
        d: &Deployment,
        kind: EventKind,
        decision: Option<&Envelope>,
        reason: Option<String>,
        detail: &EventDetail,
    ) -> Result<i64, RecordError> {
        use sqlx::Row;
        let seq: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM deployment_events WHERE deployment_id = $1")
                .bind(&d.id)
                .fetch_one(&mut *w.conn())
                .await?
                .try_get("n")?;
        let seq = seq + 1;
        let doc = serde_json::to_value(detail).unwrap_or(Value::Null);
        let row = RowValues {
            table: &ledger::EVENTS,
            cells: vec![
                new_id().into(),
                d.id.as_str().into(),
                seq.into(),
                w.now().into(),
                w.actor().into(),
                kind.as_str().into(),
                d.status.as_str().into(),
                d.stage.as_str().into(),
                d.traffic_percent.into(),
                decision.map(|e| e.decision_id.clone()).into(),
                reason.into(),
                doc.to_string().into(),
            ],
        };
        w.insert(row, Some(&d.id), || {
            format!("deployment '{}' changed concurrently; read it again", d.id)
        })
        .await?;
        Ok(seq)
    }
}
