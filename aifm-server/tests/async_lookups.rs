//! `RemHashMap::get_async` / `get_many_async` / `insert_async` against a std `HashMap` under a tiny budget, with
//! many tasks in flight on one thread (the test executor of `aifm_collections::testing`, which
//! also fails, instead of hanging, if a future is never woken).

use aifm_collections::testing::{executor::Tasks, XorShift};
use aifm_collections::RemHashMap;
mod common;

use aifm_core::{RemBox, Runtime};
use common::ServerProc;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

/// 256-byte values, so a few thousand pairs are many times the 1 MiB budget.
type Value = Vec<u64>;

fn value(k: u64, version: u64) -> Value {
    vec![k ^ (version << 32); 32]
}

const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn async_lookups_agree_with_std_under_a_tiny_budget() {
    let rt = tiny_runtime();
    let mut rng = XorShift::new(7);
    const KEYS: u64 = 6000;
    let map = filled_map(&rt, KEYS);
    let mut model: HashMap<u64, Value> = (0..KEYS).map(|k| (k, value(k, 0))).collect();
    let fetches_before = rt.stats().fetches;
    for round in 0..12u64 {
        // 32 tasks write distinct keys with insert_async (their far pairs come home in one
        // batch); each must get the old value back.
        let mut keys: Vec<u64> = (0..32)
            .map(|_| rng.next_u64() % (KEYS + KEYS / 10))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let olds = RefCell::new(Vec::new());
        let mut tasks = Tasks::new();
        for &k in &keys {
            let (map, olds) = (&map, &olds);
            tasks.spawn(async move {
                let old = map.insert_async(k, value(k, round + 100)).await.unwrap();
                olds.borrow_mut().push((k, old));
            });
        }
        tasks.run(PATIENCE).expect("every future resolves");
        drop(tasks);
        for (k, old) in olds.into_inner() {
            assert_eq!(old, model.insert(k, value(k, round + 100)), "key {k}");
        }
        // 96 tasks in flight; each asks for one key or a batch with repeats and absent keys.
        let failures = RefCell::new(Vec::new());
        let (map_ref, model_ref) = (&map, &model);
        let mut tasks = Tasks::new();
        for t in 0..96u64 {
            let keys: Vec<u64> = (0..1 + rng.next_u64() % 6)
                .map(|_| rng.next_u64() % (KEYS + KEYS / 10))
                .collect();
            let failures = &failures;
            tasks.spawn(async move {
                if t % 3 == 0 {
                    let got = map_ref.get_async(&keys[0]).await.unwrap();
                    if got.as_ref() != model_ref.get(&keys[0]) {
                        failures.borrow_mut().push((round, keys[0]));
                    }
                } else {
                    let got = map_ref.get_many_async(&keys).await.unwrap();
                    for (k, v) in keys.iter().zip(got) {
                        if v.as_ref() != model_ref.get(k) {
                            failures.borrow_mut().push((round, *k));
                        }
                    }
                }
            });
        }
        tasks.run(PATIENCE).expect("every future resolves");
        drop(tasks);
        assert!(failures.borrow().is_empty(), "{:?}", failures.borrow());
        // Between rounds, synchronous writes and removals move pairs around.
        for _ in 0..200 {
            let k = rng.next_u64() % (KEYS + KEYS / 10);
            if rng.next_u64() % 4 == 0 {
                assert_eq!(map.remove(&k), model.remove(&k));
            } else {
                let v = value(k, round + 1);
                assert_eq!(map.insert(k, v.clone()), model.insert(k, v));
            }
        }
        rt.evacuate_now();
    }
    assert_eq!(map.len(), model.len());
    for (k, v) in &model {
        assert_eq!(map.get_cloned(k).as_ref(), Some(v), "key {k}");
    }
    assert!(
        rt.stats().fetches > fetches_before,
        "the lookups must have gone to far memory"
    );
}

