//! Properties of `decide` over generated specs, readings and histories: bounds, monotonicity,
//! no flapping, missing data only pulls towards the current count, and idempotence.

use std::time::Duration;

use botcluster_api::Duration as SpecDuration;
use botcluster_autoscale::{
    decide, Autoscaling, History, InstanceMetrics, MetricsSnapshot, Scale, ScaleAction,
    ScalingMetric, ScalingRule, METRICS,
};
use proptest::prelude::*;

fn ms(t: u64) -> Duration {
    Duration::from_millis(t)
}

fn target(spec: &Autoscaling, m: ScalingMetric) -> Option<f64> {
    match m {
        ScalingMetric::Cpu => Some(spec.cpu_threshold),
        ScalingMetric::Memory => Some(spec.memory_threshold),
        ScalingMetric::RequestsPerMinute => Some(spec.request_threshold),
        _ => None,
    }
}

/// A reading of metric `i` (in `METRICS` order) in a range that crosses every threshold.
fn value(i: usize) -> std::ops::Range<f64> {
    match i {
        0 => 0.0..160.0,
        1 => 0.0..120.0,
        2 => 0.0..3000.0,
        3 => 0.0..6000.0,
        _ => 0.0..400.0,
    }
}

fn instance() -> impl Strategy<Value = InstanceMetrics> {
    (
        prop::option::weighted(0.85, value(0)),
        prop::option::weighted(0.85, value(1)),
        prop::option::weighted(0.85, value(2)),
        prop::option::weighted(0.85, value(3)),
        prop::option::weighted(0.85, value(4)),
    )
        .prop_map(|(c, m, r, t, q)| InstanceMetrics {
            cpu_percent: c,
            memory_percent: m,
            requests_per_minute: r,
            response_time_ms: t,
            queue_depth: q,
        })
}

fn snapshot() -> impl Strategy<Value = MetricsSnapshot> {
    (
        prop::collection::vec(instance(), 0..14),
        prop::array::uniform5(prop::bool::weighted(0.1)),
    )
        .prop_map(|(instances, uncollected)| MetricsSnapshot {
            instances,
            uncollected: METRICS
                .iter()
                .zip(uncollected)
                .filter(|(_, u)| *u)
                .map(|(m, _)| *m)
                .collect(),
        })
}

/// Rules that point the natural way (`above → up`, `below → down`), at most one pair per
/// metric, with the down threshold ≤ the target ≤ the up threshold (a hysteresis band, like the
/// seed's cpu-low 30 with target 70).
type RuleSlot = Option<(bool, bool, f64, f64, f64)>;

fn rules_for(spec: &Autoscaling, slots: &[RuleSlot]) -> Vec<ScalingRule> {
    let mut rules = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let Some((down, up, f, g, base)) = *slot else {
            continue;
        };
        let m = METRICS[i];
        let center = target(spec, m).unwrap_or(if m == ScalingMetric::QueueDepth {
            base / 10.0
        } else {
            base
        });
        if down {
            rules.push(ScalingRule {
                name: Some(format!("{i}-low")),
                metric: m,
                above: None,
                below: Some(center * f),
                action: ScaleAction::Down,
            });
        }
        if up {
            rules.push(ScalingRule {
                name: Some(format!("{i}-high")),
                metric: m,
                above: Some(center * g),
                below: None,
                action: ScaleAction::Up,
            });
        }
    }
    rules
}

fn spec(with_rules: bool) -> impl Strategy<Value = Autoscaling> {
    let slots = if with_rules {
        prop::collection::vec(
            prop::option::weighted(
                0.4,
                (
                    any::<bool>(),
                    any::<bool>(),
                    0.0..1.0f64,
                    1.0..2.0f64,
                    100.0..5000.0f64,
                ),
            ),
            5,
        )
        .boxed()
    } else {
        Just(vec![None; 5]).boxed()
    };
    (
        0u32..5,
        0u32..14,
        20.0..100.0f64,
        20.0..100.0f64,
        50.0..2000.0f64,
        prop_oneof![Just(0u64), Just(60), Just(300), 1u64..900],
        slots,
    )
        .prop_map(|(min, extra, cpu, mem, rpm, cooldown, slots)| {
            let mut s = Autoscaling {
                enabled: true,
                min_instances: min,
                max_instances: (min + extra).max(1),
                cpu_threshold: cpu,
                memory_threshold: mem,
                request_threshold: rpm,
                cooldown: SpecDuration::from_secs(cooldown),
                ..Autoscaling::default()
            };
            s.rules = rules_for(&s, &slots);
            s
        })
}

