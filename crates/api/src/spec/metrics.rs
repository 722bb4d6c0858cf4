//! Which scaling metrics the operator exports (`spec.metrics`, the seed's `metrics-*`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::yes;

/// Which scaling metrics the operator exports (`metrics-*`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsToggles {
    /// `metrics-scaling-enabled`.
    #[serde(default = "yes")]
    pub scaling: bool,
    /// `metrics-container-count`.
    #[serde(default = "yes")]
    pub container_count: bool,
    /// `metrics-scaling-events`.
    #[serde(default = "yes")]
    pub scaling_events: bool,
    /// `metrics-load-distribution`.
    #[serde(default = "yes")]
    pub load_distribution: bool,
}

impl Default for MetricsToggles {
    fn default() -> Self {
        MetricsToggles {
            scaling: true,
            container_count: true,
            scaling_events: true,
            load_distribution: true,
        }
    }
}
