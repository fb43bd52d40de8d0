//! `[webhooks]`: delivery of escalation webhooks.

use serde::Deserialize;

/// Delivery of escalation webhooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    pub enabled: bool,
    /// How often pending deliveries are looked for.
    pub tick_ms: u64,
    /// How long a claimed delivery is reserved for this replica.
    pub lease_ms: u64,
    /// Internal destinations receivers may point at: CIDRs, addresses or
    /// host names. Public addresses are always allowed; loopback, private
    /// and link-local ones only when listed here.
    pub allow: Vec<String>,
    /// How long one delivery attempt may take.
    pub timeout_ms: u64,
    /// Deliveries in flight at once, across receivers.
    pub concurrency: usize,
    /// Deliveries in flight at once to one receiver: a slow or dead
    /// receiver holds this many, never the others' turn.
    pub per_receiver: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            enabled: true,
            tick_ms: 250,
            lease_ms: 30_000,
            allow: Vec::new(),
            timeout_ms: 10_000,
            concurrency: 32,
            per_receiver: 2,
        }
    }
}
