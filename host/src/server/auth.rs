//! Bearer tokens and roles.
//!
//! The configuration holds each token's SHA-256, never the token, so a
//! leaked config file grants nothing. A presented token is hashed and
//! looked up; the holder's name becomes the actor of what it does.
//! Without any token configured the service runs in open development mode:
//! loopback only, every caller has every role.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};

use super::config::{Role, TokenConfig};
use super::error::ApiError;

/// Who is calling, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub roles: Vec<Role>,
    /// The accountable role recorded on authorisations.
    pub title: Option<String>,
}

impl Caller {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// 403 naming the missing role unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.has(*r)) {
            return Ok(());
        }
        let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "'{}' lacks the role this needs: {}",
                self.name,
                wanted.join(" or ")
            ),
        ))
    }
}

/// The configured tokens and workload identities.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    by_hash: HashMap<String, Caller>,
    /// `[[identities]]`: a bearer value shaped like a JWT is checked there.
    identities: Arc<crate::identity::Identities>,
}

impl Auth {
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
        Auth {
            by_hash,
            identities: Arc::default(),
        }
    }

    /// Adds the workload identities (docs/identities.md).
    pub fn with_identities(mut self, identities: crate::identity::Identities) -> Self {
        self.identities = Arc::new(identities);
        self
    }

    /// No tokens and no identities: open development mode.
    pub fn is_open(&self) -> bool {
        self.by_hash.is_empty() && self.identities.is_empty()
    }

    /// The caller behind a request's `Authorization` header (401 if absent
    /// or unknown).
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if self.is_open() {
            return Ok(Caller {
                name: anonymous_name(headers),
                roles: Role::ALL.to_vec(),
                title: None,
            });
        }
        let unauthorised = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorised("missing Authorization: Bearer <token>"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorised("the Authorization header must be 'Bearer <token>'"))?;
        if crate::identity::jwt::looks_like_jwt(token) {
            return self.identity(token);
        }
        let hash = hex::encode(Sha256::digest(token.as_bytes()));
        self.by_hash
            .get(&hash)
            .cloned()
            .ok_or_else(|| unauthorised("unknown token"))
    }
}

impl Auth {
    /// A JWT, checked against `[[identities]]`: a refusal is 401 with the
    /// reason's code (`token.expired`, ...), never quoting the token.
    fn identity(&self, token: &str) -> Result<Caller, ApiError> {
        match self.identities.verify(token) {
            Ok(v) => Ok(Caller {
                name: v.actor,
                roles: v.roles,
                title: v.title,
            }),
            Err(r) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                r.reason.code(),
                r.message,
            )),
        }
    }
}

/// In open development mode a caller may name itself with `X-Actor`, so
/// that separation of duties can be exercised without tokens; the name is
/// recorded as given. With tokens configured the header is ignored.
fn anonymous_name(headers: &HeaderMap) -> String {
    headers
        .get("x-actor")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(|v| format!("{v} (unauthenticated)"))
        .unwrap_or_else(|| "anonymous".into())
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

    fn auth() -> (Auth, String) {
        let (token, sha256) = new_token();
        let a = Auth::new(&[TokenConfig {
            name: "ci".into(),
            sha256,
            roles: vec![Role::Gateway],
            title: None,
        }]);
        (a, token)
    }

    #[test]
    fn a_known_token_names_its_holder_and_roles() {
        let (a, token) = auth();
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        let c = a.caller(&h).unwrap();
        assert_eq!(c.name, "ci");
        assert!(c.require(&[Role::Gateway]).is_ok());
        assert_eq!(
            c.require(&[Role::Publisher]).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn missing_malformed_or_unknown_tokens_are_401() {
        let (a, _) = auth();
        assert_eq!(
            a.caller(&HeaderMap::new()).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(a.caller(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
        h.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert_eq!(a.caller(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn without_tokens_everyone_has_every_role() {
        let c = Auth::default().caller(&HeaderMap::new()).unwrap();
        assert!(Role::ALL.iter().all(|r| c.has(*r)));
    }
}
