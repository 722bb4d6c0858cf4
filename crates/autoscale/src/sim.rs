//! Replays a load trace through a scaler and a simple fleet model, check by check.
//!
//! It exists to answer "how fast does it react, how far does it overshoot, does it flap" without
//! LXD: [`replay`] runs a [`Scaler`] ([`Autoscaler`] is [`crate::decide`]; [`SeedScript`] is the
//! seed's bash loop) against a [`Load`] (fleet-wide requests per minute over time) and a
//! [`Model`] of one instance, and returns a [`Timeline`] with one [`Tick`] per check.
//!
//! The model, deliberately crude:
//! - load is spread evenly over serving instances; an instance serves `capacity_rpm` at 100 % CPU,
//!   so CPU % = 100 × load per instance / capacity, capped at 100;
//! - requests per minute is the offered load per instance;
//! - response time is `base_response_ms / (1 − utilisation)`, utilisation capped at 0.95;
//! - queue depth is the backlog of requests not served since the start, per instance;
//! - memory is a constant, or not collected;
//! - a new instance serves (and reports) `boot_delay` after the decision; before that it counts in
//!   the replica count with all metrics missing; removed instances go at once (draining is the
//!   controller's business, not the decision's).

use std::collections::BTreeMap;
use std::time::Duration;

use botcluster_api::spec::{Autoscaling, ScalingMetric};

use crate::decision::{num, Decision, Scale};
use crate::history::History;
use crate::metrics::{InstanceMetrics, MetricsSnapshot};

/// One instance of the fleet, as the simulator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Requests per minute one instance serves at 100 % CPU.
    pub capacity_rpm: f64,
    /// Constant memory use in % of `limits.memory`; `None` = memory not collected.
    pub memory_percent: Option<f64>,
    /// Response time of an idle instance, milliseconds.
    pub base_response_ms: f64,
    /// Time from a scale-up decision until the new instance serves and reports.
    pub boot_delay: Duration,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            capacity_rpm: 1500.0,
            memory_percent: None,
            base_response_ms: 200.0,
            boot_delay: Duration::from_secs(20),
        }
    }
}

impl Model {
    /// What `serving` instances report when the fleet receives `load_rpm` and `backlog` requests
    /// wait. Instances that do not serve yet are absent (missing).
    pub fn snapshot(&self, load_rpm: f64, serving: u32, backlog: f64) -> MetricsSnapshot {
        let mut snapshot = MetricsSnapshot::default();
        if self.memory_percent.is_none() {
            snapshot = snapshot.without(ScalingMetric::Memory);
        }
        if serving == 0 {
            return snapshot;
        }
        let per = load_rpm.max(0.0) / f64::from(serving);
        let utilisation = if self.capacity_rpm > 0.0 {
            per / self.capacity_rpm
        } else {
            f64::INFINITY
        };
        let instance = InstanceMetrics {
            cpu_percent: Some((100.0 * utilisation).min(100.0)),
            memory_percent: self.memory_percent,
            requests_per_minute: Some(per),
            response_time_ms: Some(self.base_response_ms / (1.0 - utilisation.min(0.95))),
            queue_depth: Some(backlog.max(0.0) / f64::from(serving)),
        };
        snapshot.instances = vec![instance; serving as usize];
        snapshot
    }
}

/// Fleet-wide load over time, in requests per minute.
pub trait Load {
    /// The load at `t` after the start of the replay.
    fn rpm_at(&self, t: Duration) -> f64;
}

impl<F: Fn(Duration) -> f64> Load for F {
    fn rpm_at(&self, t: Duration) -> f64 {
        self(t)
    }
}

/// `before` until `at`, then `after`.
pub fn step(before: f64, after: f64, at: Duration) -> impl Fn(Duration) -> f64 {
    move |t| if t < at { before } else { after }
}

/// A piecewise-constant trace: each `(from, rpm)` holds until the next; 0 before the first.
pub fn piecewise(mut points: Vec<(Duration, f64)>) -> impl Fn(Duration) -> f64 {
    points.sort_by_key(|p| p.0);
    move |t| {
        points
            .iter()
            .take_while(|p| p.0 <= t)
            .last()
            .map_or(0.0, |p| p.1)
    }
}

/// Something that decides the replica count at each check.
pub trait Scaler {
    /// The decision at `now` for a fleet converging to `current` replicas.
    fn scale(&mut self, now: Duration, current: u32, metrics: &MetricsSnapshot) -> Decision;
}

/// [`crate::decide`] with its history carried from check to check.
#[derive(Clone, Debug)]
pub struct Autoscaler {
    /// The settings.
    pub spec: Autoscaling,
    /// What the previous check returned.
    pub history: History,
}

