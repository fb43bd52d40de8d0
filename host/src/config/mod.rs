//! `stagegate serve` configuration: a TOML file, or embedded defaults.
//!
//! Every field has a default, so a config file names only what it changes.
//! Unknown keys are errors: a misspelt `min_signature = 2` that silently
//! kept the default of 1 would weaken the trust policy unnoticed.

pub mod admission;
mod bundles;
mod capacity;
mod console;
mod evidence;
#[cfg(test)]
mod example;
mod integrations;
mod limits;
mod records;
mod sources;
mod tls;
mod webhooks;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::auth::{Role, TokenConfig};
pub use bundles::{BundleConfig, PolicySetConfig, default_bundle};
pub use capacity::CapacityConfig;
pub use console::ConsoleConfig;
pub use evidence::{EvidenceConfig, ReceiptsConfig};
pub(crate) use integrations::environment_key;
pub use integrations::{
    AllowedImages, AuthzConfig, GithubConfig, GithubEnvironment, IntegrationsConfig,
    KubernetesConfig,
};
pub use limits::{LimitsConfig, TrustConfig};
pub use records::{RecordsConfig, SchedulerConfig};
pub use sources::SourcesConfig;
pub use tls::{TlsConfig, TlsFiles};
pub use webhooks::WebhooksConfig;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on. Without access tokens only loopback is used.
    pub listen: SocketAddr,
    /// A second, HTTPS address serving the same API (certificate and key
    /// in `[tls]`). Without access tokens only loopback is used.
    pub listen_tls: Option<SocketAddr>,
    /// The HTTPS listener's certificate and key.
    pub tls: TlsConfig,
    /// Where state lives: active bundles, compiled-component cache, records.
    pub data_dir: PathBuf,
    /// Keep compiled components in `DATA_DIR/cache/components` so that a
    /// restart does not recompile. The cache holds native code that the
    /// service runs as is; turn it off where `data_dir` cannot be kept
    /// writable by this service alone.
    pub cache: bool,
    /// `pretty` (for people) or `json` (for log pipelines).
    pub log_format: LogFormat,
    pub trust: TrustConfig,
    pub limits: LimitsConfig,
    /// Bundles to serve; each may name a source that is watched for new
    /// versions. Bundles uploaded over HTTP need no entry.
    pub bundles: Vec<BundleConfig>,
    /// Policy sets: names that answer with several bundles combined
    /// (docs/policy-sets.md).
    pub policy_sets: Vec<PolicySetConfig>,
    pub records: RecordsConfig,
    pub scheduler: SchedulerConfig,
    pub webhooks: WebhooksConfig,
    /// Which keys may attest a release's evidence (docs/evidence-and-receipts.md).
    pub evidence: EvidenceConfig,
    /// Signed receipts of `allow` and `promote` decisions (docs/evidence-and-receipts.md).
    pub receipts: ReceiptsConfig,
    /// Polling of remote bundle sources (`url`, `oci`): defaults each
    /// `[[bundles]]` entry may override.
    pub sources: SourcesConfig,
    /// The auditor's console at `/ui`.
    pub console: ConsoleConfig,
    /// Bearer tokens. None configured: loopback only, every caller has
    /// every role (local development).
    pub tokens: Vec<TokenConfig>,
    /// Reserved pools, limits on callers without a token, read deadlines.
    pub capacity: CapacityConfig,
    /// Workload identities: OIDC/JWT tokens accepted as callers
    /// (docs/identities.md).
    pub identities: Vec<crate::identity::IdentityConfig>,
    /// Adapters for outside systems (docs/integrations/).
    pub integrations: IntegrationsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            listen_tls: None,
            tls: TlsConfig::default(),
            data_dir: PathBuf::from("data"),
            cache: true,
            log_format: LogFormat::Pretty,
            trust: TrustConfig::default(),
            limits: LimitsConfig::default(),
            bundles: Vec::new(),
            policy_sets: Vec::new(),
            records: RecordsConfig::default(),
            scheduler: SchedulerConfig::default(),
            webhooks: WebhooksConfig::default(),
            evidence: EvidenceConfig::default(),
            receipts: ReceiptsConfig::default(),
            sources: SourcesConfig::default(),
            console: ConsoleConfig::default(),
            tokens: Vec::new(),
            capacity: Default::default(),
            identities: Vec::new(),
            integrations: Default::default(),
        }
    }
}

