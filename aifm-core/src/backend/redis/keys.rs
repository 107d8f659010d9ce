//! The key layout in the cluster, and the slot of a key.
//!
//! A far object `(ds, key)` of namespace `ns` is stored under the Redis key
//!
//! ```text
//! {ns/ds.incarnation/group}key
//! ```
//!
//! where `group` is the hex of the key's first `placement_prefix` bytes (see
//! `ClientDevice::placement_prefix`), and `incarnation` numbers the constructions of this
//! client's structures, so a reused structure id never sees leftovers of its predecessor. The
//! braces make everything between them the key's *hash tag*: only the tag chooses the hash
//! slot, so one group's objects share a slot (one master), a batch over them is one pipeline,
//! and one `CLUSTER GETKEYSINSLOT` lists them. The raw key follows the tag unchanged (binary
//! keys may hold braces: only the first `{...}` counts).
//!
//! The trade-off of the group size: a whole-structure tag (prefix 0) puts a structure on one
//! master (balance suffers for a large structure, listing is one slot); a one-byte prefix
//! spreads it over 256 slots, so its batches fan out over every master in parallel.

/// The number of hash slots of a Redis Cluster.
pub(crate) const SLOTS: usize = 16384;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster hashes keys.
fn crc16(bytes: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(bytes)
}

/// The hash slot of a Redis key (hash tags honoured).
pub(crate) fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS as u16
}

/// Whether `ns` may name a namespace (it becomes part of every hash tag).
pub(crate) fn valid_namespace(ns: &str) -> bool {
    !ns.is_empty()
        && ns.len() <= 64
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The common start of every tag of one structure incarnation: `ns/ds.inc/`.
pub(crate) fn base(ns: &str, ds: u32, incarnation: u64) -> String {
    format!("{ns}/{ds}.{incarnation}/")
}

/// The hash tag (braces included) of a group.
pub(crate) fn tag(base: &str, group: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(base.len() + 2 * group.len() + 2);
    t.push(b'{');
    t.extend_from_slice(base.as_bytes());
    for b in group {
        t.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    t.push(b'}');
    t
}

/// The Redis key of object `key` of a structure whose groups use `prefix` leading bytes.
pub(crate) fn redis_key(base: &str, prefix: usize, key: &[u8]) -> Vec<u8> {
    let mut k = tag(base, &key[..prefix.min(key.len())]);
    k.extend_from_slice(key);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_specification() {
        // Reference values of the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(slot(b"foo{{bar}}zap"), crc16(b"{bar") % 16384);
    }

    #[test]
    fn one_group_shares_one_slot() {
        let b = base("ns", 3, 7);
        assert_eq!(b, "ns/3.7/");
        let k1 = redis_key(&b, 1, &[5, 0, 0, 0]);
        let k2 = redis_key(&b, 1, &[5, 9, 9, 9]);
        assert_eq!(slot(&k1), slot(&k2));
        assert_eq!(&k1[..10], b"{ns/3.7/05");
        // A key shorter than the prefix is its own group; braces in raw keys do not matter.
        assert_eq!(redis_key(&b, 2, &[1]), b"{ns/3.7/01}\x01".to_vec());
        assert_eq!(
            slot(&redis_key(&b, 0, b"}{x}")),
            slot(&redis_key(&b, 0, b"y"))
        );
    }

    #[test]
    fn namespaces_are_checked() {
        assert!(valid_namespace("aifm-1f2e.test:a_b"));
        assert!(!valid_namespace(""));
        assert!(!valid_namespace("a}b"));
        assert!(!valid_namespace("a/b"));
        assert!(!valid_namespace(&"x".repeat(65)));
    }
}
