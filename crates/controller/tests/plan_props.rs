//! Property tests of the planner: generated specs × generated observed states, with safety
//! properties in the manner of Nomad's reconciler property tests ("something bad never
//! happens"), each generated case first checked to be what it claims to be.

use std::collections::{BTreeMap, BTreeSet};

use botcluster_api::spec::{BotClusterSpec, PortRange};
use botcluster_controller::model::*;
use botcluster_controller::plan::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const UID: &str = "uid-1";
/// The uid of an earlier incarnation of the cluster: deleted and created again under the same
/// name while LXD still holds some of its containers.
const OLD_UID: &str = "uid-0";
const NAME: &str = "web";
/// First port of `spec.hostPorts` when a case has one.
const HP_START: u16 = 21000;

/// `cases` unless `PROPTEST_CASES` says otherwise (an explicit count would override it).
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c
}

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

fn with_host_ports(mut s: BotClusterSpec, size: Option<u16>) -> BotClusterSpec {
    s.host_ports = size.map(|n| PortRange {
        start: HP_START,
        end: HP_START + n,
    });
    s
}

fn pool() -> PortPool {
    PortPool {
        start: 20000,
        end: 20999,
        taken: BTreeSet::new(),
    }
}

/// A pool with room for any generated case, some of it held by other clusters (including
/// ports the generated instances hold, which must then move).
fn ample_pool() -> impl Strategy<Value = PortPool> {
    proptest::collection::btree_set(20000u16..20040, 0..12).prop_map(|taken| PortPool {
        start: 20000,
        end: 20200,
        taken,
    })
}

/// A pool that is small, partly taken, often exhausted.
fn tight_pool() -> impl Strategy<Value = PortPool> {
    (
        0u16..8,
        proptest::collection::btree_set(20000u16..20010, 0..8),
    )
        .prop_map(|(len, taken)| PortPool {
            start: 20000,
            end: 20000 + len,
            taken,
        })
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
        /// 0-3 healthy; 4 judged Restart; 5 judged Replace; 6, 7 its container keeps failing
        /// (judged Restart, then Replace after the restart, across rounds).
        sick: u8,
        busy: bool,
        load: u8,
        /// Already on its `spec.hostPorts` port (when the spec has them and it fits).
        spec_port: bool,
    },
    /// Ours (uid and cluster) but not under the name its ordinal gives.
    Stray {
        ord: u32,
        kind: StrayKind,
        busy: bool,
        bump: bool,
    },
    /// Our name and cluster key, the uid of an earlier incarnation.
    OldIncarnation { ord: u32, bump: bool },
    /// Our name, no botcluster keys at all.
    Stranger { ord: u32, bump: bool },
    /// Another cluster's instance.
    OtherCluster { name: String },
}

#[derive(Clone, Copy, Debug)]
enum StrayKind {
    /// `user.botcluster.ordinal` missing.
    NoOrdinal,
    /// `user.botcluster.ordinal` names another ordinal than the name's suffix.
    OtherOrdinal(u32),
    /// A name that is not canonical for its ordinal (`web-03`).
    LeadingZero,
}

fn gen_instance() -> impl Strategy<Value = Gen> {
    let mine = (
        (0u32..12, any::<bool>(), any::<bool>(), any::<bool>()),
        (any::<bool>(), any::<bool>(), any::<bool>(), 0u8..8),
        (prop::bool::weighted(0.15), 0u8..100, any::<bool>()),
    )
        .prop_map(
            |(
                (ord, running, ready, old_image),
                (drift_cpu, drop_proxy, stale_files, sick),
                (busy, load, spec_port),
            )| Gen::Mine {
                ord,
                running,
                ready,
                old_image,
                drift_cpu,
                drop_proxy,
                stale_files,
                sick,
                busy,
                load,
                spec_port,
            },
        );
    let stray_kind = prop_oneof![
        Just(StrayKind::NoOrdinal),
        (1u32..5).prop_map(StrayKind::OtherOrdinal),
        Just(StrayKind::LeadingZero),
    ];
    prop_oneof![
        8 => mine,
        1 => (0u32..12, stray_kind, prop::bool::weighted(0.3), any::<bool>())
            .prop_map(|(ord, kind, busy, bump)| Gen::Stray { ord, kind, busy, bump }),
        1 => (0u32..12, any::<bool>()).prop_map(|(ord, bump)| Gen::OldIncarnation { ord, bump }),
        1 => (0u32..12, any::<bool>()).prop_map(|(ord, bump)| Gen::Stranger { ord, bump }),
        1 => "[a-z]{1,4}-[0-9]".prop_map(|name| Gen::OtherCluster { name }),
    ]
}

/// What a generated instance claims to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Mine,
    Stray,
    OldIncarnation,
    Stranger,
    OtherCluster,
}

