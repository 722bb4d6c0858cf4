//! The decision pipeline: recommendation → stabilization → cooldown → scale-up rate → bounds.

use std::time::Duration;

use botcluster_api::spec::Autoscaling;

use crate::decision::{dur, Decision, Limit, Scale};
use crate::history::{millis, History, ScaleEvent};
use crate::metrics::MetricsSnapshot;
use crate::proposal::{averages, evaluate};

/// HPA's default scale-up policy, pods part: at most this many instances more per period...
pub const SCALE_UP_PODS: u32 = 4;
/// ...or this percentage more, whichever allows more (HPA `selectPolicy: Max`).
pub const SCALE_UP_PERCENT: u32 = 100;
/// The period of the scale-up policy.
pub const SCALE_UP_PERIOD: Duration = Duration::from_secs(15);

/// The most instances a decision may go to from `current`, given the scale events of the last
/// [`SCALE_UP_PERIOD`]: HPA's `calculateScaleUpLimitWithScalingRules` with the default policies,
/// counted from the replica count at the start of the period, and never below `current`.
pub fn scale_up_limit<'a>(current: u32, recent: impl IntoIterator<Item = &'a ScaleEvent>) -> u32 {
    let (mut added, mut deleted) = (0u64, 0u64);
    for e in recent {
        if e.to > e.from {
            added += u64::from(e.to - e.from);
        } else {
            deleted += u64::from(e.from - e.to);
        }
    }
    let start = (u64::from(current) + deleted).saturating_sub(added);
    let by_pods = start + u64::from(SCALE_UP_PODS);
    let by_percent = start + (start * u64::from(SCALE_UP_PERCENT)).div_ceil(100);
    let limit = by_pods.max(by_percent).max(u64::from(current));
    u32::try_from(limit).unwrap_or(u32::MAX)
}

