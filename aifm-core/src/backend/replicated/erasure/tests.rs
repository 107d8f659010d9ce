//! Tests of the erasure-coded object store: round trips, dead holders, racing writes,
//! rebuilds, and the runtime over it.

use super::super::fragment::HEADER;
use super::super::tests::Rig;
use super::*;
use crate::backend::EmbeddedBackend;
use std::sync::Arc;
use std::time::Duration;

fn rig(n: usize, k: usize, m: usize) -> Rig {
    Rig::new(n, |far| far.with_erasure(k, m).unwrap())
}

fn key(i: u32) -> Vec<u8> {
    i.to_le_bytes().to_vec()
}

fn value(i: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (j as u32).wrapping_mul(7).wrapping_add(i * 13) as u8)
        .collect()
}

const SIZES: [usize; 10] = [0, 1, 2, 3, 17, 1000, 4095, 4096, 4097, 100_000];

/// Takes server `i` down and lets a request notice it.
fn kill(r: &Rig, i: usize) {
    r.faults[i].set_down(true);
    r.far.keys(OBJECT_STORE).unwrap(); // asks every live server
    assert!(!r.far.is_live(i));
}

#[test]
fn objects_of_every_size_round_trip_as_fragments_on_their_holders() {
    let r = rig(4, 2, 1);
    let code = Code::new(2, 1).unwrap();
    for (i, &len) in SIZES.iter().enumerate() {
        r.far
            .write(OBJECT_STORE, &key(i as u32), &value(i as u32, len))
            .unwrap();
    }
    let items: Vec<(Vec<u8>, Vec<u8>)> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &len)| (key(100 + i as u32), value(100 + i as u32, len)))
        .collect();
    let refs: Vec<(&[u8], &[u8])> = items.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    r.far.write_many(OBJECT_STORE, &refs).unwrap();
    let mut all: Vec<(Vec<u8>, Vec<u8>)> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &len)| (key(i as u32), value(i as u32, len)))
        .collect();
    all.extend(items);
    for (k, v) in &all {
        assert_eq!(r.far.read(OBJECT_STORE, k).unwrap().as_ref(), Some(v));
        let set = r.far.placement(OBJECT_STORE, k);
        assert_eq!(set.len(), 3);
        for (s, store) in r.stores.iter().enumerate() {
            let held = store.read(OBJECT_STORE, k).unwrap();
            match set.iter().position(|&x| x == s) {
                Some(i) => {
                    let held = held.expect("a holder has its fragment");
                    let f = code.parse(&held).expect("a fragment");
                    assert_eq!((f.index, f.len), (i, v.len() as u64));
                    assert!(held.len() <= HEADER + v.len().div_ceil(2) + 2);
                }
                None => assert_eq!(held, None, "stray fragment on server {s}"),
            }
        }
    }
    let keys: Vec<&[u8]> = all
        .iter()
        .map(|(k, _)| &k[..])
        .chain([&b"none"[..]])
        .collect();
    let got = r.far.read_many(OBJECT_STORE, &keys).unwrap();
    for ((_, v), g) in all.iter().zip(&got) {
        assert_eq!(g.as_ref(), Some(v));
    }
    assert_eq!(got.last().unwrap(), &None);
    assert_eq!(r.far.read(OBJECT_STORE, b"none").unwrap(), None);
    assert_eq!(r.far.stats().degraded_reads, 0);
    // Overwrites replace every fragment; removes remove every fragment.
    r.far.write(OBJECT_STORE, &key(7), b"short").unwrap();
    assert_eq!(
        r.far.read(OBJECT_STORE, &key(7)).unwrap().as_deref(),
        Some(&b"short"[..])
    );
    for (k, _) in &all {
        assert!(r.far.remove(OBJECT_STORE, k).unwrap());
        assert_eq!(r.far.read(OBJECT_STORE, k).unwrap(), None);
    }
    assert!(!r.far.remove(OBJECT_STORE, &key(0)).unwrap());
    assert!(r
        .stores
        .iter()
        .all(|s| s.keys(OBJECT_STORE).unwrap().is_empty()));
}

