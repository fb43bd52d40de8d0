//! `stagegate serve`: the HTTP decision service (docs/http-api.md), HTTP
//! only: the router, its middleware, the extractors, the handlers, error
//! mapping, TLS and the console. The engine they call (registry, pipeline,
//! scheduler) is [`crate::service`], which knows nothing of HTTP.
//!
//! axum on tokio. Decisions run inline on the request's task: a warm
//! policy call takes microseconds, less than handing it to another thread
//! would; a bundle whose calls turn slow moves to a bounded blocking lane
//! (`service::lane`). Every request passes a concurrency gate (503 +
//! `Retry-After` instead of an unbounded queue) and a timeout; bundle
//! activations run on blocking threads so compilation never stalls
//! decisions.

pub mod admission_access;
pub(crate) mod auth;
pub(crate) mod body;
pub mod capacity;
pub mod console;
pub(crate) mod error;
pub(crate) mod exposure;
pub(crate) mod listener;
pub mod openapi;
pub(crate) mod routes;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio::sync::Semaphore;

use crate::config::{Config, LimitsConfig, LogFormat};
use crate::service::registry::ResolveError;
use crate::service::{Metrics, Pipeline, Registry, Service, StartError};
use auth::Auth;
use error::ApiError;

/// Shared state of every handler.
pub struct App {
    pub(crate) registry: Arc<Registry>,
    pub(crate) records: crate::records::Records,
    pub(crate) auth: Auth,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limits: LimitsConfig,
    /// Log stateless decisions too.
    pub(crate) log_decisions: bool,
    pub(crate) notices: routes::notice::NoticeCache,
    /// The auditor's console: its sessions.
    pub(crate) console: console::Console,
    console_enabled: bool,
    /// GitHub deployment protection rules, when configured.
    pub(crate) github: Option<Arc<crate::integrations::github::GithubGate>>,
    /// The route table the per-request exposure check answers from.
    pub(crate) exposure: Arc<exposure::Exposure>,
    /// `[integrations.kubernetes]`: the admission rules' settings.
    pub(crate) kubernetes: crate::config::KubernetesConfig,
    /// Who may call the admission route without a token.
    pub(crate) admission_access: admission_access::AdmissionAccess,
    inflight: Arc<Semaphore>,
    /// Reserved pools and the limits on callers without a token.
    pub(crate) capacity: capacity::Capacity,
}

impl App {
    /// The records service (for in-process use: benchmarks, tools).
    pub fn records(&self) -> &crate::records::Records {
        &self.records
    }

    /// The decision pipeline of bundle or policy set `name`, or of the
    /// default: what every handler decides with.
    pub fn pipeline(&self, name: Option<&str>) -> Result<Pipeline, ResolveError> {
        Pipeline::resolve(&self.registry, &self.metrics, name)
    }

    /// The engine behind this service.
    pub(crate) fn service(&self) -> Service {
        Service {
            records: self.records.clone(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// A failure to start: reported before the port is bound.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Startup(String),
}

impl From<StartError> for ServeError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Config(m) => ServeError::Config(m),
            StartError::Startup(m) => ServeError::Startup(m),
        }
    }
}

/// Installs the log subscriber: `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Starts the engine ([`Service::start`]) and builds the HTTP state
/// around it: tokens, the console, the integrations' gates and the
/// exposure route table.
pub async fn prepare(config: &Config) -> Result<Arc<App>, ServeError> {
    let github = match &config.integrations.github {
        Some(g) => Some(Arc::new(
            crate::integrations::github::GithubGate::load(g)
                .map_err(|e| ServeError::Config(e.to_string()))?,
        )),
        None => None,
    };
    let Service {
        records,
        registry,
        metrics,
    } = Service::start(config).await?;
    let identities = tokio::task::block_in_place(|| {
        crate::identity::Identities::new(&config.identities)
            .map_err(|e| ServeError::Config(e.to_string()))
    })?;
    let exposure = Arc::new(
        exposure::Exposure::new(
            &config.integrations.authz,
            &config.data_dir,
            registry.metrics().clone(),
        )
        .map_err(|e| ServeError::Config(e.to_string()))?,
    );
    // The first table before the port is bound: a gateway asking at once
    // is answered from the records, not from an empty table.
    if let Err(e) = exposure.refresh(&records).await {
        return Err(ServeError::Startup(format!("exposure route table: {e}")));
    }
    exposure.spawn_refresh(
        records.clone(),
        Duration::from_millis(config.integrations.authz.refresh_ms),
    );
    let signed = metrics.clone();
    let records = records.with_checkpoint_observer(move |size, unix_seconds| {
        signed.ops.checkpoint_signed(size, unix_seconds);
    });
    let sequencing = metrics.clone();
    records.observe_sequencer(move |held, lost| sequencing.ops.sequencer(held, lost));
    let app = Arc::new(App {
        metrics,
        registry,
        records,
        auth: Auth::new(&config.tokens).with_identities(identities),
        limits: config.limits.clone(),
        log_decisions: config.records.log_decisions,
        notices: routes::notice::NoticeCache::new(),
        console: console::Console::new(&config.console),
        console_enabled: config.console.enabled,
        github,
        exposure,
        kubernetes: config.integrations.kubernetes.clone(),
        admission_access: admission_access::AdmissionAccess::new(
            config.integrations.kubernetes.require_token,
            config.integrations.kubernetes.client_ca.as_deref(),
            config.integrations.kubernetes.unauthenticated_per_second,
        ),
        inflight: Arc::new(Semaphore::new(config.limits.concurrency)),
        capacity: capacity::Capacity::new(&config.capacity),
    });
    app.service().spawn_background(config);
    Ok(app)
}

