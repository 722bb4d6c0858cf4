//! Hostile numbers at `validate`: extreme `u32`/`u64` values in every field where a user number
//! meets another (sums, spans, durations) are refused or accepted, never a panic or a wrapped
//! value. A debug build panics on overflow, so each case here fails loudly before the fix.

use botcluster_api::quantity::MAX_CPUS;
use botcluster_api::validate::MAX_DURATION;
use botcluster_api::yaml::botcluster_from_value;
use proptest::prelude::*;
use serde_json::{json, Value};

fn base() -> Value {
    json!({
        "apiVersion": "botcluster.io/v1alpha1",
        "kind": "BotCluster",
        "metadata": {"name": "hostile"},
        "spec": {"image": "botcluster-botserver"}
    })
}

/// Numbers at the edges of every width, and some ordinary ones.
fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::from(u16::MAX)),
        Just(u64::from(u32::MAX) - 1),
        Just(u64::from(u32::MAX)),
        Just(u64::from(u32::MAX) + 1),
        Just(u64::MAX / 1000),
        Just(u64::MAX - 1),
        Just(u64::MAX),
        0u64..2000,
        any::<u64>(),
    ]
}

fn set(doc: &mut Value, pointer: &str, v: Value) {
    let mut cur = doc;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for p in &parts[..parts.len() - 1] {
        if cur.get(*p).is_none() {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    cur[parts[parts.len() - 1]] = v;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn extreme_numbers_never_panic_validation(
        replicas in extreme_u64(),
        surge in extreme_u64(),
        unavailable in extreme_u64(),
        port_start in extreme_u64(),
        port_end in extreme_u64(),
        cpu_a in extreme_u64(),
        cpu_b in extreme_u64(),
        cpu_n in extreme_u64(),
        secs in extreme_u64(),
        min_i in extreme_u64(),
        max_i in extreme_u64(),
        range_from in extreme_u64(),
        range_to in extreme_u64(),
        factor in extreme_u64(),
        autoscale in any::<bool>(),
        cpu_form in 0u8..3,
    ) {
        let mut doc = base();
        set(&mut doc, "/spec/replicas", json!(replicas));
        set(&mut doc, "/spec/updateStrategy/maxSurge", json!(surge));
        set(&mut doc, "/spec/updateStrategy/maxUnavailable", json!(unavailable));
        set(&mut doc, "/spec/hostPorts", json!({"start": port_start, "end": port_end}));
        let cpu = match cpu_form {
            0 => json!(format!("{cpu_a}-{cpu_b}")),
            1 => json!(format!("{cpu_a},{cpu_b}-{cpu_n},0-{cpu_b}")),
            _ => json!(cpu_n),
        };
        set(&mut doc, "/spec/resources/cpu", cpu);
        set(&mut doc, "/spec/autoscaling", json!({
            "enabled": autoscale, "minInstances": min_i, "maxInstances": max_i,
            "cooldown": secs, "checkInterval": format!("{secs}h"),
        }));
        set(&mut doc, "/spec/health/interval", json!(format!("{secs}ms")));
        set(&mut doc, "/spec/vectorDb", json!({
            "shardCount": factor, "replicationFactor": factor, "writeConsistencyFactor": factor,
        }));
        set(&mut doc, "/spec/sharding", json!({
            "strategy": "range",
            "range": {"key": "id", "ranges": [
                {"from": range_from, "to": range_to, "shard": "a"},
                {"from": range_to, "shard": "b"},
            ]},
        }));
        // Must not panic; when accepted, every derived number is what the spec says.
        if let Ok(bc) = botcluster_from_value(doc) {
            let s = &bc.spec;
            if let Some(cpu) = &s.resources.cpu {
                let n = cpu.count().expect("a validated CPU limit parses");
                prop_assert!((1..=MAX_CPUS).contains(&n), "{} CPUs from {}", n, cpu.as_str());
            }
            if let Some(r) = &s.host_ports {
                let size = u64::from(r.end) - u64::from(r.start) + 1;
                prop_assert!(size >= u64::from(s.replicas) + u64::from(s.update_strategy.max_surge));
            }
            prop_assert!(s.autoscaling.cooldown.get() <= MAX_DURATION);
            prop_assert!(s.health.interval.get() <= MAX_DURATION);
        }
    }
}

#[test]
fn a_cpu_set_spanning_every_u32_is_refused_not_counted_as_zero() {
    for cpu in [
        "0-4294967295",
        "0-4294967294,0-4294967294",
        "4294967295",
        "0-8192",
        "99999999999",
    ] {
        let mut doc = base();
        set(&mut doc, "/spec/resources/cpu", json!(cpu));
        let err = botcluster_from_value(doc).expect_err(cpu);
        assert!(
            err.0
                .iter()
                .any(|e| e.field == "spec.resources.cpu" && e.message.contains("8192")),
            "{cpu}: {err}"
        );
    }
    let mut doc = base();
    set(&mut doc, "/spec/resources/cpu", json!("0-8191"));
    let bc = botcluster_from_value(doc).expect("8192 CPUs is the most, and allowed");
    assert_eq!(bc.spec.resources.cpu.unwrap().count(), Ok(8192));
}

#[test]
fn a_max_surge_near_u32_max_is_refused_at_its_field() {
    let mut doc = base();
    set(
        &mut doc,
        "/spec/updateStrategy",
        json!({"maxSurge": u32::MAX, "maxUnavailable": 1}),
    );
    set(
        &mut doc,
        "/spec/hostPorts",
        json!({"start": 20000, "end": 20010}),
    );
    let err = botcluster_from_value(doc).expect_err("refused");
    assert!(
        err.0
            .iter()
            .any(|e| e.field == "spec.updateStrategy.maxSurge"),
        "{err}"
    );
    let mut doc = base();
    set(
        &mut doc,
        "/spec/updateStrategy",
        json!({"maxSurge": u32::MAX, "maxUnavailable": u32::MAX}),
    );
    let err = botcluster_from_value(doc).expect_err("refused");
    assert!(
        err.0
            .iter()
            .any(|e| e.field == "spec.updateStrategy.maxUnavailable"),
        "{err}"
    );
}

#[test]
fn durations_beyond_a_week_are_refused_saying_the_bound() {
    for (ptr, field, v) in [
        (
            "/spec/autoscaling/cooldown",
            "spec.autoscaling.cooldown",
            json!("100000000h"),
        ),
        (
            "/spec/autoscaling/cooldown",
            "spec.autoscaling.cooldown",
            json!(u64::MAX),
        ),
        ("/spec/health/timeout", "spec.health.timeout", json!("169h")),
        (
            "/spec/circuitBreaker/timeout",
            "spec.circuitBreaker.timeout",
            json!("18446744073709551615ms"),
        ),
    ] {
        let mut doc = base();
        set(&mut doc, ptr, v.clone());
        let err = botcluster_from_value(doc).expect_err(field);
        assert!(
            err.0
                .iter()
                .any(|e| e.field == field && e.message.contains("168h")),
            "{v}: {err}"
        );
    }
}

#[test]
fn gitsource_strings_get_the_same_length_and_control_character_rules() {
    use botcluster_api::gitsource::gitsource_from_value;
    let doc = |path: &str, url: &str| {
        json!({
            "apiVersion": "botcluster.io/v1alpha1",
            "kind": "GitSource",
            "metadata": {"name": "src"},
            "spec": {"url": url, "path": path}
        })
    };
    let err = gitsource_from_value(doc("bots\u{1b}[2J", "https://example.com/r.git")).unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|e| e.field == "spec.path" && e.message.contains("control character")),
        "{err}"
    );
    let long = format!("https://example.com/{}.git", "a".repeat(5000));
    let err = gitsource_from_value(doc("bots", &long)).unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|e| e.field == "spec.url" && e.message.contains("4096")),
        "{err}"
    );
}

#[test]
fn a_huge_shard_count_is_refused_without_building_the_shards() {
    let mut doc = base();
    set(
        &mut doc,
        "/spec/sharding",
        json!({"strategy": "hash", "hash": {"key": "user_id", "shardCount": u32::MAX}}),
    );
    let started = std::time::Instant::now();
    let err = botcluster_from_value(doc).expect_err("refused");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.0
            .iter()
            .any(|e| e.field == "spec.sharding.hash" && e.message.contains("1024")),
        "{err}"
    );
}
