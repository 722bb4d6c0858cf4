//! The HTTP API as a client sees it, in-process, on the real SQLite store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use botcluster_api::{parse_documents, BotCluster};
use botcluster_server::{router, AppState, ErrorBody, Metrics, CHANGE_HEADER};
use botcluster_store::{SqliteStore, Store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "test-token";

struct Api {
    app: axum::Router,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let state = AppState {
        store: store.clone(),
        token: Arc::new(TOKEN.into()),
        metrics: Metrics::new(),
        preview: None,
    };
    Api {
        app: router(state),
        store,
        _dir: dir,
    }
}

struct Resp {
    status: StatusCode,
    change: Option<String>,
    body: Value,
    text: String,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        ctype: &str,
        body: impl Into<String>,
        token: Option<&str>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", ctype);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body.into())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let change = resp
            .headers()
            .get(CHANGE_HEADER)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        Resp {
            status,
            change,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        }
    }
    async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, "application/json", "", Some(TOKEN))
            .await
    }
    async fn put_yaml(&self, name: &str, yaml: &str) -> Resp {
        self.call(
            "PUT",
            &format!("/api/v1/botclusters/{name}"),
            "application/yaml",
            yaml,
            Some(TOKEN),
        )
        .await
    }
}

fn minimal(name: &str, replicas: u32) -> String {
    format!("apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata:\n  name: {name}\nspec:\n  image: botcluster-botserver\n  replicas: {replicas}\n")
}

