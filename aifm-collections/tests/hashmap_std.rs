//! The behaviours std's `HashMap` tests and hashbrown's map tests check, written against
//! `RemHashMap` as a migrating user would write them. Each runs twice: in the default runtime,
//! and in a 1 MiB runtime with forced evacuation at every checkpoint (so most pairs are far).
//!
//! Adaptations, all of the kind a user makes: `m[&k]` is `*m.get(&k).unwrap()` (no `Index`,
//! see the module docs); methods take `&self`; iterators yield clones; there is no
//! `capacity()`/`reserve` (the index grows by itself); drop-count tests are left out (values
//! travel through far memory by their codec, so they are dropped and decoded, not moved).

use aifm_collections::hashmap::Entry;
use aifm_collections::RemHashMap;
use aifm_core::Runtime;
use std::collections::HashMap;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Where a test runs.
struct Env {
    rt: Runtime,
    forced: bool,
}

impl Env {
    fn map<K, V>(&self) -> RemHashMap<K, V>
    where
        K: aifm_core::FarData + std::hash::Hash + Eq + Clone,
        V: aifm_core::FarData,
    {
        RemHashMap::new_in(&self.rt)
    }

    /// A checkpoint: under the small budget, push everything that can go to far memory.
    fn evac(&self) {
        if self.forced {
            self.rt.evacuate_now();
        }
    }
}

/// Runs `test` in the default runtime, then in a 1 MiB runtime with forced evacuation.
fn both(test: fn(&Env)) {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    test(&Env {
        rt: Runtime::global().clone(),
        forced: false,
    });
    test(&Env {
        rt: Runtime::builder().local_memory(1 << 20).build().unwrap(),
        forced: true,
    });
}

macro_rules! std_tests {
    ($($name:ident),* $(,)?) => { $(
        #[test]
        fn $name() {
            both(bodies::$name);
        }
    )* };
}

std_tests!(
    zero_capacity,
    create_capacity_zero,
    insert,
    clone,
    empty_remove,
    empty_entry,
    empty_iter,
    lots_of_insertions,
    find_mut,
    insert_overwrite,
    insert_conflicts,
    conflict_remove,
    is_empty,
    remove,
    remove_entry,
    iterate,
    keys,
    values,
    find,
    get_key_value,
    eq,
    show,
    from_iter,
    from_array,
    size_hint,
    iter_len,
    index,
    entry,
    entry_take_doesnt_corrupt,
    occupied_entry_key,
    vacant_entry_key,
    entry_or_insert_with_key,
    extend_ref,
    retain,
    drain,
    clear,
    borrowed_keys,
    big_values,
);

mod bodies {
    use super::*;

    pub fn zero_capacity(e: &Env) {
        let m = RemHashMap::<u64, u64>::with_capacity_in(0, &e.rt);
        assert!(m.is_empty());
        m.insert(1, 1);
        e.evac();
        assert_eq!(m.len(), 1);
    }

    pub fn create_capacity_zero(e: &Env) {
        let m = RemHashMap::with_capacity_in(0, &e.rt);
        assert!(m.insert(1u64, 1u64).is_none());
        e.evac();
        assert!(m.contains_key(&1));
        assert!(!m.contains_key(&0));
    }

    pub fn insert(e: &Env) {
        let m = e.map();
        assert_eq!(m.len(), 0);
        assert!(m.insert(1u64, 2u64).is_none());
        assert_eq!(m.len(), 1);
        assert!(m.insert(2, 4).is_none());
        assert_eq!(m.len(), 2);
        e.evac();
        assert_eq!(*m.get(&1).unwrap(), 2);
        assert_eq!(*m.get(&2).unwrap(), 4);
    }

    pub fn clone(e: &Env) {
        let m = e.map();
        m.insert(1u64, 2u64);
        m.insert(2, 4);
        e.evac();
        let m2 = m.clone();
        assert_eq!(*m2.get(&1).unwrap(), 2);
        assert_eq!(*m2.get(&2).unwrap(), 4);
        assert_eq!(m2.len(), 2);
        assert!(m == m2);
    }

    pub fn empty_remove(e: &Env) {
        let m: RemHashMap<i32, bool> = e.map();
        assert_eq!(m.remove(&0), None);
    }