/// A generated observed state.
#[derive(Clone, Debug)]
struct World {
    /// What LXD shows, each with what the generator meant it to be.
    built: Vec<(Kind, ObservedInstance)>,
    /// Our instances whose container keeps failing its health checks.
    sick: BTreeSet<String>,
}

impl World {
    fn observed(&self) -> Vec<ObservedInstance> {
        self.built.iter().map(|(_, o)| o.clone()).collect()
    }
    fn has(&self, f: impl Fn(Kind, &ObservedInstance) -> bool) -> bool {
        self.built.iter().any(|(k, o)| f(*k, o))
    }
}

/// A container of ours as an earlier plan would have made it for `ord` (from the pool,
/// at port 20000 + 2 × ord), under spec `s`.
fn made(s: &BotClusterSpec, ord: u32, uid: &str) -> NewInstance {
    let s = with_host_ports(s.clone(), None);
    let d = Desired {
        name: NAME,
        uid,
        spec: &s,
        replicas: ord + 1,
        deleting: false,
    };
    let mut p = plan(
        &d,
        &[],
        &Capabilities::default(),
        &PortPool {
            start: 20000 + ord as u16 * 2,
            end: 20999,
            taken: BTreeSet::new(),
        },
    );
    let Some(Action::Create(mut n)) = p.actions.pop() else {
        panic!("expected a create")
    };
    n.host_port = 20000 + ord as u16 * 2;
    n.devices
        .insert(PROXY_DEVICE.into(), proxy_device(&s, n.host_port));
    n
}

fn observed_from(n: NewInstance, running: bool) -> ObservedInstance {
    ObservedInstance {
        name: n.name,
        running,
        status: if running { "Running" } else { "Stopped" }.into(),
        ready: running,
        config: n.config,
        devices: n.devices,
        ..Default::default()
    }
}

fn proxy_at(s: &BotClusterSpec, port: u16) -> BTreeMap<String, Device> {
    let mut d = BTreeMap::new();
    d.insert(PROXY_DEVICE.to_string(), proxy_device(s, port));
    d
}

/// Builds observed instances as earlier plans would have left them, then damages them.
fn build(gens: &[Gen], s: &BotClusterSpec) -> World {
    let mut seen = BTreeSet::new();
    let mut w = World {
        built: Vec::new(),
        sick: BTreeSet::new(),
    };
    let old = spec(
        "old-image",
        s.resources.cpu.as_ref().map(|c| c.count().unwrap()),
        1,
        !s.files.is_empty(),
    );
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
                busy,
                load,
                spec_port,
            } => {
                if !seen.insert(instance_name(NAME, *ord)) {
                    continue;
                }
                let mut n = made(if *old_image { &old } else { s }, *ord, UID);
                if let (true, Some(r)) = (*spec_port, &s.host_ports) {
                    if let Some(p) = HP_START.checked_add(*ord as u16).filter(|p| *p <= r.end) {
                        n.devices.insert(PROXY_DEVICE.into(), proxy_device(s, p));
                    }
                }
                if *drift_cpu {
                    n.config.insert("limits.cpu".into(), "7".into());
                }
                if *drop_proxy {
                    n.devices.remove(PROXY_DEVICE);
                }
                if *stale_files {
                    n.config.insert(KEY_FILES.into(), "stale".into());
                }
                let mut o = observed_from(n, *running);
                o.ready = *running && *ready && *sick < 4;
                // The reconciler's verdict after failed health checks (mostly healthy).
                o.unhealthy = match sick {
                    4 | 6 => Unhealthy::Restart,
                    5 | 7 => Unhealthy::Replace,
                    _ => Unhealthy::No,
                };
                if !*running {
                    o.unhealthy = Unhealthy::No;
                }
                if *sick >= 6 {
                    w.sick.insert(o.name.clone());
                }
                o.busy = *busy;
                o.load = Some(f64::from(*load));
                w.built.push((Kind::Mine, o));
            }
            Gen::Stray {
                ord,
                kind,
                busy,
                bump,
            } => {
                let mut o = observed_from(made(s, *ord, UID), true);
                match kind {
                    StrayKind::NoOrdinal => {
                        o.config.remove(KEY_ORDINAL);
                    }
                    StrayKind::OtherOrdinal(k) => {
                        o.config.insert(KEY_ORDINAL.into(), (ord + k).to_string());
                    }
                    StrayKind::LeadingZero => o.name = format!("{NAME}-0{ord}"),
                }
                if !seen.insert(o.name.clone()) {
                    continue;
                }
                o.devices = proxy_at(s, 20000 + *ord as u16 * 2 + u16::from(*bump));
                o.busy = *busy;
                w.built.push((Kind::Stray, o));
            }
            Gen::OldIncarnation { ord, bump } => {
                if !seen.insert(instance_name(NAME, *ord)) {
                    continue;
                }
                let mut o = observed_from(made(s, *ord, OLD_UID), true);
                o.devices = proxy_at(s, 20000 + *ord as u16 * 2 + u16::from(*bump));
                w.built.push((Kind::OldIncarnation, o));
            }
            Gen::Stranger { ord, bump } => {
                let name = instance_name(NAME, *ord);
                if !seen.insert(name.clone()) {
                    continue;
                }
                w.built.push((
                    Kind::Stranger,
                    ObservedInstance {
                        name,
                        running: true,
                        status: "Running".into(),
                        devices: proxy_at(s, 20000 + *ord as u16 * 2 + u16::from(*bump)),
                        ready: true,
                        ..Default::default()
                    },
                ));
            }
            Gen::OtherCluster { name } => {
                if !seen.insert(name.clone()) || cluster_of(name) == Some(NAME) {
                    continue;
                }
                let mut config = BTreeMap::new();
                config.insert(KEY_UID.into(), "someone-else".into());
                config.insert(KEY_CLUSTER.into(), cluster_of(name).unwrap_or("x").into());
                w.built.push((
                    Kind::OtherCluster,
                    ObservedInstance {
                        name: name.clone(),
                        running: true,
                        status: "Running".into(),
                        config,
                        ready: true,
                        ..Default::default()
                    },
                ));
            }
        }
    }
    w
}

