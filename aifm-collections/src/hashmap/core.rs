//! The map's single-key operations on its shards, below the public API: reading, writing,
//! replacing and removing one pair, and bringing a far pair home.
//!
//! # Bringing a pair home never loses it
//!
//! A miss moves a pair from far memory in two phases, under the shard's mutex (so no
//! other thread can bring the same key home, or evict a newer copy of it, meanwhile):
//!
//! 1. read the server's copy, decode it, allocate the local pair and put it in the index,
//!    flagged `FAR_COPY`;
//! 2. only then remove the server's copy, and clear the flag.
//!
//! A failure in phase 1 (a lost reply, an oversized reply, a decode or allocation failure)
//! leaves the server's copy where it was; a failure in phase 2 leaves both copies, and the
//! flag makes a later removal remove the server's too (an eviction overwrites it). Batched
//! misses ([`Core::adopt_many`]) hold the mutexes of their shards in ascending order over
//! one `read_many` and one `remove_many`.

use super::far::{far_key, Counts};
use super::guards::{Ref, RefMut};
use super::index::{
    backoff, codec_copy, Node, Pair, Probe, Shard, Writer, FAR_COPY, PENDING, WRITER,
};
use aifm_core::{FarData, Result, Scope, Structure};
use std::borrow::Borrow;
use std::sync::atomic::Ordering;

/// What [`Core::put`] returns: the old value, and the new pair's writer guard if asked for.
pub(crate) type Put<'a, K, V> = (Option<V>, Option<RefMut<'a, K, V>>);

/// The shards and the structure (field order is drop order: pairs before their structure).
pub(crate) struct Core<K: FarData, V: FarData> {
    pub(crate) shards: Box<[Shard<K, V>]>,
    pub(crate) structure: Structure,
}

/// Readies a new node for the index: clears `PENDING` and, for a writer guard, sets
/// `WRITER` before any reader can reach it.
fn publish<K, V>(n: &Node<K, V>, writer: bool) {
    if writer {
        n.state.store(WRITER, Ordering::Relaxed);
    }
    n.flags.fetch_and(!PENDING, Ordering::AcqRel);
}

/// What [`Core::place`] did: the old value, the new node and the scope it was found through
/// (`None`: a writer holds the key; back off and retry).
type Placed<K, V> = Option<(Option<V>, *const Node<K, V>, Scope)>;

impl<K: FarData + Eq + Clone, V: FarData> Core<K, V> {
    fn backend(&self) -> &dyn aifm_core::Backend {
        self.structure.backend()
    }

