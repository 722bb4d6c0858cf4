//! Placement: what a container of the current spec looks like (ownership keys, limits,
//! devices, files) and which ordinal and host port it gets.

use std::collections::{BTreeMap, BTreeSet};

use botcluster_api::spec::{BotClusterSpec, FileSpec};

use crate::model::*;

use super::{Desired, NewInstance, ObservedInstance, Plan, PortPool};

/// Keys this cluster sets on an instance (compared and corrected on drift).
pub(super) fn owned_config(
    d: &Desired<'_>,
    ordinal: u32,
    caps: &Capabilities,
) -> BTreeMap<String, String> {
    let mut c = limit_config(d.spec, caps);
    c.insert(KEY_CLUSTER.into(), d.name.into());
    c.insert(KEY_UID.into(), d.uid.into());
    c.insert(KEY_ORDINAL.into(), ordinal.to_string());
    c.insert(KEY_TEMPLATE.into(), template_hash(d.spec));
    c
}

pub(super) fn owned_devices(spec: &BotClusterSpec, port: u16) -> BTreeMap<String, Device> {
    let mut devs = BTreeMap::new();
    devs.insert(PROXY_DEVICE.to_string(), proxy_device(spec, port));
    if let Some(nic) = nic_device(spec) {
        devs.insert(NIC_DEVICE.to_string(), nic);
    }
    devs
}

/// What the per-instance steps share within one plan.
pub(super) struct Ctx<'a> {
    pub desired: &'a Desired<'a>,
    pub caps: &'a Capabilities,
    pool: &'a PortPool,
    pub files: Vec<FileSpec>,
    pub files_h: String,
    used: BTreeSet<u16>,
    taken_ordinals: BTreeSet<u32>,
    conflict_names: &'a BTreeSet<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        desired: &'a Desired<'a>,
        caps: &'a Capabilities,
        pool: &'a PortPool,
        observed: &[ObservedInstance],
        owned: &BTreeMap<u32, &ObservedInstance>,
        strays: &[&ObservedInstance],
        conflict_names: &'a BTreeSet<String>,
    ) -> Self {
        let files = files(desired.spec);
        let files_h = files_hash(&files);
        Ctx {
            desired,
            caps,
            pool,
            files,
            files_h,
            // Every port an observed instance holds stays taken for this pass: ours, including
            // those about to be deleted (LXD may take a moment to let go of them), and also
            // strays and conflicts (an old incarnation, a stranger under our name), which the
            // operator's port book does not count against this cluster's pool. Without them a
            // new instance could be given the port a container beside it already listens on.
            used: observed.iter().filter_map(|o| o.host_port()).collect(),
            taken_ordinals: owned
                .keys()
                .copied()
                .chain(
                    strays
                        .iter()
                        .filter_map(|o| ordinal_of(desired.name, &o.name)),
                )
                .collect(),
            conflict_names,
        }
    }

    fn in_pool(&self, p: u16) -> bool {
        p >= self.pool.start && p <= self.pool.end && !self.pool.taken.contains(&p)
    }

    /// The host port for `ord`: fixed by spec.hostPorts, else `current` if still valid, else
    /// a free one from the pool. None (and a `blocked` line in the plan) when there is none.
    pub fn port(
        &mut self,
        ord: u32,
        current: Option<u16>,
        name: &str,
        out: &mut Plan,
    ) -> Option<u16> {
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
        config.insert(KEY_FILES.into(), self.files_h.clone());
        config.insert(
            crate::model::KEY_FILE_PATHS.into(),
            crate::model::file_paths_value(&self.files),
        );
        NewInstance {
            name: instance_name(self.desired.name, ord),
            ordinal: ord,
            host_port: port,
            image: spec.image.clone(),
            profiles: spec.profiles.clone(),
            config,
            devices: owned_devices(spec, port),
            files: self.files.clone(),
        }
    }

    /// A new container under an existing instance's name and (if still valid) port.
    pub fn replacement(
        &mut self,
        ord: u32,
        o: &ObservedInstance,
        out: &mut Plan,
    ) -> Option<NewInstance> {
        let port = self.port(ord, o.host_port(), &o.name, out)?;
        Some(self.new_instance(ord, port))
    }

    /// A container under the lowest free ordinal.
    pub fn fresh(&mut self, out: &mut Plan) -> Option<NewInstance> {
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
}
