//! The admission route's access settings checked against the rest of the
//! configuration (`[integrations.kubernetes] require_token`, `client_ca`,
//! `unauthenticated_per_second`; docs/integrations/kubernetes.md): the
//! route they open exists only on the TLS listener.

use std::path::Path;

/// A setting the admission route's access cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionConfigError {
    #[error(
        "integrations.kubernetes.{key} applies to the admission route on the TLS listener only; set listen_tls (with tls.certificate and tls.key) or remove integrations.kubernetes.{key}"
    )]
    NeedsTls { key: &'static str },
    #[error("integrations.kubernetes.unauthenticated_per_second must be at least 1")]
    ZeroRate,
}

/// Checks the settings against the rest of the configuration (at parse).
pub fn validate(
    require_token: bool,
    client_ca: Option<&Path>,
    per_second: u32,
    listen_tls: bool,
) -> Result<(), AdmissionConfigError> {
    if !listen_tls {
        if !require_token {
            return Err(AdmissionConfigError::NeedsTls {
                key: "require_token = false",
            });
        }
        if client_ca.is_some() {
            return Err(AdmissionConfigError::NeedsTls { key: "client_ca" });
        }
    }
    if per_second == 0 {
        return Err(AdmissionConfigError::ZeroRate);
    }
    Ok(())
}
