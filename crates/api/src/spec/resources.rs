//! Per-container resource limits (`spec.resources`), mapped to LXD's `limits.*` keys.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::{BitRate, ByteSize, CpuLimit};

/// Per-container limits, mapped to LXD's `limits.*` keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// `limits.cpu`: a count of CPUs (4) or a CPU set ("0-1").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuLimit>,
    /// `limits.memory`: "8GB", "512MiB".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// `limits.disk.priority`, 0-10. Needs the blkio cgroup controller on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_priority: Option<u8>,
    /// `limits.processes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u32>,
    /// Network shaping of the container's NIC. Needs a NIC (see `nic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkLimits>,
}

/// Bandwidth limits of a NIC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkLimits {
    /// LXD network (bridge) the NIC attaches to. Without one, LXD cannot shape traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic: Option<String>,
    /// `limits.ingress`, e.g. "100Mbit".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<BitRate>,
    /// `limits.egress`, e.g. "100Mbit".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<BitRate>,
}
