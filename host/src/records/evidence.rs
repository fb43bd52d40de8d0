//! The evidence a gate rests on: systems, releases (verification, risk,
//! deficiencies, safeguards, communication, monitoring, supply chain),
//! reviews, authorisations and risk acceptances.
//!
//! Reviewers, authorisers and acceptors are always the caller: their
//! identity comes from the token, never from the request body, so the
//! separation-of-duties rule is applied to true identities.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::ledger::{self, Cell, RowValues};
use super::model::{
    Acceptance, Actor, Authorisation, MisplacedReleaseFields, NewAcceptance, NewAuthorisation,
    NewReview, NewSystem, Release, ReleaseEvidence, Review, System, SystemView, Webhook,
};
use super::store::json_column;
use super::write::Write;
use super::{RecordError, Records, check_id, new_id};
use crate::decision::Timestamp;
use crate::decision::request::{GateRequest, Plan};

/// Receivers one system may register: each is written to the outbox on
/// every escalation, so the fan-out of one event stays bounded.
pub(crate) const MAX_WEBHOOKS: usize = 8;

/// The name a value of the decision vocabulary has on the wire
/// (`high`, `approved_with_conditions`).
pub(crate) fn wire_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn json_text<T: Serialize>(v: &T) -> String {
    // Plain records of strings, numbers and timestamps: cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

/// A review as answered: its id and the review.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReviewRecorded {
    pub review_id: String,
    pub review: Review,
}

/// An authorisation as answered.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuthorisationRecorded {
    pub authorisation_id: String,
    pub authorisation: Authorisation,
}

/// A risk acceptance as answered.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AcceptanceRecorded {
    pub acceptance_id: String,
    pub deficiency_id: String,
    pub acceptance: Acceptance,
}

async fn check_webhooks(
    hooks: &[Webhook],
    destinations: &super::destinations::Destinations,
) -> Result<(), RecordError> {
    if hooks.len() > MAX_WEBHOOKS {
        return Err(RecordError::invalid(
            "/webhooks",
            format!(
                "expected at most {MAX_WEBHOOKS} receivers, found {}",
                hooks.len()
            ),
        ));
    }
    for (i, h) in hooks.iter().enumerate() {
        if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
            return Err(RecordError::invalid(
                format!("/webhooks/{i}/url"),
                "expected an http:// or https:// URL",
            ));
        }
        if h.secret.len() < 16 {
            return Err(RecordError::invalid(
                format!("/webhooks/{i}/secret"),
                "expected an HMAC secret of at least 16 characters",
            ));
        }
        let (d, url) = (destinations.clone(), h.url.clone());
        tokio::task::spawn_blocking(move || d.resolve(&url))
            .await
            .map_err(|e| RecordError::invalid(format!("/webhooks/{i}/url"), e.to_string()))?
            .map_err(|e| RecordError::invalid(format!("/webhooks/{i}/url"), e.0))?;
    }
    Ok(())
}

impl Records {
    /// Registers an AI system.
    pub async fn register_system(
        &self,
        actor: &Actor,
        new: NewSystem,
    ) -> Result<SystemView, RecordError> {
        check_id("id", &new.id)?;
        check_webhooks(&new.webhooks, &self.destinations).await?;
        let system = System {
            id: new.id,
            name: new.name,
            risk_tier: new.risk_tier,
            autonomy: new.autonomy,
            consequential: new.consequential,
            escalation_contact: new.escalation_contact,
            webhooks: new.webhooks,
        };
        let now = Timestamp::now();
        let mut w = Write::begin(&self.store, &actor.name, now, None).await?;
        let row = RowValues {
            table: &ledger::SYSTEMS,
            cells: vec![
                system.id.as_str().into(),
                wire_name(&system.risk_tier).into(),
                json_text(&system).into(),
                now.into(),
                actor.name.as_str().into(),
            ],
        };
        let id = system.id.clone();
        w.insert(row, None, || format!("system '{id}' is already registered"))
            .await?;
        let view = SystemView::new(system, now, actor.name.clone());
        w.commit(None, &()).await?;
        Ok(view)
    }

    /// A system as shown to callers: receivers redacted.
    pub async fn system(&self, id: &str) -> Result<SystemView, RecordError> {
        let mut conn = self.store.pool.acquire().await?;
        let (system, at, by) = system_row(&mut conn, id).await?;
        Ok(SystemView::new(system, at, by))
    }

    /// A system's registration, secrets included (for webhook delivery).
    pub(crate) async fn system_private(&self, id: &str) -> Result<System, RecordError> {
        let mut conn = self.store.pool.acquire().await?;
        Ok(system_row(&mut conn, id).await?.0)
    }

