//! The BotCluster spec: what a user declares. Every parameter of General Bots'
//! "Scaling and Load Balancing" chapter has a field here, with the chapter's defaults.
//!
//! This module holds the top level ([`BotClusterSpec`], [`PortRange`], [`FileSpec`]); each
//! section of the spec has a module of its own, and every type is re-exported here, so
//! `spec::X` is the one path to any of them.

mod autoscaling;
mod cache;
mod circuit_breaker;
mod fallback;
mod health;
mod load_balancer;
mod metrics;
mod resources;
mod sharding;
mod update_strategy;
mod vector_db;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use autoscaling::{Autoscaling, ScaleAction, ScalingMetric, ScalingRule};
pub use cache::{Cache, CacheMode, Sentinel};
pub use circuit_breaker::CircuitBreaker;
pub use fallback::{Fallback, LlmFallback, ModeFallback};
pub use health::HealthCheck;
pub use load_balancer::{
    Encoding, EndpointRateLimit, LbPolicy, LoadBalancer, ProxyHealthCheck, RateLimit, RateLimitKey,
    Route, SecurityHeaders,
};
pub use metrics::MetricsToggles;
pub use resources::{NetworkLimits, Resources};
pub use sharding::{
    DeletePolicy, GeoSharding, HashAlgorithm, HashSharding, KeyRange, NamedShard, RangeSharding,
    Rebalance, ShardStrategy, Sharding, TenantSharding, DEFAULT_MAP_PATH,
};
pub use update_strategy::UpdateStrategy;
pub use vector_db::VectorDb;

/// Desired state of a fleet of botserver containers behind a load balancer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BotClusterSpec {
    /// LXD image every container is created from: an alias, or a fingerprint (12 to 64
    /// lowercase hex digits, a unique prefix is enough). Changing it rolls the containers
    /// over (see `updateStrategy`).
    pub image: String,
    /// Number of containers when autoscaling is off; the starting count when it is on.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Suspends reconciling, like Flux's `suspend`. While true, the operator keeps observing the
    /// containers and reporting status (condition `Suspended`), but changes nothing: it creates,
    /// starts, updates and deletes no container, rewrites no load balancer and does not scale,
    /// even when the spec or the containers change meanwhile. Setting it back to false resumes
    /// from whatever is observed then. Default false.
    #[serde(default)]
    pub suspend: bool,
    /// TCP port the botserver listens on inside each container.
    #[serde(default = "default_container_port")]
    pub container_port: u16,
    /// Host ports for the per-container LXD proxy devices. Instance N gets `start + N`.
    /// When absent, the operator assigns ports from its own range (`botctl serve --port-range`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ports: Option<PortRange>,
    /// Allow host ports (`hostPorts`) and a load balancer port below 1024. Refused otherwise:
    /// binding them needs root or `CAP_NET_BIND_SERVICE`, and they usually belong to the host's
    /// own services (ssh, DNS, a web server). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged_ports: bool,
    /// Host address the proxy devices listen on.
    #[serde(default = "default_listen_address")]
    pub listen_address: String,
    /// LXD profiles applied to each container.
    #[serde(default = "default_profiles")]
    pub profiles: Vec<String>,
    /// Resource limits of each container.
    #[serde(default)]
    pub resources: Resources,
    /// Files placed in each container before it starts (and updated in place).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSpec>,
    /// Extra environment for the botserver, pushed as a file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// How replacements roll out.
    #[serde(default)]
    pub update_strategy: UpdateStrategy,
    /// Autoscaling (the seed's `scale-*` settings).
    #[serde(default)]
    pub autoscaling: Autoscaling,
    /// The Caddy load balancer in front of the containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// Health checks the operator runs against each container (`health-*`).
    #[serde(default)]
    pub health: HealthCheck,
    /// Circuit breaker for calls to backends (`circuit-breaker-*`).
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
    /// Graceful degradation settings passed to the bots (`fallback-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// Cache (Redis) topology passed to the bots (`cache-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    /// Vector database (Qdrant) sharding (`qdrant-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_db: Option<VectorDb>,
    /// Data sharding (`shard-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharding: Option<Sharding>,
    /// Which scaling metrics the operator exports (`metrics-*`).
    #[serde(default)]
    pub metrics: MetricsToggles,
}

fn default_replicas() -> u32 {
    1
}
fn default_container_port() -> u16 {
    8080
}
fn default_listen_address() -> String {
    "127.0.0.1".into()
}
fn default_profiles() -> Vec<String> {
    vec!["default".into()]
}
// Defaults shared by the section modules below.
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}

/// An inclusive range of TCP ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRange {
    /// First port (inclusive).
    pub start: u16,
    /// Last port (inclusive).
    pub end: u16,
}

/// A file placed in every container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute path inside the container.
    pub path: String,
    /// The file's content.
    pub content: String,
    /// Octal mode, e.g. "0644".
    #[serde(default = "default_mode")]
    pub mode: String,
}

fn default_mode() -> String {
    "0644".into()
}