#[test]
fn any_m_dead_servers_lose_nothing() {
    for (n, k, m) in [(3, 2, 1), (5, 3, 2), (4, 1, 2)] {
        for dead in (0u32..1 << n).filter(|d| d.count_ones() as usize == m) {
            let r = rig(n, k, m);
            let objects: Vec<(Vec<u8>, Vec<u8>)> = (0..60)
                .map(|i| (key(i), value(i, SIZES[i as usize % 10])))
                .collect();
            for (key, v) in &objects {
                r.far.write(OBJECT_STORE, key, v).unwrap();
            }
            for s in (0..n).filter(|s| dead & (1 << s) != 0) {
                r.faults[s].set_down(true);
            }
            for (key, v) in &objects {
                assert_eq!(r.far.read(OBJECT_STORE, key).unwrap().as_ref(), Some(v));
            }
            let s = r.far.stats();
            assert_eq!(s.dead, m, "{n} servers, {k}+{m}, dead {dead:b}");
            assert!(s.degraded_reads > 0);
            let keys: Vec<&[u8]> = objects.iter().map(|(k, _)| &k[..]).collect();
            let got = r.far.read_many(OBJECT_STORE, &keys).unwrap();
            assert!(objects
                .iter()
                .zip(&got)
                .all(|((_, v), g)| g.as_ref() == Some(v)));
            // Writes go on with the survivors, and read back.
            r.far.write(OBJECT_STORE, &key(0), b"after").unwrap();
            assert_eq!(
                r.far.read(OBJECT_STORE, &key(0)).unwrap().as_deref(),
                Some(&b"after"[..])
            );
        }
    }
}

#[test]
fn m_plus_one_dead_holders_is_disconnected() {
    let r = rig(3, 2, 1);
    r.far.write(OBJECT_STORE, b"k", b"value").unwrap();
    kill(&r, 0);
    kill(&r, 2);
    let e = r.far.read(OBJECT_STORE, b"k").unwrap_err();
    assert!(e.is_disconnected(), "{e}");
    let e = r.far.read_many(OBJECT_STORE, &[&b"k"[..]]).unwrap_err();
    assert!(e.is_disconnected(), "{e}");
    let e = r.far.write(OBJECT_STORE, b"k", b"w").unwrap_err();
    assert!(e.is_disconnected(), "{e}");
    let e = r
        .far
        .write_many(OBJECT_STORE, &[(&b"k"[..], &b"w"[..])])
        .unwrap_err();
    assert!(e.is_disconnected(), "{e}");
    // Even an object that was never written cannot be told absent.
    assert!(r
        .far
        .read(OBJECT_STORE, b"never")
        .unwrap_err()
        .is_disconnected());
}

#[test]
fn fragments_of_different_writes_are_never_decoded_together() {
    let r = rig(3, 2, 1);
    let k = b"obj";
    let set = r.far.placement(OBJECT_STORE, k);
    r.far.write(OBJECT_STORE, k, &value(1, 4096)).unwrap();
    let old0 = r.stores[set[0]].read(OBJECT_STORE, k).unwrap().unwrap();
    let new = value(2, 4096);
    r.far.write(OBJECT_STORE, k, &new).unwrap();
    // A stale data fragment (as if a write had not reached it): the read asks the parity
    // holder too and decodes the two fragments of the new write.
    r.stores[set[0]].write(OBJECT_STORE, k, &old0).unwrap();
    assert_eq!(r.far.read(OBJECT_STORE, k).unwrap(), Some(new.clone()));
    assert_eq!(
        r.far.read_many(OBJECT_STORE, &[&k[..]]).unwrap(),
        [Some(new.clone())]
    );
    // With the parity holder gone, one old and one new fragment remain: no value is
    // made of them, the read fails instead.
    r.faults[set[2]].set_down(true);
    let e = r.far.read(OBJECT_STORE, k).unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e}");
    // A foreign value where a fragment should be is not a fragment either.
    r.stores[set[0]]
        .write(OBJECT_STORE, k, b"not a fragment")
        .unwrap();
    assert!(r.far.read(OBJECT_STORE, k).is_err());
}

