//! RemHashMap against `HashMap`, with far less local memory than data.

use aifm_collections::RemHashMap;
use aifm_core::Runtime;
use quickcheck::{Arbitrary, Gen, QuickCheck};
use std::collections::HashMap;
use std::sync::Arc;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn small_rt() -> Runtime {
    Runtime::builder().local_memory(1 << 20).build().unwrap()
}

/// 48 Ki pairs of ~100 B (object plus header): about 5 MiB for a 1 MiB budget.
const BASE: u64 = 48 << 10;
type Val = [u64; 8];

fn val(k: u64, salt: u64) -> Val {
    [k ^ salt; 8]
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u64),
    Remove(u64),
    Get(u64),
    Modify(u64),
    Entry(u64),
    Contains(u64),
    Retain(u8),
    Evacuate,
    Iterate,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let k = u64::arbitrary(g) % (BASE + BASE / 4);
        match u8::arbitrary(g) % 20 {
            0..=4 => Op::Insert(k, u64::arbitrary(g)),
            5..=7 => Op::Remove(k),
            8..=11 => Op::Get(k),
            12..=13 => Op::Modify(k),
            14..=15 => Op::Entry(k),
            16 => Op::Contains(k),
            17 => Op::Retain(u8::arbitrary(g) % 5 + 2),
            18 => Op::Evacuate,
            _ => Op::Iterate,
        }
    }
}

fn run_model(ops: Vec<Op>) -> bool {
    let rt = small_rt();
    let m = RemHashMap::new_in(&rt);
    let mut model = HashMap::new();
    for k in 0..BASE {
        m.insert(k, val(k, 0));
        model.insert(k, val(k, 0));
    }
    rt.evacuate_now();
    assert!(m.local_len() < m.len());
    for op in ops {
        match op {
            Op::Insert(k, s) => assert_eq!(m.insert(k, val(k, s)), model.insert(k, val(k, s))),
            Op::Remove(k) => assert_eq!(m.remove(&k), model.remove(&k)),
            Op::Get(k) => assert_eq!(m.get_cloned(&k), model.get(&k).copied()),
            Op::Modify(k) => {
                if let Some(mut r) = m.get_mut(&k) {
                    r[3] = r[3].wrapping_add(1);
                }
                if let Some(v) = model.get_mut(&k) {
                    v[3] = v[3].wrapping_add(1);
                }
            }
            Op::Entry(k) => {
                m.entry(k).and_modify(|v| v[0] ^= 1).or_insert(val(k, 9));
                model
                    .entry(k)
                    .and_modify(|v| v[0] ^= 1)
                    .or_insert(val(k, 9));
            }
            Op::Contains(k) => assert_eq!(m.contains_key(&k), model.contains_key(&k)),
            Op::Retain(d) => {
                m.retain(|k, v| {
                    v[1] = v[1].wrapping_add(1);
                    k % d as u64 != 0
                });
                model.retain(|k, v| {
                    v[1] = v[1].wrapping_add(1);
                    k % d as u64 != 0
                });
            }
            Op::Evacuate => rt.evacuate_now(),
            Op::Iterate => {
                let got: HashMap<u64, Val> = m.iter().collect();
                assert_eq!(got, model);
            }
        }
        assert_eq!(m.len(), model.len());
    }
    rt.evacuate_now();
    let got: HashMap<u64, Val> = m.iter().collect();
    assert_eq!(got, model);
    let s = rt.stats();
    assert!(s.write_backs > 0, "no evacuation happened: {s}");
    // Draining returns everything once.
    let mut drained: Vec<(u64, Val)> = m.drain().collect();
    drained.sort();
    let mut want: Vec<(u64, Val)> = model.into_iter().collect();
    want.sort();
    assert_eq!(drained, want);
    assert!(m.is_empty() && m.get(&1).is_none());
    true
}

fn model_against_hashmap() {
    QuickCheck::new()
        .tests(4)
        .max_tests(4)
        .quickcheck(run_model as fn(Vec<Op>) -> bool);
}

/// One test, in a fixed order: the core's scope pressure is process-wide, so a runtime left
/// in its critical phase by one test would slow the next (see the crate's known limits).
#[test]
fn hashmap_suite() {
    let _serial = serial();
    model_against_hashmap();
    strings_and_traits();
    shared_between_threads();
}

fn strings_and_traits() {
    let rt = small_rt();
    let m = RemHashMap::new_in(&rt);
    for i in 0..30_000u32 {
        m.insert(format!("key-{i}"), format!("value number {i}"));
    }
    rt.evacuate_now();
    assert_eq!(
        m.get_cloned(&"key-17".to_string()).as_deref(),
        Some("value number 17")
    );
    let c = m.clone();
    assert!(c == m);
    c.insert("key-1".into(), "changed".into());
    assert!(c != m);
    *m.entry("new".to_string()).or_default() += "x";
    assert_eq!(
        m.get(&"new".to_string()).as_deref().map(|s| s.as_str()),
        Some("x")
    );
    let small: RemHashMap<u8, u8> = [(1, 2)].into_iter().collect();
    assert_eq!(format!("{small:?}"), "{1: 2}");
    assert!(rt.stats().write_backs > 0);
    assert!(
        rt.stats().fetches > 0,
        "a map miss brings a pair home: it counts as a fetch"
    );
}

fn shared_between_threads() {
    let rt = small_rt();
    let m = Arc::new(RemHashMap::new_in(&rt));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..12_000u64 {
                    let k = i * 4 + t;
                    assert_eq!(m.insert(k, val(k, 1)), None);
                    if i % 5 == 0 {
                        *m.entry(k).or_insert(val(0, 0)) = val(k, 2);
                    }
                    if i % 3 == 0 {
                        let probe = (i / 2) * 4 + t;
                        let salt = if (probe / 4) % 5 == 0 { 2 } else { 1 };
                        assert_eq!(m.get_cloned(&probe), Some(val(probe, salt)));
                    }
                }
            })
        })
        .collect();
    let ev = {
        let rt = rt.clone();
        std::thread::spawn(move || {
            for _ in 0..10 {
                rt.evacuate_now();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    for t in threads {
        t.join().unwrap();
    }
    ev.join().unwrap();
    assert_eq!(m.len(), 48_000);
    for k in (0..48_000u64).step_by(7) {
        let salt = if (k / 4) % 5 == 0 { 2 } else { 1 };
        assert_eq!(m.get_cloned(&k), Some(val(k, salt)), "key {k}");
    }
    assert!(rt.stats().write_backs > 0);
}
