//! Through a real Caddy: round robin, cookie stickiness, an unhealthy instance out and back,
//! zero pushes when nothing changes, other sites untouched, and a scale-down drains before
//! stopping with no failed requests.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use test_support::free_port;

use crate::lb::{lb_spec, via_lb, who_answers, AdminClient, SteadyClient};
use crate::observe::instance_urls;
use crate::operator::Operator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_balances_sticks_heals_and_leaves_other_sites_alone() {
    let Some(op) = Operator::start_with("lb", true).await else {
        return;
    };
    let caddy = op.caddy.as_ref().unwrap().client();
    // A user's own site in the same Caddy.
    let site_port = free_port();
    let site = serde_json::json!({
        "listen": [format!("127.0.0.1:{site_port}")],
        "automatic_https": {"disable": true},
        "routes": [{"handle": [{"handler": "static_response", "body": "mine"}]}]
    });
    caddy.ensure_server("mysite", &site).await.unwrap();

    let lb_port = free_port();
    op.apply(&lb_spec(3, lb_port, "round_robin"));
    op.wait_ready();
    let url = op.lb_url();
    assert_eq!(url, format!("http://127.0.0.1:{lb_port}"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap();
    let mut seen = BTreeSet::new();
    for _ in 0..12 {
        seen.insert(via_lb(&http, &url, None).await.unwrap().0);
    }
    let want: BTreeSet<String> = (0..3).map(|n| format!("{}-{n}", op.cluster)).collect();
    assert_eq!(seen, want, "round_robin must reach all 3");

    // Unchanged: resyncs every second push nothing.
    let pushes = op.metric("botcluster_proxy_config_pushes_total").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        op.metric("botcluster_proxy_config_pushes_total").await,
        pushes,
        "an unchanged cluster pushed config\n{}",
        op.log()
    );

    // A second cluster with sticky cookies, in the same Caddy.
    let other = format!("{}-b", op.cluster);
    let other_port = free_port();
    op.apply_named(&other, &lb_spec(2, other_port, "cookie"));
    let o = op.botctl(&[
        "wait",
        &other,
        "--for",
        "condition=Ready",
        "--timeout",
        "600s",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let other_url = format!("http://127.0.0.1:{other_port}");
    let (first, cookie) = via_lb(&http, &other_url, None).await.unwrap();
    let cookie = cookie.expect("the cookie policy sets a cookie");
    for _ in 0..10 {
        assert_eq!(
            via_lb(&http, &other_url, Some(&cookie)).await.unwrap().0,
            first,
            "cookie must keep the client on one container"
        );
    }
    let other_server = caddy
        .server(&format!("botcluster-{other}"))
        .await
        .unwrap()
        .unwrap()
        .0;

    // One instance turns unhealthy: it leaves rotation, then comes back.
    let victim = format!("{}-1", op.cluster);
    let victim_url = instance_urls(&op.get())
        .into_iter()
        .find(|u| {
            op.get()
                .pointer("/status/instances")
                .and_then(Value::as_array)
                .is_some_and(|is| {
                    is.iter()
                        .any(|i| i["name"] == victim.as_str() && i["url"] == u.as_str())
                })
        })
        .unwrap();
    http.post(format!("{victim_url}/sim/unhealthy"))
        .send()
        .await
        .unwrap();
    op.wait_for(
        "the unhealthy instance to leave rotation",
        Duration::from_secs(600),
        || async {
            let hits = who_answers(&http, &url, 9).await;
            !hits.contains(&victim) && hits.len() == 2
        },
    )
    .await;
    // The operator may already be restarting it (health.retries is 1 here): then the
    // request has nothing to reach, which is fine.
    let _ = http.post(format!("{victim_url}/sim/healthy")).send().await;
    op.wait_for(
        "the healed instance to return",
        Duration::from_secs(600),
        || async {
            let hits = who_answers(&http, &url, 9).await;
            hits.contains(&victim)
        },
    )
    .await;

    // A hand edit of our server in Caddy is reverted.
    let ours = format!("botcluster-{}", op.cluster);
    let (before, _) = caddy.server(&ours).await.unwrap().unwrap();
    caddy
        .patch_config(
            &format!("apps/http/servers/{ours}/routes"),
            &serde_json::json!([]),
            None,
        )
        .await
        .unwrap();
    op.wait_for(
        "the hand edit to be reverted",
        Duration::from_secs(30),
        || async {
            caddy
                .server(&ours)
                .await
                .ok()
                .flatten()
                .is_some_and(|(v, _)| caddy_client::semantically_equal(&v, &before))
        },
    )
    .await;

    // Through all of it, the user's site and the other cluster's server were left alone.
    let (site_now, _) = caddy.server("mysite").await.unwrap().unwrap();
    assert!(caddy_client::semantically_equal(&site_now, &site));
    assert_eq!(
        reqwest::get(format!("http://127.0.0.1:{site_port}/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "mine"
    );
    let (other_now, _) = caddy
        .server(&format!("botcluster-{other}"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        caddy_client::semantically_equal(&other_now, &other_server),
        "the second cluster's server changed"
    );

    for c in [&op.cluster, &other] {
        let o = op.botctl(&["delete", c, "--wait", "--timeout", "600s"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(
        caddy.server(&ours).await.unwrap().is_none(),
        "our server must go with the cluster"
    );
    assert!(caddy.server("mysite").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_drains_before_stopping_with_no_failed_requests() {
    let Some(op) = Operator::start_with("drain", true).await else {
        return;
    };
    let lb_port = free_port();
    op.apply(&lb_spec(3, lb_port, "round_robin"));
    op.wait_ready();
    let url = op.lb_url();
    let client = SteadyClient::start(&url, Duration::from_millis(20));
    tokio::time::sleep(Duration::from_secs(1)).await;
    op.apply(&lb_spec(1, lb_port, "round_robin"));
    op.wait_for("one container left", Duration::from_secs(120), || async {
        op.containers().await.len() == 1
    })
    .await;
    op.wait_ready();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok, failed) = client.finish().await;
    assert!(ok > 50, "the client barely ran ({ok} requests)");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during scale-down: {:?}\n{}",
        failed.len(),
        ok as usize + failed.len(),
        failed,
        op.log()
    );
    let events =
        String::from_utf8_lossy(&op.botctl(&["status", &op.cluster, "--events", "50"]).stdout)
            .to_string();
    assert!(events.contains("Drained"), "{events}");
    op.delete_cluster();
}
