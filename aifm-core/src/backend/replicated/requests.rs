//! Requests: the [`Backend`] implementation of [`ReplicatedBackend`].
//!
//! Each request is fanned out over the live members of its objects' sets as the parent
//! module's essay describes: writes, removes and computes to every member in use (acknowledged
//! once all of them answered), reads to the first live member with fail-over to the next, and
//! batches grouped per server, every server's piece started before the first answer is
//! awaited (pipelined on the calling thread, no helper threads). Mutations hold the rebuild
//! gate shared, so a replacement's rebuild batch never interleaves with them.

use super::shards::{run_sharded, ShardTargets};
use super::{is_failure, Member, ReplicaSet, ReplicatedBackend, ReplicatedStats, State};
use crate::backend::{
    Backend, ComputeInFlight, InFlight, ManyInFlight, Placement, ReadInFlight, OBJECT_STORE,
};
use crate::error::{Error, Result};
use crate::sync::MutexExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

/// The outcome of reading a batch from the live servers: per key, `None` when no live
/// server holds a copy, else what the server answered.
pub(super) type LiveReads = Vec<Option<Option<Vec<u8>>>>;

/// One server's part of a batched read: the member asked, the key indices, its answer.
pub(super) type GroupRead = (Member, Vec<usize>, Result<Vec<Option<Vec<u8>>>>);

impl ReplicatedBackend {
    /// Groups item indices by server in use (every live or rebuilding member of each item's
    /// set). Fails when an item has no such member.
    pub(super) fn groups_all(&self, sets: &[ReplicaSet]) -> Result<Vec<(Member, Vec<usize>)>> {
        let members: Vec<Member> = (0..self.slots.len()).map(|i| self.member(i)).collect();
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (item, set) in sets.iter().enumerate() {
            let mut any = false;
            for &s in set.iter().filter(|&&s| members[s].state != State::Dead) {
                groups.entry(s).or_default().push(item);
                any = true;
            }
            if !any {
                return Err(self.lost(set));
            }
        }
        Ok(groups
            .into_iter()
            .map(|(s, items)| (members[s].clone(), items))
            .collect())
    }

    /// Runs `op` on every server of `set` in use (rank order); returns the first success, or
    /// the first answer that is not a failure, or `lost`.
    pub(super) fn on_all<T>(
        &self,
        set: &[usize],
        op: impl Fn(&dyn Backend) -> Result<T>,
    ) -> Result<T> {
        let mut first: Option<Result<T>> = None;
        for &s in set {
            let m = self.member(s);
            if m.state == State::Dead {
                continue;
            }
            match op(&*m.server) {
                Err(e) if is_failure(&e) => self.condemn(&m, e),
                Err(e) => return Err(e),
                Ok(v) => {
                    first.get_or_insert(Ok(v));
                }
            }
        }
        first.unwrap_or_else(|| Err(self.lost(set)))
    }

    /// Reads each group's keys (`groups`: server index → indices into `keys`) from that
    /// member, every request sent before the first answer is awaited. Each group comes back
    /// with its answer, whose length matches the group's.
    ///
    /// # Errors
    /// [`Error::Protocol`] when a server answers a different number of values than it was
    /// asked for.
    pub(super) fn read_groups(
        &self,
        ds: u32,
        keys: &[&[u8]],
        groups: BTreeMap<usize, Vec<usize>>,
        members: &[Member],
    ) -> Result<Vec<GroupRead>> {
        let started: Vec<(Member, Vec<usize>, ManyInFlight)> = groups
            .into_iter()
            .map(|(s, ks)| {
                let m = members[s].clone();
                let asked: Vec<&[u8]> = ks.iter().map(|&k| keys[k]).collect();
                let call = m.server.begin_read_many(ds, &asked);
                (m, ks, call)
            })
            .collect();
        started
            .into_iter()
            .map(|(m, ks, call)| match call.wait() {
                Ok(vs) if vs.len() != ks.len() => Err(Error::Protocol(format!(
                    "{} answered {} values for {} keys",
                    m.server.name(),
                    vs.len(),
                    ks.len()
                ))),
                r => Ok((m, ks, r)),
            })
            .collect()
    }

