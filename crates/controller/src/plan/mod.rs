//! The planner: a pure function from (desired cluster, observed instances) to actions.
//!
//! Like Nomad's allocation reconciler, nothing here talks to LXD: the same inputs give the
//! same plan, which is what makes it property-testable and explainable (`botctl diff`).
//!
//! # Guarantees
//! - Instances without this cluster's ownership keys (`user.botcluster.uid` = the object's
//!   uid) are never in a plan. One that holds a name this cluster would use is reported as a
//!   [`Conflict`] and its ordinal is skipped.
//! - Applying a plan and planning again gives no actions, except for rolling updates, which
//!   wait for new instances to get ready and converge within `replicas` rounds.
//! - During a rolling update, at least `replicas - maxUnavailable` instances stay available
//!   (or as many as were, if fewer), and at most `replicas + maxSurge` exist.
//! - Scale-down takes the least useful instances first: stopped, not ready, unhealthy, then
//!   least loaded ([`ObservedInstance::load`]). Names are `<cluster>-<ordinal>`; ordinals
//!   need not be dense, and new instances take the lowest free one.
//! - A new-spec instance that never gets healthy during a rolling update stops it
//!   ([`Plan::stalled`]) instead of being replaced over and over; outside a rollout, such an
//!   instance is replaced (it is already out of service).

use std::collections::{BTreeMap, BTreeSet};

use botcluster_api::spec::{BotClusterSpec, FileSpec};

use crate::model::*;

/// The operator's verdict on an instance that keeps failing its health checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unhealthy {
    /// Healthy, starting, or not yet judged.
    #[default]
    No,
    /// Failed `health.retries` probes in a row: restart it.
    Restart,
    /// Failed again after a restart: replace it with a fresh container.
    Replace,
}

/// An instance as observed in LXD (from the backend) plus the operator's health verdict.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedInstance {
    /// LXD name.
    pub name: String,
    /// LXD reports it Running.
    pub running: bool,
    /// LXD's status text.
    pub status: String,
    /// The instance's own config (not expanded).
    pub config: BTreeMap<String, String>,
    /// The instance's own devices (not from profiles).
    pub devices: BTreeMap<String, Device>,
    /// The operator's readiness probe passed (only meaningful when running).
    pub ready: bool,
    /// The operator's verdict after repeated failed health checks.
    pub unhealthy: Unhealthy,
    /// LXD is still running an operation on it (e.g. a start sent before an operator
    /// restart): nothing is planned for it until that finishes.
    pub busy: bool,
    /// How busy it is (CPU % of its limit), when known: scale-down removes the least loaded.
    pub load: Option<f64>,
}

impl ObservedInstance {
    /// The uid of the cluster that owns it, if botcluster made it.
    pub fn owner_uid(&self) -> Option<&str> {
        self.config.get(KEY_UID).map(String::as_str)
    }
    /// Its ordinal from the ownership key.
    pub fn ordinal(&self) -> Option<u32> {
        self.config.get(KEY_ORDINAL).and_then(|o| o.parse().ok())
    }
    /// The host port of its proxy device.
    pub fn host_port(&self) -> Option<u16> {
        self.devices
            .get(PROXY_DEVICE)
            .and_then(|d| d.get("listen"))
            .and_then(|l| port_of_listen(l))
    }
}

/// What the planner needs to know about the cluster.
#[derive(Clone, Debug)]
pub struct Desired<'a> {
    /// Cluster name.
    pub name: &'a str,
    /// The object's uid (ownership).
    pub uid: &'a str,
    /// The spec.
    pub spec: &'a BotClusterSpec,
    /// How many instances (spec.replicas, or the autoscaler's count).
    pub replicas: u32,
    /// Deletion requested: tear everything down.
    pub deleting: bool,
}

/// Host ports the planner may hand out when the spec has no `hostPorts`.
#[derive(Clone, Debug, Default)]
pub struct PortPool {
    /// First port (inclusive).
    pub start: u16,
    /// Last port (inclusive).
    pub end: u16,
    /// Ports used by other clusters or found busy on the host.
    pub taken: BTreeSet<u16>,
}

/// A new container: created stopped with its config and devices, files pushed, then started.
#[derive(Clone, Debug, PartialEq)]
pub struct NewInstance {
    /// LXD name.
    pub name: String,
    /// Ordinal.
    pub ordinal: u32,
    /// Host port of the proxy device.
    pub host_port: u16,
    /// Image alias or fingerprint.
    pub image: String,
    /// Profiles.
    pub profiles: Vec<String>,
    /// Full config, ownership keys included.
    pub config: BTreeMap<String, String>,
    /// Devices.
    pub devices: BTreeMap<String, Device>,
    /// Files to push before the first start.
    pub files: Vec<FileSpec>,
}

