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
