//! A hand-made container whose name collides with the cluster's is left alone and reported.

use std::time::Duration;

use lxd_client::{InstanceSource, InstancesPost};
use serde_json::Value;

use crate::operator::Operator;
use crate::support::image;
use crate::support::lxd::force_delete;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_made_container_with_a_colliding_name_is_left_alone_and_reported() {
    let Some(op) = Operator::start("clash").await else {
        return;
    };
    let squatter = format!("{}-1", op.cluster);
    op.lxd
        .create_instance(&InstancesPost {
            name: squatter.clone(),
            source: InstanceSource::image_alias(image()),
            ..Default::default()
        })
        .await
        .unwrap();
    let (before, _) = op.lxd.get_instance(&squatter).await.unwrap();
    op.apply("  replicas: 2\n");
    op.wait_for(
        "a NameConflict condition",
        Duration::from_secs(600),
        || async {
            let o = op.get();
            o.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["type"] == "Degraded"
                            && c["reason"]
                                .as_str()
                                .is_some_and(|r| r.contains("NameConflict"))
                    })
                })
                // The cluster still gets its 2, under the next free name.
                && o.pointer("/status/readyReplicas") == Some(&Value::from(2))
        },
    )
    .await;
    let names: Vec<String> = op.containers().await.into_iter().map(|i| i.name).collect();
    assert_eq!(
        names,
        vec![
            format!("{}-0", op.cluster),
            squatter.clone(),
            format!("{}-2", op.cluster)
        ]
    );
    let status = String::from_utf8_lossy(&op.botctl(&["status", &op.cluster]).stdout).to_string();
    assert!(
        status.contains(&squatter) && status.contains("NameConflict"),
        "{status}"
    );
    let (after, _) = op.lxd.get_instance(&squatter).await.unwrap();
    assert_eq!(
        after.config, before.config,
        "the hand-made container was changed"
    );
    assert!(!after
        .config
        .keys()
        .any(|k| k.starts_with("user.botcluster")));
    op.delete_cluster();
    assert!(
        op.lxd.get_instance(&squatter).await.is_ok(),
        "the hand-made container was deleted"
    );
    force_delete(&op.lxd, &squatter).await;
}
