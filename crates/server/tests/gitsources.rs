//! The GitSource endpoints and the ownership rule for BotClusters a source applied.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use botcluster_api::gitsource::{DELETE_POLICY_ANNOTATION, OWNER_LABEL, SYNC_ANNOTATION};
use botcluster_server::{router, AppState, Metrics};
use botcluster_store::{SpecWrite, SqliteStore, Store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "t";

fn app() -> (axum::Router, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let state = AppState {
        store: store.clone(),
        token: Arc::new(TOKEN.into()),
        metrics: Metrics::new(),
        preview: None,
    };
    (router(state), store)
}

async fn call(app: &axum::Router, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/yaml")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const FLEET: &str = "apiVersion: botcluster.io/v1alpha1\nkind: GitSource\nmetadata: {name: fleet}\nspec:\n  url: file:///srv/git/bots.git\n  path: clusters\n  interval: 30s\n";

#[tokio::test]
async fn a_source_is_stored_with_defaults_listed_and_read() {
    let (app, _) = app();
    let (code, body) = call(&app, "PUT", "/api/v1/gitsources/fleet", FLEET).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["spec"]["ref"], json!({"branch": "main"}));
    assert_eq!(body["spec"]["prune"], json!(true));
    assert_eq!(body["spec"]["timeout"], json!("60s"));
    let (code, list) = call(&app, "GET", "/api/v1/gitsources", "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["items"][0]["metadata"]["name"], "fleet");
    let (code, _) = call(&app, "GET", "/api/v1/gitsources/fleet/status", "").await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = call(&app, "GET", "/api/v1/gitsources/nope", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn dangerous_urls_refs_and_paths_are_refused_with_their_field() {
    let (app, store) = app();
    for (spec, field) in [
        ("url: 'ext::sh -c touch% /tmp/x'", "spec.url"),
        ("url: '-uecho'", "spec.url"),
        ("url: 'https://u:secret@host/r.git'", "spec.url"),
        (
            "url: /srv/r.git\n  ref: {branch: '--upload-pack=x'}",
            "spec.ref.branch",
        ),
        ("url: /srv/r.git\n  ref: {commit: abc}", "spec.ref.commit"),
        ("url: /srv/r.git\n  path: ../../etc", "spec.path"),
    ] {
        let doc = format!("apiVersion: botcluster.io/v1alpha1\nkind: GitSource\nmetadata: {{name: bad}}\nspec:\n  {spec}\n");
        let (code, body) = call(&app, "PUT", "/api/v1/gitsources/bad", &doc).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{spec}: {body}");
        let fields: Vec<&str> = body["fieldErrors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{spec}: {body}");
    }
    assert!(store.list("GitSource").await.unwrap().is_empty());
}

#[tokio::test]
async fn sync_sets_a_new_token_and_delete_records_the_policy() {
    let (app, store) = app();
    call(&app, "PUT", "/api/v1/gitsources/fleet", FLEET).await;
    let (code, a) = call(&app, "POST", "/api/v1/gitsources/fleet/sync", "").await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (_, b) = call(&app, "POST", "/api/v1/gitsources/fleet/sync", "").await;
    assert_ne!(a["token"], b["token"]);
    let o = store.get("GitSource", "fleet").await.unwrap().unwrap();
    assert_eq!(
        o.meta.annotations.get(SYNC_ANNOTATION).map(String::as_str),
        b["token"].as_str()
    );
    assert_eq!(o.generation(), 1, "a sync request is not a spec change");
    // A user's PUT keeps the pending token.
    call(&app, "PUT", "/api/v1/gitsources/fleet", FLEET).await;
    let o = store.get("GitSource", "fleet").await.unwrap().unwrap();
    assert!(o.meta.annotations.contains_key(SYNC_ANNOTATION));
    // With a finalizer (as the controller adds), DELETE marks it and records the policy.
    store
        .set_finalizers(
            "GitSource",
            "fleet",
            vec!["botcluster.io/gitsource-inventory".into()],
        )
        .await
        .unwrap();
    let (code, body) = call(&app, "DELETE", "/api/v1/gitsources/fleet?cascade=true", "").await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("deleted too"),
        "{body}"
    );
    let o = store.get("GitSource", "fleet").await.unwrap().unwrap();
    assert_eq!(
        o.meta
            .annotations
            .get(DELETE_POLICY_ANNOTATION)
            .map(String::as_str),
        Some("cascade")
    );
}

#[tokio::test]
async fn cascade_is_refused_when_the_source_may_not_prune() {
    let (app, store) = app();
    call(
        &app,
        "PUT",
        "/api/v1/gitsources/fleet",
        &format!("{FLEET}  prune: false\n"),
    )
    .await;
    let (code, body) = call(&app, "DELETE", "/api/v1/gitsources/fleet?cascade=true", "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("prune: false"),
        "{body}"
    );
    assert!(store.get("GitSource", "fleet").await.unwrap().is_some());
}

const WEB: &str = "apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata: {name: web}\nspec: {image: botserver, replicas: 2}\n";

#[tokio::test]
async fn a_cluster_a_source_applied_is_refused_without_force_and_keeps_its_owner_with_it() {
    let (app, store) = app();
    let v: Value =
        serde_json::to_value(botcluster_api::parse_documents(WEB).unwrap().remove(0).spec).unwrap();
    let mut meta = botcluster_api::ObjectMeta::named("web");
    meta.labels.insert(OWNER_LABEL.into(), "fleet".into());
    store
        .apply(SpecWrite {
            kind: "BotCluster".into(),
            meta,
            spec: v,
            expected_resource_version: None,
            manager: Some("gitsource/fleet".into()),
            dry_run: false,
        })
        .await
        .unwrap();
    let (code, body) = call(
        &app,
        "PUT",
        "/api/v1/botclusters/web",
        &WEB.replace("replicas: 2", "replicas: 5"),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "OwnedBySource");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("GitSource \"fleet\""),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("--force"),
        "{body}"
    );
    let (code, body) = call(
        &app,
        "PUT",
        "/api/v1/botclusters/web?force=true",
        &WEB.replace("replicas: 2", "replicas: 5"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["spec"]["replicas"], 5);
    assert_eq!(
        body["metadata"]["labels"][OWNER_LABEL], "fleet",
        "a forced write keeps the owner"
    );
    // Nobody may claim a source's label by hand.
    let claim = "apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata: {name: mine, labels: {botcluster.io/gitsource: fleet}}\nspec: {image: botserver}\n";
    let (code, body) = call(&app, "PUT", "/api/v1/botclusters/mine", claim).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
}