/// Why an instance is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// Fewer replicas wanted.
    ScaleDown,
    /// The cluster is being deleted.
    Teardown,
    /// A rolling update has enough new instances; this old one goes.
    Rollout,
}

/// One idempotent step.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create, configure, push files, start.
    Create(NewInstance),
    /// Delete the old instance of this name, then create it anew (image or profile change).
    Replace(NewInstance),
    /// Start a stopped instance.
    Start {
        /// LXD name.
        name: String,
    },
    /// Restart an instance that keeps failing its health checks.
    Restart {
        /// LXD name.
        name: String,
    },
    /// Set config keys (`""` removes one) and devices; remove devices.
    Patch {
        /// LXD name.
        name: String,
        /// Keys to set; an empty value removes the key.
        config: BTreeMap<String, String>,
        /// Devices to set (each replaced whole).
        devices: BTreeMap<String, Device>,
        /// Devices to remove.
        remove_devices: Vec<String>,
    },
    /// Push files and record their hash.
    PushFiles {
        /// LXD name.
        name: String,
        /// The files.
        files: Vec<FileSpec>,
        /// Their hash, stored in `user.botcluster.files`.
        hash: String,
    },
    /// Stop (if running) and delete.
    Delete {
        /// LXD name.
        name: String,
        /// Why.
        reason: DeleteReason,
    },
}

impl Action {
    /// The instance the action is about.
    pub fn instance(&self) -> &str {
        match self {
            Action::Create(n) | Action::Replace(n) => &n.name,
            Action::Start { name }
            | Action::Restart { name }
            | Action::Patch { name, .. }
            | Action::PushFiles { name, .. }
            | Action::Delete { name, .. } => name,
        }
    }

    /// A sentence for events, logs and dry runs.
    pub fn describe(&self) -> String {
        match self {
            Action::Create(n) => format!(
                "create {} from image {} listening on port {}",
                n.name, n.image, n.host_port
            ),
            Action::Replace(n) => format!(
                "replace {} with a new container from image {}",
                n.name, n.image
            ),
            Action::Start { name } => format!("start {name}"),
            Action::Restart { name } => {
                format!("restart {name} (it keeps failing its health checks)")
            }
            Action::Patch {
                name,
                config,
                devices,
                remove_devices,
            } => {
                let mut what: Vec<String> = config
                    .iter()
                    .map(|(k, v)| {
                        if v.is_empty() {
                            format!("unset {k}")
                        } else {
                            format!("{k}={v}")
                        }
                    })
                    .collect();
                what.extend(devices.keys().map(|d| format!("device {d}")));
                what.extend(remove_devices.iter().map(|d| format!("remove device {d}")));
                format!("update {name}: {}", what.join(", "))
            }
            Action::PushFiles { name, files, .. } => format!(
                "push {} file(s) to {name}: {}",
                files.len(),
                files
                    .iter()
                    .map(|f| f.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Action::Delete { name, reason } => match reason {
                DeleteReason::ScaleDown => format!("delete {name} (scale down)"),
                DeleteReason::Teardown => format!("delete {name} (cluster deleted)"),
                DeleteReason::Rollout => {
                    format!("delete {name} (replaced by instances of the new spec)")
                }
            },
        }
    }
}

/// An instance that holds one of this cluster's names without being its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// LXD name.
    pub name: String,
    /// Who it belongs to, as far as can be told.
    pub owner: String,
}

/// The planner's answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// Names this cluster cannot use.
    pub conflicts: Vec<Conflict>,
    /// Things the planner could not do (no free port, a blocked rollout).
    pub blocked: Vec<String>,
    /// Instances waiting for a rolling replacement.
    pub pending_replacements: usize,
    /// Instances of the new spec that never got healthy during a rolling update: the rollout
    /// stops until the spec changes, and the previous spec's instances keep serving.
    pub stalled: Vec<String>,
}

