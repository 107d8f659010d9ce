//! Per-structure placement, and device operations that run on every shard of a striped
//! structure.
//!
//! # Placement
//!
//! A structure is created [`Placement::Whole`] (the default) or [`Placement::Striped`]
//! ([`construct_placed`](super::Backend::construct_placed)). On one server the two are the
//! same. On a backend that spans several servers ([`super::replicated`]) a whole structure
//! lives on one replica set, so its remote device sees every object and
//! [`compute`](super::Backend::compute) works as on one server; a striped structure spreads
//! its objects over all servers by `(structure, key)`, so a large structure uses every
//! server's memory and bandwidth, but no device sees all of it.
//!
//! # Sharded compute
//!
//! [`compute_sharded`](super::Backend::compute_sharded) runs one *read-only* device operation
//! over an explicit list of object keys. A backend splits the list into *shards*: every key
//! goes to exactly one server that holds it (on a replicated backend, the first live member of
//! its replica set, so with replication 2 no object is counted twice), each server gets one
//! request carrying its own keys, the servers work in parallel, and the caller receives one
//! answer per shard and merges them. If a server dies mid-request, its keys are asked again of the next live replica; the
//! answers of the other shards are kept, so every key is still answered exactly once.
//!
//! The request a device receives is the operation's input wrapped with the shard's key list,
//! in the byte format of [`encode_shard_input`]; devices unwrap it with
//! [`decode_shard_input`]. The operation must not change the structure: it runs on one
//! replica only, and a change there would make the replicas drift apart.
//!
//! # Invariants
//!
//! * Each key of the request is answered by exactly one shard (of one successful answer).
//! * An empty key list asks no server and yields no answer.
//! * This module holds only what every flavour shares (the placement and the byte format);
//!   splitting a key list over servers, with failover, is the replicated backend's
//!   (`replicated/shards.rs`).

use crate::error::{Error, Result};

/// How a structure's objects are spread over the servers of a backend that has several.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::Placement;
/// assert_eq!(Placement::default(), Placement::Whole);
/// assert!(Placement::Striped.is_striped());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Placement {
    /// All objects on one replica set: the structure's device sees all of it.
    #[default]
    Whole,
    /// Each object placed by `(structure, key)`: spread over every server.
    Striped,
}

impl Placement {
    /// Whether this is [`Placement::Striped`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!aifm_core::backend::Placement::Whole.is_striped());
    /// ```
    pub fn is_striped(self) -> bool {
        self == Placement::Striped
    }
}

/// Wraps an operation's `input` with the key list of one shard (the format
/// [`decode_shard_input`] reads): a little-endian `u32` key count, each key as a `u32`
/// length and its bytes, then the input.
///
/// # Panics
/// If a key, or the number of keys, does not fit in a `u32`.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::sharded::{decode_shard_input, encode_shard_input};
/// let wire = encode_shard_input(&[&b"k1"[..], &b"key2"[..]], b"op");
/// let shard = decode_shard_input(&wire).unwrap();
/// assert_eq!(shard.keys, [&b"k1"[..], &b"key2"[..]]);
/// assert_eq!(shard.input, b"op");
/// ```
#[track_caller]
pub fn encode_shard_input(keys: &[&[u8]], input: &[u8]) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).expect("a shard's keys fit in u32 lengths");
    let size = 4 + keys.iter().map(|k| 4 + k.len()).sum::<usize>() + input.len();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&len(keys.len()).to_le_bytes());
    for k in keys {
        out.extend_from_slice(&len(k.len()).to_le_bytes());
        out.extend_from_slice(k);
    }
    out.extend_from_slice(input);
    out
}

/// One shard's part of a sharded request, as a device sees it: the keys it must cover and
/// the operation's input (the same for every shard).
///
/// # Examples
///
/// ```
/// use aifm_core::backend::sharded::{decode_shard_input, encode_shard_input};
/// let wire = encode_shard_input(&[], b"x");
/// let shard = decode_shard_input(&wire).unwrap();
/// assert!(shard.keys.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInput<'a> {
    /// The keys this shard answers for.
    pub keys: Vec<&'a [u8]>,
    /// The operation's own input.
    pub input: &'a [u8],
}

/// Reads what [`encode_shard_input`] wrote.
///
/// # Errors
/// [`Error::Protocol`] when `bytes` is truncated or its lengths do not add up.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::sharded::decode_shard_input;
/// assert!(decode_shard_input(&[5, 0, 0, 0, 1]).is_err());
/// ```
pub fn decode_shard_input(bytes: &[u8]) -> Result<ShardInput<'_>> {
    let bad = || Error::Protocol("truncated sharded request".into());
    let take_u32 = |at: &mut usize| -> Result<usize> {
        let b = bytes.get(*at..*at + 4).ok_or_else(bad)?;
        *at += 4;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
    };
    let mut at = 0;
    let n = take_u32(&mut at)?;
    // Each key takes at least 4 bytes: refuse counts the buffer cannot hold before allocating.
    if n > bytes.len() / 4 {
        return Err(bad());
    }
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        let len = take_u32(&mut at)?;
        let end = at.checked_add(len).ok_or_else(bad)?;
        keys.push(bytes.get(at..end).ok_or_else(bad)?);
        at = end;
    }
    Ok(ShardInput {
        keys,
        input: &bytes[at..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_round_trips_and_rejects_garbage() {
        let keys: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; i as usize]).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let wire = encode_shard_input(&refs, b"tail");
        let d = decode_shard_input(&wire).unwrap();
        assert_eq!(d.keys, refs);
        assert_eq!(d.input, b"tail");
        // Every truncation inside the key list is refused, never a panic.
        for cut in 0..wire.len() - 4 {
            assert!(decode_shard_input(&wire[..cut]).is_err(), "cut {cut}");
        }
        assert!(decode_shard_input(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn decoding_never_panics() {
        fn prop(bytes: Vec<u8>) -> bool {
            let _ = decode_shard_input(&bytes);
            true
        }
        quickcheck::quickcheck(prop as fn(Vec<u8>) -> bool);
    }
}
