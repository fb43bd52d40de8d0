//! Workload identities: short-lived OIDC/JWT tokens that CI systems and
//! Kubernetes hand to every job and pod, accepted in place of long-lived
//! static bearer tokens (docs/identities.md).
//!
//! A `Bearer` value shaped like a JWT is checked here: its issuer picks the
//! `[[identities]]` entries, the issuer's JWKS the key, then the signature,
//! the validity window (with `leeway_s` of clock skew), the audience and
//! the entry's claims, in that order. The caller is recorded as
//! `<name>:<subject>`.

pub(crate) mod claims;
pub(crate) mod config;
mod error;
pub(crate) mod jwks;
pub(crate) mod jwt;
pub(crate) mod reason;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::auth::Role;
use claims::{ClaimPattern, SubjectTemplate, lookup, scalar};
pub(crate) use config::IdentityConfig;
use config::JwksLocation;
pub(crate) use error::IdentityError;
use jwks::{KeySource, Timing};
pub(crate) use reason::{Reason, Refusal};

/// Who a verified token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    /// `<name>:<subject>`: the actor in the records.
    pub actor: String,
    pub roles: Vec<Role>,
    pub title: Option<String>,
}

/// One entry, compiled.
#[derive(Debug)]
struct Entry {
    name: String,
    issuer: String,
    audiences: Vec<String>,
    claims: Vec<(String, ClaimPattern)>,
    subject: SubjectTemplate,
    roles: Vec<Role>,
    title: Option<String>,
    leeway: u64,
    keys: Arc<KeySource>,
}

/// The configured identities, sharing one key cache per JWKS location.
#[derive(Debug, Default)]
pub(crate) struct Identities {
    entries: Vec<Entry>,
}

impl Identities {
    /// Compiles validated entries and reads each key set once (a broken
    /// `jwks_file` is an error naming the entry).
    pub(crate) fn new(configs: &[IdentityConfig]) -> Result<Self, IdentityError> {
        config::validate(configs)?;
        let mut sources: BTreeMap<JwksLocation, Arc<KeySource>> = BTreeMap::new();
        let mut entries = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let location = c.jwks().ok_or_else(|| {
                IdentityError::key(
                    format!("identities[{i}]"),
                    "one of jwks_file or jwks_url is required",
                )
            })?;
            let keys = match sources.get(&location) {
                Some(k) => k.clone(),
                None => {
                    let source = Arc::new(KeySource::new(
                        location.clone(),
                        Timing {
                            refresh: Duration::from_secs(c.jwks_refresh_s),
                            max_age: Duration::from_secs(c.jwks_max_age_s),
                            min_refresh: Duration::from_secs(c.jwks_min_refresh_s),
                        },
                    ));
                    source
                        .prime()
                        .map_err(|e| IdentityError::at(format!("identities[{i}].jwks_file"), e))?;
                    sources.insert(location, source.clone());
                    source
                }
            };
            let claims = c
                .claims
                .iter()
                .map(|(k, p)| {
                    ClaimPattern::parse(k, p)
                        .map(|p| (k.clone(), p))
                        .map_err(|e| {
                            IdentityError::at(format!("identities[{i}].claims.\"{k}\""), e)
                        })
                })
                .collect::<Result<_, _>>()?;
            let subject = SubjectTemplate::parse(c.subject.as_deref().unwrap_or("{sub}"))
                .map_err(|e| IdentityError::at(format!("identities[{i}].subject"), e))?;
            entries.push(Entry {
                name: c.name.clone(),
                issuer: c.issuer.clone(),
                audiences: c.audiences.clone(),
                claims,
                subject,
                roles: c.roles.clone(),
                title: c.title.clone(),
                leeway: c.leeway_s,
                keys,
            });
        }
        Ok(Identities { entries })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a JWT against the entries; the first entry it satisfies
    /// names the caller. When none does, the refusal that got furthest
    /// through the checks is returned.
    pub(crate) fn verify(&self, token: &str) -> Result<Verified, Refusal> {
        let unverified = jwt::parse(token)?;
        let issuer = unverified.claims.get("iss").and_then(Value::as_str);
        let candidates: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| Some(e.issuer.as_str()) == issuer)
            .collect();
        if candidates.is_empty() {
            return Err(Refusal::new(
                Reason::Issuer,
                match issuer {
                    Some(i) => format!("no identity accepts issuer '{}'", jwt::truncate(i)),
                    None => "the token has no 'iss' claim".to_string(),
                },
            ));
        }
        let now = now_unix();
        let mut worst: Option<Refusal> = None;
        for entry in candidates {
            match entry.check(&unverified, now) {
                Ok(v) => return Ok(v),
                Err(r) => {
                    if worst.as_ref().is_none_or(|w| r.reason > w.reason) {
                        worst = Some(r);
                    }
                }
            }
        }
        Err(worst.unwrap_or_else(|| Refusal::new(Reason::Issuer, "no identity matched")))
    }
}

impl Entry {
    fn check(&self, token: &jwt::Unverified, now: i64) -> Result<Verified, Refusal> {
        let keys = self.keys.keys_for(token.kid.as_deref())?;
        // With a `kid` there is one key; without, any key of the set.
        let mut last = None;
        let mut verified = false;
        for k in &keys {
            match token.verify_with(&k.key) {
                Ok(()) => {
                    verified = true;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if !verified {
            return Err(last.unwrap_or_else(|| {
                Refusal::new(Reason::Signature, "no key verified the signature")
            }));
        }
        let c = &token.claims;
        let leeway = self.leeway as i64;
        let time = |name: &str| -> Result<Option<i64>, Refusal> {
            match c.get(name) {
                None => Ok(None),
                Some(v) => v.as_f64().map(|f| Some(f as i64)).ok_or_else(|| {
                    Refusal::new(Reason::Claims, format!("'{name}' is not a number"))
                }),
            }
        };
        match time("exp")? {
            None => {
                return Err(Refusal::new(
                    Reason::Expired,
                    "the token has no 'exp': tokens without an expiry are refused",
                ));
            }
            Some(exp) if now > exp.saturating_add(leeway) => {
                return Err(Refusal::new(
                    Reason::Expired,
                    format!("expired {} s ago (allowed skew {leeway} s)", now - exp),
                ));
            }
            _ => {}
        }
        for name in ["nbf", "iat"] {
            if let Some(t) = time(name)?
                && t > now.saturating_add(leeway)
            {
                return Err(Refusal::new(
                    Reason::NotYetValid,
                    format!(
                        "'{name}' is {} s in the future (allowed skew {leeway} s)",
                        t - now
                    ),
                ));
            }
        }
        let aud_ok = match c.get("aud") {
            Some(Value::String(a)) => self.audiences.contains(a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| self.audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !aud_ok {
            return Err(Refusal::new(
                Reason::Audience,
                format!(
                    "identity '{}' accepts audiences {:?}; the token's 'aud' names none of them",
                    self.name, self.audiences
                ),
            ));
        }
        for (name, pattern) in &self.claims {
            let ok = lookup(c, name)
                .and_then(scalar)
                .is_some_and(|v| pattern.matches(&v));
            if !ok {
                return Err(Refusal::new(
                    Reason::Claims,
                    format!("identity '{}': claim '{name}' does not match", self.name),
                ));
            }
        }
        let subject = self
            .subject
            .render(c)
            .map_err(|e| Refusal::new(Reason::Claims, format!("identity '{}': {e}", self.name)))?;
        Ok(Verified {
            actor: format!("{}:{subject}", self.name),
            roles: self.roles.clone(),
            title: self.title.clone(),
        })
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
