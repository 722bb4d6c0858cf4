//! Shard maps as pure data: the documented key hash, slot assignment that moves whole slots,
//! range, tenant and geo maps, versions, routing, and the rebalance plan a change needs.
//!
//! No I/O. The operator builds a [`Desired`] from a cluster's spec, asks [`layout`] for the
//! map it wants (keeping the slots of what is published), and [`decide`] whether to publish it
//! now or wait for approval; bots and the API answer [`ShardMap::route`]. `docs/sharding.md`
//! documents the hash and the map file so a bot in any language routes the same way.

pub mod balance;
pub mod hash;
pub mod map;
pub mod movement;
pub mod plan;
pub mod slots;

pub use balance::{balance, Balance};
pub use hash::{fnv1a64, slot_of};
pub use map::{
    Algorithm, GeoLayout, HashLayout, KeyRange, Layout, Query, RangeLayout, Route, RouteError,
    ShardMap, ShardRef, TenantDb, TenantLayout,
};
pub use movement::{movement, Move, Movement};
pub use plan::{check_ranges, decide, layout, Decision, Desired, Policy, Rebalance};
pub use slots::{assign, from_ranges, to_ranges, SlotRange, DEFAULT_SLOT_COUNT};

/// A map that cannot be built as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MapError(pub String);

impl MapError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> MapError {
        MapError(msg.into())
    }
}