/// The Nomad-style sanity check: each generated instance is what its generator claims.
fn check_generated(w: &World) -> Result<(), TestCaseError> {
    for (k, o) in &w.built {
        let uid = o.config.get(KEY_UID).map(String::as_str);
        let cluster = o.config.get(KEY_CLUSTER).map(String::as_str);
        let canonical = o.ordinal().map(|ord| instance_name(NAME, ord)) == Some(o.name.clone());
        match k {
            Kind::Mine => {
                prop_assert_eq!((uid, cluster), (Some(UID), Some(NAME)));
                prop_assert!(canonical, "{} is not canonical", o.name);
                prop_assert!(o.ready <= (o.running && o.unhealthy == Unhealthy::No));
            }
            Kind::Stray => {
                prop_assert_eq!((uid, cluster), (Some(UID), Some(NAME)));
                prop_assert!(!canonical, "stray {} has a matching ordinal", o.name);
                prop_assert!(o.name.starts_with("web-"));
            }
            Kind::OldIncarnation => {
                prop_assert_eq!(cluster, Some(NAME));
                prop_assert!(uid.is_some() && uid != Some(UID));
                prop_assert!(ordinal_of(NAME, &o.name).is_some());
            }
            Kind::Stranger => {
                prop_assert!(uid.is_none() && cluster.is_none());
                prop_assert!(ordinal_of(NAME, &o.name).is_some());
            }
            Kind::OtherCluster => {
                prop_assert!(uid != Some(UID) && cluster != Some(NAME));
                prop_assert!(ordinal_of(NAME, &o.name).is_none());
            }
        }
    }
    for n in &w.sick {
        prop_assert!(w.has(|k, o| k == Kind::Mine && &o.name == n));
    }
    Ok(())
}

fn is_mine(o: &ObservedInstance) -> bool {
    o.config.get(KEY_UID).map(String::as_str) == Some(UID)
}

/// Ours under the name of its ordinal: what the planner counts as an instance of the cluster.
fn is_owned(o: &ObservedInstance) -> bool {
    is_mine(o)
        && o.config.get(KEY_CLUSTER).map(String::as_str) == Some(NAME)
        && o.ordinal().map(|ord| instance_name(NAME, ord)) == Some(o.name.clone())
}

fn available(o: &ObservedInstance) -> bool {
    is_owned(o) && o.running && o.ready && !o.busy
}

/// A port the planner may give instance `ord`: its `spec.hostPorts` port, or a free one of
/// the pool.
fn valid_port(s: &BotClusterSpec, pool: &PortPool, ord: u32, port: u16) -> bool {
    match &s.host_ports {
        Some(r) => u32::from(port) == u32::from(r.start) + ord && port <= r.end,
        None => port >= pool.start && port <= pool.end && !pool.taken.contains(&port),
    }
}

/// The host port an action gives its instance, if it gives one.
fn port_given(a: &Action) -> Option<u16> {
    match a {
        Action::Create(n) | Action::Replace(n) => Some(n.host_port),
        Action::Patch { devices, .. } => devices
            .get(PROXY_DEVICE)
            .and_then(|d| d.get("listen"))
            .and_then(|l| port_of_listen(l)),
        _ => None,
    }
}

