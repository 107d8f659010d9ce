//! Every collection against its std twin on three real servers with replication 2, one of
//! them SIGKILLed half way through a random operation sequence: zero divergences, nothing lost.

mod common;

use aifm_collections::{RemHashMap, RemList, RemQueue, RemVec};
use aifm_core::Runtime;
use common::ServerProc;
use std::collections::{HashMap, LinkedList, VecDeque};

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
fn collections_match_their_twins_across_a_server_kill() {
    let mut servers: Vec<ServerProc> = (0..3).map(|_| ServerProc::start(&[])).collect();
    let rt = Runtime::builder()
        .local_memory(2 << 20)
        .servers(servers.iter().map(|s| s.addr.clone()))
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
    assert!(rt.stats().write_backs > 0);

    let mut ops = Ops(0x5eed);
    for n in 0..OPS {
        if n == OPS / 2 {
            servers[0].kill(); // SIGKILL, half way through
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
    // Everything, in full.
    assert_eq!(vec.iter().collect::<Vec<_>>(), vec_model);
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
    let servers_state = rt.stats().servers.expect("replicated");
    assert_eq!(
        (servers_state.live, servers_state.dead),
        (2, 1),
        "{}",
        rt.stats()
    );
}
