//! Tests of replacing a dead server and rebuilding its copies.

use super::*;
use crate::backend::replicated::rebuild::BATCH;
use crate::engine::RemoteDevice;

/// Takes server `i` down and lets a request notice it.
fn kill(faults: &[Arc<Faulty<Arc<EmbeddedBackend>>>], far: &ReplicatedBackend, i: usize) {
    faults[i].set_down(true);
    far.keys(OBJECT_STORE).unwrap(); // asks every live server
    assert!(!far.is_live(i));
}

/// What a fresh replacement store holds of structure `ds`, as a map.
fn contents(store: &EmbeddedBackend, ds: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store
        .keys(ds)
        .unwrap()
        .into_iter()
        .map(|k| {
            let v = store.read(ds, &k).unwrap().unwrap();
            (k, v)
        })
        .collect()
}

#[test]
fn rebuild_copies_exactly_the_objects_placed_on_the_index() {
    let r = rig(3, 2);
    let victim = r.far.placement(5, b"")[0]; // holds structure 5 too
    let far = r.far.clone();
    far.construct(5, crate::backend::OBJECT_STORE_DEVICE, &[])
        .unwrap();
    far.construct(6, crate::backend::OBJECT_STORE_DEVICE, &[])
        .unwrap();
    far.destruct(6).unwrap(); // forgotten: not rebuilt
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for i in 0..600 {
        far.write(OBJECT_STORE, &key(i), &key(i + 1)).unwrap();
        model.insert(key(i), key(i + 1));
    }
    for i in 0..50 {
        far.write(5, &key(i), b"five").unwrap();
    }
    kill(&r.faults, &far, victim);
    // Changes while the victim is dead: new objects, new values, removals.
    for i in 600..700 {
        far.write(OBJECT_STORE, &key(i), &key(i * 2)).unwrap();
        model.insert(key(i), key(i * 2));
    }
    for i in (0..600).step_by(3) {
        far.write(OBJECT_STORE, &key(i), b"newer").unwrap();
        model.insert(key(i), b"newer".to_vec());
    }
    for i in (1..600).step_by(7) {
        assert!(far.remove(OBJECT_STORE, &key(i)).unwrap());
        model.remove(&key(i));
    }
    far.remove(5, &key(0)).unwrap();
    let fresh = Arc::new(EmbeddedBackend::new());
    far.replace_server(victim, Box::new(fresh.clone())).unwrap();
    far.wait_rebuilt(victim, Duration::from_secs(30)).unwrap();
    let expect: BTreeMap<Vec<u8>, Vec<u8>> = model
        .iter()
        .filter(|(k, _)| far.placement(OBJECT_STORE, k).contains(&victim))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(expect.len() > 300 && expect.len() < model.len());
    assert_eq!(contents(&fresh, OBJECT_STORE), expect);
    let five: BTreeMap<Vec<u8>, Vec<u8>> = (1..50).map(|i| (key(i), b"five".to_vec())).collect();
    assert_eq!(contents(&fresh, 5), five);
    assert_eq!(fresh.read(6, b"x").unwrap_err(), Error::UnknownStructure(6));
    let s = far.stats();
    assert_eq!((s.live, s.rebuilding, s.dead, s.replaced), (3, 0, 0, 1));
    assert_eq!(s.rebuilt_objects, (expect.len() + five.len()) as u64);
    let bytes: usize = expect.values().chain(five.values()).map(Vec::len).sum();
    assert_eq!(s.rebuilt_bytes, bytes as u64);
    assert_eq!(s.unrecoverable_objects, 0);
    assert!(far.dead_servers().is_empty());
    // The replacement now serves reads: another server may die.
    let other = (0..3).find(|&i| i != victim).unwrap();
    r.faults[other].set_down(true);
    for (k, v) in &model {
        assert_eq!(far.read(OBJECT_STORE, k).unwrap().as_ref(), Some(v));
    }
    for i in 1..50 {
        assert_eq!(far.read(5, &key(i)).unwrap().as_deref(), Some(&b"five"[..]));
    }
    assert_eq!(far.keys(OBJECT_STORE).unwrap().len(), model.len());
}

