//! Decisions: the JSON requests (docs/decisions.md#requests), their
//! conversion to and from the WIT records a policy sees, and the response
//! envelope.

pub mod combine;
pub mod controls;
pub mod convert;
pub mod decode;
#[cfg(test)]
mod decode_properties;
pub mod limits;
pub mod request;
mod strict;
pub mod timestamp;
pub mod verdict;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

pub use controls::Controls;
pub use decode::{RequestError, RequestErrorKind, decode, decode_with};
pub use limits::DecodeLimits;
pub use request::Request;
pub use timestamp::Timestamp;
pub use verdict::{Envelope, Finding, FindingSeverity, Obligation, Outcome, PolicyRef, Verdict};

/// The three decisions (docs/decisions.md#the-three-decisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Gate,
    Progression,
    Monitoring,
}

impl DecisionKind {
    pub const ALL: [DecisionKind; 3] = [
        DecisionKind::Gate,
        DecisionKind::Progression,
        DecisionKind::Monitoring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Gate => "gate",
            DecisionKind::Progression => "progression",
            DecisionKind::Monitoring => "monitoring",
        }
    }
}

impl fmt::Display for DecisionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown decision name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown decision '{0}': expected gate, progression or monitoring")]
pub struct UnknownDecision(pub String);

impl<'de> serde::Deserialize<'de> for DecisionKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for DecisionKind {
    type Err = UnknownDecision;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gate" => Ok(DecisionKind::Gate),
            "progression" => Ok(DecisionKind::Progression),
            "monitoring" => Ok(DecisionKind::Monitoring),
            other => Err(UnknownDecision(other.to_string())),
        }
    }
}
