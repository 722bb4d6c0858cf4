//! The circuit breaker for calls to backends (`spec.circuitBreaker`, the seed's
//! `circuit-breaker-*`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::yes;
use crate::quantity::Duration;

/// Circuit breaker (`circuit-breaker-*`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreaker {
    /// `circuit-breaker-enabled`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `circuit-breaker-threshold`: consecutive failures that open the circuit (default 5).
    #[serde(default = "default_cb_threshold")]
    pub threshold: u32,
    /// `circuit-breaker-timeout`: how long the circuit stays open (default 30s).
    #[serde(default = "default_cb_timeout")]
    pub timeout: Duration,
    /// `circuit-breaker-half-open-requests`: trial calls when half-open (default 3).
    #[serde(default = "default_half_open")]
    pub half_open_requests: u32,
}

fn default_cb_threshold() -> u32 {
    5
}
fn default_cb_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_half_open() -> u32 {
    3
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            enabled: true,
            threshold: default_cb_threshold(),
            timeout: default_cb_timeout(),
            half_open_requests: default_half_open(),
        }
    }
}
