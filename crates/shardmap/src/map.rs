//! The published shard map: what the operator writes into every container
//! (`/opt/gbo/conf/shards.json`), shows in status and serves at `/shards`, and how a key,
//! tenant or region is routed with it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hash::{fnv1a64, slot_of};
use crate::slots::SlotRange;

/// The name of the hash function in a map (`"hash": "fnv1a64"`), see [`crate::hash`].
pub const HASH_NAME: &str = "fnv1a64";

/// A published map: a version, a digest of its layout, and the layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardMap {
    /// 1 for the first map a cluster publishes, +1 each time the published layout changes.
    pub version: u64,
    /// The first 16 hex digits of the SHA-256 of the layout's JSON: equal layouts, equal
    /// digests; a rebalance plan is approved by it.
    pub digest: String,
    /// What routes where.
    #[serde(flatten)]
    pub layout: Layout,
}

/// What routes where, by strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "strategy", rename_all = "lowercase")]
pub enum Layout {
    /// A key's hash picks a slot (or an index), which picks a shard.
    Hash(HashLayout),
    /// A numeric key's range picks a shard.
    Range(RangeLayout),
    /// A database per tenant.
    Tenant(TenantLayout),
    /// A region picks a backend.
    Geo(GeoLayout),
}

/// `algorithm: slots | modulo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// `fnv1a64(key) mod slotCount` → slot → shard (the `slots` table).
    Slots,
    /// `fnv1a64(key) mod len(shards)` → the shard at that index.
    Modulo,
}

/// A named shard and the backend (database) that holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardRef {
    /// The shard's name.
    pub name: String,
    /// Where its data lives (a database name or URL without password).
    pub backend: String,
}

/// The hash strategy's layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HashLayout {
    /// The application's key, e.g. `user_id` (informative: the caller passes its value).
    pub key: String,
    /// How a hash picks a shard.
    pub algorithm: Algorithm,
    /// Always `fnv1a64`.
    pub hash: String,
    /// The shards; under `modulo` their order is the index order.
    pub shards: Vec<ShardRef>,
    /// `slots` only: the number of slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_count: Option<u32>,
    /// `slots` only: who owns each slot, as runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<SlotRange>,
}

/// The range strategy's layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RangeLayout {
    /// The application's (numeric) key.
    pub key: String,
    /// Ranges in order, contiguous from the first `from`.
    pub ranges: Vec<KeyRange>,
}

/// A range of numeric keys, both ends inclusive; `to` absent: unbounded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRange {
    /// First key.
    pub from: u64,
    /// Last key; absent: up to 2^64-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    /// The shard (also its backend).
    pub shard: String,
}

/// The tenant strategy's layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantLayout {
    /// The PostgreSQL server (URL without password); absent: the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Tenant → its database.
    pub tenants: BTreeMap<String, TenantDb>,
}

/// Where a tenant lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDb {
    /// `<dbPrefix><tenant>`.
    pub database: String,
}

/// The geo strategy's layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeoLayout {
    /// Region → backend.
    pub regions: BTreeMap<String, String>,
    /// The backend of regions not listed.
    pub default: String,
}

/// What to route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query<'a> {
    /// A key (`?key=`): hash and range maps.
    Key(&'a str),
    /// A tenant (`?tenant=`): tenant maps.
    Tenant(&'a str),
    /// A region (`?region=`): geo maps.
    Region(&'a str),
}

/// Where a query lands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// The shard (the tenant, for tenant maps; the region, for geo maps).
    pub shard: String,
    /// Where it lives (hash, range, geo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The tenant's database (tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The key's slot (`slots`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// The map version that answered.
    pub version: u64,
}

/// Why a query has no route.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The query does not fit the strategy (a tenant asked of a hash map...).
    #[error("this map shards by {strategy}; ask with ?{wanted}=")]
    WrongQuery {
        /// The map's strategy.
        strategy: &'static str,
        /// The query parameter it takes.
        wanted: &'static str,
    },
    /// A range map was given a key that is not a number.
    #[error("key `{0}` is not a non-negative integer; range maps route numeric keys")]
    NotNumeric(String),
    /// No range or tenant matches.
    #[error("{0}")]
    NotFound(String),
}