/// Everything `decide` takes, with a history made by real earlier decisions.
#[derive(Clone, Debug)]
struct Scenario {
    spec: Autoscaling,
    current: u32,
    snapshot: MetricsSnapshot,
    history: History,
    now: Duration,
}

impl Scenario {
    fn decide(&self, snapshot: &MetricsSnapshot) -> u32 {
        decide(&self.spec, self.current, snapshot, &self.history, self.now)
            .0
            .desired
    }
}

fn scenario(with_rules: bool) -> impl Strategy<Value = Scenario> {
    (
        spec(with_rules),
        prop::collection::vec((snapshot(), 1_000u64..120_000), 0..6),
        snapshot(),
        0u64..120_000,
        any::<u32>(),
    )
        .prop_map(|(spec, prior, snapshot, gap, c0)| {
            let (lo, hi) = (spec.min_instances, spec.max_instances);
            let mut current = lo + c0 % (hi - lo + 1);
            let mut history = History::default();
            let mut t = 0;
            for (s, g) in prior {
                t += g;
                let (d, h) = decide(&spec, current, &s, &history, ms(t));
                history = h;
                current = d.desired;
            }
            Scenario {
                spec,
                current,
                snapshot,
                history,
                now: ms(t + gap),
            }
        })
}

/// `s` with every hole filled with a neutral value: the target for threshold metrics, and for
/// rule-only metrics the lowest rule threshold on it (≤ every down threshold, ≤ every up one).
/// Instances counted in `current` but absent are added.
fn filled(spec: &Autoscaling, current: u32, s: &MetricsSnapshot) -> MetricsSnapshot {
    let mut f = s.clone();
    while f.instances.len() < current as usize {
        f.instances.push(InstanceMetrics::default());
    }
    for m in METRICS {
        let neutral = target(spec, m).unwrap_or_else(|| {
            spec.rules
                .iter()
                .filter(|r| r.metric == m)
                .flat_map(|r| [r.above, r.below])
                .flatten()
                .fold(f64::INFINITY, f64::min)
        });
        let neutral = if neutral.is_finite() { neutral } else { 0.0 };
        for i in &mut f.instances {
            if i.get(m).is_none() {
                i.set(m, Some(neutral));
            }
        }
    }
    f
}