    /// A reader guard on `q` if it is in local memory. Takes no lock and writes no shared
    /// cache line: an epoch pin, a scope, the probe, and the node's reader count.
    #[inline]
    pub(crate) fn read_local<Q>(&self, si: usize, h: u64, q: &Q) -> Result<Option<Ref<'_, K, V>>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let shard = &self.shards[si];
        let mut spins = 0;
        loop {
            let pin = crossbeam_epoch::pin();
            let scope = Scope::new();
            match shard.find_read(h, q, &scope, &pin)? {
                Probe::Hit(_, n) => {
                    // SAFETY: `find_read` admitted us as a reader of `n`, dereferenced it
                    // through `scope`, and `pin` was taken before the probe.
                    return Ok(Some(unsafe { Ref::new(scope, pin, n) }));
                }
                Probe::Miss { .. } => return Ok(None),
                Probe::Busy => {}
            }
            drop((scope, pin));
            backoff(&mut spins);
        }
    }

    /// The writer guard on `q` if it is in local memory (on a copy of the pair if readers
    /// hold it).
    pub(crate) fn write_local<Q>(
        &self,
        si: usize,
        h: u64,
        q: &Q,
    ) -> Result<Option<RefMut<'_, K, V>>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let shard = &self.shards[si];
        let mut spins = 0;
        loop {
            let mut w = shard.write();
            let scope = Scope::new();
            let (i, n) = match w.find(h, q, &scope)? {
                Probe::Hit(i, n) => (i, n),
                Probe::Miss { dead } => {
                    if dead {
                        w.sweep_probe(h, &scope);
                    }
                    return Ok(None);
                }
                Probe::Busy => {
                    drop((scope, w));
                    backoff(&mut spins);
                    continue;
                }
            };
            // SAFETY: found under this hold through `scope`, still open.
            if unsafe { w.claim_writer(n) } {
                drop(w);
                // SAFETY: `WRITER` is ours; the node is in the index, dereferenced through
                // `scope`.
                return Ok(Some(unsafe { RefMut::new(scope, n) }));
            }
            // Readers hold this pair: they keep the old one; we write a copy.
            // SAFETY: as above; we hold the mutex and only read the value.
            let old = unsafe { &*n };
            let flags = old.flags.load(Ordering::Acquire) & FAR_COPY;
            // SAFETY: readers only read the value, and no writer but us holds the mutex.
            let value = codec_copy(unsafe { old.value() })?;
            let copy = w.alloc(old.key.clone(), value, flags)?;
            let c = match w.node(copy, &scope) {
                Ok(c) => c,
                Err(e) => {
                    w.discard(copy);
                    return Err(e);
                }
            };
            // SAFETY: our own pending node, dereferenced through `scope`.
            publish(unsafe { &*c }, true);
            // SAFETY: found under this hold; replaced just below.
            unsafe { w.kill(n) };
            w.replace(i, copy, c, &scope);
            drop(w);
            // SAFETY: `WRITER` was set before the copy was published; it is in the index.
            return Ok(Some(unsafe { RefMut::new(scope, c) }));
        }
    }

    /// Inserts the pair `(k, v)`, replacing the pair of its key, local or far; returns the old
    /// value and, if `guard`, a writer guard on the new pair. On error the map is unchanged
    /// (and the pair dropped).
    pub(crate) fn put(
        &self,
        counts: &Counts,
        si: usize,
        h: u64,
        (k, v): (K, V),
        guard: bool,
    ) -> Result<Put<'_, K, V>> {
        let shard = &self.shards[si];
        let mut w = shard.write();
        // Allocated before any scope opens, so that the allocation may wait for room; kept
        // (pending) across retries.
        let p = w.alloc(k, v, 0)?;
        let mut spins = 0;
        loop {
            match self.place(counts, si, h, &mut w, p, guard) {
                Ok(Some((old, at, scope))) => {
                    return Ok((old, self.guard_for(w, guard, scope, at)));
                }
                Ok(None) => {
                    drop(w);
                    backoff(&mut spins);
                    w = shard.write();
                }
                Err(e) => {
                    w.discard(p);
                    return Err(e);
                }
            }
        }
    }

    /// Puts pending pair `p` in the index (see [`Core::put`]); `None` if a writer holds the
    /// key. Nothing changed on error.
    fn place(
        &self,
        counts: &Counts,
        si: usize,
        h: u64,
        w: &mut Writer<'_, K, V>,
        p: Pair<K, V>,
        guard: bool,
    ) -> Result<Placed<K, V>> {
        let scope = Scope::new();
        // A pending node stays local (see `Writer::alloc`).
        let new_node = w.node(p, &scope)?;
        // SAFETY: our own pending pair, dereferenced through `scope`, which is open.
        let new_ref = unsafe { &*new_node };
        match w.find(h, &new_ref.key, &scope)? {
            Probe::Busy => Ok(None),
            Probe::Hit(i, n) => {
                // SAFETY: found under this hold through `scope`.
                let far = unsafe { &*n }.flags.load(Ordering::Acquire) & FAR_COPY;
                // SAFETY: as above; on success the entry is replaced below, on error `DEAD`
                // is cleared again.
                let old = unsafe { w.take_value(n) }?;
                new_ref.flags.fetch_or(far, Ordering::AcqRel);
                publish(new_ref, guard);
                // In place: a reader sees the old pair (`DEAD`, so it looks again) or the
                // new one; the key never leaves the index.
                w.replace(i, p, new_node, &scope);
                Ok(Some((Some(old), new_node, scope)))
            }
            Probe::Miss { dead } => {
                if dead {
                    w.sweep_probe(h, &scope);
                }
                let (old, fk, scope) = match counts.maybe_far(si) {
                    false => (None, None, scope),
                    true => {
                        let k = far_key(si, &new_ref.key)?;
                        // No scope over the round trip: it would hold up evacuation rounds.
                        drop(scope);
                        let old = self.backend().read(self.structure.id(), &k)?;
                        let old = old.map(|b| V::decode(&b)).transpose()?;
                        let fk = old.as_ref().map(|_| k);
                        (old, fk, Scope::new())
                    }
                };
                let new_node = w.node(p, &scope)?;
                // SAFETY: our own pending pair, dereferenced through `scope`.
                let new_ref = unsafe { &*new_node };
                if fk.is_some() {
                    new_ref.flags.fetch_or(FAR_COPY, Ordering::AcqRel);
                }
                publish(new_ref, guard);
                w.insert(h, p, new_node);
                if old.is_none() {
                    counts.len.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(k) = fk {
                    self.settle(counts, si, new_ref, &k);
                }
                Ok(Some((old, new_node, scope)))
            }
        }
    }

    /// Releases the mutex `w` and makes the writer guard on `n`, if asked for.
    fn guard_for<'a>(
        &'a self,
        w: Writer<'a, K, V>,
        guard: bool,
        scope: Scope,
        n: *const Node<K, V>,
    ) -> Option<RefMut<'a, K, V>> {
        drop(w);
        // SAFETY: `publish(_, true)` set `WRITER` on `n` before it entered the index, and it
        // was dereferenced through `scope`.
        guard.then(|| unsafe { RefMut::new(scope, n) })
    }

    /// Phase two of bringing a pair home: removes the server's copy `fk` of node `n` (in the
    /// index, under the caller's mutex, dereferenced through a scope the caller keeps open,
    /// so the pair cannot be evicted meanwhile: its eviction would write the copy this
    /// removes) and clears its `FAR_COPY` flag. If the removal fails the flag stays, and a
    /// later removal or eviction settles the copy.
    fn settle(&self, counts: &Counts, si: usize, n: &Node<K, V>, fk: &[u8]) {
        if self.backend().remove(self.structure.id(), fk).is_ok() {
            n.flags.fetch_and(!FAR_COPY, Ordering::AcqRel);
            counts.settled(si);
        }
    }

    /// Brings `q` home from far memory if it is there; whether it is local now.
    pub(crate) fn fetch<Q>(&self, counts: &Counts, si: usize, h: u64, q: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !counts.maybe_far(si) {
            return Ok(false);
        }
        let key = q.to_owned();
        let fk = far_key(si, &key)?;
        let mut w = self.shards[si].write();
        {
            let scope = Scope::new();
            match w.find(h, q, &scope)? {
                Probe::Hit(..) | Probe::Busy => return Ok(true),
                Probe::Miss { dead } => {
                    if dead {
                        w.sweep_probe(h, &scope);
                    }
                }
            }
        }
        let Some(bytes) = self.backend().read(self.structure.id(), &fk)? else {
            return Ok(false);
        };
        let v = V::decode(&bytes)?;
        let p = w.alloc(key, v, FAR_COPY)?;
        let scope = Scope::new();
        let n = match w.node(p, &scope) {
            Ok(n) => n,
            Err(e) => {
                drop(scope);
                w.discard(p);
                return Err(e);
            }
        };
        // SAFETY: our own pending pair, dereferenced through `scope`, which stays open.
        let n = unsafe { &*n };
        publish(n, false);
        w.insert(h, p, n);
        self.structure.note_fetches(1, bytes.len() as u64);
        self.settle(counts, si, n, &fk);
        Ok(true)
    }

    /// Brings many far pairs home in one `read_many` and one `remove_many`; returns the
    /// values found (`None`: not in far memory, or brought home by another thread meanwhile).
    pub(crate) fn adopt_many(
        &self,
        counts: &Counts,
        misses: &[(usize, u64, K)],
    ) -> Result<Vec<Option<V>>>
    where
        V: Clone,
    {
        let mut shards: Vec<usize> = misses.iter().map(|m| m.0).collect();
        shards.sort_unstable();
        shards.dedup();
        // Ascending order; nothing else holds two shard mutexes, so this cannot deadlock.
        let mut locks: Vec<Writer<'_, K, V>> =
            shards.iter().map(|&si| self.shards[si].write()).collect();
        let lock_of = |si: usize| shards.binary_search(&si).expect("locked");
        // Keys still missing locally, under the mutexes, each asked for once: a key the batch
        // names twice must come home as one pair, or a later `remove` would leave its twin.
        let mut ask: Vec<usize> = Vec::new();
        let mut twins: Vec<(usize, usize)> = Vec::new();
        let mut asked: std::collections::HashMap<u64, smallvec::SmallVec<[usize; 1]>> =
            std::collections::HashMap::new();
        {
            let scope = Scope::new();
            for (i, (si, h, k)) in misses.iter().enumerate() {
                let w = &mut locks[lock_of(*si)];
                if let Probe::Miss { dead } = w.find(*h, k, &scope)? {
                    let same_hash = asked.entry(*h).or_default();
                    if let Some(&first) = same_hash.iter().find(|&&a| misses[a].2 == *k) {
                        twins.push((i, first));
                        continue;
                    }
                    same_hash.push(i);
                    if dead {
                        w.sweep_probe(*h, &scope);
                    }
                    ask.push(i);
                }
            }
        }
        let keys = ask
            .iter()
            .map(|&i| far_key(misses[i].0, &misses[i].2))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let ds = self.structure.id();
        let found = self.backend().read_many(ds, &refs)?;
        if found.len() != refs.len() {
            return Err(aifm_core::Error::Protocol(
                "read_many answered a different number of keys".into(),
            ));
        }
        let values = found
            .iter()
            .map(|b| b.as_deref().map(V::decode).transpose())
            .collect::<Result<Vec<Option<V>>>>()?;
        let mut out: Vec<Option<V>> = misses.iter().map(|_| None).collect();
        // Allocated outside any scope (see `Writer::alloc`); given back if one fails.
        let mut nodes: Vec<(usize, u64, usize, Pair<K, V>)> = Vec::new();
        for (j, (&i, v)) in ask.iter().zip(values).enumerate() {
            let Some(v) = v else { continue };
            let (si, h, k) = &misses[i];
            match locks[lock_of(*si)].alloc(k.clone(), v.clone(), FAR_COPY) {
                Ok(p) => nodes.push((*si, *h, j, p)),
                Err(e) => {
                    for (si, _, _, p) in nodes {
                        locks[lock_of(si)].discard(p);
                    }
                    return Err(e);
                }
            }
            out[i] = Some(v);
        }
        for &(i, first) in &twins {
            out[i] = out[first].clone();
        }
        let total: u64 = found.iter().flatten().map(|b| b.len() as u64).sum();
        self.structure.note_fetches(nodes.len() as u64, total);
        // Placed and settled in one scope, as in `settle`.
        let scope = Scope::new();
        let mut home: Vec<(usize, *const Node<K, V>, usize)> = Vec::new();
        let mut failed = None;
        for (si, h, j, p) in nodes {
            let w = &mut locks[lock_of(si)];
            if failed.is_some() {
                w.discard(p);
                continue;
            }
            match w.node(p, &scope) {
                Ok(n) => {
                    // SAFETY: our own pending pair, dereferenced through `scope`.
                    publish(unsafe { &*n }, false);
                    w.insert(h, p, n);
                    home.push((si, n, j));
                }
                Err(e) => {
                    w.discard(p);
                    failed = Some(e);
                }
            }
        }
        let done: Vec<&[u8]> = home.iter().map(|p| refs[p.2]).collect();
        if !done.is_empty() && self.backend().remove_many(ds, &done).is_ok() {
            for (si, n, _) in home {
                // SAFETY: in the index under our mutexes, dereferenced through `scope`.
                unsafe { &*n }.flags.fetch_and(!FAR_COPY, Ordering::AcqRel);
                counts.settled(si);
            }
        }
        drop(scope);
        drop(locks);
        match failed {
            // The pairs placed so far are home (and settled); the rest stay far.
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Removes `q`'s pair, local or far. On error the map is unchanged (and a far pair stays
    /// in far memory).
    pub(crate) fn remove<Q>(
        &self,
        counts: &Counts,
        si: usize,
        h: u64,
        q: &Q,
    ) -> Result<Option<(K, V)>>
    where
        K: Borrow<Q>,
        Q: Eq + ToOwned<Owned = K> + ?Sized,
    {
        let ds = self.structure.id();
        let shard = &self.shards[si];
        let mut spins = 0;
        loop {
            let mut w = shard.write();
            let scope = Scope::new();
            match w.find(h, q, &scope)? {
                Probe::Busy => {
                    drop((scope, w));
                    backoff(&mut spins);
                }
                Probe::Hit(i, n) => {
                    // SAFETY: found under this hold through `scope`.
                    let node = unsafe { &*n };
                    if node.flags.load(Ordering::Acquire) & FAR_COPY != 0 {
                        // A copy may be on the server (a partly accepted write-back, or a
                        // pair brought home whose server copy could not be removed): it
                        // goes first, or a later miss would bring it back.
                        self.backend().remove(ds, &far_key(si, &node.key)?)?;
                        node.flags.fetch_and(!FAR_COPY, Ordering::AcqRel);
                        counts.settled(si);
                    }
                    let key = node.key.clone();
                    // SAFETY: as above; the entry is unlinked just below.
                    let value = unsafe { w.take_value(n) }?;
                    w.unlink(i, &scope);
                    counts.len.fetch_sub(1, Ordering::Relaxed);
                    return Ok(Some((key, value)));
                }
                Probe::Miss { dead } => {
                    if dead {
                        w.sweep_probe(h, &scope);
                    }
                    drop(scope);
                    if !counts.maybe_far(si) {
                        return Ok(None);
                    }
                    let key = q.to_owned();
                    let fk = far_key(si, &key)?;
                    let Some(bytes) = self.backend().read(ds, &fk)? else {
                        return Ok(None);
                    };
                    let v = V::decode(&bytes)?;
                    self.backend().remove(ds, &fk)?;
                    counts.settled(si);
                    counts.len.fetch_sub(1, Ordering::Relaxed);
                    return Ok(Some((key, v)));
                }
            }
        }
    }
}