/// A 1 MiB in-process runtime: a few thousand pairs are many times its budget.
fn tiny_runtime() -> Runtime {
    Runtime::builder().local_memory(1 << 20).build().unwrap()
}

/// A map in `rt` holding `value(k, 0)` for every `k` in `0..pairs`.
fn filled_map(rt: &Runtime, pairs: u64) -> RemHashMap<u64, Value> {
    let map = RemHashMap::new_in(rt);
    for k in 0..pairs {
        map.insert(k, value(k, 0));
    }
    map
}

/// The first `n` keys of `0..keys` whose pairs are in far memory now; there must be `n`.
fn far_keys(map: &RemHashMap<u64, Value>, keys: u64, n: usize) -> Vec<u64> {
    let far: Vec<u64> = (0..keys).filter(|k| !is_local(map, *k)).take(n).collect();
    assert_eq!(far.len(), n, "the budget must push pairs out");
    far
}

/// A tiny in-process runtime and a map of 4000 pairs after one evacuation, with `n` of the
/// keys whose pairs it pushed out.
fn map_with_far_pairs(n: usize) -> (Runtime, RemHashMap<u64, Value>, Vec<u64>) {
    let rt = tiny_runtime();
    let map = filled_map(&rt, 4000);
    rt.evacuate_now();
    let far = far_keys(&map, 4000, n);
    (rt, map, far)
}

#[test]
fn misses_of_many_tasks_share_a_batch() {
    let (rt, map, far) = map_with_far_pairs(64);
    let before = rt.stats();
    let mut tasks = Tasks::new();
    let map_ref = &map;
    for &k in &far {
        tasks.spawn(async move {
            assert_eq!(map_ref.get_async(&k).await.unwrap(), Some(value(k, 0)));
        });
    }
    tasks.run(PATIENCE).expect("every future resolves");
    // 64 tasks, each polled twice before the batch (queue, yield) and never a third time:
    // the first re-poll answers all of them in one batch.
    assert!(tasks.polls() <= 128, "{} polls", tasks.polls());
    assert_eq!(rt.stats().fetches - before.fetches, 64);
}

/// Whether `k`'s pair is local now (`local_len` before and after would race the evacuator;
/// this asks the index directly through a lookup that cannot fetch: a `get_async` polled once).
fn is_local(map: &RemHashMap<u64, Value>, k: u64) -> bool {
    use std::future::Future;
    let mut fut = std::pin::pin!(map.get_async(&k));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    fut.as_mut().poll(&mut cx).is_ready()
}

#[test]
fn a_dropped_future_leaves_the_others_answered() {
    let (_rt, map, far) = map_with_far_pairs(8);
    use std::future::Future;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut futs: Vec<_> = far.iter().map(|k| Box::pin(map.get_async(k))).collect();
    for f in &mut futs {
        assert!(f.as_mut().poll(&mut cx).is_pending()); // queued, yielded
    }
    // The first one goes away before answering: the others still get theirs.
    drop(futs.remove(0));
    for (f, k) in futs.iter_mut().zip(&far[1..]) {
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => assert_eq!(v.unwrap(), Some(value(*k, 0))),
            std::task::Poll::Pending => panic!("the second poll answers the batch"),
        }
    }
}

/// A map and boxes over a real server, most of them pushed out of a 1 MiB budget.
fn far_map(server: &ServerProc) -> (Runtime, RemHashMap<u64, Value>, Vec<RemBox<Value>>) {
    let rt = server.runtime(1 << 20);
    let map = filled_map(&rt, 6000);
    let boxes = (0..3000)
        .map(|k| RemBox::new_in(value(k, 1), &rt))
        .collect();
    rt.evacuate_now();
    (rt, map, boxes)
}

