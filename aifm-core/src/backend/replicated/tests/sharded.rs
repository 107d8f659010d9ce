//! Sharded compute on a replicated backend: each key answered once, failover to the next
//! replica, whole structures on one server.

use super::{OpOne, Rig, StoreWith};
use crate::backend::sharded::decode_shard_input;
use crate::backend::{Backend, EmbeddedBackend, Placement};
use crate::engine::{ObjectStore, RemoteDevice};
use crate::error::{Error, Result};

/// Opcode 1 sums the `u64` values of its shard's keys (times the input's first byte, if
/// any): `(count, sum)`.
struct KeySum;

impl OpOne for KeySum {
    const NAME: &'static str = "aifm.test.key-sum";
    fn op(store: &ObjectStore, input: &[u8]) -> Result<Vec<u8>> {
        let shard = decode_shard_input(input)?;
        let scale = u64::from(*shard.input.first().unwrap_or(&1));
        let mut sum = 0u64;
        for k in &shard.keys {
            let v = store
                .read(k)?
                .ok_or_else(|| Error::Remote("missing".into()))?;
            sum += u64::from_le_bytes(v.try_into().expect("8 bytes")) * scale;
        }
        let mut out = (shard.keys.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&sum.to_le_bytes());
        Ok(out)
    }
}

const DEVICE: &str = KeySum::NAME;

fn register() {
    StoreWith::<KeySum>::register();
}

/// Count and sum over all answers.
fn merged(answers: &[Vec<u8>]) -> (u64, u64) {
    answers.iter().fold((0, 0), |(c, s), a| {
        let c2 = u64::from_le_bytes(a[..8].try_into().unwrap());
        let s2 = u64::from_le_bytes(a[8..].try_into().unwrap());
        (c + c2, s + s2)
    })
}

fn rig(n: usize, replicas: usize, placement: Placement) -> Rig {
    register();
    let r = Rig::new(n, |far| far.with_replicas(replicas));
    r.far.construct_placed(3, DEVICE, &[], placement).unwrap();
    for i in 0..KEYS {
        r.far.write(3, &i.to_le_bytes(), &i.to_le_bytes()).unwrap();
    }
    r
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
