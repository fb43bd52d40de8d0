//! `stagegate serve` configuration: a TOML file, or embedded defaults.
//!
//! Every field has a default, so a config file names only what it changes.
//! Unknown keys are errors: a misspelt `min_signature = 2` that silently
//! kept the default of 1 would weaken the trust policy unnoticed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::decision::DecodeLimits;
use crate::policy::Isolation;

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
    /// Which keys may attest a release's evidence (README.md, "Attested
    /// evidence").
    pub evidence: EvidenceConfig,
    /// Signed receipts of `allow` and `promote` decisions (README.md,
    /// "Decision receipts").
    pub receipts: ReceiptsConfig,
    /// Polling of remote bundle sources (`url`, `oci`): defaults each
    /// `[[bundles]]` entry may override.
    pub sources: SourcesConfig,
    /// The auditor's console at `/ui`.
    pub console: ConsoleConfig,
    /// Bearer tokens. None configured: loopback only, every caller has
    /// every role (local development).
    pub tokens: Vec<TokenConfig>,
    /// Adapters for outside systems (README.md, "CI pipelines").
    pub integrations: super::integrations::IntegrationsConfig,
}

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
    pub fn files(&self) -> Option<crate::server::tls::TlsFiles> {
        Some(crate::server::tls::TlsFiles {
            certificate: self.certificate.clone()?,
            key: self.key.clone()?,
        })
    }
}

/// The evidence trust store: `[[evidence.keys]]`, each a public key and
/// the predicate types it may attest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// Refuse attestations whose predicate type stagegate does not map into
    /// evidence (otherwise they are kept but used for nothing).
    pub require_known_predicates: bool,
    pub keys: Vec<crate::attest::trust::KeyConfig>,
}

/// Decision receipts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiptsConfig {
    /// Sign a receipt for every `allow` and `promote`.
    pub enabled: bool,
    /// Ed25519 key (a `stagegate keygen` key) receipts are signed with;
    /// created on first start when the file does not exist. Default
    /// `DATA_DIR/keys/receipts/receipt` (a directory of its own, so the
    /// bundle trust store never takes it for a policy signer).
    pub key: Option<PathBuf>,
    /// `verifier.id` in every receipt: this service.
    pub verifier_id: String,
}

impl Default for ReceiptsConfig {
    fn default() -> Self {
        ReceiptsConfig {
            enabled: true,
            key: None,
            verifier_id: "https://stagegate.dev/verifier".into(),
        }
    }
}

/// Deployment records and the decision log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordsConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; default
    /// `sqlite://DATA_DIR/stagegate.db`.
    pub database: Option<String>,
    /// Log stateless decisions (`POST /v1/decisions/*`). Decisions about
    /// recorded deployments are always logged.
    pub log_decisions: bool,
    /// Keep each decision's request body in the decision log (its digest
    /// is always kept).
    pub log_requests: bool,
    /// `ack`: answer a decision after its log entry is committed;
    /// `queued`: once it is queued.
    pub durability: crate::records::Durability,
    /// Log entries waiting to be written before decisions wait (backpressure).
    pub queue: usize,
    /// Ed25519 key that signs checkpoints of the decision log's head
    /// (`stagegate keygen` format); created on first start when the file
    /// does not exist. Default `DATA_DIR/log/checkpoint` (not beside the
    /// bundle trust store: this key must never be trusted to sign bundles).
    pub checkpoint_key: Option<PathBuf>,
    /// Sign a checkpoint this often when the log moved (0: only on demand,
    /// `GET /v1/log/checkpoint`).
    pub checkpoint_interval_ms: u64,
    /// The log's name in its checkpoints.
    pub checkpoint_origin: String,
    /// How far past the service's clock an observation's `window_end` may
    /// be before the observation is refused (clock skew of metric
    /// pipelines).
    pub max_clock_skew_ms: u64,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            database: None,
            log_decisions: true,
            log_requests: false,
            durability: crate::records::Durability::Ack,
            queue: 8192,
            checkpoint_key: None,
            checkpoint_interval_ms: 60_000,
            checkpoint_origin: "stagegate/decision-log".into(),
            max_clock_skew_ms: 300_000,
        }
    }
}

