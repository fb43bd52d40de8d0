//! One slot per served bundle name: its active version, the recent
//! history of candidates and where they came from. Decisions read a slot
//! without a lock; only activations write it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use serde::Serialize;

use super::persistence::{default_file, read_default_file};
use super::*;
use crate::bundle::Signer;
use crate::decision::Timestamp;
use crate::policy::{ActivePolicy, CacheOutcome, ComponentCache, Runtime};
use crate::service::metrics::{BundleCounters, Metrics};

/// Where a candidate came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Origin {
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
pub(crate) struct Active {
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

/// A past activation or rejection, for `GET /v1/bundles/{name}`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Event {
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
pub(crate) struct Slot {
    pub name: String,
    pub(super) active: ArcSwapOption<Active>,
    /// Serialises candidates for this name; decisions never take it.
    pub(super) activation: Arc<Mutex<()>>,
    pub(super) history: Mutex<VecDeque<Event>>,
    pub counters: BundleCounters,
    /// Inline or blocking execution of this bundle's decisions.
    pub lane: crate::service::lane::Lane,
    /// The polled remote source (`url`, `oci`), if the bundle has one.
    pub(super) source: Mutex<Option<SourceState>>,
}

impl Slot {
    pub(crate) fn active(&self) -> Option<Arc<Active>> {
        self.active.load_full()
    }

    pub(crate) fn history(&self) -> Vec<Event> {
        self.history
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn last_rejection(&self) -> Option<Event> {
        self.history
            .lock()
            .ok()
            .and_then(|h| h.iter().rev().find(|e| e.event == "rejected").cloned())
    }

    /// The remote source's status, if the bundle has one.
    pub(crate) fn source_status(&self) -> Option<SourceStatus> {
        self.source
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(SourceState::status))
    }

    /// Updates the remote source's state.
    pub(crate) fn update_source(&self, f: impl FnOnce(&mut Option<SourceState>)) {
        if let Ok(mut s) = self.source.lock() {
            f(&mut s);
        }
    }

    pub(super) fn record(&self, event: Event) {
        if let Ok(mut h) = self.history.lock() {
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(event);
        }
    }
}

impl Registry {
    pub(crate) fn new(runtime: Runtime, settings: RegistrySettings, metrics: Arc<Metrics>) -> Self {
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
                    lane: crate::service::lane::Lane::new(),
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

    /// The slot for `name`, created if needed: for configured bundles.
    /// Candidates for other names get a slot only once one is activated.
    pub(crate) fn slot(&self, name: &str) -> Arc<Slot> {
        self.slot_with(name, Arc::new(Mutex::new(())))
    }

    pub(super) fn slot_with(&self, name: &str, activation: Arc<Mutex<()>>) -> Arc<Slot> {
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
            lane: crate::service::lane::Lane::new(),
            source: Mutex::new(None),
        });
        let mut next = (*current).clone();
        next.insert(name.to_string(), slot.clone());
        self.slots.store(Arc::new(next));
        slot
    }

    /// Every slot, by name.
    pub(crate) fn slots(&self) -> Arc<BTreeMap<String, Arc<Slot>>> {
        self.slots.load_full()
    }

    /// The lock that serialises candidates for `name`: its slot's, or for
    /// a name without a slot a pending one, which becomes the slot's if a
    /// candidate is activated.
    pub(super) fn activation_lock(&self, name: &str) -> Arc<Mutex<()>> {
        if let Some(s) = self.slots.load().get(name) {
            return s.activation.clone();
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.slots.load().get(name) {
            return s.activation.clone();
        }
        pending.entry(name.to_string()).or_default().clone()
    }
}
