//! The BotCluster scaling decision as a pure function: no I/O, no clock, no async.
//!
//! [`decide`] turns the cluster's [`Autoscaling`] spec, the current replica count, a
//! [`MetricsSnapshot`] and the [`History`] of earlier decisions into a [`Decision`] and the next
//! history. It replaces the seed's cron bash autoscaler with Kubernetes HPA's algorithm plus the
//! seed's `config.csv` rules; `docs/autoscaling.md` walks through an example and compares the two.
//!
//! # Expected flow
//!
//! 1. Every `checkInterval` the controller gathers one [`MetricsSnapshot`] (an
//!    [`InstanceMetrics`] per instance; any reading may be `None`) and reads a monotonic clock.
//! 2. It calls `decide(&spec.autoscaling, current, &snapshot, &history, now)`, where `current` is
//!    the replica count it is converging to (the previous `desired`) and `history` is what the
//!    previous call returned ([`History::default`] the first time).
//! 3. It keeps the returned history, converges the fleet to `decision.desired`, records
//!    [`Decision::event_message`] as an event when `decision.scale` is not [`Scale::None`], and
//!    copies `desired`, `decided_by`, `metrics`, `reason` and [`History::last_scale`] into status.
//!    `limited_by == Some(Limit::MaxInstances)` is its cue for a `MaxInstancesReached` condition.
//! 4. When `enabled` is false the controller uses `spec.replicas`; `decide` answers `current`
//!    with "autoscaling disabled" and an empty history.
//!
//! The decision itself, in order:
//!
//! 1. **Recommendation.** Each threshold metric (`cpu`, `memory`, `requestsPerMinute`) asks for
//!    `ceil(current × average / target)` (HPA), or for `current` when within ±10 % of its target
//!    ([`TOLERANCE`]). An up rule that fires asks for `current + 1`. The highest ask wins. If
//!    every ask is below `current`: without down rules the fleet goes to the highest ask (HPA);
//!    with down rules it shrinks by one only when a down rule fires (the seed's hysteresis), and
//!    holds otherwise. The result, clamped to `[minInstances, maxInstances]`, is recorded.
//! 2. **Stabilization.** Scale-up acts at once; scale-down goes no lower than the highest
//!    recommendation of the last `cooldown` (HPA's scale-down stabilization window).
//! 3. **Cooldown.** No scale-down within `cooldown` of the last scale event (the seed's
//!    cooldown). Scale-up is not blocked: an instance too few hurts users now, one too many only
//!    costs money, and flapping is already prevented by blocking the way back down.
//! 4. **Scale-up rate.** At most max(4 instances, +100 %) more per 15 s (HPA's default
//!    `behavior.scaleUp`), counted from the count at the start of those 15 s.
//! 5. **Bounds.** Clamp to `[minInstances, maxInstances]`; bounds override steps 2–4.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use botcluster_autoscale::{
//!     decide, Autoscaling, History, InstanceMetrics, MetricsSnapshot, Scale, ScalingMetric,
//! };
//!
//! let spec = Autoscaling { enabled: true, ..Autoscaling::default() };
//! let busy = InstanceMetrics::default()
//!     .with(ScalingMetric::Cpu, 91.0)
//!     .with(ScalingMetric::Memory, 60.0)
//!     .with(ScalingMetric::RequestsPerMinute, 900.0);
//! let snapshot = MetricsSnapshot::uniform(3, busy);
//! let (decision, history) =
//!     decide(&spec, 3, &snapshot, &History::default(), Duration::from_secs(0));
//! // cpu asks ceil(3 × 91/70) = 4, memory ceil(3 × 60/80) = 3, requests are within 10 %.
//! assert_eq!(decision.desired, 4);
//! assert_eq!(decision.scale, Scale::Up);
//! assert_eq!(decision.event_message(3), "scaled 3 → 4: cpu 91% > 70%");
//! assert_eq!(history.last_scale().map(|e| (e.from, e.to)), Some((3, 4)));
//! ```
//!
//! # Guarantees
//!
//! - `desired` is within `[minInstances, maxInstances]` (for a spec with min ≤ max).
//! - Pure and deterministic: equal arguments give equal results. Asking again at the same `now`
//!   with the history the first call returned gives the same decision and the same history
//!   (scale events stamped `now` are that same decision, and are ignored by cooldown and rate).
//! - Monotone in load: raising any reading never lowers `desired` (for rules that point the
//!   natural way: `above → up`, `below → down`).
//! - No scale-down within `cooldown` after any scale event, and none before the fleet has been
//!   watched for one full `cooldown` window (a fresh history counts `current` as recommended).
//! - Missing data only ever pulls the decision towards `current`: a decision with holes is never
//!   further from `current` than the decision with each hole filled with its neutral value (the
//!   target, for threshold metrics). A collected metric no instance reports blocks scale-down,
//!   and neither kind of gap causes a scale-up.
//! - Scale-up waits for nothing in the history but the rate limit: when the readings ask for
//!   more instances, the first decision adds them, up to `maxInstances` and max(4, +100 %) per
//!   15 s.
//!
//! # Assumptions
//!
//! - The spec passed validation (`botcluster-api`): min ≤ max, thresholds positive. `decide` does
//!   not panic on an invalid spec; it ignores unusable thresholds and clamps to
//!   `[min(min, max), max]`.
//! - `current` is the count being converged to, like HPA's `scale.spec.replicas`. Instances
//!   counted in it that have not reported yet (booting) are "missing", which stops the
//!   autoscaler from scaling up again for load that the booting instances will take.
//! - Every instance has the same `limits.cpu` and `limits.memory`, so averaging percentages is
//!   HPA's `Σ usage / Σ requests`.
//! - `now` never steps back. If it does, history entries from the "future" count as just made:
//!   scale-down waits, nothing else changes.
//! - The controller adopts `desired`; the scale events in the history are the decisions, not
//!   what LXD managed to do.
//!
//! # Caveats
//!
//! - Every collected metric takes part: memory that never falls after load keeps the fleet up
//!   (HPA has the same property). List a metric the controller does not gather in
//!   [`MetricsSnapshot::uncollected`], otherwise its absence blocks scale-down for good.
//! - With down rules in the spec, scale-down is one instance per `cooldown` and only while a
//!   down rule fires; without, it follows HPA's proportional formula (still one step per
//!   `cooldown`).
//! - Inverted rules (`above → down`, `below → up`) are obeyed literally and therefore break
//!   monotonicity.
//! - `responseTimeMs` and `queueDepth` have no target, so they act only through rules, a step of
//!   one instance at a time.

mod decide;
mod decision;
mod history;
mod metrics;
mod proposal;
pub mod sim;

pub use botcluster_api::spec::{Autoscaling, ScaleAction, ScalingMetric, ScalingRule};
pub use decide::{decide, scale_up_limit, SCALE_UP_PERCENT, SCALE_UP_PERIOD, SCALE_UP_PODS};
pub use decision::{Decision, Limit, Scale};
pub use history::{History, Recommendation, ScaleEvent};
pub use metrics::{metric_name, InstanceMetrics, MetricsSnapshot, METRICS};
pub use proposal::TOLERANCE;
