//! Slot tables: which shard owns each of a fixed number of hash slots, how a table is
//! reassigned when shards come and go (whole slots move, and as few as the new balance
//! needs), and the compact range form a table is published in.

use serde::{Deserialize, Serialize};

use crate::MapError;

/// The default number of slots: a power of two, small enough that a published map stays a
/// few hundred bytes, large enough that 64 shards are balanced within 2 %.
pub const DEFAULT_SLOT_COUNT: u32 = 1024;

/// A run of consecutive slots owned by one shard, both ends inclusive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotRange {
    /// First slot.
    pub from: u32,
    /// Last slot (inclusive).
    pub to: u32,
    /// The shard that owns them.
    pub shard: String,
}

/// How many slots each of `n` shards gets: `base` each, and one more for the first `extra`
/// (in the order the caller ranks them).
fn shares(slot_count: u32, n: usize) -> (u32, usize) {
    let n32 = n as u32;
    (slot_count / n32, (slot_count % n32) as usize)
}

/// Assigns `slot_count` slots to `shards` (names, in order; non-empty, no duplicates).
///
/// **Guarantees**
/// - every shard ends with ⌊S/n⌋ or ⌈S/n⌉ slots (balance within one slot);
/// - a slot of `previous` stays where it is when its shard survives and is not above its new
///   share, so a change of n moves only the slots the new balance needs: from n to n+1, the
///   new shard's share (at most ⌈S/(n+1)⌉); from n to n-1, the removed shard's slots;
/// - the same inputs give the same table; without a previous table (or one of another size)
///   shard i gets the i-th contiguous block.
pub fn assign(slot_count: u32, shards: &[String], previous: Option<&[String]>) -> Vec<String> {
    let slot_count = slot_count.max(1);
    if shards.is_empty() {
        return Vec::new();
    }
    let previous = previous.filter(|p| p.len() == slot_count as usize);
    let held = |name: &str| previous.map_or(0, |p| p.iter().filter(|s| *s == name).count());
    // The extra slots (S mod n) go to the shards holding the most, so they need not move.
    let mut rank: Vec<usize> = (0..shards.len()).collect();
    rank.sort_by_key(|&i| (std::cmp::Reverse(held(&shards[i])), i));
    let (base, extra) = shares(slot_count, shards.len());
    let mut target = vec![base; shards.len()];
    for &i in rank.iter().take(extra) {
        target[i] += 1;
    }
    let index_of = |name: &str| shards.iter().position(|s| s == name);
    let mut kept = vec![0u32; shards.len()];
    let mut table: Vec<Option<usize>> = vec![None; slot_count as usize];
    if let Some(prev) = previous {
        for (slot, owner) in prev.iter().enumerate() {
            if let Some(i) = index_of(owner) {
                if kept[i] < target[i] {
                    kept[i] += 1;
                    table[slot] = Some(i);
                }
            }
        }
    }
    // Free slots, lowest first, go to the shards below their share, in shard order.
    let mut want = (0..shards.len()).flat_map(|i| {
        let missing = target[i] - kept[i];
        std::iter::repeat_n(i, missing as usize)
    });
    table
        .into_iter()
        .map(|owner| {
            let i = owner.or_else(|| want.next()).unwrap_or(0);
            shards[i].clone()
        })
        .collect()
}

/// The table as runs of consecutive slots with one owner.
pub fn to_ranges(table: &[String]) -> Vec<SlotRange> {
    let mut out: Vec<SlotRange> = Vec::new();
    for (slot, owner) in table.iter().enumerate() {
        let slot = slot as u32;
        match out.last_mut() {
            Some(last) if last.shard == *owner && last.to + 1 == slot => last.to = slot,
            _ => out.push(SlotRange {
                from: slot,
                to: slot,
                shard: owner.clone(),
            }),
        }
    }
    out
}

/// The table back from its runs, refusing gaps, overlaps and slots out of range.
pub fn from_ranges(ranges: &[SlotRange], slot_count: u32) -> Result<Vec<String>, MapError> {
    let mut next = 0u32;
    let mut table = Vec::with_capacity(slot_count as usize);
    for (i, r) in ranges.iter().enumerate() {
        if r.from != next || r.to < r.from {
            return Err(MapError::new(format!(
                "slots[{i}]: {}-{} does not start right after the previous run (expected {next}): gaps and overlaps are refused",
                r.from, r.to
            )));
        }
        if r.to >= slot_count {
            return Err(MapError::new(format!(
                "slots[{i}]: {}-{} reaches past the last slot ({})",
                r.from,
                r.to,
                slot_count - 1
            )));
        }
        table.extend(std::iter::repeat_n(
            r.shard.clone(),
            (r.to - r.from + 1) as usize,
        ));
        next = r.to + 1;
    }
    if next != slot_count {
        return Err(MapError::new(format!(
            "slots {next}-{} are not assigned to any shard",
            slot_count - 1
        )));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("shard-{i}")).collect()
    }

    #[test]
    fn a_fresh_table_is_contiguous_blocks() {
        let t = assign(10, &names(3), None);
        let r = to_ranges(&t);
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].from, r[0].to, r[0].shard.as_str()), (0, 3, "shard-0"));
        assert_eq!((r[1].from, r[1].to), (4, 6));
        assert_eq!(from_ranges(&r, 10).unwrap(), t);
    }

    #[test]
    fn four_to_five_shards_moves_a_fifth_of_the_slots() {
        let four = assign(1024, &names(4), None);
        let five = assign(1024, &names(5), Some(&four));
        let moved = four.iter().zip(&five).filter(|(a, b)| a != b).count();
        assert_eq!(moved, 204);
        assert!(five
            .iter()
            .zip(&four)
            .all(|(new, old)| new == old || new == "shard-4"));
    }

    #[test]
    fn gaps_and_overlaps_are_refused() {
        let r = |from, to| SlotRange {
            from,
            to,
            shard: "a".into(),
        };
        assert!(from_ranges(&[r(0, 3), r(5, 9)], 10).is_err());
        assert!(from_ranges(&[r(0, 5), r(5, 9)], 10).is_err());
        assert!(from_ranges(&[r(0, 8)], 10).is_err());
        assert!(from_ranges(&[r(0, 10)], 10).is_err());
        assert!(from_ranges(&[r(0, 4), r(5, 9)], 10).is_ok());
    }
}