impl Plan {
    /// True when nothing is to be done.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// Keys this cluster sets on an instance (compared and corrected on drift).
fn owned_config(d: &Desired<'_>, ordinal: u32, caps: &Capabilities) -> BTreeMap<String, String> {
    let mut c = limit_config(d.spec, caps);
    c.insert(KEY_CLUSTER.into(), d.name.into());
    c.insert(KEY_UID.into(), d.uid.into());
    c.insert(KEY_ORDINAL.into(), ordinal.to_string());
    c.insert(KEY_TEMPLATE.into(), template_hash(d.spec));
    c
}

fn owned_devices(spec: &BotClusterSpec, port: u16) -> BTreeMap<String, Device> {
    let mut devs = BTreeMap::new();
    devs.insert(PROXY_DEVICE.to_string(), proxy_device(spec, port));
    if let Some(nic) = nic_device(spec) {
        devs.insert(NIC_DEVICE.to_string(), nic);
    }
    devs
}

/// Plans how to converge `observed` to `desired`.
pub fn plan(
    desired: &Desired<'_>,
    observed: &[ObservedInstance],
    caps: &Capabilities,
    pool: &PortPool,
) -> Plan {
    let mut out = Plan::default();
    let mut owned: BTreeMap<u32, &ObservedInstance> = BTreeMap::new();
    let mut strays: Vec<&ObservedInstance> = Vec::new();
    let mut conflict_names: BTreeSet<String> = BTreeSet::new();
    for o in observed {
        let mine = o.owner_uid() == Some(desired.uid)
            && o.config.get(KEY_CLUSTER).map(String::as_str) == Some(desired.name);
        if mine {
            match o.ordinal() {
                Some(ord)
                    if instance_name(desired.name, ord) == o.name && !owned.contains_key(&ord) =>
                {
                    owned.insert(ord, o);
                }
                _ => strays.push(o),
            }
        } else if ordinal_of(desired.name, &o.name).is_some() {
            let owner = match (o.config.get(KEY_CLUSTER), o.owner_uid()) {
                (Some(c), Some(u)) => format!("botcluster \"{c}\" (uid {u})"),
                _ => "not managed by botcluster".to_string(),
            };
            conflict_names.insert(o.name.clone());
            out.conflicts.push(Conflict {
                name: o.name.clone(),
                owner,
            });
        }
    }

    if desired.deleting {
        let mut all: Vec<(&u32, &&ObservedInstance)> = owned.iter().collect();
        all.reverse();
        // Busy instances (an LXD operation under way) wait for the next pass.
        for (_, o) in all.into_iter().filter(|(_, o)| !o.busy) {
            out.actions.push(Action::Delete {
                name: o.name.clone(),
                reason: DeleteReason::Teardown,
            });
        }
        for o in strays.into_iter().filter(|o| !o.busy) {
            out.actions.push(Action::Delete {
                name: o.name.clone(),
                reason: DeleteReason::Teardown,
            });
        }
        return out;
    }

    // Ours but with a broken ordinal or a name that is not ours to use.
    for o in strays.iter().filter(|o| !o.busy) {
        out.actions.push(Action::Delete {
            name: o.name.clone(),
            reason: DeleteReason::ScaleDown,
        });
    }

    let spec = desired.spec;
    let n = desired.replicas as usize;
    let strategy = &spec.update_strategy;
    let template = template_hash(spec);
    let files = files(spec);
    let files_h = files_hash(&files);
    let mut ctx = Ctx {
        desired,
        caps,
        pool,
        files: &files,
        files_h: &files_h,
        // Every port an instance of ours holds stays taken for this pass, including those
        // about to be deleted (LXD may take a moment to let go of them).
        used: owned.values().filter_map(|o| o.host_port()).collect(),
        taken_ordinals: owned
            .keys()
            .copied()
            .chain(
                strays
                    .iter()
                    .filter_map(|o| ordinal_of(desired.name, &o.name)),
            )
            .collect(),
        conflict_names: &conflict_names,
    };

    let is_new = |o: &ObservedInstance| o.config.get(KEY_TEMPLATE) == Some(&template);
    let (new_set, old_set): (Vec<_>, Vec<_>) = owned
        .iter()
        .map(|(ord, o)| (*ord, *o))
        .partition(|(_, o)| is_new(o));
    let rollout = !old_set.is_empty();

    // Instances of the current spec: more than wanted → remove the least useful ones.
    let excess = new_set.len().saturating_sub(n);
    let victims: BTreeSet<u32> = scale_down_order(&new_set)
        .into_iter()
        .take(excess)
        .collect();
    for (ord, o) in new_set.iter().rev() {
        if victims.contains(ord) {
            out.actions.push(Action::Delete {
                name: o.name.clone(),
                reason: DeleteReason::ScaleDown,
            });
        }
    }
    let mut patches = Vec::new();
    let mut starts = Vec::new();
    let mut creates = Vec::new();
    let mut heals = Vec::new();
    for (ord, o) in new_set.iter().filter(|(ord, _)| !victims.contains(ord)) {
        if o.busy {
            continue;
        }
        if o.running && o.unhealthy == Unhealthy::Replace {
            if rollout {
                // The new spec's container never got healthy: stop the rollout here, with
                // the previous spec's instances still serving.
                out.stalled.push(o.name.clone());
            } else if let Some(n) = ctx.replacement(*ord, o, &mut out) {
                // Already out of service: replacing it costs no availability.
                heals.push(Action::Replace(n));
            }
            continue;
        }
        ctx.in_place(*ord, o, &mut patches, &mut starts, &mut out);
    }
    let new_count = new_set.len() - victims.len();
    // Too few instances altogether: plain scale-up, whatever the rollout is doing.
    let grow = n.saturating_sub(new_count + old_set.len());
    if !out.stalled.is_empty() {
        out.pending_replacements = old_set.len();
    } else {
        for _ in 0..grow {
            if let Some(n) = ctx.fresh(&mut out) {
                creates.push(Action::Create(n));
            }
        }
    }
    out.actions.extend(patches);
    out.actions.extend(starts);
    out.actions.extend(heals);
    out.actions.extend(creates);
    if !rollout || !out.stalled.is_empty() {
        return out;
    }

    // Rolling update. Each old instance either turns into a new one (replaced in place under
    // its name and port) or, once enough new ones exist, is deleted. Old instances that are
    // out of service go first and for free; serving ones only while at least
    // `replicas - maxUnavailable` instances stay available. Up to `maxSurge` extra new
    // instances may exist meanwhile.
    let mut deficit = n.saturating_sub(new_count + grow);
    let mut total = new_count + grow + old_set.len();
    let available = |o: &ObservedInstance| !o.busy && o.running && o.ready;
    let avail_now = owned
        .iter()
        .filter(|(ord, o)| !victims.contains(ord) && available(o))
        .count();
    let mut budget = avail_now.saturating_sub(n.saturating_sub(strategy.max_unavailable as usize));
    let mut old_sorted = old_set;
    // Out-of-service first, then highest ordinal first.
    old_sorted.sort_by_key(|(ord, o)| (available(o), std::cmp::Reverse(*ord)));
    let mut waiting = Vec::new();
    for (ord, o) in old_sorted.iter().filter(|(_, o)| !available(o)) {
        if o.busy {
            out.pending_replacements += 1;
            continue;
        }
        retire(&mut ctx, *ord, o, &mut deficit, &mut total, &mut out);
    }
    let surge = (n + strategy.max_surge as usize)
        .saturating_sub(total)
        .min(deficit);
    for _ in 0..surge {
        if let Some(n) = ctx.fresh(&mut out) {
            out.actions.push(Action::Create(n));
            deficit -= 1;
            total += 1;
        }
    }
    for (ord, o) in old_sorted.iter().filter(|(_, o)| available(o)) {
        if budget == 0 {
            waiting.push(o.name.clone());
            continue;
        }
        budget -= 1;
        retire(&mut ctx, *ord, o, &mut deficit, &mut total, &mut out);
    }
    out.pending_replacements += waiting.len();
    if !waiting.is_empty() && strategy.max_unavailable == 0 && strategy.max_surge == 0 {
        out.blocked.push(
            "rollout blocked: updateStrategy.maxUnavailable and maxSurge are both 0; set one of them to 1 or more".into(),
        );
    }
    out
}

/// Loads closer than this (CPU percentage points) count as equal on scale-down, so noise
/// between idle instances does not decide which one goes.
pub const LOAD_BUCKET: f64 = 5.0;

fn load_bucket(o: &ObservedInstance) -> i64 {
    // Unknown load (warming up, not sampled yet) counts as none.
    (o.load.unwrap_or(0.0).max(0.0) / LOAD_BUCKET).floor() as i64
}

/// The order in which instances of the current spec go on scale-down, most expendable first:
/// busy ones never; then stopped, not ready, judged unhealthy, least loaded (in steps of
/// [`LOAD_BUCKET`]), and highest ordinal. Like Kubernetes' ReplicaSet, it keeps the instances
/// doing the most work, and like a StatefulSet, equals go from the top.
fn scale_down_order(set: &[(u32, &ObservedInstance)]) -> Vec<u32> {
    let mut v: Vec<&(u32, &ObservedInstance)> = set.iter().filter(|(_, o)| !o.busy).collect();
    v.sort_by(|(a_ord, a), (b_ord, b)| {
        let key = |o: &ObservedInstance| {
            (
                o.running,
                o.running && o.ready,
                o.unhealthy == Unhealthy::No,
            )
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| load_bucket(a).cmp(&load_bucket(b)))
            .then_with(|| b_ord.cmp(a_ord))
    });
    v.into_iter().map(|(ord, _)| *ord).collect()
}

/// Takes an old instance out of the rollout: replaced in place while new instances are still
/// missing, deleted once there are enough.
fn retire(
    ctx: &mut Ctx<'_>,
    ord: u32,
    o: &ObservedInstance,
    deficit: &mut usize,
    total: &mut usize,
    out: &mut Plan,
) {
    if *deficit > 0 {
        if let Some(n) = ctx.replacement(ord, o, out) {
            out.actions.push(Action::Replace(n));
            *deficit -= 1;
        }
    } else {
        out.actions.push(Action::Delete {
            name: o.name.clone(),
            reason: DeleteReason::Rollout,
        });
        *total -= 1;
    }
}

/// What the per-instance steps share within one plan.
struct Ctx<'a> {
    desired: &'a Desired<'a>,
    caps: &'a Capabilities,
    pool: &'a PortPool,
    files: &'a [FileSpec],
    files_h: &'a str,
    used: BTreeSet<u16>,
    taken_ordinals: BTreeSet<u32>,
    conflict_names: &'a BTreeSet<String>,
}