#[test]
fn a_read_racing_with_writes_gets_one_whole_write() {
    let r = rig(3, 2, 1);
    // Version n: every byte n % 251, and a length that the byte gives away.
    let version = |n: u32| {
        let b = (n % 251) as u8;
        vec![b; 100 + usize::from(b % 7) * 1000]
    };
    r.far.write(OBJECT_STORE, b"hot", &version(0)).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (reads, torn) = std::thread::scope(|s| {
        s.spawn(|| {
            for n in 1..3000 {
                r.far.write(OBJECT_STORE, b"hot", &version(n)).unwrap();
            }
            done.store(true, Ordering::Release);
        });
        let (mut reads, mut torn) = (0, 0);
        while !done.load(Ordering::Acquire) {
            match r.far.read(OBJECT_STORE, b"hot") {
                Ok(Some(v)) => {
                    // Some version, whole: never bytes of two writes.
                    assert!(v.iter().all(|&b| b == v[0]), "mixed bytes");
                    assert_eq!(v.len(), 100 + usize::from(v[0] % 7) * 1000);
                    reads += 1;
                }
                // Only "kept disagreeing" may fail a read here, never a wrong value.
                Err(Error::Protocol(_)) => torn += 1,
                other => panic!("{other:?}"),
            }
        }
        (reads, torn)
    });
    assert!(reads + torn > 0);
    assert_eq!(
        r.far.read(OBJECT_STORE, b"hot").unwrap(),
        Some(version(2999))
    );
}