/// Runs `p` the way the executor does — every action but `Create` in plan order, then the
/// creates — and checks after each step: at least `replicas - maxUnavailable` instances
/// available (or as many as were), at most `replicas + maxSurge` of ours (or as many as there
/// were), no port handed out that another live container holds, none outside the spec's
/// ports or the pool, and nothing done to a busy or a foreign instance.
fn check_execution(
    d: &Desired<'_>,
    obs: &[ObservedInstance],
    p: &Plan,
    pool: &PortPool,
) -> Result<(), TestCaseError> {
    let s = d.spec;
    let n = d.replicas as usize;
    let floor = obs
        .iter()
        .filter(|o| available(o))
        .count()
        .min(n.saturating_sub(s.update_strategy.max_unavailable as usize));
    let owned0 = obs.iter().filter(|o| is_owned(o)).count();
    let ceiling = owned0.max(n + s.update_strategy.max_surge as usize);
    let by_name: BTreeMap<&str, &ObservedInstance> =
        obs.iter().map(|o| (o.name.as_str(), o)).collect();
    let mut state: Vec<ObservedInstance> = obs.to_vec();
    // Restarted, replaced or created in this pass: not serving until a later probe passes.
    let mut disrupted: BTreeSet<String> = BTreeSet::new();
    let (creates, rest): (Vec<&Action>, Vec<&Action>) = p
        .actions
        .iter()
        .partition(|a| matches!(a, Action::Create(_)));
    for (i, a) in rest.into_iter().chain(creates).enumerate() {
        let name = a.instance();
        if let Some(o) = by_name.get(name) {
            prop_assert!(!o.busy, "step {i}: {a:?} on a busy instance");
            prop_assert!(is_mine(o), "step {i}: {a:?} on a foreign instance");
        }
        if let Some(port) = port_given(a) {
            let ord = ordinal_of(NAME, name).expect("a canonical name");
            prop_assert!(
                valid_port(s, pool, ord, port),
                "step {i}: {name} given port {port}, outside the spec's ports or the pool"
            );
            // A port the instance already had is kept, not handed out (even if it was
            // shared before this plan).
            let kept = by_name.get(name).and_then(|o| o.host_port()) == Some(port);
            let holder = state
                .iter()
                .find(|o| !kept && o.name != name && o.host_port() == Some(port));
            prop_assert!(
                holder.is_none(),
                "step {i}: {name} given port {port}, which {:?} holds",
                holder.map(|o| &o.name)
            );
        }
        state = simulate(&state, std::slice::from_ref(a));
        if matches!(
            a,
            Action::Create(_) | Action::Replace(_) | Action::Restart { .. } | Action::Delete { .. }
        ) {
            disrupted.insert(name.to_string());
        }
        let avail = state
            .iter()
            .filter(|o| available(o) && !disrupted.contains(&o.name))
            .count();
        prop_assert!(
            avail >= floor,
            "step {i} ({}): {avail} available < floor {floor}: {:?}",
            a.describe(),
            p.actions
        );
        let owned = state.iter().filter(|o| is_owned(o)).count();
        prop_assert!(
            owned <= ceiling,
            "step {i}: {owned} instances > {ceiling}: {:?}",
            p.actions
        );
    }
    Ok(())
}

/// Between passes: LXD's operations finish and running instances are probed. A sick one
/// (its container keeps failing) is judged Restart, then Replace once it has been restarted,
/// as `ClusterMemory::judge` does; the others pass. New containers are healthy.
fn next_round(
    obs: &[ObservedInstance],
    p: &Plan,
    sick: &mut BTreeSet<String>,
) -> Vec<ObservedInstance> {
    let mut restarted = BTreeSet::new();
    for a in &p.actions {
        match a {
            Action::Restart { name } => {
                restarted.insert(name.clone());
            }
            Action::Create(n) | Action::Replace(n) => {
                sick.remove(&n.name);
            }
            Action::Delete { name, .. } => {
                sick.remove(name);
            }
            _ => {}
        }
    }
    let before: BTreeMap<&str, Unhealthy> =
        obs.iter().map(|o| (o.name.as_str(), o.unhealthy)).collect();
    let mut next = simulate(obs, &p.actions);
    for o in &mut next {
        o.busy = false;
        if o.running && sick.contains(&o.name) {
            o.ready = false;
            o.unhealthy = if restarted.contains(&o.name)
                || before.get(o.name.as_str()) == Some(&Unhealthy::Replace)
            {
                Unhealthy::Replace
            } else {
                Unhealthy::Restart
            };
        } else {
            o.ready = o.running;
            o.unhealthy = Unhealthy::No;
        }
    }
    next
}

/// What must not change about an instance that is not ours.
fn identity(
    o: &ObservedInstance,
) -> (
    String,
    bool,
    BTreeMap<String, String>,
    BTreeMap<String, Device>,
) {
    (
        o.name.clone(),
        o.running,
        o.config.clone(),
        o.devices.clone(),
    )
}

