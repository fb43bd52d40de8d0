//! Read-only evaluations: the policy asked about a deployment's records —
//! its plan, reviews, authorisations and observations, assembled exactly
//! as a transition assembles them ([`super::assemble`]) and decided by
//! the same pipeline ([`Decide`]) — without changing anything.
//!
//! They are decisions all the same: each is logged in the chain (its
//! entry marked `read_only`) and counted by the pipeline. Rollout
//! controller adapters are built on them and on the deployment's route,
//! never on a second copy of the rules.

use serde::Serialize;

use super::assemble;
use super::evidence::system_row;
use super::model::{Deployment, DeploymentStatus};
use super::refs::DeploymentSelector;
use super::{Decide, RecordError, Records};
use crate::decision::{Envelope, Request, Timestamp};

/// What a read-only evaluation answers: the deployment as it was judged
/// (unchanged by the judgement) and the decision.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Evaluation {
    pub deployment: Deployment,
    pub decision: Envelope,
    /// Always true: nothing changed, and the log entry says so.
    pub read_only: bool,
}

impl Records {
    /// What the monitoring policy says about the deployment now, on its
    /// stored observations. Any status may be asked about.
    pub async fn evaluate_monitoring(
        &self,
        decide: &impl Decide,
        actor: &str,
        selector: &DeploymentSelector,
    ) -> Result<Evaluation, RecordError> {
        let now = Timestamp::now();
        let d = self.find_deployment(selector).await?;
        let mut conn = self.store.pool.acquire().await?;
        let (system, _, _) = system_row(&mut conn, &d.system_id).await?;
        let request = assemble::monitoring(&mut conn, &system, &d, now).await?;
        drop(conn);
        self.evaluated(decide, Request::Monitoring(request), actor, d)
            .await
    }

    /// What the progression policy would say to moving the deployment to
    /// `target_stage` now, on the latest recorded authorisation (of the
    /// deployment, else of its release) and review. Only an active
    /// deployment progresses, so only one is asked about (409 otherwise).
    pub async fn evaluate_progression(
        &self,
        decide: &impl Decide,
        actor: &str,
        selector: &DeploymentSelector,
        target_stage: &str,
    ) -> Result<Evaluation, RecordError> {
        let now = Timestamp::now();
        let d = self.find_deployment(selector).await?;
        if d.status != DeploymentStatus::Active {
            return Err(RecordError::Conflict(format!(
                "deployment '{}' is {}; only an active deployment progresses",
                d.id, d.status
            )));
        }
        if !d.has_stage(target_stage) {
            return Err(RecordError::invalid(
                "target_stage",
                format!("stage '{target_stage}' is not in the deployment's plan"),
            ));
        }
        let mut conn = self.store.pool.acquire().await?;
        let (system, _, _) = system_row(&mut conn, &d.system_id).await?;
        let authorisation = assemble::latest_authorisation(&mut conn, &d).await?;
        let request = assemble::progression(
            &mut conn,
            &system,
            &d,
            target_stage,
            authorisation.as_ref(),
            now,
        )
        .await?;
        drop(conn);
        self.evaluated(decide, Request::Progression(request), actor, d)
            .await
    }

    /// Decides, logs the decision marked read-only, answers.
    async fn evaluated(
        &self,
        decide: &impl Decide,
        request: Request,
        actor: &str,
        deployment: Deployment,
    ) -> Result<Evaluation, RecordError> {
        let (decision, mut entry) = self
            .decide(decide, request, actor, Some(&deployment.id))
            .await;
        entry.read_only = true;
        self.log.record(entry).await?;
        Ok(Evaluation {
            deployment,
            decision,
            read_only: true,
        })
    }
}