/// Scheduled monitoring of active deployments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    pub enabled: bool,
    /// Between evaluations during a deployment's intensive period.
    pub intensive_interval_ms: u64,
    /// Between evaluations after it.
    pub interval_ms: u64,
    /// How often this replica looks for due deployments.
    pub tick_ms: u64,
    /// How long a claim lasts: a replica that dies mid-interval is taken
    /// over once its claims expire.
    pub lease_ms: u64,
    /// This replica's name in claims and as the scheduler's actor
    /// (default: `scheduler-<random>`).
    pub replica: Option<String>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            enabled: true,
            intensive_interval_ms: 60_000,
            interval_ms: 900_000,
            tick_ms: 1_000,
            lease_ms: 30_000,
            replica: None,
        }
    }
}

/// The auditor's console (README.md, "Auditor console").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console at `/ui`.
    pub enabled: bool,
    /// How long a console session lasts after sign-in.
    pub session_seconds: u64,
    /// Mark the session cookie `Secure`: set it when browsers reach the
    /// service over HTTPS (a TLS-terminating proxy in front of it).
    pub secure_cookie: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            session_seconds: 28_800,
            secure_cookie: false,
        }
    }
}

/// Delivery of escalation webhooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    pub enabled: bool,
    /// How often pending deliveries are looked for.
    pub tick_ms: u64,
    /// How long a claimed delivery is reserved for this replica.
    pub lease_ms: u64,
    /// Internal destinations receivers may point at: CIDRs, addresses or
    /// host names. Public addresses are always allowed; loopback, private
    /// and link-local ones only when listed here.
    pub allow: Vec<String>,
    /// How long one delivery attempt may take.
    pub timeout_ms: u64,
    /// Deliveries in flight at once, across receivers.
    pub concurrency: usize,
    /// Deliveries in flight at once to one receiver: a slow or dead
    /// receiver holds this many, never the others' turn.
    pub per_receiver: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            enabled: true,
            tick_ms: 250,
            lease_ms: 30_000,
            allow: Vec::new(),
            timeout_ms: 10_000,
            concurrency: 32,
            per_receiver: 2,
        }
    }
}

/// How remote bundle sources (`url`, `oci`) are polled (README.md,
/// "Distributing bundles").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    /// Between polls of a healthy source; each wait is drawn uniformly
    /// from 80–120 % of it, so a fleet started together spreads out.
    pub poll_interval_ms: u64,
    /// Longest wait after failures: the wait doubles from the poll interval
    /// with each consecutive failure, up to this, with jitter (50–100 %).
    pub max_backoff_ms: u64,
    /// A source without a successful poll for this long is flagged stale
    /// in status and metrics (the active bundle keeps serving).
    pub stale_after_ms: u64,
    /// Budget of one request to a source.
    pub timeout_ms: u64,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            poll_interval_ms: 30_000,
            max_backoff_ms: 300_000,
            stale_after_ms: 600_000,
            timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Directory of trusted public keys (`*.pub`), re-read at every
    /// activation so keys can be rotated without a restart.
    pub dir: PathBuf,
    /// Valid signatures by distinct trusted keys a bundle needs (k of n).
    pub min_signatures: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest decision request body (413 above).
    pub body_bytes: usize,
    /// Largest bundle upload (413 above).
    pub upload_bytes: usize,
    /// Wall-clock budget of one policy call.
    pub decision_deadline_ms: u64,
    /// Largest linear memory of one policy instance.
    pub memory_mib: usize,
    /// Requests in flight at once; more get 503 with `Retry-After`
    /// instead of queueing without bound.
    pub concurrency: usize,
    /// Budget of one whole HTTP request (503 when exceeded).
    pub request_timeout_ms: u64,
    /// `warm` (reuse instances) or `fresh` (one instance per decision).
    pub isolation: Isolation,
    /// How often bundle sources are checked for new versions.
    pub watch_interval_ms: u64,
    /// Most items in any one list of a decision request (422 above).
    pub max_list_len: usize,
    /// Most list items in a whole decision request, nested lists included
    /// (422 above).
    pub max_total_items: usize,
    /// Largest file inside a bundle archive, uncompressed, in MiB (the
    /// component is the largest; a componentize-py one is ~19 MB).
    pub bundle_member_mib: u64,
}

