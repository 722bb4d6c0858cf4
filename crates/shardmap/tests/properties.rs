//! Property tests of the shard map's Done means: balance within one slot, n → n±1 moves
//! only whole slots and at most ⌈S/(n+1)⌉ + 1 of them, modulo's movement measured, range maps
//! refuse gaps and overlaps, and a manual rebalance publishes nothing until approved.

use botcluster_shardmap::*;
use proptest::prelude::*;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("shard-{i}")).collect()
}

fn refs(names: &[String]) -> Vec<ShardRef> {
    names
        .iter()
        .map(|n| ShardRef {
            name: n.clone(),
            backend: format!("db-{n}"),
        })
        .collect()
}

fn slots_desired(shards: &[String], slot_count: u32) -> Desired {
    Desired::Hash {
        key: "user_id".into(),
        algorithm: Algorithm::Slots,
        slot_count,
        shards: refs(shards),
    }
}

/// A table reached through a history of shard counts (not only a fresh one).
fn table_after(history: &[usize], slot_count: u32) -> (Vec<String>, Vec<String>) {
    let mut table: Option<Vec<String>> = None;
    let mut shards = Vec::new();
    for &n in history {
        shards = names(n);
        table = Some(assign(slot_count, &shards, table.as_deref()));
    }
    (table.unwrap_or_default(), shards)
}

fn counts(table: &[String], shards: &[String]) -> Vec<usize> {
    shards
        .iter()
        .map(|s| table.iter().filter(|o| *o == s).count())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_shard_holds_its_share_within_one_slot(
        history in prop::collection::vec(1usize..=48, 1..6),
        slot_count in prop::sample::select(vec![16u32, 100, 1024, 4096]),
    ) {
        let (table, shards) = table_after(&history, slot_count);
        prop_assert_eq!(table.len(), slot_count as usize);
        let c = counts(&table, &shards);
        let (min, max) = (c.iter().min().copied().unwrap_or(0), c.iter().max().copied().unwrap_or(0));
        prop_assert!(max - min <= 1, "counts {:?}", c);
        prop_assert!(table.iter().all(|o| shards.contains(o)));
    }

    #[test]
    fn adding_or_removing_a_shard_moves_only_whole_slots_and_few_of_them(
        history in prop::collection::vec(1usize..=48, 1..5),
        grow in any::<bool>(),
        slot_count in prop::sample::select(vec![64u32, 1024, 4096]),
        keys in prop::collection::vec("[a-z0-9]{1,12}", 200),
    ) {
        let (old, old_shards) = table_after(&history, slot_count);
        let n = old_shards.len();
        let m = if grow { n + 1 } else { n.saturating_sub(1).max(1) };
        prop_assume!(m != n);
        let new_shards = names(m);
        let new = assign(slot_count, &new_shards, Some(&old));
        let moved: Vec<usize> = (0..old.len()).filter(|&s| old[s] != new[s]).collect();
        let bound = (slot_count as usize).div_ceil(n.max(m)) + 1;
        prop_assert!(moved.len() <= bound, "{} → {}: {} slots moved, bound {}", n, m, moved.len(), bound);
        // Only what must move, moves: to the new shard, or off the removed one.
        for &s in &moved {
            if grow {
                prop_assert_eq!(&new[s], &new_shards[m - 1]);
            } else {
                prop_assert_eq!(&old[s], &old_shards[n - 1]);
            }
        }
        // Keys move with their slot, never alone: a key changes shard iff its slot did.
        let map = |t: &[String]| ShardMap::new(1, Layout::Hash(HashLayout {
            key: "k".into(), algorithm: Algorithm::Slots, hash: "fnv1a64".into(),
            shards: refs(&new_shards), slot_count: Some(slot_count), slots: to_ranges(t),
        }));
        let (a, b) = (map(&old), map(&new));
        for k in &keys {
            let (ra, rb) = (a.route(Query::Key(k)).unwrap(), b.route(Query::Key(k)).unwrap());
            let slot = slot_of(k, slot_count) as usize;
            prop_assert_eq!(ra.slot, Some(slot as u32));
            prop_assert_eq!(ra.shard != rb.shard, old[slot] != new[slot]);
        }
    }

    #[test]
    fn modulo_moves_n_over_n_plus_one_and_slots_about_one_over_n_plus_one(n in 1usize..=32) {
        let modulo = |k: usize| Layout::Hash(HashLayout {
            key: "k".into(), algorithm: Algorithm::Modulo, hash: "fnv1a64".into(),
            shards: refs(&names(k)), slot_count: None, slots: vec![],
        });
        let m = movement(&modulo(n), &modulo(n + 1));
        let expected = n as f64 / (n + 1) as f64;
        prop_assert!((m.moved_fraction - expected).abs() < 1e-9, "modulo {} → {}: {}", n, n + 1, m.moved_fraction);
        let a = layout(&slots_desired(&names(n), 1024), None).unwrap();
        let b = layout(&slots_desired(&names(n + 1), 1024), Some(&a)).unwrap();
        let s = movement(&a, &b).moved_fraction;
        prop_assert!(s <= 1.0 / (n + 1) as f64 + 1.0 / 1024.0 + 1e-9, "slots {} → {}: {}", n, n + 1, s);
    }

    #[test]
    fn range_maps_refuse_gaps_and_overlaps(
        widths in prop::collection::vec(1u64..1000, 1..8),
        start in 0u64..100,
        which in 0usize..8,
        shift in prop::sample::select(vec![-1i64, 1]),
    ) {
        let mut ranges = Vec::new();
        let mut from = start;
        for (i, w) in widths.iter().enumerate() {
            ranges.push(KeyRange { from, to: Some(from + w - 1), shard: format!("s{i}") });
            from += w;
        }
        prop_assert!(check_ranges(&ranges).is_ok());
        let i = which % ranges.len();
        prop_assume!(i > 0);
        // Move one start by one key: a gap (+1) or an overlap (-1).
        ranges[i].from = (ranges[i].from as i64 + shift) as u64;
        prop_assert!(check_ranges(&ranges).is_err());
    }
}

