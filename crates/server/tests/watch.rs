//! Reads from the watch cache, watches, pages and selectors, as a client sees them, in-process
//! on the real SQLite store.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use botcluster_api::ObjectMeta;
use botcluster_server::cache::CacheConfig;
use botcluster_server::{router_with_cache, AppState, Metrics};
use botcluster_store::{SpecWrite, SqliteStore, Store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "test-token";
const KIND: &str = "BotCluster";

struct Api {
    app: axum::Router,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

fn api_with(config: CacheConfig) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let state = AppState {
        store: store.clone(),
        token: Arc::new(TOKEN.into()),
        metrics: Metrics::new(),
        preview: None,
    };
    Api {
        app: router_with_cache(state, config),
        store,
        _dir: dir,
    }
}

fn api() -> Api {
    api_with(CacheConfig::default())
}

fn request(method: &str, path: &str, body: String) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/yaml")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(body))
        .unwrap()
}

/// A watch response being read line by line.
struct Lines {
    body: Body,
    buf: Vec<u8>,
    /// The server ended the stream (not just silence).
    ended: bool,
}

impl Lines {
    /// The next event, or None when the stream ended or nothing came within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).expect("each line is JSON"));
            }
            let Some(frame) = tokio::time::timeout(wait, self.body.frame()).await.ok()? else {
                self.ended = true;
                return None;
            };
            if let Ok(data) = frame.unwrap().into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
    /// The next event that is not a BOOKMARK.
    async fn next_change(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let ev = self.next(wait).await?;
            if ev["type"] != "BOOKMARK" {
                return Some(ev);
            }
        }
    }
}

