//! RemQueue against `VecDeque` (both ends), with far less local memory than data.

use aifm_collections::RemQueue;
use aifm_core::Runtime;
use quickcheck::{Arbitrary, Gen, QuickCheck};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
enum Op {
    Push(u64, u16),
    Pop(u16),
    PushFront(u64, u16),
    PopBack(u16),
    Evacuate,
    Retain(u8),
    Compare,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 14 {
            0..=3 => Op::Push(u64::arbitrary(g), u16::arbitrary(g)),
            4..=6 => Op::Pop(u16::arbitrary(g)),
            7 => Op::Evacuate,
            8 => Op::Retain(u8::arbitrary(g) % 4 + 2),
            9 | 10 => Op::PushFront(u64::arbitrary(g), u16::arbitrary(g)),
            11 | 12 => Op::PopBack(u16::arbitrary(g)),
            _ => Op::Compare,
        }
    }
}

fn run_model(ops: Vec<Op>) -> bool {
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let mut q = RemQueue::new_in(&rt);
    let mut m = VecDeque::new();
    // 4 MiB of u64s for a 1 MiB budget.
    for i in 0..(1u64 << 19) {
        q.push(i);
        m.push_back(i);
    }
    rt.evacuate_now();
    for op in ops {
        match op {
            Op::Push(x, n) => {
                for j in 0..n as u64 {
                    q.push(x ^ j);
                    m.push_back(x ^ j);
                }
            }
            Op::Pop(n) => {
                for _ in 0..n {
                    assert_eq!(q.pop(), m.pop_front());
                }
            }
            Op::PushFront(x, n) => {
                for j in 0..n as u64 {
                    q.push_front(x ^ j);
                    m.push_front(x ^ j);
                }
            }
            Op::PopBack(n) => {
                for _ in 0..n {
                    assert_eq!(q.pop_back(), m.pop_back());
                }
            }
            Op::Evacuate => rt.evacuate_now(),
            Op::Retain(d) => {
                q.retain(|x| x % d as u64 != 0);
                m.retain(|x| x % d as u64 != 0);
            }
            Op::Compare => assert!(q.iter().eq(m.iter().copied())),
        }
        assert_eq!(q.len(), m.len());
    }
    assert!(q.iter().eq(m.iter().copied()));
    assert!(rt.stats().write_backs > 0 && rt.stats().fetches > 0);
    assert!(q.into_iter().eq(m.into_iter()));
    true
}

#[test]
fn queue_suite() {
    QuickCheck::new()
        .tests(5)
        .max_tests(5)
        .quickcheck(run_model as fn(Vec<Op>) -> bool);

    // Traits.
    let q: RemQueue<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    assert_eq!(format!("{q:?}"), r#"["a", "b"]"#);
    assert!(q.clone() == q);

    // Shared between producers and consumers.
    let rt = Runtime::builder().local_memory(1 << 20).build().unwrap();
    let q = Arc::new(Mutex::new(RemQueue::new_in(&rt)));
    let producers: Vec<_> = (0..2u64)
        .map(|t| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..200_000u64 {
                    q.lock().unwrap().push(t << 32 | i);
                }
            })
        })
        .collect();
    let consumer = {
        let q = q.clone();
        std::thread::spawn(move || {
            let mut last = [None::<u64>; 2];
            let mut got = 0;
            while got < 400_000 {
                let x = q.lock().unwrap().pop();
                if let Some(x) = x {
                    let (t, i) = ((x >> 32) as usize, x & 0xffff_ffff);
                    assert!(last[t].is_none_or(|l| l < i), "per-producer FIFO order");
                    last[t] = Some(i);
                    got += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        })
    };
    for p in producers {
        p.join().unwrap();
    }
    consumer.join().unwrap();
    assert!(q.lock().unwrap().is_empty());
}
