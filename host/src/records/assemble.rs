//! Decision requests built from the records: typed, in the same shapes a
//! caller would send, so a decision about a recorded deployment is judged
//! by exactly the rules a stateless decision is.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use super::RecordError;
use super::model::{
    Acceptance, Authorisation, Deployment, Release, ReleaseEvidence, Review, System,
};
use super::store::json_column;
use crate::decision::Timestamp;
use crate::decision::request::{
    GateRequest, MaterialIssue, MonitoringRequest, Observation, Plan, ProgressionRequest,
};

/// A gate request about `evidence` with no review, authorisation or plan:
/// what the release itself says.
pub(crate) fn gate_request(
    system: &System,
    evidence: &ReleaseEvidence,
    now: Timestamp,
) -> GateRequest {
    GateRequest {
        now,
        system: system.subject(),
        release: Some(crate::decision::request::Release {
            version: Some(evidence.version.clone()),
            artifact_digest: evidence.artifact_digest.clone(),
            artifact_uri: evidence.artifact_uri.clone(),
        }),
        risk: evidence.risk.clone(),
        verification: evidence.verification.clone(),
        review: None,
        authorisation: None,
        deficiencies: evidence.deficiencies.clone(),
        plan: None,
        safeguards: evidence.safeguards.clone(),
        communication: evidence.communication.clone(),
        monitoring: evidence.monitoring.clone(),
        supply_chain: evidence.supply_chain.clone(),
        extensions: evidence.extensions.clone(),
        // The release's attestations were verified at registration and are
        // already mapped into its evidence.
        attestations: Vec::new(),
    }
}

/// The gate request for `release` under `plan`, from the records: the
/// release's evidence, its latest review and authorisation, and each
/// deficiency with its latest acceptance.
pub(crate) async fn gate(
    conn: &mut AnyConnection,
    system: &System,
    release: &Release,
    plan: &Plan,
    now: Timestamp,
) -> Result<GateRequest, RecordError> {
    let mut request = gate_request(system, &release.release, now);
    request.plan = Some(plan.clone());
    request.review = latest::<Review>(
        conn,
        "reviews",
        "completed_at",
        Of::Release(&release.release_id),
    )
    .await?
    .map(|r| r.evidence());
    request.authorisation = latest::<Authorisation>(
        conn,
        "authorisations",
        "authorised_at",
        Of::Release(&release.release_id),
    )
    .await?
    .map(|a| a.evidence());
    for d in &mut request.deficiencies {
        let Some(id) = d.id.clone() else { continue };
        let row = sqlx::query("SELECT doc FROM acceptances WHERE release_id = $1 AND deficiency_id = $2 ORDER BY accepted_at DESC, id DESC LIMIT 1")
            .bind(&release.release_id)
            .bind(&id)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = row {
            d.acceptance = Some(json_column::<Acceptance>(&row, "doc")?.evidence());
        }
    }
    Ok(request)
}

/// The progression request to move `d` to `target_stage` on
/// `authorisation`: observations since the current stage was entered,
/// material issues, and the latest review of the deployment.
pub(crate) async fn progression(
    conn: &mut AnyConnection,
    system: &System,
    d: &Deployment,
    target_stage: &str,
    authorisation: Option<&Authorisation>,
    now: Timestamp,
) -> Result<ProgressionRequest, RecordError> {
    Ok(ProgressionRequest {
        now,
        system: system.subject(),
        plan: d.plan.clone(),
        current_stage: d.stage.clone(),
        target_stage: target_stage.to_string(),
        stage_entered_at: d.stage_entered_at,
        observations: newest_observations(conn, &d.id, Some(d.stage_entered_at), now).await?,
        material_issues: material_issues(conn, &d.id).await?,
        review: latest::<Review>(conn, "reviews", "completed_at", Of::Deployment(&d.id))
            .await?
            .map(|r| r.evidence()),
        authorisation: authorisation.map(Authorisation::evidence),
        extensions: None,
    })
}

/// The monitoring request for `d` now: the newest observation of each
/// metric since it was deployed.
pub(crate) async fn monitoring(
    conn: &mut AnyConnection,
    system: &System,
    d: &Deployment,
    now: Timestamp,
) -> Result<MonitoringRequest, RecordError> {
    Ok(MonitoringRequest {
        now,
        system: system.subject(),
        plan: d.plan.clone(),
        current_stage: d.stage.clone(),
        deployed_at: d.deployed_at,
        observations: newest_observations(conn, &d.id, None, now).await?,
        extensions: None,
    })
}

