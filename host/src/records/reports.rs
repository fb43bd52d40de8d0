//! What rollout controllers report about a deployment's rollout (a
//! Flagger `post-rollout` or `event` webhook): a `reported` history
//! event, sealed like every event, that changes no state.

use super::deployments::deployment_row;
use super::model::{EventDetail, EventKind};
use super::write::Write;
use super::{RecordError, Records};
use crate::decision::Timestamp;

/// Longest reason kept from a report: an event message, one line.
pub(super) const MAX_REASON: usize = 1024;

impl Records {
    /// Appends a `reported` event to the deployment's history; returns its
    /// sequence number. The deployment's state and version are unchanged.
    pub async fn record_report(
        &self,
        actor: &str,
        id: &str,
        detail: EventDetail,
        reason: Option<String>,
    ) -> Result<i64, RecordError> {
        let reason = reason.map(|r| {
            let mut r: String = r.chars().filter(|c| !c.is_control()).collect();
            if r.len() > MAX_REASON {
                let mut end = MAX_REASON;
                while !r.is_char_boundary(end) {
                    end -= 1;
                }
                r.truncate(end);
            }
            r
        });
        let mut w = Write::begin(&self.store, actor, Timestamp::now(), None).await?;
        let d = deployment_row(w.conn(), id).await?;
        let seq = self
            .write_event(&mut w, &d, EventKind::Reported, None, reason, &detail)
            .await?;
        w.commit(None, &()).await?;
        Ok(seq)
    }
}
