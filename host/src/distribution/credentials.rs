//! Credentials for sources: read from a file or an environment variable
//! at each use (so they can be rotated without a restart), never from the
//! configuration text; and registry logins from a Docker `config.json`.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::FetchError;

/// Where a secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

impl SecretSource {
    /// The secret, without surrounding whitespace (files end in newlines).
    pub fn read(&self) -> Result<String, FetchError> {
        let value = match self {
            SecretSource::File(p) => std::fs::read_to_string(p)
                .map_err(|e| FetchError::Credentials(format!("{}: {e}", p.display())))?,
            SecretSource::Env(var) => std::env::var(var).map_err(|_| {
                FetchError::Credentials(format!("environment variable {var} is not set"))
            })?,
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            return Err(FetchError::Credentials(format!("{self} is empty")));
        }
        Ok(value)
    }
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::File(p) => write!(f, "file {}", p.display()),
            SecretSource::Env(v) => write!(f, "environment variable {v}"),
        }
    }
}

/// A credential a source presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer TOKEN`.
    Bearer(SecretSource),
    /// `USER:PASSWORD`, sent as HTTP basic authentication (and, to an OCI
    /// registry, to its token service).
    Basic(SecretSource),
}

impl Credential {
    /// The `Authorization` header value.
    pub fn header(&self) -> Result<String, FetchError> {
        match self {
            Credential::Bearer(s) => Ok(format!("Bearer {}", s.read()?)),
            Credential::Basic(_) => {
                let (user, password) = self.basic()?.unwrap_or_default();
                Ok(basic_header(&user, &password))
            }
        }
    }

    /// The user and password of a basic credential.
    pub fn basic(&self) -> Result<Option<(String, String)>, FetchError> {
        let Credential::Basic(s) = self else {
            return Ok(None);
        };
        let value = s.read()?;
        let (user, password) = value
            .split_once(':')
            .ok_or_else(|| FetchError::Credentials(format!("{s} must hold USER:PASSWORD")))?;
        Ok(Some((user.to_string(), password.to_string())))
    }
}

pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// Whether a registry's credentials may be sent to `url`, which the
/// registry named (a token realm, an upload location): only to the
/// registry's own host (any port), and there over HTTPS unless the
/// registry itself is spoken to in plain HTTP (loopback, or
/// `allow_insecure`). `allow_insecure` lifts the host rule too, for
/// registries whose token service lives on another host and that the
/// operator has decided to trust with the login.
pub fn may_receive(registry_base: &str, url: &str, allow_insecure: bool) -> bool {
    if allow_insecure {
        return true;
    }
    let (Some((base_scheme, base_host)), Some((scheme, host))) =
        (scheme_host(registry_base), scheme_host(url))
    else {
        return false;
    };
    base_host.eq_ignore_ascii_case(&host)
        && (scheme.eq_ignore_ascii_case("https") || base_scheme.eq_ignore_ascii_case(&scheme))
}

/// Whether `url` is on the registry's own host (any port).
pub fn same_host(registry_base: &str, url: &str) -> bool {
    match (scheme_host(registry_base), scheme_host(url)) {
        (Some((_, a)), Some((_, b))) => a.eq_ignore_ascii_case(&b),
        _ => false,
    }
}

/// `https://user@host:port/path` → ("https", "host").
fn scheme_host(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = super::host_of(authority);
    (!host.is_empty()).then(|| (scheme.to_string(), host.to_string()))
}

/// The Docker `config.json` to read registry logins from: `explicit`, else
/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, if it exists.
pub fn docker_config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let candidate = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".docker/config.json"),
    };
    candidate.is_file().then_some(candidate)
}

/// The login for `registry` (`host[:port]`) in a Docker `config.json`
/// (`auths.<registry>.auth`, base64 of `user:password`, or `username` and
/// `password`). Credential helpers (`credsStore`, `credHelpers`) are not
/// run: a service should not execute programs named in a user's file.
pub fn docker_login(path: &Path, registry: &str) -> Result<Option<(String, String)>, FetchError> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        auths: std::collections::BTreeMap<String, Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
    }
    let err = |m: String| FetchError::Credentials(format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let file: File = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    let key_host = |k: &str| {
        let k = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        k.split('/').next().unwrap_or(k).to_string()
    };
    let Some((key, entry)) = file.auths.iter().find(|(k, _)| key_host(k) == registry) else {
        return Ok(None);
    };
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some((u.clone(), p.clone())));
    }
    let Some(auth) = &entry.auth else {
        return Ok(None);
    };
    let decoded = STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| err(format!("auths.{key}.auth is not base64 of USER:PASSWORD")))?;
    let (u, p) = decoded
        .split_once(':')
        .ok_or_else(|| err(format!("auths.{key}.auth is not base64 of USER:PASSWORD")))?;
    Ok(Some((u.to_string(), p.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_login_is_found_by_registry_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = STANDARD.encode("alice:pw:with:colons");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://registry.example.com/v1/":{{"auth":"{auth}"}},"127.0.0.1:5000":{{"username":"bob","password":"x"}}}}}}"#
            ),
        )
        .unwrap();
        assert_eq!(
            docker_login(&path, "registry.example.com").unwrap(),
            Some(("alice".into(), "pw:with:colons".into()))
        );
        assert_eq!(
            docker_login(&path, "127.0.0.1:5000").unwrap(),
            Some(("bob".into(), "x".into()))
        );
        assert_eq!(docker_login(&path, "other.example.com").unwrap(), None);
    }

    #[test]
    fn a_basic_secret_without_a_colon_is_refused_naming_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basic");
        std::fs::write(&path, "justauser\n").unwrap();
        let e = Credential::Basic(SecretSource::File(path.clone()))
            .header()
            .unwrap_err()
            .to_string();
        assert!(e.contains("USER:PASSWORD") && e.contains("basic"), "{e}");
    }
}

#[cfg(test)]
mod forwarding_tests {
    use super::*;

    #[test]
    fn credentials_go_only_to_the_registrys_own_host() {
        let base = "https://registry.example.com";
        assert!(may_receive(
            base,
            "https://registry.example.com/token",
            false
        ));
        assert!(may_receive(
            base,
            "https://registry.example.com:8443/token",
            false
        ));
        assert!(!may_receive(base, "https://auth.example.com/token", false));
        assert!(!may_receive(
            base,
            "http://registry.example.com/token",
            false
        ));
        assert!(may_receive(base, "https://auth.example.com/token", true));
        // A loopback registry in plain HTTP: its own host, same scheme.
        let local = "http://127.0.0.1:5000";
        assert!(may_receive(local, "http://127.0.0.1:5001/token", false));
        assert!(!may_receive(local, "http://127.0.0.2:5000/token", false));
        assert!(!may_receive(
            base,
            "https://user@evil.example/registry.example.com",
            false
        ));
        assert!(same_host(local, "http://127.0.0.1:9/upload"));
        assert!(!same_host(local, "http://127.0.0.2:5000/upload"));
        assert!(!same_host(local, "not a url"));
    }
}