    pub fn empty_entry(e: &Env) {
        let m: RemHashMap<i32, bool> = e.map();
        match m.entry(0) {
            Entry::Occupied(_) => panic!(),
            Entry::Vacant(_) => {}
        }
        assert!(*m.entry(0).or_insert(true));
        assert_eq!(m.len(), 1);
    }

    pub fn empty_iter(e: &Env) {
        let m: RemHashMap<i32, bool> = e.map();
        assert_eq!(m.drain().next(), None);
        assert_eq!(m.keys().next(), None);
        assert_eq!(m.values().next(), None);
        assert_eq!(m.iter().next(), None);
        assert_eq!(m.iter().len(), 0);
        assert_eq!(m.into_iter().next(), None);
    }

    pub fn lots_of_insertions(e: &Env) {
        let m = e.map();
        // Try this a few times to make sure we never screw up the table's internal state.
        for round in 0..4 {
            assert!(m.is_empty());
            for i in 1..1001u64 {
                assert!(m.insert(i, [i; 8]).is_none());
                for j in (1..=i).step_by(97) {
                    assert_eq!(m.get(&j).unwrap()[0], j, "round {round}");
                }
                for j in (i + 1..1001).step_by(97) {
                    assert!(m.get(&j).is_none());
                }
            }
            e.evac();
            for i in 1001..2001u64 {
                assert!(!m.contains_key(&i));
            }
            // remove forwards
            for i in 1..1001u64 {
                assert!(m.remove(&i).is_some());
                for j in (1..=i).step_by(97) {
                    assert!(!m.contains_key(&j));
                }
                for j in (i + 1..1001).step_by(97) {
                    assert!(m.contains_key(&j));
                }
            }
            for i in 1..1001u64 {
                assert!(!m.contains_key(&i));
            }
            for i in 1..1001u64 {
                assert!(m.insert(i, [i; 8]).is_none());
            }
            e.evac();
            // remove backwards
            for i in (1..1001u64).rev() {
                assert!(m.remove(&i).is_some());
                for j in (i..1001).step_by(97) {
                    assert!(!m.contains_key(&j));
                }
                for j in (1..i).step_by(97) {
                    assert!(m.contains_key(&j));
                }
            }
        }
    }

    pub fn find_mut(e: &Env) {
        let m = e.map();
        assert!(m.insert(1u64, 12u64).is_none());
        assert!(m.insert(2, 8).is_none());
        assert!(m.insert(5, 14).is_none());
        e.evac();
        let new = 100;
        match m.get_mut(&5) {
            None => panic!(),
            Some(mut x) => *x = new,
        }
        e.evac();
        assert_eq!(*m.get(&5).unwrap(), new);
    }

    pub fn insert_overwrite(e: &Env) {
        let m = e.map();
        assert!(m.insert(1u64, 2u64).is_none());
        assert_eq!(*m.get(&1).unwrap(), 2);
        e.evac();
        assert!(m.insert(1, 3).is_some());
        assert_eq!(*m.get(&1).unwrap(), 3);
    }

    pub fn insert_conflicts(e: &Env) {
        let m = e.map();
        assert!(m.insert(1u64, 2u64).is_none());
        assert!(m.insert(5, 3).is_none());
        assert!(m.insert(9, 4).is_none());
        e.evac();
        assert_eq!(*m.get(&9).unwrap(), 4);
        assert_eq!(*m.get(&5).unwrap(), 3);
        assert_eq!(*m.get(&1).unwrap(), 2);
    }

    pub fn conflict_remove(e: &Env) {
        let m = e.map();
        assert!(m.insert(1u64, 2u64).is_none());
        assert_eq!(*m.get(&1).unwrap(), 2);
        assert!(m.insert(5, 3).is_none());
        e.evac();
        assert_eq!(*m.get(&1).unwrap(), 2);
        assert_eq!(*m.get(&5).unwrap(), 3);
        assert!(m.insert(9, 4).is_none());
        assert_eq!(*m.get(&1).unwrap(), 2);
        assert_eq!(*m.get(&5).unwrap(), 3);
        assert_eq!(*m.get(&9).unwrap(), 4);
        assert!(m.remove(&1).is_some());
        assert_eq!(*m.get(&9).unwrap(), 4);
        assert_eq!(*m.get(&5).unwrap(), 3);
    }

