//! Rules of `spec.cache`: node addresses and the node count each mode needs.

use super::Errors;
use crate::spec::{Cache, CacheMode};

pub(super) fn validate_cache(c: &Cache, e: &mut Errors) {
    for (i, n) in c.nodes.iter().enumerate() {
        e.host_port(&format!("spec.cache.nodes[{i}]"), n);
    }
    match c.mode {
        CacheMode::Single => e.check(c.nodes.len() == 1, "spec.cache.nodes", || {
            format!("mode single needs exactly one node, found {}", c.nodes.len())
        }),
        CacheMode::Cluster => e.check(c.nodes.len() >= 3, "spec.cache.nodes", || {
            format!("mode cluster needs at least 3 nodes (Redis Cluster's minimum of masters), found {}", c.nodes.len())
        }),
        CacheMode::Sentinel => match &c.sentinel {
            None => e.push("spec.cache.sentinel", "is required with mode sentinel; give master and nodes"),
            Some(s) => {
                e.check(!s.master.trim().is_empty(), "spec.cache.sentinel.master", || {
                    "is empty; name the master group, e.g. \"mymaster\"".into()
                });
                e.check(!s.nodes.is_empty(), "spec.cache.sentinel.nodes", || "is empty; list the sentinels".into());
                for (i, n) in s.nodes.iter().enumerate() {
                    e.host_port(&format!("spec.cache.sentinel.nodes[{i}]"), n);
                }
            }
        },
    }
}
