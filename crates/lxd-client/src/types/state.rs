//! Instance runtime state: the state-change body (start, stop, …) and what
//! `GET /1.0/instances/NAME/state` reports (memory, CPU, network).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StatusCode;

/// A state change action for [`InstanceStatePut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateAction {
    /// Start a stopped instance.
    Start,
    /// Stop a running instance (gracefully unless `force`).
    Stop,
    /// Restart a running instance.
    Restart,
    /// Freeze (pause) a running instance.
    Freeze,
    /// Unfreeze a frozen instance.
    Unfreeze,
}

/// Body of `PUT /1.0/instances/NAME/state`.
///
/// ```
/// use lxd_client::InstanceStatePut;
/// let stop = InstanceStatePut::stop().force(true);
/// let graceful = InstanceStatePut::stop().timeout(30);
/// # let _ = (stop, graceful);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatePut {
    /// What to do.
    pub action: StateAction,
    /// Seconds to wait for a graceful stop/restart before failing; `-1` waits
    /// forever (LXD's default).
    pub timeout: i64,
    /// Kill instead of asking the instance to shut down.
    pub force: bool,
    /// Save/restore runtime state (CRIU); rarely available.
    pub stateful: bool,
}

impl InstanceStatePut {
    fn action(action: StateAction) -> Self {
        InstanceStatePut {
            action,
            timeout: -1,
            force: false,
            stateful: false,
        }
    }

    /// Start.
    pub fn start() -> Self {
        Self::action(StateAction::Start)
    }

    /// Graceful stop (SIGPWR to init), waiting forever unless [`Self::timeout`] is set.
    pub fn stop() -> Self {
        Self::action(StateAction::Stop)
    }

    /// Restart.
    pub fn restart() -> Self {
        Self::action(StateAction::Restart)
    }

    /// Freeze.
    pub fn freeze() -> Self {
        Self::action(StateAction::Freeze)
    }

    /// Unfreeze.
    pub fn unfreeze() -> Self {
        Self::action(StateAction::Unfreeze)
    }

    /// Kill instead of a graceful shutdown.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Seconds to wait for a graceful stop/restart.
    pub fn timeout(mut self, seconds: i64) -> Self {
        self.timeout = seconds;
        self
    }
}

/// `GET /1.0/instances/NAME/state`.
///
/// When the instance is stopped LXD reports `pid` 0, `processes` 0, zero memory and
/// cpu, and no network.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceState {
    /// Human status, e.g. `Running`.
    pub status: String,
    /// Numeric status.
    pub status_code: StatusCode,
    /// Memory usage in bytes.
    pub memory: MemoryState,
    /// CPU usage.
    pub cpu: CpuState,
    /// Host PID of the instance's init (0 when stopped).
    pub pid: i64,
    /// Number of processes (0 when stopped; -1 when unknown).
    pub processes: i64,
    /// Network interfaces by name (`None` when stopped).
    pub network: Option<BTreeMap<String, NetworkState>>,
    /// Disk usage by device, when the storage driver reports it (`dir` does not).
    pub disk: BTreeMap<String, Value>,
}

impl InstanceState {
    /// True when LXD reports the instance as running.
    pub fn is_running(&self) -> bool {
        self.status_code == StatusCode::RUNNING
    }
}

/// Memory part of [`InstanceState`], in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryState {
    /// Current usage.
    pub usage: i64,
    /// Peak usage.
    pub usage_peak: i64,
    /// Current swap usage.
    pub swap_usage: i64,
    /// Peak swap usage.
    pub swap_usage_peak: i64,
}

/// CPU part of [`InstanceState`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuState {
    /// CPU time used, in **nanoseconds**.
    pub usage: i64,
}

/// One network interface of [`InstanceState`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkState {
    /// Addresses on the interface.
    pub addresses: Vec<NetworkAddress>,
    /// Traffic counters.
    pub counters: NetworkCounters,
    /// MAC address.
    pub hwaddr: String,
    /// Host-side interface name.
    pub host_name: String,
    /// MTU.
    pub mtu: i64,
    /// `up` or `down`.
    pub state: String,
    /// e.g. `loopback`, `broadcast`.
    #[serde(rename = "type")]
    pub interface_type: String,
}

/// An address of a [`NetworkState`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkAddress {
    /// `inet` or `inet6`.
    pub family: String,
    /// The address.
    pub address: String,
    /// Prefix length.
    pub netmask: String,
    /// `global`, `link`, `local`.
    pub scope: String,
}

/// Traffic counters of a [`NetworkState`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkCounters {
    /// Bytes received.
    pub bytes_received: i64,
    /// Bytes sent.
    pub bytes_sent: i64,
    /// Packets received.
    pub packets_received: i64,
    /// Packets sent.
    pub packets_sent: i64,
    /// Receive errors.
    pub errors_received: i64,
    /// Send errors.
    pub errors_sent: i64,
    /// Outbound drops.
    pub packets_dropped_outbound: i64,
    /// Inbound drops.
    pub packets_dropped_inbound: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_state_with_null_network_decodes() {
        let json = r#"{"status":"Stopped","status_code":102,"disk":{},"memory":{"usage":0,"usage_peak":0,"swap_usage":0,"swap_usage_peak":0},
            "network":null,"pid":0,"processes":0,"cpu":{"usage":0}}"#;
        let s: InstanceState = serde_json::from_str(json).unwrap();
        assert!(!s.is_running());
        assert!(s.network.is_none());
    }

    #[test]
    fn running_state_decodes() {
        let json = r#"{"status":"Running","status_code":103,"disk":{},
            "memory":{"usage":892928,"usage_peak":1261568,"swap_usage":0,"swap_usage_peak":0},
            "network":{"lo":{"addresses":[{"family":"inet","address":"127.0.0.1","netmask":"8","scope":"local"}],
              "counters":{"bytes_received":0,"bytes_sent":0,"packets_received":0,"packets_sent":0,
              "errors_received":0,"errors_sent":0,"packets_dropped_outbound":0,"packets_dropped_inbound":0},
              "hwaddr":"","host_name":"","mtu":65536,"state":"up","type":"loopback"}},
            "pid":6887,"processes":2,"cpu":{"usage":16693942}}"#;
        let s: InstanceState = serde_json::from_str(json).unwrap();
        assert_eq!(s.memory.usage, 892_928);
        assert_eq!(s.cpu.usage, 16_693_942);
        assert_eq!(s.pid, 6887);
        let net = s.network.unwrap();
        assert_eq!(net["lo"].addresses[0].address, "127.0.0.1");
        assert_eq!(net["lo"].interface_type, "loopback");
    }

    #[test]
    fn state_put_serializes_like_lxd_expects() {
        let v = serde_json::to_value(InstanceStatePut::stop().force(true).timeout(5)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"action":"stop","timeout":5,"force":true,"stateful":false})
        );
    }
}
