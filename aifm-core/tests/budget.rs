//! The budget is for objects: a program whose objects fit leaves nothing in far memory, and
//! under pressure the heap stays full of live objects (not of headroom or dead space).

use aifm_core::{RemBox, Runtime, Scope};

/// Bytes one `RemBox<[u64; 64]>` is charged: its 16-byte header and 512 bytes of value.
const CHARGE: usize = 16 + 512;

#[test]
fn objects_that_fit_the_budget_stay_local() {
    let budget = 16 << 20;
    let rt = Runtime::builder().local_memory(budget).build().unwrap();
    // 85 % of the budget in objects (headers included): a small heap keeps some regions
    // half filled in its allocation lanes, which count as used.
    let n = budget * 85 / 100 / CHARGE;
    let objs: Vec<RemBox<[u64; 64]>> = (0..n as u64)
        .map(|i| RemBox::new_in([i; 64], &rt))
        .collect();
    let mut s = Scope::new();
    for _ in 0..3 {
        for (i, o) in objs.iter().enumerate() {
            assert_eq!(o.deref(&s)[7], i as u64);
            s.renew();
        }
    }
    let st = rt.stats();
    assert_eq!(st.write_backs, 0, "{st}");
    assert!(st.local_total() as f64 >= 0.84 * budget as f64, "{st}");
}

/// With one thread allocating, only its lane holds a half-filled region: a 64-region heap
/// filled to 90 % must not start evacuating because other lanes *could* hold regions (the
/// old rule reserved a region for every lane, 11 % of this heap, and evicted at once).
#[test]
fn one_allocating_thread_fills_nine_tenths_of_the_budget_without_far_traffic() {
    let budget = 64 << 20;
    let rt = Runtime::builder()
        .local_memory(budget)
        .region_size(1 << 20)
        .build()
        .unwrap();
    let n = budget * 90 / 100 / CHARGE;
    let objs: Vec<RemBox<[u64; 64]>> = (0..n as u64)
        .map(|i| RemBox::new_in([i; 64], &rt))
        .collect();
    // The evacuator looks at the heap every 10 ms: give it several looks.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let st = rt.stats();
    assert_eq!(st.evacuation_rounds, 0, "{st}");
    assert_eq!(st.write_backs, 0, "{st}");
    assert!(objs.iter().all(|o| o.is_local()));
}

#[test]
fn under_pressure_the_heap_stays_full_of_live_objects() {
    for data_factor in [2usize, 4] {
        let budget = 16 << 20;
        let rt = Runtime::builder().local_memory(budget).build().unwrap();
        let n = data_factor * budget / CHARGE;
        let objs: Vec<RemBox<[u64; 64]>> = (0..n as u64)
            .map(|i| RemBox::new_in([i; 64], &rt))
            .collect();
        // Random reads over everything: a steady state of fetches and evictions.
        let mut x = 88172645463325252u64;
        let mut fills = Vec::new();
        let mut s = Scope::new();
        for step in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % n as u64) as usize;
            assert_eq!(objs[i].deref(&s)[63], i as u64);
            if step % 64 == 0 {
                s.renew();
            }
            if step % 10_000 == 9_999 {
                fills.push(rt.stats().local_total() as f64 / budget as f64);
            }
        }
        fills.sort_by(f64::total_cmp);
        let median = fills[fills.len() / 2];
        let st = rt.stats();
        eprintln!("data {data_factor}x budget: median fill {median:.3}, fills {fills:?}\n{st}");
        assert!(st.write_backs > 0 && st.fetches > 0, "{st}");
        // Quiet runs give 0.87-0.93 (docs/PERFORMANCE.md); the margin is for a loaded CI
        // machine, where the evacuator runs behind. The previous thresholds capped it at 0.78.
        assert!(
            median >= 0.80,
            "median fill {median:.3} at {data_factor}x: {st}"
        );
    }
}
