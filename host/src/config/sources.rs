//! `[sources]`: how remote bundle sources are polled.

use serde::Deserialize;

/// How remote bundle sources (`url`, `oci`) are polled (docs/distribution.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    /// Between polls of a healthy source; each wait is drawn uniformly
    /// from 80–120 % of it, so a fleet started together spreads out.
    pub poll_interval_ms: u64,
    /// Longest wait after failures: the wait doubles from the poll interval
    /// with each consecutive failure, up to this, with jitter (50–100 %).
    pub max_backoff_ms: u64,
    /// A source without a successful poll for this long is flagged stale
    /// in status and metrics (the active bundle keeps serving).
    pub stale_after_ms: u64,
    /// Budget of one request to a source.
    pub timeout_ms: u64,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            poll_interval_ms: 30_000,
            max_backoff_ms: 300_000,
            stale_after_ms: 600_000,
            timeout_ms: 30_000,
        }
    }
}
