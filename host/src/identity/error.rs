//! Why an identity configuration or key set was refused. Every message
//! names the key at fault (`identities[2].jwks_url`) or the pattern,
//! template, URL or key set that is wrong, because an operator reads it at
//! startup.

/// A refused `[[identities]]` entry, pattern, template or key set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// An entry's key and what is wrong with its value.
    #[error("{key}: {problem}")]
    Key { key: String, problem: String },
    /// An entry's key and the reason its value did not parse or load.
    #[error("{key}: {source}")]
    At {
        key: String,
        #[source]
        source: Box<IdentityError>,
    },
    /// A `jwks_url` that is not an https URL (or http to loopback).
    #[error("{0}")]
    Url(String),
    /// A claim pattern with syntax it does not have.
    #[error("{0}")]
    Pattern(String),
    /// A subject template that does not parse.
    #[error("{0}")]
    Template(String),
    /// A token from which the subject cannot be made.
    #[error("{0}")]
    Subject(String),
    /// A key set that could not be read or holds no usable key.
    #[error("{0}")]
    KeySet(String),
}

impl IdentityError {
    /// `source`, said of the entry's `key`.
    pub(crate) fn at(key: impl Into<String>, source: IdentityError) -> Self {
        IdentityError::At {
            key: key.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn key(key: impl Into<String>, problem: impl Into<String>) -> Self {
        IdentityError::Key {
            key: key.into(),
            problem: problem.into(),
        }
    }
}
