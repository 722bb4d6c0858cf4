//! Step 1 of a decision: what each metric and rule asks for, and how the asks combine.
//!
//! Threshold metrics (`cpu`, `memory`, `requestsPerMinute`) use HPA's proportional formula
//! `ceil(current × average / target)` with a 10 % tolerance band. Up rules ask for one more
//! instance. The highest ask wins. Down rules, when the spec has any, are the gate of
//! scale-down: without one firing the fleet holds, with one firing it loses one instance, and
//! only when every metric and rule asks for fewer than now.
//!
//! Missing readings are filled in the direction that moves the ask towards `current`:
//! on the way up a missing instance counts as idle (0), on the way down as exactly at target,
//! and a collected metric that no instance reports asks for `current` (it cannot be computed,
//! so it blocks scale-down, as in HPA). The same asks computed from the readings alone
//! ("reported only") tell [`crate::Limit::MissingMetrics`] apart.

use std::collections::BTreeMap;

use botcluster_api::spec::{Autoscaling, ScaleAction, ScalingMetric, ScalingRule};

use crate::decision::num;
use crate::metrics::{metric_name, unit, MetricsSnapshot, Readings, METRICS};

/// HPA's default tolerance: a metric within ±10 % of its target asks for no change.
pub const TOLERANCE: f64 = 0.1;

/// Floating-point slack, so that 77/70 counts as "exactly 10 % above" and 4.000000001 as 4.
const EPS: f64 = 1e-9;

/// What one metric or up rule asks for.
#[derive(Clone, Debug)]
struct Ask {
    source: String,
    replicas: u32,
    text: String,
}

/// The combined ask of all metrics and rules.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Combined {
    /// The replica count asked for (not yet clamped to the bounds).
    pub replicas: u32,
    /// The metric or rule that decided.
    pub decided_by: Option<String>,
    /// Why, for people.
    pub text: String,
}

/// Step 1's result.
#[derive(Clone, Debug)]
pub(crate) struct Evaluation {
    /// With missing data filled conservatively: this is the recommendation.
    pub conservative: Combined,
    /// From the readings alone (only to tell whether missing data held a scale-down back).
    pub reported_only: Combined,
    /// "no instance reports memory", "cpu reported by 3 of 5 instances".
    pub incomplete: Vec<String>,
    /// Averages over the instances that report each metric.
    pub averages: BTreeMap<String, f64>,
    /// The spec uses collected metrics, and no instance reports any of them.
    pub blind: bool,
}

/// The averages of every collected metric that at least one instance reports.
pub(crate) fn averages(snapshot: &MetricsSnapshot) -> BTreeMap<String, f64> {
    METRICS
        .iter()
        .filter_map(|&m| Some((metric_name(m).to_string(), snapshot.average(m)?)))
        .collect()
}

/// The target of a threshold metric, if the spec gives it a usable one.
fn target(spec: &Autoscaling, metric: ScalingMetric) -> Option<f64> {
    let t = match metric {
        ScalingMetric::Cpu => spec.cpu_threshold,
        ScalingMetric::Memory => spec.memory_threshold,
        ScalingMetric::RequestsPerMinute => spec.request_threshold,
        ScalingMetric::ResponseTimeMs | ScalingMetric::QueueDepth => return None,
    };
    // Validation rejects these; a spec that skipped validation simply does not use the metric.
    (t.is_finite() && t > 0.0).then_some(t)
}

/// `ceil`, ignoring floating-point dust, saturating at the ends of `u32` (NaN reads as 0).
fn ceil_u32(x: f64) -> u32 {
    if x.is_nan() {
        return 0;
    }
    // `as` saturates: +inf becomes u32::MAX, negatives 0.
    (x - EPS).ceil() as u32
}

/// HPA's per-metric step. `up` is the usage ratio with missing instances at 0, `down` with them
/// at target (`up ≤ down`, so at most one side fires).
fn proportional(current: u32, up: f64, down: f64) -> u32 {
    if up > 1.0 + TOLERANCE + EPS {
        ceil_u32(f64::from(current) * up)
    } else if down < 1.0 - TOLERANCE - EPS {
        ceil_u32(f64::from(current) * down)
    } else {
        current
    }
}

fn rule_name(rule: &ScalingRule, index: usize) -> String {
    match &rule.name {
        Some(n) if !n.trim().is_empty() => n.clone(),
        _ => format!("rules[{index}]"),
    }
}

