//! The endpoints.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use botcluster_api::gitsource::OWNER_LABEL;
use botcluster_api::ports;
use botcluster_api::{BotCluster, ObjectMeta, API_VERSION, BOTCLUSTER_KIND};
use botcluster_store::{Change, Deleted, SpecWrite, StoredObject};
use serde_json::{json, Value};

use crate::cache::WatchCache;
use crate::collection::sync;
use crate::reads::BotClusters;
use crate::{ApiError, AppState, CHANGE_HEADER};

type ApiResult<T> = Result<T, ApiError>;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the store answers one cheap read and the watch cache (which serves every read)
/// has caught up with it.
pub async fn readyz(
    State(s): State<AppState>,
    Extension(cache): Extension<Arc<WatchCache>>,
) -> Response {
    let not_ready = |what: String| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "NotReady", what).into_response()
    };
    if let Err(e) = s.store.ping().await {
        return not_ready(format!("the store is not answering: {e}"));
    }
    match sync(&cache).await {
        Ok(_) => "ok\n".into_response(),
        Err(e) => not_ready(e.body.message),
    }
}

pub async fn metrics(
    State(s): State<AppState>,
    Extension(cache): Extension<Arc<WatchCache>>,
) -> Response {
    if sync(&cache).await.is_ok() {
        s.metrics
            .objects
            .with_label_values(&[BOTCLUSTER_KIND])
            .set(cache.count(BOTCLUSTER_KIND) as i64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "no such endpoint; the API lives under /api/v1/botclusters",
    )
}

/// A stored object as the API shows it: a full BotCluster document.
pub fn to_document(obj: &StoredObject) -> Value {
    let mut doc = json!({
        "apiVersion": API_VERSION,
        "kind": obj.kind,
        "metadata": obj.meta,
        "spec": obj.spec,
    });
    if !obj.status.is_null() {
        doc["status"] = obj.status.clone();
    }
    doc
}

pub(crate) fn dry_run(q: &HashMap<String, String>) -> ApiResult<bool> {
    flag(q, "dryRun")
}

/// A boolean query parameter: absent or `false`, or `true` (also `All` and empty, as
/// Kubernetes' `dryRun`).
pub(crate) fn flag(q: &HashMap<String, String>, key: &str) -> ApiResult<bool> {
    match q.get(key).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") | Some("All") | Some("") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key}=\"{other}\" must be true or false"
        ))),
    }
}

pub async fn put(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    reserved: Option<axum::Extension<botcluster_api::ports::ReservedPorts>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let dry = dry_run(&q)?;
    let decoded = crate::body::read_object(&headers, body, &name).await?;
    let kind_label = BOTCLUSTER_KIND;
    let bc: BotCluster = match decoded {
        Ok(bc) => bc,
        Err(errors) => {
            s.metrics
                .spec_writes
                .with_label_values(&[kind_label, "invalid"])
                .inc();
            let message = format!(
                "BotCluster \"{name}\" is invalid ({} problem{}); nothing was stored",
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            );
            return Err(ApiError::invalid(message, errors.0));
        }
    };
    // Host ports another stored cluster holds are refused now, not found at reconcile time.
    let stored: Vec<(String, botcluster_api::BotClusterSpec)> = s
        .store
        .list(BOTCLUSTER_KIND)
        .await?
        .into_iter()
        .filter_map(|o| Some((o.meta.name, serde_json::from_value(o.spec).ok()?)))
        .collect();
    let mut clashes = ports::clashes(&name, &bc.spec, stored.iter().map(|(n, s)| (n.as_str(), s)));
    if let Some(axum::Extension(r)) = &reserved {
        clashes.extend(ports::reserved_clashes(&bc.spec, r));
    }
    if !clashes.is_empty() {
        s.metrics
            .spec_writes
            .with_label_values(&[kind_label, "conflict"])
            .inc();
        let mut e = ApiError::invalid(
            format!("BotCluster \"{name}\" claims host ports another BotCluster or the operator holds; nothing was stored"),
            clashes,
        );
        e.status = StatusCode::CONFLICT;
        e.body.code = "PortConflict".into();
        return Err(e);
    }
    let manager = manager(&headers);
    let force = flag(&q, "force")?;
    let (labels, owner_note) = owned_labels(&s, &name, &bc, force, dry).await?;
    let write = SpecWrite {
        kind: BOTCLUSTER_KIND.into(),
        meta: ObjectMeta {
            name: name.clone(),
            labels,
            annotations: bc.metadata.annotations.clone(),
            ..Default::default()
        },
        spec: serde_json::to_value(&bc.spec).map_err(|e| ApiError::bad_request(e.to_string()))?,
        expected_resource_version: bc.metadata.resource_version.clone(),
        manager: Some(manager),
        dry_run: dry,
    };
    let (obj, change) = match s.store.apply(write).await {
        Ok(r) => r,
        Err(e) => {
            if matches!(e, botcluster_store::StoreError::Conflict { .. }) {
                s.metrics
                    .spec_writes
                    .with_label_values(&[kind_label, "conflict"])
                    .inc();
            }
            return Err(e.into());
        }
    };
    let mut doc = to_document(&obj);
    if dry {
        let (plan, notes) = match &s.preview {
            Some(p) => match p.preview(&bc).await {
                Ok(v) => (json!(v.actions), json!(v.notes)),
                Err(e) => (Value::Null, json!([format!("the planner failed: {e}")])),
            },
            None => (Value::Null, Value::Null),
        };
        let notes = match (owner_note, notes) {
            (Some(n), Value::Array(mut a)) => {
                a.push(json!(n));
                Value::Array(a)
            }
            (Some(n), _) => json!([n]),
            (None, notes) => notes,
        };
        doc =
            json!({"dryRun": true, "change": change, "object": doc, "plan": plan, "notes": notes});
    } else {
        s.metrics
            .spec_writes
            .with_label_values(&[kind_label, &change.to_string()])
            .inc();
        tracing::info!(name = %name, change = %change, generation = obj.generation(), "spec written");
    }
    Ok(written(change, dry, doc))
}