    /// Reads `keys` (whose replica sets are `sets`), each from the first live member of its
    /// set, failing over to the next member when a server fails. Returns the values (`None`
    /// for a key no live server holds) and which keys failed over.
    ///
    /// # Errors
    /// A server's answer that is not a failure.
    pub(super) fn read_live(
        &self,
        ds: u32,
        keys: &[&[u8]],
        sets: &[ReplicaSet],
    ) -> Result<(LiveReads, Vec<bool>)> {
        let mut out: Vec<Option<Option<Vec<u8>>>> = vec![None; keys.len()];
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        let mut failed_over = vec![false; keys.len()];
        while !pending.is_empty() {
            // Each pending key goes to the first live member of its set.
            let members: Vec<Member> = (0..self.slots.len()).map(|i| self.member(i)).collect();
            let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for &k in &pending {
                if let Some(&s) = sets[k].iter().find(|&&s| members[s].state == State::Live) {
                    groups.entry(s).or_default().push(k);
                }
            }
            pending.clear();
            for (m, ks, r) in self.read_groups(ds, keys, groups, &members)? {
                match r {
                    Ok(vs) => {
                        for (k, v) in ks.into_iter().zip(vs) {
                            out[k] = Some(v);
                        }
                    }
                    Err(e) if is_failure(&e) => {
                        self.condemn(&m, e);
                        self.failovers.fetch_add(1, Ordering::Relaxed);
                        for &k in &ks {
                            failed_over[k] = true;
                        }
                        pending.extend(ks);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok((out, failed_over))
    }
}

/// The members as one sharded request found them: a failure condemns the server that was
/// asked, never a replacement installed since.
struct Snapshot<'a> {
    far: &'a ReplicatedBackend,
    members: Vec<Member>,
}

impl ShardTargets for Snapshot<'_> {
    fn live(&self, s: usize) -> bool {
        self.members[s].state == State::Live && self.far.readable(s)
    }
    fn failed(&self, s: usize, e: Error) {
        self.far.condemn(&self.members[s], e);
        self.far.failovers.fetch_add(1, Ordering::Relaxed);
    }
    fn lost(&self, set: &[usize]) -> Error {
        self.far.lost(set)
    }
}

/// The requests, blocking: each fans out over the live members of its replica sets and
/// fails over; the [`Backend`] implementation below hands their results back finished.
impl ReplicatedBackend {
    fn read_now(&self, ds: u32, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(code) = self.code_for(ds) {
            return self.ec_read(code, key);
        }
        let set = self.placement(ds, key);
        let mut degraded = self.any_unreadable(&set);
        for &s in &set {
            let m = self.member(s);
            if m.state != State::Live {
                continue;
            }
            match m.server.read(ds, key) {
                Ok(v) => {
                    if degraded {
                        self.degraded_reads.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(v);
                }
                Err(e) if is_failure(&e) => {
                    self.condemn(&m, e);
                    self.failovers.fetch_add(1, Ordering::Relaxed);
                    degraded = true;
                }
                Err(e) => return Err(e),
            }
        }
        Err(self.lost(&set))
    }

    fn write_now(&self, ds: u32, key: &[u8], value: &[u8]) -> Result<()> {
        if let Some(code) = self.code_for(ds) {
            return self.ec_write(code, key, value);
        }
        let _gate = self.mutation();
        self.on_all(&self.placement(ds, key), |b| b.write(ds, key, value))
    }

    /// Whether the object existed, as the live members say (a replacement being rebuilt may
    /// not have its copy yet).
    fn remove_now(&self, ds: u32, key: &[u8]) -> Result<bool> {
        let _gate = self.mutation();
        let set = self.placement(ds, key);
        let (mut live, mut rebuilding) = (None, None);
        for &s in &set {
            let m = self.member(s);
            let existed = match m.state {
                State::Dead => continue,
                State::Live => &mut live,
                State::Rebuilding => &mut rebuilding,
            };
            match m.server.remove(ds, key) {
                Err(e) if is_failure(&e) => self.condemn(&m, e),
                Err(e) => return Err(e),
                Ok(b) => *existed.get_or_insert(false) |= b,
            }
        }
        live.or(rebuilding).ok_or_else(|| self.lost(&set))
    }

    fn read_many_now(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        if let Some(code) = self.code_for(ds) {
            return self.ec_read_many(code, keys);
        }
        let sets = self.sets(ds, keys.iter());
        let (out, failed_over) = self.read_live(ds, keys, &sets)?;
        let mut values = Vec::with_capacity(keys.len());
        for (k, v) in out.into_iter().enumerate() {
            let Some(v) = v else {
                return Err(self.lost(&sets[k]));
            };
            if failed_over[k] || self.any_unreadable(&sets[k]) {
                self.degraded_reads.fetch_add(1, Ordering::Relaxed);
            }
            values.push(v);
        }
        Ok(values)
    }

    fn write_many_now(&self, ds: u32, items: &[(&[u8], &[u8])]) -> Result<()> {
        if let Some(code) = self.code_for(ds) {
            return self.ec_write_many(code, items);
        }
        let _gate = self.mutation();
        let sets = self.sets(ds, items.iter().map(|(k, _)| k));
        self.on_every_set(&sets, |m, idx| {
            let batch: Vec<(&[u8], &[u8])> = idx.iter().map(|&i| items[i]).collect();
            m.server.begin_write_many(ds, &batch)
        })
    }

    fn remove_many_now(&self, ds: u32, keys: &[&[u8]]) -> Result<()> {
        let _gate = self.mutation();
        let sets = self.sets(ds, keys.iter());
        self.on_every_set(&sets, |m, idx| {
            let batch: Vec<&[u8]> = idx.iter().map(|&i| keys[i]).collect();
            m.server.begin_remove_many(ds, &batch)
        })
    }

    /// A batched mutation: `start(member, key indices)` sends each live member the keys whose
    /// sets hold it, every request before the first answer is awaited. A failed member is
    /// condemned; the batch succeeds when every key was acknowledged by at least one member
    /// (otherwise: the first device answer that is an error, or the key's loss).
    fn on_every_set(
        &self,
        sets: &[ReplicaSet],
        start: impl Fn(&Member, &[usize]) -> InFlight<()>,
    ) -> Result<()> {
        let groups = self.groups_all(sets)?;
        let started: Vec<InFlight<()>> = groups.iter().map(|(m, idx)| start(m, idx)).collect();
        let results: Vec<_> = started.into_iter().map(InFlight::wait).collect();
        let mut acked = vec![false; sets.len()];
        let mut answer = None;
        for ((m, idx), r) in groups.into_iter().zip(results) {
            match r {
                Ok(()) => idx.into_iter().for_each(|i| acked[i] = true),
                Err(e) if is_failure(&e) => self.condemn(&m, e),
                Err(e) => {
                    answer.get_or_insert(e);
                }
            }
        }
        if let Some(e) = answer {
            return Err(e);
        }
        match acked.iter().position(|a| !a) {
            Some(i) => Err(self.lost(&sets[i])),
            None => Ok(()),
        }
    }

    /// Runs on every member in use, all at once ([`Backend::begin_compute`]: a networked
    /// server gets its request before the first answer is awaited); the first *live*
    /// member's answer is returned (a replacement being rebuilt runs the operation too, so
    /// that its copy changes as the others do, but its answer may miss objects not yet
    /// copied and is ignored). Every answer is awaited before the mutation gate is let go.
    fn compute_now(&self, ds: u32, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        let _gate = self.mutation();
        let set = self.structure_set(ds);
        let started: Vec<(Member, ComputeInFlight)> = set
            .iter()
            .map(|&s| self.member(s))
            .filter(|m| m.state != State::Dead)
            .map(|m| {
                let call = m.server.begin_compute(ds, opcode, input);
                (m, call)
            })
            .collect();
        let answers: Vec<(Member, Result<Vec<u8>>)> =
            started.into_iter().map(|(m, c)| (m, c.wait())).collect();
        let mut first: Option<Result<Vec<u8>>> = None;
        for (m, answer) in answers {
            let counts = m.state == State::Live && first.is_none();
            match answer {
                Err(e) if is_failure(&e) => {
                    self.condemn(&m, e);
                    if counts {
                        self.failovers.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // The first answer decides; a later replica's cannot undo it.
                answer if counts => first = Some(answer),
                _ => {}
            }
        }
        first.unwrap_or_else(|| Err(self.lost(&set)))
    }

    /// One request per server holding some of `keys` (the first readable member of each
    /// key's replica set), all sent before any answer is awaited, with failover; see [`crate::backend::sharded`].
    fn compute_sharded_now(
        &self,
        ds: u32,
        opcode: u32,
        keys: &[&[u8]],
        input: &[u8],
    ) -> Result<Vec<Vec<u8>>> {
        if self.code_for(ds).is_some() && !keys.is_empty() {
            return Err(Error::Unsupported(
                "the object store is erasure-coded: its servers hold fragments, not objects".into(),
            ));
        }
        let sets = self.sets(ds, keys.iter());
        let members = Snapshot {
            far: self,
            members: (0..self.slots.len()).map(|i| self.member(i)).collect(),
        };
        run_sharded(&members, &sets, |s, ks| {
            let mine: Vec<&[u8]> = ks.iter().map(|&k| keys[k]).collect();
            members.members[s]
                .server
                .begin_compute_sharded(ds, opcode, &mine, input)
        })
    }
}

/// Each request is carried out before its `begin_*` form returns (the fan-out over the
/// replicas pipelines its own requests); the bodies are the `*_now` methods above.
impl Backend for ReplicatedBackend {
    fn name(&self) -> String {
        let names: Vec<String> = self.servers().iter().map(|s| s.name()).collect();
        match &self.erasure {
            Some(c) => format!(
                "replicated(x{}, erasure {}+{}: {})",
                self.replicas,
                c.data,
                c.parity,
                names.join(", ")
            ),
            None => format!("replicated(x{}: {})", self.replicas, names.join(", ")),
        }
    }

    fn begin_read(&self, ds: u32, key: &[u8]) -> ReadInFlight {
        InFlight::done(self.read_now(ds, key))
    }

    fn begin_write(&self, ds: u32, key: &[u8], value: &[u8]) -> InFlight<()> {
        InFlight::done(self.write_now(ds, key, value))
    }

    fn begin_remove(&self, ds: u32, key: &[u8]) -> InFlight<bool> {
        InFlight::done(self.remove_now(ds, key))
    }

    fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> ComputeInFlight {
        InFlight::done(self.compute_now(ds, opcode, input))
    }

    fn begin_read_many(&self, ds: u32, keys: &[&[u8]]) -> ManyInFlight {
        InFlight::done(self.read_many_now(ds, keys))
    }

    fn begin_write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> InFlight<()> {
        InFlight::done(self.write_many_now(ds, items))
    }

    fn begin_remove_many(&self, ds: u32, keys: &[&[u8]]) -> InFlight<()> {
        InFlight::done(self.remove_many_now(ds, keys))
    }

    fn begin_compute_sharded(
        &self,
        ds: u32,
        opcode: u32,
        keys: &[&[u8]],
        input: &[u8],
    ) -> InFlight<Vec<Vec<u8>>> {
        InFlight::done(self.compute_sharded_now(ds, opcode, keys, input))
    }

    /// Records the placement first (so no object of the structure is ever placed otherwise),
    /// then constructs the structure on every live server.
    fn construct_placed(
        &self,
        ds: u32,
        device: &str,
        params: &[u8],
        placement: Placement,
    ) -> Result<()> {
        let _gate = self.mutation();
        // The object store is striped whatever is asked (and its servers refuse to make it).
        let record = ds != OBJECT_STORE;
        if record {
            self.set_placement(ds, placement);
        }
        let all: Vec<usize> = (0..self.slots.len()).collect();
        if let Err(e) = self.on_all(&all, |b| b.construct(ds, device, params)) {
            if record {
                self.set_placement(ds, Placement::Whole);
            }
            return Err(e);
        }
        self.structures
            .locked()
            .insert(ds, (device.to_string(), params.to_vec()));
        Ok(())
    }

    fn destruct(&self, ds: u32) -> Result<()> {
        let _gate = self.mutation();
        let all: Vec<usize> = (0..self.slots.len()).collect();
        let r = self.on_all(&all, |b| b.destruct(ds));
        if ds != OBJECT_STORE {
            self.set_placement(ds, Placement::Whole);
        }
        r?;
        self.structures.locked().remove(&ds);
        Ok(())
    }

    /// The union over the live servers (a replacement being rebuilt is not asked), sorted
    /// and without duplicates.
    fn keys(&self, ds: u32) -> Result<Vec<Vec<u8>>> {
        let mut all: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut any = false;
        for s in 0..self.slots.len() {
            let m = self.member(s);
            if m.state != State::Live {
                continue;
            }
            match m.server.keys(ds) {
                Ok(ks) => {
                    any = true;
                    all.extend(ks);
                }
                Err(e) if is_failure(&e) => self.condemn(&m, e),
                Err(e) => return Err(e),
            }
        }
        if !any {
            let every: Vec<usize> = (0..self.slots.len()).collect();
            return Err(self.lost(&every));
        }
        Ok(all.into_iter().collect())
    }

    /// Bytes stored on the servers in use, each replica counted.
    fn stored_bytes(&self) -> u64 {
        (0..self.slots.len())
            .map(|i| self.member(i))
            .filter(|m| m.state != State::Dead)
            .map(|m| m.server.stored_bytes())
            .sum()
    }

    fn replication(&self) -> Option<ReplicatedStats> {
        Some(self.stats())
    }
}
