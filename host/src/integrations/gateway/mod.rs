//! The per-request exposure check for serving gateways
//! (docs/integrations/gateways.md), without HTTP: the route table, the
//! subject's bucket and the answer. The handler
//! (`server::exposure`) reads the request's headers into an [`Ask`] and
//! writes the [`Answer`] back.
//!
//! nginx `auth_request` and Envoy `ext_authz` (HTTP service) ask before
//! every inference request whether this caller may reach the new release.
//! The answer comes from memory: a table of the active deployments' routes
//! (and of which deployment each Kubernetes ref names), rebuilt from the
//! records every `refresh_ms` (default 250 ms) on every replica, and at
//! once on the replica that commits a transition. So a rollback anywhere
//! stops admissions everywhere within `refresh_ms` plus one query, and a
//! request costs one HMAC and no database access at all.
//!
//! A subject's bucket is HMAC-SHA256(key, deployment id ‖ 0 ‖ subject)
//! reduced to 0..9,999; the subject is admitted while its bucket is below
//! `traffic_percent × 100`. A bucket does not change as the stage does, so
//! a subject admitted at 5 % stays admitted at 25 % and 100 %. The key is a
//! server secret (`[integrations.authz] key_file`), the same on every
//! replica and across restarts, so that callers cannot compute which
//! subjects land in the pilot and every replica assigns a subject alike.
//!
//! The trust model: the gateway, not the client, names the subject (an
//! identity the gateway authenticated), and the answer's detail (which
//! names the bucket) is for the gateway's logs, never the client: a client
//! that could choose its subject, or read its bucket, could search for
//! names that land in the pilot. The examples in examples/gateways/ hold
//! to it and tests/gateway_nginx.rs proves it on a real nginx.

mod key;
mod table;

pub use key::KeyFileError;
pub use table::{Answer, Ask, AskError, Exposure, Route};

/// Buckets a subject can fall in: 0..9,999, so traffic is honoured to a
/// hundredth of a percent.
pub const BUCKETS: u64 = 10_000;

/// `[integrations.authz]`: the settings live with the rest of the
/// configuration (config/integrations.rs).
pub use crate::config::AuthzConfig;
