//! Property tests of the planner: generated specs × generated observed states.

use std::collections::{BTreeMap, BTreeSet};

use botcluster_api::spec::BotClusterSpec;
use botcluster_controller::model::*;
use botcluster_controller::plan::*;
use proptest::prelude::*;

const UID: &str = "uid-1";
const NAME: &str = "web";

fn spec(image: &str, cpu: Option<u32>, max_unavailable: u32, files: bool) -> BotClusterSpec {
    spec_surge(image, cpu, max_unavailable, 1, files)
}

fn spec_surge(
    image: &str,
    cpu: Option<u32>,
    max_unavailable: u32,
    max_surge: u32,
    files: bool,
) -> BotClusterSpec {
    let mut v = serde_json::json!({"image": image, "updateStrategy": {"maxUnavailable": max_unavailable, "maxSurge": max_surge}});
    if let Some(c) = cpu {
        v["resources"] = serde_json::json!({"cpu": c, "memory": "256MiB"});
    }
    if files {
        v["files"] = serde_json::json!([{"path": "/etc/botserver/a.conf", "content": "x"}]);
    }
    serde_json::from_value(v).unwrap()
}

fn pool() -> PortPool {
    PortPool {
        start: 20000,
        end: 20999,
        taken: BTreeSet::new(),
    }
}

#[derive(Clone, Debug)]
enum Gen {
    Mine {
        ord: u32,
        running: bool,
        ready: bool,
        old_image: bool,
        drift_cpu: bool,
        drop_proxy: bool,
        stale_files: bool,
        sick: u8,
        load: u8,
    },
    Stranger {
        ord: u32,
    },
    OtherCluster {
        name: String,
    },
}

fn gen_instance() -> impl Strategy<Value = Gen> {
    prop_oneof![
        6 => (0u32..12, any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), 0u8..6, 0u8..100).prop_map(
            |(ord, running, ready, old_image, drift_cpu, drop_proxy, stale_files, sick, load)| Gen::Mine { ord, running, ready, old_image, drift_cpu, drop_proxy, stale_files, sick, load }
        ),
        1 => (0u32..12).prop_map(|ord| Gen::Stranger { ord }),
        1 => "[a-z]{1,4}-[0-9]".prop_map(|name| Gen::OtherCluster { name }),
    ]
}

/// Builds observed instances as an earlier plan would have left them, then damages them.
fn build(gens: &[Gen], s: &BotClusterSpec) -> Vec<ObservedInstance> {
    let caps = Capabilities::default();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for g in gens {
        match g {
            Gen::Mine {
                ord,
                running,
                ready,
                old_image,
                drift_cpu,
                drop_proxy,
                stale_files,
                sick,
                load,
            } => {
                let name = instance_name(NAME, *ord);
                if !seen.insert(name.clone()) {
                    continue;
                }
                let old = spec(
                    if *old_image { "old-image" } else { &s.image },
                    s.resources.cpu.as_ref().map(|c| c.count().unwrap()),
                    1,
                    !s.files.is_empty(),
                );
                let d = Desired {
                    name: NAME,
                    uid: UID,
                    spec: if *old_image { &old } else { s },
                    replicas: ord + 1,
                    deleting: false,
                };
                let mut p = plan(
                    &d,
                    &[],
                    &caps,
                    &PortPool {
                        start: 20000 + *ord as u16 * 2,
                        end: 20999,
                        taken: BTreeSet::new(),
                    },
                );
                let Some(Action::Create(mut n)) = p.actions.pop() else {
                    panic!("expected a create")
                };
                if *drift_cpu {
                    n.config.insert("limits.cpu".into(), "7".into());
                }
                if *drop_proxy {
                    n.devices.remove(PROXY_DEVICE);
                }
                if *stale_files {
                    n.config.insert(KEY_FILES.into(), "stale".into());
                }
                out.push(ObservedInstance {
                    name: n.name,
                    running: *running,
                    status: if *running {
                        "Running".into()
                    } else {
                        "Stopped".into()
                    },
                    config: n.config,
                    devices: n.devices,
                    ready: *running && *ready && *sick == 0,
                    // The reconciler's verdict after failed health checks (mostly healthy).
                    unhealthy: match sick {
                        4 => Unhealthy::Restart,
                        5 => Unhealthy::Replace,
                        _ => Unhealthy::No,
                    },
                    busy: false,
                    load: Some(f64::from(*load)),
                });
            }
            Gen::Stranger { ord } => {
                let name = instance_name(NAME, *ord);
                if !seen.insert(name.clone()) {
                    continue;
                }
                out.push(ObservedInstance {
                    name,
                    running: true,
                    status: "Running".into(),
                    config: BTreeMap::new(),
                    devices: BTreeMap::new(),
                    ready: true,
                    ..Default::default()
                });
            }
            Gen::OtherCluster { name } => {
                if !seen.insert(name.clone()) || cluster_of(name) == Some(NAME) {
                    continue;
                }
                let mut config = BTreeMap::new();
                config.insert(KEY_UID.into(), "someone-else".into());
                config.insert(KEY_CLUSTER.into(), cluster_of(name).unwrap_or("x").into());
                out.push(ObservedInstance {
                    name: name.clone(),
                    running: true,
                    status: "Running".into(),
                    config,
                    devices: BTreeMap::new(),
                    ready: true,
                    ..Default::default()
                });
            }
        }
    }
    out
}

