//! Rolling update: instances of a previous spec replaced under `maxSurge` and
//! `maxUnavailable`, out-of-service ones first.

use std::collections::BTreeMap;

use super::placement::Ctx;
use super::steady::Steady;
use super::{Action, DeleteReason, ObservedInstance, Plan};

/// Each old instance either turns into a new one (replaced in place under its name and port)
/// or, once enough new ones exist, is deleted. Old instances that are out of service go first
/// and for free; serving ones only while at least `replicas - maxUnavailable` instances stay
/// available. Up to `maxSurge` extra new instances may exist meanwhile.
pub(super) fn roll(
    ctx: &mut Ctx<'_>,
    owned: &BTreeMap<u32, &ObservedInstance>,
    steady: &Steady,
    old: Vec<(u32, &ObservedInstance)>,
    out: &mut Plan,
) {
    let n = ctx.desired.replicas as usize;
    let strategy = &ctx.desired.spec.update_strategy;
    let mut deficit = n.saturating_sub(steady.new_count + steady.grow);
    let mut total = steady.new_count + steady.grow + old.len();
    let available = |o: &ObservedInstance| !o.busy && o.running && o.ready;
    let avail_now = owned
        .iter()
        .filter(|(ord, o)| !steady.victims.contains(ord) && available(o))
        .count();
    let mut budget = avail_now.saturating_sub(n.saturating_sub(strategy.max_unavailable as usize));
    let mut old_sorted = old;
    // Out-of-service first, then highest ordinal first.
    old_sorted.sort_by_key(|(ord, o)| (available(o), std::cmp::Reverse(*ord)));
    let mut waiting = Vec::new();
    for (ord, o) in old_sorted.iter().filter(|(_, o)| !available(o)) {
        if o.busy {
            out.pending_replacements += 1;
            continue;
        }
        retire(ctx, *ord, o, &mut deficit, &mut total, out);
    }
    let surge = (n + strategy.max_surge as usize)
        .saturating_sub(total)
        .min(deficit);
    for _ in 0..surge {
        if let Some(n) = ctx.fresh(out) {
            out.actions.push(Action::Create(n));
            deficit -= 1;
            total += 1;
        }
    }
    for (ord, o) in old_sorted.iter().filter(|(_, o)| available(o)) {
        if budget == 0 {
            waiting.push(o.name.clone());
            continue;
        }
        budget -= 1;
        retire(ctx, *ord, o, &mut deficit, &mut total, out);
    }
    out.pending_replacements += waiting.len();
    if !waiting.is_empty() && strategy.max_unavailable == 0 && strategy.max_surge == 0 {
        out.blocked.push(
            "rollout blocked: updateStrategy.maxUnavailable and maxSurge are both 0; set one of them to 1 or more".into(),
        );
    }
}

/// Takes an old instance out of the rollout: replaced in place while new instances are still
/// missing, deleted once there are enough.
fn retire(
    ctx: &mut Ctx<'_>,
    ord: u32,
    o: &ObservedInstance,
    deficit: &mut usize,
    total: &mut usize,
    out: &mut Plan,
) {
    if *deficit > 0 {
        if let Some(n) = ctx.replacement(ord, o, out) {
            out.actions.push(Action::Replace(n));
            *deficit -= 1;
        }
    } else {
        out.actions.push(Action::Delete {
            name: o.name.clone(),
            reason: DeleteReason::Rollout,
        });
        *total -= 1;
    }
}
