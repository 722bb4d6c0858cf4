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

/// The ordinals to remove so that at most `replicas` of `current` remain. A busy instance
/// among the most expendable cannot go yet: it goes on a later pass, and no more useful one
/// goes in its place (that would delete serving instances and keep, say, a stopped one).
pub(super) fn victims(current: &[(u32, &ObservedInstance)], replicas: usize) -> BTreeSet<u32> {
    let excess = current.len().saturating_sub(replicas);
    let busy: BTreeSet<u32> = current
        .iter()
        .filter(|(_, o)| o.busy)
        .map(|(ord, _)| *ord)
        .collect();
    order(current)
        .into_iter()
        .take(excess)
        .filter(|ord| !busy.contains(ord))
        .collect()
}

/// The order in which instances of the current spec go on scale-down, most expendable first:
/// stopped, not ready, judged unhealthy, least loaded (in steps of [`LOAD_BUCKET`]), and
/// highest ordinal. Like Kubernetes' ReplicaSet, it keeps the instances doing the most work,
/// and like a StatefulSet, equals go from the top. Busy instances rank as stopped ones
/// ([`victims`] keeps them for now).
fn order(set: &[(u32, &ObservedInstance)]) -> Vec<u32> {
    let mut v: Vec<&(u32, &ObservedInstance)> = set.iter().collect();
    v.sort_by(|(a_ord, a), (b_ord, b)| {
        // A busy instance counts as out of service (as in a rollout): LXD may be stopping
        // it. Ranked among the first to go, it makes the others wait rather than taking the
        // last serving instance away and keeping one whose fate is unknown.
        let key = |o: &ObservedInstance| {
            (
                o.running && !o.busy,
                o.running && o.ready && !o.busy,
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