impl Layout {
    /// `hash`, `range`, `tenant` or `geo`.
    pub fn strategy(&self) -> &'static str {
        match self {
            Layout::Hash(_) => "hash",
            Layout::Range(_) => "range",
            Layout::Tenant(_) => "tenant",
            Layout::Geo(_) => "geo",
        }
    }

    /// The first 16 hex digits of the SHA-256 of the layout's JSON.
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..8])
    }

    /// The query parameter this layout is routed by.
    pub fn query_name(&self) -> &'static str {
        match self {
            Layout::Hash(_) | Layout::Range(_) => "key",
            Layout::Tenant(_) => "tenant",
            Layout::Geo(_) => "region",
        }
    }
}

impl HashLayout {
    fn backend_of(&self, shard: &str) -> Option<String> {
        self.shards
            .iter()
            .find(|s| s.name == shard)
            .map(|s| s.backend.clone())
    }

    /// The shard of a hash value.
    pub fn shard_of_hash(&self, h: u64) -> Option<&str> {
        match self.algorithm {
            Algorithm::Modulo => {
                let n = self.shards.len() as u64;
                (n > 0).then(|| self.shards[(h % n) as usize].name.as_str())
            }
            Algorithm::Slots => {
                let count = u64::from(self.slot_count?.max(1));
                let slot = (h % count) as u32;
                self.slots
                    .iter()
                    .find(|r| r.from <= slot && slot <= r.to)
                    .map(|r| r.shard.as_str())
            }
        }
    }
}

impl RangeLayout {
    /// The range holding `key`.
    pub fn find(&self, key: u64) -> Option<&KeyRange> {
        self.ranges
            .iter()
            .find(|r| r.from <= key && r.to.is_none_or(|to| key <= to))
    }
}

impl ShardMap {
    /// A map of `layout` at `version`, with its digest.
    pub fn new(version: u64, layout: Layout) -> ShardMap {
        ShardMap {
            version,
            digest: layout.digest(),
            layout,
        }
    }

    /// Where `query` lands.
    pub fn route(&self, query: Query<'_>) -> Result<Route, RouteError> {
        let version = self.version;
        let wrong = || RouteError::WrongQuery {
            strategy: self.layout.strategy(),
            wanted: self.layout.query_name(),
        };
        match (&self.layout, query) {
            (Layout::Hash(h), Query::Key(key)) => {
                let hash = fnv1a64(key.as_bytes());
                let shard = h
                    .shard_of_hash(hash)
                    .ok_or_else(|| RouteError::NotFound("the map has no shards".into()))?;
                Ok(Route {
                    shard: shard.to_string(),
                    backend: h.backend_of(shard),
                    database: None,
                    slot: (h.algorithm == Algorithm::Slots)
                        .then(|| slot_of(key, h.slot_count.unwrap_or(1))),
                    version,
                })
            }
            (Layout::Range(r), Query::Key(key)) => {
                let k: u64 = key
                    .trim()
                    .parse()
                    .map_err(|_| RouteError::NotNumeric(key.to_string()))?;
                let range = r
                    .find(k)
                    .ok_or_else(|| RouteError::NotFound(format!("no range holds key {k}")))?;
                Ok(Route {
                    shard: range.shard.clone(),
                    backend: Some(range.shard.clone()),
                    database: None,
                    slot: None,
                    version,
                })
            }
            (Layout::Tenant(t), Query::Tenant(tenant)) => {
                let db = t.tenants.get(tenant).ok_or_else(|| {
                    RouteError::NotFound(format!(
                        "tenant `{tenant}` is not listed in spec.sharding.tenant.tenants"
                    ))
                })?;
                Ok(Route {
                    shard: tenant.to_string(),
                    backend: t.server.clone(),
                    database: Some(db.database.clone()),
                    slot: None,
                    version,
                })
            }
            (Layout::Geo(g), Query::Region(region)) => {
                let backend = g.regions.get(region).unwrap_or(&g.default);
                Ok(Route {
                    shard: if g.regions.contains_key(region) {
                        region.to_string()
                    } else {
                        "default".to_string()
                    },
                    backend: Some(backend.clone()),
                    database: None,
                    slot: None,
                    version,
                })
            }
            _ => Err(wrong()),
        }
    }
}
