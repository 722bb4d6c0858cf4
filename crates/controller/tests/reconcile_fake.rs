//! The reconcile pass against the in-memory backend: the same code path as on LXD, minus LXD.
//! (The claims that matter are proven on the real daemon in crates/botctl/tests/lxd_e2e.rs.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use botcluster_api::{BOTCLUSTER_KIND, FINALIZER};
use botcluster_controller::backend::ContainerBackend;
use botcluster_controller::backend::Instance;
use botcluster_controller::metrics::ControllerMetrics;
use botcluster_controller::model::*;
use botcluster_controller::proxy::ProxyBackend;
use botcluster_controller::{BotClusterReconciler as Reconciler, ReconcilerConfig};
use botcluster_store::{Deleted, Store};
use serde_json::json;

mod support;
use support::*;

#[tokio::test]
async fn converges_then_a_second_pass_writes_nothing() {
    let w = world();
    apply(
        &w,
        "web",
        // Health checks off here: nothing listens behind the fake's ports.
        json!({"replicas": 3, "health": {"enabled": false}, "resources": {"cpu": 2, "memory": "256MiB"}}),
    )
    .await;
    w.rec.reconcile("web").await.unwrap();
    assert_eq!(names(&w), vec!["web-0", "web-1", "web-2"]);
    assert!(w
        .fake
        .all()
        .iter()
        .all(|o| o.running && o.config["limits.cpu"] == "2"));
    let obj = w.store.get(BOTCLUSTER_KIND, "web").await.unwrap().unwrap();
    assert_eq!(obj.meta.finalizers, vec![FINALIZER.to_string()]);
    let writes = w.fake.write_count();
    w.rec.reconcile("web").await.unwrap();
    let rv = w
        .store
        .get(BOTCLUSTER_KIND, "web")
        .await
        .unwrap()
        .unwrap()
        .resource_version();
    w.rec.reconcile("web").await.unwrap();
    assert_eq!(
        w.fake.write_count(),
        writes,
        "an unchanged cluster was written to"
    );
    let st = status(&w, "web").await;
    assert_eq!(st["replicas"], json!(3));
    assert_eq!(st["readyReplicas"], json!(3));
    let after = w.store.get(BOTCLUSTER_KIND, "web").await.unwrap().unwrap();
    assert_eq!(
        after.resource_version(),
        rv,
        "status unchanged: no store write"
    );
}

#[tokio::test]
async fn drift_is_corrected_and_strangers_are_left_alone() {
    let w = world();
    w.fake.insert(Instance {
        name: "web-1".into(),
        running: true,
        status: "Running".into(),
        config: BTreeMap::new(),
        devices: BTreeMap::new(),
        ..Default::default()
    });
    apply(&w, "web", json!({"replicas": 3})).await;
    w.rec.reconcile("web").await.unwrap();
    // web-1 is taken, so the cluster's three are web-0, web-2 and web-3.
    assert_eq!(names(&w), vec!["web-0", "web-1", "web-2", "web-3"]);
    assert!(
        w.fake
            .all()
            .iter()
            .find(|o| o.name == "web-1")
            .unwrap()
            .config
            .is_empty(),
        "the stranger was touched"
    );
    let st = status(&w, "web").await;
    let degraded = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap()
        .clone();
    assert_eq!(degraded["status"], "True");
    assert!(
        degraded["reason"]
            .as_str()
            .unwrap()
            .contains("NameConflict"),
        "{degraded}"
    );

    // Hand edits: a limit changed, the proxy device removed, an instance stopped, one deleted.
    w.fake.edit("web-0", |o| {
        o.config.insert("limits.memory".into(), "1GiB".into());
        o.devices.remove(PROXY_DEVICE);
        o.running = false;
    });
    w.fake.remove("web-2");
    w.rec.reconcile("web").await.unwrap();
    let web0 = w
        .fake
        .all()
        .into_iter()
        .find(|o| o.name == "web-0")
        .unwrap();
    assert!(
        web0.running
            && web0.devices.contains_key(PROXY_DEVICE)
            && !web0.config.contains_key("limits.memory")
    );
    assert!(names(&w).contains(&"web-2".to_string()));
}

#[tokio::test]
async fn a_refused_limit_becomes_a_condition_not_a_hot_loop() {
    let w = world();
    w.fake
        .refuse_keys
        .lock()
        .unwrap()
        .push("limits.disk.priority".into());
    apply(
        &w,
        "disk",
        json!({"replicas": 1, "resources": {"diskPriority": 5}}),
    )
    .await;
    w.rec.reconcile("disk").await.unwrap();
    w.rec.reconcile("disk").await.unwrap();
    assert_eq!(names(&w), vec!["disk-0"]);
    assert!(!w.fake.all()[0].config.contains_key("limits.disk.priority"));
    let st = status(&w, "disk").await;
    let degraded = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap()
        .clone();
    assert!(
        degraded["reason"]
            .as_str()
            .unwrap()
            .contains("LimitUnsupported"),
        "{degraded}"
    );
    let writes = w.fake.write_count();
    w.rec.reconcile("disk").await.unwrap();
    assert_eq!(
        w.fake.write_count(),
        writes,
        "the refused key is not retried on every pass"
    );
    let events = w.store.events(BOTCLUSTER_KIND, "disk", 50).await.unwrap();
    assert!(events.iter().any(|e| e.reason == "LimitUnsupported"));
}

