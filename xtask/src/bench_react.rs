//! `cargo xtask bench react`: how fast the fleet reacts to a step in load. The autoscaler
//! (`botcluster_autoscale::decide`, run at the operator's check interval) is compared with the
//! seed chapter's `autoscale.sh` loop (30 s sleep, +1 or −1 per cycle, 300 s cooldown).
//!
//! This is a pure simulation (`botcluster_autoscale::sim`). It starts no LXD container and reads
//! no clock. Every scaler is replayed at 1 s resolution: a wrapper calls the scaler only at its
//! own check times and holds the count in between. So "time to capacity" and "overloaded" are
//! measured to the second for every scaler, not rounded to the scaler's check interval.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use botcluster_autoscale::sim::{self, Autoscaler, Model, Scaler, SeedScript, Timeline};
use botcluster_autoscale::{Autoscaling, Decision, MetricsSnapshot, Scale};

const USAGE: &str = "usage: cargo xtask bench react [--intervals 5,30] [--boot SECS]";

/// Replay resolution.
const RESOLUTION: Duration = Duration::from_secs(1);
/// Load of the initial fleet: 2 instances at 1700/1500/2 = 57 % CPU.
const BASE_RPM: f64 = 1700.0;
const INITIAL: u32 = 2;
/// The step happens 2 s after a check of both the 5 s and the 30 s schedules.
const STEP_AT: Duration = Duration::from_secs(62);
/// How long after the step the table measures.
const HORIZON: Duration = Duration::from_secs(1800);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Calls `inner` at `every` (at 0, every, 2 × every, ...) and keeps the count in between, so a
/// replay at [`RESOLUTION`] sees the fleet second by second.
struct OnSchedule<S> {
    inner: S,
    every: Duration,
    next: Duration,
}

impl<S: Scaler> Scaler for OnSchedule<S> {
    fn scale(&mut self, now: Duration, current: u32, metrics: &MetricsSnapshot) -> Decision {
        if now < self.next {
            return Decision {
                desired: current,
                scale: Scale::None,
                recommendation: current,
                reason: "between checks".into(),
                decided_by: None,
                metrics: Default::default(),
                limited_by: None,
            };
        }
        while self.next <= now {
            self.next += self.every;
        }
        self.inner.scale(now, current, metrics)
    }
}

/// A load trace and the moment the table measures from.
struct Scenario {
    name: &'static str,
    /// `(from, rpm)` pieces.
    load: Vec<(Duration, f64)>,
    /// The step measured: reaction, time to capacity and the totals count from here.
    measure_from: Duration,
}

fn scenarios() -> Vec<Scenario> {
    let up = |factor: f64| vec![(secs(0), BASE_RPM), (STEP_AT, BASE_RPM * factor)];
    let drop_at = STEP_AT + HORIZON;
    vec![
        Scenario {
            name: "1× → 2× (1700 → 3400 req/min)",
            load: up(2.0),
            measure_from: STEP_AT,
        },
        Scenario {
            name: "1× → 4× (1700 → 6800 req/min)",
            load: up(4.0),
            measure_from: STEP_AT,
        },
        Scenario {
            name: "4× → 1× (drop back, 30 min after 1× → 4×)",
            load: vec![
                (secs(0), BASE_RPM),
                (STEP_AT, BASE_RPM * 4.0),
                (drop_at, BASE_RPM),
            ],
            measure_from: drop_at,
        },
        Scenario {
            name: "burst: 4× for 3 min, then 1×",
            load: vec![
                (secs(0), BASE_RPM),
                (STEP_AT, BASE_RPM * 4.0),
                (STEP_AT + secs(180), BASE_RPM),
            ],
            measure_from: STEP_AT,
        },
    ]
}

/// The seed's `config.csv` defaults, enabled: min 1, max 10, cpu 70 %, 1000 req/min,
/// cooldown 300 s, checking every `check`.
fn spec(check: Duration) -> Autoscaling {
    Autoscaling {
        enabled: true,
        check_interval: botcluster_api::Duration::from_secs(check.as_secs()),
        ..Autoscaling::default()
    }
}

/// One row of the table.
struct Row {
    scenario: &'static str,
    scaler: String,
    reaction: Option<Duration>,
    to_capacity: Option<Duration>,
    overloaded: Duration,
    instance_seconds: f64,
    direction_changes: usize,
    sizes: String,
}

