//! Hostile requests at the HTTP API, in-process on the real SQLite store: a panic becomes a
//! JSON 500, made-up methods add no metric series, huge bodies cost bounded work off the async
//! workers while `/healthz` keeps answering, and every refusal has the `{code, message}` shape.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use botcluster_api::BotCluster;
use botcluster_server::{router, AppState, Metrics, PlanPreview, Preview};
use botcluster_store::{SqliteStore, Store};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "test-token";

struct Api {
    app: axum::Router,
    store: Arc<SqliteStore>,
    metrics: Metrics,
    _dir: tempfile::TempDir,
}

fn api_with(preview: Option<Arc<dyn PlanPreview>>) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let metrics = Metrics::new();
    let state = AppState {
        store: store.clone(),
        token: Arc::new(TOKEN.into()),
        metrics: metrics.clone(),
        preview,
    };
    Api {
        app: router(state),
        store,
        metrics,
        _dir: dir,
    }
}

fn api() -> Api {
    api_with(None)
}

struct Resp {
    status: StatusCode,
    ctype: String,
    body: Value,
}

impl Api {
    async fn call(&self, method: &str, path: &str, ctype: &str, body: impl Into<Body>) -> Resp {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", ctype)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(body.into())
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            ctype,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }
}

fn minimal(name: &str) -> String {
    format!("apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata:\n  name: {name}\nspec:\n  image: botcluster-botserver\n")
}

fn assert_error_shape(r: &Resp, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(
        r.ctype.starts_with("application/json"),
        "content-type {:?}",
        r.ctype
    );
    assert_eq!(r.body["code"], code, "{}", r.body);
    assert!(
        r.body["message"].as_str().is_some_and(|m| m.len() > 10),
        "{}",
        r.body
    );
}

struct PanickingPlanner;

#[async_trait]
impl PlanPreview for PanickingPlanner {
    async fn preview(&self, _: &BotCluster) -> Result<Preview, String> {
        panic!("planner bug");
    }
}

