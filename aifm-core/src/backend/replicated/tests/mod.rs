//! Tests of placement, replication and fail-over; a replacement's rebuild is tested in
//! `rebuild`.

mod rebuild;
mod sharded;

use super::*;
use crate::backend::faulty::{Faulty, TestServers};
use crate::backend::EmbeddedBackend;
use std::sync::Arc;
use std::time::Duration;

/// What a test device adds to an object store: its type name and its opcode 1.
pub(super) trait OpOne: 'static {
    /// The device type's name in the global engine's registry.
    const NAME: &'static str;
    /// Opcode 1 on `store`.
    fn op(store: &crate::engine::ObjectStore, input: &[u8]) -> crate::Result<Vec<u8>>;
}

/// The test devices of this backend (a hash-map-like take, a per-shard sum): an
/// [`ObjectStore`](crate::engine::ObjectStore) that lists its keys (so a replacement can be
/// rebuilt) and answers opcode 1 with `O::op`, every other opcode with `UnknownOpcode`.
pub(super) struct StoreWith<O>(
    crate::engine::ObjectStore,
    std::marker::PhantomData<fn() -> O>,
);

impl<O: OpOne> StoreWith<O> {
    /// Registers the device type `O::NAME` with the global engine (again is harmless).
    pub(super) fn register() {
        crate::engine::Engine::global()
            .registry()
            .register(O::NAME, Self::factory);
    }

    fn factory(
        _params: &[u8],
        quota: Arc<crate::engine::Quota>,
    ) -> crate::Result<Box<dyn crate::engine::RemoteDevice>> {
        Ok(Box::new(StoreWith::<O>(
            crate::engine::ObjectStore::new(quota),
            std::marker::PhantomData,
        )))
    }
}

impl<O: OpOne> crate::engine::RemoteDevice for StoreWith<O> {
    fn type_name(&self) -> &str {
        O::NAME
    }
    fn read(&self, k: &[u8]) -> crate::Result<Option<Vec<u8>>> {
        self.0.read(k)
    }
    fn write(&self, k: &[u8], v: &[u8]) -> crate::Result<()> {
        self.0.write(k, v)
    }
    fn remove(&self, k: &[u8]) -> crate::Result<bool> {
        self.0.remove(k)
    }
    fn compute(&self, opcode: u32, input: &[u8]) -> crate::Result<Vec<u8>> {
        match opcode {
            1 => O::op(&self.0, input),
            op => Err(crate::Error::UnknownOpcode(op)),
        }
    }
    fn keys(&self, after: Option<&[u8]>, limit: usize) -> crate::Result<Vec<Vec<u8>>> {
        self.0.keys(after, limit)
    }
    fn clear(&self) {
        self.0.clear()
    }
}

/// The fixture of every test of this backend (replication, sharded computes, rebuilds,
/// erasure coding): the servers (switchable, counting requests), the backend over them, and
/// direct views of each store.
pub(super) struct Rig {
    pub(super) far: Arc<ReplicatedBackend>,
    pub(super) faults: Vec<Arc<Faulty<Arc<EmbeddedBackend>>>>,
    pub(super) stores: Vec<Arc<EmbeddedBackend>>,
}

impl Rig {
    /// `n` fresh servers under a [`ReplicatedBackend`] that `setup` finishes configuring.
    pub(super) fn new(n: usize, setup: impl FnOnce(ReplicatedBackend) -> ReplicatedBackend) -> Rig {
        let TestServers {
            servers,
            faults,
            stores,
        } = TestServers::new(n);
        Rig {
            far: Arc::new(setup(ReplicatedBackend::new(servers).unwrap())),
            faults,
            stores,
        }
    }

    /// A runtime over this backend with 2000 objects written back, then server `down`
    /// switched off: every object must still read back. The runtime is returned for the
    /// caller's own checks.
    pub(super) fn runtime_survives_a_death(&self, down: usize) -> crate::Runtime {
        use crate::RemBox;
        let rt = crate::Runtime::builder()
            .local_memory(2 << 20)
            .backend(self.far.clone())
            .build()
            .unwrap();
        let boxes: Vec<RemBox<[u64; 64]>> =
            (0..2000u64).map(|i| RemBox::new_in([i; 64], &rt)).collect();
        rt.evacuate_now();
        assert!(rt.stats().write_backs > 0);
        self.faults[down].set_down(true);
        let mut scope = crate::Scope::new();
        for (i, b) in boxes.iter().enumerate() {
            assert!(b.deref(&scope).iter().all(|&x| x == i as u64), "object {i}");
            scope.renew();
        }
        drop(scope);
        drop(boxes);
        rt
    }
}

