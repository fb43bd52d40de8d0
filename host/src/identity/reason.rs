//! Why a workload identity token was refused.
//!
//! Every refusal is a 401 whose error code is one of these, so a pipeline
//! owner can tell an expired token from a mis-set audience without the
//! service ever echoing the token back (docs/identities.md#reason-codes).

/// A refused token, by cause. The order is the order of the checks: when
/// several identities share an issuer, the refusal reported is the one
/// that got furthest (a token whose signature is good but whose claims
/// match no entry says `token.claims`, not `token.signature`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Reason {
    /// Not a compact JWS, bad base64url or JSON, a `crit` header, too long.
    Malformed,
    /// `none`, HS*, any algorithm other than RS256/ES256/EdDSA, or an
    /// algorithm that does not match the key's type.
    Algorithm,
    /// No `[[identities]]` entry names the token's `iss`.
    Issuer,
    /// The issuer's key set could not be had (endpoint down with nothing
    /// cached, or cached keys past `jwks_max_age_s`, or an answer refused).
    JwksUnavailable,
    /// No key in the issuer's key set has the token's `kid`, even after a
    /// refresh.
    KeyUnknown,
    /// The signature does not verify.
    Signature,
    /// `exp` is past (beyond the allowed skew), or missing.
    Expired,
    /// `nbf` or `iat` is in the future (beyond the allowed skew).
    NotYetValid,
    /// No configured audience is in `aud`.
    Audience,
    /// The claims do not match the entry's `claims`, or the subject
    /// template names a claim the token lacks.
    Claims,
}

impl Reason {
    /// The error code in the 401 body.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Reason::Malformed => "token.malformed",
            Reason::Algorithm => "token.algorithm",
            Reason::Issuer => "token.issuer",
            Reason::JwksUnavailable => "token.jwks_unavailable",
            Reason::KeyUnknown => "token.key_unknown",
            Reason::Signature => "token.signature",
            Reason::Expired => "token.expired",
            Reason::NotYetValid => "token.not_yet_valid",
            Reason::Audience => "token.audience",
            Reason::Claims => "token.claims",
        }
    }
}

/// A refusal: its code and a message that explains it without quoting the
/// token (claim names and configured values only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.code())]
pub(crate) struct Refusal {
    pub reason: Reason,
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(reason: Reason, message: impl Into<String>) -> Self {
        Refusal {
            reason,
            message: message.into(),
        }
    }
}