#[test]
fn a_manual_rebalance_publishes_nothing_until_its_id_is_approved() {
    let four = layout(&slots_desired(&names(4), 1024), None).unwrap();
    let first = decide(four.clone(), None, Policy::Manual, None);
    let published = first.publish.expect("the first map is published at once");
    assert_eq!(published.version, 1);

    let five = layout(&slots_desired(&names(5), 1024), Some(&published.layout)).unwrap();
    let waiting = decide(five.clone(), Some(&published), Policy::Manual, None);
    assert!(waiting.publish.is_none());
    let plan = waiting.pending.expect("a pending plan");
    assert!((plan.movement.moved_fraction - 204.0 / 1024.0).abs() < 1e-9);
    assert_eq!((plan.from_version, plan.to_version), (1, 2));

    let stale = decide(
        five.clone(),
        Some(&published),
        Policy::Manual,
        Some("0123456789abcdef"),
    );
    assert!(
        stale.publish.is_none(),
        "another plan's id approves nothing"
    );

    let approved = decide(
        five.clone(),
        Some(&published),
        Policy::Manual,
        Some(&plan.id),
    );
    let v2 = approved.publish.expect("approved: published");
    assert_eq!(v2.version, 2);
    assert_eq!(v2.digest, plan.id);

    let again = decide(five, Some(&v2), Policy::Manual, Some(&plan.id));
    assert!(
        again.publish.is_none() && again.pending.is_none(),
        "nothing left to do"
    );

    let auto = decide(
        layout(&slots_desired(&names(6), 1024), Some(&v2.layout)).unwrap(),
        Some(&v2),
        Policy::Auto,
        None,
    );
    assert_eq!(auto.publish.map(|m| m.version), Some(3));
}

#[test]
fn adding_a_tenant_moves_nothing_and_is_published_at_once() {
    let tenants = |list: &[&str]| Desired::Tenant {
        server: None,
        tenants: list
            .iter()
            .map(|t| (t.to_string(), format!("gb_tenant_{t}")))
            .collect(),
    };
    let v1 = ShardMap::new(1, layout(&tenants(&["acme"]), None).unwrap());
    let d = decide(
        layout(&tenants(&["acme", "globex"]), None).unwrap(),
        Some(&v1),
        Policy::Manual,
        None,
    );
    assert_eq!(d.publish.map(|m| m.version), Some(2));
    let route = v1.route(Query::Tenant("acme")).unwrap();
    assert_eq!(route.database.as_deref(), Some("gb_tenant_acme"));
    assert!(v1.route(Query::Key("1")).is_err());
}

#[test]
fn the_movement_table_four_to_five_shards() {
    // The numbers docs/sharding.md quotes: measured, not assumed.
    let modulo = |k: usize| {
        Layout::Hash(HashLayout {
            key: "k".into(),
            algorithm: Algorithm::Modulo,
            hash: "fnv1a64".into(),
            shards: refs(&names(k)),
            slot_count: None,
            slots: vec![],
        })
    };
    let a = layout(&slots_desired(&names(4), 1024), None).unwrap();
    let b = layout(&slots_desired(&names(5), 1024), Some(&a)).unwrap();
    let slots = movement(&a, &b);
    let modulo = movement(&modulo(4), &modulo(5));
    // And by routing 100,000 keys through both maps.
    let measured = |x: &Layout, y: &Layout| {
        let (x, y) = (ShardMap::new(1, x.clone()), ShardMap::new(2, y.clone()));
        let moved = (0..100_000)
            .filter(|i| {
                let k = format!("user-{i}");
                x.route(Query::Key(&k)).unwrap().shard != y.route(Query::Key(&k)).unwrap().shard
            })
            .count();
        moved as f64 / 100_000.0
    };
    let modulo_keys = measured(&self::modulo_layout(4), &self::modulo_layout(5));
    let slot_keys = measured(&a, &b);
    eprintln!(
        "4 → 5 shards: modulo {} (keys: {:.1} %), slots {} (keys: {:.1} %)",
        modulo.percent(),
        modulo_keys * 100.0,
        slots.percent(),
        slot_keys * 100.0
    );
    assert!((modulo.moved_fraction - 0.8).abs() < 1e-9);
    assert!((slots.moved_fraction - 204.0 / 1024.0).abs() < 1e-9);
    assert!((modulo_keys - 0.8).abs() < 0.01);
    assert!((slot_keys - 0.2).abs() < 0.01);
}

fn modulo_layout(k: usize) -> Layout {
    Layout::Hash(HashLayout {
        key: "k".into(),
        algorithm: Algorithm::Modulo,
        hash: "fnv1a64".into(),
        shards: refs(&names(k)),
        slot_count: None,
        slots: vec![],
    })
}
