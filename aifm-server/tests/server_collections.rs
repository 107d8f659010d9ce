//! The collections' server-side devices, hosted by the real `aifm-server` binary: offloaded
//! vector operations and hash-map pairs evicted to (and looked up on) the server.

mod common;

use aifm_collections::vec::{AggValue, Aggregate};
use aifm_collections::{Exec, RemHashMap, RemVec};
use common::ServerProc;

#[test]
fn vector_offloads_run_on_the_server_and_match_local_results() {
    let server = ServerProc::start(&[]);
    let rt = server.runtime(2 << 20);
    let mut v: RemVec<u64> = RemVec::new_in(&rt);
    v.extend((0..1_000_000u64).map(|i| i.wrapping_mul(2_654_435_761) % 1_000_003));
    let keys: RemVec<u8> = {
        let mut k = RemVec::new_in(&rt);
        k.extend((0..1_000_000u64).map(|i| (i % 7) as u8));
        k
    };
    rt.evacuate_now();
    for agg in [
        Aggregate::Sum,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Count,
        Aggregate::Median,
    ] {
        let remote = v
            .try_aggregate(agg, Exec::Remote)
            .expect("the server runs aifm.vec");
        let local = v.try_aggregate(agg, Exec::Local).unwrap();
        assert_eq!(remote, local, "{agg:?}");
    }
    let remote = v
        .try_group_by(&keys, Aggregate::Median, Exec::Remote)
        .unwrap();
    assert_eq!(
        remote,
        v.try_group_by(&keys, Aggregate::Median, Exec::Local)
            .unwrap()
    );
    assert!(matches!(remote[&3], AggValue::Median(_)));
    assert!(rt.stats().write_backs > 0);
}

#[test]
fn hash_map_pairs_evicted_to_the_server_come_back() {
    let server = ServerProc::start(&[]);
    let rt = server.runtime(2 << 20);
    let map: RemHashMap<u64, String> = RemHashMap::new_in(&rt);
    for i in 0..50_000u64 {
        map.insert(i, format!("value-{i}"));
    }
    rt.evacuate_now();
    assert!(
        map.local_len() < 50_000,
        "some pairs were evicted to the server"
    );
    for i in (0..50_000u64).step_by(7) {
        assert_eq!(
            map.get_cloned(&i).as_deref(),
            Some(format!("value-{i}").as_str())
        );
    }
    assert_eq!(map.len(), 50_000);
}
