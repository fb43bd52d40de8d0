//! Who may do what: the roles a caller can hold and the static token table
//! (`[[tokens]]`), apart from how a token arrives (the HTTP extractor in
//! `server::auth` reads it from the `Authorization` header).
//!
//! The configuration holds each token's SHA-256, never the token, so a
//! leaked config file grants nothing. A presented token is hashed and
//! looked up; the holder's name becomes the actor of what it does.

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Roles a token may grant (docs/security.md, "Access control").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Uploads bundles.
    Publisher,
    /// Asks for decisions, reads routes.
    Gateway,
    /// Reads everything.
    Auditor,
    /// Records authorisations and risk acceptances.
    Approver,
    /// Posts observations, rolls back and suspends.
    Operator,
    /// Overrides a bundle's version floor (`force=true` on an upload):
    /// a downgrade, or other content under the same version. Kept apart
    /// from `publisher` so that a leaked publishing token cannot roll a
    /// policy back to an older, laxer signed version.
    BundleAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Gateway => "gateway",
            Role::Auditor => "auditor",
            Role::Approver => "approver",
            Role::Operator => "operator",
            Role::BundleAdmin => "bundle_admin",
        }
    }

    pub const ALL: [Role; 6] = [
        Role::Publisher,
        Role::Gateway,
        Role::Auditor,
        Role::Approver,
        Role::Operator,
        Role::BundleAdmin,
    ];
}

/// A bearer token, stored as its SHA-256 so the config file holds no secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token: recorded as the actor of what it does.
    pub name: String,
    /// Lowercase hex SHA-256 of the token (`stagegate token` prints it).
    pub sha256: String,
    pub roles: Vec<Role>,
    /// The holder's accountable role, recorded on authorisations they give
    /// (e.g. "Head of AI Risk").
    #[serde(default)]
    pub title: Option<String>,
}

/// A `[[tokens]]` entry that cannot be used, naming which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenConfigError {
    #[error(
        "tokens[{index}] ('{name}'): sha256 must be 64 hex digits (the token's SHA-256, not the token)"
    )]
    NotASha256 { index: usize, name: String },
    #[error("tokens[{index}] ('{name}'): roles must not be empty")]
    NoRoles { index: usize, name: String },
    #[error("tokens[{index}]: token names must be non-empty and unique")]
    Name { index: usize },
}

/// Checks every `[[tokens]]` entry: a hex SHA-256, at least one role, a
/// unique non-empty name.
pub fn validate(tokens: &[TokenConfig]) -> Result<(), TokenConfigError> {
    let mut names = std::collections::BTreeSet::new();
    for (index, t) in tokens.iter().enumerate() {
        if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenConfigError::NotASha256 {
                index,
                name: t.name.clone(),
            });
        }
        if t.roles.is_empty() {
            return Err(TokenConfigError::NoRoles {
                index,
                name: t.name.clone(),
            });
        }
        if t.name.trim().is_empty() || !names.insert(t.name.as_str()) {
            return Err(TokenConfigError::Name { index });
        }
    }
    Ok(())
}

/// Who is calling, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub roles: Vec<Role>,
    /// The accountable role recorded on authorisations.
    pub title: Option<String>,
}

/// A caller without any of the roles an action needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{caller}' lacks the role this needs: {}", wanted.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or "))]
pub struct Forbidden {
    pub caller: String,
    pub wanted: Vec<Role>,
}

impl Caller {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Refuses, naming the missing role, unless the caller has one of
    /// `roles`.
    pub fn permits(&self, roles: &[Role]) -> Result<(), Forbidden> {
        if roles.iter().any(|r| self.has(*r)) {
            return Ok(());
        }
        Err(Forbidden {
            caller: self.name.clone(),
            wanted: roles.to_vec(),
        })
    }
}

/// The configured tokens, by their SHA-256.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: HashMap<String, Caller>,
}

impl Tokens {
    pub fn new(tokens: &[TokenConfig]) -> Self {
        let by_hash = tokens
            .iter()
            .map(|t| {
                (
                    t.sha256.to_ascii_lowercase(),
                    Caller {
                        name: t.name.clone(),
                        roles: t.roles.clone(),
                        title: t.title.clone(),
                    },
                )
            })
            .collect();
        Tokens { by_hash }
    }

    /// No tokens: open development mode (every caller has every role).
    pub fn is_open(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The holder of a presented token, if it is one of ours.
    pub fn holder(&self, token: &str) -> Option<Caller> {
        // Hex into a stack buffer: `hex::encode` builds its String a char
        // at a time, which profiled at most of this per-request lookup.
        let mut hex = [0u8; 64];
        hex::encode_to_slice(Sha256::digest(token.as_bytes()), &mut hex).ok()?;
        let hash = std::str::from_utf8(&hex).ok()?;
        self.by_hash.get(hash).cloned()
    }
}

/// A new random token and its SHA-256, for `stagegate token`.
pub fn new_token() -> (String, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("sg_{}", hex::encode(bytes));
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    (token, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_token_names_its_holder_and_an_unknown_one_nobody() {
        let (token, sha256) = new_token();
        let tokens = Tokens::new(&[TokenConfig {
            name: "ci".into(),
            sha256: sha256.to_ascii_uppercase(),
            roles: vec![Role::Gateway],
            title: None,
        }]);
        let c = tokens.holder(&token).expect("known token");
        assert_eq!(c.name, "ci");
        assert!(c.permits(&[Role::Gateway]).is_ok());
        assert_eq!(
            c.permits(&[Role::Publisher, Role::Auditor])
                .unwrap_err()
                .to_string(),
            "'ci' lacks the role this needs: publisher or auditor"
        );
        assert!(tokens.holder("sg_nope").is_none());
        assert!(!tokens.is_open());
    }

    #[test]
    fn token_entries_need_a_hash_a_role_and_a_unique_name() {
        let t = |name: &str, sha256: &str, roles: Vec<Role>| TokenConfig {
            name: name.into(),
            sha256: sha256.into(),
            roles,
            title: None,
        };
        let hash = "a".repeat(64);
        assert_eq!(validate(&[t("ci", &hash, vec![Role::Gateway])]), Ok(()));
        assert_eq!(
            validate(&[t("ci", "sg_plain", vec![Role::Gateway])]),
            Err(TokenConfigError::NotASha256 {
                index: 0,
                name: "ci".into()
            })
        );
        assert_eq!(
            validate(&[t("ci", &hash, vec![])]),
            Err(TokenConfigError::NoRoles {
                index: 0,
                name: "ci".into()
            })
        );
        assert_eq!(
            validate(&[
                t("ci", &hash, vec![Role::Gateway]),
                t("ci", &hash, vec![Role::Auditor])
            ]),
            Err(TokenConfigError::Name { index: 1 })
        );
    }
}
