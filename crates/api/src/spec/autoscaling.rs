//! Autoscaling (`spec.autoscaling`, the seed's `scale-*` settings) and its custom rules.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::Duration;

/// Autoscaling, with the seed's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Autoscaling {
    /// `scale-enabled` (default false).
    #[serde(default)]
    pub enabled: bool,
    /// `scale-min-instances` (default 1).
    #[serde(default = "default_min")]
    pub min_instances: u32,
    /// `scale-max-instances` (default 10).
    #[serde(default = "default_max")]
    pub max_instances: u32,
    /// `scale-cpu-threshold`: CPU % of `limits.cpu` that triggers scale-up (default 70).
    #[serde(default = "default_cpu_threshold")]
    pub cpu_threshold: f64,
    /// `scale-memory-threshold`: memory % of `limits.memory` that triggers scale-up (default 80).
    #[serde(default = "default_memory_threshold")]
    pub memory_threshold: f64,
    /// `scale-request-threshold`: requests per minute per instance that trigger scale-up (default 1000).
    #[serde(default = "default_request_threshold")]
    pub request_threshold: f64,
    /// `scale-cooldown-seconds`: wait between scaling events; also the scale-down window (default 300s).
    #[serde(default = "default_cooldown")]
    pub cooldown: Duration,
    /// `scale-check-interval`: time between metric checks (default 30s).
    #[serde(default = "default_check_interval")]
    pub check_interval: Duration,
    /// Custom rules (`scale-rule-*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<ScalingRule>,
}

fn default_min() -> u32 {
    1
}
fn default_max() -> u32 {
    10
}
fn default_cpu_threshold() -> f64 {
    70.0
}
fn default_memory_threshold() -> f64 {
    80.0
}
fn default_request_threshold() -> f64 {
    1000.0
}
fn default_cooldown() -> Duration {
    Duration::from_secs(300)
}
fn default_check_interval() -> Duration {
    Duration::from_secs(30)
}

impl Default for Autoscaling {
    fn default() -> Self {
        Autoscaling {
            enabled: false,
            min_instances: default_min(),
            max_instances: default_max(),
            cpu_threshold: default_cpu_threshold(),
            memory_threshold: default_memory_threshold(),
            request_threshold: default_request_threshold(),
            cooldown: default_cooldown(),
            check_interval: default_check_interval(),
            rules: Vec::new(),
        }
    }
}

/// A custom scaling rule: when `metric` is above (or below) a value, scale up (or down).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScalingRule {
    /// A name for events and status, e.g. "response-time".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The metric the rule watches.
    pub metric: ScalingMetric,
    /// Fires when the metric is above this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Fires when the metric is below this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// What to do when it fires.
    pub action: ScaleAction,
}

/// Metrics a scaling rule can watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ScalingMetric {
    /// CPU % of `limits.cpu`, averaged over instances.
    Cpu,
    /// Memory % of `limits.memory`, averaged over instances.
    Memory,
    /// Requests per minute per instance.
    RequestsPerMinute,
    /// Average response time in milliseconds.
    ResponseTimeMs,
    /// Queue depth reported by the bots' health endpoint.
    QueueDepth,
}

/// Scale direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ScaleAction {
    /// Add an instance.
    Up,
    /// Remove an instance.
    Down,
}
