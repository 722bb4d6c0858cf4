//! One object's reads for any kind — `GET .../{name}`, its `/status` and its `/events` —
//! answered from the watch cache. A kind is a type implementing [`Kind`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::cache::{CachedObject, WatchCache};
use crate::collection::{json_response, sync, KindInfo, BOTCLUSTERS, GITSOURCES};
use crate::{ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

/// A kind, as a type: axum handlers are generic over it ([`KindInfo`] says the rest).
pub(crate) trait Kind: Send + Sync + 'static {
    const INFO: KindInfo;
}

pub(crate) struct BotClusters;
impl Kind for BotClusters {
    const INFO: KindInfo = BOTCLUSTERS;
}

pub(crate) struct GitSources;
impl Kind for GitSources {
    const INFO: KindInfo = GITSOURCES;
}

pub(crate) fn not_found<K: Kind>(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "{} \"{name}\" not found; `{}` lists the ones that exist",
            K::INFO.kind,
            K::INFO.list_command
        ),
    )
}

/// One object from the watch cache, after it caught up with the store (404 if absent).
pub(crate) async fn cached<K: Kind>(
    cache: &WatchCache,
    name: &str,
) -> ApiResult<Arc<CachedObject>> {
    sync(cache).await?;
    cache
        .get(K::INFO.kind, name)
        .ok_or_else(|| not_found::<K>(name))
}

pub(crate) async fn get_one<K: Kind>(
    Extension(cache): Extension<Arc<WatchCache>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let obj = cached::<K>(&cache, &name).await?;
    Ok(json_response(StatusCode::OK, obj.doc.clone()))
}

pub(crate) async fn status<K: Kind>(
    Extension(cache): Extension<Arc<WatchCache>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let obj = cached::<K>(&cache, &name).await?;
    Ok(json_response(StatusCode::OK, obj.status_doc.clone()))
}

/// `GET .../{name}/events?limit=N` (default 50, at most 500): the newest, oldest first.
pub(crate) async fn events<K: Kind>(
    State(s): State<AppState>,
    Extension(cache): Extension<Arc<WatchCache>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    cached::<K>(&cache, &name).await?;
    let limit = match q.get("limit") {
        None => 50,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit \"{l}\" must be a number from 1 to 500"))
            })?,
    };
    let events = s.store.events(K::INFO.kind, &name, limit).await?;
    Ok(Json(json!({"name": name, "events": events})))
}