fn is_mine(o: &ObservedInstance) -> bool {
    o.config.get(KEY_UID).map(String::as_str) == Some(UID)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Applying plans converges: within replicas+3 rounds the plan is empty, and the result
    /// has exactly `replicas` instances of ours, none under a name held by someone else, all
    /// running the current spec on distinct ports.
    #[test]
    fn plans_converge_and_then_stay_empty(
        gens in proptest::collection::vec(gen_instance(), 0..14),
        replicas in 0u32..10,
        cpu in proptest::option::of(1u32..4),
        max_unavailable in 0u32..3,
        max_surge in 0u32..3,
        files in any::<bool>(),
    ) {
        prop_assume!(max_unavailable + max_surge > 0);
        let s = spec_surge("img-2", cpu, max_unavailable, max_surge, files);
        let d = Desired { name: NAME, uid: UID, spec: &s, replicas, deleting: false };
        let caps = Capabilities::default();
        let mut obs = build(&gens, &s);
        let mut rounds = 0;
        loop {
            let p = plan(&d, &obs, &caps, &pool());
            if p.is_empty() && p.pending_replacements == 0 { break; }
            obs = simulate(&obs, &p.actions);
            // Time passes between passes: running instances pass their probes, which clears
            // the health verdicts. (One that never gets ready stalls a rollout, on purpose.)
            for o in &mut obs {
                o.ready = o.running;
                if o.ready {
                    o.unhealthy = Unhealthy::No;
                }
            }
            rounds += 1;
            prop_assert!(rounds <= replicas + 3, "did not converge: {:?}", p.actions);
        }
        let strangers: BTreeSet<String> = obs.iter().filter(|o| !is_mine(o) && ordinal_of(NAME, &o.name).is_some()).map(|o| o.name.clone()).collect();
        let mine: Vec<&ObservedInstance> = obs.iter().filter(|o| is_mine(o)).collect();
        prop_assert_eq!(mine.len() as u32, replicas);
        for o in &mine {
            prop_assert!(!strangers.contains(&o.name));
            prop_assert_eq!(ordinal_of(NAME, &o.name), o.ordinal());
        }
        let ports: BTreeSet<u16> = mine.iter().filter_map(|o| o.host_port()).collect();
        prop_assert_eq!(ports.len(), mine.len(), "host ports must be unique");
        for o in mine {
            prop_assert!(o.running);
            prop_assert_eq!(o.config.get(KEY_TEMPLATE), Some(&template_hash(&s)));
        }
        // And once converged, planning again is still empty (zero writes).
        prop_assert!(plan(&d, &obs, &caps, &pool()).is_empty());
    }

    /// Instances without our ownership keys are never touched.
    #[test]
    fn unmanaged_instances_are_never_in_a_plan(
        gens in proptest::collection::vec(gen_instance(), 0..14),
        replicas in 0u32..10,
        deleting in any::<bool>(),
    ) {
        let s = spec("img-2", Some(2), 1, true);
        let d = Desired { name: NAME, uid: UID, spec: &s, replicas, deleting };
        let obs = build(&gens, &s);
        let foreign: BTreeSet<&str> = obs.iter().filter(|o| !is_mine(o)).map(|o| o.name.as_str()).collect();
        let p = plan(&d, &obs, &Capabilities::default(), &pool());
        for a in &p.actions {
            prop_assert!(!foreign.contains(a.instance()), "touched {}: {:?}", a.instance(), a);
        }
        if deleting {
            let only_deletes = p.actions.iter().all(|a| matches!(a, Action::Delete { .. }));
            prop_assert!(only_deletes, "teardown planned more than deletes");
            prop_assert!(simulate(&obs, &p.actions).iter().all(|o| !is_mine(o)));
        }
    }

    /// Apart from the scale-down the spec asks for, a plan keeps at least
    /// `replicas - maxUnavailable` instances available (or all that were, if fewer), and
    /// creates nothing beyond `replicas + maxSurge`.
    #[test]
    fn a_plan_never_drops_below_the_allowed_availability(
        gens in proptest::collection::vec(gen_instance(), 0..14),
        replicas in 0u32..10,
        max_unavailable in 0u32..3,
        max_surge in 0u32..3,
    ) {
        let s = spec_surge("img-2", Some(2), max_unavailable, max_surge, false);
        let d = Desired { name: NAME, uid: UID, spec: &s, replicas, deleting: false };
        let obs = build(&gens, &s);
        let p = plan(&d, &obs, &Capabilities::default(), &pool());
        let available: BTreeSet<&str> = obs.iter()
            .filter(|o| is_mine(o) && o.running && o.ready && !o.busy)
            .map(|o| o.name.as_str()).collect();
        let disrupted = p.actions.iter().filter(|a| match a {
            Action::Replace(_) | Action::Restart { .. } => true,
            Action::Delete { reason, .. } => *reason != DeleteReason::ScaleDown,
            _ => false,
        } && available.contains(a.instance())).count();
        let floor = available.len().min(replicas.saturating_sub(max_unavailable) as usize);
        prop_assert!(available.len() - disrupted >= floor, "{} available, {disrupted} disrupted, floor {floor}: {:?}", available.len(), p.actions);
        let before = obs.iter().filter(|o| is_mine(o)).count();
        let after = simulate(&obs, &p.actions).into_iter().filter(is_mine).count();
        let creates = p.actions.iter().any(|a| matches!(a, Action::Create(_)));
        if creates {
            prop_assert!(after <= (replicas + max_surge) as usize, "{after} > {replicas} + {max_surge}: {:?}", p.actions);
        } else {
            prop_assert!(after <= before.max(replicas as usize));
        }
        let old = obs.iter().any(|o| is_mine(o) && o.config.get(KEY_TEMPLATE) != Some(&template_hash(&s)));
        if !old {
            prop_assert!(after <= replicas as usize);
        }
    }

    /// Scale-down keeps the busiest instances: every removed instance of the current spec is
    /// no busier than every kept one, among running, ready, healthy instances.
    #[test]
    fn scale_down_removes_the_least_loaded(
        loads in proptest::collection::vec(0u8..100, 1..10),
        replicas in 0u32..10,
    ) {
        let s = spec("img", None, 1, false);
        let n = loads.len() as u32;
        let d = Desired { name: NAME, uid: UID, spec: &s, replicas: n, deleting: false };
        let mut obs = simulate(&[], &plan(&d, &[], &Capabilities::default(), &pool()).actions);
        obs.sort_by_key(|o| o.ordinal());
        for (o, l) in obs.iter_mut().zip(&loads) {
            o.load = Some(f64::from(*l));
        }
        let down = Desired { replicas, ..d };
        let p = plan(&down, &obs, &Capabilities::default(), &pool());
        let gone: BTreeSet<&str> = p.actions.iter().filter(|a| matches!(a, Action::Delete { .. })).map(Action::instance).collect();
        prop_assert_eq!(gone.len() as u32, n.saturating_sub(replicas));
        let bucket = |o: &ObservedInstance| (o.load.unwrap_or(0.0) / LOAD_BUCKET).floor();
        for g in obs.iter().filter(|o| gone.contains(o.name.as_str())) {
            for k in obs.iter().filter(|o| !gone.contains(o.name.as_str())) {
                prop_assert!(bucket(g) <= bucket(k), "removed {} ({:?}) kept {} ({:?})", g.name, g.load, k.name, k.load);
                // Among equals, the highest ordinal goes.
                if bucket(g) == bucket(k) {
                    prop_assert!(g.ordinal() > k.ordinal());
                }
            }
        }
    }
}

