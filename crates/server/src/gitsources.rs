//! The GitSource endpoints: `GET/PUT/DELETE /api/v1/gitsources[/{name}]`, its status and
//! events, and `POST /api/v1/gitsources/{name}/sync` (the hook a CI job or a Git host's
//! webhook calls to poll now).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use botcluster_api::gitsource::{
    gitsource_from_value, GitSource, DELETE_POLICY_ANNOTATION, GITSOURCE_KIND, SYNC_ANNOTATION,
};
use botcluster_api::{FieldError, ObjectMeta, ValidationErrors};
use botcluster_store::{Deleted, SpecWrite, StoredObject};
use serde_json::{json, Value};

use crate::handlers::{dry_run, to_document, written};
use crate::reads::{not_found, GitSources};
use crate::{ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

/// The checks that follow git's own rules (URL forms, ref names, paths), with field paths.
pub fn git_field_errors(g: &GitSource) -> Vec<FieldError> {
    let mut e = Vec::new();
    let s = &g.spec;
    if !s.url.is_empty() {
        if let Err(err) = git_client::RepoUrl::parse(&s.url) {
            let reason = match err {
                git_client::GitError::InvalidUrl { reason, .. } => reason,
                other => other.to_string(),
            };
            e.push(FieldError::new(
                "spec.url",
                format!("\"{}\" {reason}", printable(&s.url)),
            ));
        }
    }
    if let Some(b) = &s.reference.branch {
        if let Err(m) = git_client::check_ref_name(b) {
            e.push(FieldError::new("spec.ref.branch", m));
        }
    }
    if let Some(t) = &s.reference.tag {
        if let Err(m) = git_client::check_ref_name(t) {
            e.push(FieldError::new("spec.ref.tag", m));
        }
    }
    if let Some(c) = &s.reference.commit {
        if let Err(m) = git_client::check_commit(c) {
            e.push(FieldError::new("spec.ref.commit", m));
        }
    }
    if let Err(m) = git_client::check_repo_path(&s.path) {
        e.push(FieldError::new("spec.path", m));
    }
    e
}

/// Structural and git checks together (runs on the blocking thread).
fn decode(v: Value) -> Result<GitSource, ValidationErrors> {
    let g = gitsource_from_value(v)?;
    let more = git_field_errors(&g);
    if more.is_empty() {
        Ok(g)
    } else {
        Err(ValidationErrors(more))
    }
}

fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// One GitSource from the store (writes decide from the latest version).
async fn load(s: &AppState, name: &str) -> ApiResult<StoredObject> {
    s.store
        .get(GITSOURCE_KIND, name)
        .await?
        .ok_or_else(|| not_found::<GitSources>(name))
}

pub async fn put(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let dry = dry_run(&q)?;
    let decoded = crate::body::read_object_as(&headers, body, &name, decode).await?;
    let g = match decoded {
        Ok(g) => g,
        Err(errors) => {
            s.metrics
                .spec_writes
                .with_label_values(&[GITSOURCE_KIND, "invalid"])
                .inc();
            let message = format!(
                "GitSource \"{name}\" is invalid ({} problem{}); nothing was stored",
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            );
            return Err(ApiError::invalid(message, errors.0));
        }
    };
    // The operator's annotations survive a user's write (a pending sync, a delete policy).
    let mut annotations = g.metadata.annotations.clone();
    if let Some(old) = s.store.get(GITSOURCE_KIND, &name).await? {
        for key in [SYNC_ANNOTATION, DELETE_POLICY_ANNOTATION] {
            if let Some(v) = old.meta.annotations.get(key) {
                annotations
                    .entry(key.to_string())
                    .or_insert_with(|| v.clone());
            }
        }
    }
    let write = SpecWrite {
        kind: GITSOURCE_KIND.into(),
        meta: ObjectMeta {
            name: name.clone(),
            labels: g.metadata.labels.clone(),
            annotations,
            ..Default::default()
        },
        spec: serde_json::to_value(&g.spec).map_err(|e| ApiError::bad_request(e.to_string()))?,
        expected_resource_version: g.metadata.resource_version.clone(),
        manager: Some(crate::handlers::manager(&headers)),
        dry_run: dry,
    };
    let (obj, change) = s.store.apply(write).await?;
    if !dry {
        s.metrics
            .spec_writes
            .with_label_values(&[GITSOURCE_KIND, &change.to_string()])
            .inc();
        tracing::info!(gitsource = %name, change = %change, "spec written");
    }
    let body = if dry {
        json!({"dryRun": true, "change": change, "object": to_document(&obj), "plan": Value::Null, "notes": ["a GitSource's effect is decided at its next poll; nothing is previewed"]})
    } else {
        to_document(&obj)
    };
    Ok(written(change, dry, body))
}

/// Writes the stored spec again with `annotations` changed (no generation bump).
async fn annotate(
    s: &AppState,
    obj: &StoredObject,
    key: &str,
    value: &str,
) -> ApiResult<StoredObject> {
    let mut meta = obj.meta.user_fields();
    meta.annotations.insert(key.into(), value.into());
    let (o, _) = s
        .store
        .apply(SpecWrite {
            kind: GITSOURCE_KIND.into(),
            meta,
            spec: obj.spec.clone(),
            expected_resource_version: obj.meta.resource_version.clone(),
            manager: None,
            dry_run: false,
        })
        .await?;
    Ok(o)
}

/// `POST .../sync`: records a new sync token; the controller polls at once and records the
/// token as `status.lastHandledSync` when done.
pub async fn sync(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let obj = load(&s, &name).await?;
    if obj.is_deleting() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Terminating",
            format!("GitSource \"{name}\" is being deleted"),
        ));
    }
    let token = format!(
        "{}-{:08x}",
        botcluster_store::now_rfc3339(),
        rand::random::<u32>()
    );
    annotate(&s, &obj, SYNC_ANNOTATION, &token).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "name": name,
            "token": token,
            "message": format!("GitSource \"{name}\": sync requested; status.lastHandledSync becomes \"{token}\" when it is done"),
        })),
    )
        .into_response())
}

/// `DELETE`: keeps what the source applied (the owner label is removed), unless
/// `?cascade=true` and `spec.prune` is true, when those BotClusters are deleted too.
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let obj = load(&s, &name).await?;
    let cascade = match q.get("cascade").map(String::as_str) {
        None | Some("false") => false,
        Some("true") | Some("") => true,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "cascade=\"{o}\" must be true or false"
            )))
        }
    };
    let prune = obj
        .spec
        .get("prune")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if cascade && !prune {
        return Err(ApiError::bad_request(format!(
            "GitSource \"{name}\" has spec.prune: false, so --cascade would delete clusters it was told never to prune; set prune: true first, or delete without --cascade (its clusters are kept)"
        )));
    }
    let policy = if cascade { "cascade" } else { "orphan" };
    let obj = if obj.is_deleting() {
        obj
    } else {
        annotate(&s, &obj, DELETE_POLICY_ANNOTATION, policy).await?
    };
    let kept = if cascade {
        "the BotClusters it applied are deleted too"
    } else {
        "the BotClusters it applied are kept (released from the source)"
    };
    match s.store.delete(GITSOURCE_KIND, &name).await? {
        Deleted::Removed => Ok((
            StatusCode::OK,
            Json(json!({"name": name, "result": "deleted", "message": format!("GitSource \"{name}\" deleted")})),
        )
            .into_response()),
        Deleted::Terminating(_) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "name": name,
                "result": "terminating",
                "message": format!("GitSource \"{name}\" is being deleted; {kept}"),
                "object": to_document(&obj),
            })),
        )
            .into_response()),
    }
}
