//! The HTTP agent sources and publishers share: timeouts, and either the
//! built-in web PKI roots or a private CA bundle.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::FetchError;

/// How to reach a server.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// PEM file of CA certificates: when set, the only roots trusted for
    /// TLS (a private server's CA), instead of the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Budget of one request, connection to last byte.
    pub timeout: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            ca_file: None,
            timeout: Duration::from_secs(60),
        }
    }
}

impl TransportOptions {
    /// Whether an agent can be built (the CA file holds certificates):
    /// for checking a configuration before serving.
    pub fn check(&self) -> Result<(), FetchError> {
        agent(self).map(|_| ())
    }
}

/// Builds the agent. Redirects are followed (registries may send blob
/// reads to storage); ureq drops `Authorization` on a redirect, so
/// credentials never reach the storage host.
pub(super) fn agent(options: &TransportOptions) -> Result<ureq::Agent, FetchError> {
    let mut builder = ureq::AgentBuilder::new()
        .timeout_connect(options.timeout.min(Duration::from_secs(10)))
        .timeout(options.timeout)
        .user_agent(concat!("stagegate/", env!("CARGO_PKG_VERSION")))
        .redirects(5);
    if let Some(path) = &options.ca_file {
        builder = builder.tls_config(Arc::new(tls_with_ca(path)?));
    }
    Ok(builder.build())
}

fn tls_with_ca(path: &std::path::Path) -> Result<rustls::ClientConfig, FetchError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let err = |m: String| FetchError::Config(format!("ca_file {}: {m}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| err(e.to_string()))?;
        roots.add(cert).map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// Turns a ureq failure into a [`FetchError`], keeping a short excerpt of
/// an error body (registries explain refusals there).
pub(super) fn error_of(url: &str, e: ureq::Error) -> FetchError {
    let redacted = super::redact_url(url);
    match e {
        ureq::Error::Status(status, resp) => {
            let mut body = String::new();
            use std::io::Read;
            let _ = resp.into_reader().take(512).read_to_string(&mut body);
            let body = body.trim();
            FetchError::Status {
                url: redacted,
                status,
                message: if body.is_empty() {
                    String::new()
                } else {
                    format!(": {}", body.chars().take(300).collect::<String>())
                },
            }
        }
        // ureq's message names the URL it was given: redacted too.
        other => FetchError::Transport {
            message: other.to_string().replace(url, &redacted),
            url: redacted,
        },
    }
}

/// Reads a response body, refusing more than `limit` bytes (by its
/// declared length first, then while reading).
pub(super) fn read_body(
    resp: ureq::Response,
    what: &str,
    limit: u64,
) -> Result<Vec<u8>, FetchError> {
    use std::io::Read;
    let too_large = || FetchError::TooLarge {
        what: what.to_string(),
        limit,
    };
    if let Some(len) = resp
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        return Err(too_large());
    }
    let url = resp.get_url().to_string();
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FetchError::Transport {
            url: super::redact_url(&url),
            message: e.to_string(),
        })?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}
