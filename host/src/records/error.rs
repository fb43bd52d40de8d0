//! Why a records operation was refused. The caller (the HTTP routes, the
//! CLI) maps each variant to its status; nothing is written when one is
//! returned, except the decision log entry of a denied gate.

use super::store::StoreError;
use crate::decision::Envelope;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No such record.
    #[error("{0}")]
    NotFound(String),
    /// The record exists already, or changed since the caller read it.
    #[error("{0}")]
    Conflict(String),
    /// A concurrent request with the same `Idempotency-Key` committed
    /// first; its stored answer is the answer.
    #[error("a concurrent request with the same Idempotency-Key won")]
    IdempotencyRace,
    /// Well-formed input with a value outside its domain, at `path`.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// The caller may not say this (e.g. authorise in another's name).
    #[error("{0}")]
    Forbidden(String),
    /// The policy said no to creating a deployment; the decision is logged.
    #[error("{message}")]
    Denied {
        message: String,
        decision: Box<Envelope>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A decision that changes nothing (a read-only evaluation) could not
    /// be logged; it is not answered.
    #[error(transparent)]
    Log(#[from] super::log::LogError),
}

impl From<sqlx::Error> for RecordError {
    fn from(e: sqlx::Error) -> Self {
        RecordError::Store(StoreError::Query(e))
    }
}

impl RecordError {
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        RecordError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A domain check of the decision decoder failed on a record (a plan's
/// percentages, a release's hours).
impl From<crate::decision::RequestError> for RecordError {
    fn from(e: crate::decision::RequestError) -> Self {
        RecordError::Invalid {
            path: e.path,
            message: e.message,
        }
    }
}
