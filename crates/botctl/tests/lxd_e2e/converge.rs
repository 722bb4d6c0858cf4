//! A cluster converges on real LXD (health through host ports, zero writes when nothing
//! changes, scale, limit change, drift put back, teardown), and after `kill -9` mid-convergence
//! a restarted operator converges with nothing duplicated.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::observe::{app_confs, health, host_ports, instance_urls};
use crate::operator::Operator;
use crate::support::lxd::force_delete;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_converges_scales_heals_and_goes_away_on_real_lxd() {
    let Some(op) = Operator::start("life").await else {
        return;
    };

    // 3 replicas: 3 containers running, each answering /api/health through its host port.
    op.apply("  replicas: 3\n  resources:\n    cpu: 1\n    memory: 128MiB\n");
    op.wait_ready();
    let obj = op.get();
    let urls = instance_urls(&obj);
    assert_eq!(urls.len(), 3, "{obj}");
    for u in &urls {
        let h = health(u)
            .await
            .unwrap_or_else(|| panic!("{u}/api/health does not answer"));
        assert_eq!(h["status"], "healthy");
        assert!(u.starts_with("http://127.0.0.1:"));
    }
    let c = op.containers().await;
    assert_eq!(c.iter().filter(|i| i.is_running()).count(), 3);
    assert!(c
        .iter()
        .all(|i| i.config.get("limits.memory").map(String::as_str) == Some("128MiB")));

    // Nothing changed: resyncs (every 1 s here) make zero writes to LXD.
    let before = op.lxd_writes().await;
    assert!(before > 0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        op.lxd_writes().await,
        before,
        "an unchanged cluster was written to\n{}",
        op.log()
    );

    // Scale to 5, then back to 2: all idle (equal load), so the highest ordinals go.
    op.apply("  replicas: 5\n  resources:\n    cpu: 1\n    memory: 128MiB\n");
    op.wait_ready();
    assert_eq!(op.containers().await.len(), 5);
    op.apply("  replicas: 2\n  resources:\n    cpu: 1\n    memory: 128MiB\n");
    op.wait_for("2 containers", Duration::from_secs(600), || async {
        op.containers().await.len() == 2
    })
    .await;
    op.wait_ready();
    let names: Vec<String> = op.containers().await.into_iter().map(|i| i.name).collect();
    assert_eq!(
        names,
        vec![format!("{}-0", op.cluster), format!("{}-1", op.cluster)]
    );

    // A limit changes in place.
    op.apply("  replicas: 2\n  resources:\n    cpu: 1\n    memory: 192MiB\n");
    op.wait_for(
        "limits.memory=192MiB in LXD",
        Duration::from_secs(30),
        || async {
            op.containers()
                .await
                .iter()
                .all(|i| i.config.get("limits.memory").map(String::as_str) == Some("192MiB"))
        },
    )
    .await;

    // A container deleted by hand comes back.
    let victim = format!("{}-1", op.cluster);
    force_delete(&op.lxd, &victim).await;
    op.wait_for(
        "the deleted container to come back running",
        Duration::from_secs(600),
        || async {
            op.containers()
                .await
                .iter()
                .any(|i| i.name == victim && i.is_running())
        },
    )
    .await;
    op.wait_ready();
    // A proxy device removed by hand comes back too.
    let (inst, _) = op
        .lxd
        .get_instance(&format!("{}-0", op.cluster))
        .await
        .unwrap();
    let mut put = lxd_client::InstancePut::from(&inst);
    put.devices.remove("botcluster-http");
    op.lxd.put_instance(&inst.name, &put, None).await.unwrap();
    op.wait_for(
        "the proxy device to be restored",
        Duration::from_secs(30),
        || async {
            op.lxd
                .get_instance(&inst.name)
                .await
                .is_ok_and(|(i, _)| i.devices.contains_key("botcluster-http"))
        },
    )
    .await;

    // Delete the cluster: nothing of it remains.
    op.delete_cluster();
    assert!(op.containers().await.is_empty());
    assert_eq!(op.botctl(&["get", &op.cluster]).status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_convergence_then_restart_converges_with_nothing_duplicated() {
    let Some(mut op) = Operator::start("crash").await else {
        return;
    };
    op.apply("  replicas: 4\n  files:\n    - path: /etc/botserver/app.conf\n      content: \"mode=crash-test\\n\"\n");
    op.wait_for(
        "the first container to appear",
        Duration::from_secs(30),
        || async { !op.containers().await.is_empty() },
    )
    .await;
    op.kill_9();
    let seen = op.containers().await.len();
    op.spawn();
    op.wait_ready();
    let c = op.containers().await;
    let names: BTreeSet<String> = c.iter().map(|i| i.name.clone()).collect();
    let want: BTreeSet<String> = (0..4).map(|n| format!("{}-{n}", op.cluster)).collect();
    assert_eq!(names, want, "killed with {seen} containers present");
    let uids: BTreeSet<&str> = c
        .iter()
        .filter_map(|i| i.config.get("user.botcluster.uid").map(String::as_str))
        .collect();
    assert_eq!(uids.len(), 1, "containers from two incarnations");
    assert_eq!(host_ports(&c).len(), 4, "host ports must be unique");
    for conf in app_confs(&op.get()).await {
        assert_eq!(
            conf, "mode=crash-test\n",
            "files must be pushed even after a crash"
        );
    }
    op.delete_cluster();
}
