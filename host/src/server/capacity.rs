//! Capacity that one client cannot take (docs/security.md, "Capacity").
//!
//! Every request used to take a permit from one pool before anything was
//! known about it, and several routes then read their body before asking
//! who was calling: 300 connections that sent their headers and one byte
//! of a body held every permit, and health checks, gateways and admission
//! got 503 until the connections closed. Now, in this order:
//!
//! 1. Health and readiness draw from a small reserved pool (and only then
//!    from the shared one), so an orchestrator's probe is answered whatever
//!    else is in flight.
//! 2. A request that carries no valid token, to a route that needs one, is
//!    answered 401 at once: no permit is taken and no byte of its body is
//!    read (the connection is then closed by hyper, as its body is unread).
//! 3. The routes that must accept callers without a bearer token (the
//!    notice, metrics, the console, the GitHub webhook signed by HMAC, a
//!    Flagger hook whose token travels in its payload) serve such callers
//!    from a pool of their own, at most `per_peer_unauthenticated` of them
//!    per client address at once (429 beyond), each within
//!    `unauthenticated_timeout_ms`, body included (408 beyond). They never
//!    take a permit an authenticated caller needs. In open mode (no
//!    tokens), where every caller has every role, these routes are served
//!    the same way, whoever calls.
//! 4. Authenticated requests to the gateway exposure check and to
//!    admission draw from reserved pools of their own first, then from the
//!    shared one; every other authenticated request from the shared one,
//!    within `limits.request_timeout_ms` (body reading included).
//!
//! The listeners add the deadline on headers (`header_timeout_ms`): a
//! client that never finishes its request line and headers is closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::App;
use super::error::ApiError;

pub use crate::config::CapacityConfig;

/// The client address of a request, added by the listeners.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub IpAddr);

/// Added by the HTTPS listener: the request arrived over TLS.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// Tags each request of one connection with its peer (and TLS), for the
/// per-peer limit and the console's `Secure` cookie.
pub fn tag(
    router: axum::Router,
    peer: IpAddr,
    tls: bool,
) -> tower::util::MapRequest<
    axum::Router,
    impl Fn(Request<hyper::body::Incoming>) -> Request<hyper::body::Incoming> + Clone,
> {
    tower::util::MapRequest::new(router, move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        if tls {
            req.extensions_mut().insert(OverTls);
        }
        req
    })
}

/// The reserved route classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reserved {
    Health,
    Exposure,
    Admission,
}

fn reserved(path: &str) -> Option<Reserved> {
    match path {
        "/healthz" | "/readyz" => Some(Reserved::Health),
        "/v1/integrations/kubernetes/admission" => Some(Reserved::Admission),
        p if p == "/v1/integrations/authz" || p.starts_with("/v1/integrations/authz/") => {
            Some(Reserved::Exposure)
        }
        _ => None,
    }
}

/// Routes that serve callers without a bearer token: they authenticate
/// otherwise (a console session, an HMAC, a token in the payload) or are
/// public by design.
fn serves_without_token(path: &str) -> bool {
    path == "/healthz"
        || path == "/readyz"
        || path == "/metrics"
        // The published contract (server/openapi/): public like the docs.
        || path == "/v1/openapi.json"
        || path == "/ui"
        || path.starts_with("/ui/")
        || path == "/v1/integrations/github/deployment-protection"
        || path.starts_with("/v1/integrations/flagger/")
        || (path.starts_with("/v1/systems/") && path.ends_with("/notice"))
}

/// The pools.
pub struct Capacity {
    config: CapacityConfig,
    health: Arc<Semaphore>,
    exposure: Arc<Semaphore>,
    admission: Arc<Semaphore>,
    unauthenticated: Arc<Semaphore>,
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Capacity {
    pub fn new(config: &CapacityConfig) -> Self {
        let reserved = || Arc::new(Semaphore::new(config.reserved_concurrency));
        Capacity {
            health: reserved(),
            exposure: reserved(),
            admission: reserved(),
            unauthenticated: Arc::new(Semaphore::new(config.unauthenticated_concurrency)),
            peers: Arc::default(),
            config: config.clone(),
        }
    }

    /// One of the peer's unauthenticated slots, or `None` when it has
    /// them all.
    fn peer_slot(&self, peer: IpAddr) -> Option<PeerSlot> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let n = peers.entry(peer).or_insert(0);
        if *n >= self.config.per_peer_unauthenticated {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.peers.clone(),
            peer,
        })
    }
}

