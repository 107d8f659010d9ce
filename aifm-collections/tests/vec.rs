//! RemVec against `Vec`, with far less local memory than data.

use aifm_collections::vec::{Aggregate, GroupKey, Numeric};
use aifm_collections::{Exec, RemVec};
use aifm_core::backend::faulty::Faulty;
use aifm_core::{Runtime, Scope};
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// Tests run one at a time: scope pressure is process-wide in the core, so one runtime's
/// critical phase would slow down the others' tests.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn small_rt() -> Runtime {
    Runtime::builder().local_memory(1 << 20).build().unwrap()
}

/// 512 Ki u64s = 4 MiB: four times a 1 MiB budget.
const BASE: u64 = 1 << 19;

#[derive(Debug, Clone)]
enum Op {
    Push(u64),
    Pop,
    Set(usize, u64),
    Get(usize),
    Insert(usize, u64),
    Remove(usize),
    Swap(usize, usize),
    Truncate(usize),
    Extend(u64, u16),
    Retain(u8),
    Drain(usize, usize),
    Evacuate,
    IterSum,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let i = || usize::arbitrary(&mut Gen::new(1 << 21));
        match u8::arbitrary(g) % 13 {
            0 => Op::Push(u64::arbitrary(g)),
            1 => Op::Pop,
            2 => Op::Set(i(), u64::arbitrary(g)),
            3 => Op::Get(i()),
            4 => Op::Insert(i(), u64::arbitrary(g)),
            5 => Op::Remove(i()),
            6 => Op::Swap(i(), i()),
            7 => Op::Truncate(i() | (1 << 18)),
            8 => Op::Extend(u64::arbitrary(g), u16::arbitrary(g)),
            9 => Op::Retain(u8::arbitrary(g) % 7 + 2),
            10 => Op::Drain(i(), usize::arbitrary(g) % 3000),
            11 => Op::Evacuate,
            _ => Op::IterSum,
        }
    }
}

fn run_model(ops: Vec<Op>) -> bool {
    let rt = small_rt();
    let mut v = RemVec::new_in(&rt);
    let mut m: Vec<u64> = (0..BASE)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    v.extend(m.iter().copied());
    rt.evacuate_now();
    for op in ops {
        let n = m.len();
        let t0 = std::time::Instant::now();
        let dbg = format!("{op:?}");
        match op {
            Op::Push(x) => {
                v.push(x);
                m.push(x);
            }
            Op::Pop => assert_eq!(v.pop(), m.pop()),
            Op::Set(i, x) if n > 0 => {
                assert_eq!(v.set(i % n, x), std::mem::replace(&mut m[i % n], x))
            }
            Op::Get(i) => assert_eq!(v.get_cloned(i % (n + 1)), m.get(i % (n + 1)).copied()),
            Op::Insert(i, x) => {
                v.insert(i % (n + 1), x);
                m.insert(i % (n + 1), x);
            }
            Op::Remove(i) if n > 0 => assert_eq!(v.remove(i % n), m.remove(i % n)),
            Op::Swap(a, b) if n > 0 => {
                v.swap(a % n, b % n);
                m.swap(a % n, b % n);
            }
            Op::Truncate(k) => {
                v.truncate(k);
                m.truncate(k);
            }
            Op::Extend(x, k) => {
                let more = (0..k as u64).map(|j| x.wrapping_add(j));
                v.extend(more.clone());
                m.extend(more);
            }
            Op::Retain(k) => {
                v.retain(|x| x % k as u64 != 0);
                m.retain(|x| x % k as u64 != 0);
            }
            Op::Drain(a, k) => {
                let a = a % (n + 1);
                let b = (a + k).min(n);
                let got: Vec<u64> = v.drain(a..b).collect();
                assert_eq!(got, m.drain(a..b).collect::<Vec<_>>());
            }
            Op::Evacuate => rt.evacuate_now(),
            Op::IterSum => {
                let s = v.iter().fold(0u64, |a, x| a.wrapping_add(x));
                assert_eq!(s, m.iter().fold(0u64, |a, x| a.wrapping_add(*x)));
            }
            _ => {}
        }
        if t0.elapsed().as_millis() > 200 {
            eprintln!("SLOW {dbg} {:?} {}", t0.elapsed(), rt.stats());
        }
        assert_eq!(v.len(), m.len());
    }
    rt.evacuate_now();
    assert!(v == m, "contents differ");
    let s = rt.stats();
    assert!(
        s.write_backs > 0 && s.fetches > 0,
        "no evacuation happened: {s}"
    );
    true
}

#[test]
fn model_against_vec() {
    let _serial = serial();
    QuickCheck::new()
        .tests(8)
        .max_tests(8)
        .quickcheck(run_model as fn(Vec<Op>) -> bool);
}

