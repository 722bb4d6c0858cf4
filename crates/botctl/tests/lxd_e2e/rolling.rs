//! A rolling update surges with no failed requests; a broken one stalls with the old containers
//! serving (`RolloutStalled`), and going back to the previous spec makes the cluster whole.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use test_support::free_port;

use crate::lb::SteadyClient;
use crate::observe::condition;
use crate::operator::Operator;
use crate::support::image;
use crate::support::lxd::lxc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_surges_without_failed_requests_and_a_broken_one_stalls() {
    let Some(op) = Operator::start_with("roll", true).await else {
        return;
    };
    let lb_port = free_port();
    let spec = format!(
        "  replicas: 2\n  updateStrategy: {{maxUnavailable: 0, maxSurge: 1}}\n  health:\n    interval: 1s\n    timeout: 1s\n    retries: 2\n  loadBalancer:\n    listen: 127.0.0.1:{lb_port}\n    healthCheck: {{uri: /api/health, interval: 1s, timeout: 1s}}\n    routes:\n      - name: all\n        tryDuration: 5s\n"
    );
    op.apply(&spec);
    op.wait_ready();
    let client = SteadyClient::start(&op.lb_url(), Duration::from_millis(50));
    let template = |i: &lxd_client::Instance| i.config.get("user.botcluster.template").cloned();
    let old: BTreeSet<Option<String>> = op.containers().await.iter().map(template).collect();

    // Same image, named by fingerprint: a new template, so every container is replaced.
    // maxUnavailable 0 + maxSurge 1: one new container beside the old ones at a time.
    let fp = op.lxd.get_image_alias(&image()).await.unwrap().target[..12].to_string();
    op.apply_image(&fp, &spec);
    let most = std::sync::atomic::AtomicUsize::new(0);
    let caught_up =
        |o: &Value| o.pointer("/metadata/generation") == o.pointer("/status/observedGeneration");
    op.wait_for(
        "the rollout to finish",
        Duration::from_secs(600),
        || async {
            let n = op.containers().await.len();
            most.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
            let o = op.get();
            caught_up(&o)
                && o.pointer("/status/updatedReplicas") == Some(&Value::from(2))
                && o.pointer("/status/readyReplicas") == Some(&Value::from(2))
                && n == 2
        },
    )
    .await;
    let now: Vec<Option<String>> = op.containers().await.iter().map(template).collect();
    assert!(
        now.iter().all(|t| !old.contains(t)),
        "not all replaced: {now:?}"
    );
    assert_eq!(
        most.load(std::sync::atomic::Ordering::Relaxed),
        3,
        "maxSurge 1 means exactly one extra container during the rollout"
    );

    // A profile that makes the botserver listen where the proxy device does not look: the
    // new container never passes a health check, so the rollout stops with a condition and
    // the old containers keep serving.
    let profile = format!("{}-broken", op.cluster);
    assert!(lxc(&["profile", "create", &profile]).status.success());
    assert!(lxc(&[
        "profile",
        "set",
        &profile,
        "environment.BOTSERVER_LISTEN",
        "127.0.0.1:9999"
    ])
    .status
    .success());
    op.apply_image(&fp, &format!("{spec}  profiles: [default, {profile}]\n"));
    op.wait_for("RolloutStalled", Duration::from_secs(600), || async {
        let o = op.get();
        caught_up(&o)
            && condition(&o, "Progressing")
                .is_some_and(|c| c["reason"] == "RolloutStalled" && c["status"] == "False")
    })
    .await;
    let o = op.get();
    let degraded = condition(&o, "Degraded").unwrap();
    assert_eq!(degraded["status"], "True", "{degraded}");
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .contains("never passed a health check"),
        "{degraded}"
    );
    assert_eq!(
        o.pointer("/status/readyReplicas"),
        Some(&Value::from(2)),
        "{o}"
    );
    assert_eq!(
        o.pointer("/status/updatedReplicas"),
        Some(&Value::from(1)),
        "{o}"
    );
    // What the RolloutStalled alert (manifests/prometheus/alerts.yml) watches.
    let cluster = format!("cluster=\"{}\"", op.cluster);
    assert_eq!(
        op.metric_where("botcluster_rollout_stalled{", &cluster)
            .await,
        1.0
    );
    assert_eq!(
        op.metric_where("botcluster_updated_instances{", &cluster)
            .await,
        1.0
    );
    // It stays stopped: nothing more is replaced while the spec is unchanged.
    let writes = op.lxd_writes().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        op.lxd_writes().await,
        writes,
        "a stalled rollout kept acting\n{}",
        op.log()
    );

    // Back to the previous spec: the broken container goes, the cluster is whole again.
    op.apply_image(&fp, &spec);
    op.wait_for("the rollback", Duration::from_secs(600), || async {
        let o = op.get();
        caught_up(&o)
            && condition(&o, "Ready").is_some_and(|c| c["status"] == "True")
            && o.pointer("/status/updatedReplicas") == Some(&Value::from(2))
            && op.containers().await.len() == 2
    })
    .await;
    assert_eq!(
        op.metric_where("botcluster_rollout_stalled{", &cluster)
            .await,
        0.0
    );
    let (ok, failed) = client.finish().await;
    assert!(ok > 50, "the client barely ran ({ok} requests)");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the rollouts: {failed:?}\n{}",
        failed.len(),
        ok as usize + failed.len(),
        op.log()
    );
    op.delete_cluster();
    assert!(lxc(&["profile", "delete", &profile]).status.success());
}