fn rig(n: usize, replicas: usize) -> Rig {
    Rig::new(n, |far| far.with_replicas(replicas))
}

fn key(i: u32) -> Vec<u8> {
    i.to_le_bytes().to_vec()
}

#[test]
fn placement_is_stable_distinct_and_balanced() {
    let r = rig(3, 2);
    let mut primaries = [0usize; 3];
    for i in 0..3000 {
        let set = r.far.placement(OBJECT_STORE, &key(i));
        assert_eq!(set, r.far.placement(OBJECT_STORE, &key(i)));
        assert_eq!(set.len(), 2);
        assert_ne!(set[0], set[1]);
        primaries[set[0]] += 1;
    }
    // Striping: every server is primary for a fair share (expected 1000 each).
    assert!(primaries.iter().all(|&p| p > 700), "{primaries:?}");
    // Whole-structure placement: the key does not matter.
    assert_eq!(r.far.placement(9, b"x"), r.far.placement(9, b"y"));
    // Clamping.
    assert_eq!(rig(3, 7).far.replicas(), 3);
    assert_eq!(rig(3, 0).far.replicas(), 1);
}

#[test]
fn writes_reach_exactly_the_replica_set() {
    let r = rig(4, 2);
    for i in 0..200 {
        r.far.write(OBJECT_STORE, &key(i), &key(i + 1)).unwrap();
    }
    let items: Vec<(Vec<u8>, Vec<u8>)> = (200..400).map(|i| (key(i), key(i + 1))).collect();
    let refs: Vec<(&[u8], &[u8])> = items.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    r.far.write_many(OBJECT_STORE, &refs).unwrap();
    for i in 0..400 {
        let set = r.far.placement(OBJECT_STORE, &key(i));
        for (s, store) in r.stores.iter().enumerate() {
            let got = store.read(OBJECT_STORE, &key(i)).unwrap();
            if set.contains(&s) {
                assert_eq!(got, Some(key(i + 1)), "object {i} missing on server {s}");
            } else {
                assert_eq!(got, None, "object {i} stray on server {s}");
            }
        }
    }
}

#[test]
fn reads_fail_over_and_count() {
    let r = rig(3, 2);
    for i in 0..300 {
        r.far.write(OBJECT_STORE, &key(i), &key(i * 7)).unwrap();
    }
    r.faults[1].set_down(true);
    for i in 0..300 {
        assert_eq!(r.far.read(OBJECT_STORE, &key(i)).unwrap(), Some(key(i * 7)));
    }
    let s = r.far.stats();
    assert_eq!((s.live, s.dead, s.failovers), (2, 1, 1));
    assert!(s.degraded_reads > 0);
    let dead = r.far.dead_servers();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, 1);
    assert!(dead[0].2.is_disconnected());
    // A dead server is never asked again.
    let before = r.faults[1].requests();
    let keys: Vec<Vec<u8>> = (0..300).map(key).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let got = r.far.read_many(OBJECT_STORE, &refs).unwrap();
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, v)| *v == Some(key(i as u32 * 7))));
    r.far.write(OBJECT_STORE, b"new", b"v").unwrap();
    assert_eq!(r.faults[1].requests(), before);
}

#[test]
fn read_many_fails_over_mid_batch() {
    let r = rig(3, 2);
    let keys: Vec<Vec<u8>> = (0..500).map(key).collect();
    let items: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &k[..])).collect();
    r.far.write_many(OBJECT_STORE, &items).unwrap();
    r.faults[0].set_down(true);
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let got = r.far.read_many(OBJECT_STORE, &refs).unwrap();
    for (k, v) in keys.iter().zip(got) {
        assert_eq!(v.as_ref(), Some(k));
    }
    assert_eq!(r.far.stats().dead, 1);
    assert_eq!(r.far.stats().failovers, 1);
}

#[test]
fn writes_after_a_death_go_to_the_survivors_and_are_readable() {
    let r = rig(3, 2);
    r.faults[2].set_down(true);
    for i in 0..300 {
        r.far.write(OBJECT_STORE, &key(i), &key(i)).unwrap();
    }
    for i in 0..300 {
        assert_eq!(r.far.read(OBJECT_STORE, &key(i)).unwrap(), Some(key(i)));
        assert!(r.far.remove(OBJECT_STORE, &key(i)).unwrap());
        assert_eq!(r.far.read(OBJECT_STORE, &key(i)).unwrap(), None);
    }
}