#[tokio::test]
async fn the_token_is_enforced_except_on_health_endpoints() {
    let a = api();
    for path in ["/api/v1/botclusters", "/api/v1/botclusters/x", "/metrics"] {
        let r = a.call("GET", path, "application/json", "", None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        let e: ErrorBody = serde_json::from_value(r.body).unwrap();
        assert_eq!(e.code, "Unauthorized");
        assert!(e.message.contains("token"));
        let r = a
            .call("GET", path, "application/json", "", Some("wrong"))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let r = a
        .call(
            "PUT",
            "/api/v1/botclusters/x",
            "application/yaml",
            minimal("x", 1),
            Some("nope"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(a.store.get("BotCluster", "x").await.unwrap().is_none());
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            a.call("GET", path, "", "", None).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
}

#[tokio::test]
async fn put_creates_then_configures_then_is_unchanged() {
    let a = api();
    let r = a.put_yaml("web", &minimal("web", 2)).await;
    assert_eq!(
        (r.status, r.change.as_deref()),
        (StatusCode::CREATED, Some("created")),
        "{}",
        r.text
    );
    assert_eq!(r.body["metadata"]["generation"], json!(1));
    let r = a.put_yaml("web", &minimal("web", 2)).await;
    assert_eq!(
        (r.status, r.change.as_deref()),
        (StatusCode::OK, Some("unchanged"))
    );
    let r = a.put_yaml("web", &minimal("web", 3)).await;
    assert_eq!(r.change.as_deref(), Some("configured"));
    assert_eq!(r.body["metadata"]["generation"], json!(2));
    // Writing a default explicitly is not a spec change.
    let r = a
        .put_yaml(
            "web",
            &format!("{}  containerPort: 8080\n", minimal("web", 3)),
        )
        .await;
    assert_eq!(r.change.as_deref(), Some("unchanged"));
    let r = a.get("/api/v1/botclusters").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = a.get("/api/v1/botclusters/web/status").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["generation"], json!(2));
}

#[tokio::test]
async fn json_bodies_work_and_names_must_match_the_url() {
    let a = api();
    let body = json!({"apiVersion": "botcluster.io/v1alpha1", "kind": "BotCluster", "metadata": {"name": "j"}, "spec": {"image": "img"}});
    let r = a
        .call(
            "PUT",
            "/api/v1/botclusters/j",
            "application/json",
            body.to_string(),
            Some(TOKEN),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = a
        .call(
            "PUT",
            "/api/v1/botclusters/other",
            "application/json",
            body.to_string(),
            Some(TOKEN),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("differs from the name in the URL"));
    assert!(a.store.get("BotCluster", "other").await.unwrap().is_none());
}

/// Found by schemathesis: a name of another type was taken for "no name" and the write
/// stored under the URL's name.
#[tokio::test]
async fn a_metadata_or_name_of_the_wrong_type_is_refused_and_stores_nothing() {
    let a = api();
    for metadata in [
        json!({"name": {}}),
        json!({"name": 7}),
        json!("j"),
        json!([]),
    ] {
        let body = json!({"apiVersion": "botcluster.io/v1alpha1", "kind": "BotCluster",
                          "metadata": metadata, "spec": {"image": "botcluster-botserver"}});
        let r = a
            .call(
                "PUT",
                "/api/v1/botclusters/j",
                "application/json",
                body.to_string(),
                Some(TOKEN),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{metadata}: {}", r.text);
        assert!(
            r.body["message"].as_str().unwrap().contains("metadata"),
            "{}",
            r.text
        );
        assert!(a.store.get("BotCluster", "j").await.unwrap().is_none());
    }
}

/// Found by schemathesis: serde reads a struct from a list of its fields, so
/// `fallback: [null, null]` was stored as the defaults.
#[tokio::test]
async fn a_list_where_a_mapping_belongs_is_a_field_error_and_stores_nothing() {
    let a = api();
    for (field, value) in [
        ("fallback", json!([null, null])),
        ("autoscaling", json!([])),
        ("updateStrategy", json!([1, 1])),
    ] {
        let body = json!({"apiVersion": "botcluster.io/v1alpha1", "kind": "BotCluster",
                          "metadata": {"name": "l"},
                          "spec": {"image": "botcluster-botserver", field: value}});
        let r = a
            .call(
                "PUT",
                "/api/v1/botclusters/l",
                "application/json",
                body.to_string(),
                Some(TOKEN),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}: {}", r.text);
        assert!(r.text.contains(&format!("spec.{field}")), "{}", r.text);
        assert!(a.store.get("BotCluster", "l").await.unwrap().is_none());
    }
}

/// The other side of the rule above: null is absent, as for every optional field, so a null
/// metadata or name takes the URL's name (and the OpenAPI write schema says so).
#[tokio::test]
async fn a_null_metadata_or_name_takes_the_name_in_the_url() {
    let a = api();
    for (i, metadata) in [json!(null), json!({"name": null})].into_iter().enumerate() {
        let url_name = format!("n{i}");
        let body = json!({"apiVersion": "botcluster.io/v1alpha1", "kind": "BotCluster",
                          "metadata": metadata, "spec": {"image": "botcluster-botserver"}});
        let r = a
            .call(
                "PUT",
                &format!("/api/v1/botclusters/{url_name}"),
                "application/json",
                body.to_string(),
                Some(TOKEN),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{metadata}: {}", r.text);
        assert_eq!(r.body["metadata"]["name"], url_name.as_str(), "{}", r.text);
    }
}

#[tokio::test]
async fn every_seed_parameter_round_trips_yaml_store_api_yaml() {
    let a = api();
    let text = std::fs::read_to_string(repo().join("examples/full.yaml")).unwrap();
    let original = parse_documents(&text).unwrap().remove(0);
    let r = a.put_yaml("botserver", &text).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let got = a.get("/api/v1/botclusters/botserver").await;
    let mut back: BotCluster = serde_json::from_value(got.body).unwrap();
    // Server-set metadata is the only difference.
    assert!(back.metadata.uid.is_some() && back.metadata.resource_version.is_some());
    back.metadata = back.metadata.user_fields();
    let yaml = serde_saphyr::to_string(&back).unwrap();
    let reparsed = parse_documents(&yaml).unwrap().remove(0);
    assert_eq!(reparsed, original, "changed on the way through:\n{yaml}");
}

/// Every spec in the api crate's invalid corpus: 400, the field path in `fieldErrors`, and the
/// stored object untouched.
#[tokio::test]
async fn invalid_specs_get_field_errors_and_leave_the_store_unchanged() {
    let a = api();
    a.put_yaml("bad", &minimal("bad", 1)).await;
    let before = a.store.get("BotCluster", "bad").await.unwrap().unwrap();
    let dir = repo().join("crates/api/tests/invalid");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("# expect: ")
            .trim()
            .to_string();
        // The name errors use other names; send them to the URL of their own name.
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("  name: "))
            .unwrap_or("bad")
            .to_string();
        let r = a.put_yaml(&name, &text).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{}: {}",
            path.display(),
            r.text
        );
        let e: ErrorBody = serde_json::from_value(r.body.clone()).unwrap();
        assert_eq!(e.code, "Invalid", "{}", path.display());
        assert!(
            e.field_errors.iter().any(|f| f.field == expect),
            "{}: no error at {expect}: {}",
            path.display(),
            r.text
        );
        n += 1;
    }
    assert!(n >= 30);
    let after = a.store.get("BotCluster", "bad").await.unwrap().unwrap();
    assert_eq!(after, before, "an invalid write changed the store");
    assert_eq!(a.store.list("BotCluster").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_stale_resource_version_gets_409() {
    let a = api();
    let r = a.put_yaml("c", &minimal("c", 1)).await;
    let rv = r.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    a.put_yaml("c", &minimal("c", 2)).await;
    let stale = minimal("c", 3).replace(
        "  name: c\n",
        &format!("  name: c\n  resourceVersion: \"{rv}\"\n"),
    );
    let r = a.put_yaml("c", &stale).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["code"], json!("Conflict"));
    assert_eq!(
        a.store.get("BotCluster", "c").await.unwrap().unwrap().spec["replicas"],
        json!(2)
    );
}

#[tokio::test]
async fn oversized_bodies_get_413_and_hostile_yaml_400_quickly() {
    let a = api();
    let big = format!(
        "{}  env:\n    PAD: \"{}\"\n",
        minimal("big", 1),
        "x".repeat(2 << 20)
    );
    let r = a.put_yaml("big", &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["code"], json!("TooLarge"));
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10u8 {
        let (p, c) = ((b'a' + i - 1) as char, (b'a' + i) as char);
        bomb.push_str(&format!(
            "{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        ));
    }
    let started = std::time::Instant::now();
    let r = a.put_yaml("bomb", &bomb).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    assert_eq!(
        a.put_yaml("deep", &deep).await.status,
        StatusCode::BAD_REQUEST
    );
    assert!(a.store.list("BotCluster").await.unwrap().is_empty());
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let a = api();
    let r = a
        .call(
            "PUT",
            "/api/v1/botclusters/d?dryRun=true",
            "application/yaml",
            minimal("d", 1),
            Some(TOKEN),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["change"], json!("created"));
    assert!(a.store.get("BotCluster", "d").await.unwrap().is_none());
}

#[tokio::test]
async fn delete_removes_and_unknown_names_get_404() {
    let a = api();
    a.put_yaml("gone", &minimal("gone", 1)).await;
    let r = a
        .call("DELETE", "/api/v1/botclusters/gone", "", "", Some(TOKEN))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = a.get("/api/v1/botclusters/gone").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["code"], json!("NotFound"));
    assert_eq!(
        a.call("DELETE", "/api/v1/botclusters/gone", "", "", Some(TOKEN))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(a.get("/api/v1/nothing").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let a = api();
    a.put_yaml("m", &minimal("m", 1)).await;
    let r = a.get("/metrics").await;
    assert!(r.text.contains("botcluster_http_requests_total{code=\"201\",method=\"PUT\",route=\"/api/v1/botclusters/{name}\"} 1"), "{}", r.text);
    assert!(r.text.contains("botcluster_objects{kind=\"BotCluster\"} 1"));
    assert!(r
        .text
        .contains("botcluster_spec_writes_total{kind=\"BotCluster\",result=\"created\"} 1"));
}
