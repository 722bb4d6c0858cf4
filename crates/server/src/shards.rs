//! `GET /api/v1/botclusters/{name}/shards` (the published shard map, a pending rebalance,
//! the balance, tenant databases) and `.../shards/route?key=|tenant=|region=` (where one key
//! lands), both from the status the controller wrote.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::{Extension, Json};
use botcluster_api::status::ShardMapStatus;
use botcluster_shardmap::{Query as RouteQuery, RouteError};
use serde_json::{json, Value};

use crate::cache::WatchCache;
use crate::ApiError;

type ApiResult<T> = Result<T, ApiError>;

async fn shard_state(cache: &WatchCache, name: &str) -> ApiResult<ShardMapStatus> {
    let obj = crate::reads::cached::<crate::reads::BotClusters>(cache, name).await?;
    let doc: Value = serde_json::from_slice(&obj.status_doc).unwrap_or(Value::Null);
    let state: Option<ShardMapStatus> = doc
        .get("status")
        .and_then(|s| s.get("shardMap"))
        .and_then(|m| serde_json::from_value(m.clone()).ok());
    state.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NoShardMap",
            format!(
                "BotCluster \"{name}\" has no shard map: its spec has no sharding, or the \
                 operator has not reconciled it yet"
            ),
        )
    })
}

/// `GET .../shards`.
pub async fn shards(
    Extension(cache): Extension<Arc<WatchCache>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = shard_state(&cache, &name).await?;
    Ok(Json(json!({
        "name": name,
        "version": s.published.as_ref().map(|m| m.version),
        "map": s.published,
        "pending": s.pending,
        "balance": s.balance,
        "databases": s.databases,
    })))
}

/// `GET .../shards/route?key=K` (hash, range), `?tenant=T`, `?region=R`.
pub async fn route(
    Extension(cache): Extension<Arc<WatchCache>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let query = match (q.get("key"), q.get("tenant"), q.get("region")) {
        (Some(k), None, None) => RouteQuery::Key(k),
        (None, Some(t), None) => RouteQuery::Tenant(t),
        (None, None, Some(r)) => RouteQuery::Region(r),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of ?key=, ?tenant= or ?region=",
            ))
        }
    };
    let s = shard_state(&cache, &name).await?;
    let map = s.published.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NoShardMap",
            format!("BotCluster \"{name}\" has not published a shard map yet"),
        )
    })?;
    match map.route(query) {
        Ok(r) => Ok(Json(serde_json::to_value(r).unwrap_or(Value::Null))),
        Err(e @ RouteError::NotFound(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}
