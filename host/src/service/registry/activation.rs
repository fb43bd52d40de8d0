//! How a candidate becomes active: verified, compiled, instantiated,
//! smoke-called, persisted, then swapped in; or refused, naming why, with
//! nothing changed but the slot's status. Versions only move forward
//! unless forced, and a forced activation is announced as a
//! [`BundleEvent`].

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::persistence::{Floor, PersistError, default_file, write_atomically};
use super::*;
use crate::bundle::{Bundle, BundleError, TrustStore};
use crate::decision::{self, DecisionKind, Timestamp};
use crate::policy::{ActivePolicy, LoadError};

/// Why a candidate was refused. The variant decides the HTTP status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Rejection {
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
    Floor(#[source] PersistError),
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("smoke call of {kind} failed: {message}")]
    Smoke { kind: DecisionKind, message: String },
    #[error("could not persist the bundle: {0}")]
    Persist(#[source] PersistError),
}

impl Rejection {
    /// The stable error code of the refusal (the one table of them).
    pub(crate) fn code(&self) -> &'static str {
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

/// The result of a successful candidate.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Activated {
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
pub(crate) enum BundleEvent {
    /// `force=true` installed a version the floor would have refused.
    ForcedActivation(ForcedActivation),
}

/// A forced activation: who forced which bundle from what to what, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ForcedActivation {
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

impl Registry {
    /// Restores every bundle persisted by an earlier run, so a restart
    /// serves the last good bundles before any source is reachable. Each is
    /// verified again: the trust store may have changed since.
    pub(crate) fn restore_persisted(&self) {
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
            match super::read_candidate(&path, &self.archive_limits) {
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
    pub(crate) fn activate(
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
    pub(crate) fn refuse(&self, name: &str, origin: Origin, reason: String) {
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

    pub(super) fn emit(&self, event: BundleEvent) {
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
    pub(super) fn adopt_default(&self, name: &str) {
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
        let (floor, what) = match self.floor(name).map_err(Rejection::Floor)? {
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
