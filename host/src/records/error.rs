//! Why a records operation was refused. Each variant maps to one HTTP
//! status; nothing is written when one is returned.

use super::store::StoreError;
use crate::decision::Envelope;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{0}")]
    Forbidden(String),
    /// The policy said no to creating a deployment; the decision is logged.
    #[error("{message}")]
    Denied {
        message: String,
        decision: Box<Envelope>,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// The request was refused before any policy saw it.
impl From<crate::decision::RequestError> for RecordError {
    fn from(e: crate::decision::RequestError) -> Self {
        RecordError::Invalid {
            path: e.path,
            message: e.message,
        }
    }
}