impl Autoscaler {
    /// A scaler with an empty history.
    pub fn new(spec: Autoscaling) -> Self {
        Autoscaler {
            spec,
            history: History::default(),
        }
    }
}

impl Scaler for Autoscaler {
    fn scale(&mut self, now: Duration, current: u32, metrics: &MetricsSnapshot) -> Decision {
        let (decision, history) = crate::decide(&self.spec, current, metrics, &self.history, now);
        self.history = history;
        decision
    }
}

/// The seed's `/opt/gbo/scripts/autoscale.sh`, for comparison: every check, if more than
/// `cooldown` passed since the last scaling, average CPU above `cpu_threshold` adds one instance
/// and below `low_cpu` (hard-coded 30 in the script) removes one.
///
/// Modelled on CPU % of `limits.cpu` (the script reads `loadavg × 100`, which is not a percentage
/// of anything; feeding it percentages is the kindest reading). As in the script, the average
/// divides by every container, so an instance without a reading counts as 0 % and the memory,
/// request and custom rules of `config.csv` are ignored. The 30 s drain `sleep` of its
/// scale-down is not modelled.
#[derive(Clone, Debug)]
pub struct SeedScript {
    /// `MIN_INSTANCES`.
    pub min: u32,
    /// `MAX_INSTANCES`.
    pub max: u32,
    /// `CPU_THRESHOLD`.
    pub cpu_threshold: f64,
    /// The literal `30` of `elif avg_cpu < 30`.
    pub low_cpu: f64,
    /// `SCALE_COOLDOWN`.
    pub cooldown: Duration,
    /// The content of `/tmp/last_scale_time`.
    pub last_scale: Option<Duration>,
}

impl SeedScript {
    /// The script configured from a spec's min, max, CPU threshold and cooldown.
    pub fn from_spec(spec: &Autoscaling) -> Self {
        SeedScript {
            min: spec.min_instances,
            max: spec.max_instances,
            cpu_threshold: spec.cpu_threshold,
            low_cpu: 30.0,
            cooldown: spec.cooldown.get(),
            last_scale: None,
        }
    }
}

impl Scaler for SeedScript {
    fn scale(&mut self, now: Duration, current: u32, metrics: &MetricsSnapshot) -> Decision {
        let n = (current as usize).max(metrics.instances.len());
        let mut averages = BTreeMap::new();
        let hold = |reason: String, averages: BTreeMap<String, f64>| Decision {
            desired: current,
            scale: Scale::None,
            recommendation: current,
            reason,
            decided_by: None,
            metrics: averages,
            limited_by: None,
        };
        if n == 0 {
            // `total / 0` makes bc fail and both comparisons false.
            return hold("seed loop: no containers".into(), averages);
        }
        let total: f64 = metrics
            .instances
            .iter()
            .map(|i| i.cpu_percent.unwrap_or(0.0))
            .sum();
        let avg = total / n as f64;
        averages.insert("cpu".to_string(), avg);
        // `[ $diff -gt $SCALE_COOLDOWN ]` on whole seconds.
        let can_scale = self
            .last_scale
            .is_none_or(|last| now.saturating_sub(last).as_secs() > self.cooldown.as_secs());
        if !can_scale {
            return hold("seed loop: cooldown".into(), averages);
        }
        let (desired, reason) = if avg > self.cpu_threshold && current < self.max {
            (
                current + 1,
                format!(
                    "seed loop: cpu {}% > {}%",
                    num(avg),
                    num(self.cpu_threshold)
                ),
            )
        } else if avg < self.low_cpu && current > self.min {
            (
                current - 1,
                format!("seed loop: cpu {}% < {}%", num(avg), num(self.low_cpu)),
            )
        } else {
            return hold(format!("seed loop: cpu {}%", num(avg)), averages);
        };
        self.last_scale = Some(now);
        Decision {
            desired,
            scale: Scale::between(current, desired),
            recommendation: desired,
            reason,
            decided_by: Some("cpu".into()),
            metrics: averages,
            limited_by: None,
        }
    }
}

/// One check of a replay.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    /// Time since the start.
    pub at: Duration,
    /// Fleet-wide load, requests per minute.
    pub load_rpm: f64,
    /// The replica count before this check's decision.
    pub current: u32,
    /// Instances serving (booted) at this check.
    pub serving: u32,
    /// What the serving instances can take, requests per minute.
    pub capacity_rpm: f64,
    /// Requests waiting, fleet-wide.
    pub backlog: f64,
    /// The decision.
    pub decision: Decision,
}

