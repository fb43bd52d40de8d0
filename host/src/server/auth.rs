//! The HTTP side of authentication: the bearer token read from a
//! request's `Authorization` header and looked up in the token table
//! ([`crate::auth`]).
//!
//! Without any token configured the service runs in open development mode:
//! loopback only, every caller has every role.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};

use super::error::ApiError;
use crate::auth::{Caller, Forbidden, Role, TokenConfig, Tokens};

impl From<Forbidden> for ApiError {
    fn from(e: Forbidden) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
    }
}

/// [`Caller::permits`] answered the HTTP way: 403 naming the missing role.
pub(crate) trait RequireRole {
    fn require(&self, roles: &[Role]) -> Result<(), ApiError>;
}

impl RequireRole for Caller {
    fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        Ok(self.permits(roles)?)
    }
}

/// The configured tokens and workload identities, as requests present them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Auth {
    tokens: Tokens,
    /// `[[identities]]`: a bearer value shaped like a JWT is checked there.
    identities: Arc<crate::identity::Identities>,
}

impl Auth {
    pub(crate) fn new(tokens: &[TokenConfig]) -> Self {
        Auth {
            tokens: Tokens::new(tokens),
            identities: Arc::default(),
        }
    }

    /// Adds the workload identities (docs/identities.md).
    pub(crate) fn with_identities(mut self, identities: crate::identity::Identities) -> Self {
        self.identities = Arc::new(identities);
        self
    }

    /// No tokens and no identities: open development mode.
    pub(crate) fn is_open(&self) -> bool {
        self.tokens.is_open() && self.identities.is_empty()
    }

    /// The caller behind a request's `Authorization` header (401 if absent
    /// or unknown).
    pub(crate) fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
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
        self.tokens
            .holder(token)
            .ok_or_else(|| unauthorised("unknown token"))
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::new_token;

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
