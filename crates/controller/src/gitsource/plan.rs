//! What one sync does, decided from facts (pure): which BotClusters to write, which to prune
//! or release, and the inventory before and after — or why the revision is refused.
//!
//! # Guarantees
//! - Nothing another source or a person owns is written, pruned or released: a desired
//!   object that exists with another owner refuses the whole revision.
//! - Only objects in the inventory **and** still carrying this source's owner label are
//!   pruned (deleted) or released (label removed, when `prune: false`).
//! - A revision that would prune every object the source applied is refused unless
//!   `allowEmpty`.
//! - `ahead` ⊇ the old inventory ∪ the new one: written before any object, so a crash
//!   mid-sync leaves every object the sync may have created in the inventory.

use std::collections::{BTreeMap, BTreeSet};

use botcluster_api::gitsource::InventoryEntry;
use botcluster_api::BOTCLUSTER_KIND;

use super::documents::Desired;

/// What the store holds under a desired or inventoried name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    /// The owner label's value.
    pub owner: Option<String>,
    /// `metadata.managedBy`.
    pub managed_by: Option<String>,
    /// Deletion requested.
    pub deleting: bool,
}

/// The decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncPlan {
    /// Every desired object (writes of unchanged ones change nothing).
    pub apply: Vec<Desired>,
    /// Delete: in the inventory, ours, gone from Git, `prune: true`.
    pub prune: Vec<String>,
    /// Remove the owner label: in the inventory, ours, gone from Git, `prune: false`.
    pub release: Vec<String>,
    /// Drop from the inventory without touching: gone from the store, or no longer ours.
    pub forget: Vec<String>,
    /// The inventory to write before applying (old ∪ new).
    pub ahead: Vec<InventoryEntry>,
    /// The inventory after a full apply.
    pub inventory: Vec<InventoryEntry>,
}

/// Why a revision is not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Objects in Git that exist and belong to someone else.
    Conflicts(Vec<String>),
    /// The revision has no objects and would prune this many.
    Empty(usize),
    /// Objects to write that are being deleted (wait for the teardown).
    Terminating(Vec<String>),
}

/// The manager name this source writes as.
pub fn manager(source: &str) -> String {
    format!("gitsource/{source}")
}

fn entry(name: &str, file: &str) -> InventoryEntry {
    InventoryEntry {
        kind: BOTCLUSTER_KIND.into(),
        name: name.into(),
        file: file.into(),
    }
}

