//! Profiles: named sets of config and devices that instances inherit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Devices;

/// A profile (`GET /1.0/profiles/NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// Profile name.
    pub name: String,
    /// Free-form description.
    pub description: String,
    /// Config keys applied to the instances using it.
    pub config: BTreeMap<String, String>,
    /// Devices applied to the instances using it (e.g. the root disk).
    pub devices: Devices,
    /// URLs of the instances (and other objects) using it.
    pub used_by: Vec<String>,
    /// Project the profile belongs to (empty on servers that do not send it).
    pub project: String,
}
