//! HTTP handlers, one module per resource.

pub(crate) mod bundles;
pub(crate) mod decisions;
pub(crate) mod evaluations;
pub(crate) mod health;
pub(crate) mod integrations;
pub(crate) mod log;
pub(crate) mod notice;
pub(crate) mod records;
mod respond;