impl Api {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .app
            .clone()
            .oneshot(request("GET", path, String::new()))
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
    async fn put(&self, name: &str, replicas: u32, labels: &str) -> (StatusCode, Value) {
        let yaml = format!("apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  image: botcluster-botserver\n  replicas: {replicas}\n");
        let resp = self
            .app
            .clone()
            .oneshot(request("PUT", &format!("/api/v1/botclusters/{name}"), yaml))
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
    async fn watch(&self, query: &str) -> (StatusCode, Lines) {
        let resp = self
            .app
            .clone()
            .oneshot(request(
                "GET",
                &format!("/api/v1/botclusters?watch=true&{query}"),
                String::new(),
            ))
            .await
            .unwrap();
        (
            resp.status(),
            Lines {
                body: resp.into_body(),
                buf: Vec::new(),
                ended: false,
            },
        )
    }
    /// Stores an object directly (as the operator side would), labels given.
    async fn store_put(&self, name: &str, spec: Value, labels: &[(&str, &str)]) -> u64 {
        let mut meta = ObjectMeta::named(name);
        meta.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (o, _) = self
            .store
            .apply(SpecWrite {
                kind: KIND.into(),
                meta,
                spec,
                expected_resource_version: None,
                manager: None,
                dry_run: false,
            })
            .await
            .unwrap();
        o.resource_version()
    }
    async fn list_rv(&self, query: &str) -> (u64, Value) {
        let (code, body) = self.get(&format!("/api/v1/botclusters?{query}")).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let rv = body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        (rv, body)
    }
}

const SECOND: Duration = Duration::from_secs(1);

fn rv_of(ev: &Value) -> u64 {
    ev["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn reads_see_every_acknowledged_write_at_once() {
    let a = api();
    for i in 1..=60u32 {
        let (code, put) = a.put("web", i, "").await;
        assert!(code.is_success(), "{put}");
        let (_, got) = a.get("/api/v1/botclusters/web").await;
        assert_eq!(got["spec"]["replicas"], i);
        assert_eq!(got["metadata"], put["metadata"]);
        // A write by the operator side (the store directly) is seen by the next read too.
        let st = a
            .store
            .update_status(
                KIND,
                "web",
                json!({"replicas": i, "readyReplicas": i}),
                None,
            )
            .await
            .unwrap();
        let (_, status) = a.get("/api/v1/botclusters/web/status").await;
        assert_eq!(status["status"]["readyReplicas"], i);
        assert_eq!(status["resourceVersion"], json!(st.meta.resource_version));
        let (_, list) = a.get("/api/v1/botclusters").await;
        assert_eq!(list["items"][0]["status"]["readyReplicas"], i);
        assert_eq!(
            list["metadata"]["resourceVersion"],
            json!(st.meta.resource_version)
        );
    }
    a.store.delete(KIND, "web").await.unwrap();
    assert_eq!(
        a.get("/api/v1/botclusters/web").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(a.get("/api/v1/botclusters").await.1["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_from_rv_gets_every_later_change_once_and_in_order_across_1000_writes() {
    let a = api();
    for n in 0..10 {
        a.store_put(&format!("b{n}"), json!({"i": 0}), &[]).await;
    }
    let (from, _) = a.list_rv("").await;
    let (code, mut w) = a.watch(&format!("resourceVersion={from}")).await;
    assert_eq!(code, StatusCode::OK);
    // The operator-side burst: 1,000 writes from 4 tasks at once.
    let mut tasks = Vec::new();
    for t in 0..4 {
        let store = a.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut rvs = Vec::new();
            for i in 0..250 {
                let name = format!("b{}", (t * 250 + i) % 10);
                let o = store
                    .update_status(KIND, &name, json!({"t": t, "i": i}), None)
                    .await
                    .unwrap();
                rvs.push(o.resource_version());
            }
            rvs
        }));
    }
    let mut written = BTreeSet::new();
    for t in tasks {
        written.extend(t.await.unwrap());
    }
    assert_eq!(written.len(), 1000);
    let mut seen = Vec::new();
    while seen.len() < 1000 {
        let ev = w
            .next_change(5 * SECOND)
            .await
            .unwrap_or_else(|| panic!("stream stalled after {} events", seen.len()));
        assert_eq!(ev["type"], "MODIFIED", "{ev}");
        seen.push(rv_of(&ev));
    }
    assert!(seen.windows(2).all(|p| p[0] < p[1]), "in order, no repeats");
    assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), written);
    assert!(w.next_change(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn a_resource_version_older_than_the_history_is_410_and_a_recent_one_resumes() {
    let a = api_with(CacheConfig {
        history: 10,
        ..CacheConfig::default()
    });
    let first = a.store_put("x", json!({"i": 0}), &[]).await;
    a.list_rv("").await;
    for i in 1..=30 {
        a.store_put("x", json!({"i": i}), &[]).await;
    }
    let (code, _) = a.watch(&format!("resourceVersion={first}")).await;
    assert_eq!(code, StatusCode::GONE);
    let (_, body) = a
        .get(&format!(
            "/api/v1/botclusters?watch=true&resourceVersion={first}"
        ))
        .await;
    assert_eq!(body["code"], "Expired");
    assert!(body["message"].as_str().unwrap().contains("list again"));
    // Five changes back is still kept: exactly those five arrive.
    let now = a.store.revision();
    let (code, mut w) = a.watch(&format!("resourceVersion={}", now - 5)).await;
    assert_eq!(code, StatusCode::OK);
    for want in now - 4..=now {
        assert_eq!(rv_of(&w.next_change(SECOND).await.unwrap()), want);
    }
}

#[tokio::test]
async fn a_watch_without_rv_starts_with_the_current_objects_and_sends_bookmarks() {
    let a = api_with(CacheConfig {
        bookmark_interval: Duration::from_millis(100),
        ..CacheConfig::default()
    });
    a.store_put("a", json!({}), &[]).await;
    a.store_put("b", json!({}), &[]).await;
    let (_, mut w) = a.watch("").await;
    let names: Vec<Value> = vec![w.next(SECOND).await.unwrap(), w.next(SECOND).await.unwrap()];
    assert!(names.iter().all(|e| e["type"] == "ADDED"));
    assert_eq!(names[0]["object"]["metadata"]["name"], "a");
    assert_eq!(names[1]["object"]["metadata"]["name"], "b");
    let bm = w.next(SECOND).await.unwrap();
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(
        bm["object"]["metadata"]["resourceVersion"],
        json!(a.store.revision().to_string())
    );
    a.store.delete(KIND, "a").await.unwrap();
    let ev = w.next_change(SECOND).await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["metadata"]["name"], "a");
    // timeoutSeconds ends the stream.
    let (_, mut w) = a.watch("timeoutSeconds=1").await;
    let t = std::time::Instant::now();
    while w.next(3 * SECOND).await.is_some() {}
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn selectors_filter_watches_and_objects_moving_out_are_deleted_for_the_watcher() {
    let a = api();
    a.store_put("web", json!({"v": 1}), &[("tier", "web")])
        .await;
    a.store_put("api", json!({"v": 1}), &[("tier", "api")])
        .await;
    let (from, _) = a.list_rv("").await;
    let (_, mut by_label) = a
        .watch(&format!("resourceVersion={from}&labelSelector=tier%3Dweb"))
        .await;
    let (_, mut by_name) = a
        .watch(&format!(
            "resourceVersion={from}&fieldSelector=metadata.name%3Dapi"
        ))
        .await;
    a.store_put("api", json!({"v": 2}), &[("tier", "api")])
        .await;
    a.store_put("web", json!({"v": 2}), &[("tier", "web")])
        .await;
    a.store_put("web", json!({"v": 3}), &[("tier", "old")])
        .await;
    a.store_put("api", json!({"v": 3}), &[("tier", "web")])
        .await;
    let got = |ev: Value| {
        (
            ev["type"].as_str().unwrap().to_string(),
            ev["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
            ev["object"]["spec"]["v"].as_u64().unwrap(),
        )
    };
    let mut label_events = Vec::new();
    for _ in 0..3 {
        label_events.push(got(by_label.next_change(SECOND).await.unwrap()));
    }
    assert_eq!(
        label_events,
        vec![
            ("MODIFIED".into(), "web".into(), 2),
            ("DELETED".into(), "web".into(), 3),
            ("ADDED".into(), "api".into(), 3),
        ]
    );
    let mut name_events = Vec::new();
    for _ in 0..2 {
        name_events.push(got(by_name.next_change(SECOND).await.unwrap()));
    }
    assert_eq!(
        name_events,
        vec![
            ("MODIFIED".into(), "api".into(), 2),
            ("MODIFIED".into(), "api".into(), 3)
        ]
    );
    assert!(by_name
        .next_change(Duration::from_millis(200))
        .await
        .is_none());
    // Lists take the same selectors.
    let (_, l) = a.list_rv("labelSelector=tier%20in%20(web,old)").await;
    let names: Vec<&str> = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["api", "web"]);
    let (_, l) = a.list_rv("labelSelector=!tier").await;
    assert_eq!(l["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_is_ended_and_never_stalls_writers() {
    let a = api_with(CacheConfig {
        watcher_buffer: 16,
        ..CacheConfig::default()
    });
    a.store_put("x", json!({"i": 0}), &[]).await;
    let (from, _) = a.list_rv("").await;
    let (_, mut w) = a.watch(&format!("resourceVersion={from}")).await;
    // Nobody reads the watch while 200 writes go through.
    let t = std::time::Instant::now();
    for i in 1..=200 {
        a.store_put("x", json!({"i": i}), &[]).await;
    }
    a.list_rv("").await;
    assert!(t.elapsed() < Duration::from_secs(30));
    let mut last = Value::Null;
    while let Some(ev) = w.next(SECOND).await {
        last = ev;
    }
    assert_eq!(last["type"], "ERROR", "{last}");
    assert_eq!(last["object"]["code"], 410);
    assert!(last["object"]["message"]
        .as_str()
        .unwrap()
        .contains("fell more than 16 changes behind"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_1000_objects_with_concurrent_writes_returns_each_once() {
    let a = api();
    let mut names = BTreeSet::new();
    for n in 0..1000 {
        let name = format!("c{n:04}");
        a.store_put(&name, json!({"i": 0}), &[]).await;
        names.insert(name);
    }
    let writer = {
        let store = a.store.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                // New objects sort among the existing ones; existing ones change status.
                store
                    .apply(SpecWrite {
                        kind: KIND.into(),
                        meta: ObjectMeta::named(format!("c{:04}x", i * 3)),
                        spec: json!({}),
                        expected_resource_version: None,
                        manager: None,
                        dry_run: false,
                    })
                    .await
                    .unwrap();
                store
                    .update_status(KIND, &format!("c{:04}", 999 - i), json!({"i": i}), None)
                    .await
                    .unwrap();
            }
        })
    };
    let mut got: Vec<String> = Vec::new();
    let mut token = String::new();
    let mut snapshot_rv = None;
    loop {
        let q = if token.is_empty() {
            "limit=50".to_string()
        } else {
            format!("limit=50&continue={token}")
        };
        let (rv, page) = a.list_rv(&q).await;
        assert_eq!(*snapshot_rv.get_or_insert(rv), rv, "one snapshot");
        for item in page["items"].as_array().unwrap() {
            assert!(rv_of(&json!({"object": item})) <= rv);
            got.push(item["metadata"]["name"].as_str().unwrap().to_string());
        }
        assert!(page["items"].as_array().unwrap().len() <= 50);
        match page["metadata"]["continue"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique.len(), got.len(), "no object twice");
    // Exactly what existed at the snapshot: the first 1,000 plus the new ones written before it.
    let snapshot_rv = snapshot_rv.unwrap();
    let extra: BTreeSet<String> = unique.difference(&names).cloned().collect();
    assert!(names.is_subset(&unique));
    for n in &extra {
        let o = a.store.get(KIND, n).await.unwrap().unwrap();
        assert!(
            o.resource_version() <= snapshot_rv,
            "{n} is newer than the snapshot"
        );
    }
}

#[tokio::test]
async fn an_expired_continue_token_is_410() {
    let a = api_with(CacheConfig {
        snapshot_ttl: Duration::from_millis(200),
        ..CacheConfig::default()
    });
    for n in 0..3 {
        a.store_put(&format!("o{n}"), json!({}), &[]).await;
    }
    let (_, page) = a.list_rv("limit=1").await;
    assert_eq!(page["metadata"]["remainingItemCount"], 2);
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let (code, _) = a
        .get(&format!("/api/v1/botclusters?limit=1&continue={token}"))
        .await;
    assert_eq!(code, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Past its time, but nothing changed since: the snapshot is the current state, still served.
    let (code, _) = a
        .get(&format!("/api/v1/botclusters?limit=1&continue={token}"))
        .await;
    assert_eq!(code, StatusCode::OK);
    // Once something changed, the expired snapshot is gone for good.
    a.store_put("o9", json!({}), &[]).await;
    let (code, body) = a
        .get(&format!("/api/v1/botclusters?limit=1&continue={token}"))
        .await;
    assert_eq!(code, StatusCode::GONE);
    assert_eq!(body["code"], "Expired");
    assert!(body["message"].as_str().unwrap().contains("list again"));
}

#[tokio::test]
async fn every_new_parameter_is_checked_with_a_400_naming_it() {
    let a = api();
    let cases: HashMap<&str, &str> = HashMap::from([
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("continue=zz", "continue"),
        ("continue=31323a476974536f757263653a78", "continue"),
        ("resourceVersion=abc", "resourceVersion"),
        ("watch=maybe", "watch"),
        ("watch=true&timeoutSeconds=0", "timeoutSeconds"),
        ("watch=true&limit=5", "limit"),
        ("watch=true&allowWatchBookmarks=yes", "allowWatchBookmarks"),
        ("labelSelector=a%20in%20b", "labelSelector"),
        ("labelSelector=a%3D%3D%3Db", "labelSelector"),
        ("fieldSelector=spec.image%3Dx", "fieldSelector"),
    ]);
    for (q, param) in cases {
        let (code, body) = a.get(&format!("/api/v1/botclusters?{q}")).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert_eq!(body["code"], "BadRequest");
        let m = body["message"].as_str().unwrap();
        assert!(m.starts_with(param), "{q}: {m}");
    }
}

#[tokio::test]
async fn when_the_cache_falls_behind_the_store_it_reloads_and_watchers_are_told_to_relist() {
    // In memory, so 5,000 writes take a moment; on this single-threaded runtime the cache's
    // task cannot run while they go through (a store write never yields), so the store's
    // watch (4,096 events) overflows for it.
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let state = AppState {
        store: store.clone(),
        token: Arc::new(TOKEN.into()),
        metrics: Metrics::new(),
        preview: None,
    };
    let a = Api {
        app: router_with_cache(state, CacheConfig::default()),
        store,
        _dir: tempfile::tempdir().unwrap(),
    };
    a.store_put("x", json!({"i": 0}), &[]).await;
    let (from, _) = a.list_rv("").await;
    let (_, mut w) = a.watch(&format!("resourceVersion={from}")).await;
    for i in 1..=5000 {
        a.store_put("x", json!({"i": i}), &[]).await;
    }
    let (_, got) = a.get("/api/v1/botclusters/x").await;
    assert_eq!(
        got["spec"]["i"], 5000,
        "the reloaded cache has the last write"
    );
    let (rv, _) = a.list_rv("").await;
    assert_eq!(rv, a.store.revision());
    let ev = w.next(SECOND).await.expect("the watcher hears of it");
    assert_eq!(ev["type"], "ERROR", "{ev}");
    assert_eq!(ev["object"]["code"], 410);
    assert!(ev["object"]["message"]
        .as_str()
        .unwrap()
        .contains("rebuilt its cache"));
    // History starts again at the reload: older resourceVersions are 410, newer ones work.
    assert_eq!(
        a.watch(&format!("resourceVersion={from}")).await.0,
        StatusCode::GONE
    );
    let (_, mut w) = a.watch(&format!("resourceVersion={rv}")).await;
    a.store_put("x", json!({"i": 5001}), &[]).await;
    let ev = w.next_change(SECOND).await.unwrap();
    assert_eq!(ev["object"]["spec"]["i"], 5001);
}

#[tokio::test]
async fn closing_the_cache_ends_every_watch_so_a_graceful_shutdown_can_finish() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let state = AppState {
        store: store.clone(),
        token: Arc::new(TOKEN.into()),
        metrics: Metrics::new(),
        preview: None,
    };
    let (app, cache) = botcluster_server::router_and_cache(state, CacheConfig::default());
    let a = Api {
        app,
        store,
        _dir: dir,
    };
    let (_, mut w) = a.watch("").await;
    assert!(
        w.next(Duration::from_millis(200)).await.is_none(),
        "open, quiet"
    );
    cache.close();
    let t = std::time::Instant::now();
    // `next` gives None both on end and on silence: tell them apart by the body's end.
    while w.next(SECOND).await.is_some() {}
    assert!(t.elapsed() < SECOND, "the stream ended at once");
    assert!(w.ended);
    let (_, mut late) = a.watch("").await;
    while late.next(SECOND).await.is_some() {}
    assert!(late.ended, "a watch after close ends too");
}

#[tokio::test]
async fn the_whole_list_is_served_again_only_while_nothing_changed() {
    let a = api();
    for n in 0..3 {
        a.store_put(&format!("o{n}"), json!({"v": 0}), &[("tier", "a")])
            .await;
    }
    let (rv, first) = a.list_rv("").await;
    let (_, again) = a.list_rv("").await;
    assert_eq!(first, again);
    let (_, page) = a.list_rv("limit=1").await;
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    // The rest after the token (no limit), not the remembered whole list.
    let (_, rest) = a.list_rv(&format!("continue={token}")).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    let (_, sel) = a.list_rv("labelSelector=tier%3Db").await;
    assert_eq!(sel["items"], json!([]));
    a.store_put("o1", json!({"v": 1}), &[("tier", "a")]).await;
    let (rv2, after) = a.list_rv("").await;
    assert!(rv2 > rv);
    assert_eq!(after["items"][1]["spec"]["v"], 1);
}
