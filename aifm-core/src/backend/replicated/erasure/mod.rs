//! Erasure coding of the plain object store: each object as `k` data and `m` parity
//! fragments on `k + m` servers, a cheaper alternative to keeping whole copies.
//!
//! # What is coded
//!
//! Only the runtime's plain object store ([`OBJECT_STORE`], id 0) is erasure-coded, *per
//! object*: an object's fragment `i` (see [`super::fragment`] for the format) lives on the
//! `i`-th server of the object's rendezvous ranking, so its `k + m` fragments are on `k + m`
//! different servers, and any `k` of them give it back: losing `m` servers loses nothing,
//! for `(k + m) / k` times the data (1.5 for `k = 2, m = 1`) where replication 2 stores 2.
//! Every other structure, striped ones included, keeps whole replicas: their remote devices
//! compute on whole objects (a hash map's `TAKE`, a vector's aggregate per shard), which
//! fragments cannot serve.
//!
//! Per-object coding (rather than coding over groups of objects) keeps every write, read and
//! remove independent, as the runtime's write-backs and fetches are: no group to
//! read-modify-write when one member changes, no index of groups, no garbage collection of
//! half-removed groups. The price is per-fragment overhead: a [`super::fragment::HEADER`]-byte
//! header and the key stored `k + m` times, and a shard of at least 1 byte, which dominates
//! for tiny objects (a 0-byte object takes `k + m` fragments of 21 bytes). A read also waits
//! for `k` servers instead of one.
//!
//! # Operations
//!
//! * **Reads** ask the first `k` live holders in rank order, so data fragments first (and no
//!   decoding when all `k` answer), all at once with [`Backend::begin_read`] (pipelined on a
//!   [`super::super::tcp::TcpBackend`], no thread). Parity holders are asked only when a data
//!   holder is dead, being rebuilt, fails, or holds a fragment of another write. Fragments
//!   are grouped by write id and only a group of `k` is decoded (the newest such group, when
//!   several); a read that finds no such group while fragments of some write exist (a write
//!   or remove racing with it) starts again, with a growing pause, for up to 2.5 ms, then
//!   fails with [`Error::Protocol`]. When fewer than `k` holders can answer, the read fails with
//!   [`Error::Disconnected`]. A read that could not use every data holder (dead, being
//!   rebuilt, failed, or holding another write's fragment) counts as degraded.
//! * **Writes** encode the object with a fresh write id and send each fragment to its
//!   holder; a write is acknowledged when every holder in use (live or being rebuilt) has its
//!   fragment, and fails with [`Error::Disconnected`] when fewer than `k` holders are in use.
//!   `write_many` groups fragments per server, one request to each, all sent before any
//!   answer is awaited ([`Backend::begin_write_many`]).
//! * **Removes**, listing keys, statistics and the rebuild of a replaced server work as for
//!   replication, over the `k + m` holders; a rebuild decodes each object from `k` live
//!   holders and writes the replacement's own fragment, with the original write id.
//!
//! This module touches only the object store's objects, through the members of the
//! backend's slots; dead servers are condemned through the backend, as on every other path.

use super::fragment::{Code, Fragment};
use super::{is_failure, Member, ReplicatedBackend, State};
use crate::backend::{Backend, InFlight, ReadInFlight, OBJECT_STORE};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// How many times a read starts again when it finds the fragments of a racing write; it
/// sleeps 10 µs before the second attempt, twice as long before each next one (2.5 ms in all).
const READ_ATTEMPTS: u32 = 9;

/// What the holders of one object say.
#[derive(Debug)]
pub(super) enum Found {
    /// No live holder has it.
    Absent,
    /// The object and the write id of its fragments.
    Value(u64, Vec<u8>),
}

/// The answers gathered for one object so far.
#[derive(Default)]
struct Answers {
    /// Fragments, as read.
    some: Vec<Vec<u8>>,
    /// Holders that answered "no such object".
    none: usize,
}

impl Answers {
    fn answered(&self) -> usize {
        self.some.len() + self.none
    }

    /// The value of the newest write of which `k` distinct fragments were read.
    fn decodable(&self, code: &Code) -> Option<(u64, Vec<u8>)> {
        let mut by_write: BTreeMap<u64, Vec<Fragment<'_>>> = BTreeMap::new();
        for f in self.some.iter().filter_map(|b| code.parse(b)) {
            let group = by_write.entry(f.write).or_default();
            if group.iter().all(|g| g.index != f.index && g.len == f.len) {
                group.push(f);
            }
        }
        by_write
            .into_iter()
            .rev()
            .filter(|(_, g)| g.len() >= code.data)
            .find_map(|(w, g)| code.decode(&g).ok().map(|v| (w, v)))
    }

    /// The size of the largest group of fragments of one write.
    fn best_group(&self, code: &Code) -> usize {
        let mut by_write: BTreeMap<u64, usize> = BTreeMap::new();
        for f in self.some.iter().filter_map(|b| code.parse(b)) {
            *by_write.entry(f.write).or_default() += 1;
        }
        by_write.into_values().max().unwrap_or(0)
    }
}

