//! Instances: what LXD returns for one, and the bodies that create, replace and
//! patch it, with the [`ETag`] that guards changes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::StatusCode;

/// Instance devices: device name → device options (`type`, `path`, `listen`, …).
pub type Devices = BTreeMap<String, BTreeMap<String, String>>;

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
}
