//! An unhealthy container is restarted and back in rotation with no failed requests.

use std::time::Duration;

use serde_json::Value;
use test_support::free_port;

use crate::lb::SteadyClient;
use crate::operator::Operator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_container_is_restarted_and_back_in_rotation_with_no_failed_requests() {
    let Some(op) = Operator::start_with("heal", true).await else {
        return;
    };
    let lb_port = free_port();
    op.apply(&format!(
        "  replicas: 2\n  health:\n    interval: 1s\n    timeout: 1s\n    retries: 2\n  loadBalancer:\n    listen: 127.0.0.1:{lb_port}\n    healthCheck: {{uri: /api/health, interval: 1s, timeout: 1s}}\n    routes:\n      - name: all\n        tryDuration: 5s\n"
    ));
    op.wait_ready();
    let url = op.lb_url();
    let victim = format!("{}-0", op.cluster);
    let victim_url = op
        .get()
        .pointer("/status/instances")
        .and_then(Value::as_array)
        .and_then(|is| {
            is.iter()
                .find(|i| i["name"] == victim.as_str())
                .and_then(|i| i["url"].as_str().map(str::to_string))
        })
        .unwrap();
    let client = SteadyClient::start(&url, Duration::from_millis(50));
    // The botserver in one container stops answering its health checks.
    reqwest::Client::new()
        .post(format!("{victim_url}/sim/unhealthy"))
        .send()
        .await
        .unwrap();
    op.wait_for(
        "an Unhealthy event and a restart",
        Duration::from_secs(90),
        || async {
            let ev = String::from_utf8_lossy(
                &op.botctl(&["status", &op.cluster, "--events", "50"]).stdout,
            )
            .to_string();
            ev.contains("Unhealthy") && ev.contains("Restarted")
        },
    )
    .await;
    // Restarted, the botserver is healthy again, and back in the pool.
    op.wait_for(
        "the restarted instance back in rotation",
        Duration::from_secs(90),
        || async {
            let o = op.get();
            o.pointer("/status/readyReplicas") == Some(&Value::from(2))
                && o.pointer("/status/proxy/upstreams")
                    .and_then(Value::as_array)
                    .is_some_and(|u| u.len() == 2)
        },
    )
    .await;
    let (ok, failed) = client.finish().await;
    assert!(ok > 20, "the client barely ran");
    assert!(
        failed.is_empty(),
        "{} requests failed: {failed:?}\n{}",
        failed.len(),
        op.log()
    );
    op.delete_cluster();
}