#[test]
fn only_a_dead_server_can_be_replaced() {
    let r = rig(3, 2);
    let far = r.far.clone();
    let e = far
        .replace_server(1, Box::new(EmbeddedBackend::new()))
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(ref why) if why.contains("live")),
        "{e}"
    );
    let e = far
        .replace_server(3, Box::new(EmbeddedBackend::new()))
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(far.wait_rebuilt(3, Duration::ZERO).is_err());
    // A dead server that was never replaced: waiting reports why it died.
    r.faults[1].set_down(true);
    let _ = far.keys(OBJECT_STORE).unwrap();
    assert!(far
        .wait_rebuilt(1, Duration::ZERO)
        .unwrap_err()
        .is_disconnected());
    // While a replacement is being rebuilt, it cannot be replaced again.
    let epoch = far.install(1, Box::new(EmbeddedBackend::new())).unwrap();
    assert!(far.is_rebuilding(1) && far.is_live(1));
    assert_eq!(far.stats().rebuilding, 1);
    assert_eq!(
        far.wait_rebuilt(1, Duration::ZERO).unwrap_err(),
        Error::Timeout
    );
    let e = far
        .replace_server(1, Box::new(EmbeddedBackend::new()))
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(ref why) if why.contains("rebuilt")),
        "{e}"
    );
    far.rebuild_and_finish(1, epoch);
    far.wait_rebuilt(1, Duration::ZERO).unwrap();
    // A replacement that cannot take the live structures is refused, and nothing changes.
    far.construct(9, crate::backend::OBJECT_STORE_DEVICE, &[])
        .unwrap();
    r.faults[2].set_down(true);
    let _ = far.keys(OBJECT_STORE).unwrap();
    let down = Faulty::new(EmbeddedBackend::new());
    down.set_down(true);
    assert!(far
        .replace_server(2, Box::new(down))
        .unwrap_err()
        .is_disconnected());
    assert!(!far.is_live(2));
}

