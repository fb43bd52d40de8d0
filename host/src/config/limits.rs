//! `[limits]` (request, sandbox and archive limits) and `[trust]` (the
//! bundle trust store).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::decision::DecodeLimits;
use crate::policy::Isolation;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Directory of trusted public keys (`*.pub`), re-read at every
    /// activation so keys can be rotated without a restart.
    pub dir: PathBuf,
    /// Valid signatures by distinct trusted keys a bundle needs (k of n).
    pub min_signatures: usize,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            dir: PathBuf::from("data/keys"),
            min_signatures: 1,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest decision request body (413 above).
    pub body_bytes: usize,
    /// Largest bundle upload (413 above).
    pub upload_bytes: usize,
    /// Wall-clock budget of one policy call.
    pub decision_deadline_ms: u64,
    /// Largest linear memory of one policy instance.
    pub memory_mib: usize,
    /// Requests in flight at once; more get 503 with `Retry-After`
    /// instead of queueing without bound.
    pub concurrency: usize,
    /// Budget of one whole HTTP request (503 when exceeded).
    pub request_timeout_ms: u64,
    /// `warm` (reuse instances) or `fresh` (one instance per decision).
    pub isolation: Isolation,
    /// How often bundle sources are checked for new versions.
    pub watch_interval_ms: u64,
    /// Most items in any one list of a decision request (422 above).
    pub max_list_len: usize,
    /// Most list items in a whole decision request, nested lists included
    /// (422 above).
    pub max_total_items: usize,
    /// Largest file inside a bundle archive, uncompressed, in MiB (the
    /// component is the largest; a componentize-py one is ~19 MB).
    pub bundle_member_mib: u64,
}

impl LimitsConfig {
    /// The archive limits bundles are read with: the member limit as
    /// configured, the total and compressed limits raised with it when
    /// it exceeds what they allow.
    pub fn archive(&self) -> crate::bundle::ArchiveLimits {
        let d = crate::bundle::ArchiveLimits::DEFAULT;
        let member = self.bundle_member_mib << 20;
        crate::bundle::ArchiveLimits {
            max_member_bytes: member,
            max_total_bytes: d.max_total_bytes.max(member.saturating_mul(3)),
            max_archive_bytes: d.max_archive_bytes.max(member.saturating_mul(2)),
            max_members: d.max_members,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        // The sandbox's own defaults live in `policy::Limits` alone.
        let sandbox = crate::policy::Limits::default();
        LimitsConfig {
            body_bytes: 1 << 20,
            upload_bytes: 64 << 20,
            decision_deadline_ms: sandbox.deadline_ms(),
            memory_mib: sandbox.memory_mib(),
            concurrency: 256,
            request_timeout_ms: 10_000,
            isolation: Isolation::default(),
            watch_interval_ms: 2_000,
            max_list_len: DecodeLimits::default().max_list_len,
            max_total_items: DecodeLimits::default().max_total_items,
            bundle_member_mib: crate::bundle::ArchiveLimits::DEFAULT.max_member_bytes >> 20,
        }
    }
}

impl LimitsConfig {
    /// The limits decision requests are decoded under.
    pub fn decode(&self) -> DecodeLimits {
        DecodeLimits {
            max_list_len: self.max_list_len,
            max_total_items: self.max_total_items,
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}
