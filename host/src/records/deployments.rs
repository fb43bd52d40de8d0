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
//! Each state-changing operation runs in one transaction that first takes
//! the decision log's chain lock, then reads the deployment, checks the
//! caller's expected version (`If-Match`), asks the policy, writes the new
//! state, its history event and the decision log entry, and commits. So two
//! replicas cannot both promote one deployment, and no state exists that its
//! history and the log do not explain.

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{Any, Row, Transaction};

use super::chain;
use super::evidence::{insert_authorisation, is_unique_violation, json_col, parse};
use super::idempotency::{self, IdempotencyKey};
use super::{Actor, RecordError, Records, Route, new_id};
use crate::decision::{self, DecisionKind, Envelope, Outcome, Timestamp};
use crate::policy::ActivePolicy;

/// A deployment as stored.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: String,
    pub release_id: String,
    pub system_id: String,
    pub plan: Value,
    pub status: String,
    pub stage: String,
    pub traffic_percent: f64,
    pub stage_entered_at: i64,
    pub deployed_at: i64,
    pub version: i64,
    pub updated_at: i64,
}

impl Deployment {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Self, RecordError> {
        Ok(Deployment {
            id: row.try_get("id")?,
            release_id: row.try_get("release_id")?,
            system_id: row.try_get("system_id")?,
            plan: json_col(row, "plan")?,
            status: row.try_get("status")?,
            stage: row.try_get("stage")?,
            traffic_percent: row.try_get("traffic_percent")?,
            stage_entered_at: row.try_get("stage_entered_at")?,
            deployed_at: row.try_get("deployed_at")?,
            version: row.try_get("version")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    pub fn json(&self) -> Value {
        json!({
            "id": self.id, "release_id": self.release_id, "system_id": self.system_id,
            "status": self.status, "stage": self.stage, "traffic_percent": self.traffic_percent,
            "stage_entered_at": Timestamp(self.stage_entered_at), "deployed_at": Timestamp(self.deployed_at),
            "version": self.version, "updated_at": Timestamp(self.updated_at), "plan": self.plan,
        })
    }

    pub fn route(&self) -> Route {
        Route {
            deployment_id: self.id.clone(),
            release_id: self.release_id.clone(),
            status: self.status.clone(),
            stage: self.stage.clone(),
            traffic_percent: self.traffic_percent,
            version: self.version,
        }
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        self.plan["stages"]
            .as_array()?
            .iter()
            .position(|s| s["name"].as_str().map(str::trim) == Some(name.trim()))
    }
}

pub const STATUS_ACTIVE: &str = "active";
pub const STATUS_ROLLED_BACK: &str = "rolled_back";
pub const STATUS_SUSPENDED: &str = "suspended";

const SELECT: &str = "SELECT id, release_id, system_id, plan, status, stage, traffic_percent, stage_entered_at, deployed_at, version, updated_at FROM deployments";

/// A history event about to be written.
struct Event<'a> {
    kind: &'a str,
    decision_id: Option<&'a str>,
    reason: Option<String>,
    doc: Value,
}

/// Checks escalation webhook entries of a system registration.
pub fn check_webhooks(hooks: &[Value]) -> Result<(), RecordError> {
    for (i, h) in hooks.iter().enumerate() {
        let url = h["url"].as_str().unwrap_or_default();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(RecordError::invalid(
                format!("/webhooks/{i}/url"),
                "expected an http:// or https:// URL",
            ));
        }
        if h["secret"].as_str().is_none_or(|s| s.len() < 16) {
            return Err(RecordError::invalid(
                format!("/webhooks/{i}/secret"),
                "expected an HMAC secret of at least 16 characters",
            ));
        }
    }
    Ok(())
}

impl Records {
    /// A deployment, or 404.
    pub async fn deployment(&self, id: &str) -> Result<Deployment, RecordError> {
        let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.store.pool)
            .await?
            .ok_or_else(|| RecordError::NotFound(format!("no deployment '{id}'")))?;
        Deployment::from_row(&row)
    }

