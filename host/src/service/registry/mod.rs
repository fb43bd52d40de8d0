//! The bundles being served, and how a candidate becomes active.
//!
//! A candidate (from a watched file or directory, an upload, the
//! development build or the persisted copy at start) is verified
//! (signatures against the trust store, file digests, WIT version),
//! compiled (through the on-disk cache), instantiated, configured and
//! smoke-called once per decision kind, persisted, and only then swapped in
//! atomically. Decisions already running keep the `Arc` of the bundle they
//! started with. A rejected candidate changes nothing but the slot's status
//! and the metrics, and a rejected candidate for a name that has no slot
//! yet creates none: slots exist for configured bundles and for bundles
//! that were activated at least once.
//!
//! Versions only move forward unless forced. Each name's *floor* (the
//! version and digest of its last activation: the highest ever activated,
//! or what a forced downgrade installed) is persisted beside the bundle in
//! `DATA_DIR/bundles/NAME/floor.json`, so a restart, or the loss of the
//! persisted bundle, cannot reopen the door to an older signed bundle.
//! Versions compare by semver precedence: build metadata (`1.0.0+b`) does
//! not make a version newer.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use serde::Serialize;

use super::metrics::{BundleCounters, Metrics};
use crate::bundle::{ArchiveLimits, Bundle, BundleError, Signer, TrustStore};
use crate::decision::{self, DecisionKind, Timestamp};
use crate::policy::{
    ActivePolicy, BundleLimits, CacheOutcome, ComponentCache, Isolation, LoadError, Runtime,
};

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
    /// Pulled from a polled HTTP(S) URL (credentials redacted).
    Url { url: String },
    /// Pulled from an OCI registry: the reference polled and the manifest
    /// the tag named.
    Oci {
        reference: String,
        /// Absent when the manifest itself was refused before its digest
        /// could be trusted.
        #[serde(skip_serializing_if = "Option::is_none")]
        manifest_digest: Option<String>,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Persisted => f.write_str("persisted copy"),
            Origin::File { path } => write!(f, "file {path}"),
            Origin::Dir { path } => write!(f, "directory entry {path}"),
            Origin::Build { path } => write!(f, "build of {path}"),
            Origin::Upload { by } => write!(f, "upload by {by}"),
            Origin::Url { url } => write!(f, "url {url}"),
            Origin::Oci {
                reference,
                manifest_digest: Some(d),
            } => write!(f, "oci {reference} ({d})"),
            Origin::Oci {
                reference,
                manifest_digest: None,
            } => write!(f, "oci {reference}"),
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
        "version {candidate} is lower than {what} {floor}; upload with force=true (needs the bundle_admin role) to downgrade"
    )]
    Downgrade {
        candidate: String,
        floor: String,
        what: &'static str,
    },
    #[error(
        "version {version} has the same precedence as {what} {floor} but a different digest (that one is {floor_digest}){note}; bump the version, or force=true (needs the bundle_admin role)"
    )]
    SameVersion {
        version: String,
        floor: String,
        floor_digest: String,
        what: &'static str,
        /// Why build metadata did not help, when it differs.
        note: &'static str,
    },
    #[error(
        "the bundle's version floor cannot be read, so no version can be checked against it: {0}"
    )]
    Floor(String),
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("smoke call of {kind} failed: {message}")]
    Smoke { kind: DecisionKind, message: String },
    #[error("could not persist the bundle: {0}")]
    Persist(String),
}

impl Rejection {
    /// The stable error code of the refusal (the one table of them).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Invalid(_) => "bundle_invalid",
            Rejection::WrongName { .. } => "bundle_wrong_name",
            Rejection::Downgrade { .. } => "bundle_downgrade",
            Rejection::SameVersion { .. } => "bundle_same_version",
            Rejection::Load(_) => "bundle_load_failed",
            Rejection::Smoke { .. } => "bundle_smoke_failed",
            Rejection::Persist(_) => "bundle_persist_failed",
            Rejection::Floor(_) => "bundle_floor_unreadable",
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
    activation: Arc<Mutex<()>>,
    history: Mutex<VecDeque<Event>>,
    pub counters: BundleCounters,
    /// Inline or blocking execution of this bundle's decisions.
    pub lane: super::lane::Lane,
    /// The polled remote source (`url`, `oci`), if the bundle has one.
    source: Mutex<Option<super::remote::SourceState>>,
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

