//! Where containers live: the [`ContainerBackend`] trait the reconciler uses, its LXD
//! implementation over `lxd-client`, and an in-memory fake for unit, property and scale tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use botcluster_api::spec::FileSpec;
use lxd_client::{
    Filter, InstancePatch, InstancePut, InstanceSource, InstanceStatePut, InstancesPost,
};

use crate::model::{Device, KEY_CLUSTER};

/// Why a backend call failed, classified for the reconciler.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The instance does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The name is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The host refuses a config key it cannot apply (e.g. `limits.disk.priority` without
    /// the blkio cgroup controller).
    #[error("{message}")]
    Unsupported {
        /// The refused key.
        key: String,
        /// LXD's words.
        message: String,
    },
    /// The host port is taken by another process.
    #[error("{message}")]
    PortBusy {
        /// The port.
        port: u16,
        /// What was seen.
        message: String,
    },
    /// LXD cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Result of backend calls.
pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// Per-instance usage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// Total CPU seconds consumed.
    pub cpu_seconds: f64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
}

/// An instance as the backend sees it: no verdicts (ready, healthy) in it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Instance {
    /// Its name.
    pub name: String,
    /// The backend reports it running.
    pub running: bool,
    /// The backend's status text (`Running`, `Stopped`, `Error`...).
    pub status: String,
    /// The instance's own config (not expanded from profiles).
    pub config: BTreeMap<String, String>,
    /// The instance's own devices (not from profiles).
    pub devices: BTreeMap<String, Device>,
    /// The cluster member it lives on (empty on a standalone host).
    pub location: String,
    /// The backend is still running an operation on it (e.g. a start sent before an operator
    /// restart).
    pub busy: bool,
}

/// What to create: a stopped instance with its config and devices.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreateRequest {
    /// Its name.
    pub name: String,
    /// Image alias or fingerprint.
    pub image: String,
    /// Profiles, in order.
    pub profiles: Vec<String>,
    /// Config keys.
    pub config: BTreeMap<String, String>,
    /// Devices.
    pub devices: BTreeMap<String, Device>,
    /// The cluster member to place it on (`None`: the backend chooses; a standalone host
    /// ignores it).
    pub target: Option<String>,
}

/// Operations the reconciler needs from a container host. All are idempotent in effect:
/// the reconciler re-observes and re-plans after any failure.
#[async_trait]
pub trait ContainerBackend: Send + Sync + 'static {
    /// Instances that belong to `cluster` (by ownership key) or hold one of its names
    /// (`<cluster>-<digits>`).
    async fn list(&self, cluster: &str) -> Result<Vec<Instance>>;
    /// Every instance carrying a botcluster ownership key (to learn used host ports).
    async fn list_managed(&self) -> Result<Vec<Instance>>;
    /// Creates a stopped instance.
    async fn create(&self, request: &CreateRequest) -> Result<()>;
    /// Starts an instance (already running is success).
    async fn start(&self, name: &str) -> Result<()>;
    /// Stops an instance, forcefully (already stopped is success).
    async fn stop(&self, name: &str) -> Result<()>;
    /// Restarts an instance (stop, then start).
    async fn restart(&self, name: &str) -> Result<()> {
        self.stop(name).await?;
        self.start(name).await
    }
    /// Deletes a stopped instance (missing is success).
    async fn delete(&self, name: &str) -> Result<()>;
    /// Sets config keys (`""` removes) and devices; removes devices.
    async fn patch(
        &self,
        name: &str,
        config: &BTreeMap<String, String>,
        devices: &BTreeMap<String, Device>,
        remove_devices: &[String],
    ) -> Result<()>;
    /// Writes a file (parents created).
    async fn push_file(&self, name: &str, file: &FileSpec) -> Result<()>;
    /// Deletes a file inside the instance; a file already gone is success.
    async fn remove_file(&self, name: &str, path: &str) -> Result<()>;
    /// Replaces a file so that a reader sees the old content or the new, never a part: on a
    /// running LXD instance, written beside it and renamed over it (`mv -f`, one `rename(2)`);
    /// on a stopped one (nobody reads), written in place. Default: [`Self::push_file`].
    async fn replace_file(&self, name: &str, file: &FileSpec) -> Result<()> {
        self.push_file(name, file).await
    }
    /// Usage of the named (running) instances, by name.
    ///
    /// On LXD this reads each instance's own state, not `GET /1.0/metrics`: on LXD 5.0.2 the
    /// metrics endpoint queries every instance, including ones that are starting, and doing so
    /// during a start was seen to stall that start's hooks until they time out (90 s).
    async fn usage(&self, names: &[String]) -> Result<HashMap<String, Usage>>;
    /// How many mutating requests were sent so far (tests prove "zero writes" with it).
    fn write_count(&self) -> u64;
}