impl Tick {
    /// The replica count after this check.
    pub fn desired(&self) -> u32 {
        self.decision.desired
    }

    /// Whether load exceeds what the serving instances can take.
    pub fn overloaded(&self) -> bool {
        self.load_rpm > self.capacity_rpm
    }
}

/// The result of a replay: one tick per check, in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// Time between checks.
    pub check_interval: Duration,
    /// The checks.
    pub ticks: Vec<Tick>,
}

impl Timeline {
    /// When the first scale-up at or after `t` was decided.
    pub fn first_scale_up_at_or_after(&self, t: Duration) -> Option<Duration> {
        self.ticks
            .iter()
            .find(|k| k.at >= t && k.desired() > k.current)
            .map(|k| k.at)
    }

    /// Time from a load change at `t` to the first scale-up decision after it.
    pub fn reaction_time(&self, t: Duration) -> Option<Duration> {
        self.first_scale_up_at_or_after(t).map(|at| at - t)
    }

    /// Time from `t` until the serving instances first cover the load again.
    pub fn time_to_capacity(&self, t: Duration) -> Option<Duration> {
        self.ticks
            .iter()
            .find(|k| k.at >= t && !k.overloaded())
            .map(|k| k.at - t)
    }

    /// Total time the fleet was overloaded (each overloaded check counts one interval).
    pub fn overloaded_time(&self) -> Duration {
        let n = self.ticks.iter().filter(|k| k.overloaded()).count();
        self.check_interval * u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Instance-seconds used: the cost side of the trade.
    pub fn instance_seconds(&self) -> f64 {
        self.ticks
            .iter()
            .map(|k| f64::from(k.desired()) * self.check_interval.as_secs_f64())
            .sum()
    }

    /// Every decision that changed the count: `(at, from, to)`.
    pub fn scale_events(&self) -> Vec<(Duration, u32, u32)> {
        self.ticks
            .iter()
            .filter(|k| k.desired() != k.current)
            .map(|k| (k.at, k.current, k.desired()))
            .collect()
    }

    /// How many times the direction of scaling reversed (up then down, or down then up).
    pub fn direction_changes(&self) -> usize {
        let dirs: Vec<Scale> = self
            .scale_events()
            .iter()
            .map(|&(_, from, to)| Scale::between(from, to))
            .collect();
        dirs.windows(2).filter(|w| w[0] != w[1]).count()
    }

    /// The highest replica count decided.
    pub fn max_desired(&self) -> u32 {
        self.ticks.iter().map(Tick::desired).max().unwrap_or(0)
    }

    /// The replica count after the last check.
    pub fn final_desired(&self) -> Option<u32> {
        self.ticks.last().map(Tick::desired)
    }
}

/// Replays `load` for `duration` with a check every `check_interval` (the first at 0), starting
/// with `initial` serving instances, and applies each decision to the modelled fleet.
pub fn replay(
    scaler: &mut dyn Scaler,
    model: &Model,
    load: &dyn Load,
    initial: u32,
    check_interval: Duration,
    duration: Duration,
) -> Timeline {
    let interval = check_interval.max(Duration::from_millis(1));
    // When each instance starts serving, oldest first.
    let mut ready_at: Vec<Duration> = vec![Duration::ZERO; initial as usize];
    let mut backlog = 0.0_f64;
    let mut ticks = Vec::new();
    let mut previous = Duration::ZERO;
    let mut t = Duration::ZERO;
    while t <= duration {
        let load_rpm = load.rpm_at(t).max(0.0);
        let serving =
            u32::try_from(ready_at.iter().filter(|r| **r <= t).count()).unwrap_or(u32::MAX);
        let capacity_rpm = f64::from(serving) * model.capacity_rpm;
        let minutes = (t - previous).as_secs_f64() / 60.0;
        backlog = (backlog + (load_rpm - capacity_rpm) * minutes).max(0.0);
        let snapshot = model.snapshot(load_rpm, serving, backlog);
        let current = u32::try_from(ready_at.len()).unwrap_or(u32::MAX);
        let decision = scaler.scale(t, current, &snapshot);
        let desired = decision.desired as usize;
        if desired > ready_at.len() {
            ready_at.resize(desired, t + model.boot_delay);
        } else {
            // Remove the newest first: booting instances go before serving ones.
            ready_at.truncate(desired);
        }
        ticks.push(Tick {
            at: t,
            load_rpm,
            current,
            serving,
            capacity_rpm,
            backlog,
            decision,
        });
        previous = t;
        t += interval;
    }
    Timeline {
        check_interval: interval,
        ticks,
    }
}
