//! Faults a review found in the reconcile pass, each proven on the in-memory backends (the
//! end-to-end tests in crates/botctl/tests prove the same on real LXD and Caddy).

use std::sync::Arc;

use botcluster_api::{BotCluster, BOTCLUSTER_KIND};
use botcluster_controller::backend::{ContainerBackend, FakeBackend, Instance};
use botcluster_controller::model::*;
use botcluster_controller::probe::{Probe, ProbeResult};
use botcluster_controller::proxy::ProxyBackend;
use botcluster_controller::{BotClusterReconciler as Reconciler, ReconcilerConfig};
use botcluster_store::Store;
use serde_json::{json, Value};

mod support;
use support::*;

/// A fresh reconciler over the same store and host: the operator restarted.
fn restarted(w: &World) -> Reconciler {
    reconciler(&w.store, &w.fake)
}

async fn events(w: &World, name: &str, reason: &str) -> usize {
    w.store
        .events(BOTCLUSTER_KIND, name, 500)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.reason == reason)
        .count()
}

async fn desired(w: &World, name: &str, spec: Value) -> BotCluster {
    let mut full: Value = json!({"image": "img"});
    for (k, v) in spec.as_object().unwrap() {
        full[k] = v.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "botcluster.io/v1alpha1", "kind": "BotCluster",
        "metadata": {"name": name}, "spec": full
    }))
    .unwrap_or_else(|e| panic!("{e}: {:?}", w.fake.all().len()))
}

fn autoscaled() -> Value {
    json!({"replicas": 2, "health": {"enabled": false},
           "autoscaling": {"enabled": true, "minInstances": 1, "maxInstances": 10, "cooldown": "300s"}})
}

#[tokio::test]
async fn an_autoscaled_cluster_is_not_cut_back_after_an_operator_restart() {
    let w = world();
    // Six instances, as an operator whose autoscaler had scaled the cluster up left them.
    apply(
        &w,
        "web",
        json!({"replicas": 6, "health": {"enabled": false}}),
    )
    .await;
    w.rec.reconcile("web").await.unwrap();
    assert_eq!(w.fake.all().len(), 6);
    apply(&w, "web", autoscaled()).await;
    let rec = restarted(&w);
    for _ in 0..3 {
        rec.reconcile("web").await.unwrap();
    }
    assert_eq!(w.fake.all().len(), 6, "nothing removed before the cooldown");
    assert_eq!(events(&w, "web", "ScaledDown").await, 0);
    let st = status(&w, "web").await;
    assert_eq!(st["autoscaler"]["desiredReplicas"], json!(6), "{st}");
    // A dry run sees the same count: no deletes planned.
    let preview = rec
        .preview(&desired(&w, "web", autoscaled()).await)
        .await
        .unwrap();
    assert!(preview.actions.is_empty(), "{preview:?}");
}

#[tokio::test]
async fn drain_takes_the_passes_own_uid_not_a_strangers() {
    let (w, proxy) = with_proxy(world());
    let spec = |n: u32| {
        json!({"replicas": n, "health": {"enabled": false},
               "loadBalancer": {"listen": "127.0.0.1:8997"}})
    };
    // An old incarnation of the cluster (its name, its cluster key, another uid) sorts first.
    let mut config = std::collections::BTreeMap::new();
    config.insert(KEY_CLUSTER.to_string(), "lb".to_string());
    config.insert(KEY_UID.to_string(), "an-older-uid".to_string());
    config.insert(KEY_ORDINAL.to_string(), "0".to_string());
    let mut devices = std::collections::BTreeMap::new();
    let mut dev = std::collections::BTreeMap::new();
    dev.insert("type".to_string(), "proxy".to_string());
    dev.insert("listen".to_string(), "tcp:127.0.0.1:29999".to_string());
    devices.insert(PROXY_DEVICE.to_string(), dev);
    w.fake.insert(Instance {
        name: "lb-0".into(),
        running: true,
        status: "Running".into(),
        config,
        devices,
        ..Default::default()
    });
    apply(&w, "lb", spec(2)).await;
    w.rec.reconcile("lb").await.unwrap();
    w.rec.reconcile("lb").await.unwrap();
    apply(&w, "lb", spec(1)).await;
    w.rec.reconcile("lb").await.unwrap();
    assert_eq!(
        events(&w, "lb", "Drained").await,
        1,
        "a serving instance drained"
    );
    let pushed: Vec<String> = w
        .store
        .events(BOTCLUSTER_KIND, "lb", 500)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.reason == "ProxyUpdated")
        .map(|e| e.message)
        .collect();
    assert!(
        pushed.iter().all(|m| !m.contains("29999")),
        "the stranger's container was never put behind the load balancer: {pushed:?}"
    );
    let server = proxy.servers().get("botcluster-lb").cloned().unwrap();
    assert!(!server.to_string().contains("29999"));
}

