//! The key hash every reader of a map must compute the same way: 64-bit FNV-1a of the key's
//! UTF-8 bytes.
//!
//! ```text
//! h = 0xcbf29ce484222325                     (offset basis)
//! for each byte b of the key:  h = (h XOR b) * 0x100000001b3  (mod 2^64)
//! slot  = h mod slotCount                    (algorithm: slots)
//! index = h mod shardCount                   (algorithm: modulo)
//! ```
//!
//! FNV-1a is chosen for being five lines in any language, with published test vectors
//! (`fnv1a64("a") = 0xaf63dc4c8601ec8c`); it is not a defence against chosen keys.

/// FNV-1a's 64-bit offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV's 64-bit prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// The slot of `key` among `slot_count` slots (`slot_count` ≥ 1).
pub fn slot_of(key: &str, slot_count: u32) -> u32 {
    (fnv1a64(key.as_bytes()) % u64::from(slot_count.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn slots_are_the_hash_modulo_the_count() {
        assert_eq!(slot_of("a", 1024), (0xaf63dc4c8601ec8cu64 % 1024) as u32);
        assert_eq!(slot_of("anything", 1), 0);
    }
}
