//! Prometheus metrics (`GET /metrics`).
//!
//! Hot-path counters are resolved once per bundle and kept as handles, so
//! counting a decision is one atomic add, not a label-set lookup.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::decision::{DecisionKind, Outcome};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
    outcome: &'static str,
    bundle: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    decision: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    bundle: String,
    cause: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BundleLabels {
    bundle: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct InfoLabels {
    bundle: String,
    version: String,
    digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResponseLabels {
    class: &'static str,
}

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    latency: [Histogram; 3],
    policy_errors: Family<ErrorLabels, Counter>,
    activations: Family<BundleLabels, Counter>,
    activation_failures: Family<BundleLabels, Counter>,
    bundle_info: Family<InfoLabels, Gauge>,
    responses: Family<ResponseLabels, Counter>,
    /// The handles of `2xx`, `4xx`, `5xx`, `other`, each resolved on its
    /// class's first response (a series appears when it first counts, as
    /// before), so counting a response is one atomic add, not a label-set
    /// lookup under the family's lock on every request.
    response_classes: [std::sync::OnceLock<Counter>; 4],
    scheduled: Histogram,
    webhook_results: Family<ResultLabels, Counter>,
    webhooks_pending: Gauge,
    log_rewound: Gauge,
    source_polls: Family<PollLabels, Counter>,
    source_last_success: Family<BundleLabels, Gauge>,
    source_stale: Family<BundleLabels, Gauge>,
    admissions: Family<ResultLabels, Counter>,
    authz: Family<AuthzLabels, Counter>,
    /// Exposure checks answered by route whose caller was refused (no or
    /// a refused credential, a missing role, an unreadable header): routed
    /// to stable, so this counter is what shows a gateway misconfigured.
    authz_refused: Family<ReasonLabels, Counter>,
    /// Background work: checkpoints, scheduler, exposure table.
    pub ops: super::ops_metrics::OpsMetrics,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PollLabels {
    bundle: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AuthzLabels {
    deployment: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Counters of one bundle's decisions, resolved once.
#[derive(Clone)]
pub struct BundleCounters {
    by_outcome: Vec<(DecisionKind, Outcome, Counter)>,
}

impl BundleCounters {
    pub fn count(&self, kind: DecisionKind, outcome: Outcome) {
        if let Some((_, _, c)) = self
            .by_outcome
            .iter()
            .find(|(k, o, _)| *k == kind && *o == outcome)
        {
            c.inc();
        }
    }
}

/// The outcomes each decision may return (docs/decisions.md#the-three-decisions).
const OUTCOMES: [(DecisionKind, &[Outcome]); 3] = [
    (DecisionKind::Gate, &[Outcome::Allow, Outcome::Deny]),
    (
        DecisionKind::Progression,
        &[
            Outcome::Promote,
            Outcome::Hold,
            Outcome::Rollback,
            Outcome::Suspend,
        ],
    ),
    (
        DecisionKind::Monitoring,
        &[
            Outcome::Healthy,
            Outcome::Alert,
            Outcome::Rollback,
            Outcome::Suspend,
        ],
    ),
];

fn kind_index(kind: DecisionKind) -> usize {
    match kind {
        DecisionKind::Gate => 0,
        DecisionKind::Progression => 1,
        DecisionKind::Monitoring => 2,
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("stagegate");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Decisions answered, by decision, outcome and bundle",
            decisions.clone(),
        );
        // 5 µs to ~5 s, doubling: decisions take microseconds, a hostile
        // policy up to its deadline.
        let latency_family = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                5e-6, 2.0, 21,
            ))
        });
        // Handles kept for the hot path observe what /metrics encodes.
        let latency = DecisionKind::ALL.map(|kind| {
            latency_family
                .get_or_create(&KindLabels {
                    decision: kind.as_str(),
                })
                .clone()
        });
        registry.register(
            "decision_duration_seconds",
            "Time to answer a decision, from request body to response body",
            latency_family,
        );
        let policy_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "policy_errors",
            "Decisions that failed closed because the policy trapped, timed out, ran out of memory or reported an error",
            policy_errors.clone(),
        );
        let activations = Family::<BundleLabels, Counter>::default();
        registry.register(
            "bundle_activations",
            "Bundle versions activated",
            activations.clone(),
        );
        let activation_failures = Family::<BundleLabels, Counter>::default();
        registry.register(
            "bundle_activation_failures",
            "Bundle candidates rejected (verification, compatibility, compilation, smoke call, downgrade)",
            activation_failures.clone(),
        );
        let bundle_info = Family::<InfoLabels, Gauge>::default();
        registry.register(
            "bundle_info",
            "The active version of each bundle (value 1)",
            bundle_info.clone(),
        );
        let responses = Family::<ResponseLabels, Counter>::default();
        registry.register(
            "http_responses",
            "HTTP responses by status class",
            responses.clone(),
        );
        let scheduled = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            1e-4, 2.0, 16,
        ));
        registry.register(
            "scheduled_evaluations_duration_seconds",
            "Scheduled monitoring evaluations (each one deployment), by duration",
            scheduled.clone(),
        );
        let webhook_results = Family::<ResultLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Escalation webhook delivery attempts by result",
            webhook_results.clone(),
        );
        let webhooks_pending = Gauge::default();
        registry.register(
            "webhook_pending",
            "Escalation webhook deliveries not yet delivered (retried until they are)",
            webhooks_pending.clone(),
        );
        let log_rewound = Gauge::default();
        registry.register(
            "log_rewound",
            "1 when the decision log does not extend the last checkpoint the service signed (it signs none until it does)",
            log_rewound.clone(),
        );
        let source_polls = Family::<PollLabels, Counter>::default();
        registry.register(
            "bundle_source_polls",
            "Polls of remote bundle sources by result: changed (a new version activated), unchanged, error (the source could not be asked), rejected (it offered a bundle that was refused)",
            source_polls.clone(),
        );
        let source_last_success = Family::<BundleLabels, Gauge>::default();
        registry.register(
            "bundle_source_last_success_timestamp_seconds",
            "When a remote bundle source last answered with an acceptable bundle (changed or unchanged), Unix seconds",
            source_last_success.clone(),
        );
        let source_stale = Family::<BundleLabels, Gauge>::default();
        registry.register(
            "bundle_source_stale",
            "1 while a remote bundle source has had no successful poll for longer than stale_after_ms",
            source_stale.clone(),
        );
        let admissions = Family::<ResultLabels, Counter>::default();
        registry.register(
            "admissions",
            "Kubernetes admission reviews answered: allowed, denied, or not_annotated (not governed: no deployment holds the object's ref and it carries no stagegate annotation)",
            admissions.clone(),
        );
        let authz = Family::<AuthzLabels, Counter>::default();
        registry.register(
            "authz",
            "Per-request exposure checks by deployment (`unknown` when none is active under the name asked for) and result (in, out)",
            authz.clone(),
        );
        let authz_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "authz_refused",
            "Exposure checks answered by route (X-Stagegate-Answer: route) whose caller was refused, by reason (the error code: unauthorized, token.expired, forbidden, bad_header, ...); each was routed to the stable release",
            authz_refused.clone(),
        );
        // Present from the start at 0, so the first refusal is an
        // increase an alert sees (token.* reasons appear when first seen).
        for reason in ["unauthorized", "forbidden", "bad_header"] {
            let _ = authz_refused.get_or_create(&ReasonLabels { reason });
        }
        for result in ["allowed", "denied", "not_annotated"] {
            let _ = admissions.get_or_create(&ResultLabels { result });
        }
        for result in ["delivered", "failed"] {
            let _ = webhook_results.get_or_create(&ResultLabels { result });
        }
        let ops = super::ops_metrics::OpsMetrics::register(&mut registry);
        Metrics {
            ops,
            authz,
            authz_refused,
            source_polls,
            source_last_success,
            source_stale,
            admissions,
            scheduled,
            webhook_results,
            webhooks_pending,
            log_rewound,
            registry,
            decisions,
            latency,
            policy_errors,
            activations,
            activation_failures,
            bundle_info,
            responses,
            response_classes: Default::default(),
        }
    }

    /// Counter handles for a bundle's decisions.
    pub fn bundle_counters(&self, bundle: &str) -> BundleCounters {
        // The failure series exist at 0 from the start: an alert on
        // `increase()` misses a counter's first increment when the series
        // appears with it.
        for cause in crate::policy::PolicyError::CAUSES {
            let _ = self.policy_errors.get_or_create(&ErrorLabels {
                bundle: bundle.to_string(),
                cause,
            });
        }
        let _ = self.activation_failures.get_or_create(&BundleLabels {
            bundle: bundle.to_string(),
        });
        let mut by_outcome = Vec::new();
        for (kind, outcomes) in OUTCOMES {
            for outcome in outcomes {
                let c = self
                    .decisions
                    .get_or_create(&DecisionLabels {
                        decision: kind.as_str(),
                        outcome: outcome.as_str(),
                        bundle: bundle.to_string(),
                    })
                    .clone();
                by_outcome.push((kind, *outcome, c));
            }
        }
        BundleCounters { by_outcome }
    }

    /// The counter of exposure checks of `deployment` with `result`
    /// (a handle: kept by the route table, so counting is one atomic add).
    pub fn authz_counter(&self, deployment: &str, result: &'static str) -> Counter {
        self.authz
            .get_or_create(&AuthzLabels {
                deployment: deployment.to_string(),
                result,
            })
            .clone()
    }

    pub fn observe_latency(&self, kind: DecisionKind, seconds: f64) {
        self.latency[kind_index(kind)].observe(seconds);
    }

    pub fn policy_error(&self, bundle: &str, cause: &'static str) {
        self.policy_errors
            .get_or_create(&ErrorLabels {
                bundle: bundle.to_string(),
                cause,
            })
            .inc();
    }

    pub fn activated(
        &self,
        bundle: &str,
        version: &str,
        digest: &str,
        previous: Option<(&str, &str)>,
    ) {
        self.activations
            .get_or_create(&BundleLabels {
                bundle: bundle.to_string(),
            })
            .inc();
        if let Some((v, d)) = previous {
            self.bundle_info.remove(&InfoLabels {
                bundle: bundle.to_string(),
                version: v.to_string(),
                digest: d.to_string(),
            });
        }
        self.bundle_info
            .get_or_create(&InfoLabels {
                bundle: bundle.to_string(),
                version: version.to_string(),
                digest: digest.to_string(),
            })
            .set(1);
    }

    pub fn activation_failed(&self, bundle: &str) {
        self.activation_failures
            .get_or_create(&BundleLabels {
                bundle: bundle.to_string(),
            })
            .inc();
    }

    pub fn response(&self, status: u16) {
        let (i, class) = match status {
            200..=299 => (0, "2xx"),
            400..=499 => (1, "4xx"),
            500..=599 => (2, "5xx"),
            _ => (3, "other"),
        };
        self.response_classes[i]
            .get_or_init(|| {
                self.responses
                    .get_or_create(&ResponseLabels { class })
                    .clone()
            })
            .inc();
    }

    pub fn scheduled(&self, seconds: f64) {
        self.scheduled.observe(seconds);
    }

    pub fn webhook(&self, delivered: bool) {
        let result = if delivered { "delivered" } else { "failed" };
        self.webhook_results
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// An admission review answered: `allowed`, `denied` or `not_annotated`.
    /// Counts an exposure check refused and answered by route.
    pub fn authz_refused(&self, reason: &'static str) {
        self.authz_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn admission(&self, result: &'static str) {
        self.admissions
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn webhooks_pending(&self, n: i64) {
        self.webhooks_pending.set(n);
    }

    /// Whether the decision log was found rewound (records/signing.rs).
    pub fn log_rewound(&self, rewound: bool) {
        self.log_rewound.set(i64::from(rewound));
    }

    /// One poll of `bundle`'s remote source ended with `result`
    /// (`changed|unchanged|error|rejected`).
    pub fn source_poll(&self, bundle: &str, result: &'static str) {
        self.source_polls
            .get_or_create(&PollLabels {
                bundle: bundle.to_string(),
                result,
            })
            .inc();
    }

    /// Makes every poll-result series of `bundle` exist (at 0).
    pub fn source_registered(&self, bundle: &str, results: &[&'static str]) {
        for result in results {
            let _ = self.source_polls.get_or_create(&PollLabels {
                bundle: bundle.to_string(),
                result,
            });
        }
        self.source_stale(bundle, false);
    }

    pub fn source_success(&self, bundle: &str, unix_seconds: i64) {
        self.source_last_success
            .get_or_create(&BundleLabels {
                bundle: bundle.to_string(),
            })
            .set(unix_seconds);
    }

    pub fn source_stale(&self, bundle: &str, stale: bool) {
        self.source_stale
            .get_or_create(&BundleLabels {
                bundle: bundle.to_string(),
            })
            .set(i64::from(stale));
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