/// A deterministic noise in [-1, 1] from a seed and a step.
fn noise(seed: u64, step: u64) -> f64 {
    let mut x = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % 20_001) as f64 / 10_000.0 - 1.0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// (1) Whatever the readings, history and current count: within [minInstances, maxInstances].
    #[test]
    fn desired_is_always_within_min_and_max(sc in scenario(true), any_current in 0u32..40) {
        let d = decide(&sc.spec, any_current, &sc.snapshot, &sc.history, sc.now).0;
        prop_assert!(d.desired >= sc.spec.min_instances, "{d:?}");
        prop_assert!(d.desired <= sc.spec.max_instances, "{d:?}");
        let d = decide(&sc.spec, sc.current, &sc.snapshot, &sc.history, sc.now).0;
        prop_assert!((sc.spec.min_instances..=sc.spec.max_instances).contains(&d.desired));
    }

    /// (2) More load on any metric, on any instances, never gives fewer instances.
    #[test]
    fn more_load_never_means_fewer_instances(
        sc in scenario(true),
        metric in 0usize..5,
        which in prop::collection::vec(any::<bool>(), 14),
        extra in 0.0..2000.0f64,
    ) {
        let m = METRICS[metric];
        let mut more = sc.snapshot.clone();
        for (i, inst) in more.instances.iter_mut().enumerate() {
            if which[i] {
                if let Some(v) = inst.get(m) {
                    inst.set(m, Some(v + extra));
                }
            }
        }
        let before = sc.decide(&sc.snapshot);
        let after = sc.decide(&more);
        prop_assert!(after >= before, "{before} → {after} with +{extra} on {m:?}");
    }

    /// (2') The same along a ramp: scaling the readings of one metric (or of all, like real
    /// load does) from 0 to 2.5 × never lowers the decision at any step. Ramps cross every
    /// threshold and rule, which random bumps rarely do.
    #[test]
    fn desired_grows_along_a_load_ramp(sc in scenario(true), metric in 0usize..6) {
        let mut previous = 0;
        for k in 0..=50 {
            let factor = f64::from(k) * 0.05;
            let mut s = sc.snapshot.clone();
            for inst in &mut s.instances {
                for (i, m) in METRICS.iter().enumerate() {
                    if metric == 5 || metric == i {
                        if let Some(v) = inst.get(*m) {
                            inst.set(*m, Some(v * factor));
                        }
                    }
                }
            }
            let d = sc.decide(&s);
            prop_assert!(d >= previous, "×{factor}: {previous} → {d}");
            previous = d;
        }
    }

    /// (3a) A metric wandering inside the tolerance band never scales, over a simulated hour.
    #[test]
    fn noise_inside_the_tolerance_band_never_scales(
        spec in spec(false),
        c0 in any::<u32>(),
        interval in prop_oneof![Just(5u64), Just(15), Just(30), Just(60)],
        seed in any::<u64>(),
    ) {
        let current = spec.min_instances + c0 % (spec.max_instances - spec.min_instances + 1);
        let mut history = History::default();
        for step in 0..3600 / interval {
            let instances = (0..current).map(|i| {
                let k = |j: u64| 1.0 + 0.09 * noise(seed, step * 64 + u64::from(i) * 4 + j);
                InstanceMetrics {
                    cpu_percent: Some(spec.cpu_threshold * k(0)),
                    memory_percent: Some(spec.memory_threshold * k(1)),
                    requests_per_minute: Some(spec.request_threshold * k(2)),
                    response_time_ms: Some(300.0),
                    queue_depth: Some(0.0),
                }
            }).collect();
            let (d, h) = decide(&spec, current, &MetricsSnapshot::new(instances), &history,
                Duration::from_secs(step * interval));
            prop_assert_eq!(d.desired, current, "{}", d.reason);
            history = h;
        }
    }

    /// (3b) Load noisy around the target: no scale-down within `cooldown` of any scale event
    /// (in particular of a scale-up), so direction changes are bounded by the hour's cooldowns.
    #[test]
    fn noisy_load_around_target_does_not_flap(
        spec in spec(true),
        cooldown in 60u64..900,
        interval in prop_oneof![Just(5u64), Just(10), Just(15), Just(30)],
        amplitude in 0.0..0.6f64,
        seed in any::<u64>(),
    ) {
        let spec = Autoscaling { cooldown: SpecDuration::from_secs(cooldown), ..spec };
        let mut current = spec.min_instances.max(1).min(spec.max_instances)
            + (spec.max_instances - spec.min_instances.max(1).min(spec.max_instances)) / 2;
        // Fleet-wide load that the starting fleet carries exactly at target.
        let base = f64::from(current.max(1));
        let mut history = History::default();
        let mut events: Vec<(u64, u32, u32)> = Vec::new();
        for step in 0..3600 / interval {
            let t = step * interval;
            let load = base * (1.0 + amplitude * noise(seed, step)).max(0.0);
            let per = load / f64::from(current.max(1));
            let snapshot = MetricsSnapshot::uniform(current, InstanceMetrics {
                cpu_percent: Some(spec.cpu_threshold * per),
                memory_percent: None,
                requests_per_minute: Some(spec.request_threshold * per),
                response_time_ms: Some(500.0 * per),
                queue_depth: Some(10.0 * per),
            }).without(ScalingMetric::Memory);
            let (d, h) = decide(&spec, current, &snapshot, &history, Duration::from_secs(t));
            history = h;
            if d.desired != current {
                events.push((t, current, d.desired));
            }
            current = d.desired;
        }
        for w in events.windows(2) {
            let ((t0, ..), (t1, from, to)) = (w[0], w[1]);
            if to < from {
                prop_assert!(t1 - t0 >= cooldown, "scale-down {from} → {to} at {t1}s, {}s after a scale event: {events:?}", t1 - t0);
            }
        }
        let dirs: Vec<Scale> = events.iter().map(|&(_, f, t)| Scale::between(f, t)).collect();
        let changes = dirs.windows(2).filter(|w| w[0] != w[1]).count() as u64;
        prop_assert!(changes <= 2 * (3600 / cooldown + 1), "{changes} direction changes: {events:?}");
    }

    /// (3c) A dip of one check (a noisy low reading) never scales down: the stabilization window
    /// still holds the recommendation of the check before it.
    #[test]
    fn single_check_dips_never_scale_down(
        spec in spec(true),
        c0 in any::<u32>(),
        cooldown in 60u64..900,
        interval in prop_oneof![Just(5u64), Just(15), Just(30)],
        dips in prop::collection::vec(any::<bool>(), 720),
    ) {
        let spec = Autoscaling { cooldown: SpecDuration::from_secs(cooldown), ..spec };
        let current = spec.min_instances + c0 % (spec.max_instances - spec.min_instances + 1);
        let mut history = History::default();
        let mut previous_dip = false;
        for step in 0..3600 / interval {
            // Never two dips in a row.
            let dip = dips[step as usize % dips.len()] && !previous_dip;
            previous_dip = dip;
            let k = if dip { 0.1 } else { 1.0 };
            let snapshot = MetricsSnapshot::uniform(current, InstanceMetrics {
                cpu_percent: Some(spec.cpu_threshold * k),
                memory_percent: Some(spec.memory_threshold * k),
                requests_per_minute: Some(spec.request_threshold * k),
                response_time_ms: Some(1.0),
                queue_depth: Some(0.0),
            });
            let (d, h) = decide(&spec, current, &snapshot, &history, Duration::from_secs(step * interval));
            history = h;
            prop_assert!(d.desired >= current, "t={}s: {}", step * interval, d.reason);
        }
    }

    /// (4) Missing data only pulls the decision towards `current`: a scale-down with holes is the
    /// one the readings with every hole at its neutral value give, and a scale-up with holes is
    /// never larger than that one.
    #[test]
    fn missing_metrics_never_cause_scaling(sc in scenario(true), load in 0.0..1.5f64) {
        // Scale the readings so that light load (where scale-down happens) is well covered.
        let mut s = sc.snapshot.clone();
        for inst in &mut s.instances {
            for m in METRICS {
                inst.set(m, inst.get(m).map(|v| v * load));
            }
        }
        let with_holes = sc.decide(&s);
        let full = sc.decide(&filled(&sc.spec, sc.current, &s));
        if with_holes < sc.current {
            prop_assert_eq!(with_holes, full, "down with holes, but not the same without");
        }
        if with_holes > sc.current {
            prop_assert!(full >= with_holes, "up to {with_holes} with holes, {full} without");
        }
    }

    /// (4') No readings at all, or a collected metric that no instance reports: no scale-down.
    #[test]
    fn a_metric_nobody_reports_blocks_scale_down(sc in scenario(true), metric in 0usize..3) {
        let m = METRICS[metric];
        let mut s = sc.snapshot.clone();
        s.uncollected.retain(|u| *u != m);
        for i in &mut s.instances {
            i.set(m, None);
        }
        prop_assert!(sc.decide(&s) >= sc.current);
        let blank = MetricsSnapshot::uniform(sc.current, InstanceMetrics::default());
        prop_assert_eq!(sc.decide(&blank), sc.current);
        prop_assert_eq!(sc.decide(&MetricsSnapshot::default()), sc.current);
    }

    /// (5) The same question at the same instant gets the same answer, also when asked again
    /// with the history the first answer returned.
    #[test]
    fn deciding_twice_at_the_same_instant_is_idempotent(sc in scenario(true)) {
        let (d1, h1) = decide(&sc.spec, sc.current, &sc.snapshot, &sc.history, sc.now);
        let (d2, h2) = decide(&sc.spec, sc.current, &sc.snapshot, &sc.history, sc.now);
        prop_assert_eq!(&d1, &d2);
        prop_assert_eq!(&h1, &h2);
        let (d3, h3) = decide(&sc.spec, sc.current, &sc.snapshot, &h1, sc.now);
        prop_assert_eq!(&d1, &d3);
        prop_assert_eq!(&h1, &h3);
    }

    /// The history stays small: recommendations strictly decreasing, within the bounds.
    #[test]
    fn the_history_stays_bounded(sc in scenario(true)) {
        let (_, h) = decide(&sc.spec, sc.current, &sc.snapshot, &sc.history, sc.now);
        prop_assert!(h.recommendations.windows(2).all(|w| w[0].replicas > w[1].replicas));
        prop_assert!(h.recommendations.iter().all(|r| r.replicas <= sc.spec.max_instances));
        prop_assert!(h.recommendations.len() as u32 <= sc.spec.max_instances - sc.spec.min_instances + 1);
    }
}