impl ReplicatedBackend {
    /// The erasure code of the object store, if it is erasure-coded.
    pub(super) fn code_for(&self, ds: u32) -> Option<&Code> {
        self.erasure.as_ref().filter(|_| ds == OBJECT_STORE)
    }

    fn next_write(&self) -> u64 {
        self.writes.fetch_add(1, Ordering::Relaxed)
    }

    /// Reads one erasure-coded object (see the module docs).
    pub(super) fn ec_read(&self, code: &Code, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut degraded = false;
        let found = self.ec_fetch(code, key, &mut degraded)?;
        if degraded {
            self.degraded_reads.fetch_add(1, Ordering::Relaxed);
        }
        Ok(match found {
            Found::Absent => None,
            Found::Value(_, v) => Some(v),
        })
    }

    /// Finds the latest complete write of `key` on the live holders, starting again when a
    /// racing write or remove left no decodable group.
    ///
    /// # Errors
    /// [`Error::Disconnected`] when fewer than `k` holders answer; [`Error::Protocol`] when the
    /// fragments still disagree after a few attempts; a holder's answer that is not a failure.
    pub(super) fn ec_fetch(&self, code: &Code, key: &[u8], degraded: &mut bool) -> Result<Found> {
        let set = self.placement(OBJECT_STORE, key);
        for attempt in 0..READ_ATTEMPTS {
            if attempt > 0 {
                // A write or remove overlapped the read: let it finish.
                std::thread::sleep(std::time::Duration::from_micros(10 << (attempt - 1)));
            }
            if let Some(found) = self.ec_gather(code, key, &set, degraded)? {
                return Ok(found);
            }
        }
        Err(Error::Protocol(format!(
            "the {} fragments of an object kept disagreeing over {READ_ATTEMPTS} reads",
            code.total()
        )))
    }

