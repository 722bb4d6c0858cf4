//! The botcluster HTTP API: BotCluster CRUD over a [`Store`], status, events, dry runs, bearer-token auth, health and Prometheus metrics.
//!
//! [`router`] builds the axum app; it is testable in-process with `tower::ServiceExt::oneshot`.
//! Routes (all JSON; request bodies may be JSON or YAML):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz`, `/readyz` | liveness, readiness (no token) |
//! | GET | `/api/v1/openapi.json` | the OpenAPI 3.1 document ([`openapi`]; no token) |
//! | GET | `/metrics` | Prometheus text |
//! | GET | `/api/v1/botclusters` | list (`?limit`, `?continue`, `?labelSelector`, `?fieldSelector`), or watch (`?watch=true&resourceVersion=RV`) |
//! | GET, PUT, DELETE | `/api/v1/botclusters/{name}` | read, create-or-update (`?dryRun=true`), delete |
//! | GET | `/api/v1/botclusters/{name}/status` | status only |
//! | GET | `/api/v1/botclusters/{name}/events` | event log (`?limit=N`) |
//! | GET | `/api/v1/gitsources` | list or watch GitSources (the same parameters) |
//! | GET, PUT, DELETE | `/api/v1/gitsources/{name}` | read, create-or-update, delete (`?cascade=true`) |
//! | GET | `/api/v1/gitsources/{name}/status`, `/events` | status only, event log |
//! | POST | `/api/v1/gitsources/{name}/sync` | poll now (CI jobs, Git host webhooks) |
//!
//! Reads (objects, status, lists, watches) are answered from the [`cache::WatchCache`], kept
//! current by the store's watch; writes go to the store.

mod auth;
mod body;
pub mod cache;
pub mod collection;
mod error;
mod gitsources;
mod handlers;
pub mod metrics;
pub mod openapi;
mod reads;
pub mod selector;
mod shards;

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Extension, Router};
use botcluster_api::BotCluster;
use botcluster_store::Store;
use reads::{BotClusters, GitSources};

pub use auth::{load_or_create_token, TOKEN_FILE};
pub use botcluster_api::ports::ReservedPorts;
pub use error::{ApiError, ErrorBody};
pub use gitsources::git_field_errors;
pub use metrics::Metrics;

/// The PUT body decoder as the server runs it on a blocking thread (UTF-8, JSON or YAML within
/// the budget, one document, the URL's name, unknown fields, validation), without HTTP around
/// it: the fuzz target `http_body` drives it. `Err` is a refused request, `Ok(Err(_))` an
/// object with field errors.
pub fn decode_body(
    json: bool,
    bytes: &[u8],
    name: &str,
) -> Result<Result<BotCluster, botcluster_api::ValidationErrors>, ApiError> {
    body::decode(
        json,
        bytes,
        name,
        botcluster_api::yaml::botcluster_from_value,
    )
}

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Response header naming what a PUT did: `created`, `configured` or `unchanged`.
pub const CHANGE_HEADER: &str = "x-botcluster-change";

/// What the next reconcile pass would do, as sentences.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preview {
    /// The changes it would make (empty: none).
    pub actions: Vec<String>,
    /// What it would report without changing anything.
    pub notes: Vec<String>,
}

/// Something that can say what reconciling an object would do (the controller's planner).
/// Used for `?dryRun=true` and `botctl diff`.
#[async_trait]
pub trait PlanPreview: Send + Sync + 'static {
    /// What the next pass would do to converge `desired`.
    async fn preview(&self, desired: &BotCluster) -> Result<Preview, String>;
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// The desired-state store.
    pub store: Arc<dyn Store>,
    /// The bearer token every non-health request must carry.
    pub token: Arc<String>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The planner, when a controller runs in this process.
    pub preview: Option<Arc<dyn PlanPreview>>,
}

/// The whole HTTP API, with a watch cache of default sizes. Must be called inside a tokio
/// runtime (the cache follows the store in a task).
pub fn router(state: AppState) -> Router {
    router_with_cache(state, cache::CacheConfig::default())
}

/// The whole HTTP API, with a watch cache of the given sizes.
pub fn router_with_cache(state: AppState, config: cache::CacheConfig) -> Router {
    router_and_cache(state, config).0
}

/// The whole HTTP API and its watch cache; call [`cache::WatchCache::close`] when shutting
/// down, or a graceful shutdown waits for every open watch to time out.
pub fn router_and_cache(
    state: AppState,
    config: cache::CacheConfig,
) -> (Router, Arc<cache::WatchCache>) {
    let cache = cache::WatchCache::start(state.store.clone(), config);
    let handle = cache.clone();
    let kind = &collection::BOTCLUSTERS;
    let api = Router::new()
        .route("/metrics", get(handlers::metrics))
        .route(
            "/api/v1/botclusters",
            get(
                move |State(_): State<AppState>,
                      Extension(c): Extension<Arc<cache::WatchCache>>,
                      Query(q): Query<std::collections::HashMap<String, String>>| {
                    collection::serve(kind, c, q)
                },
            ),
        )
        .route(
            "/api/v1/botclusters/{name}",
            get(reads::get_one::<BotClusters>)
                .put(handlers::put)
                .delete(handlers::delete),
        )
        .route(
            "/api/v1/botclusters/{name}/status",
            get(reads::status::<BotClusters>),
        )
        .route(
            "/api/v1/botclusters/{name}/events",
            get(reads::events::<BotClusters>),
        )
        .route("/api/v1/botclusters/{name}/shards", get(shards::shards))
        .route(
            "/api/v1/botclusters/{name}/shards/route",
            get(shards::route),
        )
        .route(
            "/api/v1/gitsources",
            get(
                move |State(_): State<AppState>,
                      Extension(c): Extension<Arc<cache::WatchCache>>,
                      Query(q): Query<std::collections::HashMap<String, String>>| {
                    collection::serve(&collection::GITSOURCES, c, q)
                },
            ),
        )
        .route(
            "/api/v1/gitsources/{name}",
            get(reads::get_one::<GitSources>)
                .put(gitsources::put)
                .delete(gitsources::delete),
        )
        .route(
            "/api/v1/gitsources/{name}/status",
            get(reads::status::<GitSources>),
        )
        .route(
            "/api/v1/gitsources/{name}/events",
            get(reads::events::<GitSources>),
        )
        .route(
            "/api/v1/gitsources/{name}/sync",
            axum::routing::post(gitsources::sync),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let app = Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route(
            openapi::OPENAPI_PATH,
            get(|| async { axum::Json(openapi::openapi().clone()) }),
        )
        .merge(api)
        .fallback(handlers::not_found)
        .layer(Extension(cache))
        // Inside the metrics layer, so a panic is counted as the 500 it becomes.
        // Outside the handlers' own rejections (405, bad path or query), so they get the
        // JSON shape too.
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panic_response,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state);
    (app, handle)
}
