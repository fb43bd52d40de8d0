//! `[[bundles]]` (each served bundle and where it comes from) and
//! `[[policy_sets]]`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, LimitsConfig};

/// One served bundle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleConfig {
    pub name: String,
    /// Answer decisions that name no bundle.
    #[serde(default)]
    pub default: bool,
    /// A bundle file, re-read when it changes.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A directory; every `*.bundle` in it is a candidate, highest version wins.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Development: build this policy directory at start…
    #[serde(default)]
    pub build: Option<PathBuf>,
    /// …and sign it with this key (created if missing).
    #[serde(default)]
    pub sign_with: Option<PathBuf>,
    /// An HTTP(S) URL of a bundle file, polled with conditional requests.
    #[serde(default)]
    pub url: Option<String>,
    /// An OCI registry reference `HOST/REPOSITORY:TAG`, polled.
    #[serde(default)]
    pub oci: Option<String>,
    /// Overrides `[sources] poll_interval_ms` for this bundle.
    #[serde(default)]
    pub poll_interval_ms: Option<u64>,
    /// Overrides `[sources] stale_after_ms` for this bundle.
    #[serde(default)]
    pub stale_after_ms: Option<u64>,
    /// `oci`: speak plain HTTP to the registry (loopback only, unless
    /// `allow_insecure`).
    #[serde(default)]
    pub plain_http: bool,
    /// Allow plain HTTP (`http://` URLs, `plain_http`) to hosts other than
    /// this machine.
    #[serde(default)]
    pub allow_insecure: bool,
    /// PEM CA certificates trusted for this source's TLS, instead of the
    /// built-in web PKI roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `url`: a file holding a bearer token.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// `url`: an environment variable holding a bearer token.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// A file holding `USER:PASSWORD` (HTTP basic; for `oci`, the
    /// registry login).
    #[serde(default)]
    pub basic_auth_file: Option<PathBuf>,
    /// An environment variable holding `USER:PASSWORD`.
    #[serde(default)]
    pub basic_auth_env: Option<String>,
    /// `oci`: a Docker `config.json` to take the registry login from
    /// (default `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
    #[serde(default)]
    pub docker_config: Option<PathBuf>,
    /// This bundle's own sandbox limits (`memory_mib`, `deadline_ms`,
    /// `warm_instances`), each replacing the `[limits]` one.
    #[serde(default)]
    pub limits: crate::policy::BundleLimits,
}

impl BundleConfig {
    /// An entry with only a name (no source).
    pub fn named(name: &str) -> Self {
        BundleConfig {
            name: name.to_string(),
            default: false,
            file: None,
            dir: None,
            build: None,
            sign_with: None,
            url: None,
            oci: None,
            poll_interval_ms: None,
            stale_after_ms: None,
            plain_http: false,
            allow_insecure: false,
            ca_file: None,
            bearer_token_file: None,
            bearer_token_env: None,
            basic_auth_file: None,
            basic_auth_env: None,
            docker_config: None,
            limits: Default::default(),
        }
    }

    /// The settings of remote sources: only with `url` or `oci`, each
    /// where it applies, at most one credential, plain HTTP only where
    /// allowed.
    pub(super) fn check_remote(&self) -> Result<(), ConfigError> {
        let remote = self.url.is_some() || self.oci.is_some();
        let only_remote = [
            ("poll_interval_ms", self.poll_interval_ms.is_some()),
            ("stale_after_ms", self.stale_after_ms.is_some()),
            ("allow_insecure", self.allow_insecure),
            ("ca_file", self.ca_file.is_some()),
            ("basic_auth_file", self.basic_auth_file.is_some()),
            ("basic_auth_env", self.basic_auth_env.is_some()),
        ];
        let only_url = [
            ("bearer_token_file", self.bearer_token_file.is_some()),
            ("bearer_token_env", self.bearer_token_env.is_some()),
        ];
        let only_oci = [
            ("plain_http", self.plain_http),
            ("docker_config", self.docker_config.is_some()),
        ];
        for (key, set) in only_remote {
            if set && !remote {
                return Err(ConfigError::Invalid(format!(
                    "`{key}` only applies to `url` or `oci` sources"
                )));
            }
        }
        for (key, set) in only_url {
            if set && self.url.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "`{key}` only applies to a `url` source"
                )));
            }
        }
        for (key, set) in only_oci {
            if set && self.oci.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "`{key}` only applies to an `oci` source"
                )));
            }
        }
        for (key, v) in [
            ("poll_interval_ms", self.poll_interval_ms),
            ("stale_after_ms", self.stale_after_ms),
        ] {
            if v == Some(0) {
                return Err(ConfigError::Invalid(format!(
                    "`{key}` must be greater than 0"
                )));
            }
        }
        let credentials = [
            self.bearer_token_file.is_some(),
            self.bearer_token_env.is_some(),
            self.basic_auth_file.is_some(),
            self.basic_auth_env.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if credentials > 1 {
            return Err(ConfigError::Invalid("give at most one of `bearer_token_file`, `bearer_token_env`, `basic_auth_file`, `basic_auth_env`".into()));
        }
        if let Some(url) = &self.url {
            crate::distribution::http::check_url(url, self.allow_insecure)
                .map_err(|e| ConfigError::at("url", e))?;
        }
        if let Some(oci) = &self.oci {
            let r: crate::distribution::oci::Reference =
                oci.parse().map_err(|e| ConfigError::at("oci", e))?;
            crate::distribution::oci::check_plain_http(
                &r.registry,
                self.plain_http,
                self.allow_insecure,
            )
            .map_err(|e| ConfigError::at("oci", e))?;
        }
        Ok(())
    }

    /// The credential configured for a remote source, if any.
    pub fn credential(&self) -> Option<crate::distribution::credentials::Credential> {
        use crate::distribution::credentials::{Credential, SecretSource};
        if let Some(p) = &self.bearer_token_file {
            return Some(Credential::Bearer(SecretSource::File(p.clone())));
        }
        if let Some(v) = &self.bearer_token_env {
            return Some(Credential::Bearer(SecretSource::Env(v.clone())));
        }
        if let Some(p) = &self.basic_auth_file {
            return Some(Credential::Basic(SecretSource::File(p.clone())));
        }
        self.basic_auth_env
            .as_ref()
            .map(|v| Credential::Basic(SecretSource::Env(v.clone())))
    }
}

