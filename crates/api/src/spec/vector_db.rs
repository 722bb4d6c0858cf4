//! Vector database (Qdrant) sharding (`spec.vectorDb`, the seed's `qdrant-*`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::one;

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