fn measure(scenario: &Scenario, scaler: String, timeline: &Timeline) -> Row {
    let t = scenario.measure_from;
    let window = Timeline {
        check_interval: timeline.check_interval,
        ticks: timeline
            .ticks
            .iter()
            .filter(|k| k.at >= t && k.at < t + HORIZON)
            .cloned()
            .collect(),
    };
    let events = window.scale_events();
    let reaction = events.first().map(|e| e.0 - t);
    let mut sizes = window
        .ticks
        .first()
        .map(|k| k.current.to_string())
        .unwrap_or_default();
    for (_, _, to) in &events {
        let _ = write!(sizes, " → {to}");
    }
    Row {
        scenario: scenario.name,
        scaler,
        reaction,
        to_capacity: window.time_to_capacity(t),
        overloaded: window.overloaded_time(),
        instance_seconds: window.instance_seconds(),
        direction_changes: window.direction_changes(),
        sizes,
    }
}

fn replay_on_schedule(
    inner: impl Scaler,
    every: Duration,
    model: &Model,
    scenario: &Scenario,
) -> Timeline {
    let mut scaler = OnSchedule {
        inner,
        every,
        next: Duration::ZERO,
    };
    let load = sim::piecewise(scenario.load.clone());
    sim::replay(
        &mut scaler,
        model,
        &load,
        INITIAL,
        RESOLUTION,
        scenario.measure_from + HORIZON,
    )
}

fn fmt_secs(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{} s", d.as_secs()),
        None => "never".into(),
    }
}

pub fn run(args: &[&str]) -> Result<()> {
    let mut intervals: Vec<u64> = vec![5, 30];
    let mut boot = 20u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--intervals" => {
                intervals = it
                    .next()
                    .context(USAGE)?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse()
                            .context("--intervals takes seconds, e.g. 5,30")
                    })
                    .collect::<Result<_>>()?;
            }
            "--boot" => {
                boot = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .context("--boot SECS")?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if intervals.is_empty() || intervals.contains(&0) {
        bail!("--intervals takes positive seconds, e.g. 5,30");
    }
    let model = Model {
        boot_delay: secs(boot),
        ..Model::default()
    };
    let seed_interval = secs(30);

    let mut rows = Vec::new();
    for scenario in scenarios() {
        for &i in &intervals {
            let every = secs(i);
            let timeline =
                replay_on_schedule(Autoscaler::new(spec(every)), every, &model, &scenario);
            rows.push(measure(
                &scenario,
                format!("botcluster, checks every {i} s"),
                &timeline,
            ));
        }
        let seed = SeedScript::from_spec(&spec(seed_interval));
        let timeline = replay_on_schedule(seed, seed_interval, &model, &scenario);
        rows.push(measure(
            &scenario,
            "seed autoscale.sh (30 s sleep, ±1, 300 s cooldown)".into(),
            &timeline,
        ));
    }

    println!("# Time to react: botcluster's autoscaler vs the seed's bash loop");
    println!();
    println!(
        "Pure simulation (botcluster_autoscale::sim): no LXD, no containers, no wall clock. \
         Fleet model: an instance serves {} req/min at 100 % CPU and serves {boot} s after the \
         decision to add it. The fleet starts with {INITIAL} instances at {} req/min (57 % CPU). \
         The step comes at t = {} s, 2 s after a check, so the 30 s loop waits almost a whole \
         cycle. Settings are the seed's config.csv defaults (min 1, max 10, cpu 70 %, \
         1000 req/min, cooldown 300 s) with no custom rules. Memory is not collected. Replayed \
         at 1 s resolution. The totals cover the {} min after the measured step.",
        model.capacity_rpm,
        BASE_RPM,
        STEP_AT.as_secs(),
        HORIZON.as_secs() / 60,
    );
    println!();
    println!(
        "| load step | scaler | reaction (first scale decision) | time until capacity covers the load \
         | overloaded | instance-seconds | direction changes | sizes |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} s | {:.0} | {} | {} |",
            r.scenario,
            r.scaler,
            fmt_secs(r.reaction),
            fmt_secs(r.to_capacity),
            r.overloaded.as_secs(),
            r.instance_seconds,
            r.direction_changes,
            r.sizes,
        );
    }
    Ok(())
}
