//! What the operator observed: written only by the controller, through the status endpoint.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::Condition;

/// Observed state of a BotCluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BotClusterStatus {
    /// The generation this status was computed for.
    #[serde(default)]
    pub observed_generation: u64,
    /// `Ready`, `Progressing`, `Degraded` and others, Kubernetes-style.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Containers that exist.
    #[serde(default)]
    pub replicas: u32,
    /// Containers answering their health check.
    #[serde(default)]
    pub ready_replicas: u32,
    /// The count the operator is converging to (spec or autoscaler).
    #[serde(default)]
    pub desired_replicas: u32,
    /// Containers made from the current spec (the rest wait for a rolling update).
    #[serde(default)]
    pub updated_replicas: u32,
    /// One entry per container.
    #[serde(default)]
    pub instances: Vec<InstanceStatus>,
    /// The load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyStatus>,
    /// The autoscaler's last decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerStatus>,
    /// Shards and their state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardStatus>,
    /// The published shard map, a rebalance waiting for approval, tenant databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_map: Option<ShardMapStatus>,
    /// The cache nodes (`spec.cache`), as last pinged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_nodes: Vec<CacheNodeStatus>,
    /// Error backoff of the reconcile loop, when failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffStatus>,
    /// RFC 3339 time of the last reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<String>,
}

/// One container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// LXD instance name.
    pub name: String,
    /// Ordinal in the cluster.
    pub ordinal: u32,
    /// LXD state: Running, Stopped, ...
    pub state: String,
    /// Host port of its proxy device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// URL reaching it through the proxy device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Passed its last health checks.
    #[serde(default)]
    pub ready: bool,
    /// healthy, degraded, unhealthy or unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// CPU use as % of its limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Memory in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Why it is not ready, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The load balancer as observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyStatus {
    /// Caddy's config matches the spec.
    pub synced: bool,
    /// Hash of the rendered config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// The URL that load-balances over the instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Last error talking to Caddy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Upstreams and their state.
    #[serde(default)]
    pub upstreams: Vec<UpstreamStatus>,
}

/// One upstream of the proxy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamStatus {
    /// host:port.
    pub address: String,
    /// Requests in flight.
    #[serde(default)]
    pub num_requests: u64,
    /// Failures counted by passive health checks.
    #[serde(default)]
    pub fails: u64,
}

/// The autoscaler's view.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    /// Current metric values by name (cpu, memory, requestsPerMinute, ...).
    #[serde(default)]
    pub current_metrics: BTreeMap<String, f64>,
    /// What the autoscaler wants.
    pub desired_replicas: u32,
    /// The rule or metric that decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// RFC 3339 time of the last scaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
    /// A sentence for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One shard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// Shard name.
    pub name: String,
    /// Ready to serve.
    pub ready: bool,
    /// Keys or tenants mapped to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<u64>,
    /// A sentence for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The shard sub-resource (`spec.sharding`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardMapStatus {
    /// The map bots route with (also in every container's map file and at `/shards`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<botcluster_shardmap::ShardMap>,
    /// A change that moves keys, waiting for `botctl shards approve NAME` (`rebalance: manual`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<botcluster_shardmap::Rebalance>,
    /// How evenly the published map spreads the keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<botcluster_shardmap::Balance>,
    /// Tenant databases (strategy `tenant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<TenantDatabasesStatus>,
}

/// One Redis node or sentinel of `spec.cache`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheNodeStatus {
    /// `host:port`.
    pub address: String,
    /// `node` or `sentinel`.
    pub role: String,
    /// It answered `PING` with `PONG`.
    pub ok: bool,
    /// What went wrong, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Tenant databases on the PostgreSQL server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDatabasesStatus {
    /// The server (its URL without the password).
    pub server: String,
    /// Listed tenants' databases that exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ready: Vec<String>,
    /// Databases of tenants no longer listed, kept (`deletePolicy: Retain`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<String>,
    /// Listed tenants' databases that are missing (not created yet, or failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// Reconcile error backoff.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackoffStatus {
    /// Consecutive failed reconciles.
    pub failures: u32,
    /// Seconds until the next try.
    pub retry_after_seconds: f64,
    /// The last error.
    pub last_error: String,
}
