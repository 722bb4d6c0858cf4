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
//! - Scale-down takes the least useful instances first: stopped (or busy), not ready,
//!   unhealthy, then least loaded ([`ObservedInstance::load`]); a busy one goes on a later
//!   pass, and no more useful one goes in its place. Names are `<cluster>-<ordinal>`;
//!   ordinals need not be dense, and new instances take the lowest free one.
//! - Instances LXD is busy with get no action. A host port held by any observed container
//!   is never handed to another; ports come from `spec.hostPorts` (start + ordinal) or the
//!   pool, never a taken one, and when none is left the plan says so in [`Plan::blocked`].
//! - A new-spec instance that never gets healthy during a rolling update stops it
//!   ([`Plan::stalled`]) instead of being replaced over and over; outside a rollout, such an
//!   instance is replaced (it is already out of service).

use std::collections::{BTreeMap, BTreeSet};

use botcluster_api::spec::{BotClusterSpec, FileSpec};

use crate::model::*;

mod classify;
mod placement;
mod rollout;
mod scale_down;
mod simulation;
mod steady;
mod teardown;

pub use scale_down::LOAD_BUCKET;
pub use simulation::{apply_patch, simulate};

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
    /// Push files, delete the ones pushed before that the spec no longer has, and record
    /// their hash and paths.
    PushFiles {
        /// LXD name.
        name: String,
        /// The files.
        files: Vec<FileSpec>,
        /// Their hash, stored in `user.botcluster.files`.
        hash: String,
        /// Paths pushed before and no longer wanted (from `user.botcluster.file-paths`).
        remove: Vec<String>,
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
            Action::PushFiles {
                name,
                files,
                remove,
                ..
            } => {
                let mut s = format!(
                    "push {} file(s) to {name}: {}",
                    files.len(),
                    files
                        .iter()
                        .map(|f| f.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if !remove.is_empty() {
                    s += &format!("; delete {}", remove.join(", "));
                }
                s
            }
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

/// Plans how to converge `observed` to `desired`; the answer keeps the module's Guarantees.
///
/// # Expected flow
/// 1. `classify`: which observed instances are ours (by ordinal), ours but strays, conflicts
///    (our names, not ours), or none of our business.
/// 2. Deletion requested → `teardown` and nothing else.
/// 3. Strays are deleted, then the `steady` state of the current spec's instances:
///    `scale_down`, drift patched, starts and restarts, heals, creates for missing replicas
///    (names and ports from `placement`).
/// 4. Instances of a previous spec left and nothing stalled → the `rollout` under `maxSurge`
///    and `maxUnavailable`.
pub fn plan(
    desired: &Desired<'_>,
    observed: &[ObservedInstance],
    caps: &Capabilities,
    pool: &PortPool,
) -> Plan {
    let mut out = Plan::default();
    let classify::Classified {
        owned,
        strays,
        conflicts,
    } = classify::classify(desired, observed);
    let conflict_names: BTreeSet<String> = conflicts.iter().map(|c| c.name.clone()).collect();
    out.conflicts = conflicts;

    if desired.deleting {
        out.actions = teardown::teardown(&owned, &strays);
        return out;
    }

    out.actions.extend(classify::remove_strays(&strays));
    let mut ctx = placement::Ctx::new(
        desired,
        caps,
        pool,
        observed,
        &owned,
        &strays,
        &conflict_names,
    );
    let template = template_hash(desired.spec);
    let (current, old): (Vec<_>, Vec<_>) = owned
        .iter()
        .map(|(ord, o)| (*ord, *o))
        .partition(|(_, o)| o.config.get(KEY_TEMPLATE) == Some(&template));
    let steady = steady::converge(&mut ctx, &current, old.len(), &mut out);
    if old.is_empty() || !out.stalled.is_empty() {
        return out;
    }
    rollout::roll(&mut ctx, &owned, &steady, old, &mut out);
    out
}