/// Walks a rollout pass by pass (new instances get ready between passes) and checks the
/// availability floor and the surge ceiling at every step.
fn roll(replicas: u32, max_unavailable: u32, max_surge: u32) -> u32 {
    let caps = Capabilities::default();
    let old = spec_surge("img-1", None, max_unavailable, max_surge, false);
    let new = spec_surge("img-2", None, max_unavailable, max_surge, false);
    let d_old = Desired {
        name: NAME,
        uid: UID,
        spec: &old,
        replicas,
        deleting: false,
    };
    let mut obs = simulate(&[], &plan(&d_old, &[], &caps, &pool()).actions);
    let d = Desired {
        spec: &new,
        ..d_old
    };
    let floor = replicas - max_unavailable.min(replicas);
    for pass in 1..=3 * replicas + 3 {
        let p = plan(&d, &obs, &caps, &pool());
        if p.is_empty() && p.pending_replacements == 0 {
            return pass - 1;
        }
        obs = simulate(&obs, &p.actions);
        // Right after the actions, what was created or replaced is still starting.
        let touched: BTreeSet<&str> = p.actions.iter().map(Action::instance).collect();
        let available = obs
            .iter()
            .filter(|o| !touched.contains(o.name.as_str()))
            .count() as u32;
        assert!(
            available >= floor,
            "pass {pass}: {available} available < {floor}: {:?}",
            p.actions
        );
        assert!(
            obs.len() as u32 <= replicas + max_surge,
            "pass {pass}: {} instances > {replicas} + {max_surge}",
            obs.len()
        );
    }
    panic!("rollout did not finish")
}