    pub fn is_empty(e: &Env) {
        let m = e.map();
        assert!(m.insert(1u64, 2u64).is_none());
        e.evac();
        assert!(!m.is_empty());
        assert!(m.remove(&1).is_some());
        assert!(m.is_empty());
    }

    pub fn remove(e: &Env) {
        let m = e.map();
        m.insert(1u64, 2u64);
        e.evac();
        assert_eq!(m.remove(&1), Some(2));
        assert_eq!(m.remove(&1), None);
    }

    pub fn remove_entry(e: &Env) {
        let m = e.map();
        m.insert(1u64, 2u64);
        e.evac();
        assert_eq!(m.remove_entry(&1), Some((1, 2)));
        assert_eq!(m.remove(&1), None);
    }

    pub fn iterate(e: &Env) {
        let m = RemHashMap::with_capacity_in(4, &e.rt);
        for i in 0..32u64 {
            assert!(m.insert(i, i * 2).is_none());
        }
        e.evac();
        assert_eq!(m.len(), 32);
        let mut observed: u32 = 0;
        for (k, v) in &m {
            assert_eq!(v, k * 2);
            observed |= 1 << k;
        }
        assert_eq!(observed, 0xFFFF_FFFF);
    }

    pub fn keys(e: &Env) {
        let pairs = [(1u64, 'a'), (2, 'b'), (3, 'c')];
        let map = RemHashMap::from_iter_in(pairs, &e.rt);
        e.evac();
        let keys: Vec<_> = map.keys().collect();
        assert_eq!(keys.len(), 3);
        assert!(keys.contains(&1));
        assert!(keys.contains(&2));
        assert!(keys.contains(&3));
    }

    pub fn values(e: &Env) {
        let pairs = [(1u64, 'a'), (2, 'b'), (3, 'c')];
        let map = RemHashMap::from_iter_in(pairs, &e.rt);
        e.evac();
        let values: Vec<_> = map.values().collect();
        assert_eq!(values.len(), 3);
        assert!(values.contains(&'a'));
        assert!(values.contains(&'b'));
        assert!(values.contains(&'c'));
    }

    pub fn find(e: &Env) {
        let m = e.map();
        assert!(m.get(&1u64).is_none());
        m.insert(1, 2u64);
        e.evac();
        match m.get(&1) {
            None => panic!(),
            Some(v) => assert_eq!(*v, 2),
        };
    }

    pub fn get_key_value(e: &Env) {
        let m = e.map();
        m.insert("alpha".to_string(), 1u64);
        e.evac();
        let kv = m.get_key_value("alpha").unwrap();
        assert_eq!((kv.key().as_str(), *kv), ("alpha", 1));
        drop(kv);
        assert!(m.get_key_value("beta").is_none());
    }

    pub fn eq(e: &Env) {
        let m1 = e.map();
        m1.insert(1u64, 2u64);
        m1.insert(2, 3);
        m1.insert(3, 4);
        let m2 = e.map();
        m2.insert(1u64, 2u64);
        m2.insert(2, 3);
        e.evac();
        assert!(m1 != m2);
        m2.insert(3, 4);
        assert!(m1 == m2);
    }

    pub fn show(e: &Env) {
        let map = e.map();
        let empty: RemHashMap<i32, i32> = e.map();
        map.insert(1i32, 2i32);
        map.insert(3, 4);
        e.evac();
        let map_str = format!("{map:?}");
        assert!(map_str == "{1: 2, 3: 4}" || map_str == "{3: 4, 1: 2}");
        assert_eq!(format!("{empty:?}"), "{}");
    }