    async fn deployment_in(
        tx: &mut Transaction<'_, Any>,
        id: &str,
    ) -> Result<Deployment, RecordError> {
        let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| RecordError::NotFound(format!("no deployment '{id}'")))?;
        Deployment::from_row(&row)
    }

    /// Deployments in the `active` status (for the scheduler).
    pub async fn active_deployments(&self) -> Result<Vec<Deployment>, RecordError> {
        let rows = sqlx::query(&format!("{SELECT} WHERE status = $1 ORDER BY id"))
            .bind(STATUS_ACTIVE)
            .fetch_all(&self.store.pool)
            .await?;
        rows.iter().map(Deployment::from_row).collect()
    }

    /// The route a gateway applies, from memory when fresh.
    pub async fn route(&self, id: &str) -> Result<Route, RecordError> {
        if let Some(r) = self.cached_route(id) {
            return Ok(r);
        }
        let route = self.deployment(id).await?.route();
        self.cache_route(&route);
        Ok(route)
    }

    /// A deployment with its full history.
    pub async fn deployment_view(&self, id: &str) -> Result<Value, RecordError> {
        let d = self.deployment(id).await?;
        let events = self.events(id).await?;
        let mut v = d.json();
        v["history"] = Value::Array(events);
        Ok(v)
    }

    /// The history events of a deployment, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<Value>, RecordError> {
        let rows = sqlx::query("SELECT seq, at, actor, kind, status, stage, traffic_percent, decision_id, reason, doc FROM deployment_events WHERE deployment_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(&self.store.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(json!({
                    "seq": r.try_get::<i64, _>("seq")?,
                    "at": Timestamp(r.try_get("at")?),
                    "actor": r.try_get::<String, _>("actor")?,
                    "event": r.try_get::<String, _>("kind")?,
                    "status": r.try_get::<String, _>("status")?,
                    "stage": r.try_get::<String, _>("stage")?,
                    "traffic_percent": r.try_get::<f64, _>("traffic_percent")?,
                    "decision_id": r.try_get::<Option<String>, _>("decision_id")?,
                    "reason": r.try_get::<Option<String>, _>("reason")?,
                    "detail": json_col(r, "doc")?,
                }))
            })
            .collect()
    }

    /// One decision log entry.
    pub async fn decision_entry(&self, decision_id: &str) -> Result<chain::Chained, RecordError> {
        let row = sqlx::query(&format!("{} WHERE decision_id = $1", chain::SELECT))
            .bind(decision_id)
            .fetch_optional(&self.store.pool)
            .await?
            .ok_or_else(|| {
                RecordError::NotFound(format!("no decision '{decision_id}' in the log"))
            })?;
        Ok(chain::from_row(&row)?)
    }

    /// Creates a deployment of a release under a plan: the gate decides
    /// from the records. On `deny` nothing but the decision is written.
    pub async fn create_deployment(
        &self,
        actor: &Actor,
        policy: &ActivePolicy,
        body: &[u8],
        idem: Option<&IdempotencyKey>,
    ) -> Result<(u16, Value), RecordError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct B {
            release_id: String,
            plan: Value,
        }
        let b: B = parse(body)?;
        if !b.plan.is_object() {
            return Err(RecordError::invalid(
                "/plan",
                "expected the deployment plan object",
            ));
        }
        let now = Timestamp::now();
        let request = self.gate_request(&b.release_id, &b.plan, now).await?;
        let bytes = serde_json::to_vec(&request).unwrap_or_default();
        let decided = policy.decide(decision::decode(DecisionKind::Gate, &bytes)?);
        let envelope = decided.envelope;
        if envelope.outcome != Outcome::Allow {
            // The denial is logged and escalated in one transaction.
            let (system_id, _) = self.release(&b.release_id).await?;
            let mut tx = self.store.pool.begin().await?;
            let head = chain::lock(&mut tx).await?;
            chain::append(
                &mut tx,
                head,
                &[self.entry(&envelope, &bytes, &actor.name, None)],
            )
            .await?;
            let system = system_in(&mut tx, &system_id).await?;
            let payload = json!({
                "event": "gate_denied", "system_id": system_id, "release_id": b.release_id,
                "at": now, "decision_id": envelope.decision_id, "outcome": envelope.outcome,
                "codes": envelope.findings.iter().map(|f| f.code.clone()).collect::<Vec<_>>(),
                "actor": actor.name, "escalation_contact": system.get("escalation_contact").cloned().unwrap_or(Value::Null),
            });
            super::webhooks::enqueue(
                &mut tx,
                &system,
                &format!("system:{system_id}"),
                None,
                "gate_denied",
                payload,
            )
            .await?;
            commit(tx).await?;
            return Err(RecordError::Denied {
                message: format!(
                    "the gate denied release '{}': {}",
                    b.release_id,
                    envelope
                        .findings
                        .iter()
                        .map(|f| f.code.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                decision: Box::new(envelope),
            });
        }
        let first = envelope.first_stage.clone().unwrap_or_default();
        let traffic = b.plan["stages"][0]["traffic_percent"]
            .as_f64()
            .unwrap_or(0.0);
        let (system_id, _) = self.release(&b.release_id).await?;
        let id = new_id();
        let d = Deployment {
            id: id.clone(),
            release_id: b.release_id.clone(),
            system_id,
            plan: b.plan.clone(),
            status: STATUS_ACTIVE.into(),
            stage: first,
            traffic_percent: traffic,
            stage_entered_at: now.millis(),
            deployed_at: now.millis(),
            version: 1,
            updated_at: now.millis(),
        };
        let mut tx = self.store.pool.begin().await?;
        let head = chain::lock(&mut tx).await?;
        sqlx::query("INSERT INTO deployments (id, release_id, system_id, plan, status, stage, traffic_percent, stage_entered_at, deployed_at, version, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
            .bind(&d.id)
            .bind(&d.release_id)
            .bind(&d.system_id)
            .bind(d.plan.to_string())
            .bind(&d.status)
            .bind(&d.stage)
            .bind(d.traffic_percent)
            .bind(d.stage_entered_at)
            .bind(d.deployed_at)
            .bind(d.version)
            .bind(d.updated_at)
            .execute(&mut *tx)
            .await?;
        let event = Event {
            kind: "created",
            decision_id: Some(&envelope.decision_id),
            reason: None,
            doc: json!({"obligations": envelope.obligations}),
        };
        write_event(&mut tx, &d, &actor.name, now, &event).await?;
        chain::append(
            &mut tx,
            head,
            &[self.entry(&envelope, &bytes, &actor.name, Some(&id))],
        )
        .await?;
        // Monitoring runs from the first minute: the first scheduled
        // evaluation is one intensive interval away.
        let intensive_until = envelope
            .obligations
            .iter()
            .find(|o| o.code == "monitoring.intensive")
            .and_then(|o| o.until)
            .map(|t| t.millis())
            .unwrap_or(now.millis() + 168 * 3_600_000);
        super::schedule::insert(
            &mut tx,
            &id,
            now.millis() + self.intervals.intensive_ms,
            intensive_until,
        )
        .await?;
        let body = json!({"deployment": d.json(), "decision": envelope});
        idempotency::save(&mut tx, idem, 201, &body.to_string()).await?;
        commit(tx).await?;
        self.cache_route(&d.route());
        Ok((201, body))
    }

    /// Asks the policy to move a deployment to `target_stage`, on the
    /// caller's authorisation and the latest recorded review.
    pub async fn progress(
        &self,
        actor: &Actor,
        policy: &ActivePolicy,
        id: &str,
        body: &[u8],
        if_match: Option<i64>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<(u16, Value), RecordError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct B {
            target_stage: String,
            #[serde(default)]
            authorisation: Option<super::evidence::AuthorisationBody>,
        }
        let b: B = parse(body)?;
        let auth =
            super::evidence::authorisation_value(actor, b.authorisation.unwrap_or_default())?;
        let now = Timestamp::now();

        let mut tx = self.store.pool.begin().await?;
        let head = chain::lock(&mut tx).await?;
        let d = Self::deployment_in(&mut tx, id).await?;
        check_version(&d, if_match)?;
        if d.status != STATUS_ACTIVE {
            return Err(RecordError::Conflict(format!(
                "deployment '{id}' is {}; only an active deployment progresses",
                d.status
            )));
        }
        if d.stage_index(&b.target_stage).is_none() {
            return Err(RecordError::invalid(
                "/target_stage",
                format!("stage '{}' is not in the deployment's plan", b.target_stage),
            ));
        }
        let system = system_in(&mut tx, &d.system_id).await?;
        let observations = newest_observations(&mut tx, id, Some(d.stage_entered_at)).await?;
        let issues = material_issues(&mut tx, id).await?;
        let review = latest_doc(&mut tx, "reviews", "completed_at", id).await?;
        let request = json!({
            "now": now, "system": system_of(&system),
            "plan": d.plan, "current_stage": d.stage, "target_stage": b.target_stage,
            "stage_entered_at": Timestamp(d.stage_entered_at),
            "observations": observations, "material_issues": issues,
            "review": review, "authorisation": auth,
        });
        let bytes = serde_json::to_vec(&request).unwrap_or_default();
        let envelope = policy
            .decide(decision::decode(DecisionKind::Progression, &bytes)?)
            .envelope;

        insert_authorisation(&mut *tx, &new_id(), &d.release_id, Some(id), &auth).await?;
        let mut next = d.clone();
        let kind = match envelope.outcome {
            Outcome::Promote => {
                next.stage = envelope
                    .next_stage
                    .clone()
                    .unwrap_or(b.target_stage.clone());
                next.traffic_percent = envelope.traffic_percent.unwrap_or(next.traffic_percent);
                next.stage_entered_at = now.millis();
                "promoted"
            }
            Outcome::Rollback => {
                next.status = STATUS_ROLLED_BACK.into();
                "rolled_back"
            }
            Outcome::Suspend => {
                next.status = STATUS_SUSPENDED.into();
                "suspended"
            }
            _ => "held",
        };
        let reason = summary(&envelope);
        let event = Event {
            kind,
            decision_id: Some(&envelope.decision_id),
            reason: Some(reason),
            doc: json!({"target_stage": b.target_stage, "authorised_by": actor.name,
                        "rollback_to": envelope.rollback_to, "obligations": envelope.obligations}),
        };
        let next = self
            .apply(&mut tx, &d, next, &actor.name, now, &event)
            .await?;
        chain::append(
            &mut tx,
            head,
            &[self.entry(&envelope, &bytes, &actor.name, Some(id))],
        )
        .await?;
        let body = json!({"deployment": next.json(), "decision": envelope});
        idempotency::save(&mut tx, idem, 200, &body.to_string()).await?;
        commit(tx).await?;
        self.cache_route(&next.route());
        Ok((200, body))
    }

    /// Records observations and runs the monitoring policy on the newest
    /// observation of each metric; `rollback` and `suspend` change the
    /// deployment's state at once. With no observations this is a scheduled
    /// evaluation: silence is what it checks.
    pub async fn observe(
        &self,
        actor: &Actor,
        policy: &ActivePolicy,
        id: &str,
        observations: &[decision::request::Observation],
        evaluate: bool,
        idem: Option<&IdempotencyKey>,
    ) -> Result<(u16, Value), RecordError> {
        let now = Timestamp::now();
        let mut tx = self.store.pool.begin().await?;
        let head = chain::lock(&mut tx).await?;
        let d = Self::deployment_in(&mut tx, id).await?;
        for (i, o) in observations.iter().enumerate() {
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
            sqlx::query("INSERT INTO observations (id, deployment_id, metric, value, samples, window_end, recorded_at, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(new_id())
                .bind(id)
                .bind(metric)
                .bind(value)
                .bind(o.samples.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
                .bind(o.window_end.unwrap_or(now).millis())
                .bind(now.millis())
                .bind(&actor.name)
                .execute(&mut *tx)
                .await?;
        }
        if d.status != STATUS_ACTIVE || !evaluate {
            // Observations of a deployment no longer live are kept; there is
            // nothing left for the monitoring policy to change. Ingestion
            // without evaluation leaves judging them to the scheduler.
            let body = json!({"deployment": d.json(), "recorded": observations.len()});
            idempotency::save(&mut tx, idem, 200, &body.to_string()).await?;
            commit(tx).await?;
            return Ok((200, body));
        }
        let system = system_in(&mut tx, &d.system_id).await?;
        let newest = newest_observations(&mut tx, id, None).await?;
        let request = json!({
            "now": now, "system": system_of(&system), "plan": d.plan,
            "current_stage": d.stage, "deployed_at": Timestamp(d.deployed_at),
            "observations": newest,
        });
        let bytes = serde_json::to_vec(&request).unwrap_or_default();
        let envelope = policy
            .decide(decision::decode(DecisionKind::Monitoring, &bytes)?)
            .envelope;
        let mut next = d.clone();
        let kind = match envelope.outcome {
            Outcome::Rollback => {
                next.status = STATUS_ROLLED_BACK.into();
                Some("rolled_back")
            }
            Outcome::Suspend => {
                next.status = STATUS_SUSPENDED.into();
                Some("suspended")
            }
            Outcome::Alert => Some("alert"),
            _ => None,
        };
        let next = match kind {
            Some(kind) => {
                let event = Event {
                    kind,
                    decision_id: Some(&envelope.decision_id),
                    reason: Some(summary(&envelope)),
                    doc: json!({"outcome": envelope.outcome, "automatic": true}),
                };
                self.apply(&mut tx, &d, next, &actor.name, now, &event)
                    .await?
            }
            None => d.clone(),
        };
        chain::append(
            &mut tx,
            head,
            &[self.entry(&envelope, &bytes, &actor.name, Some(id))],
        )
        .await?;
        let body = json!({"deployment": next.json(), "decision": envelope, "recorded": observations.len()});
        idempotency::save(&mut tx, idem, 200, &body.to_string()).await?;
        commit(tx).await?;
        self.cache_route(&next.route());
        Ok((200, body))
    }

    /// Records a material issue (or a change of its status) for progression.
    pub async fn record_issue(
        &self,
        actor: &Actor,
        id: &str,
        body: &[u8],
    ) -> Result<Value, RecordError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct B {
            id: String,
            severity: String,
            status: String,
            #[serde(default)]
            description: Option<String>,
        }
        let b: B = parse(body)?;
        if !["low", "medium", "high", "critical"].contains(&b.severity.as_str()) {
            return Err(RecordError::invalid(
                "/severity",
                "expected low, medium, high or critical",
            ));
        }
        if !["open", "resolved"].contains(&b.status.as_str()) {
            return Err(RecordError::invalid("/status", "expected open or resolved"));
        }
        self.deployment(id).await?;
        let doc = json!({"id": b.id, "severity": b.severity, "status": b.status, "description": b.description, "recorded_by": actor.name});
        sqlx::query("INSERT INTO material_issues (id, deployment_id, issue_id, severity, status, recorded_at, actor, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(new_id())
            .bind(id)
            .bind(&b.id)
            .bind(&b.severity)
            .bind(&b.status)
            .bind(Timestamp::now().millis())
            .bind(&actor.name)
            .bind(doc.to_string())
            .execute(&self.store.pool)
            .await?;
        Ok(json!({"material_issue": doc}))
    }

    /// An operator's rollback or suspension, with a reason. No policy is
    /// asked: stopping exposure is always allowed.
    pub async fn intervene(
        &self,
        actor: &Actor,
        id: &str,
        rollback: bool,
        body: &[u8],
        if_match: Option<i64>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<(u16, Value), RecordError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct B {
            reason: String,
        }
        let b: B = parse(body)?;
        if b.reason.trim().is_empty() {
            return Err(RecordError::invalid(
                "/reason",
                "a manual rollback or suspension needs its reason",
            ));
        }
        let now = Timestamp::now();
        let mut tx = self.store.pool.begin().await?;
        chain::lock(&mut tx).await?;
        let d = Self::deployment_in(&mut tx, id).await?;
        check_version(&d, if_match)?;
        let (kind, status) = if rollback {
            ("rolled_back", STATUS_ROLLED_BACK)
        } else {
            ("suspended", STATUS_SUSPENDED)
        };
        if d.status == STATUS_ROLLED_BACK || (!rollback && d.status == STATUS_SUSPENDED) {
            return Err(RecordError::Conflict(format!(
                "deployment '{id}' is already {}",
                d.status
            )));
        }
        let mut next = d.clone();
        next.status = status.into();
        let event = Event {
            kind,
            decision_id: None,
            reason: Some(b.reason.clone()),
            doc: json!({"manual": true}),
        };
        let next = self
            .apply(&mut tx, &d, next, &actor.name, now, &event)
            .await?;
        let body = json!({"deployment": next.json()});
        idempotency::save(&mut tx, idem, 200, &body.to_string()).await?;
        commit(tx).await?;
        self.cache_route(&next.route());
        Ok((200, body))
    }

    /// Writes `next` if the stored version is still `current`'s, plus the
    /// history event. State changes bump the version; an event that changes
    /// nothing (a hold, an alert) does not, so it never makes a concurrent
    /// promotion fail.
    async fn apply(
        &self,
        tx: &mut Transaction<'_, Any>,
        current: &Deployment,
        mut next: Deployment,
        actor: &str,
        now: Timestamp,
        event: &Event<'_>,
    ) -> Result<Deployment, RecordError> {
        let changed = next.status != current.status
            || next.stage != current.stage
            || next.traffic_percent != current.traffic_percent;
        if changed {
            next.version = current.version + 1;
            next.updated_at = now.millis();
            let updated = sqlx::query("UPDATE deployments SET status = $1, stage = $2, traffic_percent = $3, stage_entered_at = $4, version = $5, updated_at = $6 WHERE id = $7 AND version = $8")
                .bind(&next.status)
                .bind(&next.stage)
                .bind(next.traffic_percent)
                .bind(next.stage_entered_at)
                .bind(next.version)
                .bind(next.updated_at)
                .bind(&next.id)
                .bind(current.version)
                .execute(&mut **tx)
                .await?;
            if updated.rows_affected() != 1 {
                return Err(RecordError::Conflict(format!(
                    "deployment '{}' changed concurrently; read it again",
                    next.id
                )));
            }
        }
        let seq = write_event(tx, &next, actor, now, event).await?;
        if super::webhooks::EVENTS.contains(&event.kind) {
            let system = system_in(tx, &next.system_id).await?;
            let payload = json!({
                "event": event.kind, "system_id": next.system_id, "deployment_id": next.id,
                "release_id": next.release_id, "deployment_event_seq": seq, "at": now,
                "status": next.status, "stage": next.stage, "traffic_percent": next.traffic_percent,
                "decision_id": event.decision_id, "reason": event.reason, "actor": actor,
                "escalation_contact": system.get("escalation_contact").cloned().unwrap_or(Value::Null),
            });
            super::webhooks::enqueue(tx, &system, &next.id, Some(&next.id), event.kind, payload)
                .await?;
        }
        Ok(next)
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

async fn commit(tx: Transaction<'_, Any>) -> Result<(), RecordError> {
    tx.commit().await.map_err(|e| {
        if is_unique_violation(&e) {
            RecordError::Conflict("a concurrent request with the same Idempotency-Key won".into())
        } else {
            e.into()
        }
    })
}

async fn write_event(
    tx: &mut Transaction<'_, Any>,
    d: &Deployment,
    actor: &str,
    now: Timestamp,
    e: &Event<'_>,
) -> Result<i64, RecordError> {
    let seq: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM deployment_events WHERE deployment_id = $1")
            .bind(&d.id)
            .fetch_one(&mut **tx)
            .await?
            .try_get("n")?;
    sqlx::query("INSERT INTO deployment_events (id, deployment_id, seq, at, actor, kind, status, stage, traffic_percent, decision_id, reason, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(new_id())
        .bind(&d.id)
        .bind(seq + 1)
        .bind(now.millis())
        .bind(actor)
        .bind(e.kind)
        .bind(&d.status)
        .bind(&d.stage)
        .bind(d.traffic_percent)
        .bind(e.decision_id.map(str::to_string))
        .bind(e.reason.clone())
        .bind(e.doc.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(seq + 1)
}

async fn system_in(tx: &mut Transaction<'_, Any>, id: &str) -> Result<Value, RecordError> {
    let row = sqlx::query("SELECT doc FROM systems WHERE id = $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    json_col(&row, "doc")
}

/// The `system` object of a decision request from a registration.
pub fn system_of(doc: &Value) -> Value {
    json!({
        "id": doc["id"], "risk_tier": doc["risk_tier"],
        "autonomy": doc.get("autonomy").cloned().unwrap_or(Value::Null),
        "consequential": doc.get("consequential").cloned().unwrap_or(Value::Null),
    })
}

/// The newest observation of each metric (optionally only those whose
/// window ended at or after `since`).
async fn newest_observations(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    since: Option<i64>,
) -> Result<Vec<Value>, RecordError> {
    let rows = sqlx::query(
        "SELECT o.metric, o.value, o.samples, o.window_end FROM observations o \
         JOIN (SELECT metric, MAX(window_end) AS w FROM observations WHERE deployment_id = $1 AND window_end >= $2 GROUP BY metric) m \
         ON o.metric = m.metric AND o.window_end = m.w WHERE o.deployment_id = $3 ORDER BY o.metric, o.recorded_at",
    )
    .bind(id)
    .bind(since.unwrap_or(i64::MIN))
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(json!({
                "metric": r.try_get::<String, _>("metric")?,
                "value": r.try_get::<f64, _>("value")?,
                "samples": r.try_get::<Option<i64>, _>("samples")?,
                "window_end": Timestamp(r.try_get("window_end")?),
            }))
        })
        .collect()
}

/// The latest record of each material issue.
async fn material_issues(
    tx: &mut Transaction<'_, Any>,
    id: &str,
) -> Result<Vec<Value>, RecordError> {
    let rows = sqlx::query("SELECT issue_id, severity, status FROM material_issues WHERE deployment_id = $1 ORDER BY recorded_at, id")
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
    let mut latest: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    for r in &rows {
        let issue: String = r.try_get("issue_id")?;
        latest.insert(
            issue.clone(),
            json!({"id": issue, "severity": r.try_get::<String, _>("severity")?, "status": r.try_get::<String, _>("status")?}),
        );
    }
    Ok(latest.into_values().collect())
}

/// The latest deployment-level document of `table`.
async fn latest_doc(
    tx: &mut Transaction<'_, Any>,
    table: &str,
    order: &str,
    id: &str,
) -> Result<Value, RecordError> {
    let row = sqlx::query(&format!(
        "SELECT doc FROM {table} WHERE deployment_id = $1 ORDER BY {order} DESC, id DESC LIMIT 1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row
        .map(|r| json_col(&r, "doc"))
        .transpose()?
        .unwrap_or(Value::Null))
}

/// The finding codes of a decision, for history events.
fn summary(e: &Envelope) -> String {
    let codes: Vec<&str> = e.findings.iter().map(|f| f.code.as_str()).collect();
    if codes.is_empty() {
        e.outcome.as_str().to_string()
    } else {
        format!("{}: {}", e.outcome.as_str(), codes.join(", "))
    }
}
