//! An issuer's JSON Web Key Set (RFC 7517): read from a file or fetched,
//! cached, refreshed when a token names a key not held (rate-limited),
//! and kept while the endpoint is down until it is too old to trust.

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::config::JwksLocation;
use super::error::IdentityError;
use super::jwt::{PublicKey, truncate};
use super::reason::{Reason, Refusal};

/// Largest key set read: real ones are a few KiB; a 10 MB answer is
/// refused after reading this much, not buffered.
pub(crate) const MAX_JWKS_BYTES: u64 = 1 << 20;

/// How long one fetch may take. A fetch runs on the request that needed
/// it (an unknown `kid` must be answered now), so it is short.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A key and its id.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub kid: Option<String>,
    pub key: PublicKey,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// The signing keys in a JWKS document. Keys of other types or uses
/// (encryption keys, HMAC `oct` keys, other curves) are skipped, so that
/// an issuer adding one does not break the others; a set with no usable
/// key at all is an error.
pub(crate) fn parse_set(bytes: &[u8]) -> Result<Vec<Key>, IdentityError> {
    let set: RawSet = serde_json::from_slice(bytes)
        .map_err(|e| IdentityError::KeySet(format!("not a JWKS document: {e}")))?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (i, raw) in set.keys.into_iter().enumerate() {
        let Ok(k) = serde_json::from_value::<RawKey>(raw) else {
            continue;
        };
        if k.use_.as_deref().is_some_and(|u| u != "sig") {
            continue;
        }
        // A key this service cannot use (too short, bad encoding) is
        // skipped like a key of another type, not fatal to the set.
        let built = (|| -> Result<Option<PublicKey>, String> {
            let b64 = |field: &Option<String>, name: &str| -> Result<Vec<u8>, String> {
                URL_SAFE_NO_PAD
                    .decode(field.as_deref().ok_or(format!("keys[{i}]: no '{name}'"))?)
                    .map_err(|_| format!("keys[{i}].{name}: not base64url"))
            };
            let key = match (k.kty.as_str(), k.crv.as_deref()) {
                ("RSA", _) => {
                    let n = b64(&k.n, "n")?;
                    if n.len() < 256 {
                        return Err(format!(
                            "keys[{i}]: RSA keys shorter than 2048 bits are refused"
                        ));
                    }
                    PublicKey::Rsa {
                        n,
                        e: b64(&k.e, "e")?,
                    }
                }
                ("EC", Some("P-256")) => {
                    let (x, y) = (b64(&k.x, "x")?, b64(&k.y, "y")?);
                    if x.len() != 32 || y.len() != 32 {
                        return Err(format!("keys[{i}]: P-256 coordinates are 32 bytes"));
                    }
                    let mut point = vec![4u8];
                    point.extend(x);
                    point.extend(y);
                    PublicKey::P256(point)
                }
                ("OKP", Some("Ed25519")) => {
                    let x = b64(&k.x, "x")?;
                    if x.len() != 32 {
                        return Err(format!("keys[{i}]: Ed25519 keys are 32 bytes"));
                    }
                    PublicKey::Ed25519(x)
                }
                _ => return Ok(None),
            };
            Ok(Some(key))
        })();
        let key = match built {
            Ok(Some(key)) => key,
            Ok(None) => continue,
            Err(e) => {
                skipped.push(e);
                continue;
            }
        };
        // A key that declares its algorithm must declare the one its type
        // verifies.
        if let Some(alg) = &k.alg
            && alg != key.alg().as_str()
        {
            continue;
        }
        out.push(Key { kid: k.kid, key });
    }
    if !skipped.is_empty() {
        tracing::warn!(skipped = %skipped.join("; "), "identity key set: keys skipped");
    }
    if out.is_empty() {
        return Err(IdentityError::KeySet(format!(
            "no usable RS256, ES256 or EdDSA signing key in the set{}",
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" ({})", skipped.join("; "))
            }
        )));
    }
    Ok(out)
}

/// How often keys are re-read, and how long they outlive a dead endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub refresh: Duration,
    pub max_age: Duration,
    pub min_refresh: Duration,
}

#[derive(Debug, Default)]
struct State {
    keys: Vec<Key>,
    /// When `keys` were read; `None` before the first successful read.
    fetched: Option<Instant>,
    /// When a read was last tried, successful or not (the rate limit).
    attempted: Option<Instant>,
}

/// One issuer's key set and its cache.
#[derive(Debug)]
pub(crate) struct KeySource {
    location: JwksLocation,
    timing: Timing,
    state: Mutex<State>,
}

impl KeySource {
    pub(crate) fn new(location: JwksLocation, timing: Timing) -> Self {
        KeySource {
            location,
            timing,
            state: Mutex::new(State::default()),
        }
    }

    /// Reads the keys once, at startup: a `jwks_file` that is missing or
    /// broken stops the service; an unreachable `jwks_url` is only logged
    /// (the issuer may be down now and up when the first token arrives).
    pub(crate) fn prime(&self) -> Result<(), IdentityError> {
        // Not counted as an attempt: the rate limit guards against tokens
        // making the service fetch, and a key rotated in just after
        // startup must still be picked up by the first token naming it.
        let result = self.read();
        let mut st = self.lock();
        match result {
            Ok(keys) => {
                st.keys = keys;
                st.fetched = Some(Instant::now());
                Ok(())
            }
            Err(e) => match &self.location {
                JwksLocation::File(_) => Err(e),
                JwksLocation::Url(url) => {
                    tracing::warn!(jwks_url = %url, error = %e, "identity key set not fetched at startup; will retry when a token arrives");
                    Ok(())
                }
            },
        }
    }