    pub fn from_iter(e: &Env) {
        let xs = [(1u64, 1u64), (2, 2), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6)];
        let map = RemHashMap::from_iter_in(xs.iter().cloned(), &e.rt);
        e.evac();
        for &(k, v) in &xs {
            assert_eq!(map.get(&k).as_deref(), Some(&v));
        }
        assert_eq!(map.iter().len(), xs.len() - 1);
    }

    pub fn from_array(e: &Env) {
        let map = RemHashMap::from([(1u64, 2u64), (3, 4)]);
        let v = RemHashMap::from_iter_in([(1u64, 2u64), (3, 4)], &e.rt);
        e.evac();
        assert!(map.len() == v.len() && v.iter().all(|(k, x)| *map.get(&k).unwrap() == x));
    }

    pub fn size_hint(e: &Env) {
        let xs = [(1u64, 1u64), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6)];
        let map = RemHashMap::from_iter_in(xs.iter().cloned(), &e.rt);
        e.evac();
        let mut iter = map.iter();
        for _ in iter.by_ref().take(3) {}
        assert_eq!(iter.size_hint(), (3, Some(3)));
    }

    pub fn iter_len(e: &Env) {
        let xs = [(1u64, 1u64), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6)];
        let map = RemHashMap::from_iter_in(xs.iter().cloned(), &e.rt);
        e.evac();
        let mut iter = map.iter();
        for _ in iter.by_ref().take(3) {}
        assert_eq!(iter.len(), 3);
    }

    pub fn index(e: &Env) {
        let map = e.map();
        map.insert(1u64, 2u64);
        map.insert(2, 1);
        map.insert(3, 4);
        e.evac();
        assert_eq!(*map.get(&2).unwrap(), 1);
    }

    pub fn entry(e: &Env) {
        let xs = [(1u64, 10u64), (2, 20), (3, 30), (4, 40), (5, 50), (6, 60)];
        let map = RemHashMap::from_iter_in(xs.iter().cloned(), &e.rt);
        e.evac();
        // Existing key (insert)
        match map.entry(1) {
            Entry::Vacant(_) => unreachable!(),
            Entry::Occupied(mut view) => {
                assert_eq!(*view, 10);
                assert_eq!(std::mem::replace(&mut *view, 100), 10);
            }
        }
        assert_eq!(*map.get(&1).unwrap(), 100);
        assert_eq!(map.len(), 6);
        e.evac();
        // Existing key (update)
        match map.entry(2) {
            Entry::Vacant(_) => unreachable!(),
            Entry::Occupied(mut view) => *view *= 10,
        }
        assert_eq!(*map.get(&2).unwrap(), 200);
        assert_eq!(map.len(), 6);
        // Existing key (take)
        assert_eq!(map.remove(&3), Some(30));
        assert!(map.get(&3).is_none());
        assert_eq!(map.len(), 5);
        // Inexistent key (insert)
        match map.entry(10) {
            Entry::Occupied(_) => unreachable!(),
            Entry::Vacant(view) => assert_eq!(*view.insert(1000), 1000),
        }
        assert_eq!(*map.get(&10).unwrap(), 1000);
        assert_eq!(map.len(), 6);
    }

    pub fn entry_take_doesnt_corrupt(e: &Env) {
        fn check(m: &RemHashMap<u64, ()>) {
            for k in m.keys() {
                assert!(m.contains_key(&k), "{k} is in keys() but not in the map?");
            }
        }
        let m = e.map();
        // Populate the map with some items (a fixed xorshift stream).
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50 {
            m.insert(next() % 10, ());
        }
        e.evac();
        for _ in 0..1000 {
            let x = next() % 10;
            // std removes through the occupied entry; here the entry is a writer guard, so
            // it is dropped before the map is touched again.
            if matches!(m.entry(x), Entry::Occupied(_)) {
                m.remove(&x);
                check(&m);
            }
        }
    }

    pub fn occupied_entry_key(e: &Env) {
        let a = e.map();
        let key = "hello there".to_string();
        let value = "value goes here".to_string();
        assert!(a.is_empty());
        a.insert(key.clone(), value.clone());
        e.evac();
        assert_eq!(a.len(), 1);
        assert_eq!(*a.get(&key).unwrap(), value);
        match a.entry(key.clone()) {
            Entry::Vacant(_) => panic!(),
            Entry::Occupied(e) => assert_eq!(key, *e.key()),
        }
        assert_eq!(a.len(), 1);
        assert_eq!(*a.get(&key).unwrap(), value);
    }

    pub fn vacant_entry_key(e: &Env) {
        let a: RemHashMap<String, String> = e.map();
        let key = "hello there".to_string();
        let value = "value goes here".to_string();
        assert!(a.is_empty());
        match a.entry(key.clone()) {
            Entry::Occupied(_) => panic!(),
            Entry::Vacant(e) => {
                assert_eq!(key, *e.key());
                e.insert(value.clone());
            }
        }
        e.evac();
        assert_eq!(a.len(), 1);
        assert_eq!(*a.get(&key).unwrap(), value);
    }

    pub fn entry_or_insert_with_key(e: &Env) {
        let a: RemHashMap<u64, u64> = e.map();
        *a.entry(5).or_insert_with_key(|k| k * 2) += 1;
        e.evac();
        assert_eq!(a.get_cloned(&5), Some(11));
        assert_eq!(*a.entry(5).or_insert_with_key(|_| unreachable!()), 11);
    }

    pub fn extend_ref(e: &Env) {
        let mut a = e.map();
        a.insert(1u64, "one".to_string());
        let mut b = HashMap::new();
        b.insert(2u64, "two".to_string());
        b.insert(3, "three".to_string());
        a.extend(&b);
        e.evac();
        assert_eq!(a.len(), 3);
        assert_eq!(*a.get(&1).unwrap(), "one");
        assert_eq!(*a.get(&2).unwrap(), "two");
        assert_eq!(*a.get(&3).unwrap(), "three");
    }

    pub fn retain(e: &Env) {
        let map = RemHashMap::from_iter_in((0..100u64).map(|x| (x, x * 10)), &e.rt);
        e.evac();
        map.retain(|&k, _| k % 2 == 0);
        assert_eq!(map.len(), 50);
        e.evac();
        assert_eq!(*map.get(&2).unwrap(), 20);
        assert_eq!(*map.get(&4).unwrap(), 40);
        assert_eq!(*map.get(&6).unwrap(), 60);
        assert!(map.get(&3).is_none());
    }

    pub fn drain(e: &Env) {
        let map = RemHashMap::from_iter_in((0..100u64).map(|x| (x, x * 10)), &e.rt);
        e.evac();
        let mut d: Vec<_> = map.drain().collect();
        d.sort();
        assert_eq!(d, (0..100u64).map(|x| (x, x * 10)).collect::<Vec<_>>());
        assert!(map.is_empty());
        assert!(map.get(&1).is_none());
        map.insert(1, 1);
        assert_eq!(map.len(), 1);
    }

    pub fn clear(e: &Env) {
        let map = RemHashMap::from_iter_in((0..1000u64).map(|x| (x, [x; 8])), &e.rt);
        e.evac();
        map.clear();
        assert!(map.is_empty());
        assert_eq!(map.iter().count(), 0);
        for x in (0..1000u64).step_by(13) {
            assert!(map.get(&x).is_none());
        }
    }

    pub fn borrowed_keys(e: &Env) {
        let m: RemHashMap<String, u64> = e.map();
        for (i, w) in ["ada", "grace", "barbara"].iter().enumerate() {
            m.insert(w.to_string(), i as u64);
        }
        e.evac();
        assert_eq!(*m.get("grace").unwrap(), 1);
        assert!(m.contains_key("ada"));
        assert_eq!(m.remove("barbara"), Some(2));
        assert!(!m.contains_key("barbara"));
    }

    /// More data than the small budget: the same checks with most pairs far.
    pub fn big_values(e: &Env) {
        let m = e.map();
        let mut model = HashMap::new();
        for i in 0..20_000u64 {
            m.insert(i, [i; 8]);
            model.insert(i, [i; 8]);
        }
        e.evac();
        if e.forced {
            assert!(m.local_len() < m.len());
        }
        for i in (0..20_000u64).step_by(3) {
            *m.get_mut(&i).unwrap() = [i + 1; 8];
            model.insert(i, [i + 1; 8]);
        }
        for i in (0..20_000u64).step_by(5) {
            assert_eq!(m.remove(&i), model.remove(&i));
        }
        e.evac();
        assert_eq!(m.len(), model.len());
        let got: HashMap<u64, [u64; 8]> = m.iter().collect();
        assert_eq!(got, model);
    }
}
