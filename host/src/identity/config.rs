//! `[[identities]]`: which workload identity tokens are accepted, and as
//! whom (docs/identities.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;

use super::claims::{ClaimPattern, SubjectTemplate};
use super::error::IdentityError;
use crate::auth::Role;

/// One accepted kind of workload identity token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Shown in the records as `<name>:<subject>`.
    pub name: String,
    /// The exact `iss` of the tokens.
    pub issuer: String,
    /// Accepted `aud` values; at least one (a token minted for another
    /// service must not work here).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The issuer's JSON Web Key Set, as a file (re-read when a token names
    /// a key it does not hold) ...
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// ... or fetched over HTTPS (plain HTTP only to loopback).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Claims the token must carry: exact values, or globs where `*`
    /// matches within one `/`-separated segment and `**` across segments.
    /// A nested claim is named by its path: `"kubernetes.io/namespace"`.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    pub roles: Vec<Role>,
    /// What the records call the actor, from the token's claims:
    /// `"{repository}@{ref}"`. Default `"{sub}"`.
    #[serde(default)]
    pub subject: Option<String>,
    /// The holder's accountable role, recorded on authorisations.
    #[serde(default)]
    pub title: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    #[serde(default = "defaults::leeway_s")]
    pub leeway_s: u64,
    /// How old fetched keys may get before the next token re-fetches them.
    #[serde(default = "defaults::jwks_refresh_s")]
    pub jwks_refresh_s: u64,
    /// How long fetched keys keep working while the endpoint cannot be
    /// reached; after that tokens are refused (`token.jwks_unavailable`).
    #[serde(default = "defaults::jwks_max_age_s")]
    pub jwks_max_age_s: u64,
    /// At most one fetch per this many seconds, whatever triggers it (an
    /// unknown `kid` included), so junk tokens cannot hammer the issuer.
    #[serde(default = "defaults::jwks_min_refresh_s")]
    pub jwks_min_refresh_s: u64,
}

pub(crate) mod defaults {
    pub(crate) fn leeway_s() -> u64 {
        60
    }
    pub(crate) fn jwks_refresh_s() -> u64 {
        3600
    }
    pub(crate) fn jwks_max_age_s() -> u64 {
        86_400
    }
    pub(crate) fn jwks_min_refresh_s() -> u64 {
        30
    }
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum JwksLocation {
    File(PathBuf),
    Url(String),
}

impl IdentityConfig {
    pub fn jwks(&self) -> Option<JwksLocation> {
        match (&self.jwks_file, &self.jwks_url) {
            (Some(f), None) => Some(JwksLocation::File(f.clone())),
            (None, Some(u)) => Some(JwksLocation::Url(u.clone())),
            _ => None,
        }
    }
}

/// Checks every entry, naming the key at fault (`identities[2].jwks_url`).
pub(crate) fn validate(identities: &[IdentityConfig]) -> Result<(), IdentityError> {
    let mut names = BTreeSet::new();
    for (i, id) in identities.iter().enumerate() {
        let at = |key: &str| format!("identities[{i}].{key}");
        if id.name.trim().is_empty() || id.name.contains(':') || !names.insert(id.name.as_str()) {
            return Err(IdentityError::key(
                at("name"),
                "names must be non-empty, unique and without ':' (records show '<name>:<subject>')",
            ));
        }
        if id.issuer.trim().is_empty() {
            return Err(IdentityError::key(at("issuer"), "must not be empty"));
        }
        if id.audiences.is_empty() || id.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(IdentityError::key(
                at("audiences"),
                "at least one non-empty audience is required (a token minted for another service must not be accepted here)",
            ));
        }
        match (&id.jwks_file, &id.jwks_url) {
            (Some(_), Some(_)) => {
                return Err(IdentityError::key(
                    at("jwks_url"),
                    "give jwks_file or jwks_url, not both",
                ));
            }
            (None, None) => {
                return Err(IdentityError::key(
                    format!("identities[{i}]"),
                    "one of jwks_file or jwks_url is required",
                ));
            }
            (None, Some(url)) => {
                check_jwks_url(url).map_err(|e| IdentityError::at(at("jwks_url"), e))?
            }
            (Some(_), None) => {}
        }
        if id.roles.is_empty() {
            return Err(IdentityError::key(at("roles"), "must not be empty"));
        }
        for (claim, pattern) in &id.claims {
            ClaimPattern::parse(claim, pattern)
                .map_err(|e| IdentityError::at(at(&format!("claims.\"{claim}\"")), e))?;
        }
        if let Some(s) = &id.subject {
            SubjectTemplate::parse(s).map_err(|e| IdentityError::at(at("subject"), e))?;
        }
        for (key, v) in [
            ("jwks_refresh_s", id.jwks_refresh_s),
            ("jwks_max_age_s", id.jwks_max_age_s),
        ] {
            if v == 0 {
                return Err(IdentityError::key(at(key), "must be at least 1"));
            }
        }
        if id.jwks_max_age_s < id.jwks_refresh_s {
            return Err(IdentityError::key(
                at("jwks_max_age_s"),
                format!(
                    "must be at least jwks_refresh_s ({} s): keys are re-read only once they are that old",
                    id.jwks_refresh_s
                ),
            ));
        }
        if id.leeway_s > 600 {
            return Err(IdentityError::key(
                at("leeway_s"),
                "at most 600 seconds (a larger skew keeps expired tokens alive)",
            ));
        }
    }
    Ok(())
}

