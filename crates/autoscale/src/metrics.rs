//! What the controller observed: one reading per instance and metric, any of which may be missing.

use botcluster_api::spec::ScalingMetric;
use serde::{Deserialize, Serialize};

/// Every metric the autoscaler knows, in the order reasons and tie-breaks use.
pub const METRICS: [ScalingMetric; 5] = [
    ScalingMetric::Cpu,
    ScalingMetric::Memory,
    ScalingMetric::RequestsPerMinute,
    ScalingMetric::ResponseTimeMs,
    ScalingMetric::QueueDepth,
];

/// The metric's name in reasons, `decided_by` and [`crate::Decision::metrics`]; the same
/// camelCase spelling as in the spec (`cpu`, `memory`, `requestsPerMinute`, `responseTimeMs`,
/// `queueDepth`).
pub fn metric_name(metric: ScalingMetric) -> &'static str {
    match metric {
        ScalingMetric::Cpu => "cpu",
        ScalingMetric::Memory => "memory",
        ScalingMetric::RequestsPerMinute => "requestsPerMinute",
        ScalingMetric::ResponseTimeMs => "responseTimeMs",
        ScalingMetric::QueueDepth => "queueDepth",
    }
}

/// The unit written after a value of the metric in reasons.
pub(crate) fn unit(metric: ScalingMetric) -> &'static str {
    match metric {
        ScalingMetric::Cpu | ScalingMetric::Memory => "%",
        ScalingMetric::RequestsPerMinute => "/min",
        ScalingMetric::ResponseTimeMs => "ms",
        ScalingMetric::QueueDepth => "",
    }
}

/// One instance's readings. `None` means "no reading this time" (the instance is booting, its
/// health endpoint timed out, LXD did not answer...), never "zero".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceMetrics {
    /// CPU use as % of the container's `limits.cpu` (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Memory use as % of the container's `limits.memory` (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_percent: Option<f64>,
    /// Requests per minute this instance served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<f64>,
    /// Average response time, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_time_ms: Option<f64>,
    /// Queue depth from the bot's health endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<f64>,
}

impl InstanceMetrics {
    /// The reading for `metric`, if any.
    pub fn get(&self, metric: ScalingMetric) -> Option<f64> {
        match metric {
            ScalingMetric::Cpu => self.cpu_percent,
            ScalingMetric::Memory => self.memory_percent,
            ScalingMetric::RequestsPerMinute => self.requests_per_minute,
            ScalingMetric::ResponseTimeMs => self.response_time_ms,
            ScalingMetric::QueueDepth => self.queue_depth,
        }
    }

    /// Sets (or clears, with `None`) the reading for `metric`.
    pub fn set(&mut self, metric: ScalingMetric, value: Option<f64>) {
        let slot = match metric {
            ScalingMetric::Cpu => &mut self.cpu_percent,
            ScalingMetric::Memory => &mut self.memory_percent,
            ScalingMetric::RequestsPerMinute => &mut self.requests_per_minute,
            ScalingMetric::ResponseTimeMs => &mut self.response_time_ms,
            ScalingMetric::QueueDepth => &mut self.queue_depth,
        };
        *slot = value;
    }

    /// This instance with a reading for `metric`: `InstanceMetrics::default().with(Cpu, 91.0)`.
    pub fn with(mut self, metric: ScalingMetric, value: f64) -> Self {
        self.set(metric, Some(value));
        self
    }
}

/// Everything observed at one check.
///
/// `instances` are the instances counted in the `current` replica count passed to
/// [`crate::decide`]. An instance that is counted but absent from this list (still booting, say)
/// has every metric missing. `uncollected` lists metrics the controller does not gather at all by
/// design (for example `requestsPerMinute` when there is no load balancer to count requests):
/// those are ignored, whereas a collected metric that no instance reports blocks scale-down.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    /// One entry per reporting instance (order does not matter).
    #[serde(default)]
    pub instances: Vec<InstanceMetrics>,
    /// Metrics not gathered at all; rules on them never fire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncollected: Vec<ScalingMetric>,
}

/// The usable readings of one metric: NaN dropped, negatives read as zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Readings {
    pub sum: f64,
    pub count: usize,
}

impl Readings {
    pub fn average(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

impl MetricsSnapshot {
    /// A snapshot of these instances, every metric collected.
    pub fn new(instances: Vec<InstanceMetrics>) -> Self {
        MetricsSnapshot {
            instances,
            uncollected: Vec::new(),
        }
    }

    /// `n` instances reporting the same readings.
    pub fn uniform(n: u32, instance: InstanceMetrics) -> Self {
        MetricsSnapshot::new(vec![instance; n as usize])
    }

    /// This snapshot, with `metric` declared as not collected.
    pub fn without(mut self, metric: ScalingMetric) -> Self {
        if !self.uncollected.contains(&metric) {
            self.uncollected.push(metric);
        }
        self
    }

    /// Whether the controller gathers `metric` at all.
    pub fn is_collected(&self, metric: ScalingMetric) -> bool {
        !self.uncollected.contains(&metric)
    }

    /// The average of `metric` over the instances that report it.
    pub fn average(&self, metric: ScalingMetric) -> Option<f64> {
        self.readings(metric).and_then(|r| r.average())
    }

    /// The usable readings of a collected metric; `None` for an uncollected one.
    pub(crate) fn readings(&self, metric: ScalingMetric) -> Option<Readings> {
        if !self.is_collected(metric) {
            return None;
        }
        let mut r = Readings { sum: 0.0, count: 0 };
        for v in self.instances.iter().filter_map(|i| i.get(metric)) {
            // NaN is no reading; a negative reading is a counter glitch and reads as idle.
            // +inf is kept: it is "more load than anything", which keeps decisions monotone.
            if v.is_nan() {
                continue;
            }
            r.sum += v.max(0.0);
            r.count += 1;
        }
        Some(r)
    }
}