/// The answer to a PUT of any kind: 201 for a creation (200 otherwise, and for dry runs),
/// with [`CHANGE_HEADER`] naming what the write did.
pub(crate) fn written(change: Change, dry: bool, body: Value) -> Response {
    let code = if change == Change::Created && !dry {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = (code, Json(body)).into_response();
    resp.headers_mut().insert(
        CHANGE_HEADER,
        HeaderValue::from_static(match change {
            Change::Created => "created",
            Change::Configured => "configured",
            Change::Unchanged => "unchanged",
        }),
    );
    resp
}

/// Who writes: the `x-botcluster-manager` header (`botctl`), else `api`.
pub(crate) fn manager(headers: &HeaderMap) -> String {
    headers
        .get("x-botcluster-manager")
        .and_then(|v| v.to_str().ok())
        .filter(|m| !m.is_empty() && m.len() <= 64 && m.chars().all(|c| c.is_ascii_graphic()))
        .filter(|m| !m.starts_with("gitsource/"))
        .unwrap_or("api")
        .to_string()
}

/// The labels a user's write of a BotCluster stores, given who owns it.
///
/// A BotCluster a GitSource applied carries [`OWNER_LABEL`]; a user's write of it is refused
/// (409 `OwnedBySource`, naming the source) unless `force`, and a forced write keeps the
/// label, so the source's next sync puts Git's version back. A user may not set the label
/// on an object no source owns. Dry runs are not refused; they get a note instead.
async fn owned_labels(
    s: &AppState,
    name: &str,
    bc: &BotCluster,
    force: bool,
    dry: bool,
) -> ApiResult<(std::collections::BTreeMap<String, String>, Option<String>)> {
    let mut labels = bc.metadata.labels.clone();
    // From the store, not the cache: the decision must see the latest owner.
    let stored = s.store.get(BOTCLUSTER_KIND, name).await?;
    let owner = stored
        .as_ref()
        .and_then(|o| o.meta.labels.get(OWNER_LABEL))
        .cloned();
    match owner {
        Some(src) => {
            let message = format!(
                "BotCluster \"{name}\" is managed by GitSource \"{src}\": change it in Git, or write it anyway with --force (botctl apply --force); the next sync of \"{src}\" puts Git's version back"
            );
            if !force && !dry {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "OwnedBySource",
                    message,
                ));
            }
            labels.insert(OWNER_LABEL.into(), src);
            Ok((labels, (!force).then_some(message)))
        }
        None => {
            if labels.contains_key(OWNER_LABEL) {
                return Err(ApiError::invalid(
                    format!("BotCluster \"{name}\" is invalid (1 problem); nothing was stored"),
                    vec![botcluster_api::FieldError::new(
                        format!("metadata.labels.{OWNER_LABEL}"),
                        "is set by the operator on clusters a GitSource applied; remove it",
                    )],
                ));
            }
            Ok((labels, None))
        }
    }
}

pub async fn delete(
    State(s): State<AppState>,
    Extension(cache): Extension<Arc<WatchCache>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    crate::reads::cached::<BotClusters>(&cache, &name).await?;
    match s.store.delete(BOTCLUSTER_KIND, &name).await? {
        Deleted::Removed => Ok((
            StatusCode::OK,
            Json(json!({"name": name, "result": "deleted", "message": format!("BotCluster \"{name}\" deleted")})),
        )
            .into_response()),
        Deleted::Terminating(obj) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "name": name,
                "result": "terminating",
                "message": format!("BotCluster \"{name}\" is being torn down; it disappears when its containers are gone"),
                "object": to_document(&obj),
            })),
        )
            .into_response()),
    }
}
