//! A striped `RemVec` on three real servers (replication 1 and 2) against the same data on one
//! server and in a local `Vec`: every aggregate and gather-type offload gives the same answer,
//! under a local budget small enough that most chunks live in far memory; the chunks really
//! spread over all three servers; and with replication 2 the answers survive a SIGKILL.

mod common;

use aifm_collections::testing::XorShift;
use aifm_collections::vec::{AggValue, Aggregate};
use aifm_collections::{Exec, RemVec};
use aifm_core::backend::replicated::ReplicatedBackend;
use aifm_core::backend::Backend;
use aifm_core::{Placement, Runtime};
use common::ServerProc;
use std::collections::BTreeMap;
use std::sync::Arc;

/// 6 MiB of `i64` against 2 MiB of local memory.
const N: usize = 768 << 10;
/// Length of the random index vector of the gather.
const PICKS: usize = 50_000;

/// The data and every answer computed on a plain `Vec`.
struct Model {
    values: Vec<i64>,
    keys: Vec<u8>,
    picks: Vec<u64>,
}

impl Model {
    fn new() -> Model {
        let mut rng = XorShift::new(0x5712_1bed);
        let values: Vec<i64> = (0..N)
            .map(|_| (rng.next_u64() % 2_000_001) as i64 - 1_000_000)
            .collect();
        let keys: Vec<u8> = (0..N).map(|_| (rng.next_u64() % 7) as u8).collect();
        let picks: Vec<u64> = (0..PICKS).map(|_| rng.next_u64() % N as u64).collect();
        Model {
            values,
            keys,
            picks,
        }
    }

    fn aggregate(xs: &[i64], agg: Aggregate) -> Option<AggValue<i64>> {
        let sum: i128 = xs.iter().map(|&x| i128::from(x)).sum();
        let mut sorted = xs.to_vec();
        sorted.sort_unstable();
        Some(match agg {
            Aggregate::Sum => AggValue::Sum(sum),
            Aggregate::Min => AggValue::Min(*xs.iter().min()?),
            Aggregate::Max => AggValue::Max(*xs.iter().max()?),
            Aggregate::Count => AggValue::Count(xs.len() as u64),
            Aggregate::Mean => AggValue::Mean(sum as f64 / xs.len() as f64),
            Aggregate::Median => AggValue::Median(*sorted.get((xs.len().checked_sub(1)?) / 2)?),
        })
    }

    fn groups(&self, agg: Aggregate) -> BTreeMap<u8, AggValue<i64>> {
        let mut by: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        for (&k, &x) in self.keys.iter().zip(&self.values) {
            by.entry(k).or_default().push(x);
        }
        by.into_iter()
            .map(|(k, xs)| (k, Model::aggregate(&xs, agg).unwrap()))
            .collect()
    }
}

const AGGS: [Aggregate; 6] = [
    Aggregate::Sum,
    Aggregate::Min,
    Aggregate::Max,
    Aggregate::Count,
    Aggregate::Mean,
    Aggregate::Median,
];

/// The model's data as (values, keys, picks) vectors in `rt`, placed as asked.
struct Vectors {
    values: RemVec<i64>,
    keys: RemVec<u8>,
    picks: RemVec<u64>,
}

impl Vectors {
    fn new(rt: &Runtime, placement: Placement, m: &Model) -> Vectors {
        let mut values = RemVec::new_in(rt).with_placement(placement);
        values.extend(m.values.iter().copied());
        let mut keys = RemVec::new_in(rt).with_placement(placement);
        keys.extend(m.keys.iter().copied());
        let mut picks = RemVec::new_in(rt).with_placement(placement);
        picks.extend(m.picks.iter().copied());
        rt.evacuate_now();
        Vectors {
            values,
            keys,
            picks,
        }
    }

    /// Every offload (remote, and as `Auto` decides) against the model.
    fn check(&self, m: &Model, what: &str) {
        let v = &self.values;
        for exec in [Exec::Remote, Exec::Auto] {
            for agg in AGGS {
                assert_eq!(
                    v.try_aggregate(agg, exec).unwrap(),
                    Model::aggregate(&m.values, agg),
                    "{what}: {agg:?} ({exec:?})"
                );
            }
            for agg in [Aggregate::Sum, Aggregate::Count, Aggregate::Max] {
                assert_eq!(
                    v.try_group_by(&self.keys, agg, exec).unwrap(),
                    m.groups(agg),
                    "{what}: group-by {agg:?} ({exec:?})"
                );
            }
        }
        let gathered = v.try_gather(&self.picks, Exec::Remote).unwrap();
        let want: Vec<i64> = m.picks.iter().map(|&i| m.values[i as usize]).collect();
        assert!(gathered == want, "{what}: gather");
        let (a, b) = (N / 3 + 17, 2 * N / 3 + 5);
        let copy = v.try_copy_range(a..b, Exec::Remote).unwrap();
        assert!(copy == m.values[a..b], "{what}: copy range");
        let n = 40_000;
        let head = v.try_copy_range(..n, Exec::Remote).unwrap();
        let mut perm: RemVec<u64> =
            RemVec::new_in(v.runtime()).with_placement(self.values.placement());
        perm.extend((0..n as u64).map(|i| (i * 7919) % n as u64));
        let permuted = head.try_permute(&perm, Exec::Remote).unwrap();
        let want: Vec<i64> = (0..n).map(|i| m.values[(i * 7919) % n]).collect();
        assert!(permuted == want, "{what}: permute");
    }
}

fn replicated(servers: &[ServerProc], replicas: usize) -> Arc<ReplicatedBackend> {
    Arc::new(common::replicated(servers).with_replicas(replicas))
}

#[test]
fn striped_offloads_equal_one_server_and_local_and_survive_a_kill() {
    let m = Model::new();

    // One server, and the local code.
    let single = ServerProc::start(&[]);
    for placement in [Placement::Whole, Placement::Striped] {
        let rt1 = common::small_runtime(single.client());
        let one = Vectors::new(&rt1, placement, &m);
        assert!(rt1.stats().write_backs > 0);
        one.check(&m, &format!("one server, {placement:?}"));
        for agg in AGGS {
            assert_eq!(
                one.values.try_aggregate(agg, Exec::Local).unwrap(),
                Model::aggregate(&m.values, agg),
                "local {agg:?}"
            );
        }
    }

    let mut servers: Vec<ServerProc> = (0..3).map(|_| ServerProc::start(&[])).collect();
    for replicas in [1, 2] {
        let far = replicated(&servers, replicas);
        let rt = common::small_runtime(far.clone());
        let striped = Vectors::new(&rt, Placement::Striped, &m);
        assert!(rt.stats().write_backs > 0, "evacuations happened");
        striped.check(&m, &format!("striped, r = {replicas}"));
        // Every server holds a fair part of the data (6 MiB values + 0.75 MiB keys, each
        // stored `replicas` times), none all of it.
        let held: Vec<u64> = far.servers().iter().map(|s| s.stored_bytes()).collect();
        let total: u64 = held.iter().sum();
        assert!(
            held.iter().all(|&h| h * 6 > total && h * 6 < total * 3),
            "r = {replicas}: uneven {held:?}"
        );
        if replicas == 2 {
            servers[1].kill(); // SIGKILL
            striped.check(&m, "striped, r = 2, one server killed");
            let s = far.stats();
            assert_eq!((s.live, s.dead), (2, 1));
            assert!(s.failovers >= 1);
        }
    }
}