#[tokio::test]
async fn deleting_tears_down_then_removes_the_object() {
    let w = world();
    apply(&w, "gone", json!({"replicas": 2})).await;
    w.rec.reconcile("gone").await.unwrap();
    assert_eq!(names(&w).len(), 2);
    let Deleted::Terminating(_) = w.store.delete(BOTCLUSTER_KIND, "gone").await.unwrap() else {
        panic!("finalizer missing")
    };
    w.rec.reconcile("gone").await.unwrap();
    assert!(names(&w).is_empty());
    assert!(w
        .store
        .get(BOTCLUSTER_KIND, "gone")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn two_hundred_clusters_of_ten_converge_in_memory_and_then_stay_quiet() {
    let w = world();
    let w = World {
        rec: Reconciler::new(
            w.store.clone(),
            Arc::new(w.fake.clone()),
            ControllerMetrics::new(&prometheus::Registry::new()),
            ReconcilerConfig {
                check_host_ports: false,
                port_range: (1024, 65000),
                probe_timeout: Duration::from_millis(1),
                ..Default::default()
            },
        ),
        ..w
    };
    // Health checks off: running counts as ready, and nothing is probed over the network.
    let n = 200;
    for i in 0..n {
        apply(
            &w,
            &format!("c{i}"),
            json!({"replicas": 10, "health": {"enabled": false}}),
        )
        .await;
    }
    let started = std::time::Instant::now();
    for i in 0..n {
        w.rec.reconcile(&format!("c{i}")).await.unwrap();
    }
    let took = started.elapsed();
    assert_eq!(w.fake.all().len(), n * 10);
    let writes = w.fake.write_count();
    for i in 0..n {
        w.rec.reconcile(&format!("c{i}")).await.unwrap();
    }
    assert_eq!(w.fake.write_count(), writes);
    let st = status(&w, "c0").await;
    assert_eq!(st["readyReplicas"], json!(10));
    eprintln!("{n} clusters × 10 instances converged in {took:?}");
}

#[tokio::test]
async fn the_load_balancer_is_restored_and_rate_limits_are_reported_not_faked() {
    let (w, proxy) = with_proxy(world());
    apply(
        &w,
        "lb",
        json!({"replicas": 2, "health": {"enabled": false},
               "loadBalancer": {"listen": "127.0.0.1:8999", "rateLimit": {"requests": 100}}}),
    )
    .await;
    w.rec.reconcile("lb").await.unwrap();
    w.rec.reconcile("lb").await.unwrap();
    let server = proxy
        .servers()
        .get("botcluster-lb")
        .cloned()
        .expect("server rendered");
    assert!(
        !server.to_string().contains("rate_limit"),
        "no rate-limit module: nothing rendered for it"
    );
    let st = status(&w, "lb").await;
    let rl = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "RateLimitUnsupported")
        .cloned();
    assert!(rl.is_some_and(|c| c["status"] == "True"), "{st}");
    assert_eq!(st["proxy"]["synced"], json!(true));
    assert_eq!(st["proxy"]["upstreams"].as_array().unwrap().len(), 2);
    let events = w.store.events(BOTCLUSTER_KIND, "lb", 50).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.reason == "RateLimitUnsupported")
            .count(),
        1,
        "reported once, not every pass"
    );

    // Unchanged: no pushes.
    let pushes = proxy.write_count();
    w.rec.reconcile("lb").await.unwrap();
    assert_eq!(proxy.write_count(), pushes);
    // Caddy restarted with an empty config, or edited by hand: restored.
    proxy.set("botcluster-lb", json!({"listen": [":1"]}));
    w.rec.reconcile("lb").await.unwrap();
    assert_eq!(proxy.servers().get("botcluster-lb"), Some(&server));
    // Deleting the cluster removes its server.
    w.store.delete(BOTCLUSTER_KIND, "lb").await.unwrap();
    w.rec.reconcile("lb").await.unwrap();
    assert!(proxy.servers().is_empty());
}

#[tokio::test]
async fn the_load_balancers_request_rate_drives_the_autoscaler() {
    use botcluster_controller::proxy::ServerTraffic;
    let (w, proxy) = with_proxy(world());
    apply(
        &w,
        "busy",
        json!({"replicas": 2, "health": {"enabled": false},
               "autoscaling": {"enabled": true, "minInstances": 2, "maxInstances": 6,
                               "requestThreshold": 1000, "checkInterval": "1s"},
               "loadBalancer": {"listen": "127.0.0.1:8998"}}),
    )
    .await;
    // Before the first request Caddy has no series for the server: zero so far.
    w.rec.reconcile("busy").await.unwrap();
    w.rec.reconcile("busy").await.unwrap();
    let st = status(&w, "busy").await;
    assert_eq!(st["autoscaler"]["desiredReplicas"], json!(2), "{st}");
    // A window (1 s) later: still nothing. Another window later, 200 requests have gone
    // through, 50 ms each: up to 10900/min, over 5000 per instance.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.rec.reconcile("busy").await.unwrap();
    let st = status(&w, "busy").await;
    assert_eq!(
        st["autoscaler"]["currentMetrics"]["requestsPerMinute"],
        json!(0.0),
        "{st}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    proxy.set_traffic(
        "botcluster-busy",
        ServerTraffic {
            requests_total: 200.0,
            errors_total: 0.0,
            duration_seconds_sum: 10.0,
            duration_seconds_count: 200.0,
        },
    );
    w.rec.reconcile("busy").await.unwrap();
    let st = status(&w, "busy").await;
    let a = &st["autoscaler"];
    let rpm = a["currentMetrics"]["requestsPerMinute"].as_f64().unwrap();
    assert!((2000.0..=5500.0).contains(&rpm), "{a}");
    assert_eq!(a["currentMetrics"]["responseTimeMs"], json!(50.0), "{a}");
    assert_eq!(a["decidedBy"], json!("requestsPerMinute"), "{a}");
    assert_eq!(a["desiredReplicas"], json!(6), "{a}");
}