#[test]
fn iterators_and_traits() {
    let _serial = serial();
    let rt = small_rt();
    let mut v = RemVec::new_in(&rt);
    v.extend(0..BASE);
    rt.evacuate_now();
    assert!(v.local_chunks().0 < v.local_chunks().1 / 2);
    assert_eq!(v.iter().count(), BASE as usize);
    assert_eq!(v.iter_nt().sum::<u64>(), BASE * (BASE - 1) / 2);
    let mut it = v.iter();
    assert_eq!(it.len(), BASE as usize);
    assert_eq!(it.nth(1000), Some(1000));
    assert_eq!(it.next(), Some(1001));
    let c = v.clone();
    assert!(c == v);
    let from_vec: RemVec<u64> = RemVec::from((0..BASE).collect::<Vec<_>>());
    assert!(from_vec == v);
    assert_eq!(v.into_iter().rev_sum(), BASE * (BASE - 1) / 2);
    let d: RemVec<u8> = RemVec::default();
    assert_eq!(format!("{d:?}"), "[]");
    let s: RemVec<String> = ["x", "y"].iter().map(|s| s.to_string()).collect();
    assert_eq!(format!("{s:?}"), r#"["x", "y"]"#);
    assert!(rt.stats().fetches > 0);
}

trait RevSum {
    fn rev_sum(self) -> u64;
}
impl<I: Iterator<Item = u64>> RevSum for I {
    fn rev_sum(self) -> u64 {
        self.sum()
    }
}

#[test]
fn strings_survive_evacuation() {
    let _serial = serial();
    let rt = small_rt();
    let mut v = RemVec::new_in(&rt);
    let m: Vec<String> = (0..60_000).map(|i| format!("string number {i}")).collect();
    v.extend(m.iter().cloned());
    rt.evacuate_now();
    assert!(v == m);
    v.for_each_mut(|s| s.push('!'));
    rt.evacuate_now();
    let scope = Scope::new();
    assert_eq!(
        v.get(59_999, &scope).map(String::as_str),
        Some("string number 59999!")
    );
    assert!(rt.stats().write_backs > 0);
}

#[test]
fn shared_between_threads() {
    let _serial = serial();
    let rt = small_rt();
    let mut v = RemVec::new_in(&rt);
    v.extend(0..BASE);
    let v = &v;
    std::thread::scope(|s| {
        for t in 0..3u64 {
            s.spawn(move || {
                let mut x = t.wrapping_mul(7919) + 1;
                for _ in 0..50_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = (x % BASE) as usize;
                    // One scope per miss: a fetch inside an open scope cannot wait for the
                    // evacuator (only a new scope does), and three threads fetching 4 KiB
                    // inline chunks under one long scope each outrun it at a 1 MiB budget.
                    assert_eq!(v.get(k, &Scope::new()), Some(&(k as u64)));
                }
                assert_eq!(v.iter().sum::<u64>(), BASE * (BASE - 1) / 2);
            });
        }
        s.spawn(|| {
            for _ in 0..5 {
                rt.evacuate_now();
            }
        });
    });
    assert!(rt.stats().write_backs > 0);
}

// ----- offloaded operations: remote == local -------------------------------------------------

/// A vector that is partly evacuated and partly changed since (so offloads must sync).
fn mixed<T: Numeric + Copy>(rt: &Runtime, xs: &[T], chunk_bytes: usize) -> RemVec<T> {
    let mut v = RemVec::with_chunk_bytes_in(chunk_bytes, rt);
    v.extend(xs.iter().copied());
    rt.evacuate_now();
    let n = v.len();
    for i in (0..n).step_by(7) {
        let x = v.get_cloned(n - 1 - i).unwrap();
        v.set(i, x);
    }
    v.extend(xs.iter().take(10).copied());
    v
}

fn check_aggs<T: Numeric + Copy>(v: &RemVec<T>) {
    for agg in [
        Aggregate::Sum,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Mean,
        Aggregate::Count,
        Aggregate::Median,
    ] {
        let l = v.try_aggregate(agg, Exec::Local).unwrap();
        let r = v.try_aggregate(agg, Exec::Remote).unwrap();
        let a = v.try_aggregate(agg, Exec::Auto).unwrap();
        let bits = |x: &Option<aifm_collections::vec::AggValue<T>>| format!("{x:?}");
        assert_eq!(bits(&l), bits(&r), "{agg:?}");
        assert_eq!(bits(&l), bits(&a), "{agg:?}");
    }
}

fn check_group<T: Numeric + Copy, K: GroupKey + Copy>(v: &RemVec<T>, k: &RemVec<K>) {
    for agg in [
        Aggregate::Sum,
        Aggregate::Min,
        Aggregate::Mean,
        Aggregate::Median,
        Aggregate::Count,
    ] {
        let l = v.try_group_by(k, agg, Exec::Local).unwrap();
        let r = v.try_group_by(k, agg, Exec::Remote).unwrap();
        assert_eq!(format!("{l:?}"), format!("{r:?}"), "{agg:?}");
    }
}