/// Decides one sync of `source`.
pub fn plan(
    source: &str,
    prune: bool,
    allow_empty: bool,
    desired: Vec<Desired>,
    inventory: &[InventoryEntry],
    existing: &BTreeMap<String, Existing>,
) -> Result<SyncPlan, Refusal> {
    let ours = |e: &Existing| e.owner.as_deref() == Some(source);
    let in_inventory: BTreeSet<&str> = inventory.iter().map(|i| i.name.as_str()).collect();
    let mut conflicts = Vec::new();
    let mut terminating = Vec::new();
    for d in &desired {
        match existing.get(&d.name) {
            None => {}
            Some(e) if e.deleting => terminating.push(d.name.clone()),
            Some(e) if ours(e) => {}
            // Released by this source before (deleted without --cascade, or prune: false):
            // its managedBy still names us, so a new sync may take it back.
            Some(e) if e.owner.is_none() && e.managed_by.as_deref() == Some(manager(source).as_str()) => {}
            Some(e) => conflicts.push(match &e.owner {
                Some(o) => format!("botcluster/{} belongs to GitSource {o:?}", d.name),
                None => format!(
                    "botcluster/{} exists and was written by {} (not by this source); delete it, or remove it from Git",
                    d.name,
                    e.managed_by.as_deref().unwrap_or("someone else")
                ),
            }),
        }
    }
    if !conflicts.is_empty() {
        return Err(Refusal::Conflicts(conflicts));
    }
    let wanted: BTreeSet<&str> = desired.iter().map(|d| d.name.as_str()).collect();
    let mut out = SyncPlan::default();
    for name in in_inventory.iter().filter(|n| !wanted.contains(**n)) {
        match existing.get(*name) {
            Some(e) if ours(e) && prune => out.prune.push(name.to_string()),
            Some(e) if ours(e) => out.release.push(name.to_string()),
            _ => out.forget.push(name.to_string()),
        }
    }
    if desired.is_empty() && !out.prune.is_empty() && !allow_empty {
        return Err(Refusal::Empty(out.prune.len()));
    }
    if !terminating.is_empty() {
        return Err(Refusal::Terminating(terminating));
    }
    let mut ahead: BTreeMap<String, InventoryEntry> = inventory
        .iter()
        .map(|i| (i.name.clone(), i.clone()))
        .collect();
    for d in &desired {
        ahead.insert(d.name.clone(), entry(&d.name, &d.file));
    }
    out.ahead = ahead.into_values().collect();
    let mut inv: Vec<InventoryEntry> = desired.iter().map(|d| entry(&d.name, &d.file)).collect();
    inv.sort();
    out.inventory = inv;
    out.apply = desired;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn desired(name: &str) -> Desired {
        Desired {
            name: name.into(),
            file: format!("{name}.yaml"),
            index: 0,
            labels: Default::default(),
            annotations: Default::default(),
            spec: serde_json::json!({}),
        }
    }

    fn owner_strategy() -> impl Strategy<Value = Option<Existing>> {
        prop_oneof![
            Just(None),
            Just(Some(Existing {
                owner: Some("me".into()),
                managed_by: Some("gitsource/me".into()),
                deleting: false
            })),
            Just(Some(Existing {
                owner: Some("other".into()),
                managed_by: Some("gitsource/other".into()),
                deleting: false
            })),
            Just(Some(Existing {
                owner: None,
                managed_by: Some("botctl".into()),
                deleting: false
            })),
            Just(Some(Existing {
                owner: None,
                managed_by: Some("gitsource/me".into()),
                deleting: false
            })),
            Just(Some(Existing {
                owner: Some("me".into()),
                managed_by: None,
                deleting: true
            })),
        ]
    }

    proptest! {
        /// Whatever Git, the inventory and the store say, a sync never writes, prunes or
        /// releases an object someone else owns, and prunes only what it applied.
        #[test]
        fn a_sync_never_touches_what_it_does_not_own(
            world in proptest::collection::vec((owner_strategy(), any::<bool>(), any::<bool>()), 1..8),
            prune in any::<bool>(),
            allow_empty in any::<bool>(),
        ) {
            let names: Vec<String> = (0..world.len()).map(|i| format!("c{i}")).collect();
            let mut existing = BTreeMap::new();
            let mut inventory = Vec::new();
            let mut want = Vec::new();
            for (i, (e, in_git, in_inv)) in world.iter().enumerate() {
                if let Some(e) = e { existing.insert(names[i].clone(), e.clone()); }
                if *in_git { want.push(desired(&names[i])); }
                if *in_inv { inventory.push(entry(&names[i], "")); }
            }
            let foreign = |n: &str| existing.get(n).is_some_and(|e: &Existing| e.owner.as_deref() != Some("me") && e.managed_by.as_deref() != Some("gitsource/me"));
            match plan("me", prune, allow_empty, want.clone(), &inventory, &existing) {
                Ok(p) => {
                    for d in &p.apply { prop_assert!(!foreign(&d.name), "wrote {}", d.name); }
                    for n in p.prune.iter().chain(&p.release) {
                        prop_assert!(inventory.iter().any(|i| &i.name == n), "{n} not in the inventory");
                        prop_assert_eq!(existing[n].owner.as_deref(), Some("me"));
                        prop_assert!(!want.iter().any(|d| &d.name == n));
                    }
                    if !prune { prop_assert!(p.prune.is_empty()); }
                    if want.is_empty() && !allow_empty { prop_assert!(p.prune.is_empty()); }
                    // The write-ahead inventory covers the old and the new.
                    for i in inventory.iter().chain(&p.inventory) {
                        prop_assert!(p.ahead.iter().any(|a| a.name == i.name));
                    }
                }
                Err(Refusal::Conflicts(c)) => prop_assert!(!c.is_empty() && want.iter().any(|d| foreign(&d.name))),
                Err(Refusal::Empty(n)) => prop_assert!(want.is_empty() && n > 0 && !allow_empty && prune),
                Err(Refusal::Terminating(t)) => prop_assert!(!t.is_empty()),
            }
        }
    }

    #[test]
    fn removing_everything_from_git_is_refused_unless_allow_empty() {
        let mut existing = BTreeMap::new();
        existing.insert(
            "a".to_string(),
            Existing {
                owner: Some("me".into()),
                managed_by: None,
                deleting: false,
            },
        );
        let inv = vec![entry("a", "a.yaml")];
        assert_eq!(
            plan("me", true, false, vec![], &inv, &existing),
            Err(Refusal::Empty(1))
        );
        let p = plan("me", true, true, vec![], &inv, &existing).unwrap();
        assert_eq!(p.prune, ["a"]);
        let p = plan("me", false, false, vec![], &inv, &existing).unwrap();
        assert_eq!(p.release, ["a"]);
    }
}