    /// The remote source's status, if the bundle has one.
    pub fn source_status(&self) -> Option<super::remote::SourceStatus> {
        self.source
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(super::remote::SourceState::status))
    }

    /// Updates the remote source's state.
    pub(crate) fn update_source(&self, f: impl FnOnce(&mut Option<super::remote::SourceState>)) {
        if let Ok(mut s) = self.source.lock() {
            f(&mut s);
        }
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
    /// The floor version that `force=true` overrode (a downgrade, or the
    /// same precedence with other content), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_over: Option<String>,
    #[serde(skip)]
    pub forced_over_digest: Option<String>,
}

/// Something that happened to a bundle that the service must account for
/// beyond the slot's history (the decision log subscribes to these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BundleEvent {
    /// `force=true` installed a version the floor would have refused.
    ForcedActivation(ForcedActivation),
}

/// A forced activation: who forced which bundle from what to what, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForcedActivation {
    pub at: Timestamp,
    pub bundle: String,
    /// The uploader's name, or the source that forced it.
    pub actor: String,
    pub origin: Origin,
    pub from_version: String,
    pub from_digest: String,
    pub to_version: String,
    pub to_digest: String,
    /// What the caller gave as the reason (`reason` query parameter or
    /// `X-Reason` header), if anything.
    pub reason: Option<String>,
}

/// The version floor of one bundle name, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
struct Floor {
    version: semver::Version,
    digest: String,
    #[serde(default)]
    forced: bool,
}

/// Settings the registry needs from the configuration.
pub struct RegistrySettings {
    pub trust_dir: PathBuf,
    pub min_signatures: usize,
    pub isolation: Isolation,
    pub data_dir: PathBuf,
    /// The configured default bundle (marked `default`, or the only one
    /// configured).
    pub default_bundle: Option<String>,
    /// No bundle is configured: the first bundle ever activated in this
    /// data directory becomes the default, and stays it.
    pub default_is_first_activated: bool,
    /// Keep compiled components on disk (`cache = false` turns it off).
    pub cache: bool,
    /// Receives [`BundleEvent`]s; `None` drops them.
    pub events: Option<tokio::sync::mpsc::UnboundedSender<BundleEvent>>,
    /// Configured policy sets: name and member bundle names, in order
    /// (docs/policy-sets.md).
    pub sets: Vec<(String, Vec<String>)>,
    /// Size limits bundle archives are read with (`limits.bundle_member_mib`).
    pub archive_limits: ArchiveLimits,
    /// Bundles' own sandbox limits (`[[bundles]] limits`), by name.
    pub bundle_limits: BTreeMap<String, BundleLimits>,
}

/// A policy set: a name that answers decisions with several bundles.
/// Its members keep their own slots and hot-swap independently.
pub struct PolicySet {
    pub name: String,
    pub members: Vec<String>,
    pub counters: BundleCounters,
    /// Inline or blocking execution of the set's decisions.
    pub lane: super::lane::Lane,
}

/// What answers one decision: a bundle, or a policy set.
#[derive(Clone)]
pub enum Target {
    Bundle(Arc<Slot>),
    Set(Arc<PolicySet>),
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Bundle(s) => &s.name,
            Target::Set(s) => &s.name,
        }
    }

    pub fn lane(&self) -> &super::lane::Lane {
        match self {
            Target::Bundle(s) => &s.lane,
            Target::Set(s) => &s.lane,
        }
    }

    pub fn counters(&self) -> &BundleCounters {
        match self {
            Target::Bundle(s) => &s.counters,
            Target::Set(s) => &s.counters,
        }
    }
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
    /// Activation locks of names that have no slot yet: a candidate for a
    /// new name is serialised without making the name visible.
    pending: Mutex<BTreeMap<String, Arc<Mutex<()>>>>,
    /// The default bundle's name, once known.
    default: ArcSwapOption<String>,
    /// Configured policy sets, by name.
    sets: BTreeMap<String, Arc<PolicySet>>,
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
    #[error("bundle '{member}', a member of policy set '{set}', has no active version")]
    MemberInactive { set: String, member: String },
    #[error("no default bundle is configured; name one with ?bundle=NAME")]
    NoDefault,
}

