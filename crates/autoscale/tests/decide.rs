//! Behaviour of `decide`, one rule at a time: the HPA formula, tolerance, the seed's rules,
//! bounds, missing metrics, stabilization, cooldown and the scale-up rate.

use std::time::Duration;

use botcluster_api::Duration as SpecDuration;
use botcluster_autoscale::{
    decide, Autoscaling, Decision, History, InstanceMetrics, Limit, MetricsSnapshot, Scale,
    ScaleAction, ScalingMetric, ScalingRule,
};

use ScalingMetric::{Cpu, Memory, QueueDepth, RequestsPerMinute, ResponseTimeMs};

/// The seed's defaults, enabled: min 1, max 10, cpu 70 %, memory 80 %, 1000 requests/min,
/// cooldown 300 s.
fn spec() -> Autoscaling {
    Autoscaling {
        enabled: true,
        ..Autoscaling::default()
    }
}

/// The same without any stabilization window or cooldown, to look at the formula alone.
fn formula_only() -> Autoscaling {
    Autoscaling {
        cooldown: SpecDuration::from_secs(0),
        ..spec()
    }
}

/// The seed's three custom rules, as the config.csv importer produces them.
fn seed_rules() -> Vec<ScalingRule> {
    vec![
        ScalingRule {
            name: Some("response-time".into()),
            metric: ResponseTimeMs,
            above: Some(2000.0),
            below: None,
            action: ScaleAction::Up,
        },
        ScalingRule {
            name: Some("cpu-low".into()),
            metric: Cpu,
            above: None,
            below: Some(30.0),
            action: ScaleAction::Down,
        },
        ScalingRule {
            name: Some("queue-depth".into()),
            metric: QueueDepth,
            above: Some(100.0),
            below: None,
            action: ScaleAction::Up,
        },
    ]
}

/// An instance exactly at every target, with a quick response and an empty queue.
fn at_target() -> InstanceMetrics {
    InstanceMetrics {
        cpu_percent: Some(70.0),
        memory_percent: Some(80.0),
        requests_per_minute: Some(1000.0),
        response_time_ms: Some(150.0),
        queue_depth: Some(0.0),
    }
}

/// An idle instance: every metric well under target and under the cpu-low rule.
fn idle() -> InstanceMetrics {
    InstanceMetrics {
        cpu_percent: Some(20.0),
        memory_percent: Some(30.0),
        requests_per_minute: Some(200.0),
        response_time_ms: Some(100.0),
        queue_depth: Some(0.0),
    }
}

