//! The answer of [`crate::decide`]: how many instances, why, and what held it back.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The direction of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Scale {
    /// More instances.
    Up,
    /// Fewer instances.
    Down,
    /// As many as now.
    None,
}

impl Scale {
    /// The direction of going from `current` to `desired`.
    pub fn between(current: u32, desired: u32) -> Scale {
        match desired.cmp(&current) {
            std::cmp::Ordering::Greater => Scale::Up,
            std::cmp::Ordering::Less => Scale::Down,
            std::cmp::Ordering::Equal => Scale::None,
        }
    }
}

/// What stopped the decision from following the metrics all the way. Names follow the
/// Kubernetes condition-reason style, so the controller can use them as reasons as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Limit {
    /// The metrics asked for more than `maxInstances` and the decision is `maxInstances`
    /// (the controller raises `MaxInstancesReached`).
    MaxInstances,
    /// The metrics asked for fewer than `minInstances`, or the count was below it.
    MinInstances,
    /// A scale-down was due but the last scale event is less than `cooldown` ago.
    Cooldown,
    /// A scale-down was due but a higher recommendation was made within the last `cooldown`
    /// (HPA's scale-down stabilization window).
    Stabilization,
    /// A scale-up was cut to HPA's default rate: at most max(4 instances, 100 %) more per 15 s.
    ScaleUpRate,
    /// Some metric is missing (for some instances or all), and the readings alone would have
    /// scaled down further; missing data never causes a scale-down.
    MissingMetrics,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::MaxInstances => "MaxInstances",
            Limit::MinInstances => "MinInstances",
            Limit::Cooldown => "Cooldown",
            Limit::Stabilization => "Stabilization",
            Limit::ScaleUpRate => "ScaleUpRate",
            Limit::MissingMetrics => "MissingMetrics",
        })
    }
}

/// One scaling decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// The replica count to converge to.
    pub desired: u32,
    /// `desired` compared with the `current` the decision was made for.
    pub scale: Scale,
    /// What the metrics and rules alone asked for, within `[minInstances, maxInstances]`, before
    /// stabilization, cooldown and the rate limit (the value stored in the history).
    pub recommendation: u32,
    /// A sentence for people: `cpu 91% > 70%`,
    /// `cpu 20% < 70%; held at 5 by the 5m scale-down stabilization window`.
    pub reason: String,
    /// The metric (`cpu`, `requestsPerMinute`, ...) or rule name that decided, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The averages used, by metric name, over the instances that report each.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// What held the decision back, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_by: Option<Limit>,
}

impl Decision {
    /// The event text for this decision made at `current` replicas:
    /// `scaled 3 → 5: cpu 91% > 70%`, or `kept 3: cpu 68% within 10% of 70%`.
    pub fn event_message(&self, current: u32) -> String {
        if self.desired == current {
            format!("kept {current}: {}", self.reason)
        } else {
            format!("scaled {current} → {}: {}", self.desired, self.reason)
        }
    }
}

/// A number as people write it: `91`, `0.5`, `1500`, `29.7`.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let r = v.round();
    if (v - r).abs() < 0.05 || v.abs() >= 1000.0 {
        format!("{r:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A duration in milliseconds as `300s`, `1.5s`, `5m`, `1h`.
pub(crate) fn dur(ms: u64) -> String {
    if ms % 1000 != 0 {
        return format!("{}s", num(ms as f64 / 1000.0));
    }
    let s = ms / 1000;
    if s >= 3600 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_people_write_them() {
        assert_eq!(num(91.0), "91");
        assert_eq!(num(91.04), "91");
        assert_eq!(num(29.7), "29.7");
        assert_eq!(num(1500.4), "1500");
        assert_eq!(num(0.5), "0.5");
    }

    #[test]
    fn durations_read_like_the_spec() {
        assert_eq!(dur(300_000), "5m");
        assert_eq!(dur(30_000), "30s");
        assert_eq!(dur(90_000), "90s");
        assert_eq!(dur(1_500), "1.5s");
        assert_eq!(dur(3_600_000), "1h");
    }

    #[test]
    fn event_message_names_both_counts() {
        let d = Decision {
            desired: 5,
            scale: Scale::Up,
            recommendation: 5,
            reason: "cpu 91% > 70%".into(),
            decided_by: Some("cpu".into()),
            metrics: BTreeMap::new(),
            limited_by: None,
        };
        assert_eq!(d.event_message(3), "scaled 3 → 5: cpu 91% > 70%");
        assert_eq!(d.event_message(5), "kept 5: cpu 91% > 70%");
    }
}