    /// The keys a token with `kid` may have been signed with: by id, or
    /// every key when the token names none.
    pub(crate) fn keys_for(&self, kid: Option<&str>) -> Result<Vec<Key>, Refusal> {
        let mut st = self.lock();
        let now = Instant::now();
        let stale = st
            .fetched
            .is_none_or(|t| now.duration_since(t) >= self.timing.refresh);
        if stale {
            self.try_refresh(&mut st, now);
        }
        let mut found = select(&st.keys, kid);
        if found.is_empty() && !st.keys.is_empty() && self.try_refresh(&mut st, now) {
            // A key rotated in since the last read.
            found = select(&st.keys, kid);
        }
        if st.keys.is_empty() {
            return Err(Refusal::new(
                Reason::JwksUnavailable,
                "the issuer's key set could not be read (and none is cached young enough to use)",
            ));
        }
        if found.is_empty() {
            return Err(Refusal::new(
                Reason::KeyUnknown,
                format!(
                    "no key '{}' in the issuer's key set",
                    truncate(kid.unwrap_or(""))
                ),
            ));
        }
        Ok(found)
    }

    /// Reads the keys again unless one was tried within `min_refresh`.
    /// Keeps the cached keys when the read fails, until `max_age`.
    /// Returns whether a successful read happened.
    fn try_refresh(&self, st: &mut State, now: Instant) -> bool {
        if st
            .attempted
            .is_some_and(|t| now.duration_since(t) < self.timing.min_refresh)
        {
            self.expire(st, now);
            return false;
        }
        st.attempted = Some(now);
        match in_place(|| self.read()) {
            Ok(keys) => {
                st.keys = keys;
                st.fetched = Some(now);
                true
            }
            Err(e) => {
                tracing::warn!(jwks = ?self.location, error = %e, cached = st.keys.len(), "identity key set could not be refreshed; cached keys are used until they are too old");
                self.expire(st, now);
                false
            }
        }
    }

    fn expire(&self, st: &mut State, now: Instant) {
        if st
            .fetched
            .is_some_and(|t| now.duration_since(t) >= self.timing.max_age)
        {
            st.keys.clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> Result<Vec<Key>, IdentityError> {
        let at = |path: &std::path::Path, e: String| {
            IdentityError::KeySet(format!("{}: {e}", path.display()))
        };
        let bytes = match &self.location {
            JwksLocation::File(path) => {
                let f = std::fs::File::open(path).map_err(|e| at(path, e.to_string()))?;
                read_bounded(f).map_err(|e| at(path, e))?
            }
            JwksLocation::Url(url) => fetch(url).map_err(IdentityError::KeySet)?,
        };
        parse_set(&bytes)
    }
}

fn select(keys: &[Key], kid: Option<&str>) -> Vec<Key> {
    keys.iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .cloned()
        .collect()
}

/// A blocking read on a request's task: moved off the async workers'
/// budget where the runtime allows it.
fn in_place<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn read_bounded(r: impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(MAX_JWKS_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > MAX_JWKS_BYTES {
        return Err(format!(
            "the key set is larger than {} KiB; refused",
            MAX_JWKS_BYTES >> 10
        ));
    }
    Ok(out)
}

/// GET with a short timeout and no redirects (a redirect could leave
/// https for http, which the configuration check refused).
fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(FETCH_TIMEOUT)
        .redirects(0)
        .build();
    let resp = agent
        .get(url)
        .set("Accept", "application/json")
        .call()
        .map_err(|e| format!("{url}: {e}"))?;
    if let Some(len) = resp
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
        && len > MAX_JWKS_BYTES
    {
        return Err(format!(
            "{url}: the key set is {len} bytes, larger than {} KiB; refused",
            MAX_JWKS_BYTES >> 10
        ));
    }
    read_bounded(resp.into_reader()).map_err(|e| format!("{url}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_keys_are_skipped_and_an_empty_set_refused() {
        let x = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let doc = format!(
            r#"{{"keys":[{{"kty":"oct","k":"c2VjcmV0"}},{{"kty":"OKP","crv":"X25519","x":"{x}"}},{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"a","use":"enc"}},{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"b"}}]}}"#
        );
        let keys = parse_set(doc.as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("b"));
        assert!(parse_set(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
        assert!(parse_set(b"[]").is_err());
        // A short RSA key is skipped, not fatal to the other keys.
        let short = URL_SAFE_NO_PAD.encode([1u8; 128]);
        let doc = format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"short","n":"{short}","e":"AQAB"}},{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"b"}}]}}"#
        );
        assert_eq!(parse_set(doc.as_bytes()).unwrap().len(), 1);
        let only_short = format!(r#"{{"keys":[{{"kty":"RSA","n":"{short}","e":"AQAB"}}]}}"#);
        let e = parse_set(only_short.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("shorter than 2048 bits"), "{e}");
    }

    #[test]
    fn oversized_key_sets_are_refused_without_reading_them_whole() {
        let big = std::io::repeat(b' ').take(10 << 20);
        let e = read_bounded(big).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
    }
}
