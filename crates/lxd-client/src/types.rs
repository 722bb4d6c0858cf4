//! Serde types for the parts of the LXD API this crate covers.
//!
//! Field names follow LXD's JSON (see `shared/api/*.go` in LXD). Every field that
//! LXD may omit has a serde default, and unknown fields are ignored, so the types
//! read answers from newer servers too.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Instance devices: device name → device options (`type`, `path`, `listen`, …).
pub type Devices = BTreeMap<String, BTreeMap<String, String>>;

/// LXD's numeric status codes (the stable contract; the `status` strings are for
/// humans). See LXD's `doc/rest-api.md`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// 100: operation created.
    pub const OPERATION_CREATED: StatusCode = StatusCode(100);
    /// 101: started.
    pub const STARTED: StatusCode = StatusCode(101);
    /// 102: stopped.
    pub const STOPPED: StatusCode = StatusCode(102);
    /// 103: running.
    pub const RUNNING: StatusCode = StatusCode(103);
    /// 104: cancelling.
    pub const CANCELLING: StatusCode = StatusCode(104);
    /// 105: pending.
    pub const PENDING: StatusCode = StatusCode(105);
    /// 106: starting.
    pub const STARTING: StatusCode = StatusCode(106);
    /// 107: stopping.
    pub const STOPPING: StatusCode = StatusCode(107);
    /// 108: aborting.
    pub const ABORTING: StatusCode = StatusCode(108);
    /// 109: freezing.
    pub const FREEZING: StatusCode = StatusCode(109);
    /// 110: frozen.
    pub const FROZEN: StatusCode = StatusCode(110);
    /// 111: thawed.
    pub const THAWED: StatusCode = StatusCode(111);
    /// 112: error.
    pub const ERROR: StatusCode = StatusCode(112);
    /// 200: success.
    pub const SUCCESS: StatusCode = StatusCode(200);
    /// 400: failure.
    pub const FAILURE: StatusCode = StatusCode(400);
    /// 401: cancelled.
    pub const CANCELLED: StatusCode = StatusCode(401);

    /// True for the codes an operation ends with (success, failure, cancelled).
    pub fn is_final(self) -> bool {
        self.0 >= 200
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The kind of an LXD response envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseType {
    /// Immediate answer; `metadata` is the result.
    Sync,
    /// Background operation started; `metadata` is an [`Operation`].
    Async,
    /// Failure; `error_code` and `error` say why.
    Error,
}

/// LXD's response envelope, common to every JSON answer.
///
/// ```
/// let e: lxd_client::Envelope = serde_json::from_str(
///     r#"{"type":"error","status":"","status_code":0,"operation":"",
///         "error_code":404,"error":"Instance not found","metadata":null}"#,
/// ).unwrap();
/// assert_eq!(e.error_code, 404);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// `sync`, `async` or `error`.
    #[serde(rename = "type")]
    pub kind: ResponseType,
    /// Human status, e.g. `Success` or `Operation created`.
    #[serde(default)]
    pub status: String,
    /// Numeric status (200 for sync, 100 for async, 0 for errors).
    #[serde(default)]
    pub status_code: u16,
    /// For async answers, the operation URL (`/1.0/operations/<uuid>`).
    #[serde(default)]
    pub operation: String,
    /// For errors, the HTTP status.
    #[serde(default)]
    pub error_code: u16,
    /// For errors, LXD's message.
    #[serde(default)]
    pub error: String,
    /// The payload: the result, the operation, or `null`.
    #[serde(default)]
    pub metadata: Value,
}

/// An instance as returned by `GET /1.0/instances?recursion=1` or
/// `GET /1.0/instances/NAME`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Instance {
    /// Instance name (also its hostname).
    pub name: String,
    /// Free-form description.
    pub description: String,
    /// Human status, e.g. `Running`, `Stopped`, `Frozen`.
    pub status: String,
    /// Numeric status, e.g. [`StatusCode::RUNNING`].
    pub status_code: StatusCode,
    /// The instance's own config (includes `volatile.*` and `image.*` keys).
    pub config: BTreeMap<String, String>,
    /// The instance's own devices (not those inherited from profiles).
    pub devices: Devices,
    /// Config after applying profiles.
    pub expanded_config: BTreeMap<String, String>,
    /// Devices after applying profiles.
    pub expanded_devices: Devices,
    /// Profiles, in application order.
    pub profiles: Vec<String>,
    /// Whether the instance is deleted when stopped.
    pub ephemeral: bool,
    /// Whether the instance has stateful snapshots.
    pub stateful: bool,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last start time (RFC 3339).
    pub last_used_at: String,
    /// Cluster member holding the instance; `none` when not clustered.
    pub location: String,
    /// Project the instance belongs to.
    pub project: String,
    /// `container` or `virtual-machine`.
    #[serde(rename = "type")]
    pub instance_type: String,
    /// Architecture, e.g. `x86_64`.
    pub architecture: String,
}

