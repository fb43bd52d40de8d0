//! The subset of the OCI distribution API that bundles need: resolve a tag
//! to an image manifest, fetch its one layer, and publish (blob uploads and
//! a manifest put), with anonymous, basic and `WWW-Authenticate: Bearer`
//! token authentication.
//!
//! Written over `ureq` rather than with the `oci-client` crate: that crate
//! is async over `reqwest` (with its own hyper client stack, TLS setup and
//! JWT and canonical-JSON dependencies), none of which this service builds
//! today, for five requests a bundle needs. The service's sources poll on
//! blocking threads with the `ureq` agent it already has; the protocol
//! subset here is small enough to read in one sitting and is exercised
//! against a real registry (`tests/registry_bundles.rs`).
//!
//! The artifact layout (`docs/distribution.md`): an OCI image manifest
//! with `artifactType` [`ARTIFACT_TYPE`], the empty config descriptor, and
//! exactly one layer of media type [`LAYER_MEDIA_TYPE`] whose bytes are the
//! bundle file exactly as `stagegate build`/`sign` wrote it (already a
//! gzip-compressed tar).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::credentials::{self, Credential, basic_header};
use super::transport::{self, TransportOptions};
use super::{FetchError, host_of, is_loopback_host, sha256_digest};

pub const ARTIFACT_TYPE: &str = "application/vnd.stagegate.bundle.v1";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.stagegate.bundle.v1.tar+gzip";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI empty descriptor's media type, and its content `{}`.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";
/// A manifest is a few hundred bytes; this bounds a hostile one.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// `HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]`, optionally prefixed `oci://`.
/// The registry host is always explicit: there is no default registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    /// A tag, or a `sha256:` digest.
    pub reference: String,
}

impl std::str::FromStr for Reference {
    type Err = FetchError;

    fn from_str(s: &str) -> Result<Self, FetchError> {
        let bad = |why: &str| {
            FetchError::Config(format!(
                "`{s}` is not an OCI reference HOST/REPOSITORY:TAG: {why}"
            ))
        };
        let rest = s.strip_prefix("oci://").unwrap_or(s);
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no repository after the registry host"))?;
        if registry.is_empty() || registry.contains('@') {
            return Err(bad("the registry host is empty or holds credentials"));
        }
        let (repository, reference) = if let Some((r, d)) = path.split_once('@') {
            if !d.starts_with("sha256:") || d.len() != 71 {
                return Err(bad("a digest reference must be sha256:<64 hex digits>"));
            }
            (r, d.to_string())
        } else {
            match path.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => (r, t.to_string()),
                _ => (path, "latest".to_string()),
            }
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if !repo_ok {
            return Err(bad(
                "the repository must be lowercase letters, digits, '.', '_', '-' and '/'",
            ));
        }
        let tag_ok = reference.starts_with("sha256:")
            || (!reference.is_empty()
                && reference.len() <= 128
                && reference
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        if !tag_ok {
            return Err(bad("the tag must be up to 128 of [A-Za-z0-9._-]"));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            reference,
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.reference.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        write!(
            f,
            "{}/{}{sep}{}",
            self.registry, self.repository, self.reference
        )
    }
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// An image manifest, as far as bundles use it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// A resolved tag: the manifest's digest and the bundle layer it names.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub digest: String,
    pub layer: Descriptor,
}

/// The answer to a conditional resolve.
#[derive(Debug)]
pub enum Resolution {
    /// The tag still names the manifest digest given.
    Unchanged,
    Manifest(Resolved),
}

/// How a client reaches a registry.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Speak plain HTTP: for loopback registries, or anywhere with
    /// `allow_insecure`.
    pub plain_http: bool,
    pub allow_insecure: bool,
    /// Basic credentials (`USER:PASSWORD` in a file or variable); without
    /// them, the Docker `config.json` login for the registry, if any.
    pub credential: Option<Credential>,
    pub docker_config: Option<std::path::PathBuf>,
    pub transport: TransportOptions,
}

/// Which credentials the registry asked for last time, so a poll does not
/// pay a 401 round trip each time.
#[derive(Debug, Clone)]
enum Session {
    Anonymous,
    Basic,
    /// A token from the registry's token service, for one scope.
    Token {
        scope: String,
        token: String,
    },
}

/// A client for one repository of one registry.
pub struct Client {
    reference: Reference,
    base: String,
    agent: ureq::Agent,
    options: ClientOptions,
    session: Mutex<Session>,
}

impl Client {
    pub fn new(reference: Reference, options: ClientOptions) -> Result<Self, FetchError> {
        check_plain_http(
            &reference.registry,
            options.plain_http,
            options.allow_insecure,
        )?;
        let scheme = if options.plain_http { "http" } else { "https" };
        Ok(Client {
            base: format!("{scheme}://{}", reference.registry),
            agent: transport::agent(&options.transport)?,
            reference,
            options,
            session: Mutex::new(Session::Anonymous),
        })
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    fn repo_url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base, self.reference.repository)
    }

