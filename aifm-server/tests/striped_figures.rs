//! Figures for the striped `RemVec`: the sum offload over 64 MiB of `u64` on one
//! server, whole on three servers, and striped over three servers (replication 1 and 2).
//! Not a test: run it by hand.
//!
//! ```text
//! cargo test --release -p aifm-server --test striped_figures -- --ignored --nocapture
//! ```

mod common;

use aifm_collections::{Exec, RemVec};
use aifm_core::backend::Backend;
use aifm_core::{Placement, Runtime};
use std::time::Instant;

/// 64 MiB of `u64`.
const N: u64 = 8 << 20;

/// Median of three timed sum offloads (ms), after one untimed offload that writes the chunks
/// still local to far memory.
fn sum_ms(far: impl Backend, placement: Placement) -> (f64, f64) {
    let rt = Runtime::builder()
        .local_memory(16 << 20)
        .backend(far)
        .build()
        .unwrap();
    let mut v: RemVec<u64> = RemVec::new_in(&rt).with_placement(placement);
    v.extend(0..N);
    rt.evacuate_now(); // let the write-backs settle before timing
    let want = u128::from(N) * u128::from(N - 1) / 2;
    assert_eq!(v.try_sum(Exec::Remote).unwrap(), want);
    let mut times: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(v.try_sum(Exec::Remote).unwrap(), want);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let t = Instant::now();
    assert_eq!(v.try_sum(Exec::Local).unwrap(), want);
    (times[1], t.elapsed().as_secs_f64() * 1e3)
}

#[test]
#[ignore = "figures, run by hand"]
fn striped_sum_figures() {
    let servers = common::start_servers(3);
    let several = |r: usize| common::replicated(&servers).with_replicas(r);
    let (ms, local) = sum_ms(servers[0].client(), Placement::Whole);
    println!("1 server:                  sum offload {ms:7.1} ms (local scan {local:7.1} ms)");
    for r in [1, 2] {
        let (ms, local) = sum_ms(several(r), Placement::Whole);
        println!(
            "3 servers, r = {r}, whole:   sum offload {ms:7.1} ms (local scan {local:7.1} ms)"
        );
        let (ms, local) = sum_ms(several(r), Placement::Striped);
        println!(
            "3 servers, r = {r}, striped: sum offload {ms:7.1} ms (local scan {local:7.1} ms)"
        );
    }
}