impl Instance {
    /// True when LXD reports the instance as running.
    pub fn is_running(&self) -> bool {
        self.status_code == StatusCode::RUNNING
    }

    /// True when LXD reports the instance as stopped.
    pub fn is_stopped(&self) -> bool {
        self.status_code == StatusCode::STOPPED
    }
}

/// Where a new instance comes from (`source` of [`InstancesPost`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstanceSource {
    /// `image`, `none`, `copy`, `migration`.
    #[serde(rename = "type")]
    pub source_type: String,
    /// Image alias (for `image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Image fingerprint (for `image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Image properties to match (for `image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, String>>,
    /// Remote image server URL (for images from another server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Remote protocol, `lxd` or `simplestreams`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Source instance (for `copy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl InstanceSource {
    /// A local image by alias.
    pub fn image_alias(alias: impl Into<String>) -> Self {
        InstanceSource {
            source_type: "image".into(),
            alias: Some(alias.into()),
            ..Default::default()
        }
    }

    /// A local image by fingerprint (a unique prefix is accepted by LXD).
    pub fn image_fingerprint(fingerprint: impl Into<String>) -> Self {
        InstanceSource {
            source_type: "image".into(),
            fingerprint: Some(fingerprint.into()),
            ..Default::default()
        }
    }

    /// No image: an empty instance.
    pub fn none() -> Self {
        InstanceSource {
            source_type: "none".into(),
            ..Default::default()
        }
    }
}

/// Body of `POST /1.0/instances` (create).
///
/// LXD 5.0.2 ignores a `start` field (it lacks the `instance_create_start`
/// extension), so this type has none: create, then [`crate::Client::change_state`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstancesPost {
    /// Instance name: 1–63 of `[A-Za-z0-9-]`, not starting with a digit or `-`.
    pub name: String,
    /// Where the root filesystem comes from.
    pub source: InstanceSource,
    /// `container` (default) or `virtual-machine`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub instance_type: String,
    /// Config keys (e.g. `limits.memory`, `user.*` labels).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Devices of the instance itself.
    #[serde(default)]
    pub devices: Devices,
    /// Profiles to apply. `None` lets LXD apply the `default` profile;
    /// `Some(vec![])` means no profile at all (and then no root disk unless
    /// `devices` has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<String>>,
    /// Delete the instance when it stops.
    #[serde(default)]
    pub ephemeral: bool,
    /// Free-form description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Architecture; empty lets LXD pick the image's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub architecture: String,
}

impl InstancesPost {
    /// A container named `name` from `source`, with the default profile and no
    /// extra config or devices.
    pub fn container(name: impl Into<String>, source: InstanceSource) -> Self {
        InstancesPost {
            name: name.into(),
            source,
            instance_type: "container".into(),
            ..Default::default()
        }
    }
}

/// Body of `PUT /1.0/instances/NAME`: replaces config, devices and profiles
/// **completely** (omitted keys are removed).
///
/// Build it from a fresh [`Instance`] with `InstancePut::from(&instance)` (which
/// copies the instance's *local* config and devices, not the expanded ones), change
/// what you need, then send it with the ETag you read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstancePut {
    /// Architecture (keep the instance's).
    pub architecture: String,
    /// Complete local config.
    pub config: BTreeMap<String, String>,
    /// Complete local devices.
    pub devices: Devices,
    /// Ephemeral flag.
    pub ephemeral: bool,
    /// Complete profile list.
    pub profiles: Vec<String>,
    /// Stateful flag.
    pub stateful: bool,
    /// Description.
    pub description: String,
}

impl From<&Instance> for InstancePut {
    fn from(i: &Instance) -> Self {
        InstancePut {
            architecture: i.architecture.clone(),
            config: i.config.clone(),
            devices: i.devices.clone(),
            ephemeral: i.ephemeral,
            profiles: i.profiles.clone(),
            stateful: i.stateful,
            description: i.description.clone(),
        }
    }
}

