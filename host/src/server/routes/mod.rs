//! HTTP handlers, one module per resource.

pub mod bundles;
pub mod decisions;
pub mod evaluations;
pub mod health;
pub mod integrations;
pub mod log;
pub mod notice;
pub mod records;
mod respond;
