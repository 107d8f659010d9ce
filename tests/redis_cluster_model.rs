//! Every collection against its std twin on a Redis Cluster of its own (3 masters, each with
//! a replica), under a tiny local budget, with one master SIGKILLed half way through a random
//! operation sequence (the cluster promotes its replica): zero divergences, nothing lost.

mod support;

use aifm_collections::testing::{Fill, Twins, XorShift};
use aifm_core::backend::redis::RedisClusterBuilder;
use aifm_core::backend::Backend;
use aifm_core::Runtime;
use std::sync::Arc;
use support::redis_cluster::TestCluster;

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
    // Enough data that most of it lives in far memory (2 MiB local).
    let mut twins = Twins::new_in(&rt, Fill::default());
    rt.evacuate_now();
    let before = rt.stats();
    assert!(before.write_backs > 0, "{before}");
    // The vector's device runs in the client: an aggregate over far chunks.
    assert_eq!(twins.vec().sum(), model_sum(twins.vec_model()));

    let victim = cluster.masters()[0];
    twins.run(&mut XorShift::new(0x5eed), OPS, 10_000, |n| {
        if n == OPS / 2 {
            cluster.kill(victim); // SIGKILL, half way through
        }
    });
    let after = rt.stats();
    assert!(
        after.write_backs > before.write_backs,
        "evacuations after the kill"
    );
    assert!(after.fetches > before.fetches, "fetches after the kill");
    twins.check();
    assert_eq!(twins.vec().sum(), model_sum(twins.vec_model()));
    // The failover happened and was ridden out: the victim's replica serves its slots.
    let s = far.stats();
    assert!(!cluster.masters().contains(&victim));
    assert_eq!(s.masters, 3, "{s:?}");
    assert_eq!(s.masters_without_replica, 1, "{s:?}");
    assert!(s.retried_rounds > 0, "{s:?}");
    assert!(far.stored_bytes() > 0);
}

fn model_sum(model: &[u64]) -> u128 {
    model.iter().map(|&x| u128::from(x)).sum()
}