/// The LXD backend.
pub struct LxdBackend {
    client: lxd_client::Client,
}

impl LxdBackend {
    /// Names of instances with a running LXD operation (best effort: empty on error).
    async fn busy_instances(&self) -> std::collections::HashSet<String> {
        let Ok(v) = self
            .client
            .request("GET", "/1.0/operations?recursion=1", None)
            .await
        else {
            return Default::default();
        };
        v.get("running")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
            .filter_map(|op| {
                op.pointer("/resources/instances")
                    .and_then(|i| i.as_array())
            })
            .flatten()
            .filter_map(|u| {
                u.as_str()
                    .and_then(|u| u.rsplit('/').next())
                    .map(str::to_string)
            })
            .collect()
    }

    /// Wraps a client.
    pub fn new(client: lxd_client::Client) -> Self {
        LxdBackend { client }
    }
    /// The client (events, server info).
    pub fn client(&self) -> &lxd_client::Client {
        &self.client
    }
}

/// Runs one LXD call and logs how long it took at debug level (a pass's timeline:
/// `RUST_LOG=botcluster_controller::backend=debug`).
async fn timed<T>(
    what: &'static str,
    instance: &str,
    call: impl std::future::Future<Output = std::result::Result<T, lxd_client::Error>>,
) -> std::result::Result<T, lxd_client::Error> {
    let started = std::time::Instant::now();
    let r = call.await;
    tracing::debug!(
        instance,
        ms = started.elapsed().as_millis() as u64,
        ok = r.is_ok(),
        "lxd {what}"
    );
    r
}

fn classify(e: lxd_client::Error) -> BackendError {
    use lxd_client::Error as E;
    let text = e.to_string();
    match &e {
        E::NotFound { .. } => BackendError::NotFound(text),
        E::AlreadyExists { .. } => BackendError::AlreadyExists(text),
        E::Transport { .. } => BackendError::Unavailable(text),
        _ => {
            let msg = e.lxd_message().unwrap_or(&text).to_string();
            if msg.contains("limits.disk.priority") {
                BackendError::Unsupported {
                    key: "limits.disk.priority".into(),
                    message: msg,
                }
            } else if msg.contains("address already in use")
                || msg.contains("Failed to receive fd from listener")
            {
                BackendError::PortBusy {
                    port: 0,
                    message: text,
                }
            } else {
                BackendError::Other(text)
            }
        }
    }
}

fn instance(i: lxd_client::Instance) -> Instance {
    Instance {
        running: i.is_running(),
        status: i.status.clone(),
        name: i.name,
        config: i.config,
        devices: i.devices,
        location: i.location,
        busy: false,
    }
}

#[async_trait]
impl ContainerBackend for LxdBackend {
    async fn list(&self, cluster: &str) -> Result<Vec<Instance>> {
        // One request: our name pattern. Instances carrying our cluster key always have it.
        let filter = Filter::new().matches("name", &format!("^{cluster}-[0-9]+$"));
        let list = self
            .client
            .list_instances(Some(&filter))
            .await
            .map_err(classify)?;
        // Instances LXD is still working on (say, a start sent before an operator restart):
        // acting on them again races LXD, which was seen to stall both operations.
        let busy = self.busy_instances().await;
        Ok(list
            .into_iter()
            .filter(|i| {
                crate::model::ordinal_of(cluster, &i.name).is_some()
                    || i.config.get(KEY_CLUSTER).map(String::as_str) == Some(cluster)
            })
            .map(instance)
            .map(|mut o| {
                o.busy = busy.contains(&o.name);
                o
            })
            .collect())
    }

    async fn list_managed(&self) -> Result<Vec<Instance>> {
        let list = self.client.list_instances(None).await.map_err(classify)?;
        Ok(list
            .into_iter()
            .filter(|i| i.config.contains_key(KEY_CLUSTER))
            .map(instance)
            .collect())
    }

    async fn create(&self, r: &CreateRequest) -> Result<()> {
        let post = InstancesPost {
            name: r.name.clone(),
            source: image_source(&r.image),
            instance_type: "container".into(),
            config: r.config.clone(),
            devices: r.devices.clone(),
            profiles: Some(r.profiles.clone()),
            ..Default::default()
        };
        timed(
            "create",
            &r.name,
            self.client.create_instance_on(&post, r.target.as_deref()),
        )
        .await
        .map_err(classify)
    }