proptest! {
    #![proptest_config(config(300))]

    /// Applying plans pass after pass (in the executor's order, checked at every step)
    /// converges: the result has exactly `replicas` instances of ours, each under its
    /// ordinal's name, on its own valid port, running the current spec, and nothing foreign
    /// changed. Without a rollout or anything busy or failing for good, one pass is enough.
    /// Each pass plans from the previous plan's simulated result, observed afresh (operations
    /// ended, probes judged as `next_round` says), so the empty plan that ends the loop is
    /// planned from the applied state; and it stays converged: observed again (another
    /// order, other loads), the plan is still empty.
    #[test]
    fn plans_converge_and_then_stay_empty(
        gens in proptest::collection::vec(gen_instance(), 0..14),
        replicas in 0u32..10,
        cpu in proptest::option::of(1u32..4),
        // Both 0 is refused when a spec is applied.
        (max_unavailable, max_surge) in (0u32..3, 0u32..3).prop_map(|(u, s)| if u + s == 0 { (0, 1) } else { (u, s) }),
        files in any::<bool>(),
        host_ports in proptest::option::of(Just(60u16)),
        pool in ample_pool(),
    ) {
        let s = with_host_ports(spec_surge("img-2", cpu, max_unavailable, max_surge, files), host_ports);
        let d = Desired { name: NAME, uid: UID, spec: &s, replicas, deleting: false };
        let caps = Capabilities::default();
        let mut w = build(&gens, &s);
        check_generated(&w)?;
        let one_pass = !w.has(|k, o| {
            o.busy || (k == Kind::Mine && o.config.get(KEY_TEMPLATE) != Some(&template_hash(&s)))
        }) && w.sick.is_empty();
        let foreign: BTreeSet<_> = w.built.iter().filter(|(_, o)| !is_mine(o)).map(|(_, o)| identity(o)).collect();
        let mut obs = w.observed();
        let mut rounds = 0;
        loop {
            let p = plan(&d, &obs, &caps, &pool);
            check_execution(&d, &obs, &p, &pool)?;
            prop_assert!(p.blocked.is_empty(), "blocked with room to spare: {:?}", p.blocked);
            if p.is_empty() && !p.stalled.is_empty() {
                // A new-spec container that fails for good stops the rollout: nothing more is
                // done, and the previous spec keeps serving.
                for n in &p.stalled {
                    let o = obs.iter().find(|o| &o.name == n).expect("stalled on an observed instance");
                    prop_assert!(is_owned(o) && o.unhealthy == Unhealthy::Replace, "{n} stalled but is not failing: {o:?}");
                    prop_assert_eq!(o.config.get(KEY_TEMPLATE), Some(&template_hash(&s)));
                }
                prop_assert!(p.pending_replacements > 0);
                prop_assert!(obs.iter().any(|o| is_owned(o) && o.config.get(KEY_TEMPLATE) != Some(&template_hash(&s))));
                return Ok(());
            }
            // An empty plan with LXD still busy on something is not convergence: the next
            // pass, once the operation ended, has work.
            if p.is_empty() && p.pending_replacements == 0 && !obs.iter().any(|o| o.busy) {
                break;
            }
            obs = next_round(&obs, &p, &mut w.sick);
            rounds += 1;
            prop_assert!(rounds <= replicas + 6, "did not converge: {:?}", p.actions);
        }
        if one_pass {
            prop_assert!(rounds <= 1, "{rounds} passes without a rollout");
        }
        let conflicts: BTreeSet<String> = obs.iter().filter(|o| !is_mine(o) && ordinal_of(NAME, &o.name).is_some()).map(|o| o.name.clone()).collect();
        let mine: Vec<&ObservedInstance> = obs.iter().filter(|o| is_mine(o)).collect();
        prop_assert_eq!(mine.len() as u32, replicas);
        let mut ports = BTreeSet::new();
        for o in &mine {
            prop_assert!(is_owned(o), "{} is left a stray", o.name);
            prop_assert!(!conflicts.contains(&o.name));
            prop_assert!(o.running);
            prop_assert_eq!(o.config.get(KEY_TEMPLATE), Some(&template_hash(&s)));
            let port = o.host_port().expect("a proxy device");
            prop_assert!(valid_port(&s, &pool, o.ordinal().unwrap(), port), "{} on port {port}", o.name);
            prop_assert!(ports.insert(port), "port {port} twice");
        }
        for o in obs.iter().filter(|o| !is_mine(o)) {
            prop_assert!(o.host_port().is_none_or(|p| !ports.contains(&p)), "{} shares a port with ours", o.name);
        }
        let after: BTreeSet<_> = obs.iter().filter(|o| !is_mine(o)).map(identity).collect();
        prop_assert_eq!(&after, &foreign, "a foreign instance changed");
        // Observed again: LXD lists in another order, loads moved. Still nothing to do.
        let mut again = obs.clone();
        again.reverse();
        for (i, o) in again.iter_mut().enumerate() {
            o.load = Some((i * 37 % 100) as f64);
        }
        let p = plan(&d, &again, &caps, &pool);
        prop_assert!(p.is_empty() && p.pending_replacements == 0, "converged, yet: {:?}", p.actions);
    }

    /// Instances without our ownership keys (strangers, other clusters, an old incarnation of
    /// this one) and instances LXD is busy with are never in a plan; teardown only deletes,
    /// and leaves nothing of ours but busy instances.
    #[test]
    fn foreign_and_busy_instances_are_never_in_a_plan(
        gens in proptest::collection::vec(gen_instance(), 0..14),
        replicas in 0u32..10,
        deleting in any::<bool>(),
        pool in ample_pool(),
    ) {
        let s = spec("img-2", Some(2), 1, true);
        let d = Desired { name: NAME, uid: UID, spec: &s, replicas, deleting };
        let w = build(&gens, &s);
        check_generated(&w)?;
        let obs = w.observed();
        let untouchable: BTreeSet<&str> = obs.iter().filter(|o| !is_mine(o) || o.busy).map(|o| o.name.as_str()).collect();
        let p = plan(&d, &obs, &Capabilities::default(), &pool);
        for a in &p.actions {
            prop_assert!(!untouchable.contains(a.instance()), "touched {}: {:?}", a.instance(), a);
        }
        let conflicts: BTreeSet<&str> = p.conflicts.iter().map(|c| c.name.as_str()).collect();
        for (k, o) in &w.built {
            if matches!(k, Kind::OldIncarnation | Kind::Stranger) {
                prop_assert!(conflicts.contains(o.name.as_str()), "{} not reported as a conflict", o.name);
            }
        }
        if deleting {
            let only_deletes = p.actions.iter().all(|a| matches!(a, Action::Delete { .. }));
            prop_assert!(only_deletes, "teardown planned more than deletes");
            prop_assert!(simulate(&obs, &p.actions).iter().all(|o| !is_mine(o) || o.busy));
        } else {
            check_execution(&d, &obs, &p, &pool)?;
        }
    }

    /// One plan from any state: checked step by step in the executor's order, and its
    /// result bounded: at least `replicas` of ours remain (scale-down does not overshoot, a
    /// rollout deletes an old instance only once enough new ones exist), and without a
    /// rollout no more than `replicas` plus the busy ones that cannot go yet.
    #[test]
    fn a_plan_keeps_availability_and_the_count_in_bounds(
        gens in proptest::collection::vec(gen_instance(), 0..14),
        replicas in 0u32..10,
        max_unavailable in 0u32..3,
        max_surge in 0u32..3,
        pool in ample_pool(),
    ) {
        let s = spec_surge("img-2", Some(2), max_unavailable, max_surge, false);
        let d = Desired { name: NAME, uid: UID, spec: &s, replicas, deleting: false };
        let w = build(&gens, &s);
        check_generated(&w)?;
        let obs = w.observed();
        let p = plan(&d, &obs, &Capabilities::default(), &pool);
        check_execution(&d, &obs, &p, &pool)?;
        let after: Vec<ObservedInstance> = simulate(&obs, &p.actions).into_iter().filter(is_owned).collect();
        let template = template_hash(&s);
        if p.stalled.is_empty() {
            prop_assert!(after.len() >= replicas as usize, "{} < {replicas}: {:?}", after.len(), p.actions);
        }
        let old = obs.iter().any(|o| is_owned(o) && o.config.get(KEY_TEMPLATE) != Some(&template));
        if !old {
            let busy = obs.iter().filter(|o| is_owned(o) && o.busy).count();
            // A busy instance among the most expendable waits to go (and nothing else goes in
            // its place).
            prop_assert!(after.len() <= replicas as usize + busy, "{} > {replicas} + {busy} busy: {:?}", after.len(), p.actions);
        }
    }

    /// With `spec.hostPorts`, instance N gets port start + N and nothing else; without, ports
    /// come from the pool, never one that is taken. When the ports run out, the plan says so
    /// in `blocked` rather than making up a port.
    #[test]
    fn ports_come_from_the_spec_or_the_pool_and_running_out_is_reported(
        gens in proptest::collection::vec(gen_instance(), 0..14),
        replicas in 0u32..10,
        host_ports in proptest::option::of(0u16..12),
        pool in tight_pool(),
    ) {
        let s = with_host_ports(spec("img-2", None, 1, false), host_ports);
        let d = Desired { name: NAME, uid: UID, spec: &s, replicas, deleting: false };
        let w = build(&gens, &s);
        check_generated(&w)?;
        let obs = w.observed();
        let p = plan(&d, &obs, &Capabilities::default(), &pool);
        check_execution(&d, &obs, &p, &pool)?;
        let no_port = |name: &str| p.blocked.iter().any(|b| b.starts_with("no ") && b.contains(name));
        let after = simulate(&obs, &p.actions);
        let owned: Vec<&ObservedInstance> = after.iter().filter(|o| is_owned(o)).collect();
        if p.stalled.is_empty() && owned.len() < replicas as usize {
            prop_assert!(p.blocked.iter().any(|b| b.starts_with("no ")), "{} of {replicas} and nothing blocked: {:?}", owned.len(), p.actions);
        }
        let template = template_hash(&s);
        let stalled: BTreeSet<&str> = p.stalled.iter().map(String::as_str).collect();
        for o in owned.iter().filter(|o| !o.busy && !stalled.contains(o.name.as_str()) && o.config.get(KEY_TEMPLATE) == Some(&template)) {
            let ok = o.host_port().is_some_and(|port| valid_port(&s, &pool, o.ordinal().unwrap(), port));
            prop_assert!(ok || no_port(&o.name), "{} keeps port {:?} silently: {:?}", o.name, o.host_port(), p);
        }
    }

    /// Scale-down keeps the most useful instances: each removed one is more expendable than
    /// each kept one (stopped or busy, then not ready, then judged unhealthy, then less loaded
    /// in steps of LOAD_BUCKET, then higher ordinal); busy ones are never removed;
    /// never fewer than `replicas` remain, and more only while a busy one waits to go. Every
    /// case has more instances than replicas.
    #[test]
    fn scale_down_removes_the_least_useful(
        (states, replicas) in proptest::collection::vec((0u8..100, 0u8..10), 2..10)
            .prop_flat_map(|v| { let n = v.len() as u32; (Just(v), 0..n) }),
    ) {
        let s = spec("img", None, 1, false);
        let n = states.len() as u32;
        prop_assert!(n > replicas, "not a scale-down: {n} ≤ {replicas}");
        let d = Desired { name: NAME, uid: UID, spec: &s, replicas: n, deleting: false };
        let mut obs = simulate(&[], &plan(&d, &[], &Capabilities::default(), &pool()).actions);
        obs.sort_by_key(|o| o.ordinal());
        // Mostly serving; some stopped, not ready, judged unhealthy or busy.
        for (o, (load, state)) in obs.iter_mut().zip(&states) {
            o.load = Some(f64::from(*load));
            match state {
                0 => { o.running = false; o.ready = false; }
                1 => o.ready = false,
                2 => { o.ready = false; o.unhealthy = Unhealthy::Restart; }
                3 => o.busy = true,
                _ => {}
            }
        }
        let down = Desired { replicas, ..d };
        let p = plan(&down, &obs, &Capabilities::default(), &pool());
        let gone: BTreeSet<&str> = p.actions.iter().filter(|a| matches!(a, Action::Delete { .. })).map(Action::instance).collect();
        let rank = |o: &ObservedInstance| (o.running && !o.busy, o.running && o.ready && !o.busy, o.unhealthy == Unhealthy::No, (o.load.unwrap_or(0.0) / LOAD_BUCKET).floor() as i64);
        // The documented order, most expendable first: the `n - replicas` first go, except
        // busy ones, which wait; none more useful goes in place of one that cannot go yet.
        let mut ranked: Vec<&ObservedInstance> = obs.iter().collect();
        ranked.sort_by_key(|o| (rank(o), std::cmp::Reverse(o.ordinal())));
        let expected: BTreeSet<&str> = ranked[..(n - replicas) as usize].iter().filter(|o| !o.busy).map(|o| o.name.as_str()).collect();
        prop_assert_eq!(&gone, &expected);
        let kept = n - gone.len() as u32;
        prop_assert!(kept >= replicas, "scaled below {replicas}: {:?}", p.actions);
        if kept > replicas {
            // Only a busy instance that is among the most expendable defers its removal.
            prop_assert!(obs.iter().any(|o| o.busy), "{kept} kept for {replicas}, none busy");
        }
        for g in obs.iter().filter(|o| gone.contains(o.name.as_str())) {
            prop_assert!(!g.busy, "removed busy {}", g.name);
            for k in obs.iter().filter(|o| !o.busy && !gone.contains(o.name.as_str())) {
                prop_assert!(rank(g) <= rank(k), "removed {} ({:?}) kept {} ({:?})", g.name, rank(g), k.name, rank(k));
                // Among equals, the highest ordinal goes.
                if rank(g) == rank(k) {
                    prop_assert!(g.ordinal() > k.ordinal());
                }
            }
        }
    }
}