#[test]
fn all_replicas_dead_is_disconnected() {
    let r = rig(3, 2);
    r.far.write(OBJECT_STORE, b"k", b"v").unwrap();
    let set = r.far.placement(OBJECT_STORE, b"k");
    for &s in &set {
        r.faults[s].set_down(true);
    }
    assert!(r
        .far
        .read(OBJECT_STORE, b"k")
        .unwrap_err()
        .is_disconnected());
    assert!(r
        .far
        .write(OBJECT_STORE, b"k", b"w")
        .unwrap_err()
        .is_disconnected());
    assert!(r
        .far
        .remove(OBJECT_STORE, b"k")
        .unwrap_err()
        .is_disconnected());
    assert!(r
        .far
        .read_many(OBJECT_STORE, &[&b"k"[..]])
        .unwrap_err()
        .is_disconnected());
    assert!(r
        .far
        .write_many(OBJECT_STORE, &[(&b"k"[..], &b"w"[..])])
        .unwrap_err()
        .is_disconnected());
    // The third server still serves the objects placed on it.
    let survivor = (0..3).find(|s| !set.contains(s)).unwrap();
    let k = (0..)
        .map(key)
        .find(|k| r.far.placement(OBJECT_STORE, k)[0] == survivor)
        .unwrap();
    r.far.write(OBJECT_STORE, &k, b"ok").unwrap();
    assert_eq!(
        r.far.read(OBJECT_STORE, &k).unwrap().as_deref(),
        Some(&b"ok"[..])
    );
}

#[test]
fn server_answers_are_not_failures() {
    let r = rig(3, 2);
    let e = r.far.read(77, b"k").unwrap_err();
    assert_eq!(e, Error::UnknownStructure(77));
    assert_eq!(r.far.stats().dead, 0);
}

#[test]
fn structures_live_whole_on_their_replica_set() {
    let r = rig(3, 2);
    r.far
        .construct(5, crate::backend::OBJECT_STORE_DEVICE, &[])
        .unwrap();
    for s in &r.stores {
        // Every server has the structure.
        assert_eq!(s.read(5, b"none").unwrap(), None);
    }
    for i in 0..100 {
        r.far.write(5, &key(i), b"v").unwrap();
    }
    let set = r.far.placement(5, b"");
    for (s, store) in r.stores.iter().enumerate() {
        let held = (0..100)
            .filter(|&i| store.read(5, &key(i)).unwrap().is_some())
            .count();
        assert_eq!(held, if set.contains(&s) { 100 } else { 0 });
    }
    r.faults[set[0]].set_down(true);
    for i in 0..100 {
        assert_eq!(r.far.read(5, &key(i)).unwrap().as_deref(), Some(&b"v"[..]));
    }
    r.far.destruct(5).unwrap();
    assert_eq!(
        r.stores[set[1]].read(5, b"x").unwrap_err(),
        Error::UnknownStructure(5)
    );
}

#[test]
fn runtime_over_replicas_survives_a_death() {
    let r = rig(3, 2);
    let far = r.far.clone();
    let rt = r.runtime_survives_a_death(0);
    assert_eq!(far.stats().dead, 1);
    // The runtime reports it too.
    let servers = rt
        .stats()
        .servers
        .expect("a replicated backend reports its servers");
    assert_eq!((servers.live, servers.dead), (2, 1));
    assert!(servers.degraded_reads > 0);
    assert!(rt
        .stats()
        .to_string()
        .contains("2 live, 0 rebuilding, 1 dead"));
}

#[test]
fn keys_are_the_union_of_the_live_servers() {
    let r = rig(4, 2);
    for i in 0..500 {
        r.far.write(OBJECT_STORE, &key(i), b"v").unwrap();
    }
    let mut all: Vec<Vec<u8>> = (0..500).map(key).collect();
    all.sort();
    assert_eq!(r.far.keys(OBJECT_STORE).unwrap(), all);
    r.faults[3].set_down(true);
    assert_eq!(r.far.keys(OBJECT_STORE).unwrap(), all);
    assert_eq!(r.far.stats().dead, 1);
    assert_eq!(r.far.keys(8).unwrap_err(), Error::UnknownStructure(8));
}
