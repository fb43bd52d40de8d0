//! A bundle file on an HTTP(S) server, fetched with conditional requests:
//! an unchanged bundle costs one request answered `304 Not Modified`.

use super::credentials::Credential;
use super::transport::{self, TransportOptions};
use super::{FetchError, is_loopback_host};

/// What the server said about the last bundle it sent, to ask again with
/// `If-None-Match` / `If-Modified-Since`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Validators {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

/// The answer to one poll.
#[derive(Debug)]
pub enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        validators: Validators,
    },
}

/// One configured URL.
pub struct HttpSource {
    url: String,
    agent: ureq::Agent,
    credential: Option<Credential>,
}

impl HttpSource {
    /// `http://` is refused for hosts other than this machine unless
    /// `allow_insecure`: a bearer token must not cross a network in clear.
    pub fn new(
        url: &str,
        credential: Option<Credential>,
        allow_insecure: bool,
        transport: &TransportOptions,
    ) -> Result<Self, FetchError> {
        check_url(url, allow_insecure)?;
        Ok(HttpSource {
            url: url.to_string(),
            agent: transport::agent(transport)?,
            credential,
        })
    }

    /// Asks for the bundle, conditionally on `known`.
    pub fn fetch(&self, known: &Validators, limit: u64) -> Result<Fetched, FetchError> {
        let mut req = self
            .agent
            .get(&self.url)
            .set("Accept", "application/octet-stream, */*;q=0.5");
        if let Some(c) = &self.credential {
            req = req.set("Authorization", &c.header()?);
        }
        if let Some(etag) = &known.etag {
            req = req.set("If-None-Match", etag);
        }
        if let Some(lm) = &known.last_modified {
            req = req.set("If-Modified-Since", lm);
        }
        let resp = req.call().map_err(|e| transport::error_of(&self.url, e))?;
        match resp.status() {
            304 => Ok(Fetched::NotModified),
            200 => {
                let validators = Validators {
                    etag: resp.header("etag").map(str::to_string),
                    last_modified: resp.header("last-modified").map(str::to_string),
                };
                let bytes = transport::read_body(resp, "the bundle", limit)?;
                Ok(Fetched::Body { bytes, validators })
            }
            other => Err(FetchError::Status {
                url: super::redact_url(&self.url),
                status: other,
                message: " (expected 200 or 304)".into(),
            }),
        }
    }
}

/// What a bundle URL may be: `https://`, or `http://` to this machine (or
/// anywhere with `allow_insecure`), with no credentials in it.
pub fn check_url(url: &str, allow_insecure: bool) -> Result<(), FetchError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| FetchError::Config(format!("`{url}` is not an http:// or https:// URL")))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(FetchError::Config(
            "the URL holds credentials; give them in a file or environment variable (bearer_token_file, basic_auth_env, ...)".into(),
        ));
    }
    if authority.is_empty() {
        return Err(FetchError::Config(format!(
            "`{}` names no host",
            super::redact_url(url)
        )));
    }
    match scheme {
        "https" => Ok(()),
        "http" if allow_insecure || is_loopback_host(super::host_of(authority)) => Ok(()),
        "http" => Err(FetchError::Config(format!(
            "`{url}` is plain HTTP to another host; use https://, or set allow_insecure = true"
        ))),
        other => Err(FetchError::Config(format!(
            "scheme `{other}` is not http or https"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn plain_http_is_for_loopback_unless_insecure_is_allowed() {
        assert!(check_url("http://127.0.0.1:8000/a.bundle", false).is_ok());
        assert!(check_url("https://example.com/a.bundle", false).is_ok());
        let e = check_url("http://example.com/a.bundle", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_insecure"), "{e}");
        assert!(check_url("http://example.com/a.bundle", true).is_ok());
        let e = check_url("https://u:p@example.com/a.bundle", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("credentials"), "{e}");
        assert!(check_url("ftp://example.com/a", true).is_err());
    }
}