    fn pull_scope(&self) -> String {
        format!("repository:{}:pull", self.reference.repository)
    }

    fn push_scope(&self) -> String {
        format!("repository:{}:pull,push", self.reference.repository)
    }

    /// Resolves the reference to its manifest and checks the layout. With
    /// `known` (the manifest digest last seen) the request is conditional
    /// (`If-None-Match`), so an unchanged tag costs one small request and no
    /// manifest body.
    pub fn resolve(&self, known: Option<&str>) -> Result<Resolution, FetchError> {
        let url = self.repo_url(&format!("manifests/{}", self.reference.reference));
        let mut headers = vec![("Accept", MANIFEST_MEDIA_TYPE.to_string())];
        if let Some(d) = known {
            headers.push(("If-None-Match", format!("\"{d}\"")));
        }
        let resp = self.send("GET", &url, &headers, None, &self.pull_scope())?;
        if resp.status() == 304 {
            return Ok(Resolution::Unchanged);
        }
        let announced = resp.header("docker-content-digest").map(str::to_string);
        let bytes = transport::read_body(resp, "the manifest", MAX_MANIFEST_BYTES)?;
        let digest = sha256_digest(&bytes);
        let what = format!("manifest of {}", self.reference);
        for expected in announced
            .iter()
            .chain(Some(&self.reference.reference).filter(|r| r.starts_with("sha256:")))
        {
            if *expected != digest {
                return Err(FetchError::Digest {
                    what: what.clone(),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        if known == Some(digest.as_str()) {
            return Ok(Resolution::Unchanged);
        }
        let layer =
            bundle_layer(&bytes).map_err(|m| FetchError::Protocol(format!("{what}: {m}")))?;
        Ok(Resolution::Manifest(Resolved { digest, layer }))
    }

    /// Fetches a blob and checks its size and digest; refuses one larger
    /// than `limit` before reading it.
    pub fn fetch_blob(&self, desc: &Descriptor, limit: u64) -> Result<Vec<u8>, FetchError> {
        let what = format!("layer {} of {}", desc.digest, self.reference);
        if desc.size > limit {
            return Err(FetchError::TooLarge { what, limit });
        }
        let url = self.repo_url(&format!("blobs/{}", desc.digest));
        let resp = self.send("GET", &url, &[], None, &self.pull_scope())?;
        let bytes = transport::read_body(resp, &what, desc.size)?;
        let actual = sha256_digest(&bytes);
        if actual != desc.digest {
            return Err(FetchError::Digest {
                what,
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Publishes `bundle` (the bundle file's bytes) under the reference's
    /// tag; returns the manifest's digest. `annotations` go on the manifest.
    pub fn push(
        &self,
        bundle: &[u8],
        title: &str,
        annotations: std::collections::BTreeMap<String, String>,
    ) -> Result<String, FetchError> {
        let config = Descriptor {
            media_type: EMPTY_MEDIA_TYPE.into(),
            digest: sha256_digest(EMPTY_CONFIG),
            size: EMPTY_CONFIG.len() as u64,
            annotations: None,
        };
        let layer = Descriptor {
            media_type: LAYER_MEDIA_TYPE.into(),
            digest: sha256_digest(bundle),
            size: bundle.len() as u64,
            annotations: Some(
                [(
                    "org.opencontainers.image.title".to_string(),
                    title.to_string(),
                )]
                .into(),
            ),
        };
        self.upload_blob(&config.digest, EMPTY_CONFIG)?;
        self.upload_blob(&layer.digest, bundle)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.into()),
            artifact_type: Some(ARTIFACT_TYPE.into()),
            config,
            layers: vec![layer],
            annotations: Some(annotations).filter(|a| !a.is_empty()),
        };
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| FetchError::Protocol(format!("cannot encode the manifest: {e}")))?;
        let url = self.repo_url(&format!("manifests/{}", self.reference.reference));
        self.send(
            "PUT",
            &url,
            &[("Content-Type", MANIFEST_MEDIA_TYPE.into())],
            Some(&bytes),
            &self.push_scope(),
        )?;
        Ok(sha256_digest(&bytes))
    }

    /// Uploads a blob unless the registry has it: a monolithic upload
    /// (`POST` for a session, `PUT` with the digest).
    fn upload_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), FetchError> {
        let scope = self.push_scope();
        let head = self.repo_url(&format!("blobs/{digest}"));
        match self.send("HEAD", &head, &[], None, &scope) {
            Ok(_) => return Ok(()),
            Err(FetchError::Status { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        let start = self.repo_url("blobs/uploads/");
        let resp = self.send("POST", &start, &[], Some(&[]), &scope)?;
        let location = resp
            .header("location")
            .ok_or_else(|| {
                FetchError::Protocol(format!(
                    "{}: the upload session has no Location",
                    super::redact_url(&start)
                ))
            })?
            .to_string();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={digest}");
        let headers = [("Content-Type", "application/octet-stream".to_string())];
        if !credentials::same_host(&self.base, &url) {
            // A storage backend on another host carries its own
            // authorisation in the URL; the registry's never goes there.
            self.once("PUT", &url, &headers, Some(bytes), None)
                .map_err(|e| transport::error_of(&url, *e))?;
            return Ok(());
        }
        self.send("PUT", &url, &headers, Some(bytes), &scope)?;
        Ok(())
    }

    /// Sends a request with the session's credentials; on a 401 follows
    /// the challenge once (basic, or a token for `scope`) and retries.
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
        scope: &str,
    ) -> Result<ureq::Response, FetchError> {
        let session = self
            .session
            .lock()
            .map(|s| s.clone())
            .unwrap_or(Session::Anonymous);
        let auth = match &session {
            Session::Anonymous => None,
            Session::Basic => self.login()?.map(|(u, p)| basic_header(&u, &p)),
            Session::Token { scope: s, token } if s == scope => Some(format!("Bearer {token}")),
            Session::Token { .. } => None,
        };
        let first = match self.once(method, url, headers, body, auth.as_deref()) {
            Ok(resp) => return Ok(resp),
            Err(e) => *e,
        };
        let ureq::Error::Status(401, resp) = first else {
            return Err(transport::error_of(url, first));
        };
        let challenge = resp.header("www-authenticate").unwrap_or("").to_string();
        let (session, auth) = self.answer(&challenge, scope, url)?;
        if let Ok(mut s) = self.session.lock() {
            *s = session;
        }
        self.once(method, url, headers, body, Some(&auth))
            .map_err(|e| transport::error_of(url, *e))
    }

    fn once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
        auth: Option<&str>,
    ) -> Result<ureq::Response, Box<ureq::Error>> {
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        if let Some(a) = auth {
            req = req.set("Authorization", a);
        }
        match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        }
        .map_err(Box::new)
    }

    /// The login for this registry: configured basic credentials, else the
    /// Docker `config.json` entry.
    fn login(&self) -> Result<Option<(String, String)>, FetchError> {
        if let Some(c) = &self.options.credential {
            return c.basic();
        }
        match credentials::docker_config_path(self.options.docker_config.as_deref()) {
            Some(path) => credentials::docker_login(&path, &self.reference.registry),
            None => Ok(None),
        }
    }

    /// Answers a `WWW-Authenticate` challenge: returns the session to keep
    /// and the `Authorization` value to retry with.
    fn answer(
        &self,
        challenge: &str,
        scope: &str,
        url: &str,
    ) -> Result<(Session, String), FetchError> {
        let unauthorized = |why: &str| FetchError::Status {
            url: super::redact_url(url),
            status: 401,
            message: format!(": {why}"),
        };
        let (scheme, params) = parse_challenge(challenge);
        let login = self.login()?;
        if scheme.eq_ignore_ascii_case("basic") {
            let (u, p) = login.ok_or_else(|| {
                unauthorized("the registry wants basic credentials and none are configured (basic_auth_file, basic_auth_env or a Docker config.json login)")
            })?;
            return Ok((Session::Basic, basic_header(&u, &p)));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized(&format!(
                "unsupported authentication challenge `{challenge}`"
            )));
        }
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| unauthorized("the Bearer challenge names no realm"))?;
        // The token service may be elsewhere; the same rule as for the
        // registry holds: no credentials over plain HTTP to another host.
        super::http::check_url(&realm, self.options.allow_insecure)
            .map_err(|e| FetchError::Config(format!("token realm: {e}")))?;
        let mut req = self.agent.get(&realm);
        if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
            req = req.query("service", service);
        }
        let scope = params
            .iter()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| scope.to_string());
        req = req.query("scope", &scope);
        if let Some((u, p)) = &login {
            if credentials::may_receive(&self.base, &realm, self.options.allow_insecure) {
                req = req.set("Authorization", &basic_header(u, p));
            } else {
                // Asked anonymously: enough for public repositories; a
                // private one answers 401 below, saying why.
                tracing::warn!(
                    registry = %self.reference.registry,
                    realm = %super::redact_url(&realm),
                    "the token realm is not on the registry's host (or not HTTPS): asking it without the registry's credentials; set allow_insecure = true to send them"
                );
            }
        }
        let resp = req.call().map_err(|e| transport::error_of(&realm, e))?;
        #[derive(Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = transport::read_body(resp, "the token answer", 1 << 20)?;
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Protocol(format!("token service {realm}: {e}")))?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| FetchError::Protocol(format!("token service {realm}: no token")))?;
        let auth = format!("Bearer {token}");
        Ok((Session::Token { scope, token }, auth))
    }
}

