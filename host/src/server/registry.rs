//! The bundles being served, and how a candidate becomes active.
//!
//! A candidate (from a watched file or directory, an upload, the
//! development build or the persisted copy at start) is verified
//! (signatures against the trust store, file digests, WIT version),
//! compiled (through the on-disk cache), instantiated, configured and
//! smoke-called once per decision kind, persisted, and only then swapped in
//! atomically. Decisions already running keep the `Arc` of the bundle they
//! started with. A rejected candidate changes nothing but the slot's status
//! and the metrics.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use serde::Serialize;

use super::metrics::{BundleCounters, Metrics};
use crate::bundle::{ArchiveLimits, Bundle, BundleError, Signer, TrustStore};
use crate::decision::{self, DecisionKind, Timestamp};
use crate::policy::{ActivePolicy, CacheOutcome, ComponentCache, Isolation, LoadError, Runtime};

/// Where a candidate came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// The copy persisted by an earlier activation, restored at start.
    Persisted,
    /// A configured bundle file.
    File { path: String },
    /// A configured, watched directory.
    Dir { path: String },
    /// Built from a policy directory at start (development).
    Build { path: String },
    /// Uploaded over HTTP by a publisher.
    Upload { by: String },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Persisted => f.write_str("persisted copy"),
            Origin::File { path } => write!(f, "file {path}"),
            Origin::Dir { path } => write!(f, "directory entry {path}"),
            Origin::Build { path } => write!(f, "build of {path}"),
            Origin::Upload { by } => write!(f, "upload by {by}"),
        }
    }
}

/// The bundle a slot is serving.
pub struct Active {
    pub policy: ActivePolicy,
    pub version: semver::Version,
    pub digest: String,
    pub signers: Vec<Signer>,
    pub activated_at: Timestamp,
    pub origin: Origin,
    pub forced: bool,
    pub compiled: CacheOutcome,
    pub load_millis: u128,
}

/// Why a candidate was refused. The variant decides the HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    Invalid(#[from] BundleError),
    #[error("bundle is named '{found}', not '{expected}'")]
    WrongName { expected: String, found: String },
    #[error(
        "version {candidate} is lower than the active {active}; upload with force=true to downgrade"
    )]
    Downgrade { candidate: String, active: String },
    #[error(
        "version {version} is already active with a different digest ({active_digest}); bump the version, or force=true"
    )]
    SameVersion {
        version: String,
        active_digest: String,
    },
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("smoke call of {kind} failed: {message}")]
    Smoke { kind: DecisionKind, message: String },
    #[error("could not persist the bundle: {0}")]
    Persist(String),
}

impl Rejection {
    /// A short label for the status endpoint.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::Invalid(_) => "invalid",
            Rejection::WrongName { .. } => "wrong_name",
            Rejection::Downgrade { .. } => "downgrade",
            Rejection::SameVersion { .. } => "same_version",
            Rejection::Load(_) => "load",
            Rejection::Smoke { .. } => "smoke",
            Rejection::Persist(_) => "persist",
        }
    }
}

/// A past activation or rejection, for `GET /v1/bundles/{name}`.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: Timestamp,
    pub event: &'static str,
    pub origin: Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
}

/// How many events a slot remembers.
const HISTORY: usize = 32;

/// One named bundle: what is active, and what happened to candidates.
pub struct Slot {
    pub name: String,
    active: ArcSwapOption<Active>,
    /// Serialises candidates for this name; decisions never take it.
    activation: Mutex<()>,
    history: Mutex<VecDeque<Event>>,
    pub counters: BundleCounters,
    /// Inline or blocking execution of this bundle's decisions.
    pub lane: super::lane::Lane,
}

impl Slot {
    pub fn active(&self) -> Option<Arc<Active>> {
        self.active.load_full()
    }

    pub fn history(&self) -> Vec<Event> {
        self.history
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn last_rejection(&self) -> Option<Event> {
        self.history
            .lock()
            .ok()
            .and_then(|h| h.iter().rev().find(|e| e.event == "rejected").cloned())
    }

    fn record(&self, event: Event) {
        if let Ok(mut h) = self.history.lock() {
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(event);
        }
    }
}

/// The result of a successful candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Activated {
    pub bundle: String,
    pub version: String,
    pub digest: String,
    /// The candidate was already active: nothing changed.
    pub unchanged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
}

/// Settings the registry needs from the configuration.
pub struct RegistrySettings {
    pub trust_dir: PathBuf,
    pub min_signatures: usize,
    pub isolation: Isolation,
    pub data_dir: PathBuf,
    pub default_bundle: Option<String>,
}

/// Every served bundle, by name.
pub struct Registry {
    runtime: Runtime,
    cache: ComponentCache,
    settings: RegistrySettings,
    archive_limits: ArchiveLimits,
    metrics: Arc<Metrics>,
    /// Copy-on-write: decisions read it without a lock.
    slots: ArcSwap<BTreeMap<String, Arc<Slot>>>,
    slots_write: Mutex<()>,
}

