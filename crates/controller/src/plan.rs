//! The planner: a pure function from (desired cluster, observed instances) to actions.
//!
//! Like Nomad's allocation reconciler, nothing here talks to LXD: the same inputs give the
//! same plan, which is what makes it property-testable and explainable (`botctl diff`).
//!
//! # Guarantees
//! - Instances without this cluster's ownership keys (`user.botcluster.uid` = the object's
//!   uid) are never in a plan. One that holds a name this cluster would use is reported as a
//!   [`Conflict`] and its ordinal is skipped.
//! - Applying a plan and planning again gives no actions, except for rolling replacements,
//!   which proceed at most `maxUnavailable` at a time and converge within `replicas` rounds.
//! - A plan never makes more than `maxUnavailable` ready instances unavailable, apart from
//!   the scale-down the spec asks for.
//! - A plan never leaves more than `replicas` instances (scale-down removes the highest
//!   ordinals first).

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

    // Scale down first, highest ordinal first; then instances of ours with a broken ordinal.
    for (ord, o) in owned.iter().rev() {
        if *ord >= desired.replicas && !o.busy {
            out.actions.push(Action::Delete {
                name: o.name.clone(),
                reason: DeleteReason::ScaleDown,
            });
        }
    }
    for o in strays.iter().filter(|o| !o.busy) {
        out.actions.push(Action::Delete {
            name: o.name.clone(),
            reason: DeleteReason::ScaleDown,
        });
    }

    let spec = desired.spec;
    let template = template_hash(spec);
    let files = files(spec);
    let files_h = files_hash(&files);
    // Ports already held by this cluster's kept instances.
    let mut used: BTreeSet<u16> = owned
        .iter()
        .filter(|(ord, _)| **ord < desired.replicas)
        .filter_map(|(_, o)| o.host_port())
        .collect();
    let in_pool = |p: u16| p >= pool.start && p <= pool.end && !pool.taken.contains(&p);
    let allocate = |used: &mut BTreeSet<u16>| -> Option<u16> {
        let p = (pool.start..=pool.end).find(|p| !pool.taken.contains(p) && !used.contains(p))?;
        used.insert(p);
        Some(p)
    };

    let mut replace_candidates: Vec<(u32, NewInstance, bool)> = Vec::new();
    let mut unavailable = 0u32;
    let mut starts = Vec::new();
    let mut creates = Vec::new();
    let mut patches = Vec::new();
    for ord in 0..desired.replicas {
        let name = instance_name(desired.name, ord);
        if conflict_names.contains(&name) {
            continue;
        }
        let current = owned.get(&ord).copied();
        // The port: fixed by spec.hostPorts, else kept, else allocated.
        let port = match (
            &spec.host_ports,
            current.and_then(ObservedInstance::host_port),
        ) {
            (Some(r), _) => Some(r.start.saturating_add(ord as u16)),
            (None, Some(p)) if in_pool(p) => Some(p),
            (None, _) => allocate(&mut used),
        };
        let Some(port) = port else {
            out.blocked.push(format!(
                "no free host port in {}-{} for {name}; widen `botctl serve --port-range` or set spec.hostPorts",
                pool.start, pool.end
            ));
            continue;
        };
        let mut config = owned_config(desired, ord, caps);
        let devices = owned_devices(spec, port);
        let new = |config: &BTreeMap<String, String>| {
            let mut config = config.clone();
            config.insert(KEY_FILES.into(), files_h.clone());
            NewInstance {
                name: name.clone(),
                ordinal: ord,
                host_port: port,
                image: spec.image.clone(),
                profiles: spec.profiles.clone(),
                config,
                devices: devices.clone(),
                files: files.clone(),
            }
        };
        let Some(o) = current else {
            unavailable += 1;
            creates.push(Action::Create(new(&config)));
            continue;
        };
        if o.busy {
            unavailable += 1;
            continue;
        }
        let available = o.running && o.ready;
        if !available {
            unavailable += 1;
        }
        if o.running && o.unhealthy == Unhealthy::Replace {
            // Already unavailable: replacing it costs no availability.
            replace_candidates.push((ord, new(&config), false));
            continue;
        }
        if o.config.get(KEY_TEMPLATE) != Some(&template) {
            replace_candidates.push((ord, new(&config), available));
            continue;
        }
        // In-place drift: managed keys that differ, managed limits that should be gone.
        let mut patch_cfg = BTreeMap::new();
        for (k, v) in &config {
            if o.config.get(k) != Some(v) {
                patch_cfg.insert(k.clone(), v.clone());
            }
        }
        for k in MANAGED_LIMITS {
            if !config.contains_key(k) && o.config.get(k).is_some_and(|v| !v.is_empty()) {
                // Unsupported keys the host refuses are left as they are, not fought over.
                if k == "limits.disk.priority" && !caps.disk_priority {
                    continue;
                }
                patch_cfg.insert(k.to_string(), String::new());
            }
        }
        config.clear();
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
                name: name.clone(),
                config: patch_cfg,
                devices: patch_dev,
                remove_devices: remove,
            });
        }
        if o.config.get(KEY_FILES) != Some(&files_h) {
            patches.push(Action::PushFiles {
                name: name.clone(),
                files: files.clone(),
                hash: files_h.clone(),
            });
        }
        if !o.running {
            starts.push(Action::Start { name: name.clone() });
        } else if o.unhealthy == Unhealthy::Restart {
            starts.push(Action::Restart { name: name.clone() });
        }
    }
    out.actions.extend(patches);
    out.actions.extend(starts);
    out.actions.extend(creates);

    // Rolling replacement, highest ordinal first. Replacing an instance that is already
    // unavailable costs nothing; an available one spends the maxUnavailable budget.
    let mut budget = spec
        .update_strategy
        .max_unavailable
        .saturating_sub(unavailable);
    replace_candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (_, n, available) in replace_candidates {
        if !available {
            out.actions.push(Action::Replace(n));
        } else if budget > 0 {
            budget -= 1;
            out.actions.push(Action::Replace(n));
        } else {
            out.pending_replacements += 1;
        }
    }
    if out.pending_replacements > 0 && spec.update_strategy.max_unavailable == 0 {
        out.blocked.push(
            "rollout blocked: maxUnavailable is 0 and surge replacement is not supported yet; set updateStrategy.maxUnavailable to 1 or more".into(),
        );
    }
    out
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