impl Ctx<'_> {
    fn in_pool(&self, p: u16) -> bool {
        p >= self.pool.start && p <= self.pool.end && !self.pool.taken.contains(&p)
    }

    /// The host port for `ord`: fixed by spec.hostPorts, else `current` if still valid, else
    /// a free one from the pool.
    fn port(&mut self, ord: u32, current: Option<u16>, name: &str, out: &mut Plan) -> Option<u16> {
        let port = match (&self.desired.spec.host_ports, current) {
            (Some(r), _) => u16::try_from(ord)
                .ok()
                .and_then(|o| r.start.checked_add(o))
                .filter(|p| *p <= r.end),
            (None, Some(p)) if self.in_pool(p) => Some(p),
            (None, _) => {
                let p = (self.pool.start..=self.pool.end)
                    .find(|p| !self.pool.taken.contains(p) && !self.used.contains(p));
                if let Some(p) = p {
                    self.used.insert(p);
                }
                p
            }
        };
        if port.is_none() {
            out.blocked.push(match &self.desired.spec.host_ports {
                Some(r) => format!(
                    "no host port for {name}: spec.hostPorts {}-{} is too small; widen it",
                    r.start, r.end
                ),
                None => format!(
                    "no free host port in {}-{} for {name}; widen `botctl serve --port-range` or set spec.hostPorts",
                    self.pool.start, self.pool.end
                ),
            });
        }
        port
    }

    /// A container of the current spec under `ord`.
    fn new_instance(&self, ord: u32, port: u16) -> NewInstance {
        let spec = self.desired.spec;
        let mut config = owned_config(self.desired, ord, self.caps);
        config.insert(KEY_FILES.into(), self.files_h.to_string());
        NewInstance {
            name: instance_name(self.desired.name, ord),
            ordinal: ord,
            host_port: port,
            image: spec.image.clone(),
            profiles: spec.profiles.clone(),
            config,
            devices: owned_devices(spec, port),
            files: self.files.to_vec(),
        }
    }

    /// A new container under an existing instance's name and (if still valid) port.
    fn replacement(
        &mut self,
        ord: u32,
        o: &ObservedInstance,
        out: &mut Plan,
    ) -> Option<NewInstance> {
        let port = self.port(ord, o.host_port(), &o.name, out)?;
        Some(self.new_instance(ord, port))
    }

    /// A container under the lowest free ordinal.
    fn fresh(&mut self, out: &mut Plan) -> Option<NewInstance> {
        let ord = (0u32..).find(|o| {
            !self.taken_ordinals.contains(o)
                && !self
                    .conflict_names
                    .contains(&instance_name(self.desired.name, *o))
        })?;
        let name = instance_name(self.desired.name, ord);
        let port = self.port(ord, None, &name, out)?;
        self.taken_ordinals.insert(ord);
        Some(self.new_instance(ord, port))
    }

    /// Corrects drift on an instance of the current spec: managed keys, devices, files, and
    /// starts or restarts it.
    fn in_place(
        &mut self,
        ord: u32,
        o: &ObservedInstance,
        patches: &mut Vec<Action>,
        starts: &mut Vec<Action>,
        out: &mut Plan,
    ) {
        let spec = self.desired.spec;
        let Some(port) = self.port(ord, o.host_port(), &o.name, out) else {
            return;
        };
        let config = owned_config(self.desired, ord, self.caps);
        let devices = owned_devices(spec, port);
        let mut patch_cfg = BTreeMap::new();
        for (k, v) in &config {
            if o.config.get(k) != Some(v) {
                patch_cfg.insert(k.clone(), v.clone());
            }
        }
        for k in MANAGED_LIMITS {
            if !config.contains_key(k) && o.config.get(k).is_some_and(|v| !v.is_empty()) {
                // Unsupported keys the host refuses are left as they are, not fought over.
                if k == "limits.disk.priority" && !self.caps.disk_priority {
                    continue;
                }
                patch_cfg.insert(k.to_string(), String::new());
            }
        }
        let mut patch_dev = BTreeMap::new();
        for (dn, d) in &devices {
            if o.devices.get(dn) != Some(d) {
                patch_dev.insert(dn.clone(), d.clone());
            }
        }
        let remove: Vec<String> =
            if nic_device(spec).is_none() && o.devices.contains_key(NIC_DEVICE) {
                vec![NIC_DEVICE.to_string()]
            } else {
                Vec::new()
            };
        if !patch_cfg.is_empty() || !patch_dev.is_empty() || !remove.is_empty() {
            patches.push(Action::Patch {
                name: o.name.clone(),
                config: patch_cfg,
                devices: patch_dev,
                remove_devices: remove,
            });
        }
        if o.config.get(KEY_FILES).map(String::as_str) != Some(self.files_h) {
            patches.push(Action::PushFiles {
                name: o.name.clone(),
                files: self.files.to_vec(),
                hash: self.files_h.to_string(),
            });
        }
        if !o.running {
            starts.push(Action::Start {
                name: o.name.clone(),
            });
        } else if o.unhealthy == Unhealthy::Restart {
            starts.push(Action::Restart {
                name: o.name.clone(),
            });
        }
    }
}