impl LimitsConfig {
    /// The archive limits bundles are read with: the member limit as
    /// configured, the total and compressed limits raised with it when
    /// it exceeds what they allow.
    pub fn archive(&self) -> crate::bundle::ArchiveLimits {
        let d = crate::bundle::ArchiveLimits::DEFAULT;
        let member = self.bundle_member_mib << 20;
        crate::bundle::ArchiveLimits {
            max_member_bytes: member,
            max_total_bytes: d.max_total_bytes.max(member.saturating_mul(3)),
            max_archive_bytes: d.max_archive_bytes.max(member.saturating_mul(2)),
            max_members: d.max_members,
        }
    }
}

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
    fn check_remote(&self) -> Result<(), String> {
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
                return Err(format!("`{key}` only applies to `url` or `oci` sources"));
            }
        }
        for (key, set) in only_url {
            if set && self.url.is_none() {
                return Err(format!("`{key}` only applies to a `url` source"));
            }
        }
        for (key, set) in only_oci {
            if set && self.oci.is_none() {
                return Err(format!("`{key}` only applies to an `oci` source"));
            }
        }
        for (key, v) in [
            ("poll_interval_ms", self.poll_interval_ms),
            ("stale_after_ms", self.stale_after_ms),
        ] {
            if v == Some(0) {
                return Err(format!("`{key}` must be greater than 0"));
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
            return Err("give at most one of `bearer_token_file`, `bearer_token_env`, `basic_auth_file`, `basic_auth_env`".into());
        }
        if let Some(url) = &self.url {
            crate::distribution::http::check_url(url, self.allow_insecure)
                .map_err(|e| format!("url: {e}"))?;
        }
        if let Some(oci) = &self.oci {
            let r: crate::distribution::oci::Reference =
                oci.parse().map_err(|e| format!("oci: {e}"))?;
            crate::distribution::oci::check_plain_http(
                &r.registry,
                self.plain_http,
                self.allow_insecure,
            )
            .map_err(|e| format!("oci: {e}"))?;
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

/// Roles a token may grant (README.md, "Access control").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Uploads bundles.
    Publisher,
    /// Asks for decisions, reads routes.
    Gateway,
    /// Reads everything.
    Auditor,
    /// Records authorisations and risk acceptances.
    Approver,
    /// Posts observations, rolls back and suspends.
    Operator,
    /// Overrides a bundle's version floor (`force=true` on an upload):
    /// a downgrade, or other content under the same version. Kept apart
    /// from `publisher` so that a leaked publishing token cannot roll a
    /// policy back to an older, laxer signed version.
    BundleAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Gateway => "gateway",
            Role::Auditor => "auditor",
            Role::Approver => "approver",
            Role::Operator => "operator",
            Role::BundleAdmin => "bundle_admin",
        }
    }

    pub const ALL: [Role; 6] = [
        Role::Publisher,
        Role::Gateway,
        Role::Auditor,
        Role::Approver,
        Role::Operator,
        Role::BundleAdmin,
    ];
}

/// A bearer token, stored as its SHA-256 so the config file holds no secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token: recorded as the actor of what it does.
    pub name: String,
    /// Lowercase hex SHA-256 of the token (`stagegate token` prints it).
    pub sha256: String,
    pub roles: Vec<Role>,
    /// The holder's accountable role, recorded on authorisations they give
    /// (e.g. "Head of AI Risk").
    #[serde(default)]
    pub title: Option<String>,
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
            integrations: Default::default(),
        }
    }
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            dir: PathBuf::from("data/keys"),
            min_signatures: 1,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        // The sandbox's own defaults live in `policy::Limits` alone.
        let sandbox = crate::policy::Limits::default();
        LimitsConfig {
            body_bytes: 1 << 20,
            upload_bytes: 64 << 20,
            decision_deadline_ms: sandbox.deadline_ms(),
            memory_mib: sandbox.memory_mib(),
            concurrency: 256,
            request_timeout_ms: 10_000,
            isolation: Isolation::default(),
            watch_interval_ms: 2_000,
            max_list_len: DecodeLimits::default().max_list_len,
            max_total_items: DecodeLimits::default().max_total_items,
            bundle_member_mib: crate::bundle::ArchiveLimits::DEFAULT.max_member_bytes >> 20,
        }
    }
}

