//! Rules of `spec.autoscaling`: bounds, thresholds, intervals and custom rules.

use super::{Errors, MAX_INSTANCES};
use crate::spec::{Autoscaling, ScalingMetric};

pub(super) fn validate_autoscaling(a: &Autoscaling, e: &mut Errors) {
    e.check(
        a.max_instances >= 1,
        "spec.autoscaling.maxInstances",
        || "must be at least 1".into(),
    );
    e.check(
        a.max_instances <= MAX_INSTANCES,
        "spec.autoscaling.maxInstances",
        || {
            format!(
                "{} is more than {MAX_INSTANCES}; lower maxInstances",
                a.max_instances
            )
        },
    );
    e.check(
        a.min_instances <= a.max_instances,
        "spec.autoscaling.minInstances",
        || {
            format!(
                "{} is greater than maxInstances ({}); lower minInstances or raise maxInstances",
                a.min_instances, a.max_instances
            )
        },
    );
    for (f, v) in [
        ("spec.autoscaling.cpuThreshold", a.cpu_threshold),
        ("spec.autoscaling.memoryThreshold", a.memory_threshold),
    ] {
        e.check(v > 0.0 && v <= 100.0, f, || {
            format!("{v} is not a percentage between 0 and 100")
        });
    }
    e.check(
        a.request_threshold > 0.0,
        "spec.autoscaling.requestThreshold",
        || {
            format!(
                "{} must be above 0 requests per minute",
                a.request_threshold
            )
        },
    );
    e.duration("spec.autoscaling.cooldown", &a.cooldown);
    if let Some(i) = e.positive_duration("spec.autoscaling.checkInterval", &a.check_interval) {
        e.check(
            i >= std::time::Duration::from_secs(1),
            "spec.autoscaling.checkInterval",
            || {
                format!(
                    "{} is shorter than 1s; metrics are not that fresh",
                    a.check_interval
                )
            },
        );
    }
    for (i, r) in a.rules.iter().enumerate() {
        let f = format!("spec.autoscaling.rules[{i}]");
        match (r.above, r.below) {
            (Some(_), Some(_)) => e.push(&f, "sets both above and below; split it into two rules"),
            (None, None) => e.push(
                &f,
                "sets neither above nor below; say when the rule fires, e.g. above: 2000",
            ),
            (Some(v), None) | (None, Some(v)) => {
                if matches!(r.metric, ScalingMetric::Cpu | ScalingMetric::Memory) {
                    e.check((0.0..=100.0).contains(&v), &f, || {
                        format!("{v} is not a percentage between 0 and 100")
                    });
                } else {
                    e.check(v >= 0.0, &f, || format!("{v} must not be negative"));
                }
            }
        }
    }
}
