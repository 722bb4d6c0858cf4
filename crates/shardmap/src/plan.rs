//! The pure decision of one pass: the desired layout (from the spec and what was published),
//! and whether it is published now, waits for approval, or there is nothing to do.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::map::{
    Algorithm, GeoLayout, HashLayout, KeyRange, Layout, RangeLayout, ShardMap, ShardRef, TenantDb,
    TenantLayout, HASH_NAME,
};
use crate::movement::{movement, Movement};
use crate::slots::{assign, from_ranges, to_ranges};
use crate::MapError;

/// What the spec asks for, in the map's terms (the caller translates its spec).
#[derive(Clone, Debug, PartialEq)]
pub enum Desired {
    /// Hash sharding.
    Hash {
        /// The application's key.
        key: String,
        /// Slots or modulo.
        algorithm: Algorithm,
        /// Slots (for `slots`).
        slot_count: u32,
        /// The shards, in order.
        shards: Vec<ShardRef>,
    },
    /// Range sharding.
    Range {
        /// The application's key.
        key: String,
        /// The ranges, in order.
        ranges: Vec<KeyRange>,
    },
    /// Tenant databases.
    Tenant {
        /// The server (URL without password).
        server: Option<String>,
        /// Tenant → database.
        tenants: BTreeMap<String, String>,
    },
    /// Regions.
    Geo {
        /// Region → backend.
        regions: BTreeMap<String, String>,
        /// The backend of regions not listed.
        default: String,
    },
}

/// `rebalance: manual | auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// A change that moves keys waits for approval of its digest.
    Manual,
    /// Every change is published at once.
    Auto,
}

/// A change that moves keys and waits for approval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rebalance {
    /// Approve with this (`botctl shards approve NAME`, or `spec.sharding.approvedRebalance`):
    /// the digest of the map it would publish.
    pub id: String,
    /// The version published now.
    pub from_version: u64,
    /// The version it would publish.
    pub to_version: u64,
    /// What moves.
    #[serde(flatten)]
    pub movement: Movement,
}

/// What one pass does with the map.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The map to publish now (`None`: keep the published one).
    pub publish: Option<ShardMap>,
    /// A rebalance waiting for approval.
    pub pending: Option<Rebalance>,
    /// What the published change moved (empty when nothing moves or nothing is published).
    pub moved: Movement,
}

/// The layout the spec asks for, given what was published (slot tables keep their slots).
pub fn layout(desired: &Desired, published: Option<&Layout>) -> Result<Layout, MapError> {
    Ok(match desired {
        Desired::Hash {
            key,
            algorithm,
            slot_count,
            shards,
        } => {
            if shards.is_empty() {
                return Err(MapError::new("a hash map needs at least one shard"));
            }
            let (slot_count, slots) = match algorithm {
                Algorithm::Modulo => (None, Vec::new()),
                Algorithm::Slots => {
                    let previous = match published {
                        Some(Layout::Hash(h))
                            if h.algorithm == Algorithm::Slots
                                && h.slot_count == Some(*slot_count) =>
                        {
                            from_ranges(&h.slots, *slot_count).ok()
                        }
                        _ => None,
                    };
                    let names: Vec<String> = shards.iter().map(|s| s.name.clone()).collect();
                    let table = assign(*slot_count, &names, previous.as_deref());
                    (Some(*slot_count), to_ranges(&table))
                }
            };
            Layout::Hash(HashLayout {
                key: key.clone(),
                algorithm: *algorithm,
                hash: HASH_NAME.into(),
                shards: shards.clone(),
                slot_count,
                slots,
            })
        }
        Desired::Range { key, ranges } => {
            check_ranges(ranges)?;
            Layout::Range(RangeLayout {
                key: key.clone(),
                ranges: ranges.clone(),
            })
        }
        Desired::Tenant { server, tenants } => Layout::Tenant(TenantLayout {
            server: server.clone(),
            tenants: tenants
                .iter()
                .map(|(t, db)| {
                    (
                        t.clone(),
                        TenantDb {
                            database: db.clone(),
                        },
                    )
                })
                .collect(),
        }),
        Desired::Geo { regions, default } => Layout::Geo(GeoLayout {
            regions: regions.clone(),
            default: default.clone(),
        }),
    })
}

/// Refuses key ranges with gaps or overlaps (each starts right after the previous one ends;
/// only the last may be unbounded).
pub fn check_ranges(ranges: &[KeyRange]) -> Result<(), MapError> {
    if ranges.is_empty() {
        return Err(MapError::new("a range map needs at least one range"));
    }
    let mut next: Option<u64> = Some(ranges[0].from);
    for (i, r) in ranges.iter().enumerate() {
        let Some(expected) = next else {
            return Err(MapError::new(format!(
                "ranges[{i}] follows a range that reaches the end of the key space"
            )));
        };
        if r.from != expected {
            let what = if r.from < expected {
                "overlaps"
            } else {
                "leaves a gap after"
            };
            return Err(MapError::new(format!(
                "ranges[{i}] starts at {} and {what} the previous range; start at {expected}",
                r.from
            )));
        }
        match r.to {
            Some(to) if to < r.from => {
                return Err(MapError::new(format!(
                    "ranges[{i}]: to ({to}) is below from ({})",
                    r.from
                )))
            }
            Some(to) => next = to.checked_add(1),
            None => next = None,
        }
    }
    Ok(())
}

/// Decides what to publish.
///
/// **Guarantees**
/// - nothing published yet: the wanted map is published as version 1 (nothing can move);
/// - wanted equals published (same digest): nothing to do, no pending plan;
/// - a change that moves no key (a tenant added, a shard's list reordered without effect) is
///   published at once as version + 1;
/// - a change that moves keys is published under `Auto`, or under `Manual` only when
///   `approved` equals its id (the digest of the map it would publish); otherwise it is
///   returned as `pending` and the published map stays.
pub fn decide(
    wanted: Layout,
    published: Option<&ShardMap>,
    policy: Policy,
    approved: Option<&str>,
) -> Decision {
    let Some(current) = published else {
        return Decision {
            publish: Some(ShardMap::new(1, wanted)),
            pending: None,
            moved: Movement::default(),
        };
    };
    let digest = wanted.digest();
    if digest == current.digest {
        return Decision {
            publish: None,
            pending: None,
            moved: Movement::default(),
        };
    }
    let moved = movement(&current.layout, &wanted);
    let next = ShardMap::new(current.version + 1, wanted);
    let go = moved.moves.is_empty()
        || policy == Policy::Auto
        || approved.is_some_and(|a| a.trim() == digest);
    if go {
        Decision {
            publish: Some(next),
            pending: None,
            moved,
        }
    } else {
        Decision {
            publish: None,
            pending: Some(Rebalance {
                id: digest,
                from_version: current.version,
                to_version: next.version,
                movement: moved,
            }),
            moved: Movement::default(),
        }
    }
}