    /// One attempt of [`Self::ec_fetch`]; `None` when the fragments disagree.
    fn ec_gather(
        &self,
        code: &Code,
        key: &[u8],
        set: &[usize],
        degraded: &mut bool,
    ) -> Result<Option<Found>> {
        let members: Vec<Member> = set.iter().map(|&s| self.member(s)).collect();
        let mut answers = Answers::default();
        let mut next = 0;
        loop {
            // Ask as many more holders, in rank order, as the best group still lacks (or, when
            // nothing was found, as "no such object" answers still lack).
            let progress = if answers.some.is_empty() {
                answers.none
            } else {
                answers.best_group(code)
            };
            let lacking = code.data.saturating_sub(progress);
            let mut asked: Vec<(&Member, ReadInFlight)> = Vec::new();
            while asked.len() < lacking && next < members.len() {
                let m = &members[next];
                next += 1;
                if m.state == State::Live {
                    asked.push((m, m.server.begin_read(OBJECT_STORE, key)));
                } else {
                    *degraded = true;
                }
            }
            if asked.is_empty() {
                break;
            }
            for (m, read) in asked {
                match read.wait() {
                    Ok(Some(f)) => answers.some.push(f),
                    Ok(None) => answers.none += 1,
                    Err(e) if is_failure(&e) => {
                        self.condemn(m, e);
                        self.failovers.fetch_add(1, Ordering::Relaxed);
                        *degraded = true;
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some((w, v)) = answers.decodable(code) {
                if next > code.data {
                    *degraded = true;
                }
                return Ok(Some(Found::Value(w, v)));
            }
            if answers.some.is_empty() && answers.none >= code.data {
                return Ok(Some(Found::Absent));
            }
        }
        if answers.answered() < code.data {
            return Err(self.lost(set));
        }
        // Enough answers, but no k fragments of one write.
        Ok(None)
    }

    /// Reads many erasure-coded objects (see [`Self::ec_fetch_many`]).
    pub(super) fn ec_read_many(&self, code: &Code, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.ec_fetch_many(code, keys, true)?
            .into_iter()
            .map(|found| {
                Ok(match found? {
                    Found::Absent => None,
                    Found::Value(_, v) => Some(v),
                })
            })
            .collect()
    }

    /// Fetches many erasure-coded objects: the first `k` live holders of each, one request
    /// per server, all sent before any answer is awaited; an object that does not decode from those is fetched again on
    /// its own ([`Self::ec_fetch`], which asks parity holders too, and whose error is that
    /// object's). `count` says whether degraded reads are counted.
    ///
    /// # Errors
    /// A server's answer that is not a failure (the whole batch).
    pub(super) fn ec_fetch_many(
        &self,
        code: &Code,
        keys: &[&[u8]],
        count: bool,
    ) -> Result<Vec<Result<Found>>> {
        let sets = self.sets(OBJECT_STORE, keys.iter());
        let members: Vec<Member> = (0..self.slots.len()).map(|i| self.member(i)).collect();
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (k, set) in sets.iter().enumerate() {
            for &s in set
                .iter()
                .filter(|&&s| members[s].state == State::Live)
                .take(code.data)
            {
                groups.entry(s).or_default().push(k);
            }
        }
        let mut answers: Vec<Answers> = keys.iter().map(|_| Answers::default()).collect();
        for (m, ks, r) in self.read_groups(OBJECT_STORE, keys, groups, &members)? {
            match r {
                Ok(vs) => {
                    for (k, v) in ks.into_iter().zip(vs) {
                        match v {
                            Some(f) => answers[k].some.push(f),
                            None => answers[k].none += 1,
                        }
                    }
                }
                // Its keys lack a fragment and are read again one by one.
                Err(e) if is_failure(&e) => {
                    self.condemn(&m, e);
                    self.failovers.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        for (k, a) in answers.iter().enumerate() {
            let mut degraded = self.any_unreadable(&sets[k][..code.data]);
            out.push(if let Some((w, v)) = a.decodable(code) {
                Ok(Found::Value(w, v))
            } else if a.some.is_empty() && a.none >= code.data {
                Ok(Found::Absent)
            } else {
                match self.ec_fetch(code, keys[k], &mut degraded) {
                    Err(e) if !is_failure(&e) && !matches!(e, Error::Protocol(_)) => return Err(e),
                    found => found,
                }
            });
            if count && degraded && matches!(out.last(), Some(Ok(Found::Value(..)))) {
                self.degraded_reads.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(out)
    }

    /// Writes one erasure-coded object: each fragment to its holder, in rank order.
    pub(super) fn ec_write(&self, code: &Code, key: &[u8], value: &[u8]) -> Result<()> {
        let _gate = self.mutation();
        let set = self.placement(OBJECT_STORE, key);
        let fragments = code.encode(self.next_write(), value)?;
        let mut stored = 0;
        for (&s, f) in set.iter().zip(&fragments) {
            let m = self.member(s);
            if m.state == State::Dead {
                continue;
            }
            match m.server.write(OBJECT_STORE, key, f) {
                Ok(()) => stored += 1,
                Err(e) if is_failure(&e) => self.condemn(&m, e),
                Err(e) => return Err(e),
            }
        }
        if stored < code.data {
            return Err(self.too_few(code, &set, stored));
        }
        Ok(())
    }

    /// Writes many erasure-coded objects: one request per server with its fragments, all
    /// sent before any answer is awaited.
    pub(super) fn ec_write_many(&self, code: &Code, items: &[(&[u8], &[u8])]) -> Result<()> {
        let _gate = self.mutation();
        let sets = self.sets(OBJECT_STORE, items.iter().map(|(k, _)| k));
        let fragments: Vec<Vec<Vec<u8>>> = items
            .iter()
            .map(|(_, v)| code.encode(self.next_write(), v))
            .collect::<Result<_>>()?;
        let members: Vec<Member> = (0..self.slots.len()).map(|i| self.member(i)).collect();
        // Per server in use: (item, fragment index) pairs.
        let mut groups: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
        for (item, set) in sets.iter().enumerate() {
            for (f, &s) in set.iter().enumerate() {
                if members[s].state != State::Dead {
                    groups.entry(s).or_default().push((item, f));
                }
            }
        }
        let groups: Vec<(Member, Vec<(usize, usize)>)> = groups
            .into_iter()
            .map(|(s, fs)| (members[s].clone(), fs))
            .collect();
        let started: Vec<InFlight<()>> = groups
            .iter()
            .map(|(m, fs)| {
                let batch: Vec<(&[u8], &[u8])> = fs
                    .iter()
                    .map(|&(item, f)| (items[item].0, &fragments[item][f][..]))
                    .collect();
                m.server.begin_write_many(OBJECT_STORE, &batch)
            })
            .collect();
        let results: Vec<_> = started.into_iter().map(InFlight::wait).collect();
        let mut stored = vec![0usize; items.len()];
        let mut answer = None;
        for ((m, fs), r) in groups.into_iter().zip(results) {
            match r {
                Ok(()) => fs.into_iter().for_each(|(item, _)| stored[item] += 1),
                Err(e) if is_failure(&e) => self.condemn(&m, e),
                Err(e) => {
                    answer.get_or_insert(e);
                }
            }
        }
        if let Some(e) = answer {
            return Err(e);
        }
        match stored.iter().position(|&n| n < code.data) {
            Some(i) => Err(self.too_few(code, &sets[i], stored[i])),
            None => Ok(()),
        }
    }

    /// The error of a write that reached fewer than `k` holders.
    fn too_few(&self, code: &Code, set: &[usize], stored: usize) -> Error {
        let names: Vec<String> = set.iter().map(|&i| self.member(i).server.name()).collect();
        Error::Disconnected(format!(
            "only {stored} of the {} fragments of the object could be stored, {} are needed ({})",
            code.total(),
            code.data,
            names.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests;
