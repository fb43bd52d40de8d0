//! Starting the engine from a configuration: the records (with their
//! checkpoint, evidence and receipt keys), the registry with every
//! configured bundle loaded, the subscriber that writes forced activations
//! into the decision log, and the background work.

use std::sync::Arc;
use std::time::Duration;

use super::registry::{BundleEvent, Registry, RegistrySettings};
use super::{Metrics, Service, monitor, remote, sources};
use crate::config::Config;

/// A failure to start, reported before the port is bound.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration names something unusable (a key, a source).
    #[error("{0}")]
    Config(String),
    /// Something the configuration is fine with failed (a file, the database).
    #[error("{0}")]
    Startup(String),
}

impl Service {
    /// Opens the records database, then builds the registry and loads
    /// every configured bundle. The background work starts with
    /// [`Service::spawn_background`].
    pub(crate) async fn start(config: &Config) -> Result<Service, StartError> {
        let url = config.database_url();
        let store = crate::records::open_store(&url)
            .await
            .map_err(|e| StartError::Startup(format!("records: {e}")))?
            // PostgreSQL: replicas elect one sequencer (docs/log.md, "Replicas").
            .with_sequencer(
                config.scheduler.replica.as_deref().unwrap_or("replica"),
                config.records.sequencer_lease_ms,
                config.records.durability == crate::records::Durability::Ack,
            );
        tracing::info!(database = %crate::records::store::redact(&url), "records store open");
        let log = crate::records::DecisionLog::start(
            store.clone(),
            config.records.durability,
            config.records.queue,
        );
        crate::records::warn_unless_durable(&store, config.records.durability).await;
        let records = crate::records::Records::new(
            store,
            log,
            config.records.log_requests,
            config.intervals(),
        )
        .with_clock_skew(i64::try_from(config.records.max_clock_skew_ms).unwrap_or(i64::MAX))
        .with_checkpoints(checkpoint_signer(config)?)
        .with_evidence(evidence_trust(config)?)
        .with_receipts(receipt_signer(config)?)
        .with_destinations(
            crate::records::destinations::Destinations::parse(&config.webhooks.allow)
                .map_err(|e| StartError::Config(e.to_string()))?,
        );
        records.check_log_extends_last().await;
        let (events, mut bundle_events) = tokio::sync::mpsc::unbounded_channel();
        // The one subscriber to bundle events: a forced activation goes into
        // the decision log's hash chain (who, from which version to which,
        // why), so an auditor sees every downgrade beside the decisions it
        // changed.
        let chain = records.clone();
        tokio::spawn(async move {
            while let Some(event) = bundle_events.recv().await {
                let BundleEvent::ForcedActivation(f) = &event;
                tracing::warn!(
                    bundle = %f.bundle,
                    actor = %f.actor,
                    from_version = %f.from_version,
                    to_version = %f.to_version,
                    to_digest = %f.to_digest,
                    reason = f.reason.as_deref().unwrap_or(""),
                    "forced bundle activation"
                );
                let entry = chain.event_entry(
                    "bundle.forced_activation",
                    &f.actor,
                    (&f.bundle, &f.to_version, &f.to_digest),
                    &event,
                );
                if let Err(e) = chain.log.record(entry).await {
                    tracing::error!(bundle = %f.bundle, error = %e, "could not log a forced bundle activation");
                }
            }
        });
        let registry = tokio::task::block_in_place(|| prepare_registry(config, events))?;
        Ok(Service {
            metrics: registry.metrics().clone(),
            registry,
            records,
        })
    }

    /// Starts the scheduler, the checkpoint signer and the webhook
    /// deliverer (each if enabled).
    pub(crate) fn spawn_background(&self, config: &Config) {
        monitor::start(self.clone(), config);
    }
}

/// The checkpoint key, created on first start (its public half beside it,
/// for auditors).
fn checkpoint_signer(config: &Config) -> Result<crate::records::CheckpointSigner, StartError> {
    let path = config.checkpoint_key();
    let key = if path.exists() {
        crate::bundle::keys::load_secret(&path)
    } else {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StartError::Startup(format!("{}: {e}", dir.display())))?;
        }
        tracing::info!(key = %path.display(), "created the checkpoint signing key");
        crate::bundle::keys::generate(&path).map(|(k, _)| k)
    }
    .map_err(|e| StartError::Startup(format!("checkpoint key: {e}")))?;
    Ok(crate::records::CheckpointSigner {
        key,
        origin: config.records.checkpoint_origin.clone(),
        last: crate::records::last::path_beside(&path),
        max_age_ms: config.records.checkpoint_max_age_ms,
    })
}