fn n(count: u32, instance: InstanceMetrics) -> MetricsSnapshot {
    MetricsSnapshot::uniform(count, instance)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// One decision on a fresh history at t = 1000 s.
fn once(spec: &Autoscaling, current: u32, metrics: &MetricsSnapshot) -> Decision {
    decide(spec, current, metrics, &History::default(), secs(1000)).0
}

/// Decides every `every` from `from` to `to` (inclusive) with the same metrics, following the
/// decisions, and returns `(t, current, decision)` for each check.
fn run(
    spec: &Autoscaling,
    mut current: u32,
    metrics: impl Fn(u64, u32) -> MetricsSnapshot,
    from: u64,
    to: u64,
    every: u64,
) -> Vec<(u64, u32, Decision)> {
    let mut history = History::default();
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        let (d, h) = decide(spec, current, &metrics(t, current), &history, secs(t));
        history = h;
        out.push((t, current, d.clone()));
        current = d.desired;
        t += every;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The HPA formula

#[test]
fn cpu_above_target_scales_up_by_the_hpa_ratio() {
    let d = once(&spec(), 3, &n(3, at_target().with(Cpu, 91.0)));
    // ceil(3 × 91 / 70) = ceil(3.9) = 4
    assert_eq!(d.desired, 4);
    assert_eq!(d.scale, Scale::Up);
    assert_eq!(d.decided_by.as_deref(), Some("cpu"));
    assert_eq!(d.reason, "cpu 91% > 70%");
    assert_eq!(d.event_message(3), "scaled 3 → 4: cpu 91% > 70%");
    assert_eq!(d.metrics["cpu"], 91.0);
    assert_eq!(d.limited_by, None);
}

#[test]
fn double_the_target_doubles_the_fleet_and_half_halves_it() {
    // The HPA documentation's example: 200m against 100m doubles, 50m halves.
    assert_eq!(
        once(&spec(), 4, &n(4, at_target().with(Cpu, 140.0))).desired,
        8
    );
    assert_eq!(
        once(
            &formula_only(),
            4,
            &n(4, idle().with(Cpu, 35.0).with(Memory, 40.0))
        )
        .desired,
        2
    );
}

#[test]
fn requests_per_minute_is_a_per_instance_average_target() {
    // 4 instances × 1500/min = 6000/min; 1000/min per instance → 6.
    let d = once(
        &spec(),
        4,
        &n(4, at_target().with(RequestsPerMinute, 1500.0)),
    );
    assert_eq!(d.desired, 6);
    assert_eq!(d.decided_by.as_deref(), Some("requestsPerMinute"));
    assert_eq!(d.reason, "requestsPerMinute 1500/min > 1000/min");
}

#[test]
fn the_metric_asking_for_the_most_instances_wins() {
    let m = n(
        3,
        at_target().with(Cpu, 91.0).with(RequestsPerMinute, 1500.0),
    );
    let d = once(&spec(), 3, &m);
    // cpu asks ceil(3.9) = 4, requests ceil(4.5) = 5.
    assert_eq!(d.desired, 5);
    assert_eq!(d.decided_by.as_deref(), Some("requestsPerMinute"));
}

#[test]
fn averages_are_over_instances_so_one_hot_instance_is_diluted() {
    let m = MetricsSnapshot::new(vec![
        at_target().with(Cpu, 100.0),
        at_target().with(Cpu, 60.0),
        at_target().with(Cpu, 55.0),
    ]);
    // Average 71.7 % is within 10 % of 70 %.
    let d = once(&spec(), 3, &m);
    assert_eq!(d.desired, 3);
    assert!(d.reason.contains("within 10% of 70%"), "{}", d.reason);
}

// ---------------------------------------------------------------------------------------------
// Tolerance

#[test]
fn within_ten_percent_of_target_nothing_changes() {
    for cpu in [63.5, 65.0, 70.0, 76.0, 77.0] {
        let d = once(&formula_only(), 5, &n(5, at_target().with(Cpu, cpu)));
        assert_eq!(d.desired, 5, "cpu {cpu}");
        assert_eq!(d.scale, Scale::None);
    }
}

#[test]
fn just_outside_the_tolerance_band_the_formula_applies() {
    // 78/70 = 1.114 → ceil(5.57) = 6; 62/70 = 0.886 → ceil(4.43) = 5 (no change: ceil rounds
    // towards keeping), 60/70 → ceil(4.29) = 5, 55/70 → ceil(3.93) = 4.
    let at = |cpu: f64| {
        once(
            &formula_only(),
            5,
            &n(
                5,
                at_target()
                    .with(Cpu, cpu)
                    .with(Memory, 40.0)
                    .with(RequestsPerMinute, 100.0),
            ),
        )
        .desired
    };
    assert_eq!(at(78.0), 6);
    assert_eq!(at(62.0), 5);
    assert_eq!(at(55.0), 4);
}

// ---------------------------------------------------------------------------------------------
// The seed's rules

fn with_seed_rules() -> Autoscaling {
    Autoscaling {
        rules: seed_rules(),
        ..spec()
    }
}

#[test]
fn response_time_above_2000ms_adds_one_instance() {
    let m = n(3, at_target().with(ResponseTimeMs, 2500.0));
    let d = once(&with_seed_rules(), 3, &m);
    assert_eq!(d.desired, 4);
    assert_eq!(d.decided_by.as_deref(), Some("response-time"));
    assert_eq!(
        d.reason,
        "rule response-time: responseTimeMs 2500ms > 2000ms"
    );
}

#[test]
fn queue_depth_above_100_adds_one_instance() {
    let m = n(3, at_target().with(QueueDepth, 150.0));
    let d = once(&with_seed_rules(), 3, &m);
    assert_eq!(d.desired, 4);
    assert_eq!(d.decided_by.as_deref(), Some("queue-depth"));
}

#[test]
fn cpu_below_30_removes_one_instance_per_cooldown() {
    let timeline = run(&with_seed_rules(), 5, |_, c| n(c, idle()), 0, 1000, 30);
    let events: Vec<(u64, u32, u32)> = timeline
        .iter()
        .filter(|(_, c, d)| d.desired != *c)
        .map(|(t, c, d)| (*t, *c, d.desired))
        .collect();
    // A fresh history waits one full window; then one instance per 300 s cooldown.
    assert_eq!(events, vec![(300, 5, 4), (600, 4, 3), (900, 3, 2)]);
    let (_, _, first_down) = &timeline[10];
    assert_eq!(first_down.decided_by.as_deref(), Some("cpu-low"));
    assert_eq!(first_down.reason, "rule cpu-low: cpu 20% < 30%");
    // Before each, the window still holds a higher recommendation (the one made when the count
    // was higher), which expires exactly when the cooldown does.
    assert_eq!(timeline[0].2.limited_by, Some(Limit::Stabilization));
    assert_eq!(timeline[11].2.limited_by, Some(Limit::Stabilization));
}

#[test]
fn with_down_rules_nothing_scales_down_while_none_fires() {
    // cpu 45 %: HPA alone would shrink 5 → 4, but cpu-low (< 30) does not fire.
    let m = |_, c| n(c, idle().with(Cpu, 45.0));
    let hpa = run(&spec(), 5, m, 0, 600, 30);
    let seed = run(&with_seed_rules(), 5, m, 0, 600, 30);
    assert!(hpa.last().is_some_and(|(_, _, d)| d.desired < 5));
    assert!(seed.iter().all(|(_, _, d)| d.desired == 5));
    assert!(
        seed[0].2.reason.ends_with("but no scale-down rule fires"),
        "{}",
        seed[0].2.reason
    );
}

#[test]
fn a_down_rule_cannot_scale_down_while_a_metric_holds() {
    // cpu-low fires, but memory 85 % is within 10 % of 80 %: memory asks for 5.
    let d = once(
        &Autoscaling {
            rules: seed_rules(),
            ..formula_only()
        },
        5,
        &n(5, idle().with(Memory, 85.0)),
    );
    assert_eq!(d.desired, 5);
    assert_eq!(d.decided_by.as_deref(), Some("memory"));
}

#[test]
fn any_scale_up_beats_a_firing_down_rule() {
    // cpu 20 % fires cpu-low, response time 2500 ms fires response-time.
    let d = once(
        &with_seed_rules(),
        5,
        &n(5, idle().with(ResponseTimeMs, 2500.0)),
    );
    assert_eq!(d.desired, 6);
    assert_eq!(d.decided_by.as_deref(), Some("response-time"));
}

#[test]
fn the_proportional_step_beats_a_plus_one_rule_when_larger() {
    let m = n(3, at_target().with(ResponseTimeMs, 2500.0).with(Cpu, 140.0));
    let d = once(&with_seed_rules(), 3, &m);
    assert_eq!(d.desired, 6);
    assert_eq!(d.decided_by.as_deref(), Some("cpu"));
}

#[test]
fn unnamed_rules_are_named_by_their_index() {
    let mut rules = seed_rules();
    rules[0].name = None;
    let d = once(
        &Autoscaling { rules, ..spec() },
        3,
        &n(3, at_target().with(ResponseTimeMs, 2500.0)),
    );
    assert_eq!(d.decided_by.as_deref(), Some("rules[0]"));
}

// ---------------------------------------------------------------------------------------------
// Bounds

#[test]
fn scale_up_stops_at_max_instances_and_says_so() {
    let d = once(&spec(), 8, &n(8, at_target().with(Cpu, 100.0)));
    // ceil(8 × 100/70) = 12 > 10 (the rate limit, 16, does not matter here).
    assert_eq!(d.desired, 10);
    assert_eq!(d.limited_by, Some(Limit::MaxInstances));
    assert!(!d.reason.contains("step limited"), "{}", d.reason);
    assert!(
        d.reason.ends_with("capped at maxInstances 10 (wants 12)"),
        "{}",
        d.reason
    );
    let d = once(&spec(), 10, &n(10, at_target().with(Cpu, 100.0)));
    assert_eq!(
        (d.desired, d.scale, d.limited_by),
        (10, Scale::None, Some(Limit::MaxInstances))
    );
}

#[test]
fn scale_down_stops_at_min_instances() {
    let spec = Autoscaling {
        min_instances: 2,
        ..formula_only()
    };
    let very_idle = InstanceMetrics {
        cpu_percent: Some(5.0),
        memory_percent: Some(10.0),
        requests_per_minute: Some(10.0),
        ..idle()
    };
    // Everything asks for 1.
    let d = once(&spec, 3, &n(3, very_idle.clone()));
    assert_eq!(d.desired, 2);
    assert_eq!(d.limited_by, Some(Limit::MinInstances));
    let d = once(&spec, 2, &n(2, very_idle));
    assert_eq!((d.desired, d.limited_by), (2, Some(Limit::MinInstances)));
}

#[test]
fn counts_outside_the_bounds_are_brought_in_at_once() {
    // maxInstances lowered to 10 while 14 run, right after a scale event: bounds beat cooldown.
    let (_, history) = decide(
        &spec(),
        13,
        &n(13, at_target().with(Cpu, 80.0)),
        &History::default(),
        secs(0),
    );
    let (d, _) = decide(&spec(), 14, &n(14, at_target()), &history, secs(10));
    assert_eq!(d.desired, 10);
    let d = once(
        &Autoscaling {
            min_instances: 3,
            ..spec()
        },
        0,
        &MetricsSnapshot::default(),
    );
    assert_eq!(d.desired, 3);
    assert_eq!(d.limited_by, Some(Limit::MinInstances));
}

// ---------------------------------------------------------------------------------------------
// Missing metrics

#[test]
fn no_readings_at_all_change_nothing() {
    let d = once(&spec(), 5, &MetricsSnapshot::default());
    assert_eq!((d.desired, d.limited_by), (5, Some(Limit::MissingMetrics)));
    assert!(
        d.reason.starts_with("no readings (no instance reports cpu"),
        "{}",
        d.reason
    );
    let d = once(&spec(), 5, &n(5, InstanceMetrics::default()));
    assert_eq!(d.desired, 5);
}

#[test]
fn a_metric_no_instance_reports_blocks_scale_down() {
    let mut idle_without_memory = idle();
    idle_without_memory.memory_percent = None;
    let d = once(&formula_only(), 5, &n(5, idle_without_memory.clone()));
    assert_eq!(d.desired, 5);
    assert_eq!(d.limited_by, Some(Limit::MissingMetrics));
    assert_eq!(d.decided_by.as_deref(), Some("memory"));
    assert_eq!(
        d.reason,
        "cpu 20% < 70%, but no instance reports memory: not scaling down on incomplete metrics"
    );
    // Declared as not collected, it is ignored and scale-down proceeds.
    let d = once(
        &formula_only(),
        5,
        &n(5, idle_without_memory).without(Memory),
    );
    assert_eq!(d.desired, 2);
}

#[test]
fn instances_without_readings_count_as_at_target_on_the_way_down() {
    // 2 of 5 report cpu 20 %: (2×20 + 3×70) / (5×70) = 0.71 → ceil(3.57) = 4, not 2.
    let m = MetricsSnapshot::new(vec![
        idle().with(Memory, 10.0).with(RequestsPerMinute, 10.0),
        idle().with(Memory, 10.0).with(RequestsPerMinute, 10.0),
    ])
    .without(Memory)
    .without(RequestsPerMinute);
    let d = once(&formula_only(), 5, &m);
    assert_eq!(d.desired, 4);
    assert_eq!(d.limited_by, Some(Limit::MissingMetrics));
    assert!(
        d.reason.contains("cpu reported by 2 of 5 instances"),
        "{}",
        d.reason
    );
}

#[test]
fn instances_without_readings_count_as_idle_on_the_way_up() {
    // 2 of 5 report cpu 140 %: 280 / 350 = 0.8 on the way up (no), 1.4 on the way down (no).
    let m = MetricsSnapshot::new(vec![at_target().with(Cpu, 140.0); 2]);
    let d = once(&spec(), 5, &m);
    assert_eq!(d.desired, 5);
    // Just after a scale-up 3 → 6 the three new instances boot without readings: the load
    // they will take is not asked for twice.
    let booting = MetricsSnapshot::new(vec![at_target().with(RequestsPerMinute, 2000.0); 3]);
    assert_eq!(once(&spec(), 6, &booting).desired, 6);
}

#[test]
fn an_up_rule_that_fires_on_the_reporting_instances_holds_the_fleet() {
    // 2 of 5 report 2500 ms; counted as 0 the average is 1000 ms, so it does not add an
    // instance, but it must not let cpu-low remove one either.
    let mut quiet = idle();
    quiet.response_time_ms = None;
    let mut m = n(3, quiet);
    m.instances
        .extend(vec![idle().with(ResponseTimeMs, 2500.0); 2]);
    let d = once(
        &Autoscaling {
            rules: seed_rules(),
            ..formula_only()
        },
        5,
        &m,
    );
    assert_eq!(d.desired, 5);
    assert_eq!(d.decided_by.as_deref(), Some("response-time"));
    assert_eq!(
        d.reason,
        "rule response-time: responseTimeMs 2500ms > 2000ms on the 2 of 5 instances that report it"
    );
}

#[test]
fn unusable_readings_are_ignored_or_read_as_idle() {
    // NaN is no reading; a negative one reads as 0; +inf is the most load there is.
    let m = MetricsSnapshot::new(vec![at_target().with(Cpu, f64::NAN); 3]);
    assert_eq!(once(&spec(), 3, &m).decided_by.as_deref(), Some("cpu"));
    let m = n(3, at_target().with(Cpu, f64::INFINITY));
    assert_eq!(once(&spec(), 3, &m).desired, 7); // capped by the scale-up rate
    let m = n(3, idle().with(Cpu, -5.0));
    assert_eq!(once(&formula_only(), 3, &m).metrics["cpu"], 0.0);
}

// ---------------------------------------------------------------------------------------------
// Stabilization, cooldown, rate

#[test]
fn a_fresh_history_waits_one_window_before_scaling_down() {
    let timeline = run(&spec(), 6, |_, c| n(c, idle()), 0, 330, 30);
    for (t, _, d) in &timeline {
        if *t < 300 {
            assert_eq!(d.desired, 6, "t={t}");
            assert_eq!(d.limited_by, Some(Limit::Stabilization));
        }
    }
    // At 300 s the window is over: HPA goes straight to ceil(6 × 0.4) = 3 (memory 30/80).
    assert_eq!(timeline[10].2.desired, 3);
}

#[test]
fn a_noisy_dip_does_not_scale_down_before_the_window_passes() {
    let spec = spec();
    let mut history = History::default();
    let mut current = 4;
    // Warm up at target for 10 minutes, then one low reading, then back at target.
    for t in (0..=600).step_by(30) {
        let m = if t == 600 {
            n(current, idle())
        } else {
            n(current, at_target())
        };
        let (d, h) = decide(&spec, current, &m, &history, secs(t));
        history = h;
        current = d.desired;
        if t == 600 {
            assert_eq!(d.limited_by, Some(Limit::Stabilization));
            assert!(
                d.reason
                    .ends_with("held at 4 by the 5m scale-down stabilization window"),
                "{}",
                d.reason
            );
        }
    }
    assert_eq!(current, 4);
}

#[test]
fn the_cooldown_binds_when_the_window_has_passed_but_the_last_scaling_is_recent() {
    // A staircase: 6 at target, then load asking for 5, then for 3.
    let spec = spec();
    let mut history = History::default();
    let mut current = 6;
    let mut got = Vec::new();
    for t in [0, 100, 200, 300, 400, 500, 600] {
        let m = match t {
            0 => n(current, at_target()),
            100 => n(current, idle().with(Cpu, 55.0)),
            _ => n(current, idle().with(Cpu, 30.0)),
        };
        let (d, h) = decide(&spec, current, &m, &history, secs(t));
        history = h;
        got.push((t, d.desired, d.limited_by));
        current = d.desired;
    }
    assert_eq!(
        got,
        vec![
            (0, 6, None),
            (100, 6, Some(Limit::Stabilization)),
            (200, 6, Some(Limit::Stabilization)),
            // The 6 of t=0 left the window; the 5 of t=100 is the highest left.
            (300, 5, Some(Limit::Stabilization)),
            // Only 3s in the window now, but 6 → 5 was 100 s ago.
            (400, 5, Some(Limit::Cooldown)),
            (500, 5, Some(Limit::Cooldown)),
            (600, 3, None),
        ]
    );
}

#[test]
fn scale_up_is_not_blocked_by_the_cooldown() {
    let spec = spec();
    // Scale 4 → 2 at t=0... (history says so), then a spike 30 s later.
    let history = History {
        recommendations: vec![],
        events: vec![botcluster_autoscale::ScaleEvent {
            at_ms: 0,
            from: 4,
            to: 2,
        }],
    };
    let (d, _) = decide(
        &spec,
        2,
        &n(2, at_target().with(Cpu, 140.0)),
        &history,
        secs(30),
    );
    assert_eq!(d.desired, 4);
}

#[test]
fn no_scale_down_within_the_cooldown_after_a_scale_up() {
    let timeline = run(
        &spec(),
        2,
        |t, c| {
            if t == 0 {
                n(c, at_target().with(Cpu, 140.0))
            } else {
                n(c, idle())
            }
        },
        0,
        600,
        10,
    );
    let ups: Vec<u64> = timeline
        .iter()
        .filter(|(_, c, d)| d.desired > *c)
        .map(|(t, ..)| *t)
        .collect();
    let downs: Vec<u64> = timeline
        .iter()
        .filter(|(_, c, d)| d.desired < *c)
        .map(|(t, ..)| *t)
        .collect();
    assert_eq!(ups, vec![0]);
    assert_eq!(downs.first(), Some(&300));
    assert!(timeline[1..30]
        .iter()
        .all(|(_, _, d)| matches!(d.limited_by, Some(Limit::Stabilization | Limit::Cooldown))));
}

#[test]
fn scale_up_is_limited_to_max_of_4_and_100_percent_per_15s() {
    let spec = Autoscaling {
        max_instances: 40,
        ..spec()
    };
    // Ten times the request target asks for 20 from 2.
    let load = |_, c: u32| {
        n(
            c,
            at_target().with(RequestsPerMinute, 20_000.0 / f64::from(c)),
        )
    };
    let timeline = run(&spec, 2, load, 0, 30, 5);
    let desired: Vec<u32> = timeline.iter().map(|(_, _, d)| d.desired).collect();
    // 2 → 6 (2 + 4), held for the 15 s period, then 6 → 12 (100 %), then 20.
    assert_eq!(desired, vec![6, 6, 6, 12, 12, 12, 20]);
    assert_eq!(timeline[0].2.limited_by, Some(Limit::ScaleUpRate));
    assert!(
        timeline[0].2.reason.contains("step limited to 6"),
        "{}",
        timeline[0].2.reason
    );
}

// ---------------------------------------------------------------------------------------------
// Disabled, idempotence, history

#[test]
fn disabled_autoscaling_keeps_the_count_and_forgets() {
    let spec = Autoscaling::default();
    let (_, warm) = decide(
        &self::spec(),
        3,
        &n(3, at_target()),
        &History::default(),
        secs(0),
    );
    let (d, h) = decide(
        &spec,
        3,
        &n(3, at_target().with(Cpu, 100.0)),
        &warm,
        secs(30),
    );
    assert_eq!(
        (d.desired, d.scale, d.reason.as_str()),
        (3, Scale::None, "autoscaling disabled")
    );
    assert_eq!(h, History::default());
}

#[test]
fn asking_twice_at_the_same_instant_gives_the_same_answer() {
    let spec = spec();
    let (_, h0) = decide(&spec, 5, &n(5, at_target()), &History::default(), secs(0));
    let m = n(5, idle());
    let (d1, h1) = decide(&spec, 5, &m, &h0, secs(600));
    let (d2, h2) = decide(&spec, 5, &m, &h1, secs(600));
    assert_eq!(d1.desired, 2);
    assert_eq!(d1, d2);
    assert_eq!(h1, h2);
}

#[test]
fn a_clock_stepping_back_only_delays_scale_down() {
    let history = History {
        recommendations: vec![],
        events: vec![botcluster_autoscale::ScaleEvent {
            at_ms: 900_000,
            from: 3,
            to: 5,
        }],
    };
    let (d, _) = decide(&formula_only(), 5, &n(5, idle()), &history, secs(100));
    assert_eq!(d.desired, 2); // cooldown 0: nothing to wait for
    let (d, _) = decide(&spec(), 5, &n(5, idle()), &history, secs(100));
    assert_eq!((d.desired, d.limited_by), (5, Some(Limit::Stabilization)));
    // Scale-up still happens; the "future" 3 → 5 counts as just made for the rate limit too.
    let (d, _) = decide(
        &spec(),
        5,
        &n(5, at_target().with(Cpu, 100.0)),
        &history,
        secs(100),
    );
    assert_eq!((d.desired, d.limited_by), (7, Some(Limit::ScaleUpRate)));
}

#[test]
fn the_history_stays_short_and_serialises() {
    let timeline_spec = spec();
    let mut history = History::default();
    let mut current = 3;
    for t in 0..2000u64 {
        let cpu = 40.0 + (t * 37 % 60) as f64; // noisy 40..100
        let (d, h) = decide(
            &timeline_spec,
            current,
            &n(current, at_target().with(Cpu, cpu)),
            &history,
            Duration::from_secs(t * 5),
        );
        history = h;
        current = d.desired;
    }
    assert!(
        history.recommendations.len() <= 10,
        "{:?}",
        history.recommendations
    );
    assert!(history
        .recommendations
        .windows(2)
        .all(|w| w[0].replicas > w[1].replicas));
    assert!(history.events.len() <= 70, "{}", history.events.len());
    let json = serde_json::to_string(&history).expect("serialises");
    assert!(json.contains("\"atMs\""), "{json}");
    let back: History = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(back, history);
    assert!(history.last_scale_at().is_some());
}

#[test]
fn an_invalid_spec_does_not_panic() {
    let broken = Autoscaling {
        min_instances: 7,
        max_instances: 3,
        cpu_threshold: f64::NAN,
        memory_threshold: 0.0,
        request_threshold: -1.0,
        ..spec()
    };
    let d = once(&broken, 5, &n(5, idle()));
    assert!(d.desired <= 3);
    let zero = Autoscaling {
        min_instances: 0,
        max_instances: 0,
        ..spec()
    };
    assert_eq!(
        once(&zero, 2, &n(2, at_target().with(Cpu, 100.0))).desired,
        0
    );
}

// ---------------------------------------------------------------------------------------------
// docs/autoscaling.md, "Worked example"

#[test]
fn the_worked_example_in_the_docs() {
    let spec = with_seed_rules();
    let mut history = History::default();
    let mut log = Vec::new();
    let steps: Vec<(u64, u32, InstanceMetrics)> = vec![
        // t, instances reporting (of current), readings
        (
            0,
            3,
            at_target()
                .with(Cpu, 65.0)
                .with(Memory, 50.0)
                .with(RequestsPerMinute, 800.0),
        ),
        (
            30,
            3,
            at_target()
                .with(Cpu, 91.0)
                .with(Memory, 55.0)
                .with(RequestsPerMinute, 1500.0),
        ),
        (
            60,
            3,
            at_target()
                .with(Cpu, 95.0)
                .with(Memory, 55.0)
                .with(RequestsPerMinute, 1500.0),
        ),
        (
            90,
            5,
            at_target()
                .with(Cpu, 62.0)
                .with(Memory, 50.0)
                .with(RequestsPerMinute, 900.0),
        ),
        (
            120,
            5,
            at_target()
                .with(Cpu, 25.0)
                .with(Memory, 45.0)
                .with(RequestsPerMinute, 300.0),
        ),
        (
            390,
            5,
            at_target()
                .with(Cpu, 25.0)
                .with(Memory, 45.0)
                .with(RequestsPerMinute, 300.0),
        ),
        (
            420,
            5,
            at_target()
                .with(Cpu, 25.0)
                .with(Memory, 45.0)
                .with(RequestsPerMinute, 300.0),
        ),
        (
            690,
            5,
            at_target()
                .with(Cpu, 25.0)
                .with(Memory, 45.0)
                .with(RequestsPerMinute, 300.0),
        ),
    ];
    let mut current = 3;
    for (t, reporting, readings) in steps {
        let m = n(reporting.min(current), readings);
        let (d, h) = decide(&spec, current, &m, &history, secs(t));
        history = h;
        log.push(format!(
            "t={t}s {} [{:?}]",
            d.event_message(current),
            d.limited_by
        ));
        current = d.desired;
    }
    let expected = [
        "t=0s kept 3: cpu 65% within 10% of 70% [None]",
        "t=30s scaled 3 → 5: requestsPerMinute 1500/min > 1000/min [None]",
        "t=60s kept 5: cpu 95% > 70% (3 of 5 instances report it) [None]",
        "t=90s kept 5: cpu 62% < 70%, not enough to remove an instance [None]",
        "t=120s kept 5: rule cpu-low: cpu 25% < 30%; held at 5 by the 5m scale-down stabilization window [Some(Stabilization)]",
        "t=390s scaled 5 → 4: rule cpu-low: cpu 25% < 30% [None]",
        "t=420s kept 4: rule cpu-low: cpu 25% < 30%; held at 4 by the 5m scale-down stabilization window [Some(Stabilization)]",
        "t=690s scaled 4 → 3: rule cpu-low: cpu 25% < 30% [None]",
    ];
    assert_eq!(log, expected, "\n{}", log.join("\n"));
}
