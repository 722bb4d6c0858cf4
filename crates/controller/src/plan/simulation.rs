//! Simulation: a plan applied to observed state as a perfect backend would, the model the
//! property tests (and the in-memory backend's patches) check the planner against.

use std::collections::BTreeMap;

use crate::model::{Device, KEY_FILES};

use super::{Action, ObservedInstance, Unhealthy};

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
            Action::PushFiles {
                name, hash, files, ..
            } => {
                if let Some(o) = by_name.get_mut(name) {
                    o.config.insert(KEY_FILES.into(), hash.clone());
                    o.config.insert(
                        crate::model::KEY_FILE_PATHS.into(),
                        crate::model::file_paths_value(files),
                    );
                }
            }
            Action::Delete { name, .. } => {
                by_name.remove(name);
            }
        }
    }
    by_name.into_values().collect()
}
