//! The cache (Redis) topology passed to the bots (`spec.cache`, the seed's `cache-*`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
