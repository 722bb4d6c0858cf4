//! The autoscaler on real load: CPU-busy containers scale up within a check interval and down
//! only after the window; requests through Caddy scale on requests per minute.

use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::free_port;

use crate::lb::SteadyClient;
use crate::observe::instance_urls;
use crate::operator::Operator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_containers_scale_up_within_a_check_interval_and_down_only_after_the_window() {
    let Some(mut op) = Operator::start("scale").await else {
        return;
    };
    op.apply(
        "  replicas: 1\n  resources:\n    cpu: 1\n    memory: 256MiB\n  health:\n    interval: 1s\n    timeout: 1s\n  autoscaling:\n    enabled: true\n    minInstances: 1\n    maxInstances: 3\n    cpuThreshold: 10\n    checkInterval: 2s\n    cooldown: 20s\n",
    );
    op.wait_ready();
    let url = instance_urls(&op.get()).remove(0);
    // The autoscaler ignores an instance's first 10 s of CPU (booting is not load).
    tokio::time::sleep(Duration::from_secs(11)).await;
    let idle = op.get();
    assert_eq!(
        idle.pointer("/status/autoscaler/desiredReplicas"),
        Some(&Value::from(1)),
        "{idle}"
    );
    // Burn a whole CPU in the only instance for 20 s: 100 % of limits.cpu, ten times the
    // target. The target is low because the end-to-end tests run at once on 2 cores: the busy
    // loop was seen to get under a quarter of a core (load average 9), while an idle
    // botserver-sim stays near 0 %.
    let busy_at = Instant::now();
    reqwest::Client::new()
        .post(format!("{url}/sim/busy?cpu_secs=20"))
        .send()
        .await
        .unwrap();
    op.wait_for("a scale-up decision", Duration::from_secs(30), || async {
        op.get()
            .pointer("/status/autoscaler/desiredReplicas")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            >= 2
    })
    .await;
    let reacted = busy_at.elapsed();
    let a = op
        .get()
        .pointer("/status/autoscaler")
        .cloned()
        .unwrap_or(Value::Null);
    assert!(
        a["decidedBy"].as_str().is_some_and(|d| d.contains("cpu")),
        "{a}"
    );
    // The check interval is 2 s; allow for the CPU sample that must span the load, and for a
    // loaded host.
    assert!(
        reacted < Duration::from_secs(15),
        "reacted only after {reacted:?}"
    );
    op.wait_for("2 instances ready", Duration::from_secs(120), || async {
        let o = op.get();
        o.pointer("/status/readyReplicas")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            >= 2
    })
    .await;
    let events =
        String::from_utf8_lossy(&op.botctl(&["status", &op.cluster, "--events", "50"]).stdout)
            .to_string();
    assert!(
        events.contains("ScaledUp") && events.contains("scaled 1 → "),
        "{events}"
    );
    eprintln!("reacted to load in {reacted:?}");
    // The load ends after 20 s; the scale-down waits out the 20 s window after it, even when
    // the operator is killed and restarted once the load is gone (its autoscaler then starts
    // from what exists, not from `replicas: 1`).
    let scaled = op.containers().await.len();
    tokio::time::sleep(
        Duration::from_secs(20).saturating_sub(busy_at.elapsed()) + Duration::from_secs(1),
    )
    .await;
    op.kill_9();
    op.spawn();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        op.containers().await.len(),
        scaled,
        "scaled down inside the stabilization window (the operator restarted 1 s after the load ended)\n{}",
        op.log()
    );
    op.wait_for(
        "the scale-down after the window",
        Duration::from_secs(600),
        || async { op.containers().await.len() == 1 },
    )
    .await;
    let events =
        String::from_utf8_lossy(&op.botctl(&["status", &op.cluster, "--events", "50"]).stdout)
            .to_string();
    assert!(events.contains("ScaledDown"), "{events}");
    op.delete_cluster();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_through_caddy_scale_the_cluster_on_requests_per_minute() {
    let Some(op) = Operator::start_with("rpm", true).await else {
        return;
    };
    let lb_port = free_port();
    op.apply(&format!(
        "  replicas: 1\n  health:\n    interval: 1s\n    timeout: 1s\n  autoscaling:\n    enabled: true\n    minInstances: 1\n    maxInstances: 3\n    cpuThreshold: 95\n    requestThreshold: 300\n    checkInterval: 2s\n    cooldown: 600s\n  loadBalancer:\n    listen: 127.0.0.1:{lb_port}\n"
    ));
    op.wait_ready();
    let rpm = |o: &Value| {
        o.pointer("/status/autoscaler/currentMetrics/requestsPerMinute")
            .and_then(Value::as_f64)
    };
    // Idle: Caddy counts nothing, and the autoscaler reads that as 0 requests per minute.
    op.wait_for("an idle request rate", Duration::from_secs(30), || async {
        rpm(&op.get()) == Some(0.0)
    })
    .await;
    // About 50 requests a second through the load balancer: ~3000/min, 10× the target.
    let started = Instant::now();
    let client = SteadyClient::start(&op.lb_url(), Duration::from_millis(20));
    op.wait_for(
        "a scale-up on requestsPerMinute",
        Duration::from_secs(60),
        || async {
            op.get()
                .pointer("/status/autoscaler/desiredReplicas")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                >= 2
        },
    )
    .await;
    let reacted = started.elapsed();
    let o = op.get();
    let a = o
        .pointer("/status/autoscaler")
        .cloned()
        .unwrap_or(Value::Null);
    assert!(rpm(&o).is_some_and(|r| r > 300.0), "{a}");
    assert_eq!(a["decidedBy"], "requestsPerMinute", "{a}");
    assert!(
        a["currentMetrics"]["responseTimeMs"].as_f64().is_some(),
        "{a}"
    );
    let cluster = format!("cluster=\"{}\"", op.cluster);
    assert!(
        op.metric_where(
            "botcluster_autoscaler_metric{",
            &format!("{cluster},metric=\"requestsPerMinute\"")
        )
        .await
            > 0.0
    );
    // Two readings a check interval apart make the first rate.
    assert!(
        reacted < Duration::from_secs(10),
        "reacted only after {reacted:?}"
    );
    eprintln!("reacted to requests in {reacted:?}");
    op.wait_for("3 instances ready", Duration::from_secs(600), || async {
        op.get().pointer("/status/readyReplicas") == Some(&Value::from(3))
    })
    .await;
    let (ok, failed) = client.finish().await;
    assert!(ok > 100, "the client barely ran ({ok} requests)");
    assert!(failed.is_empty(), "{failed:?}\n{}", op.log());
    op.delete_cluster();
}
