//! The operator's own health checks of each container (`spec.health`, the seed's `health-*`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::yes;
use crate::quantity::Duration;

/// The operator's own health checks (`health-*`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// `health-enabled`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `health-endpoint`.
    #[serde(default = "default_health_endpoint")]
    pub endpoint: String,
    /// `health-interval` (default 10s).
    #[serde(default = "default_proxy_health_interval")]
    pub interval: Duration,
    /// `health-timeout` (default 5s).
    #[serde(default = "default_health_timeout")]
    pub timeout: Duration,
    /// `health-retries`: failed probes in a row before an instance is unhealthy (default 3).
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_retries() -> u32 {
    3
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            enabled: true,
            endpoint: default_health_endpoint(),
            interval: default_proxy_health_interval(),
            timeout: default_health_timeout(),
            retries: default_retries(),
        }
    }
}

// Shared with the load balancer's `ProxyHealthCheck`, whose defaults are the same.
pub(super) fn default_health_endpoint() -> String {
    "/api/health".into()
}
pub(super) fn default_proxy_health_interval() -> Duration {
    Duration::from_secs(10)
}
pub(super) fn default_health_timeout() -> Duration {
    Duration::from_secs(5)
}
