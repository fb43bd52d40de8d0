//! Who may call the admission webhook (docs/deploy.md, "The webhook").
//!
//! By default the route takes a bearer token with the `gateway` role, as
//! every other route does. The Kubernetes API server sends a token only
//! when it is started with `--admission-control-config-file`, which EKS,
//! GKE and AKS do not expose. So `[integrations.kubernetes]` offers two
//! other ways in, both for the admission route on the TLS listener only
//! (the API server calls webhooks over HTTPS only; the plain listener and
//! every other route keep requiring tokens):
//!
//! - `require_token = false`: no credential at all. The route is then open
//!   to whoever can reach the TLS port, so it has its own rate limit
//!   (`unauthenticated_per_second`) and the decision log names the caller
//!   `kubernetes-apiserver (unauthenticated)`. What an unauthenticated
//!   caller can do is ask about an object: the answer changes no record.
//! - `client_ca = PATH`: the API server presents a client certificate
//!   (`kubeconfig` of the webhook's `AdmissionConfiguration`, or a mesh
//!   sidecar), verified against this CA; the caller is named by the
//!   certificate's SHA-256.
//!
//! In both modes a presented token is still checked, so a pipeline or an
//! operator calling with its token is named as itself.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode, header};
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use super::auth::{Auth, RequireRole};
use super::error::ApiError;
use crate::auth::Caller;
use crate::auth::Role;

/// The actor recorded for an admission review that came without a
/// credential.
pub const UNAUTHENTICATED: &str = "kubernetes-apiserver (unauthenticated)";

/// What the TLS listener knows about a connection, attached to each of its
/// requests. Requests on the plain listener carry none.
#[derive(Debug, Clone, Default)]
pub struct TlsConnection {
    /// SHA-256 (hex) of the client certificate, present only when the
    /// client presented one that chains to `client_ca` (the handshake
    /// fails otherwise).
    pub client_certificate: Option<String>,
}

/// The configured access to the admission route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A bearer token, as everywhere (the default).
    Token,
    /// No credential on the TLS listener (`require_token = false`).
    Unauthenticated,
    /// A verified client certificate on the TLS listener (`client_ca`).
    ClientCertificate,
}

/// Decides who is calling the admission route.
pub struct AdmissionAccess {
    mode: Mode,
    limiter: Mutex<Bucket>,
    per_second: u32,
}

impl AdmissionAccess {
    /// From `[integrations.kubernetes]`: `client_ca` wins over
    /// `require_token = false` (both mean "no token"; the certificate is
    /// the stronger of the two).
    pub fn new(require_token: bool, client_ca: Option<&Path>, per_second: u32) -> Self {
        let mode = match (client_ca, require_token) {
            (Some(_), _) => Mode::ClientCertificate,
            (None, false) => Mode::Unauthenticated,
            (None, true) => Mode::Token,
        };
        AdmissionAccess {
            mode,
            limiter: Mutex::new(Bucket::full(per_second)),
            per_second,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The caller of one admission request: a token holder with the
    /// `gateway` role, or (on the TLS listener, per the mode) the API
    /// server without one.
    pub(crate) fn caller(
        &self,
        auth: &Auth,
        headers: &HeaderMap,
        tls: Option<&TlsConnection>,
    ) -> Result<Caller, ApiError> {
        let token = || {
            auth.caller(headers)
                .and_then(|c| c.require(&[Role::Gateway]).map(|()| c))
        };
        let Some(tls) = tls else {
            return token();
        };
        if headers.contains_key(header::AUTHORIZATION) {
            return token();
        }
        match self.mode {
            Mode::Token => token(),
            Mode::ClientCertificate => match &tls.client_certificate {
                Some(sha256) => Ok(apiserver(format!(
                    "kubernetes-apiserver (client certificate sha256:{sha256})"
                ))),
                None => Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this route needs a client certificate issued by integrations.kubernetes.client_ca, or Authorization: Bearer <token>",
                )),
            },
            Mode::Unauthenticated => {
                let admitted = self
                    .limiter
                    .lock()
                    .map(|mut b| b.take(self.per_second, Instant::now()))
                    .unwrap_or(false);
                if !admitted {
                    return Err(ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!(
                            "unauthenticated admission reviews are limited to {} per second (integrations.kubernetes.unauthenticated_per_second)",
                            self.per_second
                        ),
                    )
                    .retry_after(1));
                }
                Ok(apiserver(UNAUTHENTICATED.into()))
            }
        }
    }
}

