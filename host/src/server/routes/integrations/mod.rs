//! Rollout controller adapters over HTTP: parsing and serialising only;
//! what each answer means is decided in `crate::integrations` from the
//! route and the read-only evaluations (docs/integrations/).
//!
//! Controllers call with the `gateway` role (operators may too): the same
//! role gateways use to ask for decisions, because the adapters answer
//! the same questions. Judgements are never 5xx: bad input is a 4xx that
//! says what is wrong, and only an unavailable store or log is a 503.

pub(crate) mod argo;
pub(crate) mod flagger;
pub(crate) mod github;
pub(crate) mod kubernetes;

use crate::auth::Role;

/// Who may call the adapters.
pub(crate) const CONTROLLERS: &[Role] = &[Role::Gateway, Role::Operator];
