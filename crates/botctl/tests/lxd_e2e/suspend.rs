//! A suspended cluster is reported, not changed, and `diff` shows what resuming would do.

use std::time::Duration;

use serde_json::Value;

use crate::observe::condition;
use crate::operator::Operator;
use crate::support::lxd::force_delete;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_cluster_is_reported_not_changed_and_diff_shows_what_resuming_would_do() {
    let Some(op) = Operator::start("suspend").await else {
        return;
    };
    op.apply("  replicas: 2\n");
    op.wait_ready();
    op.apply("  replicas: 2\n  suspend: true\n");
    op.wait_for(
        "the Suspended condition",
        Duration::from_secs(60),
        || async { condition(&op.get(), "Suspended").is_some_and(|c| c["status"] == "True") },
    )
    .await;
    // Deleted by hand while suspended: reported, not recreated.
    let victim = format!("{}-1", op.cluster);
    force_delete(&op.lxd, &victim).await;
    op.wait_for(
        "status to see one instance",
        Duration::from_secs(60),
        || async { op.get().pointer("/status/replicas") == Some(&Value::from(1)) },
    )
    .await;
    let writes = op.lxd_writes().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(op.containers().await.len(), 1, "recreated while suspended");
    assert_eq!(op.lxd_writes().await, writes, "LXD writes while suspended");
    let s = condition(&op.get(), "Suspended").unwrap_or(Value::Null);
    assert!(
        s["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("create {victim}"))),
        "{s}"
    );
    // diff of the same (suspended) spec: the spec is unchanged, the plan is not empty.
    let file = op.dir.path().join("cluster.yaml");
    let d = op.botctl(&["diff", "-f", file.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&d.stdout).to_string();
    assert_eq!(d.status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("create {victim}")), "{out}");
    // Resumed: converges.
    op.apply("  replicas: 2\n  suspend: false\n");
    op.wait_ready();
    assert_eq!(op.containers().await.len(), 2);
    assert!(condition(&op.get(), "Suspended").is_none());
    op.delete_cluster();
}