    /// Registers a release of a system with its evidence. The evidence
    /// uses the gate request's field names and is checked with the same
    /// decoder, so a release accepted here can always be judged by the
    /// gate.
    pub async fn register_release(
        &self,
        actor: &Actor,
        system_id: &str,
        mut evidence: ReleaseEvidence,
        misplaced: &MisplacedReleaseFields,
        attestations: &[Box<serde_json::value::RawValue>],
    ) -> Result<Release, RecordError> {
        if let Some(field) = misplaced.first() {
            return Err(RecordError::invalid(
                format!("/{field}"),
                "not part of a release: reviews, authorisations and plans are recorded separately",
            ));
        }
        if evidence.version.trim().is_empty() {
            return Err(RecordError::invalid(
                "/version",
                "required: the release version",
            ));
        }
        if let Some(i) = evidence
            .deficiencies
            .iter()
            .position(|d| d.acceptance.is_some())
        {
            return Err(RecordError::invalid(
                format!("/deficiencies/{i}/acceptance"),
                "risk acceptances are recorded by their approver: POST /v1/releases/{id}/acceptances",
            ));
        }
        super::attestations::check_artifact_uri(
            evidence.artifact_uri.as_deref(),
            evidence.artifact_digest.as_deref(),
            "/artifact_uri",
        )?;
        // Signatures are checked before the write begins: it holds the
        // chain lock.
        let checked = super::attestations::check(&self.evidence, &mut evidence, attestations)?;
        let now = Timestamp::now();
        let mut w = Write::begin(&self.store, &actor.name, now, None).await?;
        let (system, _, _) = system_row(w.conn(), system_id).await?;
        // The domain checks of a gate request about this release.
        let probe = super::assemble::gate_request(&system, &evidence, now);
        crate::decision::decode::validate(&crate::decision::Request::Gate(probe))?;
        let release = Release {
            release_id: format!("{system_id}@{}", evidence.version),
            system_id: system_id.to_string(),
            release: evidence,
            created_at: now,
            created_by: actor.name.clone(),
            attestations: checked.iter().map(|c| c.view.clone()).collect(),
        };
        let row = RowValues {
            table: &ledger::RELEASES,
            cells: vec![
                release.release_id.as_str().into(),
                system_id.into(),
                release.release.version.as_str().into(),
                json_text(&release.release).into(),
                now.into(),
                actor.name.as_str().into(),
            ],
        };
        let id = release.release_id.clone();
        w.insert(row, None, || {
            format!("release '{id}' is already registered")
        })
        .await?;
        super::attestations::insert(&mut w, &release.release_id, &checked).await?;
        w.commit(None, &()).await?;
        Ok(release)
    }

    /// A release, its evidence and what was taken from its attestations.
    pub async fn release(&self, id: &str) -> Result<Release, RecordError> {
        let mut conn = self.store.pool.acquire().await?;
        let mut release = release_row(&mut conn, id).await?;
        release.attestations = super::attestations::of_release(&mut conn, id)
            .await?
            .into_iter()
            .map(|a| a.view)
            .collect();
        Ok(release)
    }

    /// Records a review by the caller: of a release (before the gate) or of
    /// a deployment's next progression.
    pub async fn record_review(
        &self,
        actor: &Actor,
        release_id: &str,
        deployment_id: Option<&str>,
        new: NewReview,
    ) -> Result<ReviewRecorded, RecordError> {
        let now = Timestamp::now();
        let mut w = Write::begin(&self.store, &actor.name, now, None).await?;
        release_row(w.conn(), release_id).await?;
        let review = Review {
            reviewer: actor.name.clone(),
            completed_at: now,
            outcome: new.outcome,
            conditions: new.conditions,
            target_stage: new.target_stage,
            notes: new.notes,
        };
        let id = new_id();
        let row = RowValues {
            table: &ledger::REVIEWS,
            cells: vec![
                id.as_str().into(),
                release_id.into(),
                deployment_id.map(str::to_string).into(),
                actor.name.as_str().into(),
                now.into(),
                wire_name(&review.outcome).into(),
                json_text(&review).into(),
            ],
        };
        w.insert(row, deployment_id, String::new).await?;
        w.commit(None, &()).await?;
        Ok(ReviewRecorded {
            review_id: id,
            review,
        })
    }

    /// Records a deployment authorisation by the caller, the accountable
    /// party: identity from the token, role from the token's title.
    pub async fn record_authorisation(
        &self,
        actor: &Actor,
        release_id: &str,
        new: NewAuthorisation,
    ) -> Result<AuthorisationRecorded, RecordError> {
        let now = Timestamp::now();
        let authorisation = authorisation(actor, new, now)?;
        let mut w = Write::begin(&self.store, &actor.name, now, None).await?;
        release_row(w.conn(), release_id).await?;
        let id = insert_authorisation(&mut w, release_id, None, &authorisation).await?;
        w.commit(None, &()).await?;
        Ok(AuthorisationRecorded {
            authorisation_id: id,
            authorisation,
        })
    }

