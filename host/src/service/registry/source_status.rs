//! The status of a slot's remote source (`url`, `oci`), kept with the
//! slot so that `GET /v1/bundles/{name}` and the metrics read it without
//! asking the poller; the poller (`service::remote`) writes it.

use std::time::Duration;

use serde::Serialize;

use crate::decision::Timestamp;

/// What one poll found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PollResult {
    /// A new bundle was activated.
    Changed,
    /// The source offers what was already seen.
    Unchanged,
    /// The source could not be asked (down, refused credentials, bad
    /// answer status): nothing changed.
    Error,
    /// The source offers a bundle that was refused (verification, version
    /// floor, digest mismatch, wrong artifact).
    Rejected,
}

impl PollResult {
    pub(crate) const ALL: [&'static str; 4] = ["changed", "unchanged", "error", "rejected"];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PollResult::Changed => "changed",
            PollResult::Unchanged => "unchanged",
            PollResult::Error => "error",
            PollResult::Rejected => "rejected",
        }
    }

    pub(crate) fn is_success(self) -> bool {
        matches!(self, PollResult::Changed | PollResult::Unchanged)
    }
}

/// A source's status, as `GET /v1/bundles/{name}` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SourceStatus {
    /// `url` or `oci`.
    pub kind: &'static str,
    /// The URL or reference, credentials redacted.
    pub location: String,
    pub poll_interval_ms: u64,
    pub stale_after_ms: u64,
    pub last_poll_at: Option<Timestamp>,
    pub last_result: Option<PollResult>,
    /// Why the last poll failed or its candidate was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The last poll that ended `changed` or `unchanged`.
    pub last_success_at: Option<Timestamp>,
    /// `url`: the validators of the last bundle fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// `oci`: the manifest digest of the last bundle accepted from the tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    pub consecutive_failures: u32,
    /// The wait before the next poll, when it is a backoff after failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    pub next_poll_at: Option<Timestamp>,
    /// No successful poll for longer than `stale_after_ms` (since the
    /// service started, if there was none). The active bundle serves on.
    pub stale: bool,
}

/// A source's state, kept in its bundle's slot.
#[derive(Debug, Clone)]
pub(crate) struct SourceState {
    pub(crate) status: SourceStatus,
    pub(crate) started: Timestamp,
}

impl SourceState {
    pub(crate) fn new(
        kind: &'static str,
        location: String,
        interval: Duration,
        stale: Duration,
    ) -> Self {
        SourceState {
            status: SourceStatus {
                kind,
                location,
                poll_interval_ms: interval.as_millis() as u64,
                stale_after_ms: stale.as_millis() as u64,
                last_poll_at: None,
                last_result: None,
                last_error: None,
                last_success_at: None,
                etag: None,
                last_modified: None,
                manifest_digest: None,
                consecutive_failures: 0,
                backoff_ms: None,
                next_poll_at: None,
                stale: false,
            },
            started: Timestamp::now(),
        }
    }

    pub(crate) fn is_stale(&self, now: Timestamp) -> bool {
        let since = self.status.last_success_at.unwrap_or(self.started);
        now.millis().saturating_sub(since.millis()) > self.status.stale_after_ms as i64
    }

    /// The status now (staleness is judged at the time of asking).
    pub(crate) fn status(&self) -> SourceStatus {
        SourceStatus {
            stale: self.is_stale(Timestamp::now()),
            ..self.status.clone()
        }
    }
}