#[test]
fn surge_rolls_out_without_losing_availability() {
    // maxUnavailable 0: every old instance serves until a new one is ready.
    assert!(roll(3, 0, 1) <= 5);
    assert!(roll(4, 0, 2) <= 4);
    // Both: faster.
    assert!(roll(4, 1, 1) <= 3);
    // In place only (the pre-surge behaviour).
    assert!(roll(3, 1, 0) <= 3);
}

#[test]
fn a_new_instance_that_never_gets_healthy_stalls_the_rollout() {
    let caps = Capabilities::default();
    let old = spec_surge("img-1", None, 1, 1, false);
    let new = spec_surge("img-broken", None, 1, 1, false);
    let d_old = Desired {
        name: NAME,
        uid: UID,
        spec: &old,
        replicas: 3,
        deleting: false,
    };
    let mut obs = simulate(&[], &plan(&d_old, &[], &caps, &pool()).actions);
    let d = Desired {
        spec: &new,
        ..d_old
    };
    let p = plan(&d, &obs, &caps, &pool());
    assert!(!p.actions.is_empty());
    obs = simulate(&obs, &p.actions);
    // The new containers never pass a probe: restarted, then judged for replacement.
    let fresh: Vec<String> = p.actions.iter().map(|a| a.instance().to_string()).collect();
    for o in obs.iter_mut().filter(|o| fresh.contains(&o.name)) {
        o.ready = false;
        o.unhealthy = Unhealthy::Replace;
    }
    let p = plan(&d, &obs, &caps, &pool());
    assert!(p.actions.is_empty(), "stalled, yet: {:?}", p.actions);
    assert_eq!(p.stalled.len(), fresh.len());
    assert!(p.pending_replacements > 0);
    let serving = obs.iter().filter(|o| o.ready).count();
    assert!(serving >= 2, "the old spec keeps serving: {serving}");
    // Reverting the spec replaces the broken ones (they are out of service: free).
    let p = plan(&d_old, &obs, &caps, &pool());
    assert!(p.stalled.is_empty());
    let replaced: BTreeSet<&str> = p
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Replace(_) | Action::Delete { .. }))
        .map(Action::instance)
        .collect();
    for f in &fresh {
        assert!(
            replaced.contains(f.as_str()),
            "{f} not replaced: {:?}",
            p.actions
        );
    }
}

