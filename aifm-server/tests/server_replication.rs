//! Three real `aifm-server` processes, replication 2: one server is SIGKILLed after far
//! memory was filled, and every object is still read back with its value.

mod common;

use aifm_collections::vec::{AggValue, Aggregate};
use aifm_collections::{Exec, RemVec};
use aifm_core::backend::Backend;
use aifm_core::{RemBox, Runtime, Scope};
use common::ServerProc;
use std::sync::Arc;

fn three() -> Vec<ServerProc> {
    common::start_servers(3)
}

fn value(i: u64) -> [u64; 512] {
    common::pattern(i.wrapping_mul(0x9e37_79b9))
}

#[test]
fn rembox_objects_survive_the_death_of_a_server() {
    let mut servers = three();
    let rt = common::servers_builder(&servers).build().unwrap();
    assert!(
        rt.backend_name().starts_with("replicated(x2:"),
        "{}",
        rt.backend_name()
    );
    // 8 MiB of 4 KiB objects through 2 MiB of local memory.
    let n = 2048u64;
    let mut boxes: Vec<RemBox<[u64; 512]>> =
        (0..n).map(|i| RemBox::new_in(value(i), &rt)).collect();
    rt.evacuate_now();
    assert!(rt.stats().write_backs > 0);

    servers[1].kill(); // SIGKILL

    let mut scope = Scope::new();
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(
            *b.deref(&scope),
            value(i as u64),
            "object {i} after the kill"
        );
        scope.renew();
    }
    // Writes after the death land on the survivors and come back too.
    for (i, b) in boxes.iter_mut().enumerate().step_by(3) {
        b.deref_mut(&scope)[0] = u64::MAX - i as u64;
        scope.renew();
    }
    drop(scope);
    rt.evacuate_now();
    let mut scope = Scope::new();
    for (i, b) in boxes.iter().enumerate() {
        let mut want = value(i as u64);
        if i % 3 == 0 {
            want[0] = u64::MAX - i as u64;
        }
        assert_eq!(*b.deref(&scope), want, "object {i} after rewriting");
        scope.renew();
    }
    drop(scope);
    assert_eq!(rt.stats().backend_errors, 0, "{:?}", rt.stats());
}

/// Fills a `RemVec` far away, kills one of the two servers holding it (`victim` picks which),
/// and sums it both on the surviving server and locally.
fn vector_survives(victim: usize) {
    let mut servers = three();
    let far = Arc::new(common::replicated(&servers));
    let rt = common::small_runtime(far.clone());
    let len = 512 * 1024u64; // 4 MiB of u64 through 2 MiB of local memory
    let mut v: RemVec<u64> = RemVec::new_in(&rt);
    v.extend((0..len).map(|i| i.wrapping_mul(2_654_435_761) % 1_000_003));
    let expected: u128 = (0..len)
        .map(|i| u128::from(i.wrapping_mul(2_654_435_761) % 1_000_003))
        .sum();
    rt.evacuate_now();
    assert!(rt.stats().write_backs > 0);

    // The vector is placed whole on two of the three servers: they hold far more than the
    // third. Kill one of them.
    let mut held: Vec<(u64, usize)> = far
        .servers()
        .iter()
        .enumerate()
        .map(|(i, s)| (s.stored_bytes(), i))
        .collect();
    held.sort_unstable_by(|a, b| b.cmp(a));
    assert!(held[1].0 > 2 * held[2].0, "{held:?}");
    let killed = held[victim].1;
    servers[killed].kill(); // SIGKILL

    let remote = v.try_aggregate(Aggregate::Sum, Exec::Remote).unwrap();
    assert_eq!(remote, Some(AggValue::Sum(expected)));
    let local = v.try_aggregate(Aggregate::Sum, Exec::Local).unwrap();
    assert_eq!(local, Some(AggValue::Sum(expected)));
    assert_eq!(v.sum(), expected);
    assert_eq!(v.len() as u64, len);

    let s = far.stats();
    assert_eq!((s.live, s.dead), (2, 1), "{s:?}");
    assert!(s.degraded_reads > 0, "{s:?}");
    assert_eq!(far.dead_servers()[0].0, killed);
    assert_eq!(rt.stats().backend_errors, 0, "{:?}", rt.stats());
}

#[test]
fn vector_survives_the_death_of_its_first_holder() {
    vector_survives(0);
}

#[test]
fn vector_survives_the_death_of_its_second_holder() {
    vector_survives(1);
}

#[test]
fn comma_separated_addresses_connect_replicated() {
    let servers = three();
    let list = servers
        .iter()
        .map(|s| s.addr.as_str())
        .collect::<Vec<_>>()
        .join(" , ");
    let far = aifm_core::backend::connect(&list).unwrap();
    assert!(far.name().starts_with("replicated(x2:"), "{}", far.name());
    let far = aifm_core::backend::connect_replicated(&list, Some(3)).unwrap();
    assert!(far.name().starts_with("replicated(x3:"), "{}", far.name());
    let one = aifm_core::backend::connect(&servers[0].addr).unwrap();
    assert!(one.name().starts_with("tcp://"), "{}", one.name());
    let rt = Runtime::builder()
        .local_memory(2 << 20)
        .servers([servers[0].addr.clone(), servers[1].addr.clone()])
        .replicas(1)
        .build()
        .unwrap();
    assert!(rt.backend_name().starts_with("replicated(x1:"));
}

#[test]
fn losing_every_replica_is_reported_never_silent() {
    let mut servers = three();
    let rt = common::servers_builder(&servers).build().unwrap();
    let boxes: Vec<RemBox<[u64; 512]>> = (0..2048).map(|i| RemBox::new_in(value(i), &rt)).collect();
    rt.evacuate_now();
    servers[0].kill();
    servers[2].kill();
    let (mut ok, mut lost) = (0, 0);
    let mut scope = Scope::new();
    for (i, b) in boxes.iter().enumerate() {
        match b.try_deref(&scope) {
            Ok(v) => {
                assert_eq!(*v, value(i as u64), "object {i}");
                ok += 1;
            }
            Err(e) => {
                assert!(e.is_disconnected(), "object {i}: {e}");
                lost += 1;
            }
        }
        scope.renew();
    }
    // Objects whose replica set is {0, 2} (and were far) are gone; every other one is intact.
    assert!(ok > 0 && lost > 0, "ok {ok}, lost {lost}");
}

#[test]
fn hash_map_pairs_survive_the_death_of_a_holder() {
    use aifm_collections::RemHashMap;
    let mut servers = three();
    let far = Arc::new(common::replicated(&servers));
    let rt = common::small_runtime(far.clone());
    let map: RemHashMap<u64, String> = RemHashMap::new_in(&rt);
    for i in 0..50_000u64 {
        map.insert(i, format!("value-{i}"));
    }
    rt.evacuate_now();
    assert!(map.local_len() < 50_000, "some pairs were evicted");
    // Lookups that take pairs back from the server run on every replica, so the copies
    // agree; then a holder of the map dies.
    for i in (0..50_000u64).step_by(5) {
        assert_eq!(map.get_cloned(&i), Some(format!("value-{i}")));
    }
    let heaviest = (0..3)
        .max_by_key(|&i| far.servers()[i].stored_bytes())
        .unwrap();
    servers[heaviest].kill(); // SIGKILL
    for i in 0..50_000u64 {
        assert_eq!(map.get_cloned(&i), Some(format!("value-{i}")), "key {i}");
    }
    assert_eq!(map.len(), 50_000);
    assert_eq!(far.stats().dead, 1);
}
