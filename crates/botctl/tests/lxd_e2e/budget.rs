//! Actions slower than the pass's budget run on in the background while status says so,
//! and nothing is duplicated.

use std::time::Duration;

use crate::observe::{app_confs, condition, host_ports};
use crate::operator::Operator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_slower_than_the_budget_run_on_while_status_says_so_and_nothing_is_duplicated() {
    let Some(mut op) = Operator::start("budget").await else {
        return;
    };
    // A budget far below a container start: every batch goes on in the background.
    op.kill_9();
    op.extra_args = vec!["--action-budget".into(), "50ms".into()];
    op.spawn();
    op.apply("  replicas: 3\n  files:\n    - path: /etc/botserver/app.conf\n      content: \"mode=budget\\n\"\n");
    op.wait_for(
        "status to say actions are still running",
        Duration::from_secs(60),
        || async {
            condition(&op.get(), "Progressing").is_some_and(|c| {
                c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("still running: create"))
            })
        },
    )
    .await;
    op.wait_ready();
    let c = op.containers().await;
    assert_eq!(
        c.len(),
        3,
        "{:?}",
        c.iter().map(|i| &i.name).collect::<Vec<_>>()
    );
    assert_eq!(host_ports(&c).len(), 3, "host ports must be unique");
    for conf in app_confs(&op.get()).await {
        assert_eq!(conf, "mode=budget\n", "files pushed by a background batch");
    }
    // Ready can come before the batch ends (LXD's start operation returns about a second
    // after the container serves): the batch's end must trigger a pass that reports it.
    op.wait_for(
        "the background batch's outcome in status",
        Duration::from_secs(120),
        || async {
            condition(&op.get(), "Progressing").is_some_and(|c| c["reason"] == "Converged")
        },
    )
    .await;
    let events =
        String::from_utf8_lossy(&op.botctl(&["status", &op.cluster, "--events", "50"]).stdout)
            .to_string();
    // Each create is reported: done, or failed (LXD 5.0.2 sometimes fails a start after a
    // long hang) and then finished by a later pass's start.
    for i in &c {
        let said = |reason: &str, what: String| {
            events
                .lines()
                .any(|l| l.contains(reason) && l.contains(&what))
        };
        let created = said(" Created ", format!(" create {} ", i.name));
        let finished = said(" Started ", format!(" start {}", i.name));
        assert!(created || finished, "no event for {}:\n{events}", i.name);
    }
    op.delete_cluster();
}