#[tokio::test]
async fn a_dry_run_shows_drift_and_the_load_balancer_and_writes_nothing() {
    let (w, proxy) = with_proxy(world());
    let spec = json!({"replicas": 2, "health": {"enabled": false},
                      "loadBalancer": {"listen": "127.0.0.1:8996"}});
    apply(&w, "dry", spec.clone()).await;
    w.rec.reconcile("dry").await.unwrap();
    w.rec.reconcile("dry").await.unwrap();
    let bc = desired(&w, "dry", spec).await;
    assert_eq!(
        w.rec.preview(&bc).await.unwrap(),
        Default::default(),
        "a converged cluster previews nothing"
    );
    // Someone deletes a container: same spec, but the next pass would create it and change
    // the load balancer's upstreams.
    w.fake.remove("dry-1");
    let (writes, pushes) = (w.fake.write_count(), proxy.write_count());
    let rv = w
        .store
        .get(BOTCLUSTER_KIND, "dry")
        .await
        .unwrap()
        .unwrap()
        .resource_version();
    let n_events = w
        .store
        .events(BOTCLUSTER_KIND, "dry", 500)
        .await
        .unwrap()
        .len();
    let p = w.rec.preview(&bc).await.unwrap();
    assert!(
        p.actions.iter().any(|a| a.starts_with("create dry-1")),
        "{p:?}"
    );
    assert!(
        p.actions
            .iter()
            .any(|a| a.contains("load balancer botcluster-dry")),
        "{p:?}"
    );
    assert_eq!(w.fake.write_count(), writes, "no LXD write");
    assert_eq!(proxy.write_count(), pushes, "no proxy write");
    let after = w.store.get(BOTCLUSTER_KIND, "dry").await.unwrap().unwrap();
    assert_eq!(after.resource_version(), rv, "no status write");
    assert_eq!(
        w.store
            .events(BOTCLUSTER_KIND, "dry", 500)
            .await
            .unwrap()
            .len(),
        n_events,
        "no event"
    );
}