fn offload_case(xs: Vec<f64>, ys: Vec<i32>, keys: Vec<u8>) -> bool {
    let rt = small_rt();
    let fv = mixed(&rt, &xs, 64);
    let iv = mixed(&rt, &ys, 48);
    check_aggs(&fv);
    check_aggs(&iv);
    let n = fv.len();
    let kv: RemVec<u8> = {
        let mut k = RemVec::with_chunk_bytes_in(32, &rt);
        k.extend((0..n).map(|i| keys.get(i % keys.len().max(1)).copied().unwrap_or(0) % 5));
        k
    };
    check_group(&fv, &kv);
    // gather, permute, copy
    let idx: RemVec<u64> = {
        let mut v = RemVec::with_chunk_bytes_in(40, &rt);
        v.extend(
            ys.iter()
                .map(|&y| (y.unsigned_abs() as u64) % n.max(1) as u64)
                .take(if n == 0 { 0 } else { ys.len() }),
        );
        v
    };
    rt.evacuate_now();
    let gl = fv.try_gather(&idx, Exec::Local).unwrap();
    let gr = fv.try_gather(&idx, Exec::Remote).unwrap();
    assert!(gl.iter().map(f64::to_bits).eq(gr.iter().map(f64::to_bits)));
    let mut perm: Vec<u64> = (0..n as u64).collect();
    perm.sort_by_key(|&i| (i.wrapping_mul(0x9e37_79b9) ^ ys.len() as u64) % 1000);
    let mut pv = RemVec::new_in(&rt);
    pv.extend(perm.iter().copied());
    let pl = fv.try_permute(&pv, Exec::Local).unwrap();
    let pr = fv.try_permute(&pv, Exec::Remote).unwrap();
    assert!(pl.iter().map(f64::to_bits).eq(pr.iter().map(f64::to_bits)));
    let (a, b) = (n / 3, n - n / 4);
    let cl = fv.try_copy_range(a..b, Exec::Local).unwrap();
    let cr = fv.try_copy_range(a..b, Exec::Remote).unwrap();
    assert!(cl.iter().map(f64::to_bits).eq(cr.iter().map(f64::to_bits)));
    assert_eq!(cl.len(), b - a);
    true
}

#[test]
fn offloads_equal_local_fallbacks() {
    let _serial = serial();
    QuickCheck::new()
        .tests(40)
        .quickcheck(offload_case as fn(Vec<f64>, Vec<i32>, Vec<u8>) -> bool);
}

#[test]
fn offload_at_scale_with_evacuation() {
    let _serial = serial();
    let rt = small_rt();
    let n = 600_000u64; // 4.8 MB of f64
    let mut v = RemVec::new_in(&rt);
    v.extend((0..n).map(|i| ((i * 7919) % 10_007) as f64 * 0.25));
    let mut k = RemVec::new_in(&rt);
    k.extend((0..n).map(|i| (i % 24) as u8));
    rt.evacuate_now();
    let before = rt.stats();
    assert!(before.write_backs > 0);
    let (l, a) = (
        v.try_sum(Exec::Local).unwrap(),
        v.try_sum(Exec::Auto).unwrap(),
    );
    assert_eq!(l.to_bits(), a.to_bits());
    let med_l = v.try_group_by(&k, Aggregate::Median, Exec::Local).unwrap();
    let med_r = v.try_group_by(&k, Aggregate::Median, Exec::Remote).unwrap();
    assert_eq!(med_l, med_r);
    assert_eq!(med_l.len(), 24);
    let mut idx = RemVec::new_in(&rt);
    idx.extend((0..n).filter(|i| i % 1000 == 0));
    let g = v.try_gather(&idx, Exec::Remote).unwrap();
    assert_eq!(g.len(), 600);
    assert_eq!(g.get_cloned(3), v.get_cloned(3000));
}

#[test]
#[should_panic(expected = "out of bounds")]
fn gather_out_of_bounds_panics_remotely_too() {
    let _serial = serial();
    let v: RemVec<u32> = (0..10).collect();
    let idx: RemVec<u64> = [3, 10].into_iter().collect();
    let _ = v.try_gather(&idx, Exec::Remote);
}

#[test]
#[should_panic(expected = "not a permutation")]
fn permute_checks_its_argument() {
    let _serial = serial();
    let v: RemVec<u32> = (0..10).collect();
    let idx: RemVec<u64> = (0..10).map(|i| i / 2).collect();
    let _ = v.try_permute(&idx, Exec::Remote);
}

#[test]
fn scans_prefetch_when_far_memory_is_remote() {
    let _serial = serial();
    let backend = aifm_core::backend::EmbeddedBackend::new()
        .with_latency(std::time::Duration::from_micros(20));
    let rt = Runtime::builder()
        .local_memory(1 << 20)
        .backend(Faulty::new(backend))
        .build()
        .unwrap();
    let mut v = RemVec::new_in(&rt);
    v.extend(0..BASE);
    rt.evacuate_now();
    for _ in 0..2 {
        assert_eq!(v.iter().sum::<u64>(), BASE * (BASE - 1) / 2);
        assert_eq!(
            v.iter_nt().fold(0, |a, x| a ^ x),
            (0..BASE).fold(0, |a, x| a ^ x)
        );
    }
    // Strided gets trip the detector, whose windows go to the helpers.
    for i in (0..BASE as usize).step_by(v.chunk_len() * 3).take(100) {
        assert_eq!(v.get(i, &Scope::new()), Some(&(i as u64)));
    }
    let s = rt.stats();
    assert!(s.fetches > 0 && s.write_backs > 0, "{s}");
}
