//! Classification: which observed instances are ours (by ordinal), ours but strays, conflicts
//! (one of our names, not ours), or none of our business.

use std::collections::BTreeMap;

use crate::model::{instance_name, ordinal_of, KEY_CLUSTER};

use super::{Action, Conflict, DeleteReason, Desired, ObservedInstance};

/// The observed instances, sorted by what they are to this cluster. Anything not in here
/// (another cluster's instance under another name) is never looked at again.
pub(super) struct Classified<'o> {
    /// Ours under our name for their ordinal: `<cluster>-<ordinal>` with a matching
    /// `user.botcluster.ordinal`, the first one per ordinal.
    pub owned: BTreeMap<u32, &'o ObservedInstance>,
    /// Ours (uid and cluster keys) but with a missing or mismatched ordinal, or a duplicate.
    pub strays: Vec<&'o ObservedInstance>,
    /// Named like ours without our uid and cluster keys: reported, never touched.
    pub conflicts: Vec<Conflict>,
}

/// Sorts `observed` by ownership. An instance is ours only with both our uid and our cluster
/// name: an old incarnation (same name, another uid) is someone else's, like a stranger's.
pub(super) fn classify<'o>(
    desired: &Desired<'_>,
    observed: &'o [ObservedInstance],
) -> Classified<'o> {
    let mut c = Classified {
        owned: BTreeMap::new(),
        strays: Vec::new(),
        conflicts: Vec::new(),
    };
    for o in observed {
        let mine = o.owner_uid() == Some(desired.uid)
            && o.config.get(KEY_CLUSTER).map(String::as_str) == Some(desired.name);
        if mine {
            match o.ordinal() {
                Some(ord)
                    if instance_name(desired.name, ord) == o.name
                        && !c.owned.contains_key(&ord) =>
                {
                    c.owned.insert(ord, o);
                }
                _ => c.strays.push(o),
            }
        } else if ordinal_of(desired.name, &o.name).is_some() {
            let owner = match (o.config.get(KEY_CLUSTER), o.owner_uid()) {
                (Some(c), Some(u)) => format!("botcluster \"{c}\" (uid {u})"),
                _ => "not managed by botcluster".to_string(),
            };
            c.conflicts.push(Conflict {
                name: o.name.clone(),
                owner,
            });
        }
    }
    c
}

/// Ours but with a broken ordinal or a name that is not ours to use: deleted, unless LXD is
/// still working on it.
pub(super) fn remove_strays(strays: &[&ObservedInstance]) -> Vec<Action> {
    strays
        .iter()
        .filter(|o| !o.busy)
        .map(|o| Action::Delete {
            name: o.name.clone(),
            reason: DeleteReason::ScaleDown,
        })
        .collect()
}
