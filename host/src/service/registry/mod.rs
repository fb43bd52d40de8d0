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

mod activation;
mod persistence;
mod slots;
mod source_status;

pub(crate) use activation::{Activated, BundleEvent, Rejection};
pub(crate) use persistence::read_candidate;
pub(crate) use slots::{Active, Event, Origin, Slot};
pub(crate) use source_status::SourceState;
pub(crate) use source_status::{PollResult, SourceStatus};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};

use super::metrics::{BundleCounters, Metrics};
use crate::bundle::ArchiveLimits;
use crate::policy::{BundleLimits, ComponentCache, Isolation, Runtime};

/// Settings the registry needs from the configuration.
pub(crate) struct RegistrySettings {
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
pub(crate) struct PolicySet {
    pub name: String,
    pub members: Vec<String>,
    pub counters: BundleCounters,
    /// Inline or blocking execution of the set's decisions.
    pub lane: super::lane::Lane,
}

/// What answers one decision: a bundle, or a policy set.
#[derive(Clone)]
pub(crate) enum Target {
    Bundle(Arc<Slot>),
    Set(Arc<PolicySet>),
}

impl Target {
    pub(crate) fn name(&self) -> &str {
        match self {
            Target::Bundle(s) => &s.name,
            Target::Set(s) => &s.name,
        }
    }

    pub(crate) fn lane(&self) -> &super::lane::Lane {
        match self {
            Target::Bundle(s) => &s.lane,
            Target::Set(s) => &s.lane,
        }
    }

    pub(crate) fn counters(&self) -> &BundleCounters {
        match self {
            Target::Bundle(s) => &s.counters,
            Target::Set(s) => &s.counters,
        }
    }
}

/// Every served bundle, by name.
pub(crate) struct Registry {
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
    /// The size limits bundle archives are read with.
    pub(crate) fn archive_limits(&self) -> &ArchiveLimits {
        &self.archive_limits
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The default bundle's name, if any: the configured one; else, when no
    /// bundle is configured, the first ever activated in this data
    /// directory (persisted, so neither a second bundle nor a restart
    /// changes it). With several bundles configured and none marked
    /// `default`, there is none.
    pub(crate) fn default_name(&self) -> Option<String> {
        self.default.load().as_deref().cloned()
    }

    /// What a decision should ask: bundle or set `name`, or the default,
    /// with the active version of each bundle it involves, loaded once
    /// here: one decision sees one version of every member.
    pub(crate) fn resolve(
        &self,
        name: Option<&str>,
    ) -> Result<(Target, Vec<Arc<Active>>), ResolveError> {
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
}
