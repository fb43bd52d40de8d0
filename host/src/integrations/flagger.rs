//! Flagger's webhooks.
//!
//! Flagger POSTs a `CanaryWebhookPayload` — `name`, `namespace`, `phase`,
//! `checksum` and the webhook's `metadata` map — to each hook of a
//! Canary's analysis, with a timeout (10 s unless `timeout`) and retries
//! only when `retries` is set. Any status above 202 fails the hook, and
//! the body goes into the Canary's events; so every refusal says why in
//! its `message`, plus the findings. The `rollback` hook is inverted: a
//! 2xx means *roll back now*.
//!
//! The deployment is `metadata.deployment` when given, else the newest
//! deployment holding the ref `kubernetes: NAMESPACE/NAME` of the Canary.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{findings, must_stop, standing};
use crate::decision::{Envelope, Finding};
use crate::records::model::{Deployment, EventDetail};
use crate::records::{Decide, DeploymentSelector, DeploymentStatus, RecordError, Records};

/// Flagger's hook types (`pkg/apis/flagger/v1beta1/canary.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    ConfirmRollout,
    PreRollout,
    Rollout,
    ConfirmTrafficIncrease,
    ConfirmPromotion,
    PostRollout,
    Rollback,
    Event,
}

impl Hook {
    pub const ALL: [Hook; 8] = [
        Hook::ConfirmRollout,
        Hook::PreRollout,
        Hook::Rollout,
        Hook::ConfirmTrafficIncrease,
        Hook::ConfirmPromotion,
        Hook::PostRollout,
        Hook::Rollback,
        Hook::Event,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Hook::ConfirmRollout => "confirm-rollout",
            Hook::PreRollout => "pre-rollout",
            Hook::Rollout => "rollout",
            Hook::ConfirmTrafficIncrease => "confirm-traffic-increase",
            Hook::ConfirmPromotion => "confirm-promotion",
            Hook::PostRollout => "post-rollout",
            Hook::Rollback => "rollback",
            Hook::Event => "event",
        }
    }

    pub fn parse(text: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.as_str() == text)
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `CanaryWebhookPayload` as Flagger sends it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Payload {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub checksum: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl Payload {
    /// The deployment this payload is about: `metadata.deployment`, else
    /// the ref `NAMESPACE/NAME`. A payload without name or namespace is
    /// not Flagger's.
    pub fn selector(&self) -> Result<DeploymentSelector, RecordError> {
        for (field, value) in [("/name", &self.name), ("/namespace", &self.namespace)] {
            if value.trim().is_empty() {
                return Err(RecordError::invalid(
                    field,
                    "required: Flagger sends the Canary's name and namespace",
                ));
            }
        }
        match self.metadata.get("deployment").map(|s| s.trim()) {
            Some(id) if !id.is_empty() => Ok(DeploymentSelector::Id(id.to_string())),
            _ => DeploymentSelector::kubernetes(&format!("{}/{}", self.namespace, self.name))
                .map_err(|e| match e {
                    RecordError::Invalid { message, .. } => {
                        RecordError::invalid("/namespace", message)
                    }
                    other => other,
                }),
        }
    }
}

/// The status a hook answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// 200: the hook passes (for `rollback`: roll back now).
    Pass,
    /// 403: the hook fails. What Flagger then does depends on the hook
    /// (confirm-* wait; pre-rollout and rollout count a failed check and
    /// roll back at `threshold`): docs/integrations/flagger.md#hooks.
    Refuse,
    /// 409: for `rollback` only — no reason to roll back.
    NoRollback,
}

impl Verdict {
    pub fn status(self) -> u16 {
        match self {
            Verdict::Pass => 200,
            Verdict::Refuse => 403,
            Verdict::NoRollback => 409,
        }
    }
}

/// A hook's answer: its status and the body Flagger records.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    #[serde(skip)]
    pub verdict: Verdict,
    pub hook: &'static str,
    /// Why, in one line.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentStatus>,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
}

impl Answer {
    fn about(hook: Hook, verdict: Verdict, d: &Deployment, message: String) -> Self {
        Answer {
            verdict,
            hook: hook.as_str(),
            message,
            deployment_id: Some(d.id.clone()),
            stage: Some(d.stage.clone()),
            traffic_percent: Some(d.traffic_percent),
            status: Some(d.status),
            findings: Vec::new(),
            decision_id: None,
        }
    }

    fn on(mut self, envelope: &Envelope) -> Self {
        self.findings = findings(envelope);
        self.decision_id = Some(envelope.decision_id.clone());
        self
    }
}

