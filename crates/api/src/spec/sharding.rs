//! Data sharding (`spec.sharding`, the seed's `shard-*`): tenant, hash, range and geo strategies.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::yes;

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
    /// Where the published shard map is written in every container (JSON, replaced
    /// atomically, only when it changed).
    #[serde(default = "default_map_path")]
    pub map_path: String,
    /// `manual` (default): a change that moves keys waits for approval; `auto`: published at
    /// once.
    #[serde(default)]
    pub rebalance: Rebalance,
    /// The id of the pending rebalance to publish (`botctl shards approve NAME` sets it; the
    /// id is shown in status and by `botctl shards NAME`). An id of another plan approves
    /// nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_rebalance: Option<String>,
}

/// The map file's default path: the seed's config directory.
pub const DEFAULT_MAP_PATH: &str = "/opt/gbo/conf/shards.json";

fn default_map_path() -> String {
    DEFAULT_MAP_PATH.into()
}

/// When a map change that moves keys is published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Rebalance {
    /// After approval of its plan.
    #[default]
    Manual,
    /// At once.
    Auto,
}

/// What happens to a tenant's database when the tenant leaves the spec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletePolicy {
    /// Kept, and listed in status (no data is lost by editing YAML).
    #[default]
    Retain,
    /// Dropped (only a database the operator created for this cluster).
    Delete,
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
    /// `shard-auto-create`: create each listed tenant's database.
    #[serde(default = "yes")]
    pub auto_create: bool,
    /// The tenants; each gets the database `<dbPrefix><tenant>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// The PostgreSQL server, as a URL without a password
    /// (`postgres://botcluster@db.example:5432/postgres`); absent: the operator's
    /// (`botctl serve --postgres`). A password comes from the operator's side only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `Retain` (default) or `Delete` a removed tenant's database.
    #[serde(default)]
    pub delete_policy: DeletePolicy,
}

fn default_tenant_prefix() -> String {
    "gb_tenant_".into()
}

/// Hash sharding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashSharding {
    /// `shard-count`: shards `shard-0` .. `shard-<n-1>` (when `shards` is not given).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shard_count: u32,
    /// Named shards and their backends; overrides `shardCount`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<NamedShard>,
    /// Hash slots (`algorithm: slots`); fixed for the cluster's life: changing it moves
    /// nearly every key.
    #[serde(default = "default_slot_count")]
    pub slot_count: u32,
    /// `shard-key`, e.g. "user_id".
    pub key: String,
    /// `shard-algorithm`.
    #[serde(default)]
    pub algorithm: HashAlgorithm,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn default_slot_count() -> u32 {
    1024
}

/// A named shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedShard {
    /// Lowercase letters, digits, `-` and `_`.
    pub name: String,
    /// Where its data lives (a database name or host); absent: the shard's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

impl HashSharding {
    /// How many shards [`HashSharding::shard_list`] would list, without building it (a
    /// `shardCount` near `u32::MAX` would allocate billions of names).
    pub fn shard_len(&self) -> usize {
        if self.shards.is_empty() {
            self.shard_count as usize
        } else {
            self.shards.len()
        }
    }

    /// The shards, named (`shards`) or `shard-0..n-1` (`shardCount`), with their backends.
    pub fn shard_list(&self) -> Vec<(String, String)> {
        if self.shards.is_empty() {
            (0..self.shard_count)
                .map(|i| (format!("shard-{i}"), format!("shard-{i}")))
                .collect()
        } else {
            self.shards
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        s.backend.clone().unwrap_or_else(|| s.name.clone()),
                    )
                })
                .collect()
        }
    }
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