/// Folds observations about to be recorded into the newest of each metric
/// read from the records, as if they had been stored: a later or equal
/// `window_end` wins (among equals, the one recorded last, and these are
/// recorded after everything stored); one ending after `now` never does.
pub(crate) fn merge_newest(
    newest: &mut Vec<Observation>,
    incoming: &[Observation],
    now: Timestamp,
) {
    for o in incoming
        .iter()
        .filter(|o| o.window_end.is_none_or(|w| w <= now))
    {
        match newest.iter_mut().find(|n| n.metric == o.metric) {
            Some(n) if n.window_end <= o.window_end => *n = o.clone(),
            Some(_) => {}
            None => newest.push(o.clone()),
        }
    }
}

/// The newest observation of each metric as of `now` (optionally only
/// those whose window ended at or after `since`), oldest recorded first
/// among equals. One whose window ends after `now` (within the clock skew
/// the API allows) is not the newest yet: it would hide the real values
/// until its time came.
async fn newest_observations(
    conn: &mut AnyConnection,
    id: &str,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Result<Vec<Observation>, RecordError> {
    let rows = sqlx::query(
        "SELECT o.metric, o.value, o.samples, o.window_end FROM observations o \
         JOIN (SELECT metric, MAX(window_end) AS w FROM observations WHERE deployment_id = $1 AND window_end >= $2 AND window_end <= $3 GROUP BY metric) m \
         ON o.metric = m.metric AND o.window_end = m.w WHERE o.deployment_id = $4 ORDER BY o.metric, o.recorded_at",
    )
    .bind(id)
    .bind(since.map_or(i64::MIN, Timestamp::millis))
    .bind(now.millis())
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let samples: Option<i64> = r.try_get("samples")?;
            Ok(Observation {
                metric: Some(r.try_get("metric")?),
                value: Some(r.try_get("value")?),
                samples: samples.and_then(|s| u64::try_from(s).ok()),
                window_end: Some(Timestamp(r.try_get("window_end")?)),
            })
        })
        .collect()
}

/// The latest record of each material issue.
async fn material_issues(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Vec<MaterialIssue>, RecordError> {
    let rows = sqlx::query("SELECT issue_id, doc FROM material_issues WHERE deployment_id = $1 ORDER BY recorded_at, id")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    let mut latest = BTreeMap::new();
    for r in &rows {
        let issue: super::model::MaterialIssue = json_column(r, "doc")?;
        latest.insert(
            r.try_get::<String, _>("issue_id")?,
            MaterialIssue {
                id: Some(issue.id),
                severity: Some(issue.severity),
                status: Some(issue.status),
            },
        );
    }
    Ok(latest.into_values().collect())
}

/// The authorisation a read-only progression evaluation rests on: the
/// latest recorded for the deployment, else the latest of its release.
pub(crate) async fn latest_authorisation(
    conn: &mut AnyConnection,
    d: &Deployment,
) -> Result<Option<Authorisation>, RecordError> {
    if let Some(a) = latest(
        conn,
        "authorisations",
        "authorised_at",
        Of::Deployment(&d.id),
    )
    .await?
    {
        return Ok(Some(a));
    }
    latest(
        conn,
        "authorisations",
        "authorised_at",
        Of::Release(&d.release_id),
    )
    .await
}

/// Whose records a query reads.
enum Of<'a> {
    /// A release's own records, not those given for one of its
    /// deployments' progressions.
    Release(&'a str),
    Deployment(&'a str),
}

/// The latest record of `table` (`reviews` by `completed_at`,
/// `authorisations` by `authorised_at`) of a release or a deployment.
async fn latest<T: serde::de::DeserializeOwned>(
    conn: &mut AnyConnection,
    table: &str,
    order: &str,
    of: Of<'_>,
) -> Result<Option<T>, RecordError> {
    let (filter, id) = match of {
        Of::Release(id) => ("release_id = $1 AND deployment_id IS NULL", id),
        Of::Deployment(id) => ("deployment_id = $1", id),
    };
    let row = sqlx::query(&format!(
        "SELECT doc FROM {table} WHERE {filter} ORDER BY {order} DESC, id DESC LIMIT 1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| json_column(&r, "doc")).transpose()?)
}
