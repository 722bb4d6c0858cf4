//! Replays of load traces through the autoscaler and through the seed's bash loop.

use std::time::Duration;

use botcluster_api::Duration as SpecDuration;
use botcluster_autoscale::sim::{self, Autoscaler, Model, SeedScript};
use botcluster_autoscale::{Autoscaling, Limit};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The seed's defaults, enabled, checking every `check` seconds.
fn spec(check: u64) -> Autoscaling {
    Autoscaling {
        enabled: true,
        check_interval: SpecDuration::from_secs(check),
        ..Autoscaling::default()
    }
}

/// 1500 requests/min per instance at 100 % CPU, 20 s to boot, memory not collected.
fn model() -> Model {
    Model::default()
}

#[test]
fn a_step_in_load_is_acted_on_at_the_first_check_after_it() {
    let spec = spec(5);
    // Two instances at 57 % CPU, then 3.5 × the load at t = 62 s.
    let load = sim::step(1700.0, 6000.0, secs(62));
    let timeline = sim::replay(
        &mut Autoscaler::new(spec.clone()),
        &model(),
        &load,
        2,
        spec.check_interval.get(),
        secs(600),
    );
    // Checks at 60, 65, ...: the step is seen at 65 s.
    assert_eq!(timeline.first_scale_up_at_or_after(secs(0)), Some(secs(65)));
    assert_eq!(timeline.reaction_time(secs(62)), Some(secs(3)));
    // One decision to 6 (6000/min ÷ 1000/min per instance); no second scale-up while the four
    // new instances boot, since they count as idle on the way up.
    assert_eq!(timeline.scale_events(), vec![(secs(65), 2, 6)]);
    let step = &timeline.ticks[13];
    assert_eq!(step.at, secs(65));
    assert_eq!(
        step.decision.reason,
        "requestsPerMinute 3000/min > 1000/min"
    );
    // Capacity covers the load once they have booted: 65 s + 20 s.
    assert_eq!(timeline.time_to_capacity(secs(62)), Some(secs(23)));
    assert_eq!(timeline.final_desired(), Some(6));
}

#[test]
fn the_seed_loop_reacts_later_and_one_instance_per_cooldown() {
    let load = sim::step(1700.0, 6000.0, secs(62));
    let ours = sim::replay(
        &mut Autoscaler::new(spec(5)),
        &model(),
        &load,
        2,
        secs(5),
        secs(1800),
    );
    let seed = sim::replay(
        &mut SeedScript::from_spec(&spec(30)),
        &model(),
        &load,
        2,
        secs(30),
        secs(1800),
    );
    // The seed's loop sees the step at its next 30 s tick and adds one instance...
    assert_eq!(seed.reaction_time(secs(62)), Some(secs(28)));
    assert_eq!(seed.scale_events()[0], (secs(90), 2, 3));
    // ...then one more each time its 300 s cooldown has passed (strictly more than 300 s).
    let times: Vec<Duration> = seed.scale_events().iter().map(|e| e.0).collect();
    assert_eq!(times, vec![secs(90), secs(420), secs(750), secs(1080)]);
    // Capacity (4 × 1500/min) covers 6000/min only after the second scale-up has booted.
    assert_eq!(seed.time_to_capacity(secs(62)), Some(secs(388)));
    assert_eq!(ours.time_to_capacity(secs(62)), Some(secs(23)));
    assert_eq!(ours.overloaded_time(), secs(20));
    assert_eq!(seed.overloaded_time(), secs(360));
}

#[test]
fn load_that_goes_away_is_given_back_after_the_window() {
    let spec = spec(15);
    // 40 minutes busy, then quiet.
    let load = sim::piecewise(vec![(secs(0), 9000.0), (secs(2400), 1000.0)]);
    let timeline = sim::replay(
        &mut Autoscaler::new(spec),
        &model(),
        &load,
        9,
        secs(15),
        secs(3600),
    );
    // Nothing before the drop, and nothing until the last busy recommendation (the check at
    // 2385 s) has left the 300 s window; then straight to what 1000/min needs by the request
    // target (1), in one step.
    let events = timeline.scale_events();
    assert_eq!(events, vec![(secs(2385 + 300), 9, 1)]);
    assert_eq!(timeline.overloaded_time(), Duration::ZERO);
    let held = &timeline.ticks[161]; // t = 2415 s
    assert_eq!(held.decision.limited_by, Some(Limit::Stabilization));
}

#[test]
fn noisy_load_does_not_make_the_fleet_flap() {
    let spec = spec(15);
    // 4 instances' worth of load at the request target, ±40 % pseudo-random every check.
    let load = |t: Duration| {
        let k = t.as_secs() / 15;
        let jitter = ((k * 2_654_435_761) % 1000) as f64 / 1000.0 * 0.8 - 0.4;
        4000.0 * (1.0 + jitter)
    };
    let timeline = sim::replay(
        &mut Autoscaler::new(spec),
        &model(),
        &load,
        4,
        secs(15),
        secs(3600),
    );
    let events = timeline.scale_events();
    assert!(
        timeline.direction_changes() <= 2 * (3600 / 300 + 1),
        "{events:?}"
    );
    // Every scale-down comes at least a cooldown after the event before it.
    for w in events.windows(2) {
        if w[1].2 < w[1].1 {
            assert!(w[1].0 - w[0].0 >= secs(300), "{events:?}");
        }
    }
}

#[test]
fn the_model_reports_what_a_fleet_would() {
    let m = Model {
        memory_percent: Some(40.0),
        ..model()
    };
    let s = m.snapshot(4500.0, 2, 100.0);
    assert_eq!(s.instances.len(), 2);
    let i = &s.instances[0];
    assert_eq!(i.cpu_percent, Some(100.0)); // 2250/min against 1500/min: saturated
    assert_eq!(i.requests_per_minute, Some(2250.0));
    assert_eq!(i.queue_depth, Some(50.0));
    assert_eq!(i.memory_percent, Some(40.0));
    assert!(s.uncollected.is_empty());
    let none = model().snapshot(4500.0, 0, 0.0);
    assert!(none.instances.is_empty());
    assert_eq!(
        none.uncollected,
        vec![botcluster_autoscale::ScalingMetric::Memory]
    );
}
