//! The evidence a gate rests on: systems, releases (verification, risk,
//! deficiencies, safeguards, communication, monitoring, supply chain),
//! reviews, authorisations and risk acceptances.
//!
//! Reviewers, authorisers and acceptors are always the caller: their
//! identity comes from the token, never from the request body, so the
//! separation-of-duties rule is applied to true identities.

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::{Actor, RecordError, Records, check_id, new_id};
use crate::decision::{self, DecisionKind, Timestamp};

/// Decodes a body into `T`, naming the JSON path of a problem.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, RecordError> {
    Ok(crate::decision::decode::decode_as(body)?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemBody {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub risk_tier: String,
    #[serde(default)]
    pub autonomy: Option<String>,
    #[serde(default)]
    pub consequential: Option<bool>,
    /// Who users and operators contact when outputs are uncertain or disputed.
    #[serde(default)]
    pub escalation_contact: Option<String>,
    /// Escalation webhooks (see the monitoring section of the README).
    #[serde(default)]
    pub webhooks: Vec<Value>,
}

impl Records {
    /// Registers an AI system.
    pub async fn register_system(&self, actor: &Actor, body: &[u8]) -> Result<Value, RecordError> {
        let b: SystemBody = parse(body)?;
        check_id("id", &b.id)?;
        // Validate tier and autonomy with the decision decoder's rules.
        let probe = json!({"now": "2026-01-01T00:00:00Z",
                           "system": {"id": b.id, "risk_tier": b.risk_tier, "autonomy": b.autonomy, "consequential": b.consequential}});
        decision::decode(DecisionKind::Gate, probe.to_string().as_bytes())?;
        super::deployments::check_webhooks(&b.webhooks)?;
        let doc: Value = serde_json::from_slice(body).unwrap_or_default();
        let now = Timestamp::now();
        let result = sqlx::query("INSERT INTO systems (id, risk_tier, doc, created_at, created_by) VALUES ($1, $2, $3, $4, $5)")
            .bind(&b.id)
            .bind(&b.risk_tier)
            .bind(doc.to_string())
            .bind(now.millis())
            .bind(&actor.name)
            .execute(&self.store.pool)
            .await;
        match result {
            Ok(_) => Ok(json!({"system": doc, "created_at": now, "created_by": actor.name})),
            Err(e) if is_unique_violation(&e) => Err(RecordError::Conflict(format!(
                "system '{}' is already registered",
                b.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A system's registration document as shown to callers: webhook
    /// secrets are redacted.
    pub async fn system(&self, id: &str) -> Result<Value, RecordError> {
        let mut doc = self.system_private(id).await?;
        if let Some(hooks) = doc["webhooks"].as_array_mut() {
            for h in hooks {
                if h.get("secret").is_some() {
                    h["secret"] = json!("(redacted)");
                }
            }
        }
        Ok(doc)
    }

    /// A system's registration document, secrets included.
    pub async fn system_private(&self, id: &str) -> Result<Value, RecordError> {
        let row = sqlx::query("SELECT doc FROM systems WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.store.pool)
            .await?
            .ok_or_else(|| RecordError::NotFound(format!("no system '{id}'")))?;
        json_col(&row, "doc")
    }

    /// Registers a release of a system with its evidence. The evidence uses
    /// the gate request's field names and is checked with the same decoder,
    /// so a release that is accepted here can always be judged by the gate.
    pub async fn register_release(
        &self,
        actor: &Actor,
        system_id: &str,
        body: &[u8],
    ) -> Result<Value, RecordError> {
        let system = self.system(system_id).await?;
        let doc: Value = parse(body)?;
        let Some(obj) = doc.as_object() else {
            return Err(RecordError::invalid("", "expected an object"));
        };
        let version = obj
            .get("version")
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| RecordError::invalid("/version", "required: the release version"))?
            .to_string();
        for field in ["now", "system", "review", "authorisation", "plan"] {
            if obj.contains_key(field) {
                return Err(RecordError::invalid(
                    format!("/{field}"),
                    "not part of a release: reviews, authorisations and plans are recorded separately",
                ));
            }
        }
        if let Some(defs) = obj.get("deficiencies").and_then(Value::as_array) {
            for (i, d) in defs.iter().enumerate() {
                if d.get("acceptance").is_some_and(|a| !a.is_null()) {
                    return Err(RecordError::invalid(
                        format!("/deficiencies/{i}/acceptance"),
                        "risk acceptances are recorded by their approver: POST /v1/releases/{id}/acceptances",
                    ));
                }
            }
        }
        let mut probe = doc.clone();
        probe["now"] = json!("2026-01-01T00:00:00Z");
        probe["system"] = json!({"id": system_id, "risk_tier": system["risk_tier"]});
        decision::decode(DecisionKind::Gate, probe.to_string().as_bytes())?;
        let id = format!("{system_id}@{version}");
        let now = Timestamp::now();
        let result = sqlx::query("INSERT INTO releases (id, system_id, version, doc, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id)
            .bind(system_id)
            .bind(&version)
            .bind(doc.to_string())
            .bind(now.millis())
            .bind(&actor.name)
            .execute(&self.store.pool)
            .await;
        match result {
            Ok(_) => Ok(
                json!({"release_id": id, "release": doc, "created_at": now, "created_by": actor.name}),
            ),
            Err(e) if is_unique_violation(&e) => Err(RecordError::Conflict(format!(
                "release '{id}' is already registered"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A release: (system id, evidence document).
    pub async fn release(&self, id: &str) -> Result<(String, Value), RecordError> {
        let row = sqlx::query("SELECT system_id, doc FROM releases WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.store.pool)
            .await?
            .ok_or_else(|| RecordError::NotFound(format!("no release '{id}'")))?;
        Ok((row.try_get("system_id")?, json_col(&row, "doc")?))
    }

    /// Records a review by the caller: of a release (before the gate) or of
    /// a deployment's next progression.
    pub async fn record_review(
        &self,
        actor: &Actor,
        release_id: &str,
        deployment_id: Option<&str>,
        body: &[u8],
    ) -> Result<Value, RecordError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct B {
            outcome: String,
            #[serde(default)]
            conditions: Vec<String>,
            #[serde(default)]
            target_stage: Option<String>,
            #[serde(default)]
            notes: Option<String>,
        }
        let b: B = parse(body)?;
        if !["approved", "approved_with_conditions", "rejected"].contains(&b.outcome.as_str()) {
            return Err(RecordError::invalid(
                "/outcome",
                "expected approved, approved_with_conditions or rejected",
            ));
        }
        self.release(release_id).await?;
        let now = Timestamp::now();
        let review = json!({
            "reviewer": actor.name, "completed_at": now, "outcome": b.outcome,
            "conditions": b.conditions, "target_stage": b.target_stage, "notes": b.notes,
        });
        let id = new_id();
        sqlx::query("INSERT INTO reviews (id, release_id, deployment_id, reviewer, completed_at, outcome, doc) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&id)
            .bind(release_id)
            .bind(deployment_id.map(str::to_string))
            .bind(&actor.name)
            .bind(now.millis())
            .bind(&b.outcome)
            .bind(review.to_string())
            .execute(&self.store.pool)
            .await?;
        Ok(json!({"review_id": id, "review": review}))
    }

    /// Records a deployment authorisation by the caller, the accountable
    /// party: identity from the token, role from the token's title.
    pub async fn record_authorisation(
        &self,
        actor: &Actor,
        release_id: &str,
        body: &[u8],
    ) -> Result<Value, RecordError> {
        self.release(release_id).await?;
        let auth = authorisation_from(actor, body)?;
        let id = new_id();
        insert_authorisation(&self.store.pool, &id, release_id, None, &auth).await?;
        Ok(json!({"authorisation_id": id, "authorisation": auth}))
    }

    /// Records a risk acceptance of one of the release's deficiencies.
    pub async fn record_acceptance(
        &self,
        actor: &Actor,
        release_id: &str,
        body: &[u8],
    ) -> Result<Value, RecordError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct B {
            deficiency_id: String,
            rationale: String,
            #[serde(default)]
            expires_at: Option<crate::decision::Timestamp>,
        }
        let b: B = parse(body)?;
        let (_, release) = self.release(release_id).await?;
        let known = release["deficiencies"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x["id"] == b.deficiency_id.as_str()));
        if !known {
            return Err(RecordError::invalid(
                "/deficiency_id",
                format!(
                    "release '{release_id}' lists no deficiency '{}'",
                    b.deficiency_id
                ),
            ));
        }
        if b.rationale.trim().is_empty() {
            return Err(RecordError::invalid(
                "/rationale",
                "a risk acceptance needs its rationale",
            ));
        }
        let now = Timestamp::now();
        if let Some(exp) = b.expires_at.filter(|e| *e <= now) {
            return Err(RecordError::invalid(
                "/expires_at",
                format!("{exp} is already past"),
            ));
        }
        let acceptance = json!({"accepted_by": actor.name, "accepted_at": now, "rationale": b.rationale, "expires_at": b.expires_at});
        let id = new_id();
        sqlx::query("INSERT INTO acceptances (id, release_id, deficiency_id, accepted_by, accepted_at, expires_at, doc) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&id)
            .bind(release_id)
            .bind(&b.deficiency_id)
            .bind(&actor.name)
            .bind(now.millis())
            .bind(b.expires_at.map(|t| t.millis()))
            .bind(acceptance.to_string())
            .execute(&self.store.pool)
            .await?;
        Ok(json!({"acceptance_id": id, "deficiency_id": b.deficiency_id, "acceptance": acceptance}))
    }

    /// The gate request for `release_id` under `plan`, assembled from the
    /// records: the release's evidence, its latest review and authorisation,
    /// and each deficiency with its latest acceptance.
    pub async fn gate_request(
        &self,
        release_id: &str,
        plan: &Value,
        now: Timestamp,
    ) -> Result<Value, RecordError> {
        let (system_id, release) = self.release(release_id).await?;
        let system = self.system(&system_id).await?;
        let mut req = release.clone();
        req["now"] = json!(now);
        req["system"] = json!({
            "id": system_id, "risk_tier": system["risk_tier"],
            "autonomy": system.get("autonomy").cloned().unwrap_or(Value::Null),
            "consequential": system.get("consequential").cloned().unwrap_or(Value::Null),
        });
        req["release"] = json!({"version": release["version"], "artifact_digest": release.get("artifact_digest").cloned().unwrap_or(Value::Null)});
        if let Some(obj) = req.as_object_mut() {
            obj.remove("version");
            obj.remove("artifact_digest");
        }
        req["plan"] = plan.clone();
        req["review"] = self
            .latest_release_doc("reviews", "completed_at", release_id)
            .await?
            .unwrap_or(Value::Null);
        req["authorisation"] = self
            .latest_release_doc("authorisations", "authorised_at", release_id)
            .await?
            .unwrap_or(Value::Null);
        if let Some(defs) = req["deficiencies"].as_array_mut() {
            for d in defs {
                let Some(id) = d["id"].as_str().map(str::to_string) else {
                    continue;
                };
                let row = sqlx::query("SELECT doc FROM acceptances WHERE release_id = $1 AND deficiency_id = $2 ORDER BY accepted_at DESC, id DESC LIMIT 1")
                    .bind(release_id)
                    .bind(&id)
                    .fetch_optional(&self.store.pool)
                    .await?;
                if let Some(row) = row {
                    d["acceptance"] = json_col(&row, "doc")?;
                }
            }
        }
        Ok(req)
    }

    /// The latest release-level (not deployment-level) record of `table`
    /// (`reviews` by `completed_at`, `authorisations` by `authorised_at`).
    async fn latest_release_doc(
        &self,
        table: &str,
        order: &str,
        release_id: &str,
    ) -> Result<Option<Value>, RecordError> {
        let row = sqlx::query(&format!(
            "SELECT doc FROM {table} WHERE release_id = $1 AND deployment_id IS NULL ORDER BY {order} DESC, id DESC LIMIT 1"
        ))
        .bind(release_id)
        .fetch_optional(&self.store.pool)
        .await?;
        row.map(|r| json_col(&r, "doc")).transpose()
    }
}

/// What a caller may say about the authorisation they give: conditions,
/// expiry and scope. `authorised_by`, if given, must name the caller.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorisationBody {
    #[serde(default)]
    pub authorised_by: Option<String>,
    #[serde(default)]
    pub conditions: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub scope: Option<Vec<String>>,
}

/// An authorisation by `actor` from a request body (empty means none of
/// the optional parts).
pub fn authorisation_from(actor: &Actor, body: &[u8]) -> Result<Value, RecordError> {
    let b: AuthorisationBody = if body.iter().all(u8::is_ascii_whitespace) {
        AuthorisationBody::default()
    } else {
        parse(body)?
    };
    authorisation_value(actor, b)
}

/// Builds and checks an authorisation document for `actor`.
pub fn authorisation_value(actor: &Actor, b: AuthorisationBody) -> Result<Value, RecordError> {
    let AuthorisationBody {
        authorised_by,
        conditions,
        expires_at,
        scope,
    } = b;
    if let Some(named) = authorised_by.filter(|n| n.trim() != actor.name) {
        return Err(RecordError::Forbidden(format!(
            "the authorisation names '{named}' but the caller is '{}': an authorisation is recorded by its authoriser",
            actor.name
        )));
    }
    let now = Timestamp::now();
    if let Some(exp) = expires_at.filter(|e| *e <= now) {
        return Err(RecordError::invalid(
            "/authorisation/expires_at",
            format!("the authorisation expired at {exp}"),
        ));
    }
    Ok(json!({
        "authorised_by": actor.name,
        "role": actor.title.clone().unwrap_or_else(|| "approver".into()),
        "authorised_at": now,
        "expires_at": expires_at,
        "conditions": conditions,
        "scope": scope,
    }))
}

/// Inserts an authorisation row.
pub async fn insert_authorisation<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    exec: E,
    id: &str,
    release_id: &str,
    deployment_id: Option<&str>,
    auth: &Value,
) -> Result<(), RecordError> {
    let at = auth["authorised_at"]
        .as_str()
        .and_then(Timestamp::parse)
        .map(|t| t.millis())
        .unwrap_or_default();
    let exp = auth["expires_at"]
        .as_str()
        .and_then(Timestamp::parse)
        .map(|t| t.millis());
    sqlx::query("INSERT INTO authorisations (id, release_id, deployment_id, authorised_by, role, authorised_at, expires_at, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(id)
        .bind(release_id)
        .bind(deployment_id.map(str::to_string))
        .bind(auth["authorised_by"].as_str().unwrap_or_default().to_string())
        .bind(auth["role"].as_str().unwrap_or_default().to_string())
        .bind(at)
        .bind(exp)
        .bind(auth.to_string())
        .execute(exec)
        .await?;
    Ok(())
}

/// A JSON text column as a value.
pub fn json_col(row: &sqlx::any::AnyRow, col: &str) -> Result<Value, RecordError> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text)
        .map_err(|e| RecordError::Store(super::StoreError::Corrupt(format!("{col}: {e}"))))
}

/// A unique-constraint violation, in either dialect.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || d.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}
