//! The server: what `GET /1.0` says about LXD and its host.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