    /// Records a risk acceptance of one of the release's deficiencies.
    pub async fn record_acceptance(
        &self,
        actor: &Actor,
        release_id: &str,
        new: NewAcceptance,
    ) -> Result<AcceptanceRecorded, RecordError> {
        if new.rationale.trim().is_empty() {
            return Err(RecordError::invalid(
                "/rationale",
                "a risk acceptance needs its rationale",
            ));
        }
        let now = Timestamp::now();
        if let Some(exp) = new.expires_at.filter(|e| *e <= now) {
            return Err(RecordError::invalid(
                "/expires_at",
                format!("{exp} is already past"),
            ));
        }
        let mut w = Write::begin(&self.store, &actor.name, now, None).await?;
        let release = release_row(w.conn(), release_id).await?;
        let known = release
            .release
            .deficiencies
            .iter()
            .any(|d| d.id.as_deref() == Some(new.deficiency_id.as_str()));
        if !known {
            return Err(RecordError::invalid(
                "/deficiency_id",
                format!(
                    "release '{release_id}' lists no deficiency '{}'",
                    new.deficiency_id
                ),
            ));
        }
        let acceptance = Acceptance {
            accepted_by: actor.name.clone(),
            accepted_at: now,
            rationale: new.rationale,
            expires_at: new.expires_at,
        };
        let id = new_id();
        let row = RowValues {
            table: &ledger::ACCEPTANCES,
            cells: vec![
                id.as_str().into(),
                release_id.into(),
                new.deficiency_id.as_str().into(),
                actor.name.as_str().into(),
                now.into(),
                acceptance.expires_at.into(),
                json_text(&acceptance).into(),
            ],
        };
        w.insert(row, None, String::new).await?;
        w.commit(None, &()).await?;
        Ok(AcceptanceRecorded {
            acceptance_id: id,
            deficiency_id: new.deficiency_id,
            acceptance,
        })
    }
}

/// Builds and checks an authorisation by `actor` at `now`.
pub(crate) fn authorisation(
    actor: &Actor,
    new: NewAuthorisation,
    now: Timestamp,
) -> Result<Authorisation, RecordError> {
    let NewAuthorisation {
        authorised_by,
        conditions,
        expires_at,
        scope,
    } = new;
    if let Some(named) = authorised_by.filter(|n| n.trim() != actor.name) {
        return Err(RecordError::Forbidden(format!(
            "the authorisation names '{named}' but the caller is '{}': an authorisation is recorded by its authoriser",
            actor.name
        )));
    }
    if let Some(exp) = expires_at.filter(|e| *e <= now) {
        return Err(RecordError::invalid(
            "/authorisation/expires_at",
            format!("the authorisation expired at {exp}"),
        ));
    }
    Ok(Authorisation {
        authorised_by: actor.name.clone(),
        role: actor.title.clone().unwrap_or_else(|| "approver".into()),
        authorised_at: now,
        expires_at,
        conditions,
        scope,
    })
}

/// Inserts an authorisation row in `w`; returns its id.
pub(crate) async fn insert_authorisation(
    w: &mut Write<'_>,
    release_id: &str,
    deployment_id: Option<&str>,
    a: &Authorisation,
) -> Result<String, RecordError> {
    let id = new_id();
    let row = RowValues {
        table: &ledger::AUTHORISATIONS,
        cells: vec![
            id.as_str().into(),
            release_id.into(),
            deployment_id.map(str::to_string).into(),
            a.authorised_by.as_str().into(),
            a.role.as_str().into(),
            a.authorised_at.into(),
            Cell::from(a.expires_at),
            json_text(a).into(),
        ],
    };
    w.insert(row, deployment_id, String::new).await?;
    Ok(id)
}

/// A system row: (system, created_at, created_by), or not found.
pub(crate) async fn system_row(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<(System, Timestamp, String), RecordError> {
    let row = sqlx::query("SELECT doc, created_at, created_by FROM systems WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| RecordError::NotFound(format!("no system '{id}'")))?;
    Ok((
        json_column(&row, "doc")?,
        Timestamp(row.try_get("created_at")?),
        row.try_get("created_by")?,
    ))
}

/// A release row, or not found.
pub(crate) async fn release_row(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Release, RecordError> {
    let row =
        sqlx::query("SELECT system_id, doc, created_at, created_by FROM releases WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| RecordError::NotFound(format!("no release '{id}'")))?;
    Ok(Release {
        release_id: id.to_string(),
        system_id: row.try_get("system_id")?,
        release: json_column(&row, "doc")?,
        created_at: Timestamp(row.try_get("created_at")?),
        created_by: row.try_get("created_by")?,
        attestations: Vec::new(),
    })
}

impl Records {
    /// The gate request for recorded release `release_id` under `plan`,
    /// assembled exactly as `POST /v1/deployments` assembles it, without
    /// creating anything: for integrations that gate a deployment made
    /// elsewhere (GitHub deployment protection rules).
    pub async fn gate_request_for(
        &self,
        release_id: &str,
        plan: &Plan,
    ) -> Result<GateRequest, RecordError> {
        let mut conn = self.store.pool.acquire().await?;
        let release = release_row(&mut conn, release_id).await?;
        let (system, _, _) = system_row(&mut conn, &release.system_id).await?;
        super::assemble::gate(&mut conn, &system, &release, plan, Timestamp::now()).await
    }
}