#[tokio::test]
async fn a_suspended_cluster_is_observed_and_reported_but_not_changed() {
    let w = world();
    let spec =
        |suspend: bool| json!({"replicas": 2, "health": {"enabled": false}, "suspend": suspend});
    apply(&w, "sus", spec(false)).await;
    w.rec.reconcile("sus").await.unwrap();
    apply(&w, "sus", spec(true)).await;
    w.fake.remove("sus-0");
    let writes = w.fake.write_count();
    w.rec.reconcile("sus").await.unwrap();
    w.rec.reconcile("sus").await.unwrap();
    assert_eq!(w.fake.write_count(), writes, "suspended: no LXD write");
    let st = status(&w, "sus").await;
    let cond = |t: &str| {
        st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(cond("Suspended")["status"], json!("True"), "{st}");
    assert!(
        cond("Suspended")["message"]
            .as_str()
            .unwrap()
            .contains("create sus-0"),
        "{st}"
    );
    assert_eq!(cond("Ready")["status"], json!("False"), "{st}");
    assert_eq!(
        st["replicas"],
        json!(1),
        "status still reports what is observed"
    );
    let p = w
        .rec
        .preview(&desired(&w, "sus", spec(true)).await)
        .await
        .unwrap();
    assert!(
        p.actions.iter().any(|a| a.starts_with("create sus-0")),
        "{p:?}"
    );
    // Un-suspended: converges, and the condition goes.
    apply(&w, "sus", spec(false)).await;
    w.rec.reconcile("sus").await.unwrap();
    assert_eq!(w.fake.all().len(), 2);
    let st = status(&w, "sus").await;
    assert!(
        !st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Suspended"),
        "{st}"
    );
}

/// A probe that reports every instance unreachable.
struct Failing;

#[async_trait::async_trait]
impl Probe for Failing {
    async fn probe(&self, _host: &str, port: u16, _path: &str) -> ProbeResult {
        ProbeResult {
            ready: false,
            health: "unreachable".into(),
            message: Some(format!("port {port}: refused")),
            latency_ms: 1.0,
            queue_depth: None,
            connections: None,
        }
    }
}

#[tokio::test]
async fn dry_runs_do_not_count_health_failures() {
    let store = Arc::new(botcluster_store::SqliteStore::in_memory().unwrap());
    let fake = FakeBackend::new();
    let rec = reconciler(&store, &fake).with_probe(Arc::new(Failing));
    let w = World { store, fake, rec };
    let spec = json!({"replicas": 1, "health": {"retries": 3, "interval": "1s"}});
    apply(&w, "h", spec.clone()).await;
    w.rec.reconcile("h").await.unwrap();
    let before = status(&w, "h").await;
    let n_events = w
        .store
        .events(BOTCLUSTER_KIND, "h", 500)
        .await
        .unwrap()
        .len();
    let bc = desired(&w, "h", spec).await;
    for _ in 0..5 {
        w.rec.preview(&bc).await.unwrap();
    }
    assert_eq!(status(&w, "h").await, before);
    assert_eq!(
        w.store
            .events(BOTCLUSTER_KIND, "h", 500)
            .await
            .unwrap()
            .len(),
        n_events
    );
    // The next real pass counts its own probe only: one failure, not six.
    w.rec.reconcile("h").await.unwrap();
    let st = status(&w, "h").await;
    let message = st["instances"][0]["message"].as_str().unwrap_or_default();
    assert!(message.ends_with("(1 failed in a row)"), "{st}");
}

#[tokio::test]
async fn a_slow_start_never_hides_the_passes_decisions_and_is_never_duplicated() {
    use botcluster_controller::runtime::{Reconcile, Trigger};
    use futures_util::StreamExt;
    let w = slow_world(
        std::time::Duration::from_millis(1500),
        ReconcilerConfig {
            action_budget: std::time::Duration::from_millis(200),
            ..Default::default()
        },
    );
    let mut triggers = w.rec.triggers();
    apply(
        &w,
        "slow",
        json!({"replicas": 2, "health": {"enabled": false},
               "autoscaling": {"enabled": true, "minInstances": 2, "maxInstances": 4}}),
    )
    .await;
    let started = std::time::Instant::now();
    w.rec.reconcile("slow").await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1000),
        "the pass waited for the slow starts: {:?}",
        started.elapsed()
    );
    // Status is written while the starts run: the decision and what is in flight.
    let st = status(&w, "slow").await;
    assert_eq!(st["autoscaler"]["desiredReplicas"], json!(2), "{st}");
    let progressing = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .cloned()
        .unwrap();
    assert!(
        progressing["message"]
            .as_str()
            .unwrap()
            .contains("still running: create slow-0"),
        "{progressing}"
    );
    // Passes while the batch runs plan nothing for its instances.
    let writes = w.fake.write_count();
    w.rec.reconcile("slow").await.unwrap();
    w.rec.reconcile("slow").await.unwrap();
    assert_eq!(
        w.fake.write_count(),
        writes,
        "an in-flight instance was acted on again"
    );
    assert_eq!(w.fake.all().len(), 2);
    // The batch's end asks for a pass, which reports the cluster converged.
    let t = tokio::time::timeout(std::time::Duration::from_secs(5), triggers[0].next())
        .await
        .expect("a trigger when the batch ended");
    assert_eq!(
        t,
        Some(Trigger::Key(
            "slow".into(),
            std::time::Duration::from_millis(200)
        ))
    );
    w.rec.reconcile("slow").await.unwrap();
    let st = status(&w, "slow").await;
    assert_eq!(st["readyReplicas"], json!(2), "{st}");
    assert_eq!(w.fake.all().len(), 2, "nothing duplicated");
}