/// Decides how many instances the fleet should have.
///
/// - `spec`: the cluster's autoscaling settings (`cooldown` is both the scale-down stabilization
///   window and the minimum time from any scale event to a scale-down).
/// - `current`: the replica count the controller is converging to now (the previous `desired`),
///   not the number of containers that happen to run.
/// - `metrics`: the readings of the instances counted in `current`.
/// - `history`: the value returned by the previous call ([`History::default`] the first time).
/// - `now`: time since an epoch of your choice that never steps back (a process-start
///   `Instant` is ideal); the history's timestamps are milliseconds since that epoch.
///
/// Returns the decision and the history to pass next time. See the crate documentation for the
/// algorithm and its guarantees.
pub fn decide(
    spec: &Autoscaling,
    current: u32,
    metrics: &MetricsSnapshot,
    history: &History,
    now: Duration,
) -> (Decision, History) {
    if !spec.enabled {
        // The controller follows spec.replicas; forgetting the past means re-enabling starts
        // with a full stabilization window instead of acting on stale recommendations.
        let decision = Decision {
            desired: current,
            scale: Scale::None,
            recommendation: current,
            reason: "autoscaling disabled".into(),
            decided_by: None,
            metrics: averages(metrics),
            limited_by: None,
        };
        return (decision, History::default());
    }

    let now_ms = millis(now);
    let window_ms = millis(spec.cooldown.get());
    let period_ms = millis(SCALE_UP_PERIOD);
    let hi = spec.max_instances;
    let lo = spec.min_instances.min(hi);

    // 1. What the metrics and rules ask for.
    let eval = evaluate(spec, current, metrics);
    let raw = eval.conservative.replicas;
    let recommendation = raw.clamp(lo, hi);

    let mut history = history.normalized();
    if history.recommendations.is_empty() && window_ms > 0 {
        // No memory (first call, restart, re-enabled): act as if `current` had been recommended
        // until now, so the first scale-down needs a full window of low load.
        history.record_recommendation(now_ms, window_ms, current.clamp(lo, hi));
    }

    // 2. Stabilization (HPA): up acts at once (window 0), down goes no lower than the highest
    //    recommendation of the last `cooldown`.
    let window_max = history
        .window_max(now_ms, window_ms)
        .unwrap_or(0)
        .max(recommendation);
    let stabilized = if recommendation > current {
        recommendation
    } else {
        current.min(window_max)
    };

    // 3. Cooldown (seed): no scale-down within `cooldown` of the last scale event. Scale-up is
    //    never blocked: a missing instance costs users, an extra one only money, and flapping is
    //    prevented by blocking the way back down.
    let mut value = stabilized;
    let mut cooldown: Option<(u64, u64, ScaleEvent)> = None;
    if stabilized < current {
        if let Some(last) = history.earlier_events(now_ms).last() {
            let age = now_ms.saturating_sub(last.at_ms);
            if age < window_ms {
                value = current;
                cooldown = Some((window_ms - age, age, *last));
            }
        }
    }

    // 4. Scale-up rate (HPA default policy): max(4 instances, 100 %) per 15 s.
    let mut rate_limit = None;
    if value > current {
        let recent = history
            .earlier_events(now_ms)
            .filter(|e| e.at_ms.saturating_add(period_ms) > now_ms);
        let limit = scale_up_limit(current, recent);
        if value > limit {
            value = limit;
            // Only worth saying when it, not maxInstances, is what stops the step.
            if limit < hi {
                rate_limit = Some(limit);
            }
        }
    }

    // 5. Bounds always win, even over cooldown and stabilization.
    let desired = value.clamp(lo, hi);

    // Missing data held a scale-down back, or there is no data at all to decide on.
    let missing_held =
        raw <= current && (eval.reported_only.replicas < eval.conservative.replicas || eval.blind);
    let limited_by = if raw > hi && desired == hi {
        Some(Limit::MaxInstances)
    } else if raw < lo && desired == lo {
        Some(Limit::MinInstances)
    } else if rate_limit.is_some() && desired == value {
        Some(Limit::ScaleUpRate)
    } else if cooldown.is_some() {
        Some(Limit::Cooldown)
    } else if recommendation < current && stabilized > recommendation {
        Some(Limit::Stabilization)
    } else if missing_held {
        Some(Limit::MissingMetrics)
    } else if desired != value {
        Some(if desired == hi {
            Limit::MaxInstances
        } else {
            Limit::MinInstances
        })
    } else {
        None
    };

    let mut reason = if eval.blind {
        format!("no readings ({}): holding", eval.incomplete.join(", "))
    } else if missing_held {
        format!(
            "{}, but {}: not scaling down on incomplete metrics",
            eval.reported_only.text,
            eval.incomplete.join(", ")
        )
    } else {
        eval.conservative.text.clone()
    };
    if recommendation < current && stabilized > recommendation {
        reason.push_str(&format!(
            "; held at {stabilized} by the {} scale-down stabilization window",
            dur(window_ms)
        ));
    }
    if let Some((left, age, last)) = cooldown {
        reason.push_str(&format!(
            "; no scale-down for {} more: last scaling ({} → {}) was {} ago, cooldown {}",
            dur(left),
            last.from,
            last.to,
            dur(age),
            dur(window_ms)
        ));
    }
    if let Some(limit) = rate_limit {
        reason.push_str(&format!(
            "; step limited to {limit} (at most max({SCALE_UP_PODS}, {SCALE_UP_PERCENT}%) more per {})",
            dur(period_ms)
        ));
    }
    if raw > hi && desired == hi {
        reason.push_str(&format!("; capped at maxInstances {hi} (wants {raw})"));
    } else if value < lo {
        reason.push_str(&format!("; raised to minInstances {lo}"));
    } else if raw < lo && desired == lo {
        reason.push_str(&format!("; kept at minInstances {lo} (wants {raw})"));
    } else if value > hi {
        reason.push_str(&format!("; lowered to maxInstances {hi}"));
    }

    history.record_recommendation(now_ms, window_ms, recommendation);
    let event = (desired != current).then_some(ScaleEvent {
        at_ms: now_ms,
        from: current,
        to: desired,
    });
    history.record_event(event, now_ms, window_ms.max(period_ms));

    let decision = Decision {
        desired,
        scale: Scale::between(current, desired),
        recommendation,
        reason,
        decided_by: eval.conservative.decided_by,
        metrics: eval.averages,
        limited_by,
    };
    (decision, history)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(at_ms: u64, from: u32, to: u32) -> ScaleEvent {
        ScaleEvent { at_ms, from, to }
    }

    #[test]
    fn scale_up_limit_is_max_of_four_and_double() {
        assert_eq!(scale_up_limit(1, []), 5);
        assert_eq!(scale_up_limit(3, []), 7);
        assert_eq!(scale_up_limit(10, []), 20);
        assert_eq!(scale_up_limit(0, []), 4);
    }

    #[test]
    fn scale_up_limit_counts_from_the_start_of_the_period() {
        // 2 → 6 five seconds ago: the period started at 2, so at most 6 now.
        assert_eq!(scale_up_limit(6, [&up(0, 2, 6)]), 6);
        // 8 → 5 in the period: it started at 8, so 16.
        assert_eq!(scale_up_limit(5, [&up(0, 8, 5)]), 16);
    }
}
