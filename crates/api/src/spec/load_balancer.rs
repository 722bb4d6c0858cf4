//! The Caddy load balancer in front of the containers (`spec.loadBalancer`): routes,
//! proxy health checks, security headers, encodings and rate limits.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::health::{
    default_health_endpoint, default_health_timeout, default_proxy_health_interval,
};
use super::yes;
use crate::quantity::Duration;

/// The Caddy load balancer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    /// Whether the operator manages a Caddy server for this cluster.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Host names the site answers to (e.g. `bot.example.com`). Empty: any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Address Caddy listens on, e.g. "127.0.0.1:8443", or ":443" with `spec.privilegedPorts`.
    pub listen: String,
    /// Caddy's automatic HTTPS for `hosts`. Off by default: turning it on makes Caddy contact a
    /// public ACME CA for real host names.
    #[serde(default)]
    pub auto_https: bool,
    /// Routes, matched in order.
    #[serde(default = "default_routes")]
    pub routes: Vec<Route>,
    /// Default active health check for routes that do not set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<ProxyHealthCheck>,
    /// Security headers (the seed's `(common)` snippet).
    #[serde(default)]
    pub security_headers: SecurityHeaders,
    /// Response encodings, in preference order.
    #[serde(default = "default_encodings")]
    pub encodings: Vec<Encoding>,
    /// Rate limiting (`rate-limit-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// On scale-down, how long to wait for a removed instance's requests in flight to finish
    /// before stopping it (the seed's `botserver drain; sleep 30`).
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: Duration,
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_routes() -> Vec<Route> {
    vec![Route {
        name: "default".into(),
        path: None,
        policy: LbPolicy::RoundRobin,
        try_duration: None,
        fail_duration: None,
        retries: None,
        health_check: None,
    }]
}
fn default_encodings() -> Vec<Encoding> {
    vec![Encoding::Gzip, Encoding::Zstd]
}

/// One route of the load balancer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// Route name (unique in the cluster), used in Caddy ids and status.
    pub name: String,
    /// Path matcher, e.g. "/api/*" or "/ws*". Absent: every path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Load-balancing policy.
    #[serde(default)]
    pub policy: LbPolicy,
    /// `lb_try_duration`: how long to retry other upstreams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub try_duration: Option<Duration>,
    /// `fail_duration`: how long a failed upstream stays marked down (passive health check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_duration: Option<Duration>,
    /// `lb_retries`: how many times to retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Active health check for this route's upstreams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<ProxyHealthCheck>,
}

/// Caddy's load-balancing policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Rotate through backends.
    #[default]
    RoundRobin,
    /// First available backend.
    First,
    /// Fewest active connections.
    LeastConn,
    /// Consistent by client IP.
    IpHash,
    /// Sticky sessions via a cookie.
    Cookie,
    /// Random backend.
    Random,
}

/// An active health check run by the proxy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyHealthCheck {
    /// `health_uri`.
    #[serde(default = "default_health_endpoint")]
    pub uri: String,
    /// `health_interval`.
    #[serde(default = "default_proxy_health_interval")]
    pub interval: Duration,
    /// `health_timeout`.
    #[serde(default = "default_health_timeout")]
    pub timeout: Duration,
}

/// Security headers added to every response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityHeaders {
    /// Add the headers below.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Remove the `Server` header (`-Server`).
    #[serde(default = "yes")]
    pub remove_server: bool,
    /// Headers to set.
    #[serde(default = "default_security_headers")]
    pub headers: BTreeMap<String, String>,
}

fn default_security_headers() -> BTreeMap<String, String> {
    [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        SecurityHeaders {
            enabled: true,
            remove_server: true,
            headers: default_security_headers(),
        }
    }
}

/// Response encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// Rate limiting (`rate-limit-*`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// `rate-limit-enabled`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `rate-limit-requests`: requests allowed per window.
    pub requests: u32,
    /// `rate-limit-window`.
    #[serde(default = "default_rate_window")]
    pub window: Duration,
    /// `rate-limit-burst`.
    #[serde(default)]
    pub burst: u32,
    /// `rate-limit-by`: what identifies a client.
    #[serde(default)]
    pub by: RateLimitKey,
    /// Per-endpoint limits (`rate-limit-api-chat,30` → path `/api/chat/*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointRateLimit>,
}

fn default_rate_window() -> Duration {
    Duration::from_secs(60)
}

/// What identifies a client for rate limiting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitKey {
    /// The client's IP address.
    #[default]
    Ip,
    /// The `Authorization` header.
    Header,
}

/// A stricter limit for one path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointRateLimit {
    /// Path matcher, e.g. "/api/auth/*".
    pub path: String,
    /// Requests allowed per window.
    pub requests: u32,
    /// Window; defaults to the global window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
}
