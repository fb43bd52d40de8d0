//! Console sessions: a random id in an `HttpOnly; SameSite=Strict` cookie,
//! the signed-in caller kept on the server, in memory.
//!
//! Sessions live in this process only: a restart signs everyone out, and
//! each replica of a multi-replica service has its own (a load balancer
//! must keep a browser on one replica, or the auditor signs in again).
//! A session ends at its expiry or on sign-out, whichever comes first;
//! the token itself is never stored, only the caller it named.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::auth::Caller;

/// The session cookie's name.
pub const COOKIE: &str = "sg_session";

/// Sessions kept at most: beyond it the oldest are dropped, so a flood of
/// sign-ins cannot grow memory without bound.
const CAPACITY: usize = 10_000;

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    /// Must accompany every state-changing form (sign-out), so a page on
    /// another site cannot post one even where `SameSite` is not honoured.
    pub csrf: String,
    pub expires: Instant,
}

/// The sessions of this process.
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    by_id: Mutex<HashMap<String, Session>>,
}

/// Why a cookie does not name a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// No cookie, or one this process never issued (or has forgotten).
    Unknown,
    /// A session that has expired.
    Expired,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Sessions {
            ttl,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `caller`: its id (the cookie value) and session.
    pub fn create(&self, caller: Caller) -> (String, Session) {
        let id = random_hex();
        let session = Session {
            caller,
            csrf: random_hex(),
            expires: Instant::now() + self.ttl,
        };
        if let Ok(mut m) = self.by_id.lock() {
            let now = Instant::now();
            m.retain(|_, s| s.expires > now);
            if m.len() >= CAPACITY
                && let Some(oldest) = m
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| k.clone())
            {
                m.remove(&oldest);
            }
            m.insert(id.clone(), session.clone());
        }
        (id, session)
    }

    /// The live session named by `id`.
    pub fn get(&self, id: &str) -> Result<Session, Lookup> {
        let mut m = self.by_id.lock().map_err(|_| Lookup::Unknown)?;
        match m.get(id) {
            None => Err(Lookup::Unknown),
            Some(s) if s.expires <= Instant::now() => {
                m.remove(id);
                Err(Lookup::Expired)
            }
            Some(s) => Ok(s.clone()),
        }
    }

    /// Ends the session `id` (sign-out).
    pub fn revoke(&self, id: &str) {
        if let Ok(mut m) = self.by_id.lock() {
            m.remove(id);
        }
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            name: "audit".into(),
            roles: vec![crate::auth::Role::Auditor],
            title: None,
        }
    }

    #[test]
    fn a_session_is_found_until_revoked() {
        let s = Sessions::new(Duration::from_secs(60));
        let (id, session) = s.create(caller());
        assert_eq!(id.len(), 64);
        assert_ne!(id, session.csrf);
        assert_eq!(s.get(&id).unwrap().caller.name, "audit");
        s.revoke(&id);
        assert_eq!(s.get(&id).unwrap_err(), Lookup::Unknown);
    }

    #[test]
    fn an_expired_session_is_reported_as_expired_once() {
        let s = Sessions::new(Duration::from_millis(0));
        let (id, _) = s.create(caller());
        assert_eq!(s.get(&id).unwrap_err(), Lookup::Expired);
        assert_eq!(s.get(&id).unwrap_err(), Lookup::Unknown);
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let h = "a=1; sg_session=abc; sg_session_x=zzz";
        assert_eq!(cookie(h, "sg_session"), Some("abc"));
        assert_eq!(cookie(h, "b"), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
