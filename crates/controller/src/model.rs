//! What a BotCluster asks of LXD, in LXD's terms: instance names, ownership keys, config keys,
//! devices and files. Pure functions; the planner and the backends share them.

use std::collections::BTreeMap;

use botcluster_api::spec::{BotClusterSpec, FileSpec};
use sha2::{Digest, Sha256};

/// `user.*` key holding the owning cluster's name.
pub const KEY_CLUSTER: &str = "user.botcluster.cluster";
/// `user.*` key holding the owning object's uid (one incarnation of the cluster).
pub const KEY_UID: &str = "user.botcluster.uid";
/// `user.*` key holding the instance's ordinal.
pub const KEY_ORDINAL: &str = "user.botcluster.ordinal";
/// `user.*` key holding the hash of what needs a new container to change (image, profiles).
pub const KEY_TEMPLATE: &str = "user.botcluster.template";
/// `user.*` key holding the hash of the files last pushed.
pub const KEY_FILES: &str = "user.botcluster.files";
/// `user.*` key holding the paths of the files last pushed (a JSON array), so a file the
/// spec no longer has (the shard map after `spec.sharding` is removed) is deleted.
pub const KEY_FILE_PATHS: &str = "user.botcluster.file-paths";
/// The proxy device that publishes the botserver on the host.
pub const PROXY_DEVICE: &str = "botcluster-http";
/// The NIC added when network limits are asked for.
pub const NIC_DEVICE: &str = "eth0";
/// Config keys botcluster manages; any other key on an instance is left alone.
pub const MANAGED_LIMITS: [&str; 4] = [
    "limits.cpu",
    "limits.memory",
    "limits.processes",
    "limits.disk.priority",
];
/// Path of the environment file pushed when `spec.env` is set (validation keeps
/// `spec.files` off it and line breaks out of its values).
pub const ENV_FILE: &str = botcluster_api::validate::charset::ENV_FILE;

/// A device: LXD's flat map of options.
pub type Device = BTreeMap<String, String>;

/// What this LXD host can apply; learned from LXD's refusals and remembered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `limits.disk.priority` (needs the blkio cgroup controller).
    pub disk_priority: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            disk_priority: true,
        }
    }
}

/// The deterministic instance name of `ordinal` in `cluster`.
pub fn instance_name(cluster: &str, ordinal: u32) -> String {
    format!("{cluster}-{ordinal}")
}

/// The ordinal in a name of the form `<cluster>-<digits>`.
pub fn ordinal_of(cluster: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(cluster)?.strip_prefix('-')?;
    if rest.is_empty()
        || !rest.chars().all(|c| c.is_ascii_digit())
        || (rest.len() > 1 && rest.starts_with('0'))
    {
        return None;
    }
    rest.parse().ok()
}

/// The cluster a `<cluster>-<ordinal>` instance name belongs to.
pub fn cluster_of(name: &str) -> Option<&str> {
    let (cluster, ord) = name.rsplit_once('-')?;
    (!ord.is_empty() && ord.chars().all(|c| c.is_ascii_digit())).then_some(cluster)
}

fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// Hash of what a running container cannot change in place.
pub fn template_hash(spec: &BotClusterSpec) -> String {
    let profiles = spec.profiles.join(",");
    hash(&[&spec.image, &profiles])
}

/// The files each container gets: `spec.files` plus the env file when `spec.env` is set.
pub fn files(spec: &BotClusterSpec) -> Vec<FileSpec> {
    let mut out = spec.files.clone();
    if !spec.env.is_empty() {
        let content: String = spec.env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        out.push(FileSpec {
            path: ENV_FILE.into(),
            content,
            mode: "0644".into(),
        });
    }
    out
}

/// The [`KEY_FILE_PATHS`] value for `files`.
pub fn file_paths_value(files: &[FileSpec]) -> String {
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    serde_json::to_string(&paths).unwrap_or_default()
}

/// Paths recorded on an instance but not among `files`: what a push must delete. None when
/// nothing is recorded (an instance from before the key existed).
pub fn stale_file_paths(config: &BTreeMap<String, String>, files: &[FileSpec]) -> Vec<String> {
    let recorded: Vec<String> = config
        .get(KEY_FILE_PATHS)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    recorded
        .into_iter()
        .filter(|p| !files.iter().any(|f| &f.path == p))
        .collect()
}

