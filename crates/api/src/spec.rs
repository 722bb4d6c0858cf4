//! The BotCluster spec: what a user declares. Every parameter of General Bots'
//! "Scaling and Load Balancing" chapter has a field here, with the chapter's defaults.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::{BitRate, ByteSize, CpuLimit, Duration};

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
    /// TCP port the botserver listens on inside each container.
    #[serde(default = "default_container_port")]
    pub container_port: u16,
    /// Host ports for the per-container LXD proxy devices. Instance N gets `start + N`.
    /// When absent, the operator assigns ports from its own range (`botctl serve --port-range`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ports: Option<PortRange>,
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
fn yes() -> bool {
    true
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

/// Per-container limits, mapped to LXD's `limits.*` keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// `limits.cpu`: a count of CPUs (4) or a CPU set ("0-1").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuLimit>,
    /// `limits.memory`: "8GB", "512MiB".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// `limits.disk.priority`, 0-10. Needs the blkio cgroup controller on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_priority: Option<u8>,
    /// `limits.processes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u32>,
    /// Network shaping of the container's NIC. Needs a NIC (see `nic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkLimits>,
}

/// Bandwidth limits of a NIC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkLimits {
    /// LXD network (bridge) the NIC attaches to. Without one, LXD cannot shape traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic: Option<String>,
    /// `limits.ingress`, e.g. "100Mbit".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<BitRate>,
    /// `limits.egress`, e.g. "100Mbit".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<BitRate>,
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

/// Rolling update settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStrategy {
    /// How many instances may be unavailable during a replacement.
    #[serde(default = "one")]
    pub max_unavailable: u32,
    /// How many extra instances may exist during a replacement.
    #[serde(default = "one")]
    pub max_surge: u32,
}

fn one() -> u32 {
    1
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        UpdateStrategy {
            max_unavailable: 1,
            max_surge: 1,
        }
    }
}

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
    /// Address Caddy listens on, e.g. "127.0.0.1:8443" or ":443".
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

fn default_health_endpoint() -> String {
    "/api/health".into()
}
fn default_proxy_health_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_health_timeout() -> Duration {
    Duration::from_secs(5)
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

/// Graceful degradation (`fallback-*`), passed to the bots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fallback {
    /// `fallback-llm-*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmFallback>,
    /// `fallback-cache-*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<ModeFallback>,
    /// `fallback-vectordb-*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_db: Option<ModeFallback>,
}

/// Fallback LLM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmFallback {
    /// `fallback-llm-enabled`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `fallback-llm-provider`, e.g. "local".
    pub provider: String,
    /// `fallback-llm-model`.
    pub model: String,
}

/// A fallback that is a mode name ("memory", "keyword-search").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModeFallback {
    /// Whether the fallback is on.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The mode, e.g. "memory" for the cache or "keyword-search" for the vector DB.
    pub mode: String,
}

/// Cache topology (`cache-*`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cache {
    /// `cache-mode`.
    pub mode: CacheMode,
    /// `cache-nodes`: "host:port" of each node (single: one; cluster: several).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// `cache-replicas`: replicas per primary in cluster mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Sentinel settings (mode `sentinel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<Sentinel>,
}

/// Cache modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// One Redis.
    Single,
    /// Redis Cluster.
    Cluster,
    /// Redis Sentinel.
    Sentinel,
}

/// Redis Sentinel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sentinel {
    /// `cache-sentinel-master`: the master group name.
    pub master: String,
    /// `cache-sentinel-nodes`: "host:port" of each sentinel.
    pub nodes: Vec<String>,
}

/// Qdrant collection sharding (`qdrant-*`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VectorDb {
    /// `qdrant-shard-count` (`shard_number`).
    #[serde(default = "one")]
    pub shard_count: u32,
    /// `qdrant-replication-factor`.
    #[serde(default = "one")]
    pub replication_factor: u32,
    /// `qdrant-write-consistency` (`write_consistency_factor`): an integer from 1 to
    /// `replicationFactor`. Qdrant has no "majority" value.
    #[serde(default = "one", deserialize_with = "write_consistency")]
    #[schemars(range(min = 1))]
    pub write_consistency_factor: u32,
}

fn write_consistency<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u32),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(n),
        Raw::Text(t) => Err(serde::de::Error::custom(format!(
            "\"{t}\" is not a Qdrant write_consistency_factor: Qdrant takes an integer from 1 to \
             replicationFactor (it has no \"majority\"); for a majority of N replicas write N/2+1, \
             e.g. 2 for replicationFactor 2 or 3"
        ))),
    }
}

/// Data sharding (`shard-*`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sharding {
    /// `shard-strategy`.
    pub strategy: ShardStrategy,
    /// Settings of the tenant strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantSharding>,
    /// Settings of the hash strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<HashSharding>,
    /// Settings of the range strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeSharding>,
    /// Settings of the geo strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<GeoSharding>,
}

/// Sharding strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShardStrategy {
    /// A database per tenant.
    Tenant,
    /// Hash of a key.
    Hash,
    /// Key ranges.
    Range,
    /// By region.
    Geo,
}

impl ShardStrategy {
    /// The lowercase name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            ShardStrategy::Tenant => "tenant",
            ShardStrategy::Hash => "hash",
            ShardStrategy::Range => "range",
            ShardStrategy::Geo => "geo",
        }
    }
}

/// Tenant sharding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSharding {
    /// `shard-tenant-db-prefix`, e.g. "gb_tenant_".
    #[serde(default = "default_tenant_prefix")]
    pub db_prefix: String,
    /// `shard-auto-create`: create a tenant's database on first use.
    #[serde(default = "yes")]
    pub auto_create: bool,
}

fn default_tenant_prefix() -> String {
    "gb_tenant_".into()
}

/// Hash sharding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashSharding {
    /// `shard-count`.
    pub shard_count: u32,
    /// `shard-key`, e.g. "user_id".
    pub key: String,
    /// `shard-algorithm`.
    #[serde(default)]
    pub algorithm: HashAlgorithm,
}

/// Hash algorithms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    /// `key % shardCount` (the seed's); moves most keys when the count changes.
    #[default]
    Modulo,
    /// Fixed hash slots; a count change moves about 1/(n+1) of the keys.
    Slots,
}

/// Range sharding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RangeSharding {
    /// `shard-ranges`, in order, without gaps or overlaps.
    pub ranges: Vec<KeyRange>,
}

/// One key range → shard. `to` absent means unbounded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRange {
    /// First key (inclusive).
    pub from: u64,
    /// Last key (inclusive); absent: no upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    /// Shard name.
    pub shard: String,
}

/// Geographic sharding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeoSharding {
    /// `shard-geo-<region>`: region → database host.
    pub regions: BTreeMap<String, String>,
    /// `shard-default`: the database for unknown regions.
    pub default: String,
}

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
