//! `[capacity]`: how the service keeps capacity no single client can take
//! (docs/security.md#capacity); the gate itself is `server::capacity`.

use std::time::Duration;

use serde::Deserialize;

/// `[capacity]`: the reserved pools, the limits on callers
/// without a token and the read deadlines. Defaults suit one service
/// replica; each is documented with what it protects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityConfig {
    /// Permits each reserved route class (health, exposure check,
    /// admission) holds for itself, before it shares `limits.concurrency`.
    pub reserved_concurrency: usize,
    /// Requests without a valid bearer token in flight at once, over all
    /// clients (503 beyond).
    pub unauthenticated_concurrency: usize,
    /// Requests without a valid bearer token in flight at once from one
    /// client address (429 beyond).
    pub per_peer_unauthenticated: usize,
    /// How long a client may take to send its request line and headers.
    pub header_timeout_ms: u64,
    /// How long a request without a valid bearer token may take, reading
    /// its body included (408 beyond).
    pub unauthenticated_timeout_ms: u64,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            reserved_concurrency: 16,
            unauthenticated_concurrency: 64,
            per_peer_unauthenticated: 8,
            header_timeout_ms: 10_000,
            unauthenticated_timeout_ms: 5_000,
        }
    }
}

impl CapacityConfig {
    /// Every value must be positive: a zero would refuse everything.
    pub fn validate(&self) -> Result<(), super::ConfigError> {
        for (name, value) in [
            (
                "capacity.reserved_concurrency",
                self.reserved_concurrency as u64,
            ),
            (
                "capacity.unauthenticated_concurrency",
                self.unauthenticated_concurrency as u64,
            ),
            (
                "capacity.per_peer_unauthenticated",
                self.per_peer_unauthenticated as u64,
            ),
            ("capacity.header_timeout_ms", self.header_timeout_ms),
            (
                "capacity.unauthenticated_timeout_ms",
                self.unauthenticated_timeout_ms,
            ),
        ] {
            if value == 0 {
                return Err(super::ConfigError::Zero { key: name.into() });
            }
        }
        Ok(())
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }
}