/// The router: decision and bundle endpoints behind the concurrency gate
/// and timeout; health and metrics outside it, so an overloaded service
/// still reports its state.
pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        // POST decides (`{kind}` = gate|progression|monitoring); GET reads
        // a logged decision by id.
        .route(
            "/v1/decisions/{kind_or_id}",
            post(routes::decisions::decide).get(routes::records::decision),
        )
        .route("/v1/bundles", get(routes::bundles::list))
        .route(
            "/v1/bundles/{name}",
            get(routes::bundles::status).put(routes::bundles::upload),
        )
        .route("/v1/systems", post(routes::records::create_system))
        .route("/v1/systems/{id}", get(routes::records::get_system))
        .route(
            "/v1/deployments/{id}/deliveries",
            get(routes::records::deliveries),
        )
        .route(
            "/v1/systems/{id}/releases",
            post(routes::records::create_release),
        )
        .route("/v1/releases/{id}", get(routes::records::get_release))
        .route(
            "/v1/releases/{id}/reviews",
            post(routes::records::release_review),
        )
        .route(
            "/v1/releases/{id}/authorisations",
            post(routes::records::release_authorisation),
        )
        .route(
            "/v1/releases/{id}/acceptances",
            post(routes::records::release_acceptance),
        )
        .route(
            "/v1/deployments",
            post(routes::records::create_deployment).get(routes::evaluations::find),
        )
        // Any method and any suffix: Envoy's ext_authz keeps the original
        // method and appends the original path to its `path_prefix`.
        .route("/v1/integrations/authz", any(exposure::authz))
        .route("/v1/integrations/authz/{*rest}", any(exposure::authz))
        .route(
            "/v1/integrations/github/deployment-protection",
            post(routes::integrations::github::deployment_protection),
        )
        .route("/v1/log/checkpoint", get(routes::records::checkpoint))
        .route("/v1/log/key", get(routes::records::checkpoint_key))
        .route("/v1/log/tile/{*path}", get(routes::log::tile))
        .route("/v1/log/proof/inclusion", get(routes::log::inclusion))
        .route("/v1/log/proof/consistency", get(routes::log::consistency))
        .route("/v1/log/entries/{index}", get(routes::log::entry))
        .route("/v1/decisions/{id}/proof", get(routes::log::decision_proof))
        .route("/v1/decisions/{id}/receipt", get(routes::records::receipt))
        .route("/v1/receipts/keys", get(routes::records::receipt_keys))
        .route("/v1/deployments/{id}", get(routes::records::get_deployment))
        .route("/v1/deployments/{id}/route", get(routes::records::route))
        .route("/v1/deployments/{id}/record", get(routes::records::record))
        .route(
            "/v1/deployments/{id}/reviews",
            post(routes::records::deployment_review),
        )
        .route(
            "/v1/deployments/{id}/progressions",
            post(routes::records::progress),
        )
        .route(
            "/v1/deployments/{id}/observations",
            post(routes::records::observe),
        )
        .route("/v1/deployments/{id}/issues", post(routes::records::issue))
        .route(
            "/v1/deployments/{id}/evaluations/progression",
            get(routes::evaluations::progression),
        )
        .route(
            "/v1/deployments/{id}/evaluations/monitoring",
            get(routes::evaluations::monitoring),
        )
        // Rollout controllers (docs/integrations/).
        .route(
            "/v1/integrations/argo-rollouts/analysis",
            get(routes::integrations::argo::analysis),
        )
        .route(
            "/v1/integrations/flagger/{hook}",
            post(routes::integrations::flagger::hook),
        )
        .route(
            "/v1/deployments/{id}/rollback",
            post(routes::records::rollback),
        )
        .route(
            "/v1/deployments/{id}/suspend",
            post(routes::records::suspend),
        )
        // A Kubernetes ValidatingAdmissionWebhook (gateway role).
        .route(
            "/v1/integrations/kubernetes/admission",
            post(routes::integrations::kubernetes::review),
        )
        // Public routes pass the same gate: a flood of them must not
        // starve the decisions (the notice is served from a cache, health
        // and metrics from memory, so they rarely wait for a permit).
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        // The notice to users is public: the people it informs hold no token.
        .route("/v1/systems/{id}/notice", get(routes::notice::notice))
        .route("/metrics", get(routes::health::metrics))
        // The published contract (docs/http-api.md), public like the docs.
        .route("/v1/openapi.json", get(openapi::serve));
    // The auditor's console (docs/console.md).
    let api = if app.console_enabled {
        api.merge(console::routes(app.clone()))
    } else {
        api
    }
    .layer(middleware::from_fn_with_state(app.clone(), admit));
    Router::new()
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), count_responses))
        .layer(middleware::from_fn_with_state(app.clone(), loopback_host))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; GET /v1/openapi.json lists them (docs/http-api.md)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