/// `plain_http` is for registries on this machine; elsewhere it needs
/// `allow_insecure` too.
pub fn check_plain_http(
    registry: &str,
    plain_http: bool,
    allow_insecure: bool,
) -> Result<(), FetchError> {
    if plain_http && !allow_insecure && !is_loopback_host(host_of(registry)) {
        return Err(FetchError::Config(format!(
            "plain_http is refused for {registry}, which is not a loopback address: set allow_insecure = true to speak plain HTTP to it"
        )));
    }
    Ok(())
}

/// The bundle layer of a manifest, after checking the layout.
pub(crate) fn bundle_layer(bytes: &[u8]) -> Result<Descriptor, FetchError> {
    let m: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| FetchError::Protocol(format!("not an image manifest: {e}")))?;
    if m.schema_version != 2 {
        return Err(FetchError::Protocol(format!(
            "schemaVersion is {}, not 2",
            m.schema_version
        )));
    }
    if let Some(mt) = &m.media_type
        && mt != MANIFEST_MEDIA_TYPE
    {
        return Err(FetchError::Protocol(format!(
            "mediaType is {mt}, not {MANIFEST_MEDIA_TYPE}"
        )));
    }
    if m.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        return Err(FetchError::Protocol(format!(
            "artifactType is {}, not {ARTIFACT_TYPE}: not a stagegate bundle",
            m.artifact_type.as_deref().unwrap_or("absent")
        )));
    }
    let [layer] = m.layers.as_slice() else {
        return Err(FetchError::Protocol(format!(
            "{} layers, a bundle has exactly one",
            m.layers.len()
        )));
    };
    if layer.media_type != LAYER_MEDIA_TYPE {
        return Err(FetchError::Protocol(format!(
            "the layer's mediaType is {}, not {LAYER_MEDIA_TYPE}",
            layer.media_type
        )));
    }
    if !layer.digest.starts_with("sha256:") || layer.digest.len() != 71 {
        return Err(FetchError::Protocol(format!(
            "the layer digest {} is not sha256",
            layer.digest
        )));
    }
    Ok(layer.clone())
}

