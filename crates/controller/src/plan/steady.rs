//! Steady state: the current spec's instances brought to what the spec derives — scaled down,
//! drift patched, files pushed, stopped ones started, unhealthy ones restarted or healed, and
//! missing replicas created.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::*;

use super::placement::{owned_config, owned_devices, Ctx};
use super::{scale_down, Action, DeleteReason, ObservedInstance, Plan, Unhealthy};

/// What the rolling update needs to know about the steady-state step.
pub(super) struct Steady {
    /// Ordinals of the current spec deleted by scale-down.
    pub victims: BTreeSet<u32>,
    /// Instances of the current spec that remain.
    pub new_count: usize,
    /// Instances created to reach `replicas` (counting old ones as present).
    pub grow: usize,
}

/// Plans the current spec's instances (`current`) with `old` instances of a previous spec
/// still present (a rolling update, planned afterwards, deals with those). Actions go out as:
/// scale-down deletes, patches and file pushes, starts and restarts, heals, creates.
pub(super) fn converge(
    ctx: &mut Ctx<'_>,
    current: &[(u32, &ObservedInstance)],
    old: usize,
    out: &mut Plan,
) -> Steady {
    let n = ctx.desired.replicas as usize;
    let rollout = old > 0;
    // Instances of the current spec: more than wanted → remove the least useful ones.
    let victims = scale_down::victims(current, n);
    for (ord, o) in current.iter().rev() {
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
    for (ord, o) in current.iter().filter(|(ord, _)| !victims.contains(ord)) {
        if o.busy {
            continue;
        }
        if o.running && o.unhealthy == Unhealthy::Replace {
            if rollout {
                // The new spec's container never got healthy: stop the rollout here, with
                // the previous spec's instances still serving.
                out.stalled.push(o.name.clone());
            } else if let Some(n) = ctx.replacement(*ord, o, out) {
                // Already out of service: replacing it costs no availability.
                heals.push(Action::Replace(n));
            }
            continue;
        }
        correct(ctx, *ord, o, &mut patches, &mut starts, out);
    }
    let new_count = current.len() - victims.len();
    // Too few instances altogether: plain scale-up, whatever the rollout is doing.
    let grow = n.saturating_sub(new_count + old);
    if !out.stalled.is_empty() {
        out.pending_replacements = old;
    } else {
        for _ in 0..grow {
            if let Some(n) = ctx.fresh(out) {
                creates.push(Action::Create(n));
            }
        }
    }
    out.actions.extend(patches);
    out.actions.extend(starts);
    out.actions.extend(heals);
    out.actions.extend(creates);
    Steady {
        victims,
        new_count,
        grow,
    }
}

/// Corrects drift on an instance of the current spec: managed keys, devices, files, and
/// starts or restarts it.
fn correct(
    ctx: &mut Ctx<'_>,
    ord: u32,
    o: &ObservedInstance,
    patches: &mut Vec<Action>,
    starts: &mut Vec<Action>,
    out: &mut Plan,
) {
    let spec = ctx.desired.spec;
    let Some(port) = ctx.port(ord, o.host_port(), &o.name, out) else {
        return;
    };
    let config = owned_config(ctx.desired, ord, ctx.caps);
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
            if k == "limits.disk.priority" && !ctx.caps.disk_priority {
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
    let remove: Vec<String> = if nic_device(spec).is_none() && o.devices.contains_key(NIC_DEVICE) {
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
    if o.config.get(KEY_FILES) != Some(&ctx.files_h) {
        patches.push(Action::PushFiles {
            name: o.name.clone(),
            files: ctx.files.clone(),
            hash: ctx.files_h.clone(),
            remove: crate::model::stale_file_paths(&o.config, &ctx.files),
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