#[tokio::test]
async fn a_panic_in_a_handler_is_a_json_500_and_the_server_keeps_serving() {
    let api = api_with(Some(Arc::new(PanickingPlanner)));
    let r = api
        .call(
            "PUT",
            "/api/v1/botclusters/web?dryRun=true",
            "application/yaml",
            minimal("web"),
        )
        .await;
    assert_error_shape(&r, StatusCode::INTERNAL_SERVER_ERROR, "Internal");
    assert!(!r.body["message"].as_str().unwrap().contains("planner bug"));
    assert!(api.store.get("BotCluster", "web").await.unwrap().is_none());
    let r = api
        .call(
            "PUT",
            "/api/v1/botclusters/web",
            "application/yaml",
            minimal("web"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(api
        .metrics
        .render()
        .contains(r#"botcluster_http_requests_total{code="500",method="PUT",route="/api/v1/botclusters/{name}"} 1"#));
}

/// Series of one metric family in the text format.
fn series(text: &str, family: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .count()
}

#[tokio::test]
async fn made_up_methods_and_paths_add_no_metric_series() {
    let api = api();
    let probe = |m: &str, p: &str| {
        Request::builder()
            .method(m)
            .uri(p)
            .body(Body::empty())
            .unwrap()
    };
    // A baseline of each kind: a known route, an unknown path, a made-up method.
    for (m, p) in [
        ("GET", "/healthz"),
        ("GET", "/no/such/path"),
        ("BREW", "/healthz"),
        ("BREW", "/no/such/path"),
        ("BREW", "/api/v1/botclusters/x"),
    ] {
        api.app.clone().oneshot(probe(m, p)).await.unwrap();
    }
    let text = api.metrics.render();
    let before = (
        series(&text, "botcluster_http_requests_total"),
        series(&text, "botcluster_http_request_duration_seconds_count"),
    );
    // Without a token, an attacker varies methods and paths.
    for i in 0..200 {
        for (m, p) in [
            (format!("X{i}"), "/healthz".to_string()),
            (format!("M{i}"), format!("/api/v1/botclusters/n{i}")),
            ("GET".to_string(), format!("/random/{i}")),
            (format!("Z{i}"), format!("/random/{i}")),
        ] {
            api.app.clone().oneshot(probe(&m, &p)).await.unwrap();
        }
    }
    let text = api.metrics.render();
    let after = (
        series(&text, "botcluster_http_requests_total"),
        series(&text, "botcluster_http_request_duration_seconds_count"),
    );
    assert_eq!(before, after, "new series appeared:\n{text}");
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(!text.contains("X1"), "{text}");
}

/// A JSON body of `n` unknown fields under `spec`, each named so no suggestion is cheap.
fn many_unknown_fields(n: usize) -> String {
    let mut s = String::from(
        r#"{"apiVersion":"botcluster.io/v1alpha1","kind":"BotCluster","metadata":{"name":"web"},"spec":{"image":"botcluster-botserver""#,
    );
    for i in 0..n {
        s.push_str(&format!(r#","unk{i:05}":0"#));
    }
    s.push_str("}}");
    s
}

#[tokio::test]
async fn tens_of_thousands_of_unknown_fields_get_a_short_capped_answer_quickly() {
    let api = api();
    let body = many_unknown_fields(40_000);
    assert!(body.len() > 500_000 && body.len() < 1 << 20);
    let started = std::time::Instant::now();
    let r = api
        .call("PUT", "/api/v1/botclusters/web", "application/json", body)
        .await;
    let took = started.elapsed();
    assert_error_shape(&r, StatusCode::BAD_REQUEST, "Invalid");
    let listed = r.body["fieldErrors"].as_array().unwrap().len();
    assert_eq!(listed, 100, "{}", r.body["message"]);
    assert_eq!(r.body["omittedFieldErrors"], 40_000 - 100);
    assert!(
        r.body["message"].as_str().unwrap().contains("39900 more"),
        "{}",
        r.body["message"]
    );
    assert!(serde_json::to_string(&r.body).unwrap().len() < 100_000);
    // Generous for a debug build on a shared machine; it took seconds before.
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    assert!(api.store.get("BotCluster", "web").await.unwrap().is_none());
}

#[tokio::test]
async fn json_bodies_have_the_yaml_budget_and_refuse_duplicate_keys() {
    let api = api();
    let dup = r#"{"apiVersion":"botcluster.io/v1alpha1","kind":"BotCluster","metadata":{"name":"web"},"spec":{"image":"a","image":"botcluster-botserver"}}"#;
    let r = api
        .call("PUT", "/api/v1/botclusters/web", "application/json", dup)
        .await;
    assert_error_shape(&r, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("\"image\" appears twice"),
        "{}",
        r.body
    );
    let deep = format!(
        r#"{{"apiVersion":"botcluster.io/v1alpha1","kind":"BotCluster","metadata":{{"name":"web"}},"spec":{{"image":"x","labels":{}1{}}}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let r = api
        .call("PUT", "/api/v1/botclusters/web", "application/json", deep)
        .await;
    assert_error_shape(&r, StatusCode::BAD_REQUEST, "BadRequest");
    let wide = format!("[{}0]", "0,".repeat(300_000));
    let r = api
        .call("PUT", "/api/v1/botclusters/web", "application/json", wide)
        .await;
    assert_error_shape(&r, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("more than 200000"),
        "{}",
        r.body
    );
    // A 900 KB image name is refused at its field, saying the bound.
    let long = format!(
        r#"{{"apiVersion":"botcluster.io/v1alpha1","kind":"BotCluster","metadata":{{"name":"web"}},"spec":{{"image":"{}"}}}}"#,
        "a".repeat(900_000)
    );
    let r = api
        .call("PUT", "/api/v1/botclusters/web", "application/json", long)
        .await;
    assert_error_shape(&r, StatusCode::BAD_REQUEST, "Invalid");
    assert_eq!(
        r.body["fieldErrors"][0]["field"], "spec.image",
        "{}",
        r.body
    );
    assert!(api.store.get("BotCluster", "web").await.unwrap().is_none());
}

/// One HTTP/1.1 request on a fresh connection; returns the status line.
async fn raw_request(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The server on a real socket with two async workers (what a small host gives it), four
/// hostile bodies being refused at once, and `/healthz` asked meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_within_100ms_while_huge_hostile_bodies_are_refused() {
    let api = api();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let body = many_unknown_fields(40_000);
    let hostile: Vec<_> = (0..4)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move {
                let head = format!(
                    "PUT /api/v1/botclusters/web HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                raw_request(addr, &head, body.as_bytes()).await
            })
        })
        .collect();
    let mut took = Vec::new();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let line = raw_request(
            addr,
            "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            b"",
        )
        .await;
        took.push(started.elapsed());
        assert!(line.contains("200"), "{line}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for h in hostile {
        let line = h.await.unwrap();
        assert!(line.contains("400"), "{line}");
    }
    // The median is the claim (under 100 ms); the worst only has to stay far from the
    // seconds-long stall of parsing on the async workers, since this machine is shared and a
    // single sample can wait for a CPU. Before the fix the worst was 21 s.
    took.sort();
    let (median, worst) = (took[took.len() / 2], took[took.len() - 1]);
    assert!(
        median < std::time::Duration::from_millis(100),
        "healthz median {median:?}: {took:?}"
    );
    assert!(
        worst < std::time::Duration::from_secs(1),
        "healthz worst {worst:?}: {took:?}"
    );
}

#[tokio::test]
async fn every_refusal_has_the_json_error_shape_even_axums_own() {
    let api = api();
    for (method, path, status, code) in [
        (
            "PATCH",
            "/api/v1/botclusters/web",
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
        ),
        (
            "POST",
            "/healthz",
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
        ),
        (
            "GET",
            "/api/v1/botclusters/%FF%FE",
            StatusCode::BAD_REQUEST,
            "BadRequest",
        ),
        ("GET", "/no/such/thing", StatusCode::NOT_FOUND, "NotFound"),
    ] {
        let r = api.call(method, path, "application/json", "").await;
        assert_error_shape(&r, status, code);
    }
}

#[tokio::test]
async fn a_cluster_claiming_another_clusters_host_ports_gets_409_naming_it_and_nothing_is_stored() {
    let api = api();
    let put = |name: &str, extra: &str| {
        format!("apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata:\n  name: {name}\nspec:\n  image: botcluster-botserver\n{extra}")
    };
    let r = api
        .call(
            "PUT",
            "/api/v1/botclusters/first",
            "application/yaml",
            put("first", "  hostPorts: {start: 20000, end: 20010}\n  loadBalancer: {listen: \"127.0.0.1:8100\"}\n"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for (extra, field) in [
        (
            "  hostPorts: {start: 20005, end: 20020}\n",
            "spec.hostPorts",
        ),
        (
            "  loadBalancer: {listen: \"127.0.0.1:8100\"}\n",
            "spec.loadBalancer.listen",
        ),
        (
            "  loadBalancer: {listen: \"127.0.0.1:20003\"}\n",
            "spec.loadBalancer.listen",
        ),
    ] {
        let r = api
            .call(
                "PUT",
                "/api/v1/botclusters/second",
                "application/yaml",
                put("second", extra),
            )
            .await;
        assert_error_shape(&r, StatusCode::CONFLICT, "PortConflict");
        assert_eq!(r.body["fieldErrors"][0]["field"], field, "{}", r.body);
        assert!(r.body["fieldErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("\"first\""));
        assert!(api
            .store
            .get("BotCluster", "second")
            .await
            .unwrap()
            .is_none());
    }
    // Re-applying the first cluster itself is no clash; a disjoint second one is fine.
    let r = api
        .call(
            "PUT",
            "/api/v1/botclusters/first",
            "application/yaml",
            put("first", "  hostPorts: {start: 20000, end: 20010}\n  loadBalancer: {listen: \"127.0.0.1:8100\"}\n"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api
        .call(
            "PUT",
            "/api/v1/botclusters/second",
            "application/yaml",
            put("second", "  hostPorts: {start: 20011, end: 20020}\n"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}