/// Why a configuration was refused, naming the file, the key and what is
/// wrong. Startup prints it and stops; the messages are documented
/// (docs/configuration.md) and asserted by the tests.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file at `path` could not be read.
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file at `path` holds a configuration refused for `source`.
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: Box<ConfigError>,
    },
    /// Not TOML, or a key of the wrong type or unknown.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A count, size or interval (`limits.concurrency`) set to 0.
    #[error("{key} must be greater than 0")]
    Zero { key: String },
    /// A value outside its domain or a combination of keys the service
    /// refuses; the message names the key (`bundles[2] ('x'): …`).
    #[error("{0}")]
    Invalid(String),
    /// `key` (`bundles[0] ('x')`, `url`) is refused for `source`, a
    /// check of the layer that owns the value.
    #[error("{key}: {source}")]
    At {
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A service reachable beyond loopback that trusts a key it signs
    /// with itself.
    #[error(
        "listen = {listen} is not a loopback address, but the trust store {} trusts the development signing key {} (bundles[{index}].sign_with, bundle '{bundle}'): whoever can read that key file could sign policies this service accepts. Serve bundles signed offline with a trust store that holds only their public keys, or listen on loopback for development",
        trust_dir.display(),
        key.display()
    )]
    DevelopmentKey {
        listen: SocketAddr,
        trust_dir: PathBuf,
        key: PathBuf,
        index: usize,
        bundle: String,
    },
    #[error(transparent)]
    Webhooks(#[from] crate::records::destinations::AllowEntryError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Admission(#[from] admission::AdmissionConfigError),
    #[error(transparent)]
    Tokens(#[from] crate::auth::TokenConfigError),
}

impl ConfigError {
    /// `source`, said of `key`.
    pub(crate) fn at(
        key: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ConfigError::At {
            key: key.into(),
            source: source.into(),
        }
    }
}

impl Config {
    /// The embedded defaults used by `stagegate serve` without `--config`:
    /// the reference policy built from `policies/iso42001` and signed with a
    /// development key under `data/keys` (created on first use), trusted via
    /// the same directory.
    pub fn embedded() -> Self {
        Config {
            bundles: vec![BundleConfig {
                name: "iso42001-reference".into(),
                default: true,
                file: None,
                dir: None,
                build: Some(PathBuf::from("policies/iso42001")),
                sign_with: Some(PathBuf::from("data/keys/dev")),
                ..BundleConfig::named("iso42001-reference")
            }],
            ..Config::default()
        }
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            source: Box::new(e),
        })
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges, uniqueness, one source per bundle.
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::records::destinations::Destinations::parse(&self.webhooks.allow)?;
        self.integrations.validate()?;
        crate::identity::config::validate(&self.identities)?;
        self.capacity.validate()?;
        let k = &self.integrations.kubernetes;
        admission::validate(
            k.require_token,
            k.client_ca.as_deref(),
            k.unauthenticated_per_second,
            self.listen_tls.is_some(),
        )?;
        let l = &self.limits;
        for (name, value) in [
            ("limits.body_bytes", l.body_bytes as u64),
            ("limits.upload_bytes", l.upload_bytes as u64),
            ("limits.decision_deadline_ms", l.decision_deadline_ms),
            ("limits.memory_mib", l.memory_mib as u64),
            ("limits.concurrency", l.concurrency as u64),
            ("limits.request_timeout_ms", l.request_timeout_ms),
            ("limits.watch_interval_ms", l.watch_interval_ms),
            ("limits.max_list_len", l.max_list_len as u64),
            ("limits.max_total_items", l.max_total_items as u64),
            ("limits.bundle_member_mib", l.bundle_member_mib),
            ("records.queue", self.records.queue as u64),
            ("webhooks.timeout_ms", self.webhooks.timeout_ms),
            ("webhooks.concurrency", self.webhooks.concurrency as u64),
            ("webhooks.per_receiver", self.webhooks.per_receiver as u64),
            (
                "scheduler.intensive_interval_ms",
                self.scheduler.intensive_interval_ms,
            ),
            ("scheduler.interval_ms", self.scheduler.interval_ms),
            ("scheduler.tick_ms", self.scheduler.tick_ms),
            ("scheduler.lease_ms", self.scheduler.lease_ms),
            ("webhooks.tick_ms", self.webhooks.tick_ms),
            ("webhooks.lease_ms", self.webhooks.lease_ms),
            ("trust.min_signatures", self.trust.min_signatures as u64),
            ("sources.poll_interval_ms", self.sources.poll_interval_ms),
            ("sources.max_backoff_ms", self.sources.max_backoff_ms),
            ("sources.stale_after_ms", self.sources.stale_after_ms),
            ("sources.timeout_ms", self.sources.timeout_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { key: name.into() });
            }
        }
        if l.bundle_member_mib > 1024 {
            return Err(ConfigError::Invalid(
                "limits.bundle_member_mib must be at most 1024".into(),
            ));
        }
        if l.memory_mib > 4096 {
            return Err(ConfigError::Invalid(
                "limits.memory_mib must be at most 4096".into(),
            ));
        }
        if l.decision_deadline_ms >= l.request_timeout_ms {
            return Err(ConfigError::Invalid(format!(
                "limits.decision_deadline_ms ({}) must be below limits.request_timeout_ms ({})",
                l.decision_deadline_ms, l.request_timeout_ms
            )));
        }
        let mut names = bundles::validate_bundles(&self.bundles, l)?;
        tls::validate(self.listen_tls, &self.tls)?;
        bundles::validate_policy_sets(&self.policy_sets, &mut names)?;
        let defaults = self.bundles.iter().filter(|b| b.default).count()
            + self.policy_sets.iter().filter(|s| s.default).count();
        if defaults > 1 {
            return Err(ConfigError::Invalid(
                "more than one bundle is marked `default = true`".into(),
            ));
        }
        crate::auth::validate(&self.tokens)?;
        Ok(())
    }

    /// Refuses development signing on a service that other hosts can reach.
    ///
    /// `sign_with` keeps a secret key on the serving host (the embedded
    /// configuration creates `data/keys/dev` and trusts `data/keys`). That
    /// is fine on loopback; on any other address, whoever can read the key
    /// file can sign a policy that production accepts. So a configuration
    /// that listens beyond loopback must not trust a `sign_with` key: not
    /// its directory, and not a copy of its public half.
    pub fn check_development_keys(&self) -> Result<(), ConfigError> {
        if self.listen.ip().is_loopback() && self.listen_tls.is_none_or(|a| a.ip().is_loopback()) {
            return Ok(());
        }
        let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let trust_dir = canonical(&self.trust.dir);
        for (i, b) in self.bundles.iter().enumerate() {
            let Some(key) = &b.sign_with else { continue };
            let key_dir = key.parent().filter(|d| !d.as_os_str().is_empty());
            let in_trust_dir = canonical(key_dir.unwrap_or(Path::new("."))) == trust_dir;
            let public = std::fs::read(crate::bundle::keys::public_path(key)).ok();
            let copied = public.as_ref().is_some_and(|public| {
                std::fs::read_dir(&self.trust.dir)
                    .into_iter()
                    .flatten()
                    .filter_map(Result::ok)
                    .any(|e| std::fs::read(e.path()).is_ok_and(|b| &b == public))
            });
            if in_trust_dir || copied {
                return Err(ConfigError::DevelopmentKey {
                    listen: self.listen,
                    trust_dir: self.trust.dir.clone(),
                    key: key.clone(),
                    index: i,
                    bundle: b.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Checks what remote bundle sources read from files at start: each
    /// `ca_file` must hold PEM certificates. (Credentials are read at
    /// each poll, so that they can be rotated.)
    pub fn check_sources(&self) -> Result<(), ConfigError> {
        for (i, b) in self.bundles.iter().enumerate() {
            if b.ca_file.is_some() {
                crate::distribution::TransportOptions {
                    ca_file: b.ca_file.clone(),
                    ..Default::default()
                }
                .check()
                .map_err(|e| ConfigError::at(format!("bundles[{i}] ('{}')", b.name), e))?;
            }
        }
        Ok(())
    }

    /// The monitoring schedule's intervals.
    pub fn intervals(&self) -> crate::records::schedule::Intervals {
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        crate::records::schedule::Intervals {
            intensive_ms: ms(self.scheduler.intensive_interval_ms),
            normal_ms: ms(self.scheduler.interval_ms),
            lease_ms: ms(self.scheduler.lease_ms),
        }
    }

    /// The checkpoint signing key's file.
    pub fn checkpoint_key(&self) -> PathBuf {
        self.records
            .checkpoint_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("log").join("checkpoint"))
    }

    /// The receipt signing key's file.
    pub fn receipt_key(&self) -> PathBuf {
        self.receipts
            .key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("receipts").join("receipt"))
    }

    /// The records database URL.
    pub fn database_url(&self) -> String {
        self.records
            .database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("stagegate.db").display()))
    }

    /// The name of the default bundle (or policy set) among the
    /// configured ones, by [`default_bundle`]'s
    /// rule.
    pub fn default_bundle(&self) -> Option<&str> {
        let marked = self
            .bundles
            .iter()
            .find(|b| b.default)
            .map(|b| b.name.as_str())
            .or_else(|| {
                self.policy_sets
                    .iter()
                    .find(|s| s.default)
                    .map(|s| s.name.as_str())
            });
        default_bundle(
            marked,
            self.bundles
                .iter()
                .map(|b| b.name.as_str())
                .chain(self.policy_sets.iter().map(|s| s.name.as_str())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::DecodeLimits;

    #[test]
    fn the_archive_member_limit_is_configurable_and_defaults_to_the_readers_own() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.limits.archive(), crate::bundle::ArchiveLimits::DEFAULT);
        let c = Config::parse("[limits]\nbundle_member_mib = 64\n").unwrap();
        let a = c.limits.archive();
        assert_eq!(a.max_member_bytes, 64 << 20);
        assert!(a.max_total_bytes >= a.max_member_bytes);
        assert!(a.max_archive_bytes >= a.max_member_bytes);
        for bad in ["0", "2048"] {
            let e = Config::parse(&format!("[limits]\nbundle_member_mib = {bad}\n"))
                .expect_err(bad)
                .to_string();
            assert!(e.contains("limits.bundle_member_mib"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bundles_own_limits_are_read_and_checked() {
        let c = Config::parse(
            "[[bundles]]\nname = \"py\"\nlimits = { memory_mib = 256, deadline_ms = 500, warm_instances = 4 }\n",
        )
        .unwrap();
        let own = c.bundles[0].limits;
        assert_eq!(own.memory_mib, Some(256));
        assert_eq!(own.deadline_ms, Some(500));
        assert_eq!(own.warm_instances, Some(4));
        for (limits, wanted) in [
            ("{ memory_mib = 0 }", "limits.memory_mib must be 1-4096"),
            ("{ memory_mib = 5000 }", "limits.memory_mib must be 1-4096"),
            (
                "{ deadline_ms = 999999 }",
                "below limits.request_timeout_ms",
            ),
            ("{ fuel = 1 }", "fuel"),
        ] {
            let e = Config::parse(&format!("[[bundles]]\nname = \"py\"\nlimits = {limits}\n"))
                .expect_err(limits)
                .to_string();
            assert!(e.contains(wanted), "{limits}: {e}");
        }
    }

    #[test]
    fn policy_sets_are_checked_and_may_be_the_default() {
        let bundles = "[[bundles]]\nname = \"a\"\n[[bundles]]\nname = \"b\"\n";
        let c = Config::parse(&format!(
            "{bundles}[[policy_sets]]\nname = \"s\"\nmembers = [\"a\", \"b\"]\ndefault = true\n"
        ))
        .unwrap();
        assert_eq!(c.default_bundle(), Some("s"));
        for (set, wanted) in [
            (
                "name = \"a\"\nmembers = [\"b\"]",
                "already the name of a bundle",
            ),
            ("name = \"s\"\nmembers = []", "at least one bundle"),
            (
                "name = \"s\"\nmembers = [\"a\", \"a\"]",
                "policy_sets[0].members[1]",
            ),
            ("name = \"s\"\nmembers = [\"s\"]", "sets do not nest"),
            ("name = \"S!\"\nmembers = [\"a\"]", "policy_sets[0]"),
        ] {
            let e = Config::parse(&format!("{bundles}[[policy_sets]]\n{set}\n"))
                .expect_err(set)
                .to_string();
            assert!(e.contains(wanted), "{set}: {e}");
        }
    }

    #[test]
    fn an_empty_file_means_the_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.trust.min_signatures, 1);
        assert!(c.tokens.is_empty());
    }

    #[test]
    fn a_misspelt_key_is_an_error_naming_it() {
        let e = Config::parse("[trust]\nmin_signature = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_signature"), "{e}");
    }

    #[test]
    fn a_bundle_with_two_sources_is_refused() {
        let e = Config::parse("[[bundles]]\nname = \"a\"\nfile = \"a.bundle\"\ndir = \"in\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most one of"), "{e}");
    }

    #[test]
    fn remote_source_settings_are_checked_where_they_apply() {
        let entry = |body: &str| Config::parse(&format!("[[bundles]]\nname = \"a\"\n{body}\n"));
        assert!(entry("oci = \"127.0.0.1:5000/c/a:1\"\nplain_http = true").is_ok());
        let e = entry("oci = \"registry.example.com/c/a:1\"\nplain_http = true")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bundles[0]") && e.contains("allow_insecure"),
            "{e}"
        );
        assert!(
            entry("oci = \"registry.example.com/c/a:1\"\nplain_http = true\nallow_insecure = true")
                .is_ok()
        );
        let e = entry("url = \"https://u:p@example.com/a.bundle\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("file or environment variable"), "{e}");
        let e = entry("file = \"a.bundle\"\npoll_interval_ms = 10")
            .unwrap_err()
            .to_string();
        assert!(e.contains("poll_interval_ms"), "{e}");
        let e = entry("url = \"https://example.com/a\"\nplain_http = true")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`plain_http` only applies to an `oci` source"),
            "{e}"
        );
        let e = entry("oci = \"127.0.0.1:5000/c/a:1\"\nbearer_token_env = \"T\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bearer_token_env"), "{e}");
        let e = entry(
            "url = \"https://example.com/a\"\nbearer_token_env = \"T\"\nbasic_auth_env = \"B\"",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("at most one of"), "{e}");
        let e = entry("url = \"https://example.com/a\"\noci = \"127.0.0.1:5000/c/a:1\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most one of"), "{e}");
    }

    #[test]
    fn a_token_given_in_clear_is_refused() {
        let e = Config::parse(
            "[[tokens]]\nname = \"ci\"\nsha256 = \"hunter2\"\nroles = [\"gateway\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("64 hex digits"), "{e}");
    }

    #[test]
    fn an_unknown_role_is_refused() {
        let e = Config::parse(&format!(
            "[[tokens]]\nname = \"ci\"\nsha256 = \"{}\"\nroles = [\"admin\"]\n",
            "a".repeat(64)
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("admin"), "{e}");
    }

    #[test]
    fn a_deadline_beyond_the_request_timeout_is_refused() {
        let e = Config::parse("[limits]\ndecision_deadline_ms = 20000\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("request_timeout_ms"), "{e}");
    }

    #[test]
    fn the_list_bound_of_decision_requests_is_configurable() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.limits.decode(), DecodeLimits::default());
        let c = Config::parse("[limits]\nmax_list_len = 50\n").unwrap();
        assert_eq!(c.limits.decode().max_list_len, 50);
        let e = Config::parse("[limits]\nmax_list_len = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.max_list_len"), "{e}");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Lines that look like a configuration: known tables and keys,
        /// plausible and implausible values, and noise.
        fn line() -> impl Strategy<Value = String> {
            let table = prop_oneof![
                Just("[trust]"),
                Just("[limits]"),
                Just("[records]"),
                Just("[scheduler]"),
                Just("[webhooks]"),
                Just("[sources]"),
                Just("[[bundles]]"),
                Just("[[tokens]]"),
                Just("[unknown]"),
            ]
            .prop_map(str::to_string);
            let key = prop_oneof![
                Just("listen"),
                Just("data_dir"),
                Just("cache"),
                Just("log_format"),
                Just("dir"),
                Just("min_signatures"),
                Just("body_bytes"),
                Just("memory_mib"),
                Just("concurrency"),
                Just("decision_deadline_ms"),
                Just("request_timeout_ms"),
                Just("isolation"),
                Just("name"),
                Just("default"),
                Just("file"),
                Just("build"),
                Just("sign_with"),
                Just("sha256"),
                Just("roles"),
                Just("durability"),
                Just("queue"),
                Just("enabled"),
                Just("misspelt"),
            ];
            let value = prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                any::<bool>().prop_map(|b| b.to_string()),
                "[a-z0-9_.:/-]{0,12}".prop_map(|s| format!("\"{s}\"")),
                Just("[\"publisher\", \"bundle_admin\"]".to_string()),
                Just("\"0.0.0.0:8080\"".to_string()),
                Just(format!("\"{}\"", "a".repeat(64))),
                "\\PC{0,8}",
            ];
            prop_oneof![
                table,
                (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
                "\\PC{0,20}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn arbitrary_configuration_text_never_panics_and_errors_name_file_and_place(
                lines in proptest::collection::vec(line(), 0..16),
            ) {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("stagegate.toml");
                std::fs::write(&path, lines.join("\n")).unwrap();
                if let Err(e) = Config::load(&path) {
                    let message = e.to_string();
                    prop_assert!(message.starts_with(&format!("{}: ", path.display())), "{}", message);
                    // Where: a TOML position, or the field (dotted, or an
                    // indexed array entry) that validation refused.
                    let names_place = message.contains(" line ")
                        || message.contains("bundles[")
                        || message.contains("tokens[")
                        || message.contains("`default = true`")
                        || ["limits.", "records.", "scheduler.", "webhooks.", "trust.", "sources."]
                            .iter()
                            .any(|t| message.contains(t));
                    prop_assert!(names_place, "{}", message);
                }
            }
        }
    }
}