/// Whether a rule's condition holds: with missing readings filled so that it is less likely to
/// (`conservative`; `None` when no instance reports the metric), and on the readings alone.
struct Condition {
    conservative: Option<bool>,
    reported: bool,
    text: String,
}

fn condition(rule: &ScalingRule, r: Readings, population: f64, target: Option<f64>) -> Condition {
    let name = metric_name(rule.metric);
    let u = unit(rule.metric);
    let Some(avg) = r.average() else {
        return Condition {
            conservative: None,
            reported: false,
            text: format!("no instance reports {name}"),
        };
    };
    let missing = (population - r.count as f64).max(0.0);
    let mut conservative = false;
    let mut reported = false;
    let mut text = format!("{name} {}{u}", num(avg));
    if let Some(x) = rule.above {
        // Missing instances count as idle: they never push an "above" rule over.
        conservative |= r.sum / population > x;
        reported |= avg > x;
        text = format!("{name} {}{u} > {}{u}", num(avg), num(x));
    }
    if let Some(x) = rule.below {
        // Missing instances count as at least the threshold (and at least the metric's target):
        // they never pull a "below" rule under.
        let fill = x.max(target.unwrap_or(x));
        conservative |= (r.sum + missing * fill) / population < x;
        reported |= avg < x;
        text = format!("{name} {}{u} < {}{u}", num(avg), num(x));
    }
    Condition {
        conservative: Some(conservative),
        reported,
        text,
    }
}

/// Combines asks: the highest wins if it is at least `current`; otherwise every ask is below
/// `current` and the fleet may shrink, to the highest ask (no down rules), or by one if a down
/// rule fires (down rules present), or not at all.
fn combine(
    current: u32,
    asks: &[Ask],
    has_down_rules: bool,
    down: Option<(&str, &str)>,
) -> Combined {
    // The first of the highest asks, so ties go to cpu, memory, requestsPerMinute, then rules.
    let top = asks.iter().fold(None::<&Ask>, |best, a| match best {
        Some(b) if b.replicas >= a.replicas => Some(b),
        _ => Some(a),
    });
    match (top, has_down_rules, down) {
        (Some(t), _, _) if t.replicas >= current => Combined {
            replicas: t.replicas,
            decided_by: Some(t.source.clone()),
            text: t.text.clone(),
        },
        (top, true, Some((rule, text))) => Combined {
            replicas: top.map_or(0, |t| t.replicas).max(current.saturating_sub(1)),
            decided_by: Some(rule.to_string()),
            text: format!("rule {rule}: {text}"),
        },
        (Some(t), true, None) => Combined {
            replicas: current,
            decided_by: None,
            text: format!("{}, but no scale-down rule fires", t.text),
        },
        (Some(t), false, _) => Combined {
            replicas: t.replicas,
            decided_by: Some(t.source.clone()),
            text: t.text.clone(),
        },
        (None, _, _) => Combined {
            replicas: current,
            decided_by: None,
            text: "no metric or rule to act on".into(),
        },
    }
}

fn as_refs(d: &Option<(String, String)>) -> Option<(&str, &str)> {
    d.as_ref().map(|(a, b)| (a.as_str(), b.as_str()))
}

