//! Every collection against its std twin on three real servers with replication 2: one server
//! is SIGKILLed, a new server replaces it and is rebuilt while the operations go on, then a
//! *second* original server is SIGKILLed. The objects both dead servers held survive only
//! through the rebuild; the test checks there are such objects, and that nothing is lost
//! and nothing diverges.

mod common;

use aifm_collections::{RemHashMap, RemList, RemQueue, RemVec};
use aifm_core::backend::replicated::ReplicatedBackend;
use aifm_core::backend::{Backend, OBJECT_STORE};
use aifm_core::Runtime;
use common::ServerProc;
use std::collections::{HashMap, LinkedList, VecDeque};
use std::sync::Arc;
use std::time::Duration;

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
/// Structure ids the runtime hands out, in creation order (checked below).
const VEC_ID: u32 = 1;
const MAP_ID: u32 = 2;

#[test]
fn collections_match_their_twins_across_a_kill_a_rebuild_and_a_second_kill() {
    let mut servers: Vec<ServerProc> = (0..3).map(|_| ServerProc::start(&[])).collect();
    let far = Arc::new(
        ReplicatedBackend::new(
            servers
                .iter()
                .map(|s| Box::new(s.client()) as Box<dyn Backend>)
                .collect(),
        )
        .unwrap()
        .with_replicas(2),
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
    // The vector and the map are the structures we think they are.
    let probe = &far.servers()[0];
    assert!(probe.keys(VEC_ID).is_ok() && probe.keys(MAP_ID).is_ok());
    assert!(probe.keys(MAP_ID + 1).unwrap_err() == aifm_core::Error::UnknownStructure(MAP_ID + 1));
    // Kill both holders of the map, one after the other: without the rebuild the map's
    // evicted pairs (and a third of the striped objects) would be gone.
    let map_set = far.placement(MAP_ID, b"");
    let (first, second) = (map_set[0], map_set[1]);

    let mut ops = Ops(0x5eed_0007);
    let mut replacement: Option<ServerProc> = None;
    for n in 0..OPS {
        if n == OPS / 4 {
            servers[first].kill(); // SIGKILL
        }
        if n == OPS / 4 + 2_000 {
            assert!(!far.is_live(first), "the kill was noticed");
            let new = ServerProc::start(&[]);
            far.replace_server(first, Box::new(new.client())).unwrap();
            replacement = Some(new); // the rebuild runs while the operations go on
        }
        if n == OPS * 2 / 3 {
            far.wait_rebuilt(first, Duration::from_secs(60)).unwrap();
            // The replacement holds objects whose only other copy is on `second`.
            let on_both = far.servers()[first]
                .keys(OBJECT_STORE)
                .unwrap()
                .into_iter()
                .filter(|k| {
                    let set = far.placement(OBJECT_STORE, k);
                    set.contains(&first) && set.contains(&second)
                })
                .count();
            assert!(on_both > 100, "{on_both} objects depend on the rebuild");
            assert!(!far.servers()[first].keys(MAP_ID).unwrap().is_empty());
            servers[second].kill(); // SIGKILL a different original server
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
            rt.evacuate_now(); // keep far memory in the game throughout
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
    let s = far.stats();
    assert_eq!(
        (s.live, s.rebuilding, s.dead, s.replaced),
        (2, 0, 1, 1),
        "{s:?}"
    );
    assert!(s.rebuilt_objects > 0 && s.rebuilt_bytes > 0, "{s:?}");
    assert_eq!(s.unrecoverable_objects, 0, "{s:?}");
    assert_eq!(far.dead_servers()[0].0, second);
    drop(replacement);
}
