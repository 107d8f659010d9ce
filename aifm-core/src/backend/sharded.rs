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
//! * This module touches no backend state: the replicated backend supplies liveness, the
//!   replica sets and the calls.

use super::InFlight;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

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

/// Whether an error means the server is gone (as opposed to the server's answer).
pub(crate) fn is_failure(e: &Error) -> bool {
    matches!(e, Error::Disconnected(_) | Error::Timeout)
}

/// The servers a sharded request can use, as the grouping sees them.
pub(crate) trait ShardTargets: Sync {
    /// Whether server `s` may be asked.
    fn live(&self, s: usize) -> bool;
    /// Server `s` failed with `e`: mark it dead (and count the failover).
    fn failed(&self, s: usize, e: Error);
    /// The error for a key none of whose servers is live.
    fn lost(&self, set: &[usize]) -> Error;
}

/// Groups the keys by the first live server of their set, asks every group's server at once
/// (`start(server, key indices)` sends the request; all are sent before any answer is
/// awaited), and asks the groups of servers that failed
/// again of the next live member, until every key is answered exactly once.
///
/// `sets[i]` is the rank-ordered set of servers that hold key `i`.
///
/// # Errors
/// The first answer that is not a failure; `lost` when a key has no live server left.
pub(crate) fn run_sharded<T: ShardTargets>(
    targets: &T,
    sets: &[Vec<usize>],
    start: impl Fn(usize, &[usize]) -> InFlight<Vec<Vec<u8>>>,
) -> Result<Vec<Vec<u8>>> {
    let mut answers = Vec::new();
    let mut pending: Vec<usize> = (0..sets.len()).collect();
    while !pending.is_empty() {
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &k in &pending {
            match sets[k].iter().find(|&&s| targets.live(s)) {
                Some(&s) => groups.entry(s).or_default().push(k),
                None => return Err(targets.lost(&sets[k])),
            }
        }
        let groups: Vec<(usize, Vec<usize>)> = groups.into_iter().collect();
        // Every group's request is sent before the first answer is awaited.
        let started: Vec<_> = groups.iter().map(|(s, ks)| start(*s, ks)).collect();
        let results: Vec<_> = started.into_iter().map(InFlight::wait).collect();
        pending.clear();
        for ((s, ks), r) in groups.into_iter().zip(results) {
            match r {
                Ok(a) => answers.extend(a),
                Err(e) if is_failure(&e) => {
                    targets.failed(s, e);
                    pending.extend(ks);
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::faulty::{Faulty, TestServers};
    use crate::backend::replicated::ReplicatedBackend;
    use crate::backend::{Backend, EmbeddedBackend};
    use crate::engine::{Engine, ObjectStore, Quota, RemoteDevice};
    use std::sync::Arc;

    /// A device whose opcode 1 sums the `u64` values of its shard's keys: `(count, sum)`.
    struct KeySum(ObjectStore);

    impl RemoteDevice for KeySum {
        fn type_name(&self) -> &str {
            DEVICE
        }
        fn read(&self, k: &[u8]) -> Result<Option<Vec<u8>>> {
            self.0.read(k)
        }
        fn write(&self, k: &[u8], v: &[u8]) -> Result<()> {
            self.0.write(k, v)
        }
        fn remove(&self, k: &[u8]) -> Result<bool> {
            self.0.remove(k)
        }
        fn compute(&self, op: u32, input: &[u8]) -> Result<Vec<u8>> {
            if op != 1 {
                return Err(Error::UnknownOpcode(op));
            }
            let shard = decode_shard_input(input)?;
            let scale = u64::from(*shard.input.first().unwrap_or(&1));
            let mut sum = 0u64;
            for k in &shard.keys {
                let v = self
                    .0
                    .read(k)?
                    .ok_or_else(|| Error::Remote("missing".into()))?;
                sum += u64::from_le_bytes(v.try_into().expect("8 bytes")) * scale;
            }
            let mut out = (shard.keys.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(&sum.to_le_bytes());
            Ok(out)
        }
        fn clear(&self) {
            self.0.clear()
        }
    }

    const DEVICE: &str = "aifm.test.key-sum";

    fn factory(_: &[u8], q: Arc<Quota>) -> Result<Box<dyn RemoteDevice>> {
        Ok(Box::new(KeySum(ObjectStore::new(q))))
    }

    fn register() {
        Engine::global().registry().register(DEVICE, factory);
    }

    /// Count and sum over all answers.
    fn merged(answers: &[Vec<u8>]) -> (u64, u64) {
        answers.iter().fold((0, 0), |(c, s), a| {
            let c2 = u64::from_le_bytes(a[..8].try_into().unwrap());
            let s2 = u64::from_le_bytes(a[8..].try_into().unwrap());
            (c + c2, s + s2)
        })
    }

    struct Rig {
        far: ReplicatedBackend,
        faults: Vec<Arc<Faulty<Arc<EmbeddedBackend>>>>,
        stores: Vec<Arc<EmbeddedBackend>>,
    }

    fn rig(n: usize, replicas: usize, placement: Placement) -> Rig {
        register();
        let TestServers {
            servers,
            faults,
            stores,
        } = TestServers::new(n);
        let far = ReplicatedBackend::new(servers)
            .unwrap()
            .with_replicas(replicas);
        far.construct_placed(3, DEVICE, &[], placement).unwrap();
        for i in 0..KEYS {
            far.write(3, &i.to_le_bytes(), &i.to_le_bytes()).unwrap();
        }
        Rig {
            far,
            faults,
            stores,
        }
    }

    const KEYS: u64 = 300;
    const SUM: u64 = KEYS * (KEYS - 1) / 2;

    fn all_keys() -> Vec<[u8; 8]> {
        (0..KEYS).map(u64::to_le_bytes).collect()
    }

    fn run(far: &dyn Backend) -> Result<Vec<Vec<u8>>> {
        let keys = all_keys();
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        far.compute_sharded(3, 1, &refs, &[2])
    }

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

    #[test]
    fn one_server_answers_once_with_every_key() {
        register();
        let b = EmbeddedBackend::new();
        b.construct_placed(3, DEVICE, &[], Placement::Striped)
            .unwrap();
        for i in 0..KEYS {
            b.write(3, &i.to_le_bytes(), &i.to_le_bytes()).unwrap();
        }
        let answers = run(&b).unwrap();
        assert_eq!(answers.len(), 1);
        assert_eq!(merged(&answers), (KEYS, 2 * SUM));
        assert!(b.compute_sharded(3, 1, &[], &[]).unwrap().is_empty());
    }

    #[test]
    fn striped_keys_are_counted_once_per_replica_factor() {
        for replicas in [1, 2, 3] {
            let r = rig(3, replicas, Placement::Striped);
            assert_eq!(r.far.structure_placement(3), Placement::Striped);
            // Objects really spread: every server holds some, none holds all (unless r = 3).
            for s in &r.stores {
                let held = (0..KEYS)
                    .filter(|i| s.read(3, &i.to_le_bytes()).unwrap().is_some())
                    .count() as u64;
                assert!(held > 0);
                assert_eq!(held == KEYS, replicas == 3);
            }
            let before: Vec<u64> = r.faults.iter().map(|f| f.requests()).collect();
            let answers = run(&r.far).unwrap();
            assert_eq!(answers.len(), 3, "one shard per server (r = {replicas})");
            assert_eq!(merged(&answers), (KEYS, 2 * SUM));
            for (f, b) in r.faults.iter().zip(before) {
                assert_eq!(f.requests() - b, 1, "one request per server");
            }
        }
    }

    #[test]
    fn a_dead_server_has_its_keys_asked_of_the_next_replica() {
        let r = rig(3, 2, Placement::Striped);
        r.faults[1].set_down(true);
        let answers = run(&r.far).unwrap();
        assert_eq!(merged(&answers), (KEYS, 2 * SUM));
        let s = r.far.stats();
        assert_eq!((s.dead, s.failovers), (1, 1));
        // Again, now that it is known dead: two shards, no failover.
        let answers = run(&r.far).unwrap();
        assert_eq!(answers.len(), 2);
        assert_eq!(merged(&answers), (KEYS, 2 * SUM));
        assert_eq!(r.far.stats().failovers, 1);
    }

    #[test]
    fn keys_without_a_live_replica_are_lost() {
        let r = rig(3, 1, Placement::Striped);
        r.faults[0].set_down(true);
        assert!(run(&r.far).unwrap_err().is_disconnected());
        // With replication 2, one death is survived; two are not.
        let r = rig(3, 2, Placement::Striped);
        r.faults[0].set_down(true);
        r.faults[2].set_down(true);
        assert!(run(&r.far).unwrap_err().is_disconnected());
    }

    #[test]
    fn whole_structures_answer_from_one_server() {
        let r = rig(3, 2, Placement::Whole);
        let answers = run(&r.far).unwrap();
        assert_eq!(answers.len(), 1);
        assert_eq!(merged(&answers), (KEYS, 2 * SUM));
        let set = r.far.placement(3, b"");
        r.faults[set[0]].set_down(true);
        let answers = run(&r.far).unwrap();
        assert_eq!(answers.len(), 1);
        assert_eq!(merged(&answers), (KEYS, 2 * SUM));
    }

    #[test]
    fn device_answers_are_returned_not_failed_over() {
        let r = rig(3, 2, Placement::Striped);
        let missing = 1_000_000u64.to_le_bytes();
        let e = r
            .far
            .compute_sharded(3, 1, &[&missing[..]], &[])
            .unwrap_err();
        assert_eq!(e, Error::Remote("missing".into()));
        assert_eq!(
            r.far
                .compute_sharded(3, 9, &[&missing[..]], &[])
                .unwrap_err(),
            Error::UnknownOpcode(9)
        );
        assert_eq!(r.far.stats().dead, 0);
    }

    #[test]
    fn destruct_forgets_the_placement() {
        let r = rig(3, 2, Placement::Striped);
        r.far.destruct(3).unwrap();
        assert_eq!(r.far.structure_placement(3), Placement::Whole);
        r.far.construct(3, DEVICE, &[]).unwrap();
        assert_eq!(r.far.structure_placement(3), Placement::Whole);
    }
}