#[test]
fn a_replacement_gets_the_fragments_of_its_position() {
    let r = rig(3, 2, 1);
    let code = Code::new(2, 1).unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for i in 0..400 {
        let v = value(i, SIZES[i as usize % 10]);
        r.far.write(OBJECT_STORE, &key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    // Another structure stays replicated, whole.
    r.far
        .construct(5, crate::backend::OBJECT_STORE_DEVICE, &[])
        .unwrap();
    for i in 0..20 {
        r.far.write(5, &key(i), b"five").unwrap();
    }
    kill(&r, 1);
    for i in (0..400).step_by(5) {
        let v = value(i + 1000, 333);
        r.far.write(OBJECT_STORE, &key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    for i in (1..400).step_by(7) {
        assert!(r.far.remove(OBJECT_STORE, &key(i)).unwrap());
        model.remove(&key(i));
    }
    let fresh = Arc::new(EmbeddedBackend::new());
    r.far.replace_server(1, Box::new(fresh.clone())).unwrap();
    r.far.wait_rebuilt(1, Duration::from_secs(30)).unwrap();
    let s = r.far.stats();
    assert_eq!((s.live, s.dead, s.unrecoverable_objects), (3, 0, 0));
    for k in model.keys() {
        let set = r.far.placement(OBJECT_STORE, k);
        let Some(at) = set.iter().position(|&s| s == 1) else {
            assert_eq!(fresh.read(OBJECT_STORE, k).unwrap(), None);
            continue;
        };
        let mine = fresh.read(OBJECT_STORE, k).unwrap().expect("rebuilt");
        let mine = code.parse(&mine).unwrap();
        let other = r.stores[set[(at + 1) % 3]]
            .read(OBJECT_STORE, k)
            .unwrap()
            .unwrap();
        let other = code.parse(&other).unwrap();
        assert_eq!(
            (mine.index, mine.write, mine.len),
            (at, other.write, other.len)
        );
    }
    assert_eq!(
        fresh.keys(5).unwrap().len(),
        if r.far.placement(5, b"").contains(&1) {
            20
        } else {
            0
        }
    );
    // The replacement serves: another server may die, and every object is still whole.
    kill(&r, 0);
    for i in 0..400 {
        assert_eq!(
            r.far.read(OBJECT_STORE, &key(i)).unwrap(),
            model.get(&key(i)).cloned()
        );
    }
}

#[test]
fn writers_during_a_rebuild_leave_matching_fragments() {
    const KEYS: u32 = 1500;
    const WRITERS: u32 = 2;
    let r = rig(3, 2, 1);
    let code = Code::new(2, 1).unwrap();
    for i in 0..KEYS {
        r.far.write(OBJECT_STORE, &key(i), &value(i, 64)).unwrap();
    }
    kill(&r, 2);
    let stop = std::sync::atomic::AtomicBool::new(false);
    // A slow replacement, so that the rebuild takes many batches' worth of time.
    let fresh = Arc::new(EmbeddedBackend::new().with_latency(Duration::from_micros(50)));
    let models: Vec<BTreeMap<Vec<u8>, Option<Vec<u8>>>> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (far, stop) = (&r.far, &stop);
                s.spawn(move || {
                    // Writer w owns the keys i with i % WRITERS == w.
                    let mut model = BTreeMap::new();
                    let mut x = 0x9e37_79b9_u64 + u64::from(w);
                    let mut n = 0u32;
                    while !stop.load(Ordering::Acquire) || n < 200 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let i = (x % u64::from(KEYS / WRITERS)) as u32 * WRITERS + w;
                        n += 1;
                        let want = if x % 5 == 0 {
                            far.remove(OBJECT_STORE, &key(i)).unwrap();
                            None
                        } else {
                            let v = value(i ^ n, (x % 300) as usize);
                            far.write(OBJECT_STORE, &key(i), &v).unwrap();
                            Some(v)
                        };
                        assert_eq!(far.read(OBJECT_STORE, &key(i)).unwrap(), want);
                        model.insert(key(i), want);
                    }
                    model
                })
            })
            .collect();
        r.far.replace_server(2, Box::new(fresh.clone())).unwrap();
        r.far.wait_rebuilt(2, Duration::from_secs(60)).unwrap();
        stop.store(true, Ordering::Release);
        writers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for i in 0..KEYS {
        let k = key(i);
        let want = models
            .iter()
            .find_map(|m| m.get(&k).cloned())
            .unwrap_or_else(|| Some(value(i, 64)));
        assert_eq!(r.far.read(OBJECT_STORE, &k).unwrap(), want, "key {i}");
        let set = r.far.placement(OBJECT_STORE, &k);
        let at = set.iter().position(|&s| s == 2).unwrap();
        let mine = fresh.read(OBJECT_STORE, &k).unwrap();
        let other = r.stores[set[(at + 1) % 3]].read(OBJECT_STORE, &k).unwrap();
        match (&mine, &other) {
            (Some(mine), Some(other)) => {
                let (mine, other) = (code.parse(mine).unwrap(), code.parse(other).unwrap());
                assert_eq!((mine.index, mine.write), (at, other.write), "key {i}");
            }
            (None, None) => assert_eq!(want, None, "key {i}"),
            _ => panic!("key {i}: the replacement and a survivor disagree"),
        }
    }
    assert_eq!(r.far.stats().unrecoverable_objects, 0);
}

#[test]
fn other_structures_keep_whole_replicas() {
    let r = rig(3, 2, 1);
    r.far
        .construct_placed(
            4,
            crate::backend::OBJECT_STORE_DEVICE,
            &[],
            crate::backend::Placement::Striped,
        )
        .unwrap();
    for i in 0..50 {
        r.far.write(4, &key(i), &value(i, 100)).unwrap();
        let set = r.far.placement(4, &key(i));
        assert_eq!(set.len(), 2);
        for &s in &set {
            assert_eq!(r.stores[s].read(4, &key(i)).unwrap(), Some(value(i, 100)));
        }
    }
    assert!(matches!(
        r.far.compute_sharded(OBJECT_STORE, 1, &[&b"k"[..]], b""),
        Err(Error::Unsupported(_))
    ));
    assert!(r.far.name().contains("erasure 2+1"));
}

#[test]
fn a_runtime_over_erasure_coding_survives_a_death() {
    let r = rig(3, 2, 1);
    let _rt = r.runtime_survives_a_death(2);
    assert_eq!(r.far.stats().dead, 1);
    assert!(r.far.stats().degraded_reads > 0);
}