#[tokio::test]
async fn an_unreachable_load_balancer_is_a_condition_and_a_backoff_and_only_for_clusters_that_use_one(
) {
    let (w, proxy) = with_proxy(world());
    apply(
        &w,
        "lb",
        json!({"replicas": 1, "health": {"enabled": false},
               "loadBalancer": {"listen": "127.0.0.1:8994"}}),
    )
    .await;
    apply(
        &w,
        "plain",
        json!({"replicas": 1, "health": {"enabled": false}}),
    )
    .await;
    proxy.set_down(true);
    let err = w.rec.reconcile("lb").await.expect_err("backs off");
    assert!(err.to_string().contains("load balancer"), "{err}");
    let st = status(&w, "lb").await;
    let degraded = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .cloned()
        .unwrap();
    assert_eq!(degraded["status"], json!("True"), "{st}");
    assert!(
        degraded["reason"]
            .as_str()
            .unwrap()
            .contains("ProxyUnavailable"),
        "{degraded}"
    );
    assert_eq!(
        w.fake.all().iter().filter(|i| i.name == "lb-0").count(),
        1,
        "containers still converge"
    );
    // A cluster without a load balancer does not care.
    w.rec.reconcile("plain").await.unwrap();
    let st = status(&w, "plain").await;
    assert!(
        st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Degraded" && c["status"] == "False"),
        "{st}"
    );
    // Back: converges and clears.
    proxy.set_down(false);
    w.rec.reconcile("lb").await.unwrap();
    assert!(proxy.servers().contains_key("botcluster-lb"));
}

/// The create bound covers the create request, not the start: with one create at a time,
/// later creates still go on while earlier containers start, and the start bound holds.
#[tokio::test]
async fn the_create_bound_does_not_wait_for_starts_and_the_start_bound_holds() {
    let w = slow_world(
        std::time::Duration::from_millis(300),
        ReconcilerConfig {
            max_concurrent_creates: 1,
            max_concurrent_starts: 2,
            action_budget: std::time::Duration::from_secs(30),
            ..Default::default()
        },
    );
    apply(
        &w,
        "bound",
        json!({"replicas": 4, "health": {"enabled": false}}),
    )
    .await;
    let _ = w.rec.reconcile("bound").await;
    assert_eq!(names(&w).len(), 4);
    let (now, peak) = *w.fake.starts.lock().unwrap();
    assert_eq!(now, 0);
    assert_eq!(peak, 2, "starts at once (create bound 1, start bound 2)");
}

/// Found timing `botctl delete` of ten containers on LXD: 14 s, because a pass ran its deletes
/// one after another (each is stop → wait for the stop hooks → delete, about 1.4 s). A run
/// of deletes now goes several at a time, bounded.
#[tokio::test]
async fn a_teardown_deletes_several_at_a_time_within_the_bound() {
    use botcluster_controller::botcluster::execute::DELETES_AT_ONCE;
    let w = world();
    let n = DELETES_AT_ONCE + 2;
    apply(
        &w,
        "many",
        json!({"replicas": n, "health": {"enabled": false}}),
    )
    .await;
    let _ = w.rec.reconcile("many").await;
    assert_eq!(names(&w).len(), n);
    *w.fake.delete_delay.lock().unwrap() = std::time::Duration::from_millis(200);
    w.store.delete(BOTCLUSTER_KIND, "many").await.unwrap();
    w.rec.reconcile("many").await.unwrap();
    assert!(names(&w).is_empty());
    let (now, peak) = *w.fake.deletes.lock().unwrap();
    assert_eq!(now, 0);
    assert_eq!(peak, DELETES_AT_ONCE, "deletes at once");
}