/// Body of `PATCH /1.0/instances/NAME`: merges into the instance.
///
/// Semantics measured on LXD 5.0.2:
/// - config keys are merged; a key set to `""` is removed;
/// - devices are merged **per device name**: a named device's whole option map is
///   replaced; a device cannot be removed with PATCH (use PUT);
/// - `None` fields are left alone.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstancePatch {
    /// Config keys to set (`""` removes the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<BTreeMap<String, String>>,
    /// Devices to add or replace, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Devices>,
    /// New profile list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<String>>,
    /// New ephemeral flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<bool>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl InstancePatch {
    /// A patch that sets the given config keys.
    pub fn config<K: Into<String>, V: Into<String>>(
        keys: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        InstancePatch {
            config: Some(
                keys.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
            ..Default::default()
        }
    }
}

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

/// A background operation (`/1.0/operations/UUID`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Operation {
    /// UUID.
    pub id: String,
    /// `task`, `websocket` or `token`.
    pub class: String,
    /// e.g. `Creating instance`.
    pub description: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last update time (RFC 3339).
    pub updated_at: String,
    /// Human status: `Running`, `Success`, `Failure`, `Cancelled`…
    pub status: String,
    /// Numeric status; final codes are 200 (success), 400 (failure), 401 (cancelled).
    pub status_code: StatusCode,
    /// Affected objects, by kind (`instances`, `containers`, `images`…), as URLs.
    pub resources: Option<BTreeMap<String, Vec<String>>>,
    /// Operation-specific result, e.g. `{"fingerprint": …}` for image imports.
    pub metadata: Value,
    /// Whether `DELETE /1.0/operations/UUID` can cancel it.
    pub may_cancel: bool,
    /// Failure message when `status_code` is 400.
    pub err: String,
    /// Cluster member running it; `none` when not clustered.
    pub location: String,
}

/// An instance's [`ETag`] as read from the `Etag` header, to send back as
/// `If-Match`. LXD's ETag covers the instance's local config (including
/// `volatile.*`), devices, profiles, ephemeral flag and architecture, so it changes
/// on every start and stop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

impl ETag {
    /// The raw header value (LXD quotes it; quoted and unquoted are both accepted).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `GET /1.0`: server information.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Server {
    /// API extensions this server supports (e.g. `api_filtering`, `metrics`).
    pub api_extensions: Vec<String>,
    /// `stable`.
    pub api_status: String,
    /// `1.0`.
    pub api_version: String,
    /// `trusted` or `untrusted` (this client's standing).
    pub auth: String,
    /// Supported authentication methods.
    pub auth_methods: Vec<String>,
    /// Whether the server is public.
    pub public: bool,
    /// Server configuration (`core.https_address`, …).
    pub config: BTreeMap<String, Value>,
    /// Host environment (versions, kernel, storage).
    pub environment: ServerEnvironment,
}

impl Server {
    /// Whether the server advertises the given API extension.
    pub fn has_extension(&self, name: &str) -> bool {
        self.api_extensions.iter().any(|e| e == name)
    }
}

/// The `environment` part of [`Server`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerEnvironment {
    /// Addresses the server listens on over HTTPS.
    pub addresses: Vec<String>,
    /// Supported architectures.
    pub architectures: Vec<String>,
    /// The server certificate (PEM).
    pub certificate: String,
    /// SHA-256 fingerprint of the server certificate (hex).
    pub certificate_fingerprint: String,
    /// Instance drivers, e.g. `lxc`.
    pub driver: String,
    /// Driver versions.
    pub driver_version: String,
    /// Firewall backend.
    pub firewall: String,
    /// Kernel name.
    pub kernel: String,
    /// Kernel architecture.
    pub kernel_architecture: String,
    /// Kernel features (`idmapped_mounts`, `shiftfs`…) as `"true"`/`"false"`.
    pub kernel_features: BTreeMap<String, String>,
    /// Kernel version.
    pub kernel_version: String,
    /// LXC features.
    pub lxc_features: BTreeMap<String, String>,
    /// Host OS name.
    pub os_name: String,
    /// Host OS version.
    pub os_version: String,
    /// The project the request was made in.
    pub project: String,
    /// `lxd`.
    pub server: String,
    /// Whether the server is part of a cluster.
    pub server_clustered: bool,
    /// Server (cluster member) name.
    pub server_name: String,
    /// Server PID.
    pub server_pid: i64,
    /// LXD version, e.g. `5.0.2`.
    pub server_version: String,
    /// Storage drivers in use, e.g. `dir`.
    pub storage: String,
    /// Their versions.
    pub storage_version: String,
}

