//! Fetching and publishing signed bundles over the network: plain HTTP(S)
//! servers ([`http`]) and OCI registries ([`oci`]) (`docs/distribution.md`).
//!
//! This module only moves bytes and checks that they are the bytes the
//! source named (digests, sizes, media types). Whether a bundle may be
//! served (signatures, version floor, compilation, smoke call) is decided
//! by the one activation path every source goes through
//! (`service::registry`).
//!
//! Both clients run over `ureq`, the blocking HTTP client the service
//! already uses for webhooks; sources poll on their own threads.

pub mod credentials;
pub mod http;
pub mod oci;
mod transport;

pub use transport::TransportOptions;

/// Why a fetch or a publish failed. [`FetchError::is_rejection`] tells a
/// bad candidate (the source answered, with something unacceptable) from
/// a source that could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The source's settings cannot work (bad reference, refused plain
    /// HTTP, unreadable CA file).
    #[error("{0}")]
    Config(String),
    /// Credentials could not be read.
    #[error("credentials: {0}")]
    Credentials(String),
    /// Connection, TLS or timeout.
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}{message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    /// The answer is not what the protocol or the artifact layout allows.
    #[error("{0}")]
    Protocol(String),
    /// Bytes that do not hash to the digest they were fetched by.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    Digest {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what} is over the {limit}-byte limit")]
    TooLarge { what: String, limit: u64 },
}

impl FetchError {
    /// The source answered, but with content that is refused (as opposed
    /// to a source that is down or misconfigured).
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            FetchError::Protocol(_) | FetchError::Digest { .. } | FetchError::TooLarge { .. }
        )
    }
}

/// `sha256:` and the lowercase hex SHA-256 of `bytes`: the OCI digest form.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A URL with its user information and query values replaced by `***`:
/// what status pages and logs may show.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let path = match path.split_once('?') {
        Some((p, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) => format!("{k}=***"),
                    None => kv.to_string(),
                })
                .collect();
            format!("{p}?{}", q.join("&"))
        }
        None => path.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{authority}{path}"),
        None => format!("{authority}{path}"),
    }
}

/// Whether `host` (a name or address, without port or brackets) is this
/// machine: `localhost` or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host of `authority` (`host`, `host:port`, `[v6]:port`).
pub fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_user_information_and_query_values() {
        assert_eq!(
            redact_url("https://alice:s3cret@example.com/b/x.bundle?token=abc&v=1"),
            "https://***@example.com/b/x.bundle?token=***&v=***"
        );
        assert_eq!(
            redact_url("https://example.com/x.bundle"),
            "https://example.com/x.bundle"
        );
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback_host(host_of("127.0.0.1:5000")));
        assert!(is_loopback_host(host_of("localhost:5000")));
        assert!(is_loopback_host(host_of("[::1]:5000")));
        assert!(!is_loopback_host(host_of("registry.example.com:5000")));
        assert!(!is_loopback_host(host_of("10.0.0.1")));
    }
}
