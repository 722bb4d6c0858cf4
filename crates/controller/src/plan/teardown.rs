//! Teardown: the cluster is being deleted, so every instance of ours goes, strays included.

use std::collections::BTreeMap;

use super::{Action, DeleteReason, ObservedInstance};

/// Deletes for every owned instance (highest ordinal first), then every stray. Busy instances
/// (an LXD operation under way) wait for the next pass.
pub(super) fn teardown(
    owned: &BTreeMap<u32, &ObservedInstance>,
    strays: &[&ObservedInstance],
) -> Vec<Action> {
    owned
        .values()
        .rev()
        .chain(strays.iter())
        .filter(|o| !o.busy)
        .map(|o| Action::Delete {
            name: o.name.clone(),
            reason: DeleteReason::Teardown,
        })
        .collect()
}
