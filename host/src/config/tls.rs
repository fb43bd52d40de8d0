//! `listen_tls` and `[tls]`: the HTTPS listener's certificate and key.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The HTTPS listener's certificate chain and private key (PEM files),
/// re-read when their contents change (every `limits.watch_interval_ms`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The server certificate, then any intermediates.
    pub certificate: Option<PathBuf>,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

impl TlsConfig {
    /// The files, when both are configured.
    pub fn files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            certificate: self.certificate.clone()?,
            key: self.key.clone()?,
        })
    }
}

/// The certificate chain and private key files (PEM) of the listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// `listen_tls` and `[tls]` go together: both files with it, neither
/// without it.
pub(super) fn validate(
    listen_tls: Option<SocketAddr>,
    tls: &TlsConfig,
) -> Result<(), super::ConfigError> {
    match (listen_tls, tls.certificate.is_some(), tls.key.is_some()) {
        (Some(_), true, true) | (None, false, false) => {}
        (Some(_), _, _) => {
            return Err(super::ConfigError::Invalid(
                "listen_tls needs both tls.certificate and tls.key (PEM files)".into(),
            ));
        }
        (None, _, _) => {
            return Err(super::ConfigError::Invalid(
                "tls.certificate and tls.key are used only with listen_tls; set listen_tls or remove them".into(),
            ));
        }
    }
    Ok(())
}