/// What the metrics and rules ask for at `current` replicas.
pub(crate) fn evaluate(spec: &Autoscaling, current: u32, snapshot: &MetricsSnapshot) -> Evaluation {
    // Every instance counted in `current` (or listed) is part of the average; the ones without a
    // reading are "missing".
    let population = (current as usize).max(snapshot.instances.len());
    let pop = population as f64;
    let mut conservative: Vec<Ask> = Vec::new();
    let mut reported_only: Vec<Ask> = Vec::new();
    let mut used: Vec<ScalingMetric> = Vec::new();

    for metric in [
        ScalingMetric::Cpu,
        ScalingMetric::Memory,
        ScalingMetric::RequestsPerMinute,
    ] {
        let (Some(t), Some(r)) = (target(spec, metric), snapshot.readings(metric)) else {
            continue;
        };
        used.push(metric);
        let name = metric_name(metric);
        let u = unit(metric);
        let Some(avg) = r.average() else {
            conservative.push(Ask {
                source: name.into(),
                replicas: current,
                text: format!("no instance reports {name}"),
            });
            continue;
        };
        let missing = (pop - r.count as f64).max(0.0);
        let up = r.sum / (pop * t);
        let down = (r.sum + missing * t) / (pop * t);
        let asked = proportional(current, up, down);
        let alone = proportional(current, avg / t, avg / t);
        let ratio = avg / t;
        let mut text = if ratio > 1.0 + TOLERANCE + EPS {
            format!("{name} {}{u} > {}{u}", num(avg), num(t))
        } else if ratio < 1.0 - TOLERANCE - EPS {
            format!("{name} {}{u} < {}{u}", num(avg), num(t))
        } else {
            format!("{name} {}{u} within 10% of {}{u}", num(avg), num(t))
        };
        if alone == current && ratio < 1.0 - TOLERANCE - EPS {
            // ceil(current × ratio) rounds back up to current.
            text.push_str(", not enough to remove an instance");
        }
        if r.count < population {
            text.push_str(&format!(
                " ({} of {population} instances report it)",
                r.count
            ));
        }
        conservative.push(Ask {
            source: name.into(),
            replicas: asked,
            text: text.clone(),
        });
        reported_only.push(Ask {
            source: name.into(),
            replicas: alone,
            text,
        });
    }

    let has_down_rules = spec.rules.iter().any(|r| r.action == ScaleAction::Down);
    let mut down_conservative: Option<(String, String)> = None;
    let mut down_reported: Option<(String, String)> = None;
    for (i, rule) in spec.rules.iter().enumerate() {
        // An uncollected metric's rules never fire.
        let Some(r) = snapshot.readings(rule.metric) else {
            continue;
        };
        if !used.contains(&rule.metric) {
            used.push(rule.metric);
        }
        let name = rule_name(rule, i);
        let c = condition(rule, r, pop, target(spec, rule.metric));
        match rule.action {
            ScaleAction::Up => {
                let hold = |text: String| Ask {
                    source: name.clone(),
                    replicas: current,
                    text,
                };
                match c.conservative {
                    Some(true) => conservative.push(Ask {
                        source: name.clone(),
                        replicas: current.saturating_add(1),
                        text: format!("rule {name}: {}", c.text),
                    }),
                    // The readings say "fire" but the missing instances might be idle: hold, so
                    // that no scale-down happens while part of the fleet says it is overloaded.
                    Some(false) if c.reported => conservative.push(hold(format!(
                        "rule {name}: {} on the {} of {population} instances that report it",
                        c.text, r.count
                    ))),
                    // Unknown: it might fire, so it blocks scale-down.
                    None => conservative.push(hold(format!("rule {name}: {}", c.text))),
                    Some(false) => {}
                }
                if c.reported {
                    reported_only.push(Ask {
                        source: name.clone(),
                        replicas: current.saturating_add(1),
                        text: format!("rule {name}: {}", c.text),
                    });
                }
            }
            ScaleAction::Down => {
                if c.conservative == Some(true) && down_conservative.is_none() {
                    down_conservative = Some((name.clone(), c.text.clone()));
                }
                if c.reported && down_reported.is_none() {
                    down_reported = Some((name, c.text));
                }
            }
        }
    }

    let mut incomplete = Vec::new();
    let mut any_reading = false;
    for &m in &used {
        if let Some(r) = snapshot.readings(m) {
            let name = metric_name(m);
            any_reading |= r.count > 0;
            if r.count == 0 {
                incomplete.push(format!("no instance reports {name}"));
            } else if r.count < population {
                incomplete.push(format!(
                    "{name} reported by {} of {population} instances",
                    r.count
                ));
            }
        }
    }

    Evaluation {
        conservative: combine(
            current,
            &conservative,
            has_down_rules,
            as_refs(&down_conservative),
        ),
        reported_only: combine(
            current,
            &reported_only,
            has_down_rules,
            as_refs(&down_reported),
        ),
        blind: !used.is_empty() && !any_reading,
        incomplete,
        averages: averages(snapshot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_is_hpa_formula_with_tolerance() {
        // ceil(3 × 1.3) = 4
        assert_eq!(proportional(3, 1.3, 1.3), 4);
        // 10 % above target exactly is inside the band.
        assert_eq!(proportional(3, 77.0 / 70.0, 77.0 / 70.0), 3);
        // ceil(5 × 0.8) = 4, not 5 from floating-point dust.
        assert_eq!(proportional(5, 0.8, 0.8), 4);
        assert_eq!(proportional(1, f64::INFINITY, f64::INFINITY), u32::MAX);
        assert_eq!(proportional(0, f64::INFINITY, f64::INFINITY), 0);
    }
}