/// Applies a `Patch` the way LXD's PATCH (and a PUT for removals) does: config keys merge and
/// `""` removes one; each named device is replaced whole.
pub fn apply_patch(
    o: &mut ObservedInstance,
    config: &BTreeMap<String, String>,
    devices: &BTreeMap<String, Device>,
    remove_devices: &[String],
) {
    for (k, v) in config {
        if v.is_empty() {
            o.config.remove(k);
        } else {
            o.config.insert(k.clone(), v.clone());
        }
    }
    for (k, d) in devices {
        o.devices.insert(k.clone(), d.clone());
    }
    for d in remove_devices {
        o.devices.remove(d);
    }
}

/// Applies a plan to observed state as a perfect backend would: the model the property tests
/// check the planner against. New and started instances come up running and ready.
pub fn simulate(observed: &[ObservedInstance], actions: &[Action]) -> Vec<ObservedInstance> {
    let mut by_name: BTreeMap<String, ObservedInstance> = observed
        .iter()
        .map(|o| (o.name.clone(), o.clone()))
        .collect();
    for a in actions {
        match a {
            Action::Create(n) | Action::Replace(n) => {
                by_name.insert(
                    n.name.clone(),
                    ObservedInstance {
                        name: n.name.clone(),
                        running: true,
                        status: "Running".into(),
                        config: n.config.clone(),
                        devices: n.devices.clone(),
                        ready: true,
                        unhealthy: Unhealthy::No,
                        busy: false,
                        load: None,
                    },
                );
            }
            Action::Start { name } | Action::Restart { name } => {
                if let Some(o) = by_name.get_mut(name) {
                    o.running = true;
                    o.ready = true;
                    o.unhealthy = Unhealthy::No;
                    o.status = "Running".into();
                }
            }
            Action::Patch {
                name,
                config,
                devices,
                remove_devices,
            } => {
                if let Some(o) = by_name.get_mut(name) {
                    apply_patch(o, config, devices, remove_devices);
                }
            }
            Action::PushFiles { name, hash, .. } => {
                if let Some(o) = by_name.get_mut(name) {
                    o.config.insert(KEY_FILES.into(), hash.clone());
                }
            }
            Action::Delete { name, .. } => {
                by_name.remove(name);
            }
        }
    }
    by_name.into_values().collect()
}
