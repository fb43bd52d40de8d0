//! The engine without HTTP: the bundle registry and where its bundles come
//! from (files, development builds, remote sources), the lanes that run
//! slow bundles off the async workers, the one decision pipeline, the
//! scheduler and webhook deliverer that keep working between requests, and
//! the metrics they count into.
//!
//! Nothing here knows about axum or the `server` module: the HTTP layer
//! holds a [`Registry`] and [`Metrics`] and asks for a
//! [`Pipeline`](pipeline::Pipeline) per request; the CLI, the benches and
//! the scheduler do the same without a listener.

pub(crate) mod lane;
pub(crate) mod metrics;
pub(crate) mod monitor;
pub(crate) mod ops_metrics;
pub(crate) mod pipeline;
pub(crate) mod registry;
pub(crate) mod remote;
pub(crate) mod sources;
mod startup;

use std::sync::Arc;

pub(crate) use metrics::Metrics;
pub(crate) use pipeline::{Pipeline, PipelineError};
pub(crate) use registry::Registry;
pub(crate) use registry::ResolveError;
pub(crate) use startup::StartError;

/// The running engine: the records, the bundles it asks and the counters
/// it keeps. Cheap to clone (every part is shared).
#[derive(Clone)]
pub(crate) struct Service {
    pub(crate) records: crate::records::Records,
    pub(crate) registry: Arc<Registry>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Service {
    /// The decision pipeline of bundle or policy set `name`, or of the
    /// default.
    pub(crate) fn pipeline(&self, name: Option<&str>) -> Result<Pipeline, ResolveError> {
        Pipeline::resolve(&self.registry, &self.metrics, name)
    }
}
