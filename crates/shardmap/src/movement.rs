//! How much of the data a map change moves, and which parts: the rebalance plan the operator
//! shows and waits for approval of. Moving the rows is the application's job; the plan says
//! which slots, ranges, tenants or regions go from where to where.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::map::{Algorithm, HashLayout, Layout, RangeLayout};

/// One part of the data that changes place.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Move {
    /// What moves: `slots 0-203`, `keys 1000-1999`, `hash residues`, `tenant acme`, `region eu`.
    pub keys: String,
    /// Where it is now: `shard-0 (db0)`.
    pub from: String,
    /// Where it goes.
    pub to: String,
    /// Its share of all keys (0..1), under a uniform hash; tenants and regions count one each.
    pub fraction: f64,
}

/// The difference between two layouts, in data that moves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Movement {
    /// The share of keys that change place (0..1).
    pub moved_fraction: f64,
    /// What moves where, at most [`MAX_MOVES`] entries (the fraction counts all of them).
    pub moves: Vec<Move>,
    /// Entries left out of `moves`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_moves: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// At most this many moves are listed.
pub const MAX_MOVES: usize = 64;

/// The largest residue period measured exactly; beyond it, sampled.
const EXACT_PERIOD: u64 = 1 << 22;

impl Movement {
    fn push(&mut self, m: Move) {
        self.moved_fraction += m.fraction;
        if self.moves.len() < MAX_MOVES {
            self.moves.push(m);
        } else {
            self.more_moves += 1;
        }
    }

    /// `~20 %` style, for messages.
    pub fn percent(&self) -> String {
        format!("{:.1} %", self.moved_fraction * 100.0)
    }
}

/// What changes place from `old` to `new`.
pub fn movement(old: &Layout, new: &Layout) -> Movement {
    let mut out = Movement::default();
    match (old, new) {
        (Layout::Hash(a), Layout::Hash(b)) => hash_movement(a, b, &mut out),
        (Layout::Range(a), Layout::Range(b)) => range_movement(a, b, &mut out),
        (Layout::Tenant(a), Layout::Tenant(b)) => {
            let total = a.tenants.len().max(1) as f64;
            for (tenant, db) in &a.tenants {
                if let Some(new_db) = b.tenants.get(tenant) {
                    if new_db != db || a.server != b.server {
                        out.push(Move {
                            keys: format!("tenant {tenant}"),
                            from: db.database.clone(),
                            to: new_db.database.clone(),
                            fraction: 1.0 / total,
                        });
                    }
                }
            }
        }
        (Layout::Geo(a), Layout::Geo(b)) => {
            let regions: BTreeSet<&String> = a.regions.keys().chain(b.regions.keys()).collect();
            let total = (regions.len() + 1) as f64;
            let place =
                |g: &crate::map::GeoLayout, r: &str| g.regions.get(r).unwrap_or(&g.default).clone();
            for r in regions {
                let (from, to) = (place(a, r), place(b, r));
                if from != to {
                    out.push(Move {
                        keys: format!("region {r}"),
                        from,
                        to,
                        fraction: 1.0 / total,
                    });
                }
            }
            if a.default != b.default {
                out.push(Move {
                    keys: "regions not listed".into(),
                    from: a.default.clone(),
                    to: b.default.clone(),
                    fraction: 1.0 / total,
                });
            }
        }
        (a, b) => out.push(Move {
            keys: "all keys".into(),
            from: format!("the {} map", a.strategy()),
            to: format!("the {} map", b.strategy()),
            fraction: 1.0,
        }),
    }
    out
}

fn place(h: &HashLayout, shard: &str) -> String {
    match h.shards.iter().find(|s| s.name == shard) {
        Some(s) if s.backend != s.name => format!("{} ({})", s.name, s.backend),
        _ => shard.to_string(),
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn period(h: &HashLayout) -> u64 {
    match h.algorithm {
        Algorithm::Modulo => h.shards.len().max(1) as u64,
        Algorithm::Slots => u64::from(h.slot_count.unwrap_or(1).max(1)),
    }
}

fn hash_movement(a: &HashLayout, b: &HashLayout, out: &mut Movement) {
    if a.algorithm == Algorithm::Slots
        && b.algorithm == Algorithm::Slots
        && a.slot_count == b.slot_count
    {
        // Whole slots: list them as runs.
        let count = a.slot_count.unwrap_or(1).max(1);
        let mut run: Option<(u32, u32, String, String)> = None;
        let flush = |run: Option<(u32, u32, String, String)>, out: &mut Movement| {
            if let Some((from_slot, to_slot, from, to)) = run {
                out.push(Move {
                    keys: if from_slot == to_slot {
                        format!("slot {from_slot}")
                    } else {
                        format!("slots {from_slot}-{to_slot}")
                    },
                    from,
                    to,
                    fraction: f64::from(to_slot - from_slot + 1) / f64::from(count),
                });
            }
        };
        for slot in 0..count {
            let h = u64::from(slot);
            let from = a.shard_of_hash(h).map(|s| place(a, s)).unwrap_or_default();
            let to = b.shard_of_hash(h).map(|s| place(b, s)).unwrap_or_default();
            if from == to {
                flush(run.take(), out);
                continue;
            }
            match &mut run {
                Some((_, end, f, t)) if *f == from && *t == to && *end + 1 == slot => *end = slot,
                _ => {
                    flush(run.take(), out);
                    run = Some((slot, slot, from, to));
                }
            }
        }
        flush(run, out);
        return;
    }
    // Otherwise the hash's residues modulo both periods decide; a uniform hash makes each
    // residue of lcm(p, q) equally likely.
    let (p, q) = (period(a), period(b));
    let lcm = p / gcd(p, q) * q;
    let step = (lcm / EXACT_PERIOD).max(1);
    let samples = lcm / step;
    let mut pairs: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut r = 0u64;
    while r < lcm {
        let from = a.shard_of_hash(r).map(|s| place(a, s)).unwrap_or_default();
        let to = b.shard_of_hash(r).map(|s| place(b, s)).unwrap_or_default();
        if from != to {
            *pairs.entry((from, to)).or_default() += 1;
        }
        r += step;
    }
    for ((from, to), n) in pairs {
        out.push(Move {
            keys: "hash residues".into(),
            from,
            to,
            fraction: n as f64 / samples as f64,
        });
    }
}

fn range_movement(a: &RangeLayout, b: &RangeLayout, out: &mut Movement) {
    // Cut the key space at every range start of both maps; compare each piece.
    let mut cuts: BTreeSet<u128> = BTreeSet::new();
    for r in a.ranges.iter().chain(&b.ranges) {
        cuts.insert(u128::from(r.from));
        cuts.insert(r.to.map_or(1u128 << 64, |t| u128::from(t) + 1));
    }
    cuts.insert(0);
    cuts.insert(1u128 << 64);
    let cuts: Vec<u128> = cuts.into_iter().collect();
    let space = (1u128 << 64) as f64;
    for w in cuts.windows(2) {
        let (start, end) = (w[0], w[1]);
        if start >= 1u128 << 64 {
            break;
        }
        let key = start as u64;
        let from = a.find(key).map(|r| r.shard.clone());
        let to = b.find(key).map(|r| r.shard.clone());
        if from != to {
            let last = end - 1;
            out.push(Move {
                keys: if last >= u128::from(u64::MAX) {
                    format!("keys {start}-")
                } else {
                    format!("keys {start}-{last}")
                },
                from: from.unwrap_or_else(|| "(unmapped)".into()),
                to: to.unwrap_or_else(|| "(unmapped)".into()),
                fraction: (end - start) as f64 / space,
            });
        }
    }
}