    async fn start(&self, name: &str) -> Result<()> {
        match timed(
            "start",
            name,
            self.client.change_state(name, &InstanceStatePut::start()),
        )
        .await
        {
            Ok(()) | Err(lxd_client::Error::AlreadyRunning { .. }) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn stop(&self, name: &str) -> Result<()> {
        let mut stop = InstanceStatePut::stop();
        stop.force = true;
        match self.client.change_state(name, &stop).await {
            Ok(()) | Err(lxd_client::Error::AlreadyStopped { .. }) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn restart(&self, name: &str) -> Result<()> {
        match self
            .client
            .change_state(name, &InstanceStatePut::restart().force(true))
            .await
        {
            Ok(()) => Ok(()),
            // Not running (any more): start it.
            Err(lxd_client::Error::AlreadyStopped { .. }) => self.start(name).await,
            Err(e) => Err(classify(e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<()> {
        // LXD 5.0.2 runs the container's stop hooks (`lxd callhook ... stop`) after the stop
        // operation returns; deleting at once makes them fail ("Instance not found", "busy
        // running a stop operation"), and those failures were seen next to stalled starts of
        // other containers. Give the hooks a moment, and wait out any operation still on it.
        for _ in 0..20 {
            if !self.busy_instances().await.contains(name) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(750)).await;
        match self.client.delete_instance(name).await {
            Ok(()) | Err(lxd_client::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn patch(
        &self,
        name: &str,
        config: &BTreeMap<String, String>,
        devices: &BTreeMap<String, Device>,
        remove_devices: &[String],
    ) -> Result<()> {
        if !config.is_empty() || !devices.is_empty() {
            let patch = InstancePatch {
                config: (!config.is_empty()).then(|| config.clone()),
                devices: (!devices.is_empty()).then(|| devices.clone()),
                ..Default::default()
            };
            timed(
                "patch",
                name,
                self.client.patch_instance(name, &patch, None),
            )
            .await
            .map_err(classify)?;
        }
        if !remove_devices.is_empty() {
            // Removing a device needs PUT of the whole instance, guarded by its ETag; LXD's own
            // volatile writes can race it, so retry on 412.
            for attempt in 0..5 {
                let (inst, etag) = self.client.get_instance(name).await.map_err(classify)?;
                let mut put = InstancePut::from(&inst);
                for d in remove_devices {
                    put.devices.remove(d);
                }
                match self.client.put_instance(name, &put, Some(&etag)).await {
                    Ok(()) => break,
                    Err(lxd_client::Error::PreconditionFailed { .. }) if attempt < 4 => continue,
                    Err(e) => return Err(classify(e)),
                }
            }
        }
        Ok(())
    }

    async fn push_file(&self, name: &str, file: &FileSpec) -> Result<()> {
        let mode = u32::from_str_radix(&file.mode, 8).unwrap_or(0o644);
        let how = lxd_client::FilePush::mode(mode);
        let push = self
            .client
            .push_file(name, &file.path, file.content.as_bytes().to_vec(), &how);
        timed("push file", name, push).await.map_err(classify)
    }

    async fn remove_file(&self, name: &str, path: &str) -> Result<()> {
        match timed("delete file", name, self.client.delete_file(name, path)).await {
            Ok(()) | Err(lxd_client::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn replace_file(&self, name: &str, file: &FileSpec) -> Result<()> {
        let tmp = FileSpec {
            path: format!("{}.botcluster-new", file.path),
            ..file.clone()
        };
        self.push_file(name, &tmp).await?;
        // Fixed argument vector, run without a shell; the paths are the spec's, validated.
        let exec = serde_json::json!({
            "command": ["mv", "-f", tmp.path, file.path],
            "wait-for-websocket": false,
            "interactive": false,
            "record-output": false,
            "environment": {},
        });
        match self
            .client
            .request("POST", &format!("/1.0/instances/{name}/exec"), Some(&exec))
            .await
        {
            Ok(meta) if meta.get("return").and_then(|r| r.as_i64()) == Some(0) => Ok(()),
            // Not running (LXD refuses exec: nobody reads the file), or an image without
            // `mv`: write it in place.
            other => {
                if let Ok(meta) = other {
                    tracing::warn!(instance = name, path = %file.path, %meta, "mv over the file failed; writing it in place");
                }
                self.push_file(name, file).await
            }
        }
    }

    async fn usage(&self, names: &[String]) -> Result<HashMap<String, Usage>> {
        let calls = names
            .iter()
            .map(|n| async move { (n.clone(), self.client.get_instance_state(n).await) });
        let mut out = HashMap::new();
        for (name, r) in futures_util::future::join_all(calls).await {
            match r {
                Ok(st) => {
                    out.insert(
                        name,
                        Usage {
                            cpu_seconds: st.cpu.usage.max(0) as f64 / 1e9,
                            memory_bytes: st.memory.usage.max(0) as u64,
                        },
                    );
                }
                Err(lxd_client::Error::NotFound { .. }) => {}
                Err(e) => return Err(classify(e)),
            }
        }
        Ok(out)
    }

    fn write_count(&self) -> u64 {
        self.client.write_count()
    }
}

/// An in-memory LXD: the same semantics the reconciler relies on (created stopped, delete of
/// a running instance refused, PATCH merges per key and per device), no I/O.
#[derive(Clone, Default)]
pub struct FakeBackend {
    inner: Arc<Mutex<BTreeMap<String, Instance>>>,
    writes: Arc<AtomicU64>,
    /// Config keys the fake host refuses, like a host without blkio.
    pub refuse_keys: Arc<Mutex<Vec<String>>>,
    /// How long each start takes, like LXD 5.0.2 hanging in its start hooks.
    pub start_delay: Arc<Mutex<std::time::Duration>>,
    /// Starts running right now, and the most that ever ran at once.
    pub starts: Arc<Mutex<(usize, usize)>>,
    /// How long each delete takes (LXD's stop hooks, the wait for them).
    pub delete_delay: Arc<Mutex<std::time::Duration>>,
    /// Deletes running right now, and the most that ever ran at once.
    pub deletes: Arc<Mutex<(usize, usize)>>,
    /// Files inside instances: (instance, path) → content.
    files: Arc<Mutex<BTreeMap<(String, String), String>>>,
}

impl FakeBackend {
    /// An empty host.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds an instance as a person would with `lxc` (not counted as a write).
    pub fn insert(&self, o: Instance) {
        if let Ok(mut m) = self.inner.lock() {
            m.insert(o.name.clone(), o);
        }
    }
    /// Removes an instance behind the operator's back.
    pub fn remove(&self, name: &str) {
        if let Ok(mut m) = self.inner.lock() {
            m.remove(name);
        }
    }
    /// Changes an instance behind the operator's back.
    pub fn edit(&self, name: &str, f: impl FnOnce(&mut Instance)) {
        if let Ok(mut m) = self.inner.lock() {
            if let Some(o) = m.get_mut(name) {
                f(o);
            }
        }
    }
    /// The files inside `name` (path → content), as pushed.
    pub fn files_of(&self, name: &str) -> BTreeMap<String, String> {
        self.files
            .lock()
            .map(|f| {
                f.iter()
                    .filter(|((i, _), _)| i == name)
                    .map(|((_, p), c)| (p.clone(), c.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
    /// All instances.
    pub fn all(&self) -> Vec<Instance> {
        self.inner
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
    fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
    /// A start or stop: one write; a missing instance is NotFound.
    fn set_running(&self, name: &str, running: bool) -> Result<()> {
        self.write();
        self.mark_running(name, running)
    }
    fn mark_running(&self, name: &str, running: bool) -> Result<()> {
        self.with(|m| {
            let o = m
                .get_mut(name)
                .ok_or_else(|| BackendError::NotFound(format!("{name} not found")))?;
            o.running = running;
            o.status = if running { "Running" } else { "Stopped" }.into();
            Ok(())
        })
    }
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Instance>) -> Result<T>) -> Result<T> {
        let mut m = self
            .inner
            .lock()
            .map_err(|_| BackendError::Other("fake poisoned".into()))?;
        f(&mut m)
    }
}

/// Sleeps `delay` while counted in `running` (now, most at once).
async fn take_time(delay: &Mutex<std::time::Duration>, running: &Mutex<(usize, usize)>) {
    let delay = delay.lock().map(|d| *d).unwrap_or_default();
    if let Ok(mut s) = running.lock() {
        s.0 += 1;
        s.1 = s.1.max(s.0);
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Ok(mut s) = running.lock() {
        s.0 -= 1;
    }
}

#[async_trait]
impl ContainerBackend for FakeBackend {
    async fn list(&self, cluster: &str) -> Result<Vec<Instance>> {
        self.with(|m| {
            Ok(m.values()
                .filter(|o| {
                    crate::model::ordinal_of(cluster, &o.name).is_some()
                        || o.config.get(KEY_CLUSTER).map(String::as_str) == Some(cluster)
                })
                .cloned()
                .collect())
        })
    }
    async fn list_managed(&self) -> Result<Vec<Instance>> {
        self.with(|m| {
            Ok(m.values()
                .filter(|o| o.config.contains_key(KEY_CLUSTER))
                .cloned()
                .collect())
        })
    }
    async fn create(&self, r: &CreateRequest) -> Result<()> {
        let (name, config, devices) = (&r.name, &r.config, &r.devices);
        self.write();
        let refused = self
            .refuse_keys
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        if let Some(k) = refused.iter().find(|k| config.contains_key(*k)) {
            return Err(BackendError::Unsupported {
                key: k.clone(),
                message: format!("Cannot apply {k}"),
            });
        }
        self.with(|m| {
            if m.contains_key(name) {
                return Err(BackendError::AlreadyExists(format!(
                    "{name} already exists"
                )));
            }
            m.insert(
                name.clone(),
                Instance {
                    name: name.clone(),
                    running: false,
                    status: "Stopped".into(),
                    config: config.clone(),
                    devices: devices.clone(),
                    location: r.target.clone().unwrap_or_default(),
                    busy: false,
                },
            );
            Ok(())
        })
    }
    async fn start(&self, name: &str) -> Result<()> {
        // The request counts when it is sent, like a PUT that LXD then works on.
        self.write();
        take_time(&self.start_delay, &self.starts).await;
        self.mark_running(name, true)
    }
    async fn stop(&self, name: &str) -> Result<()> {
        self.set_running(name, false)
    }
    async fn delete(&self, name: &str) -> Result<()> {
        self.write();
        take_time(&self.delete_delay, &self.deletes).await;
        self.with(|m| {
            match m.get(name) {
                Some(o) if o.running => {
                    return Err(BackendError::Other(format!("{name}: Instance is running")))
                }
                _ => {}
            }
            m.remove(name);
            Ok(())
        })
    }
    async fn patch(
        &self,
        name: &str,
        config: &BTreeMap<String, String>,
        devices: &BTreeMap<String, Device>,
        remove_devices: &[String],
    ) -> Result<()> {
        self.write();
        let refused = self
            .refuse_keys
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        if let Some(k) = refused
            .iter()
            .find(|k| config.get(*k).is_some_and(|v| !v.is_empty()))
        {
            return Err(BackendError::Unsupported {
                key: k.clone(),
                message: format!("Cannot apply {k}"),
            });
        }
        self.with(|m| {
            let o = m
                .get_mut(name)
                .ok_or_else(|| BackendError::NotFound(format!("{name} not found")))?;
            // The planner's simulation applies a PATCH the same way (one merge rule).
            let mut view = crate::botcluster::observe::observed(o.clone());
            crate::plan::apply_patch(&mut view, config, devices, remove_devices);
            o.config = view.config;
            o.devices = view.devices;
            Ok(())
        })
    }
    async fn push_file(&self, name: &str, file: &FileSpec) -> Result<()> {
        self.write();
        self.with(|m| {
            m.get(name)
                .map(|_| ())
                .ok_or_else(|| BackendError::NotFound(format!("{name} not found")))
        })?;
        if let Ok(mut f) = self.files.lock() {
            f.insert((name.to_string(), file.path.clone()), file.content.clone());
        }
        Ok(())
    }
    async fn remove_file(&self, name: &str, path: &str) -> Result<()> {
        self.write();
        if let Ok(mut f) = self.files.lock() {
            f.remove(&(name.to_string(), path.to_string()));
        }
        Ok(())
    }
    async fn usage(&self, _names: &[String]) -> Result<HashMap<String, Usage>> {
        Ok(HashMap::new())
    }
    fn write_count(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// `spec.image` as an LXD source: 12 to 64 lowercase hex digits name an image by fingerprint
/// (or a unique prefix of one), like `lxc launch` accepts; anything else is an alias.
pub fn image_source(image: &str) -> InstanceSource {
    let hex = (12..=64).contains(&image.len())
        && image
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex {
        InstanceSource::image_fingerprint(image)
    } else {
        InstanceSource::image_alias(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_a_fingerprint_only_when_it_looks_like_one() {
        let fp = image_source("ee217fcc746e");
        assert_eq!(fp.fingerprint.as_deref(), Some("ee217fcc746e"));
        assert_eq!(fp.alias, None);
        for alias in [
            "botcluster-botserver",
            "deadbeef",
            "EE217FCC746E",
            "debian/12",
        ] {
            let a = image_source(alias);
            assert_eq!(a.alias.as_deref(), Some(alias), "{alias}");
            assert_eq!(a.fingerprint, None);
        }
    }
}