/// An image (`GET /1.0/images?recursion=1`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Image {
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// Aliases pointing at this image.
    pub aliases: Vec<ImageAliasRef>,
    /// Architecture.
    pub architecture: String,
    /// Image properties (`os`, `description`…).
    pub properties: BTreeMap<String, String>,
    /// Whether untrusted clients may use it.
    pub public: bool,
    /// Size in bytes.
    pub size: i64,
    /// `container` or `virtual-machine`.
    #[serde(rename = "type")]
    pub image_type: String,
    /// Original filename.
    pub filename: String,
    /// Whether LXD refreshes it from its source.
    pub auto_update: bool,
    /// Whether it was cached from a remote.
    pub cached: bool,
    /// Profiles applied to instances created from it.
    pub profiles: Vec<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Upload time (RFC 3339).
    pub uploaded_at: String,
    /// Last use (RFC 3339).
    pub last_used_at: String,
    /// Expiry time (RFC 3339).
    pub expires_at: String,
}

/// An alias as listed inside an [`Image`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageAliasRef {
    /// Alias name.
    pub name: String,
    /// Alias description.
    pub description: String,
}

/// `GET /1.0/images/aliases/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageAlias {
    /// Alias name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Target image fingerprint.
    pub target: String,
    /// `container` or `virtual-machine`.
    #[serde(rename = "type")]
    pub image_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_decodes_recursion_1_shape() {
        let json = r#"{"architecture":"x86_64","config":{"user.x":"1","volatile.last_state.power":"RUNNING"},
            "devices":{"http":{"type":"proxy","listen":"tcp:127.0.0.1:18101","connect":"tcp:127.0.0.1:8080"}},
            "ephemeral":false,"profiles":["default"],"stateful":false,"description":"",
            "created_at":"2026-11-28T07:50:57.302566433Z",
            "expanded_config":{"user.x":"1"},
            "expanded_devices":{"root":{"path":"/","pool":"default","type":"disk"}},
            "name":"web-0","status":"Running","status_code":103,
            "last_used_at":"2026-11-28T07:50:57.499673666Z","location":"none","type":"container","project":"default",
            "some_future_field":{"x":1}}"#;
        let i: Instance = serde_json::from_str(json).unwrap();
        assert_eq!(i.name, "web-0");
        assert!(i.is_running());
        assert_eq!(i.devices["http"]["listen"], "tcp:127.0.0.1:18101");
        assert_eq!(i.expanded_devices["root"]["pool"], "default");
        assert_eq!(i.instance_type, "container");
        let put = InstancePut::from(&i);
        assert_eq!(put.config.get("user.x").map(String::as_str), Some("1"));
        assert!(
            !put.devices.contains_key("root"),
            "PUT uses local devices only"
        );
    }

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
    fn operation_with_null_resources_decodes() {
        let json = r#"{"id":"57b0","class":"task","description":"Downloading image","created_at":"x","updated_at":"y",
            "status":"Failure","status_code":400,"resources":null,"metadata":{"fingerprint":"741d"},
            "may_cancel":false,"err":"Image with same fingerprint already exists","location":"none"}"#;
        let op: Operation = serde_json::from_str(json).unwrap();
        assert_eq!(op.status_code, StatusCode::FAILURE);
        assert!(op.status_code.is_final());
        assert!(op.resources.is_none());
        assert_eq!(op.metadata["fingerprint"], "741d");
    }

    #[test]
    fn create_body_omits_unset_optionals() {
        let post = InstancesPost::container("a", InstanceSource::image_alias("img"));
        let v = serde_json::to_value(&post).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name":"a","source":{"type":"image","alias":"img"},"type":"container",
                "config":{},"devices":{},"ephemeral":false})
        );
    }

    #[test]
    fn patch_body_contains_only_what_is_set() {
        let patch = InstancePatch::config([("user.a", "1"), ("user.b", "")]);
        let v = serde_json::to_value(&patch).unwrap();
        assert_eq!(v, serde_json::json!({"config":{"user.a":"1","user.b":""}}));
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