/// A peer's slot, given back when the request ends.
struct PeerSlot {
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
    peer: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = peers.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

fn overloaded(what: &str) -> Response {
    ApiError::unavailable(
        "overloaded",
        format!("{what} are all in use; retry shortly"),
    )
    .into_response()
}

/// A permit from `first`, else from `shared`.
fn reserved_or_shared(
    first: &Arc<Semaphore>,
    shared: &Arc<Semaphore>,
) -> Option<OwnedSemaphorePermit> {
    first
        .clone()
        .try_acquire_owned()
        .or_else(|_| shared.clone().try_acquire_owned())
        .ok()
}

/// The admission middleware (see the module documentation for the order).
pub(crate) async fn admit(app: Arc<App>, req: Request, next: Next) -> Response {
    let capacity = &app.capacity;
    let path = req.uri().path();
    let class = reserved(path);
    if class == Some(Reserved::Health) {
        let Some(_permit) = reserved_or_shared(&capacity.health, &app.inflight) else {
            return overloaded("the health check's permits and the shared permits");
        };
        return next.run(req).await;
    }
    // In open mode every caller has every role, yet the routes that serve
    // callers without a token still take the unauthenticated pool: its
    // per-peer limit and short deadline are what keep 300 half-sent
    // Flagger hooks from holding every shared permit, and the gate with
    // them (issue 23). Every other route is served as authenticated.
    let authenticated = if app.auth.is_open() {
        !serves_without_token(path)
    } else {
        app.auth.caller(req.headers()).is_ok()
    };
    // Admission on the TLS listener may come without a token when
    // `[integrations.kubernetes]` says so (require_token = false or
    // client_ca); its handler decides, under its own rate limit.
    let tokenless_admission = class == Some(Reserved::Admission)
        && app.admission_access.mode() != super::admission_access::Mode::Token
        && req.extensions().get::<OverTls>().is_some();
    if !authenticated {
        if !serves_without_token(path) && !tokenless_admission {
            // The handler would refuse it too; refusing here costs no
            // permit and reads no body.
            let refusal = match app.auth.caller(req.headers()) {
                Err(e) => e,
                Ok(_) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token"),
            };
            // A gateway asking by route gets the stable route, not 401
            // (Envoy would hand a 401 to its user).
            if class == Some(Reserved::Exposure)
                && let Some(routed) =
                    super::exposure::refused_by_route(&app, req.headers(), &refusal)
            {
                return routed;
            }
            return with_close(refusal.into_response());
        }
        return unauthenticated(app.clone(), req, next).await;
    }
    let pool = match class {
        Some(Reserved::Exposure) => &capacity.exposure,
        Some(Reserved::Admission) => &capacity.admission,
        _ => &app.inflight,
    };
    let Some(_permit) = reserved_or_shared(pool, &app.inflight) else {
        return ApiError::unavailable(
            "overloaded",
            format!(
                "{} requests are in flight, the configured limit; retry shortly",
                app.limits.concurrency
            ),
        )
        .into_response();
    };
    match tokio::time::timeout(app.limits.request_timeout(), next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::unavailable(
            "timeout",
            format!(
                "request took longer than {} ms",
                app.limits.request_timeout_ms
            ),
        )
        .into_response(),
    }
}

/// A caller without a bearer token on a route that serves one: its peer's
/// slot, a permit of the unauthenticated pool, and a short deadline.
async fn unauthenticated(app: Arc<App>, req: Request, next: Next) -> Response {
    let capacity = &app.capacity;
    let _slot = match req.extensions().get::<Peer>() {
        Some(Peer(ip)) => match capacity.peer_slot(*ip) {
            Some(slot) => Some(slot),
            None => {
                let mut res = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    format!(
                        "{} requests without an access token are already in flight from {ip}; retry when they finish",
                        capacity.config.per_peer_unauthenticated
                    ),
                )
                .into_response();
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return with_close(res);
            }
        },
        // In-process callers (tests, tools) have no peer.
        None => None,
    };
    let Ok(_permit) = capacity.unauthenticated.clone().try_acquire_owned() else {
        return with_close(overloaded(
            "the permits for requests without an access token",
        ));
    };
    let deadline = Duration::from_millis(capacity.config.unauthenticated_timeout_ms);
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(res) => res,
        Err(_) => with_close(
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "a request without an access token must arrive and be answered within {} ms",
                    capacity.config.unauthenticated_timeout_ms
                ),
            )
            .into_response(),
        ),
    }
}

/// Tells the client the connection ends with this answer (its body, if
/// any, was not read).
fn with_close(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_classes_and_tokenless_routes_are_recognised() {
        assert_eq!(reserved("/healthz"), Some(Reserved::Health));
        assert_eq!(reserved("/readyz"), Some(Reserved::Health));
        assert_eq!(
            reserved("/v1/integrations/authz/any/path"),
            Some(Reserved::Exposure)
        );
        assert_eq!(reserved("/v1/integrations/authzz"), None);
        assert_eq!(
            reserved("/v1/integrations/kubernetes/admission"),
            Some(Reserved::Admission)
        );
        assert_eq!(reserved("/v1/decisions/gate"), None);
        for p in [
            "/metrics",
            "/ui",
            "/ui/sign-in",
            "/v1/systems/x/notice",
            "/v1/integrations/flagger/rollout",
            "/v1/integrations/github/deployment-protection",
        ] {
            assert!(serves_without_token(p), "{p}");
        }
        for p in [
            "/v1/decisions/gate",
            "/v1/bundles/x",
            "/v1/integrations/kubernetes/admission",
            "/v1/integrations/authz",
            "/v1/systems/x",
            "/uix",
        ] {
            assert!(!serves_without_token(p), "{p}");
        }
    }

    #[test]
    fn a_peer_has_at_most_its_slots_and_gets_them_back() {
        let c = Capacity::new(&CapacityConfig {
            per_peer_unauthenticated: 2,
            ..CapacityConfig::default()
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let one = c.peer_slot(a).unwrap();
        let _two = c.peer_slot(a).unwrap();
        assert!(c.peer_slot(a).is_none());
        assert!(c.peer_slot(b).is_some(), "another peer is not affected");
        drop(one);
        assert!(c.peer_slot(a).is_some());
    }
}
