//! in-toto Statement v1: what an attestation says (its predicate) about
//! which artifacts (its subjects, by digest).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::AttestError;

/// The Statement layer's type URI.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

/// An in-toto Statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    pub predicate_type: String,
    #[serde(default)]
    pub predicate: serde_json::Value,
}

/// A ResourceDescriptor naming an artifact by digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
}

impl Statement {
    /// A statement about one artifact, named `name`, by its sha256 `hex`.
    pub fn about_sha256(
        name: &str,
        hex: &str,
        predicate_type: &str,
        predicate: serde_json::Value,
    ) -> Self {
        Statement {
            type_: STATEMENT_V1.to_string(),
            subject: vec![Subject {
                name: name.to_string(),
                digest: BTreeMap::from([("sha256".to_string(), hex.to_string())]),
            }],
            predicate_type: predicate_type.to_string(),
            predicate,
        }
    }

    /// This statement as a DSSE envelope (in-toto payload type), signed by
    /// `key` under the hint `keyid`: an attestation.
    pub fn sign_ed25519(&self, keyid: &str, key: &ed25519_dalek::SigningKey) -> super::Envelope {
        // Strings, a map of strings and a JSON value: serialising cannot fail.
        let payload = serde_json::to_vec(self).unwrap_or_default();
        super::Envelope::sign_ed25519(super::PAYLOAD_TYPE, &payload, keyid, key)
    }

    /// Parses and checks a Statement v1 from a DSSE payload.
    pub fn parse(payload: &[u8]) -> Result<Self, AttestError> {
        let s: Statement =
            super::json_at_path(payload).map_err(|e| AttestError::Statement(e.to_string()))?;
        if s.type_ != STATEMENT_V1 {
            return Err(AttestError::Statement(format!(
                "_type is '{}', expected '{STATEMENT_V1}'",
                s.type_
            )));
        }
        if s.subject.is_empty() {
            return Err(AttestError::Statement("`subject` is empty".into()));
        }
        if s.predicate_type.is_empty() {
            return Err(AttestError::Statement("`predicateType` is empty".into()));
        }
        Ok(s)
    }

    /// Requires a subject whose `sha256` is `hex` (lowercase hex; the
    /// subject's digest is compared case-insensitively).
    pub fn require_subject(&self, hex: &str) -> Result<(), AttestError> {
        let found = self.subject.iter().any(|s| {
            s.digest
                .get("sha256")
                .is_some_and(|d| d.eq_ignore_ascii_case(hex))
        });
        if found {
            return Ok(());
        }
        Err(AttestError::WrongSubject {
            expected: format!("sha256:{hex}"),
            found: self
                .subject
                .iter()
                .map(|s| match s.digest.get("sha256") {
                    Some(d) => format!("sha256:{d}"),
                    None => format!("'{}' without sha256", s.name),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(digest: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "_type": STATEMENT_V1,
            "subject": [{"name": "model", "digest": {"sha256": digest}}],
            "predicateType": "https://example.com/p",
            "predicate": {}
        }))
        .unwrap()
    }

    #[test]
    fn a_subject_matches_its_digest_case_insensitively_and_nothing_else() {
        let s = Statement::parse(&statement(&"AB".repeat(32))).unwrap();
        assert!(s.require_subject(&"ab".repeat(32)).is_ok());
        let e = s.require_subject(&"cd".repeat(32)).unwrap_err();
        assert!(matches!(e, AttestError::WrongSubject { .. }), "{e}");
    }

    #[test]
    fn an_older_statement_type_is_refused_by_name() {
        let mut v: serde_json::Value = serde_json::from_slice(&statement("00")).unwrap();
        v["_type"] = "https://in-toto.io/Statement/v0.1".into();
        let e = Statement::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("Statement/v0.1"), "{e}");
    }
}