/// HTTPS anywhere; plain HTTP only to a loopback address (a test or a
/// sidecar), since keys fetched in the clear could be swapped in transit.
pub(crate) fn check_jwks_url(url: &str) -> Result<(), IdentityError> {
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| IdentityError::Url(format!("'{url}' is not a URL: {e}")))?;
    let host = uri
        .host()
        .ok_or_else(|| IdentityError::Url(format!("'{url}' has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .map(|ip| ip.is_loopback())
                    .unwrap_or(false);
            if loopback {
                Ok(())
            } else {
                Err(IdentityError::Url(format!(
                    "'{url}': plain http is allowed only to loopback; use https"
                )))
            }
        }
        _ => Err(IdentityError::Url(format!(
            "'{url}': must be an https:// URL"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<(), String> {
        #[derive(Deserialize)]
        struct W {
            identities: Vec<IdentityConfig>,
        }
        let text = format!(
            "[[identities]]\nname = \"ci\"\nissuer = \"https://token.actions.githubusercontent.com\"\nroles = [\"operator\"]\n{extra}"
        );
        let w: W = toml::from_str(&text).map_err(|e| e.to_string())?;
        validate(&w.identities).map_err(|e| e.to_string())
    }

    #[test]
    fn a_complete_entry_is_accepted() {
        parse("audiences = [\"https://stagegate.example\"]\njwks_url = \"https://token.actions.githubusercontent.com/.well-known/jwks\"\nclaims = { repository = \"acme/*\", ref = \"refs/heads/**\" }\nsubject = \"{repository}@{ref}\"\n").unwrap();
        parse("audiences = [\"a\"]\njwks_url = \"http://127.0.0.1:9/jwks\"\n").unwrap();
        parse("audiences = [\"a\"]\njwks_url = \"http://[::1]:9/jwks\"\n").unwrap();
    }

    #[test]
    fn missing_audiences_are_refused_naming_the_key() {
        let e = parse("jwks_file = \"/x.json\"\n").unwrap_err();
        assert!(e.contains("identities[0].audiences"), "{e}");
    }

    #[test]
    fn both_jwks_sources_are_refused_naming_the_key() {
        let e = parse("audiences = [\"a\"]\njwks_file = \"/x\"\njwks_url = \"https://x/jwks\"\n")
            .unwrap_err();
        assert!(e.contains("identities[0].jwks_url"), "{e}");
    }

    #[test]
    fn plain_http_to_another_host_is_refused_naming_the_key() {
        let e =
            parse("audiences = [\"a\"]\njwks_url = \"http://issuer.example/jwks\"\n").unwrap_err();
        assert!(
            e.contains("identities[0].jwks_url") && e.contains("loopback"),
            "{e}"
        );
        let e =
            parse("audiences = [\"a\"]\njwks_url = \"ftp://issuer.example/jwks\"\n").unwrap_err();
        assert!(e.contains("identities[0].jwks_url"), "{e}");
    }

    #[test]
    fn unknown_claim_syntax_is_refused_naming_the_key() {
        for bad in ["acme/[a-z]", "acme/?", "{x}", "***", ""] {
            let e = parse(&format!(
                "audiences = [\"a\"]\njwks_file = \"/x\"\nclaims = {{ repository = \"{bad}\" }}\n"
            ))
            .unwrap_err();
            assert!(
                e.contains("identities[0].claims.\"repository\""),
                "{bad}: {e}"
            );
        }
        let e = parse("audiences = [\"a\"]\njwks_file = \"/x\"\nsubject = \"{repository\"\n")
            .unwrap_err();
        assert!(e.contains("identities[0].subject"), "{e}");
    }
}
