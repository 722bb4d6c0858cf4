//! Storage pools: where instance and image volumes live.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A storage pool (`GET /1.0/storage-pools/NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StoragePool {
    /// Pool name.
    pub name: String,
    /// Free-form description.
    pub description: String,
    /// Storage driver, e.g. `dir`, `zfs`, `btrfs`.
    pub driver: String,
    /// `Created`, `Pending`, `Errored`…
    pub status: String,
    /// Driver config (e.g. `source`: the backing path or device).
    pub config: BTreeMap<String, String>,
    /// URLs of the profiles, instances and images using it.
    pub used_by: Vec<String>,
    /// Cluster members holding it; `none` when not clustered.
    pub locations: Vec<String>,
}