/// `Bearer realm="…",service="…",scope="…"` → ("Bearer", [(key, value)]).
fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.push((key, value.to_string()));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_with_tag_digest_or_default_tag() {
        let r: Reference = "oci://127.0.0.1:5000/compliance/iso42001:1"
            .parse()
            .unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "compliance/iso42001");
        assert_eq!(r.reference, "1");
        let r: Reference = "registry.example.com/a/b".parse().unwrap();
        assert_eq!(r.reference, "latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r: Reference = format!("registry.example.com/a@{d}").parse().unwrap();
        assert_eq!(r.reference, d);
        assert_eq!(r.to_string(), format!("registry.example.com/a@{d}"));
        for bad in [
            "iso42001",
            "host/Upper:1",
            "host/a:b/c:",
            "host/a@md5:1",
            "u:p@host/a:1",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bearer_challenge_yields_realm_service_and_scope() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(
            params,
            vec![
                ("realm".into(), "https://auth.example.com/token".into()),
                ("service".into(), "registry.example.com".into()),
                ("scope".into(), "repository:a/b:pull".into()),
            ]
        );
    }

    #[test]
    fn plain_http_to_another_host_needs_allow_insecure() {
        assert!(check_plain_http("127.0.0.1:5000", true, false).is_ok());
        assert!(check_plain_http("localhost:5000", true, false).is_ok());
        let e = check_plain_http("registry.example.com", true, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_insecure"), "{e}");
        assert!(check_plain_http("registry.example.com", true, true).is_ok());
        assert!(check_plain_http("registry.example.com", false, false).is_ok());
    }

    #[test]
    fn manifests_of_other_artifacts_are_refused_naming_the_field() {
        let layer = |mt: &str| serde_json::json!({"mediaType": mt, "digest": format!("sha256:{}", "b".repeat(64)), "size": 3});
        let manifest = |artifact: &str, layers: Vec<serde_json::Value>| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "artifactType": artifact,
                "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": sha256_digest(b"{}"), "size": 2},
                "layers": layers,
            }))
            .unwrap()
        };
        assert!(bundle_layer(&manifest(ARTIFACT_TYPE, vec![layer(LAYER_MEDIA_TYPE)])).is_ok());
        let e = bundle_layer(&manifest(
            "application/vnd.other",
            vec![layer(LAYER_MEDIA_TYPE)],
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("artifactType"), "{e}");
        let e = bundle_layer(&manifest(
            ARTIFACT_TYPE,
            vec![layer(LAYER_MEDIA_TYPE), layer(LAYER_MEDIA_TYPE)],
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("2 layers"), "{e}");
        let e = bundle_layer(&manifest(ARTIFACT_TYPE, vec![layer("application/x-tar")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mediaType"), "{e}");
    }
}