/// Which bundle answers a decision that names none: the one marked as the
/// default (`marked`), else the only bundle there is; among several with
/// none marked there is no default, and a decision must name its bundle.
/// The configuration and the registry both decide by this one rule.
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

/// Why a decision could not find a bundle to ask.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown bundle '{0}'")]
    Unknown(String),
    #[error("bundle '{0}' has no active version")]
    Inactive(String),
    #[error("no default bundle is configured; name one with ?bundle=NAME")]
    NoDefault,
}

impl Registry {
    pub fn new(runtime: Runtime, settings: RegistrySettings, metrics: Arc<Metrics>) -> Self {
        let cache = ComponentCache::new(settings.data_dir.join("cache/components"));
        Registry {
            runtime,
            cache,
            settings,
            archive_limits: ArchiveLimits::default(),
            metrics,
            slots: ArcSwap::from_pointee(BTreeMap::new()),
            slots_write: Mutex::new(()),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The slot for `name`, created if needed.
    pub fn slot(&self, name: &str) -> Arc<Slot> {
        if let Some(s) = self.slots.load().get(name) {
            return s.clone();
        }
        let _guard = self.slots_write.lock();
        let current = self.slots.load_full();
        if let Some(s) = current.get(name) {
            return s.clone();
        }
        let slot = Arc::new(Slot {
            name: name.to_string(),
            active: ArcSwapOption::empty(),
            activation: Mutex::new(()),
            history: Mutex::new(VecDeque::new()),
            counters: self.metrics.bundle_counters(name),
            lane: super::lane::Lane::new(),
        });
        let mut next = (*current).clone();
        next.insert(name.to_string(), slot.clone());
        self.slots.store(Arc::new(next));
        slot
    }

    /// Every slot, by name.
    pub fn slots(&self) -> Arc<BTreeMap<String, Arc<Slot>>> {
        self.slots.load_full()
    }

    /// The default bundle's name, if any.
    pub fn default_name(&self) -> Option<String> {
        let slots = self.slots.load();
        self.default_among(&slots).map(str::to_string)
    }

    /// The default among `slots`: the configured one, else the only slot.
    fn default_among<'a>(&'a self, slots: &'a BTreeMap<String, Arc<Slot>>) -> Option<&'a str> {
        default_bundle(
            self.settings.default_bundle.as_deref(),
            slots.keys().map(String::as_str),
        )
    }

    /// The active bundle a decision should use: `name`, or the default.
    pub fn resolve(&self, name: Option<&str>) -> Result<(Arc<Slot>, Arc<Active>), ResolveError> {
        let slots = self.slots.load();
        let slot = match name {
            Some(n) => slots
                .get(n)
                .ok_or_else(|| ResolveError::Unknown(n.to_string()))?,
            None => {
                let n = self.default_among(&slots).ok_or(ResolveError::NoDefault)?;
                slots
                    .get(n)
                    .ok_or_else(|| ResolveError::Inactive(n.to_string()))?
            }
        };
        let active = slot
            .active()
            .ok_or_else(|| ResolveError::Inactive(slot.name.clone()))?;
        Ok((slot.clone(), active))
    }

    /// At least one verified bundle is active.
    pub fn ready(&self) -> bool {
        self.slots.load().values().any(|s| s.active().is_some())
    }

    fn persisted_path(&self, name: &str) -> PathBuf {
        self.settings
            .data_dir
            .join("bundles")
            .join(name)
            .join("active.bundle")
    }

    /// Restores every bundle persisted by an earlier run, so a restart
    /// serves the last good bundles before any source is reachable. Each is
    /// verified again: the trust store may have changed since.
    pub fn restore_persisted(&self) {
        let dir = self.settings.data_dir.join("bundles");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join("active.bundle").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let path = self.persisted_path(&name);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let _ = self.activate(&name, &bytes, Origin::Persisted, false);
                }
                Err(e) => {
                    tracing::error!(bundle = %name, path = %path.display(), error = %e, "cannot read persisted bundle")
                }
            }
        }
    }

    /// Verifies, compiles, smoke-calls, persists and swaps in a candidate.
    /// Blocking (compilation takes a while): call it off the async runtime.
    pub fn activate(
        &self,
        name: &str,
        bytes: &[u8],
        origin: Origin,
        force: bool,
    ) -> Result<Activated, Rejection> {
        let slot = self.slot(name);
        let _serial = slot.activation.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let mut seen: (Option<String>, Option<String>) = (None, None);
        let result = self.try_activate(&slot, bytes, &origin, force, started, &mut seen);
        match &result {
            Ok(a) if a.unchanged => {}
            Ok(a) => {
                if force && a.previous_version.is_some() {
                    tracing::warn!(bundle = %name, version = %a.version, previous = ?a.previous_version, origin = %origin, "bundle activated with force=true");
                }
                tracing::info!(bundle = %name, version = %a.version, digest = %a.digest, origin = %origin, millis = started.elapsed().as_millis() as u64, "bundle activated");
                slot.record(Event {
                    at: Timestamp::now(),
                    event: "activated",
                    origin,
                    version: Some(a.version.clone()),
                    digest: Some(a.digest.clone()),
                    reason: None,
                    forced: force,
                });
            }
            Err(e) => {
                tracing::warn!(bundle = %name, origin = %origin, reason = %e, "bundle candidate rejected; the active version keeps serving");
                self.metrics.activation_failed(name);
                slot.record(Event {
                    at: Timestamp::now(),
                    event: "rejected",
                    origin,
                    version: seen.0,
                    digest: seen.1,
                    reason: Some(e.to_string()),
                    forced: force,
                });
            }
        }
        result
    }

    fn try_activate(
        &self,
        slot: &Slot,
        bytes: &[u8],
        origin: &Origin,
        force: bool,
        started: Instant,
        seen: &mut (Option<String>, Option<String>),
    ) -> Result<Activated, Rejection> {
        let bundle = Bundle::from_bytes(bytes, &self.archive_limits)?;
        let version = bundle.manifest.version.clone();
        let digest = bundle.digest();
        *seen = (Some(version.to_string()), Some(digest.clone()));
        if bundle.manifest.name != slot.name {
            return Err(Rejection::WrongName {
                expected: slot.name.clone(),
                found: bundle.manifest.name.clone(),
            });
        }
        let trust = TrustStore::load(&self.settings.trust_dir)?;
        let signers = bundle.verify(&trust, self.settings.min_signatures)?;

        let previous = slot.active();
        if let Some(p) = &previous {
            if p.digest == digest {
                return Ok(Activated {
                    bundle: slot.name.clone(),
                    version: version.to_string(),
                    digest,
                    unchanged: true,
                    previous_version: Some(p.version.to_string()),
                });
            }
            if !force && version < p.version {
                return Err(Rejection::Downgrade {
                    candidate: version.to_string(),
                    active: p.version.to_string(),
                });
            }
            if !force && version == p.version {
                return Err(Rejection::SameVersion {
                    version: version.to_string(),
                    active_digest: p.digest.clone(),
                });
            }
        }

        let (component, compiled) = self
            .cache
            .get_or_compile(&self.runtime, bundle.wasm())
            .map_err(LoadError::from)?;
        let params = bundle.params()?;
        let policy = ActivePolicy::with_component(
            &self.runtime,
            &bundle,
            &component,
            params,
            self.settings.isolation,
        )?;
        smoke(&policy)?;
        if !matches!(origin, Origin::Persisted) {
            self.persist(&slot.name, bytes)
                .map_err(Rejection::Persist)?;
        }

        let active = Arc::new(Active {
            policy,
            version: version.clone(),
            digest: digest.clone(),
            signers,
            activated_at: Timestamp::now(),
            origin: origin.clone(),
            forced: force,
            compiled,
            load_millis: started.elapsed().as_millis(),
        });
        slot.active.store(Some(active));
        self.metrics.activated(
            &slot.name,
            &version.to_string(),
            &digest,
            previous
                .as_ref()
                .map(|p| (p.version.to_string(), p.digest.clone()))
                .as_ref()
                .map(|(v, d)| (v.as_str(), d.as_str())),
        );
        Ok(Activated {
            bundle: slot.name.clone(),
            version: version.to_string(),
            digest,
            unchanged: false,
            previous_version: previous.map(|p| p.version.to_string()),
        })
    }

    /// Writes the active bundle where [`Registry::restore_persisted`] finds
    /// it: temporary file, fsync, rename, so a crash leaves the old or the
    /// new bundle, never half of one.
    fn persist(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        use std::io::Write;
        let path = self.persisted_path(name);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = path.with_extension("bundle.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// One call of each decision with a minimal request: a component that
/// loads and configures but cannot decide is refused before it serves.
fn smoke(policy: &ActivePolicy) -> Result<(), Rejection> {
    const NOW: &str = "2026-01-01T00:00:00Z";
    let system = r#"{"id":"stagegate-smoke-test","risk_tier":"high"}"#;
    let plan =
        r#"{"stages":[{"name":"a","traffic_percent":1},{"name":"b","traffic_percent":100}]}"#;
    let bodies = [
        (
            DecisionKind::Gate,
            format!(r#"{{"now":"{NOW}","system":{system}}}"#),
        ),
        (
            DecisionKind::Progression,
            format!(
                r#"{{"now":"{NOW}","system":{system},"plan":{plan},"current_stage":"a","target_stage":"b","stage_entered_at":"{NOW}"}}"#
            ),
        ),
        (
            DecisionKind::Monitoring,
            format!(
                r#"{{"now":"{NOW}","system":{system},"plan":{plan},"current_stage":"a","deployed_at":"{NOW}"}}"#
            ),
        ),
    ];
    for (kind, body) in bodies {
        let request = decision::decode(kind, body.as_bytes()).map_err(|e| Rejection::Smoke {
            kind,
            message: e.to_string(),
        })?;
        if let Some(e) = policy.decide(request).error {
            return Err(Rejection::Smoke {
                kind,
                message: format!("the policy {e}"),
            });
        }
    }
    Ok(())
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