/// A policy set: usable wherever a bundle name is; every member decides
/// and the most restrictive answer wins (docs/policy-sets.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySetConfig {
    pub name: String,
    /// Bundle names, in the order their findings are listed.
    pub members: Vec<String>,
    /// Answer decisions (and deployments) that name no bundle.
    #[serde(default)]
    pub default: bool,
}

/// Checks each `[[bundles]]` entry: a valid name given once, at most one
/// source, remote settings only where they apply, its own limits within
/// `[limits]`. Returns the names taken, which policy sets may not reuse.
pub(super) fn validate_bundles<'a>(
    bundles: &'a [BundleConfig],
    l: &LimitsConfig,
) -> Result<BTreeSet<&'a str>, ConfigError> {
    let mut names = BTreeSet::new();
    for (i, b) in bundles.iter().enumerate() {
        crate::bundle::manifest::check_name(&b.name)
            .map_err(|e| ConfigError::at(format!("bundles[{i}]"), e))?;
        if !names.insert(b.name.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "bundles[{i}]: bundle '{}' is configured twice",
                b.name
            )));
        }
        let sources = [
            b.file.is_some(),
            b.dir.is_some(),
            b.build.is_some(),
            b.url.is_some(),
            b.oci.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if sources > 1 {
            return Err(ConfigError::Invalid(format!(
                "bundles[{i}] ('{}'): give at most one of `file`, `dir`, `build`, `url`, `oci`",
                b.name
            )));
        }
        b.check_remote()
            .map_err(|e| ConfigError::at(format!("bundles[{i}] ('{}')", b.name), e))?;
        let own = &b.limits;
        if own.memory_mib.is_some_and(|m| m == 0 || m > 4096) {
            return Err(ConfigError::Invalid(format!(
                "bundles[{i}] ('{}'): limits.memory_mib must be 1-4096",
                b.name
            )));
        }
        if let Some(d) = own.deadline_ms
            && (d == 0 || d >= l.request_timeout_ms)
        {
            return Err(ConfigError::Invalid(format!(
                "bundles[{i}] ('{}'): limits.deadline_ms ({d}) must be greater than 0 and below limits.request_timeout_ms ({})",
                b.name, l.request_timeout_ms
            )));
        }
        if b.sign_with.is_some() && b.build.is_none() {
            return Err(ConfigError::Invalid(format!(
                "bundles[{i}] ('{}'): `sign_with` only applies to `build`",
                b.name
            )));
        }
    }
    Ok(names)
}

/// Checks each `[[policy_sets]]` entry: a valid name no bundle or other set
/// has, at least one member, members named once and none a set.
pub(super) fn validate_policy_sets<'a>(
    sets: &'a [PolicySetConfig],
    names: &mut BTreeSet<&'a str>,
) -> Result<(), ConfigError> {
    for (i, set) in sets.iter().enumerate() {
        crate::bundle::manifest::check_name(&set.name)
            .map_err(|e| ConfigError::at(format!("policy_sets[{i}]"), e))?;
        if !names.insert(set.name.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "policy_sets[{i}]: '{}' is already the name of a bundle or another set",
                set.name
            )));
        }
        if set.members.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "policy_sets[{i}] ('{}'): `members` must name at least one bundle",
                set.name
            )));
        }
        let mut members = BTreeSet::new();
        for (j, m) in set.members.iter().enumerate() {
            crate::bundle::manifest::check_name(m)
                .map_err(|e| ConfigError::at(format!("policy_sets[{i}].members[{j}]"), e))?;
            if !members.insert(m.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "policy_sets[{i}].members[{j}]: '{m}' is listed twice in set '{}'",
                    set.name
                )));
            }
            if sets.iter().any(|s| &s.name == m) {
                return Err(ConfigError::Invalid(format!(
                    "policy_sets[{i}].members[{j}]: '{m}' is a policy set; members are bundles (sets do not nest)"
                )));
            }
        }
    }
    Ok(())
}

/// Which bundle answers a decision that names none: the one marked as the
/// default (`marked`), else the only bundle there is; among several with
/// none marked there is no default, and a decision must name its bundle.
/// The registry is handed this answer (`RegistrySettings::default_bundle`).
pub fn default_bundle<'a>(
    marked: Option<&'a str>,
    mut names: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    if marked.is_some() {
        return marked;
    }
    let only = names.next()?;
    names.next().is_none().then_some(only)
}

#[cfg(test)]
mod tests {
    use super::default_bundle;

    #[test]
    fn the_default_bundle_is_the_marked_one_else_the_only_one() {
        let names = || ["a", "b"].into_iter();
        assert_eq!(default_bundle(Some("b"), names()), Some("b"));
        assert_eq!(default_bundle(None, ["a"].into_iter()), Some("a"));
        assert_eq!(default_bundle(None, names()), None);
        assert_eq!(default_bundle(None, std::iter::empty()), None);
    }
}