#[test]
fn a_rebuilding_replacement_takes_writes_but_not_reads() {
    let r = rig(3, 2);
    let far = r.far.clone();
    for i in 0..300 {
        far.write(OBJECT_STORE, &key(i), b"old").unwrap();
    }
    kill(&r.faults, &far, 0);
    let fresh = Arc::new(EmbeddedBackend::new());
    let epoch = far.install(0, Box::new(fresh.clone())).unwrap();
    let on_0: Vec<Vec<u8>> = (0..300)
        .map(key)
        .filter(|k| far.placement(OBJECT_STORE, k).contains(&0))
        .collect();
    // Reads skip it (it holds nothing yet) and count as degraded.
    let degraded = far.stats().degraded_reads;
    for k in &on_0 {
        assert_eq!(
            far.read(OBJECT_STORE, k).unwrap().as_deref(),
            Some(&b"old"[..])
        );
    }
    assert_eq!(far.stats().degraded_reads, degraded + on_0.len() as u64);
    // The listing is taken, then the objects change before the batch copies them.
    let listed = far.keys_placed_on(OBJECT_STORE, 0).unwrap();
    assert_eq!(listed, {
        let mut l = on_0.clone();
        l.sort();
        l
    });
    let (newer, removed) = (&on_0[0], &on_0[1]);
    far.write(OBJECT_STORE, newer, b"new").unwrap();
    assert!(far.remove(OBJECT_STORE, removed).unwrap());
    let k = (1000..)
        .map(key)
        .find(|k| far.placement(OBJECT_STORE, k).contains(&0))
        .unwrap();
    far.write(OBJECT_STORE, &k, b"later").unwrap();
    // Writes reached the replacement at once.
    assert_eq!(
        fresh.read(OBJECT_STORE, newer).unwrap().as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(
        fresh.read(OBJECT_STORE, &k).unwrap().as_deref(),
        Some(&b"later"[..])
    );
    // A stale copy on the replacement (as if an old batch had run) is fixed by the batch.
    fresh.write(OBJECT_STORE, removed, b"stale").unwrap();
    for batch in listed.chunks(BATCH) {
        far.copy_batch(OBJECT_STORE, 0, epoch, batch).unwrap();
    }
    assert_eq!(
        fresh.read(OBJECT_STORE, newer).unwrap().as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(fresh.read(OBJECT_STORE, removed).unwrap(), None);
    assert_eq!(
        fresh.read(OBJECT_STORE, &k).unwrap().as_deref(),
        Some(&b"later"[..])
    );
    far.rebuild_and_finish(0, epoch);
    assert!(far.is_live(0) && !far.is_rebuilding(0));
    let mut expect: Vec<Vec<u8>> = on_0.iter().filter(|x| *x != removed).cloned().collect();
    expect.push(k);
    expect.sort();
    assert_eq!(fresh.keys(OBJECT_STORE).unwrap(), expect);
}

#[test]
fn a_replacement_that_fails_during_its_rebuild_is_condemned() {
    let r = rig(3, 2);
    let far = r.far.clone();
    for i in 0..300 {
        far.write(OBJECT_STORE, &key(i), b"v").unwrap();
    }
    kill(&r.faults, &far, 2);
    let replacement = Arc::new(Faulty::new(EmbeddedBackend::new()));
    let epoch = far.install(2, Box::new(replacement.clone())).unwrap();
    replacement.set_down(true);
    far.rebuild_and_finish(2, epoch);
    assert!(!far.is_live(2));
    assert!(far
        .wait_rebuilt(2, Duration::ZERO)
        .unwrap_err()
        .is_disconnected());
    assert_eq!(far.stats().dead, 1);
    // Reads still work from the survivors, and another replacement can be tried.
    for i in 0..300 {
        assert_eq!(
            far.read(OBJECT_STORE, &key(i)).unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
    far.replace_server(2, Box::new(EmbeddedBackend::new()))
        .unwrap();
    far.wait_rebuilt(2, Duration::from_secs(30)).unwrap();
    assert_eq!(far.stats().replaced, 2);
    // A replacement whose epoch is stale is not condemned by late reports about the old one.
    let old = Member {
        index: 2,
        server: Arc::new(EmbeddedBackend::new()),
        epoch,
        state: State::Live,
    };
    far.condemn(&old, Error::Timeout);
    assert!(far.is_live(2));
}

#[test]
fn concurrent_writers_during_a_rebuild_lose_nothing_and_never_read_stale_values() {
    const KEYS: u32 = 3000;
    const WRITERS: u32 = 3;
    let r = rig(3, 2);
    let far = r.far.clone();
    for i in 0..KEYS {
        far.write(OBJECT_STORE, &key(i), &0u64.to_le_bytes())
            .unwrap();
    }
    kill(&r.faults, &far, 1);
    let stop = std::sync::atomic::AtomicBool::new(false);
    // A slow replacement, so that the rebuild takes many batches' worth of time.
    let fresh = Arc::new(EmbeddedBackend::new().with_latency(Duration::from_micros(50)));
    let models: Vec<BTreeMap<Vec<u8>, Option<u64>>> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (far, stop) = (&far, &stop);
                s.spawn(move || {
                    // Writer w owns the keys i with i % WRITERS == w.
                    let mut model: BTreeMap<Vec<u8>, Option<u64>> = BTreeMap::new();
                    let mut x = 0x9e37_79b9_u64 + u64::from(w);
                    let mut version = 0u64;
                    while !stop.load(Ordering::Acquire) || version < 200 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let i = (x % u64::from(KEYS / WRITERS)) as u32 * WRITERS + w;
                        let k = key(i);
                        version += 1;
                        if x % 5 == 0 {
                            far.remove(OBJECT_STORE, &k).unwrap();
                            model.insert(k.clone(), None);
                        } else {
                            far.write(OBJECT_STORE, &k, &version.to_le_bytes()).unwrap();
                            model.insert(k.clone(), Some(version));
                        }
                        let want = model[&k].map(|v| v.to_le_bytes().to_vec());
                        assert_eq!(far.read(OBJECT_STORE, &k).unwrap(), want, "key {i}");
                    }
                    model
                })
            })
            .collect();
        far.replace_server(1, Box::new(fresh.clone())).unwrap();
        far.wait_rebuilt(1, Duration::from_secs(60)).unwrap();
        stop.store(true, Ordering::Release);
        writers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Every object placed on the replacement holds exactly its latest state there.
    for i in 0..KEYS {
        let k = key(i);
        let latest = models
            .iter()
            .find_map(|m| m.get(&k).copied())
            .unwrap_or(Some(0));
        let want = latest.map(|v| v.to_le_bytes().to_vec());
        if far.placement(OBJECT_STORE, &k).contains(&1) {
            assert_eq!(
                fresh.read(OBJECT_STORE, &k).unwrap(),
                want,
                "key {i} on the replacement"
            );
        } else {
            assert_eq!(fresh.read(OBJECT_STORE, &k).unwrap(), None, "key {i} stray");
        }
        assert_eq!(far.read(OBJECT_STORE, &k).unwrap(), want, "key {i}");
    }
    assert_eq!(far.stats().unrecoverable_objects, 0);
}

/// A hash-map-like `TAKE` (opcode 1: remove a key, return its value).
struct Take;

impl OpOne for Take {
    const NAME: &'static str = "test.taking";
    fn op(store: &crate::engine::ObjectStore, key: &[u8]) -> Result<Vec<u8>> {
        let v = store.read(key)?;
        store.remove(key)?;
        Ok(v.unwrap_or_default())
    }
}

#[test]
fn a_take_during_the_rebuild_is_not_undone_by_it() {
    StoreWith::<Take>::register();
    let r = rig(3, 2);
    let far = r.far.clone();
    far.construct(4, Take::NAME, &[]).unwrap();
    for i in 0..300 {
        far.write(4, &key(i), &key(i + 7)).unwrap();
    }
    // The first-ranked member dies: its replacement ranks first too.
    let victim = far.placement(4, b"")[0];
    kill(&r.faults, &far, victim);
    let fresh = Arc::new(EmbeddedBackend::new());
    let epoch = far.install(victim, Box::new(fresh.clone())).unwrap();
    let listed = far.keys_placed_on(4, victim).unwrap();
    assert_eq!(listed.len(), 300);
    // Copy a first batch, then TAKE objects both copied and not yet copied.
    let (done, rest) = listed.split_at(BATCH);
    far.copy_batch(4, victim, epoch, done).unwrap();
    let taken = [
        done[0].clone(),
        done[5].clone(),
        rest[0].clone(),
        rest[9].clone(),
    ];
    for k in &taken {
        let i = u32::from_le_bytes(k[..].try_into().unwrap());
        // The answer comes from the live member, not from the first-ranked replacement.
        assert_eq!(far.compute(4, 1, k).unwrap(), key(i + 7));
    }
    for batch in rest.chunks(BATCH) {
        far.copy_batch(4, victim, epoch, batch).unwrap();
    }
    far.rebuild_and_finish(victim, epoch);
    let held = fresh.keys(4).unwrap();
    assert_eq!(held.len(), 300 - taken.len());
    assert!(taken.iter().all(|k| !held.contains(k)));
    // The replacement alone now answers for the structure, consistently.
    let other = far.placement(4, b"")[1];
    r.faults[other].set_down(true);
    for k in &taken {
        assert_eq!(far.read(4, k).unwrap(), None);
        assert_eq!(far.compute(4, 1, k).unwrap(), Vec::<u8>::new());
    }
    assert_eq!(far.keys(4).unwrap(), held);
}
