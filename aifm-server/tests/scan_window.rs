//! Whether a `RemVec` scan keeps a prefetch window is a property of the backend, not of its
//! name: none over an in-process store however it is wrapped (helper threads would only
//! compete for the cores), one over a real server and over a store that simulates a network.

mod common;

use aifm_collections::RemVec;
use aifm_core::backend::faulty::Faulty;
use aifm_core::backend::{Backend, EmbeddedBackend};
use aifm_core::Runtime;
use common::ServerProc;
use std::sync::Arc;
use std::time::Duration;

/// 4 MiB of `u64`, twice the runtime's budget.
const N: u64 = 1 << 19;

/// Prefetches a forward scan of a vector pushed out to far memory issued.
fn prefetched_by_a_scan(rt: &Runtime) -> u64 {
    let v: RemVec<u64> = RemVec::from_iter_in(0..N, rt);
    rt.evacuate_now();
    let before = rt.stats().prefetch_issued;
    assert_eq!(v.iter_nt().count() as u64, N);
    rt.stats().prefetch_issued - before
}

fn runtime_over(far: impl Backend) -> Runtime {
    Runtime::builder()
        .local_memory(2 << 20)
        .backend(far)
        .build()
        .unwrap()
}

#[test]
fn a_wrapped_in_process_store_gets_no_window() {
    let far = Arc::new(Faulty::new(EmbeddedBackend::new()));
    assert!(
        far.latency_free(),
        "a wrapper forwards the inner store's answer"
    );
    let rt = runtime_over(far);
    assert_eq!(prefetched_by_a_scan(&rt), 0);
}

#[test]
fn a_store_that_simulates_a_network_gets_a_window() {
    let far = Faulty::new(EmbeddedBackend::new().with_latency(Duration::from_micros(20)));
    assert!(!far.latency_free());
    let rt = runtime_over(far);
    assert!(prefetched_by_a_scan(&rt) > 0);
}

#[test]
fn a_real_server_gets_a_window() {
    let server = ServerProc::start(&[]);
    assert!(!server.client().latency_free());
    let rt = server.runtime(2 << 20);
    assert!(prefetched_by_a_scan(&rt) > 0);
}