impl LimitsConfig {
    /// The limits decision requests are decoded under.
    pub fn decode(&self) -> DecodeLimits {
        DecodeLimits {
            max_list_len: self.max_list_len,
            max_total_items: self.max_total_items,
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// A configuration error, naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
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
        let err = |message: String| ConfigError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::parse(&text).map_err(err)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges, uniqueness, one source per bundle.
    pub fn validate(&self) -> Result<(), String> {
        crate::records::destinations::Destinations::parse(&self.webhooks.allow)?;
        self.integrations.validate()?;
        let k = &self.integrations.kubernetes;
        super::admission_access::validate(
            k.require_token,
            k.client_ca.as_deref(),
            k.unauthenticated_per_second,
            self.listen_tls.is_some(),
        )
        .map_err(|e| e.to_string())?;
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
                return Err(format!("{name} must be greater than 0"));
            }
        }
        if l.bundle_member_mib > 1024 {
            return Err("limits.bundle_member_mib must be at most 1024".into());
        }
        if l.memory_mib > 4096 {
            return Err("limits.memory_mib must be at most 4096".into());
        }
        if l.decision_deadline_ms >= l.request_timeout_ms {
            return Err(format!(
                "limits.decision_deadline_ms ({}) must be below limits.request_timeout_ms ({})",
                l.decision_deadline_ms, l.request_timeout_ms
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, b) in self.bundles.iter().enumerate() {
            crate::bundle::manifest::check_name(&b.name)
                .map_err(|e| format!("bundles[{i}]: {e}"))?;
            if !names.insert(b.name.as_str()) {
                return Err(format!(
                    "bundles[{i}]: bundle '{}' is configured twice",
                    b.name
                ));
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
                return Err(format!(
                    "bundles[{i}] ('{}'): give at most one of `file`, `dir`, `build`, `url`, `oci`",
                    b.name
                ));
            }
            b.check_remote()
                .map_err(|e| format!("bundles[{i}] ('{}'): {e}", b.name))?;
            let own = &b.limits;
            if own.memory_mib.is_some_and(|m| m == 0 || m > 4096) {
                return Err(format!(
                    "bundles[{i}] ('{}'): limits.memory_mib must be 1-4096",
                    b.name
                ));
            }
            if let Some(d) = own.deadline_ms
                && (d == 0 || d >= l.request_timeout_ms)
            {
                return Err(format!(
                    "bundles[{i}] ('{}'): limits.deadline_ms ({d}) must be greater than 0 and below limits.request_timeout_ms ({})",
                    b.name, l.request_timeout_ms
                ));
            }
            if b.sign_with.is_some() && b.build.is_none() {
                return Err(format!(
                    "bundles[{i}] ('{}'): `sign_with` only applies to `build`",
                    b.name
                ));
            }
        }
        match (
            self.listen_tls,
            self.tls.certificate.is_some(),
            self.tls.key.is_some(),
        ) {
            (Some(_), true, true) | (None, false, false) => {}
            (Some(_), _, _) => {
                return Err("listen_tls needs both tls.certificate and tls.key (PEM files)".into());
            }
            (None, _, _) => {
                return Err(
                    "tls.certificate and tls.key are used only with listen_tls; set listen_tls or remove them".into(),
                );
            }
        }
        for (i, set) in self.policy_sets.iter().enumerate() {
            crate::bundle::manifest::check_name(&set.name)
                .map_err(|e| format!("policy_sets[{i}]: {e}"))?;
            if !names.insert(set.name.as_str()) {
                return Err(format!(
                    "policy_sets[{i}]: '{}' is already the name of a bundle or another set",
                    set.name
                ));
            }
            if set.members.is_empty() {
                return Err(format!(
                    "policy_sets[{i}] ('{}'): `members` must name at least one bundle",
                    set.name
                ));
            }
            let mut members = std::collections::BTreeSet::new();
            for (j, m) in set.members.iter().enumerate() {
                crate::bundle::manifest::check_name(m)
                    .map_err(|e| format!("policy_sets[{i}].members[{j}]: {e}"))?;
                if !members.insert(m.as_str()) {
                    return Err(format!(
                        "policy_sets[{i}].members[{j}]: '{m}' is listed twice in set '{}'",
                        set.name
                    ));
                }
                if self.policy_sets.iter().any(|s| &s.name == m) {
                    return Err(format!(
                        "policy_sets[{i}].members[{j}]: '{m}' is a policy set; members are bundles (sets do not nest)"
                    ));
                }
            }
        }
        let defaults = self.bundles.iter().filter(|b| b.default).count()
            + self.policy_sets.iter().filter(|s| s.default).count();
        if defaults > 1 {
            return Err("more than one bundle is marked `default = true`".into());
        }
        let mut token_names = std::collections::BTreeSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "tokens[{i}] ('{}'): sha256 must be 64 hex digits (the token's SHA-256, not the token)",
                    t.name
                ));
            }
            if t.roles.is_empty() {
                return Err(format!(
                    "tokens[{i}] ('{}'): roles must not be empty",
                    t.name
                ));
            }
            if t.name.trim().is_empty() || !token_names.insert(t.name.as_str()) {
                return Err(format!(
                    "tokens[{i}]: token names must be non-empty and unique"
                ));
            }
        }
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
    pub fn check_development_keys(&self) -> Result<(), String> {
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
                return Err(format!(
                    "listen = {} is not a loopback address, but the trust store {} trusts the development signing key {} (bundles[{i}].sign_with, bundle '{}'): whoever can read that key file could sign policies this service accepts. Serve bundles signed offline with a trust store that holds only their public keys, or listen on loopback for development",
                    self.listen,
                    self.trust.dir.display(),
                    key.display(),
                    b.name
                ));
            }
        }
        Ok(())
    }

    /// Checks what remote bundle sources read from files at start: each
    /// `ca_file` must hold PEM certificates. (Credentials are read at
    /// each poll, so that they can be rotated.)
    pub fn check_sources(&self) -> Result<(), String> {
        for (i, b) in self.bundles.iter().enumerate() {
            if b.ca_file.is_some() {
                crate::distribution::TransportOptions {
                    ca_file: b.ca_file.clone(),
                    ..Default::default()
                }
                .check()
                .map_err(|e| format!("bundles[{i}] ('{}'): {e}", b.name))?;
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
    /// configured ones, by [`crate::server::registry::default_bundle`]'s
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
        crate::server::registry::default_bundle(
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
        let e = Config::parse("[trust]\nmin_signature = 2\n").unwrap_err();
        assert!(e.contains("min_signature"), "{e}");
    }

    #[test]
    fn a_bundle_with_two_sources_is_refused() {
        let e = Config::parse("[[bundles]]\nname = \"a\"\nfile = \"a.bundle\"\ndir = \"in\"\n")
            .unwrap_err();
        assert!(e.contains("at most one of"), "{e}");
    }

    #[test]
    fn remote_source_settings_are_checked_where_they_apply() {
        let entry = |body: &str| Config::parse(&format!("[[bundles]]\nname = \"a\"\n{body}\n"));
        assert!(entry("oci = \"127.0.0.1:5000/c/a:1\"\nplain_http = true").is_ok());
        let e = entry("oci = \"registry.example.com/c/a:1\"\nplain_http = true").unwrap_err();
        assert!(
            e.contains("bundles[0]") && e.contains("allow_insecure"),
            "{e}"
        );
        assert!(
            entry("oci = \"registry.example.com/c/a:1\"\nplain_http = true\nallow_insecure = true")
                .is_ok()
        );
        let e = entry("url = \"https://u:p@example.com/a.bundle\"").unwrap_err();
        assert!(e.contains("file or environment variable"), "{e}");
        let e = entry("file = \"a.bundle\"\npoll_interval_ms = 10").unwrap_err();
        assert!(e.contains("poll_interval_ms"), "{e}");
        let e = entry("url = \"https://example.com/a\"\nplain_http = true").unwrap_err();
        assert!(
            e.contains("`plain_http` only applies to an `oci` source"),
            "{e}"
        );
        let e = entry("oci = \"127.0.0.1:5000/c/a:1\"\nbearer_token_env = \"T\"").unwrap_err();
        assert!(e.contains("bearer_token_env"), "{e}");
        let e = entry(
            "url = \"https://example.com/a\"\nbearer_token_env = \"T\"\nbasic_auth_env = \"B\"",
        )
        .unwrap_err();
        assert!(e.contains("at most one of"), "{e}");
        let e =
            entry("url = \"https://example.com/a\"\noci = \"127.0.0.1:5000/c/a:1\"").unwrap_err();
        assert!(e.contains("at most one of"), "{e}");
    }

    #[test]
    fn a_token_given_in_clear_is_refused() {
        let e = Config::parse(
            "[[tokens]]\nname = \"ci\"\nsha256 = \"hunter2\"\nroles = [\"gateway\"]\n",
        )
        .unwrap_err();
        assert!(e.contains("64 hex digits"), "{e}");
    }

    #[test]
    fn an_unknown_role_is_refused() {
        let e = Config::parse(&format!(
            "[[tokens]]\nname = \"ci\"\nsha256 = \"{}\"\nroles = [\"admin\"]\n",
            "a".repeat(64)
        ))
        .unwrap_err();
        assert!(e.contains("admin"), "{e}");
    }

    #[test]
    fn a_deadline_beyond_the_request_timeout_is_refused() {
        let e = Config::parse("[limits]\ndecision_deadline_ms = 20000\n").unwrap_err();
        assert!(e.contains("request_timeout_ms"), "{e}");
    }

    #[test]
    fn the_list_bound_of_decision_requests_is_configurable() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.limits.decode(), DecodeLimits::default());
        let c = Config::parse("[limits]\nmax_list_len = 50\n").unwrap();
        assert_eq!(c.limits.decode().max_list_len, 50);
        let e = Config::parse("[limits]\nmax_list_len = 0\n").unwrap_err();
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