/// The evidence trust store: `[[evidence.keys]]`, files relative to the
/// working directory.
fn evidence_trust(config: &Config) -> Result<crate::attest::EvidenceTrust, StartError> {
    crate::attest::EvidenceTrust::load(
        &config.evidence.keys,
        config.evidence.require_known_predicates,
        std::path::Path::new(""),
    )
    .map_err(|e| StartError::Config(format!("evidence: {e}")))
}

/// The receipt key, created on first start (its public half beside it);
/// none when receipts are off.
fn receipt_signer(config: &Config) -> Result<Option<crate::attest::ReceiptSigner>, StartError> {
    if !config.receipts.enabled {
        return Ok(None);
    }
    let path = config.receipt_key();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StartError::Startup(format!("{}: {e}", dir.display())))?;
    }
    crate::attest::ReceiptSigner::load_or_create(&path, &config.receipts.verifier_id)
        .map(Some)
        .map_err(|e| StartError::Startup(format!("receipt key: {e}")))
}

/// Builds the registry and loads every configured bundle: persisted copies
/// first (so a restart serves the last good bundles even if no source is
/// reachable), then development builds, then watched sources.
fn prepare_registry(
    config: &Config,
    events: tokio::sync::mpsc::UnboundedSender<BundleEvent>,
) -> Result<Arc<Registry>, StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::Startup(format!("data_dir {}: {e}", config.data_dir.display())))?;
    let limits = crate::policy::Limits {
        deadline: Duration::from_millis(config.limits.decision_deadline_ms),
        memory_bytes: config.limits.memory_mib << 20,
        max_instances: u32::try_from(config.limits.concurrency + 64).unwrap_or(u32::MAX),
        largest_bundle_memory_bytes: config
            .bundles
            .iter()
            .filter_map(|b| b.limits.memory_mib)
            .max()
            .unwrap_or(0)
            << 20,
        ..crate::policy::Limits::default()
    };
    let runtime =
        crate::policy::Runtime::new(limits).map_err(|e| StartError::Startup(e.to_string()))?;
    let metrics = Arc::new(Metrics::new());
    let registry = Arc::new(Registry::new(
        runtime,
        RegistrySettings {
            trust_dir: config.trust.dir.clone(),
            min_signatures: config.trust.min_signatures,
            isolation: config.limits.isolation,
            data_dir: config.data_dir.clone(),
            default_bundle: config.default_bundle().map(str::to_string),
            default_is_first_activated: config.bundles.is_empty() && config.policy_sets.is_empty(),
            cache: config.cache,
            events: Some(events),
            archive_limits: config.limits.archive(),
            bundle_limits: config
                .bundles
                .iter()
                .map(|b| (b.name.clone(), b.limits))
                .collect(),
            sets: config
                .policy_sets
                .iter()
                .map(|s| (s.name.clone(), s.members.clone()))
                .collect(),
        },
        metrics.clone(),
    ));
    for b in &config.bundles {
        registry.slot(&b.name);
    }
    registry.restore_persisted();
    for b in &config.bundles {
        let Some(dir) = &b.build else { continue };
        if let Err(e) = sources::build_and_sign(
            &registry,
            &b.name,
            dir,
            b.sign_with.as_deref(),
            &config.trust.dir,
        ) {
            tracing::error!(bundle = %b.name, policy_dir = %dir.display(), error = %e, "development build failed");
        }
    }
    let mut watcher = sources::Watcher::new(registry.clone(), config.bundles.clone());
    watcher.poll();
    watcher.spawn(Duration::from_millis(config.limits.watch_interval_ms));
    // Remote sources poll on their own threads: a registry that is down
    // must not hold up start, which already serves the persisted bundles.
    remote::start(&registry, &config.bundles, &config.sources)
        .map_err(|e| StartError::Config(e.to_string()))?;
    Ok(registry)
}
