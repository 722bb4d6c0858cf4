//! The OpenAPI document: served, fresh in `manifests/openapi.json`, and true to the router
//! (every documented operation is routed; schemathesis checks the rest in `cargo xtask ci`).

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use botcluster_server::openapi::{openapi, openapi_json, operations, OPENAPI_PATH};
use botcluster_server::{router, AppState, Metrics};
use botcluster_store::SqliteStore;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

#[test]
fn manifests_openapi_json_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/openapi.json");
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == openapi_json(),
        "manifests/openapi.json is stale; run `cargo xtask openapi` and commit it"
    );
}

#[tokio::test]
async fn the_document_is_served_and_every_operation_in_it_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let app = router(AppState {
        store,
        token: Arc::new("t".into()),
        metrics: Metrics::new(),
        preview: None,
    });
    let resp = app
        .clone()
        .oneshot(Request::get(OPENAPI_PATH).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let served: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(&served, openapi());
    assert_eq!(served["openapi"], "3.1.0");
    let refs = serde_json::to_string(&served).unwrap();
    assert!(
        !refs.contains("#/$defs/"),
        "every $ref points into components"
    );
    for (method, path) in operations() {
        let uri = path.replace("{name}", "probe");
        let resp = app
            .clone()
            .oneshot(
                Request::builder()
                    .method(method.as_str())
                    .uri(&uri)
                    .header("authorization", "Bearer t")
                    .header("content-type", "application/json")
                    .body(Body::from("{}"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_ne!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            !String::from_utf8_lossy(&body).contains("no such endpoint"),
            "{method} {path} is documented but not routed"
        );
    }
}

/// Found by schemathesis in CI: the server reads `metadata: null` and `metadata.name: null` as
/// absent (the name comes from the URL) while the document said a name is a string, so a
/// body the server accepts was "schema-violating". The write schema admits both nulls.
#[test]
fn the_write_schema_admits_the_nulls_the_server_reads_as_absent() {
    let schemas = &openapi()["components"]["schemas"];
    for kind in ["BotClusterWrite", "GitSourceWrite"] {
        let metadata = &schemas[kind]["properties"]["metadata"];
        let any_of = metadata["anyOf"].as_array().expect("metadata is anyOf");
        assert!(
            any_of.iter().any(|s| s["type"] == "null"),
            "{kind}.metadata admits null: {metadata}"
        );
        assert!(
            schemas[kind]["required"]
                .as_array()
                .is_none_or(|r| !r.iter().any(|f| f == "metadata")),
            "{kind}.metadata is optional"
        );
    }
    let name = &schemas["ObjectMetaWrite"]["properties"]["name"];
    assert_eq!(
        name["type"],
        serde_json::json!(["string", "null"]),
        "{name}"
    );
    assert!(schemas["ObjectMetaWrite"].get("required").is_none());
}