/// In open development mode every caller has every role, so only this
/// machine may call: besides listening on loopback, a request must name a
/// loopback host. A web page on another origin that rebinds its own DNS
/// name to 127.0.0.1 still sends that name in `Host`, and is refused.
async fn loopback_host(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if app.auth.is_open() {
        let host = req
            .headers()
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().host())
            .unwrap_or_default();
        if !is_loopback_host(host) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                format!(
                    "without access tokens only loopback hosts may call (Host: {host}); configure [[tokens]] to serve other names"
                ),
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Admission: reserved pools, tokenless callers refused or limited before
/// a byte of their body is read, a permit per request in flight or 503 at
/// once, and the request timeout ([`capacity`]).
async fn admit(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    capacity::admit(app, req, next).await
}

async fn count_responses(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    app.metrics.response(res.status().as_u16());
    res
}

/// Without tokens the service is open to every caller, so it listens on
/// loopback only, whatever the configuration asked for.
pub fn effective_listen(config: &Config) -> SocketAddr {
    loopback_unless_tokens(config, config.listen)
}

fn loopback_unless_tokens(config: &Config, listen: SocketAddr) -> SocketAddr {
    if config.tokens.is_empty() && !listen.ip().is_loopback() {
        let addr = SocketAddr::from(([127, 0, 0, 1], listen.port()));
        tracing::warn!(
            requested = %listen,
            listening = %addr,
            "no access tokens configured: listening on loopback only; configure [[tokens]] to serve other hosts"
        );
        return addr;
    }
    if config.tokens.is_empty() {
        tracing::warn!(
            "no access tokens configured: open development mode, every local caller has every role"
        );
    }
    listen
}

/// Runs the service until SIGINT or SIGTERM, then drains in-flight requests
/// (on both listeners when `listen_tls` is set).
pub async fn serve(config: Config) -> Result<(), ServeError> {
    // The certificate is checked before anything is opened or bound.
    let certificates = match config.tls.files().filter(|_| config.listen_tls.is_some()) {
        Some(files) => {
            let client_ca = match &config.integrations.kubernetes.client_ca {
                Some(path) => Some(
                    admission_access::load_client_ca(path)
                        .map_err(|e| ServeError::Config(format!("invalid configuration: {e}")))?,
                ),
                None => None,
            };
            Some(
                tls::Certificates::load_with(files, client_ca)
                    .map_err(|e| ServeError::Config(format!("invalid configuration: {e}")))?,
            )
        }
        None => None,
    };
    let app = prepare(&config).await?;
    let addr = effective_listen(&config);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Startup(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Startup(e.to_string()))?;
    // Both listeners are bound before the service says it listens.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tls_server = match (config.listen_tls, certificates) {
        (Some(requested), Some(certificates)) => {
            let addr = loopback_unless_tokens(&config, requested);
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                ServeError::Startup(format!("cannot listen on {addr} (listen_tls): {e}"))
            })?;
            let tls_local = listener
                .local_addr()
                .map_err(|e| ServeError::Startup(e.to_string()))?;
            certificates.watch(Duration::from_millis(config.limits.watch_interval_ms));
            tracing::info!(address = %tls_local, certificate = %certificates.files().certificate.display(), "TLS listener ready");
            let mut stopped = stopped.clone();
            Some(tokio::spawn(tls::serve(
                listener,
                router(app.clone()),
                certificates,
                config.limits.request_timeout(),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            )))
        }
        _ => None,
    };
    let active: Vec<String> = app
        .registry
        .slots()
        .values()
        .filter_map(|s| s.active().map(|a| format!("{} {}", s.name, a.version)))
        .collect();
    tracing::info!(address = %local, bundles = ?active, "stagegate listening");
    if active.is_empty() {
        tracing::warn!(
            "no bundle is active: /readyz answers 503 and decisions 503 until one is uploaded or its source appears"
        );
    }
    let records = app.records.clone();
    let mut plain_stopped = stopped.clone();
    let plain = listener::serve(
        listener,
        router(app),
        config.capacity.header_timeout(),
        async move {
            let _ = plain_stopped.wait_for(|s| *s).await;
        },
    );
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    plain.await;
    if let Some(tls_server) = tls_server {
        let _ = tls_server.await;
    }
    // Every acknowledged decision is in the log: another replica may
    // sequence now.
    records.release_sequencer().await;
    tracing::info!("stopped: in-flight requests drained");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested: no new connections, draining in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_pass_the_open_mode_host_check() {
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:9",
            "127.1.2.3",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1",
            "",
            "localhost.evil.example",
            "[::2]:80",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
