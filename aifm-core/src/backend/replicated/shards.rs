//! Sharded compute over the servers ([`Backend::compute_sharded`](crate::backend::Backend::compute_sharded)):
//! each key goes to the first live member of its replica set, one request per server, all
//! sent before any answer is awaited; the keys of a server that fails are asked again of the
//! next live member, so every key is answered exactly once (the invariants are in
//! [`crate::backend::sharded`]).

use super::membership::is_failure;
use super::ReplicaSet;
use crate::backend::InFlight;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// The servers a sharded request can use, as the grouping sees them.
pub(super) trait ShardTargets: Sync {
    /// Whether server `s` may be asked.
    fn live(&self, s: usize) -> bool;
    /// Server `s` failed with `e`: mark it dead (and count the failover).
    fn failed(&self, s: usize, e: Error);
    /// The error for a key none of whose servers is live.
    fn lost(&self, set: &[usize]) -> Error;
}

/// Groups the keys by the first live server of their set, asks every group's server at once
/// (`start(server, key indices)` sends the request; all are sent before any answer is
/// awaited), and asks the groups of servers that failed
/// again of the next live member, until every key is answered exactly once.
///
/// `sets[i]` is the rank-ordered set of servers that hold key `i`.
///
/// # Errors
/// The first answer that is not a failure; `lost` when a key has no live server left.
pub(super) fn run_sharded<T: ShardTargets>(
    targets: &T,
    sets: &[ReplicaSet],
    start: impl Fn(usize, &[usize]) -> InFlight<Vec<Vec<u8>>>,
) -> Result<Vec<Vec<u8>>> {
    let mut answers = Vec::new();
    let mut pending: Vec<usize> = (0..sets.len()).collect();
    while !pending.is_empty() {
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &k in &pending {
            match sets[k].iter().find(|&&s| targets.live(s)) {
                Some(&s) => groups.entry(s).or_default().push(k),
                None => return Err(targets.lost(&sets[k])),
            }
        }
        let groups: Vec<(usize, Vec<usize>)> = groups.into_iter().collect();
        // Every group's request is sent before the first answer is awaited.
        let started: Vec<_> = groups.iter().map(|(s, ks)| start(*s, ks)).collect();
        let results: Vec<_> = started.into_iter().map(InFlight::wait).collect();
        pending.clear();
        for ((s, ks), r) in groups.into_iter().zip(results) {
            match r {
                Ok(a) => answers.extend(a),
                Err(e) if is_failure(&e) => {
                    targets.failed(s, e);
                    pending.extend(ks);
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(answers)
}
