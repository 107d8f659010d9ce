//! Every collection against its std twin on a Redis Cluster of its own (3 masters, each with
//! a replica), under a tiny local budget, with one master SIGKILLed half way through a random
//! operation sequence (the cluster promotes its replica): zero divergences, nothing lost.

mod support;

use aifm_collections::{RemHashMap, RemList, RemQueue, RemVec};
use aifm_core::backend::redis::RedisClusterBuilder;
use aifm_core::backend::Backend;
use aifm_core::Runtime;
use std::collections::{HashMap, LinkedList, VecDeque};
use std::sync::Arc;
use support::redis_cluster::TestCluster;

/// A deterministic operation stream (xorshift), so a failure is reproducible.
struct Ops(u64);

impl Ops {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const OPS: usize = 60_000;

#[test]
fn collections_match_their_twins_across_a_master_kill() {
    let cluster = TestCluster::start(17200);
    let far = Arc::new(
        RedisClusterBuilder::new(&cluster.addr)
            .namespace("model-test")
            .build()
            .expect("connect to the test cluster"),
    );
    let rt = Runtime::builder()
        .local_memory(2 << 20)
        .backend(far.clone())
        .build()
        .unwrap();
    let mut vec: RemVec<u64> = RemVec::new_in(&rt);
    let mut vec_model: Vec<u64> = Vec::new();
    let map: RemHashMap<u64, u64> = RemHashMap::new_in(&rt);
    let mut map_model: HashMap<u64, u64> = HashMap::new();
    let mut queue: RemQueue<u64> = RemQueue::new_in(&rt);
    let mut queue_model: VecDeque<u64> = VecDeque::new();
    let mut list: RemList<u64> = RemList::new_in(&rt);
    let mut list_model: LinkedList<u64> = LinkedList::new();
    // Enough data that most of it lives in far memory (2 MiB local).
    for i in 0..300_000u64 {
        vec.push(i);
        vec_model.push(i);
        queue.push(i);
        queue_model.push_back(i);
        list.push_back(i);
        list_model.push_back(i);
    }
    for k in 0..30_000u64 {
        map.insert(k, k * 3);
        map_model.insert(k, k * 3);
    }
    rt.evacuate_now();
    let before = rt.stats();
    assert!(before.write_backs > 0, "{before}");
    // The vector's device runs in the client: an aggregate over far chunks.
    assert_eq!(
        vec.sum(),
        vec_model.iter().map(|&x| u128::from(x)).sum::<u128>()
    );

    let victim = cluster.masters()[0];
    let mut ops = Ops(0x5eed);
    for n in 0..OPS {
        if n == OPS / 2 {
            cluster.kill(victim); // SIGKILL, half way through
        }
        let x = ops.next();
        let arg = ops.next();
        match x % 10 {
            0 => {
                vec.push(arg);
                vec_model.push(arg);
            }
            1 => {
                let i = (arg % vec_model.len() as u64) as usize;
                assert_eq!(vec.get_cloned(i), Some(vec_model[i]), "vec[{i}] at op {n}");
            }
            2 => {
                let i = (arg % vec_model.len() as u64) as usize;
                vec.set(i, arg);
                vec_model[i] = arg;
            }
            3 => {
                let k = arg % 40_000;
                assert_eq!(
                    map.get_cloned(&k),
                    map_model.get(&k).copied(),
                    "map[{k}] at op {n}"
                );
            }
            4 => {
                let k = arg % 40_000;
                assert_eq!(
                    map.insert(k, arg),
                    map_model.insert(k, arg),
                    "insert {k} at op {n}"
                );
            }
            5 => {
                let k = arg % 40_000;
                assert_eq!(map.remove(&k), map_model.remove(&k), "remove {k} at op {n}");
            }
            6 => {
                queue.push(arg);
                queue_model.push_back(arg);
            }
            7 => assert_eq!(queue.pop(), queue_model.pop_front(), "queue pop at op {n}"),
            8 => {
                list.push_front(arg);
                list_model.push_front(arg);
            }
            _ => assert_eq!(list.pop_back(), list_model.pop_back(), "list pop at op {n}"),
        }
        if n % 10_000 == 0 {
            rt.evacuate_now(); // keep far memory in the game on both sides of the kill
        }
    }
    let after = rt.stats();
    assert!(
        after.write_backs > before.write_backs,
        "evacuations after the kill"
    );
    assert!(after.fetches > before.fetches, "fetches after the kill");
    // Everything, in full.
    assert_eq!(vec.iter().collect::<Vec<_>>(), vec_model);
    assert_eq!(
        vec.sum(),
        vec_model.iter().map(|&x| u128::from(x)).sum::<u128>()
    );
    let mut pairs: Vec<(u64, u64)> = map.iter().collect();
    pairs.sort_unstable();
    let mut model_pairs: Vec<(u64, u64)> = map_model.into_iter().collect();
    model_pairs.sort_unstable();
    assert_eq!(pairs, model_pairs);
    assert_eq!(
        queue.iter().collect::<Vec<_>>(),
        queue_model.into_iter().collect::<Vec<_>>()
    );
    assert_eq!(
        list.iter().collect::<Vec<_>>(),
        list_model.into_iter().collect::<Vec<_>>()
    );
    // The failover happened and was ridden out: the victim's replica serves its slots.
    let s = far.stats();
    assert!(!cluster.masters().contains(&victim));
    assert_eq!(s.masters, 3, "{s:?}");
    assert_eq!(s.masters_without_replica, 1, "{s:?}");
    assert!(s.retried_rounds > 0, "{s:?}");
    assert!(far.stored_bytes() > 0);
}