/// Hash of the files (paths, modes, contents).
pub fn files_hash(files: &[FileSpec]) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for f in files {
        parts.extend([f.path.as_str(), f.mode.as_str(), f.content.as_str()]);
    }
    hash(&parts)
}

/// The limits.* keys the spec asks for, minus what the host cannot apply.
pub fn limit_config(spec: &BotClusterSpec, caps: &Capabilities) -> BTreeMap<String, String> {
    let mut c = BTreeMap::new();
    let r = &spec.resources;
    if let Some(cpu) = &r.cpu {
        c.insert("limits.cpu".into(), cpu.as_str().to_string());
    }
    if let Some(m) = &r.memory {
        c.insert("limits.memory".into(), m.as_str().to_string());
    }
    if let Some(p) = r.processes {
        c.insert("limits.processes".into(), p.to_string());
    }
    if let (Some(p), true) = (r.disk_priority, caps.disk_priority) {
        c.insert("limits.disk.priority".into(), p.to_string());
    }
    c
}

/// `address:port` as LXD, sockets and URLs read it: an IPv6 address in brackets
/// (`[::1]:20000`; `:::20000` is unparseable). Every place that joins the two uses this.
pub fn host_port(address: &str, port: u16) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{address}:{port}"),
    }
}

/// The proxy device publishing `container_port` on `listen_address:host_port`.
pub fn proxy_device(spec: &BotClusterSpec, host_port: u16) -> Device {
    let mut d = Device::new();
    d.insert("type".into(), "proxy".into());
    d.insert(
        "listen".into(),
        format!("tcp:{}", self::host_port(&spec.listen_address, host_port)),
    );
    d.insert(
        "connect".into(),
        format!("tcp:127.0.0.1:{}", spec.container_port),
    );
    d
}

/// The NIC device carrying network limits, when the spec names a network.
pub fn nic_device(spec: &BotClusterSpec) -> Option<Device> {
    let n = spec.resources.network.as_ref()?;
    let network = n.nic.as_ref()?;
    let mut d = Device::new();
    d.insert("type".into(), "nic".into());
    d.insert("network".into(), network.clone());
    if let Some(i) = &n.ingress {
        d.insert("limits.ingress".into(), i.as_str().to_string());
    }
    if let Some(e) = &n.egress {
        d.insert("limits.egress".into(), e.as_str().to_string());
    }
    Some(d)
}

/// The host port in a proxy device's `listen` (`tcp:127.0.0.1:20001` → 20001).
pub fn port_of_listen(listen: &str) -> Option<u16> {
    listen.rsplit(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ordinals_round_trip() {
        assert_eq!(instance_name("web", 3), "web-3");
        assert_eq!(ordinal_of("web", "web-3"), Some(3));
        assert_eq!(ordinal_of("web", "web-03"), None);
        assert_eq!(ordinal_of("web", "web-api-3"), None);
        assert_eq!(ordinal_of("web", "webx-3"), None);
        assert_eq!(cluster_of("web-api-12"), Some("web-api"));
        assert_eq!(cluster_of("web"), None);
        assert_eq!(port_of_listen("tcp:127.0.0.1:20001"), Some(20001));
    }

    #[test]
    fn ipv6_listen_addresses_render_in_brackets_lxd_can_parse() {
        let mut spec: BotClusterSpec =
            serde_json::from_value(serde_json::json!({"image": "img"})).unwrap();
        spec.listen_address = "::".into();
        assert_eq!(proxy_device(&spec, 20001)["listen"], "tcp:[::]:20001");
        spec.listen_address = "::1".into();
        assert_eq!(proxy_device(&spec, 20001)["listen"], "tcp:[::1]:20001");
        assert_eq!(port_of_listen("tcp:[::1]:20001"), Some(20001));
        spec.listen_address = "127.0.0.1".into();
        assert_eq!(proxy_device(&spec, 20001)["listen"], "tcp:127.0.0.1:20001");
        assert_eq!(host_port("::", 8080), "[::]:8080");
    }
}
