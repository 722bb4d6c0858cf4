//! Rules of `spec.resources`: limits LXD can parse and a container can start with.

use super::Errors;
use crate::spec::Resources;

pub(super) fn validate_resources(r: &Resources, e: &mut Errors) {
    if let Some(cpu) = &r.cpu {
        if let Err(m) = cpu.count() {
            e.push("spec.resources.cpu", m);
        }
    }
    if let Some(mem) = &r.memory {
        match mem.bytes() {
            Err(m) => e.push("spec.resources.memory", m),
            Ok(b) => e.check(b >= 16 << 20, "spec.resources.memory", || {
                format!("\"{mem}\" is below 16MiB, too little to start a container; raise it")
            }),
        }
    }
    if let Some(p) = r.disk_priority {
        e.check(p <= 10, "spec.resources.diskPriority", || {
            format!("{p} is above 10; use 0 to 10")
        });
    }
    if let Some(p) = r.processes {
        e.check(p >= 1, "spec.resources.processes", || {
            "must be at least 1".into()
        });
    }
    if let Some(n) = &r.network {
        if let Some(nic) = &n.nic {
            // An LXD network name, which is also a Linux interface name (at most 15).
            e.rule(
                "spec.resources.network.nic",
                super::charset::lxd_name(nic, 15),
            );
        }
        for (f, rate) in [
            ("spec.resources.network.ingress", &n.ingress),
            ("spec.resources.network.egress", &n.egress),
        ] {
            if let Some(rate) = rate {
                if let Err(m) = rate.bits_per_second() {
                    e.push(f, m);
                }
            }
        }
    }
}