#[test]
fn a_server_killed_with_lookups_queued_fails_each_of_them() {
    let mut server = ServerProc::start(&[]);
    let (_rt, map, boxes) = far_map(&server);
    let far = far_keys(&map, 6000, 64);
    let far_boxes: Vec<&RemBox<Value>> = boxes.iter().filter(|b| !b.is_local()).take(16).collect();
    let outcomes = RefCell::new(Vec::new());
    let mut tasks = Tasks::new();
    for &k in &far {
        let (map, outcomes) = (&map, &outcomes);
        tasks.spawn(async move {
            let r = map.get_async(&k).await;
            outcomes
                .borrow_mut()
                .push(r.map(|v| v == Some(value(k, 0))));
        });
    }
    for &b in &far_boxes {
        let outcomes = &outcomes;
        tasks.spawn(async move {
            let r = b.read_async(|v| v[0]).await;
            outcomes.borrow_mut().push(r.map(|_| true));
        });
    }
    // Every task polled once: all the map's misses are queued, none answered yet.
    tasks.run_polls(80, PATIENCE).unwrap();
    assert_eq!(tasks.pending(), 80);
    server.kill();
    tasks
        .run(PATIENCE)
        .expect("no future hangs on a dead server");
    drop(tasks);
    let outcomes = outcomes.into_inner();
    assert_eq!(outcomes.len(), 80);
    for o in &outcomes[..] {
        match o {
            Ok(right) => assert!(right, "a wrong value"),
            Err(e) => assert!(
                e.is_disconnected() || matches!(e, aifm_core::Error::Timeout),
                "not a far-memory error: {e}"
            ),
        }
    }
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    assert!(
        failed >= 64,
        "the map's queued misses must fail: {failed} of 80"
    );
}

#[test]
fn a_server_killed_while_tasks_keep_looking_up_fails_them_all_without_a_hang() {
    let mut server = ServerProc::start(&[]);
    let (_rt, map, _boxes) = far_map(&server);
    let pid = server.pid();
    let (ok, failed) = (RefCell::new(0u64), RefCell::new(0u64));
    let mut tasks = Tasks::new();
    for t in 0..64u64 {
        let (map, ok, failed) = (&map, &ok, &failed);
        tasks.spawn(async move {
            let mut rng = XorShift::new(t + 1);
            // Each task looks up until far memory fails it, then stops.
            for _ in 0..100_000 {
                let keys: Vec<u64> = (0..4).map(|_| rng.next_u64() % 6000).collect();
                match map.get_many_async(&keys).await {
                    Ok(vals) => {
                        for (k, v) in keys.iter().zip(vals) {
                            assert_eq!(v, Some(value(*k, 0)), "key {k}");
                        }
                        *ok.borrow_mut() += 1;
                    }
                    Err(e) => {
                        assert!(
                            e.is_disconnected() || matches!(e, aifm_core::Error::Timeout),
                            "not a far-memory error: {e}"
                        );
                        *failed.borrow_mut() += 1;
                        return;
                    }
                }
            }
        });
    }
    // Let some batches succeed, then kill the server while the tasks go on.
    tasks.run_polls(2_000, PATIENCE).unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        common::signal_pid(pid, libc::SIGKILL);
    });
    tasks
        .run(PATIENCE)
        .expect("no future hangs on a dead server");
    killer.join().unwrap();
    server.kill();
    drop(tasks);
    assert!(
        *ok.borrow() > 0,
        "some lookups must succeed before the kill"
    );
    assert_eq!(*failed.borrow(), 64, "every task ends on the error");
}

#[test]
fn the_futures_are_send_so_multi_threaded_executors_can_move_them() {
    fn send<T: Send>(_: &T) {}
    let rt = tiny_runtime();
    let map: RemHashMap<u64, Value> = RemHashMap::new_in(&rt);
    let b = RemBox::new_in(value(1, 1), &rt);
    send(&map.get_async(&1));
    send(&map.get_many_async(&[1, 2]));
    send(&map.insert_async(1, value(1, 2)));
    send(&b.read_async(|v| v.len()));
    send(&rt.fetch_batched(vec![b.ticket()]));
}
