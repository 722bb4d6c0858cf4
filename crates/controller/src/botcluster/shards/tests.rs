//! Unit tests of the shard sub-resource's pure parts.
use super::*;

#[test]
fn passwords_are_cut_from_urls() {
    assert_eq!(
        without_password("postgres://u:secret@127.0.0.1:5432/postgres"),
        "postgres://u@127.0.0.1:5432/postgres"
    );
    assert_eq!(without_password("postgres://h/db"), "postgres://h/db");
}

fn tenant_spec(tenants: &[&str], policy: DeletePolicy) -> Sharding {
    serde_json::from_value(serde_json::json!({
        "strategy": "tenant",
        "tenant": {"tenants": tenants, "deletePolicy": match policy {
            DeletePolicy::Retain => "Retain", DeletePolicy::Delete => "Delete" }},
    }))
    .unwrap()
}

fn db(name: &str, comment: Option<&str>) -> pg_client::Database {
    pg_client::Database {
        name: name.into(),
        comment: comment.map(String::from),
    }
}

#[test]
fn a_removed_tenant_keeps_its_database_and_strangers_are_never_dropped() {
    let mark = ownership_comment("c");
    let observed: DbObservation = Some(Ok(vec![
        db("gb_tenant_acme", Some(&mark)),
        db("gb_tenant_gone", Some(&mark)),
        db("gb_tenant_other", Some("someone else's")),
        db("postgres", None),
    ]));
    let sh = tenant_spec(&["acme", "globex"], DeletePolicy::Retain);
    let p = plan_tenants("c", &sh, Some("h:1".into()), &observed).unwrap();
    assert_eq!(p.create, vec!["gb_tenant_globex"]);
    assert_eq!(p.ready, vec!["gb_tenant_acme"]);
    assert_eq!(p.retained, vec!["gb_tenant_gone"]);
    assert!(p.drop.is_empty());
    let sh = tenant_spec(&["acme"], DeletePolicy::Delete);
    let p = plan_tenants("c", &sh, Some("h:1".into()), &observed).unwrap();
    assert_eq!(
        p.drop,
        vec!["gb_tenant_gone"],
        "only ours, never a stranger's"
    );
}

#[test]
fn no_server_is_a_condition_that_says_what_to_pass() {
    let spec: BotClusterSpec = serde_json::from_value(serde_json::json!({
        "image": "x",
        "sharding": {"strategy": "tenant", "tenant": {"tenants": ["acme"]}},
    }))
    .unwrap();
    let p = plan("c", &spec, &BotClusterStatus::default(), None, None, &None);
    let mut status = BotClusterStatus::default();
    report(
        &mut status,
        &BotClusterStatus::default(),
        &p,
        &DbOutcome::default(),
        true,
        "now",
        1,
    );
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == SHARDS_READY)
        .unwrap();
    assert_eq!(c.reason, "PostgresNotConfigured");
    assert!(c.message.contains("--postgres"), "{}", c.message);
}

fn hash_spec(algorithm: &str, count: u32) -> BotClusterSpec {
    serde_json::from_value(serde_json::json!({
        "image": "x",
        "sharding": {"strategy": "hash",
            "hash": {"key": "user_id", "algorithm": algorithm, "shardCount": count}},
    }))
    .unwrap()
}

/// What `botctl diff` says of 4 → 5 shards: ~80 % under modulo, ~20 % with slots.
#[test]
fn a_diff_of_four_to_five_shards_says_how_much_moves() {
    for (algorithm, moved) in [("modulo", "80.0 %"), ("slots", "19.9 %")] {
        let first = plan(
            "c",
            &hash_spec(algorithm, 4),
            &BotClusterStatus::default(),
            None,
            None,
            &None,
        );
        let mut status = BotClusterStatus::default();
        report(
            &mut status,
            &BotClusterStatus::default(),
            &first,
            &DbOutcome::default(),
            true,
            "t",
            1,
        );
        let next = plan("c", &hash_spec(algorithm, 5), &status, None, None, &None);
        let (actions, notes) = describe(&next, &status);
        assert!(
            actions.is_empty(),
            "nothing is published before approval: {actions:?}"
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains("waits for approval") && n.contains(moved)),
            "{algorithm}: {notes:?}"
        );
        assert_eq!(next.in_force.as_ref().map(|m| m.version), Some(1));
    }
}