fn apiserver(name: String) -> Caller {
    Caller {
        name,
        roles: vec![Role::Gateway],
        title: None,
    }
}

/// A token bucket: `per_second` tokens a second, at most `per_second`
/// banked (a burst of one second's worth).
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(per_second: u32) -> Self {
        Bucket {
            tokens: f64::from(per_second),
            at: Instant::now(),
        }
    }

    fn take(&mut self, per_second: u32, now: Instant) -> bool {
        let rate = f64::from(per_second);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why the admission access settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("integrations.kubernetes.client_ca {path}: {message}")]
    ClientCa { path: String, message: String },
}

pub use crate::config::admission::validate;

/// Loads `client_ca` (PEM, one or more CA certificates) as the TLS
/// listener's client certificate verifier. A client without a certificate
/// still connects (the other routes take tokens); one with a certificate
/// that does not chain to these CAs fails the handshake.
pub fn load_client_ca(path: &PathBuf) -> Result<Arc<dyn ClientCertVerifier>, AccessError> {
    let err = |message: String| AccessError::ClientCa {
        path: path.display().to_string(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not a PEM certificate bundle: {e}")))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block in the file (expected PEM)".into()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|e| err(format!("certificate #{}: {e}", i + 1)))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| err(e.to_string()))
}

/// SHA-256 (hex) of a DER certificate: how a client certificate is named.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_bucket_admits_a_seconds_worth_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut b = Bucket {
            tokens: 3.0,
            at: start,
        };
        assert!((0..3).all(|_| b.take(3, start)));
        assert!(!b.take(3, start));
        assert!(b.take(3, start + Duration::from_millis(400)));
        assert!(!b.take(3, start + Duration::from_millis(400)));
        // Ten idle seconds bank no more than one second's worth.
        let later = start + Duration::from_secs(10);
        assert_eq!((0..10).filter(|_| b.take(3, later)).count(), 3);
    }

    #[test]
    fn without_tls_the_tokenless_modes_are_refused_naming_the_keys() {
        let e = validate(false, None, 50, false).unwrap_err().to_string();
        assert!(
            e.contains("require_token = false") && e.contains("listen_tls"),
            "{e}"
        );
        let e = validate(true, Some(Path::new("ca.pem")), 50, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("integrations.kubernetes.client_ca") && e.contains("listen_tls"),
            "{e}"
        );
        validate(false, None, 50, true).unwrap();
        validate(true, None, 50, false).unwrap();
        assert!(validate(false, None, 0, true).is_err());
    }

    #[test]
    fn a_client_ca_that_does_not_load_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = load_client_ca(&missing).err().unwrap().to_string();
        assert!(
            e.starts_with("integrations.kubernetes.client_ca ") && e.contains("missing.pem"),
            "{e}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = load_client_ca(&junk).err().unwrap().to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no CERTIFICATE"),
            "{e}"
        );
    }

    #[test]
    fn the_plain_listener_always_needs_a_token() {
        let access = AdmissionAccess::new(false, None, 10);
        let (token, sha256) = crate::auth::new_token();
        let auth = Auth::new(&[crate::auth::TokenConfig {
            name: "gw".into(),
            sha256,
            roles: vec![Role::Gateway],
            title: None,
        }]);
        let none = HeaderMap::new();
        assert_eq!(
            access.caller(&auth, &none, None).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        let tls = TlsConnection::default();
        assert_eq!(
            access.caller(&auth, &none, Some(&tls)).unwrap().name,
            UNAUTHENTICATED
        );
        let mut with = HeaderMap::new();
        with.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        assert_eq!(access.caller(&auth, &with, Some(&tls)).unwrap().name, "gw");
        with.insert(header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert_eq!(
            access.caller(&auth, &with, Some(&tls)).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }
}