fn condition(st: &Value, t: &str) -> Value {
    st["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == t).cloned())
        .unwrap_or(Value::Null)
}

/// Found reading status: a cluster with an unreachable cache node, or tenants and no
/// PostgreSQL, said `Ready=True`, `Degraded=False` beside `CacheReady=False` /
/// `ShardsReady=False`. A part's fault now makes it Degraded and not Ready; a pending
/// rebalance (waiting for a person, the published map serving) does neither.
#[tokio::test]
async fn a_fault_of_shards_or_cache_makes_the_cluster_degraded_and_not_ready() {
    let w = world();
    let base = json!({"replicas": 1, "health": {"enabled": false}});
    apply(&w, "parts", base.clone()).await;
    w.rec.reconcile("parts").await.unwrap();
    let st = status(&w, "parts").await;
    assert_eq!(condition(&st, "Ready")["status"], "True", "{st}");
    assert_eq!(condition(&st, "Degraded")["status"], "False", "{st}");

    // Nothing listens on port 1 of loopback.
    let mut spec = base.clone();
    spec["cache"] = json!({"mode": "single", "nodes": ["127.0.0.1:1"]});
    apply(&w, "parts", spec).await;
    let _ = w.rec.reconcile("parts").await;
    let st = status(&w, "parts").await;
    assert_eq!(condition(&st, "CacheReady")["status"], "False", "{st}");
    let degraded = condition(&st, "Degraded");
    assert_eq!(degraded["status"], "True", "{st}");
    assert_eq!(degraded["reason"], "NodeUnreachable", "{st}");
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .starts_with("CacheReady: "),
        "{degraded}"
    );
    let ready = condition(&st, "Ready");
    assert_eq!(ready["status"], "False", "{st}");
    assert_eq!(ready["reason"], "PartNotReady", "{st}");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("1/1 instances ready"),
        "{ready}"
    );

    // Tenants and no PostgreSQL for them.
    let mut spec = base.clone();
    spec["sharding"] = json!({"strategy": "tenant", "tenant": {"tenants": ["acme"]}});
    apply(&w, "parts", spec).await;
    let _ = w.rec.reconcile("parts").await;
    let st = status(&w, "parts").await;
    assert_eq!(condition(&st, "CacheReady"), Value::Null, "{st}");
    assert_eq!(
        condition(&st, "ShardsReady")["reason"],
        "PostgresNotConfigured",
        "{st}"
    );
    assert_eq!(
        condition(&st, "Degraded")["reason"],
        "PostgresNotConfigured",
        "{st}"
    );
    assert_eq!(condition(&st, "Ready")["status"], "False", "{st}");

    // A rebalance waiting for approval: ShardsReady False, yet Ready and not Degraded.
    let hash = |n: u32| {
        let mut spec = base.clone();
        spec["sharding"] = json!({"strategy": "hash",
            "hash": {"key": "user_id", "algorithm": "slots", "shardCount": n}});
        spec
    };
    apply(&w, "parts", hash(4)).await;
    w.rec.reconcile("parts").await.unwrap();
    apply(&w, "parts", hash(5)).await;
    w.rec.reconcile("parts").await.unwrap();
    let st = status(&w, "parts").await;
    assert_eq!(
        condition(&st, "ShardsReady")["reason"],
        "RebalancePending",
        "{st}"
    );
    assert_eq!(condition(&st, "Degraded")["status"], "False", "{st}");
    assert_eq!(condition(&st, "Ready")["status"], "True", "{st}");
}

/// Found reviewing the shard map: removing `spec.sharding` left the last map file in every
/// container (the files hash changed, the other files were pushed, the map stayed), so a bot
/// kept routing by a map nobody publishes. Paths pushed are now recorded beside the hash and
/// a path the spec no longer has is deleted; then the cluster is quiet again.
#[tokio::test]
async fn a_file_the_spec_no_longer_has_is_deleted_from_the_containers() {
    let w = world();
    let map = "/opt/gbo/conf/shards.json";
    let sharded = json!({"replicas": 2, "health": {"enabled": false},
        "sharding": {"strategy": "hash", "hash": {"key": "user_id", "algorithm": "slots", "shardCount": 2}}});
    apply(&w, "maps", sharded).await;
    w.rec.reconcile("maps").await.unwrap();
    for i in ["maps-0", "maps-1"] {
        assert!(
            w.fake.files_of(i).contains_key(map),
            "{:?}",
            w.fake.files_of(i)
        );
    }
    apply(
        &w,
        "maps",
        json!({"replicas": 2, "health": {"enabled": false}}),
    )
    .await;
    w.rec.reconcile("maps").await.unwrap();
    for i in ["maps-0", "maps-1"] {
        assert!(
            !w.fake.files_of(i).contains_key(map),
            "{i}: the map file stayed"
        );
    }
    let writes = w.fake.write_count();
    w.rec.reconcile("maps").await.unwrap();
    assert_eq!(w.fake.write_count(), writes, "a second pass writes nothing");
}