#[test]
fn a_converged_cluster_plans_nothing() {
    let s = spec("img", Some(1), 1, true);
    let d = Desired {
        name: NAME,
        uid: UID,
        spec: &s,
        replicas: 3,
        deleting: false,
    };
    let p = plan(&d, &[], &Capabilities::default(), &pool());
    assert_eq!(p.actions.len(), 3);
    assert_eq!(
        p.actions[0].describe(),
        "create web-0 from image img listening on port 20000"
    );
    let obs = simulate(&[], &p.actions);
    assert!(plan(&d, &obs, &Capabilities::default(), &pool()).is_empty());
}

#[test]
fn scale_down_without_load_removes_the_highest_ordinals_first() {
    let s = spec("img", None, 1, false);
    let d5 = Desired {
        name: NAME,
        uid: UID,
        spec: &s,
        replicas: 5,
        deleting: false,
    };
    let obs = simulate(
        &[],
        &plan(&d5, &[], &Capabilities::default(), &pool()).actions,
    );
    let d2 = Desired { replicas: 2, ..d5 };
    let p = plan(&d2, &obs, &Capabilities::default(), &pool());
    let names: Vec<&str> = p.actions.iter().map(Action::instance).collect();
    assert_eq!(names, vec!["web-4", "web-3", "web-2"]);
}

#[test]
fn an_unsupported_limit_is_dropped_not_fought_over() {
    let mut s = spec("img", Some(1), 1, false);
    s.resources.disk_priority = Some(5);
    let d = Desired {
        name: NAME,
        uid: UID,
        spec: &s,
        replicas: 1,
        deleting: false,
    };
    let caps = Capabilities {
        disk_priority: false,
    };
    let p = plan(&d, &[], &caps, &pool());
    let Action::Create(n) = &p.actions[0] else {
        panic!()
    };
    assert!(!n.config.contains_key("limits.disk.priority"));
    let obs = simulate(&[], &p.actions);
    assert!(plan(&d, &obs, &caps, &pool()).is_empty());
}

#[test]
fn an_instance_lxd_is_still_working_on_gets_no_action() {
    let s = spec("img", None, 1, false);
    let d = Desired {
        name: NAME,
        uid: UID,
        spec: &s,
        replicas: 2,
        deleting: false,
    };
    let mut obs = simulate(
        &[],
        &plan(&d, &[], &Capabilities::default(), &pool()).actions,
    );
    for o in &mut obs {
        o.running = false;
        o.busy = o.name == "web-0";
    }
    let p = plan(&d, &obs, &Capabilities::default(), &pool());
    assert_eq!(
        p.actions.iter().map(Action::instance).collect::<Vec<_>>(),
        vec!["web-1"]
    );
    let teardown = Desired {
        deleting: true,
        ..d
    };
    let p = plan(&teardown, &obs, &Capabilities::default(), &pool());
    assert_eq!(
        p.actions.iter().map(Action::instance).collect::<Vec<_>>(),
        vec!["web-1"]
    );
}