impl Registry {
    pub fn new(runtime: Runtime, settings: RegistrySettings, metrics: Arc<Metrics>) -> Self {
        let cache = if settings.cache {
            ComponentCache::new(settings.data_dir.join("cache/components"))
        } else {
            ComponentCache::disabled()
        };
        let default = match &settings.default_bundle {
            Some(d) => Some(Arc::new(d.clone())),
            None if settings.default_is_first_activated => {
                read_default_file(&default_file(&settings.data_dir)).map(Arc::new)
            }
            None => None,
        };
        let sets = settings
            .sets
            .iter()
            .map(|(name, members)| {
                let set = PolicySet {
                    name: name.clone(),
                    members: members.clone(),
                    counters: metrics.bundle_counters(name),
                    lane: super::lane::Lane::new(),
                };
                (name.clone(), Arc::new(set))
            })
            .collect();
        let archive_limits = settings.archive_limits;
        Registry {
            sets,
            runtime,
            cache,
            settings,
            archive_limits,
            metrics,
            slots: ArcSwap::from_pointee(BTreeMap::new()),
            slots_write: Mutex::new(()),
            pending: Mutex::new(BTreeMap::new()),
            default: ArcSwapOption::new(default),
        }
    }

    /// The size limits bundle archives are read with.
    pub fn archive_limits(&self) -> &ArchiveLimits {
        &self.archive_limits
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The slot for `name`, created if needed: for configured bundles.
    /// Candidates for other names get a slot only once one is activated.
    pub fn slot(&self, name: &str) -> Arc<Slot> {
        self.slot_with(name, Arc::new(Mutex::new(())))
    }

    fn slot_with(&self, name: &str, activation: Arc<Mutex<()>>) -> Arc<Slot> {
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
            activation,
            history: Mutex::new(VecDeque::new()),
            counters: self.metrics.bundle_counters(name),
            lane: super::lane::Lane::new(),
            source: Mutex::new(None),
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

    /// The default bundle's name, if any: the configured one; else, when no
    /// bundle is configured, the first ever activated in this data
    /// directory (persisted, so neither a second bundle nor a restart
    /// changes it). With several bundles configured and none marked
    /// `default`, there is none.
    pub fn default_name(&self) -> Option<String> {
        self.default.load().as_deref().cloned()
    }

    /// What a decision should ask: bundle or set `name`, or the default,
    /// with the active version of each bundle it involves, loaded once
    /// here: one decision sees one version of every member.
    pub fn resolve(&self, name: Option<&str>) -> Result<(Target, Vec<Arc<Active>>), ResolveError> {
        let default;
        let name = match name {
            Some(n) => n,
            None => {
                default = self.default.load_full().ok_or(ResolveError::NoDefault)?;
                if let Some(set) = self.sets.get(default.as_str()) {
                    return self.resolve_set(set);
                }
                let slot = self
                    .slots
                    .load()
                    .get(default.as_str())
                    .cloned()
                    .ok_or_else(|| ResolveError::Inactive(default.to_string()))?;
                let active = slot
                    .active()
                    .ok_or_else(|| ResolveError::Inactive(slot.name.clone()))?;
                return Ok((Target::Bundle(slot), vec![active]));
            }
        };
        if let Some(set) = self.sets.get(name) {
            return self.resolve_set(set);
        }
        let slot = self
            .slots
            .load()
            .get(name)
            .cloned()
            .ok_or_else(|| ResolveError::Unknown(name.to_string()))?;
        let active = slot
            .active()
            .ok_or_else(|| ResolveError::Inactive(slot.name.clone()))?;
        Ok((Target::Bundle(slot), vec![active]))
    }

    fn resolve_set(
        &self,
        set: &Arc<PolicySet>,
    ) -> Result<(Target, Vec<Arc<Active>>), ResolveError> {
        let slots = self.slots.load();
        let members = set
            .members
            .iter()
            .map(|m| {
                slots
                    .get(m.as_str())
                    .and_then(|s| s.active())
                    .ok_or_else(|| ResolveError::MemberInactive {
                        set: set.name.clone(),
                        member: m.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((Target::Set(set.clone()), members))
    }

    fn persisted_path(&self, name: &str) -> PathBuf {
        self.settings
            .data_dir
            .join("bundles")
            .join(name)
            .join("active.bundle")
    }

    fn floor_path(&self, name: &str) -> PathBuf {
        self.settings
            .data_dir
            .join("bundles")
            .join(name)
            .join("floor.json")
    }

    /// The persisted floor of `name`, if one was ever recorded. A floor
    /// that exists but cannot be read refuses every candidate: failing
    /// open would re-admit old versions.
    fn floor(&self, name: &str) -> Result<Option<Floor>, Rejection> {
        let path = self.floor_path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Rejection::Floor(format!("{}: {e}", path.display()))),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Rejection::Floor(format!("{}: {e}", path.display())))
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
            match super::sources::read_candidate(&path, &self.archive_limits) {
                Ok(bytes) => {
                    let _ = self.activate(&name, &bytes, Origin::Persisted, false, None);
                }
                Err(e) => {
                    tracing::error!(bundle = %name, path = %path.display(), error = %e, "cannot read persisted bundle")
                }
            }
        }
    }

    /// Verifies, compiles, smoke-calls, persists and swaps in a candidate.
    /// Blocking (compilation takes a while): call it off the async runtime.
    /// `reason` is the caller's account of a forced activation.
    pub fn activate(
        &self,
        name: &str,
        bytes: &[u8],
        origin: Origin,
        force: bool,
        reason: Option<&str>,
    ) -> Result<Activated, Rejection> {
        let lock = self.activation_lock(name);
        let _serial = lock.lock().unwrap_or_else(|p| p.into_inner());
        let slot = self.slots.load().get(name).cloned();
        let previous = slot.as_ref().and_then(|s| s.active());
        let started = Instant::now();
        let mut seen: (Option<String>, Option<String>) = (None, None);
        let result = self.try_activate(
            name,
            previous.as_ref(),
            bytes,
            &origin,
            force,
            started,
            &mut seen,
        );
        match result {
            Ok((a, None)) => Ok(a),
            Ok((a, Some(active))) => {
                let slot = slot.unwrap_or_else(|| {
                    // Made visible under the pending map's lock, so that a
                    // candidate arriving now finds either the slot or the
                    // pending lock, which is the slot's.
                    let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                    let slot = self.slot_with(name, lock.clone());
                    pending.remove(name);
                    slot
                });
                slot.active.store(Some(active));
                self.adopt_default(name);
                if let Some(floor) = &a.forced_over {
                    tracing::warn!(bundle = %name, version = %a.version, floor = %floor, origin = %origin, reason = reason.unwrap_or(""), "bundle activated with force=true below its version floor");
                    self.emit(BundleEvent::ForcedActivation(ForcedActivation {
                        at: Timestamp::now(),
                        bundle: name.to_string(),
                        actor: match &origin {
                            Origin::Upload { by } => by.clone(),
                            other => other.to_string(),
                        },
                        origin: origin.clone(),
                        from_version: floor.clone(),
                        from_digest: a.forced_over_digest.clone().unwrap_or_default(),
                        to_version: a.version.clone(),
                        to_digest: a.digest.clone(),
                        reason: reason.map(str::to_string),
                    }));
                }
                tracing::info!(bundle = %name, version = %a.version, digest = %a.digest, origin = %origin, millis = started.elapsed().as_millis() as u64, "bundle activated");
                slot.record(Event {
                    at: Timestamp::now(),
                    event: "activated",
                    origin,
                    version: Some(a.version.clone()),
                    digest: Some(a.digest.clone()),
                    reason: reason.filter(|_| force).map(str::to_string),
                    forced: force,
                });
                Ok(a)
            }
            Err(e) => {
                tracing::warn!(bundle = %name, origin = %origin, reason = %e, "bundle candidate rejected; the active version keeps serving");
                match &slot {
                    Some(slot) => {
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
                    // No slot, no metric series: a refused name leaves no trace
                    // but the log line.
                    // The pending lock goes unless another candidate holds it.
                    None => {
                        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                        if pending
                            .get(name)
                            .is_some_and(|l| Arc::ptr_eq(l, &lock) && Arc::strong_count(&lock) == 2)
                        {
                            pending.remove(name);
                        }
                    }
                }
                Err(e)
            }
        }
    }

    /// Records a candidate that was refused before it could be offered to
    /// [`Registry::activate`] (a pulled blob whose digest does not match,
    /// a manifest of another artifact): in the slot's history and the
    /// rejection metric, like any other refusal.
    pub fn refuse(&self, name: &str, origin: Origin, reason: String) {
        tracing::warn!(bundle = %name, origin = %origin, reason = %reason, "bundle candidate rejected; the active version keeps serving");
        if let Some(slot) = self.slots.load().get(name) {
            self.metrics.activation_failed(name);
            slot.record(Event {
                at: Timestamp::now(),
                event: "rejected",
                origin,
                version: None,
                digest: None,
                reason: Some(reason),
                forced: false,
            });
        }
    }

    /// The lock that serialises candidates for `name`: its slot's, or for
    /// a name without a slot a pending one, which becomes the slot's if a
    /// candidate is activated.
    fn activation_lock(&self, name: &str) -> Arc<Mutex<()>> {
        if let Some(s) = self.slots.load().get(name) {
            return s.activation.clone();
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.slots.load().get(name) {
            return s.activation.clone();
        }
        pending.entry(name.to_string()).or_default().clone()
    }

    fn emit(&self, event: BundleEvent) {
        if let Some(tx) = &self.settings.events
            && tx.send(event).is_err()
        {
            tracing::error!(
                "bundle event subscriber is gone; a forced activation was not handed on"
            );
        }
    }

    /// With no configured default, the first bundle activated becomes the
    /// default, persisted so that a restart keeps it.
    fn adopt_default(&self, name: &str) {
        if !self.settings.default_is_first_activated || self.default.load().is_some() {
            return;
        }
        self.default.store(Some(Arc::new(name.to_string())));
        let path = default_file(&self.settings.data_dir);
        if let Err(e) = write_atomically(&path, name.as_bytes()) {
            tracing::error!(path = %path.display(), error = %e, "cannot persist the default bundle's name; a restart may have no default");
        }
    }

    /// Checks and loads a candidate; on success returns the outcome and, if
    /// something changed, the new active bundle for the caller to swap in.
    #[allow(clippy::too_many_arguments)]
    fn try_activate(
        &self,
        name: &str,
        previous: Option<&Arc<Active>>,
        bytes: &[u8],
        origin: &Origin,
        force: bool,
        started: Instant,
        seen: &mut (Option<String>, Option<String>),
    ) -> Result<(Activated, Option<Arc<Active>>), Rejection> {
        let bundle = Bundle::from_bytes(bytes, &self.archive_limits)?;
        let version = bundle.manifest.version.clone();
        let digest = bundle.digest();
        *seen = (Some(version.to_string()), Some(digest.clone()));
        if bundle.manifest.name != name {
            return Err(Rejection::WrongName {
                expected: name.to_string(),
                found: bundle.manifest.name.clone(),
            });
        }
        let trust = TrustStore::load(&self.settings.trust_dir)?;
        let signers = bundle.verify(&trust, self.settings.min_signatures)?;

        if let Some(p) = previous
            && p.digest == digest
        {
            return Ok((
                Activated {
                    bundle: name.to_string(),
                    version: version.to_string(),
                    digest,
                    unchanged: true,
                    previous_version: Some(p.version.to_string()),
                    forced_over: None,
                    forced_over_digest: None,
                },
                None,
            ));
        }

        // The floor: persisted, else (a data directory from before floors
        // were kept) the active version.
        let (floor, what) = match self.floor(name)? {
            Some(f) if previous.is_some_and(|p| p.version == f.version && p.digest == f.digest) => {
                (Some(f), "the active")
            }
            Some(f) => (Some(f), "the version floor (the last activated)"),
            None => (
                previous.map(|p| Floor {
                    version: p.version.clone(),
                    digest: p.digest.clone(),
                    forced: p.forced,
                }),
                "the active",
            ),
        };
        let mut forced_over = None;
        if let Some(f) = &floor {
            let refusal = match version.cmp_precedence(&f.version) {
                std::cmp::Ordering::Less => Some(Rejection::Downgrade {
                    candidate: version.to_string(),
                    floor: f.version.to_string(),
                    what,
                }),
                std::cmp::Ordering::Equal if f.digest != digest => Some(Rejection::SameVersion {
                    version: version.to_string(),
                    floor: f.version.to_string(),
                    floor_digest: f.digest.clone(),
                    what,
                    note: if version.build != f.version.build {
                        " (build metadata does not make a version newer)"
                    } else {
                        ""
                    },
                }),
                _ => None,
            };
            match refusal {
                Some(r) if !force => return Err(r),
                Some(_) => forced_over = Some((f.version.to_string(), f.digest.clone())),
                None => {}
            }
        }

        let (component, compiled) = self
            .cache
            .get_or_compile(&self.runtime, bundle.wasm())
            .map_err(LoadError::from)?;
        let params = bundle.params()?;
        let policy = ActivePolicy::with_limits(
            &self.runtime,
            &bundle,
            &component,
            params,
            self.settings.isolation,
            &self
                .settings
                .bundle_limits
                .get(name)
                .copied()
                .unwrap_or_default(),
        )?;
        smoke(&policy)?;
        if !matches!(origin, Origin::Persisted) {
            self.persist(name, bytes).map_err(Rejection::Persist)?;
        }
        let new_floor = Floor {
            version: version.clone(),
            digest: digest.clone(),
            forced: forced_over.is_some(),
        };
        // Rewritten only when it moves: a restart restoring the floor's own
        // bundle keeps the record that it was forced.
        if floor
            .as_ref()
            .is_none_or(|f| f.version != new_floor.version || f.digest != new_floor.digest)
        {
            let json = serde_json::to_vec_pretty(&new_floor).unwrap_or_default();
            write_atomically(&self.floor_path(name), &json).map_err(Rejection::Persist)?;
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
        self.metrics.activated(
            name,
            &version.to_string(),
            &digest,
            previous
                .map(|p| (p.version.to_string(), p.digest.clone()))
                .as_ref()
                .map(|(v, d)| (v.as_str(), d.as_str())),
        );
        let (forced_over, forced_over_digest) = forced_over.unzip();
        Ok((
            Activated {
                bundle: name.to_string(),
                version: version.to_string(),
                digest,
                unchanged: false,
                previous_version: previous.map(|p| p.version.to_string()),
                forced_over,
                forced_over_digest,
            },
            Some(active),
        ))
    }

    /// Writes the active bundle where [`Registry::restore_persisted`] finds
    /// it.
    fn persist(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        write_atomically(&self.persisted_path(name), bytes)
    }
}

/// Where the first-activated default's name is kept (outside `bundles/`,
/// whose entries are bundle names).
fn default_file(data_dir: &Path) -> PathBuf {
    data_dir.join("default-bundle")
}

fn read_default_file(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let name = text.trim();
    crate::bundle::manifest::check_name(name)
        .map_err(|e| tracing::error!(path = %path.display(), error = %e, "ignoring the persisted default bundle"))
        .ok()?;
    Some(name.to_string())
}

/// Temporary file, fsync, rename, fsync of the directory: a crash leaves
/// the old or the new contents, never half of them.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
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
