//! Scale-down ordering: which instances of the current spec go first when there are more than
//! `replicas`.

use std::collections::BTreeSet;

use super::{ObservedInstance, Unhealthy};

/// Loads closer than this (CPU percentage points) count as equal on scale-down, so noise
/// between idle instances does not decide which one goes.
pub const LOAD_BUCKET: f64 = 5.0;

fn load_bucket(o: &ObservedInstance) -> i64 {
    // Unknown load (warming up, not sampled yet) counts as none.
    (o.load.unwrap_or(0.0).max(0.0) / LOAD_BUCKET).floor() as i64
}

/// The ordinals to remove so that at most `replicas` of `current` remain (fewer are removed
/// when busy instances cannot go yet).
pub(super) fn victims(current: &[(u32, &ObservedInstance)], replicas: usize) -> BTreeSet<u32> {
    let excess = current.len().saturating_sub(replicas);
    order(current).into_iter().take(excess).collect()
}

/// The order in which instances of the current spec go on scale-down, most expendable first:
/// busy ones never; then stopped, not ready, judged unhealthy, least loaded (in steps of
/// [`LOAD_BUCKET`]), and highest ordinal. Like Kubernetes' ReplicaSet, it keeps the instances
/// doing the most work, and like a StatefulSet, equals go from the top.
fn order(set: &[(u32, &ObservedInstance)]) -> Vec<u32> {
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