/// The properties speak of busy instances, strays, old incarnations, instances failing for
/// good, scale-downs, rollouts, stalls and ports running out: the generators must produce each
/// of them often enough for the default case count to mean something.
#[test]
fn the_generators_produce_every_case_the_properties_speak_of() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let cases = (
        proptest::collection::vec(gen_instance(), 0..14),
        0u32..10,
        proptest::option::of(0u16..12),
        tight_pool(),
        ample_pool(),
    );
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    let n = 300;
    for _ in 0..n {
        let (gens, replicas, host_ports, tight, ample) =
            cases.new_tree(&mut runner).unwrap().current();
        let s = spec("img-2", None, 1, false);
        let w = build(&gens, &s);
        check_generated(&w).unwrap();
        let mut count = |what: &'static str, yes: bool| {
            if yes {
                *seen.entry(what).or_default() += 1;
            }
        };
        let stray = |f: &dyn Fn(&ObservedInstance) -> bool| w.has(|k, o| k == Kind::Stray && f(o));
        count(
            "busy instance of ours",
            w.has(|k, o| k == Kind::Mine && o.busy),
        );
        count("busy stray", stray(&|o| o.busy));
        count(
            "stray without an ordinal",
            stray(&|o| o.ordinal().is_none()),
        );
        count(
            "stray with another ordinal",
            stray(&|o| {
                o.ordinal().is_some_and(|ord| {
                    ordinal_of(NAME, &o.name) != Some(ord) && !o.name.contains("-0")
                })
            }),
        );
        count(
            "stray under a non-canonical name",
            stray(&|o| ordinal_of(NAME, &o.name).is_none()),
        );
        count("old incarnation", w.has(|k, _| k == Kind::OldIncarnation));
        count("stranger under our name", w.has(|k, _| k == Kind::Stranger));
        count("failing for good", !w.sick.is_empty());
        let d = Desired {
            name: NAME,
            uid: UID,
            spec: &s,
            replicas,
            deleting: false,
        };
        let p = plan(&d, &w.observed(), &Capabilities::default(), &ample);
        count(
            "scale-down",
            p.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::Delete {
                        reason: DeleteReason::ScaleDown,
                        ..
                    }
                )
            }),
        );
        count(
            "rollout",
            p.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::Replace(_)
                        | Action::Delete {
                            reason: DeleteReason::Rollout,
                            ..
                        }
                )
            }),
        );
        count("stalled rollout", !p.stalled.is_empty());
        let hs = with_host_ports(s.clone(), host_ports);
        let d = Desired { spec: &hs, ..d };
        let p = plan(&d, &w.observed(), &Capabilities::default(), &tight);
        count(
            "pool exhausted",
            p.blocked.iter().any(|b| b.starts_with("no free host port")),
        );
        count(
            "hostPorts too small",
            p.blocked.iter().any(|b| b.contains("spec.hostPorts")),
        );
        count(
            "hostPorts respected",
            hs.host_ports.is_some() && p.actions.iter().any(|a| port_given(a).is_some()),
        );
    }
    let expected = [
        "busy instance of ours",
        "busy stray",
        "stray without an ordinal",
        "stray with another ordinal",
        "stray under a non-canonical name",
        "old incarnation",
        "stranger under our name",
        "failing for good",
        "scale-down",
        "rollout",
        "stalled rollout",
        "pool exhausted",
        "hostPorts too small",
        "hostPorts respected",
    ];
    for what in expected {
        let k = seen.get(what).copied().unwrap_or(0);
        assert!(k * 20 >= n, "{what}: {k} of {n} cases (want 5 %): {seen:?}");
    }
}

/// An instance whose container keeps failing: restarted, then replaced by a fresh one, and
/// never below the availability floor meanwhile.
#[test]
fn an_instance_that_stays_unhealthy_is_restarted_then_replaced() {
    let caps = Capabilities::default();
    let s = spec("img", None, 1, false);
    let d = Desired {
        name: NAME,
        uid: UID,
        spec: &s,
        replicas: 3,
        deleting: false,
    };
    let p0 = plan(&d, &[], &caps, &pool());
    let mut obs = simulate(&[], &p0.actions);
    let mut sick: BTreeSet<String> = ["web-1".to_string()].into();
    obs = next_round(&obs, &Plan::default(), &mut sick);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let p = plan(&d, &obs, &caps, &pool());
        check_execution(&d, &obs, &p, &pool()).unwrap();
        if p.is_empty() {
            break;
        }
        seen.extend(p.actions.iter().map(|a| match a {
            Action::Restart { name } => format!("restart {name}"),
            Action::Replace(n) => format!("replace {}", n.name),
            other => other.describe(),
        }));
        obs = next_round(&obs, &p, &mut sick);
    }
    assert_eq!(seen, ["restart web-1", "replace web-1"]);
    assert!(obs.iter().all(|o| o.ready));
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