/// Answers one webhook call. `post-rollout` and `event` are recorded in
/// the deployment's history; every other hook only reads.
pub async fn answer(
    records: &Records,
    decide: &impl Decide,
    actor: &str,
    hook: Hook,
    payload: &Payload,
) -> Result<Answer, RecordError> {
    let selector = payload.selector()?;
    let d = match records.find_deployment(&selector).await {
        Ok(d) => d,
        // Before the gate allowed a deployment there is nothing to roll
        // out: the confirmations refuse (Flagger waits) rather than err.
        Err(RecordError::NotFound(m))
            if matches!(hook, Hook::ConfirmRollout | Hook::PreRollout) =>
        {
            return Ok(Answer {
                verdict: Verdict::Refuse,
                hook: hook.as_str(),
                message: format!(
                    "no deployment for canary {}/{}: the gate has not allowed a release for it ({m})",
                    payload.namespace, payload.name
                ),
                deployment_id: None,
                stage: None,
                traffic_percent: None,
                status: None,
                findings: Vec::new(),
                decision_id: None,
            });
        }
        Err(e) => return Err(e),
    };
    let by_id = DeploymentSelector::Id(d.id.clone());
    match hook {
        Hook::PostRollout | Hook::Event => {
            let reason = payload.metadata.get("eventMessage").cloned().or_else(|| {
                (!payload.phase.is_empty()).then(|| format!("phase {}", payload.phase))
            });
            let detail = EventDetail {
                controller: Some("flagger".into()),
                hook: Some(hook.as_str().into()),
                phase: bounded(&payload.phase),
                checksum: bounded(&payload.checksum),
                ..EventDetail::default()
            };
            records.record_report(actor, &d.id, detail, reason).await?;
            Ok(Answer::about(
                hook,
                Verdict::Pass,
                &d,
                format!("recorded in the history of {}", standing(&d)),
            ))
        }
        Hook::ConfirmRollout | Hook::PreRollout => {
            let m = records.evaluate_monitoring(decide, actor, &by_id).await?;
            let d = &m.deployment;
            if d.status == DeploymentStatus::Active {
                Ok(Answer::about(
                    hook,
                    Verdict::Pass,
                    d,
                    format!("the gate allowed it: {}", standing(d)),
                )
                .on(&m.decision))
            } else {
                Ok(Answer::about(
                    hook,
                    Verdict::Refuse,
                    d,
                    format!("no active deployment: {}", standing(d)),
                )
                .on(&m.decision))
            }
        }
        Hook::Rollout | Hook::ConfirmTrafficIncrease => {
            let m = records.evaluate_monitoring(decide, actor, &by_id).await?;
            let d = &m.deployment;
            let verdict = if must_stop(d, &m.decision) {
                Verdict::Refuse
            } else {
                Verdict::Pass
            };
            let message = format!("{}; monitoring says {}", standing(d), m.decision.summary());
            Ok(Answer::about(hook, verdict, d, message).on(&m.decision))
        }
        Hook::ConfirmPromotion => {
            let m = records.evaluate_monitoring(decide, actor, &by_id).await?;
            let d = &m.deployment;
            let last = d.last_stage().unwrap_or_default().to_string();
            let (verdict, message) = if must_stop(d, &m.decision) {
                (
                    Verdict::Refuse,
                    format!("{}; monitoring says {}", standing(d), m.decision.summary()),
                )
            } else if d.stage.trim() == last {
                (
                    Verdict::Pass,
                    format!("{}: the plan's last stage is authorised", standing(d)),
                )
            } else {
                (
                    Verdict::Refuse,
                    format!(
                        "{}: promotion needs the plan's last stage '{last}' to be authorised",
                        standing(d)
                    ),
                )
            };
            Ok(Answer::about(hook, verdict, d, message).on(&m.decision))
        }
        Hook::Rollback => {
            let m = records.evaluate_monitoring(decide, actor, &by_id).await?;
            let d = &m.deployment;
            let (verdict, message) = if must_stop(d, &m.decision) {
                (
                    Verdict::Pass,
                    format!(
                        "roll back: {}; monitoring says {}",
                        standing(d),
                        m.decision.summary()
                    ),
                )
            } else {
                (
                    Verdict::NoRollback,
                    format!(
                        "no rollback: {}; monitoring says {}",
                        standing(d),
                        m.decision.summary()
                    ),
                )
            };
            Ok(Answer::about(hook, verdict, d, message).on(&m.decision))
        }
    }
}

/// A controller's short field, kept when present and bounded.
fn bounded(text: &str) -> Option<String> {
    let t: String = text.chars().filter(|c| !c.is_control()).take(128).collect();
    (!t.is_empty()).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flagger_hook_type_parses_and_nothing_else() {
        for h in Hook::ALL {
            assert_eq!(Hook::parse(h.as_str()), Some(h));
        }
        assert_eq!(Hook::parse("pre_rollout"), None);
        assert_eq!(Hook::parse(""), None);
    }

    #[test]
    fn a_payload_names_its_deployment_by_metadata_or_by_ref() {
        let mut p = Payload {
            name: "credit-scoring".into(),
            namespace: "risk".into(),
            ..Payload::default()
        };
        assert_eq!(
            p.selector().unwrap(),
            DeploymentSelector::Ref {
                key: "kubernetes".into(),
                value: "risk/credit-scoring".into()
            }
        );
        p.metadata.insert("deployment".into(), "01JABC".into());
        assert_eq!(
            p.selector().unwrap(),
            DeploymentSelector::Id("01JABC".into())
        );
        p.namespace.clear();
        assert!(matches!(
            p.selector(),
            Err(RecordError::Invalid { path, .. }) if path == "/namespace"
        ));
    }
}
