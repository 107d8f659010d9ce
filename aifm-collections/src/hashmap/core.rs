//! The map's single-key operations on its shards, below the public API: reading, writing,
//! replacing and removing one pair, and bringing a far pair home.
//!
//! # Bringing a pair home never loses it
//!
//! A miss moves a pair from far memory in two phases, under the shard's write lock (so no
//! other thread can bring the same key home, or evict a newer copy of it, meanwhile):
//!
//! 1. read the server's copy, decode it, allocate the local pair and put it in the index,
//!    flagged `FAR_COPY`;
//! 2. only then remove the server's copy, and clear the flag.
//!
//! A failure in phase 1 (a lost reply, an oversized reply, a decode or allocation failure)
//! leaves the server's copy where it was; a failure in phase 2 leaves both copies, and the
//! flag makes a later removal remove the server's too (an eviction overwrites it). Batched
//! misses ([`Core::adopt_many`]) hold the write locks of their shards in ascending order over
//! one `read_many` and one `remove_many`.

use super::far::{far_key, Counts};
use super::guards::{Ref, RefMut};
use super::index::{
    backoff, codec_copy, Bucket, Node, Probe, Shard, Table, FAR_COPY, PENDING, WRITER,
};
use aifm_core::{FarData, RemBox, Result, Scope, Structure};
use std::borrow::Borrow;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::RwLockWriteGuard;

/// What [`Core::put`] returns: the old value, and the new pair's writer guard if asked for.
pub(crate) type Put<'a, K, V> = (Option<V>, Option<RefMut<'a, K, V>>);

/// The shards and the structure (field order is drop order: pairs before their structure).
pub(crate) struct Core<K: FarData, V: FarData> {
    pub(crate) shards: Box<[Shard<K, V>]>,
    pub(crate) structure: Structure,
}

impl<K: FarData + Eq + Clone, V: FarData> Core<K, V> {
    /// A new heap pair (call outside any scope, so the allocation may wait for room). It is
    /// `PENDING` until the caller puts it in the index and clears the flag: the evacuator
    /// keeps it local meanwhile (it may move it), so an eviction never writes a pair that is
    /// not in the map yet.
    pub(crate) fn node(
        &self,
        counts: &Counts,
        k: K,
        v: V,
        flags: u8,
    ) -> Result<RemBox<Node<K, V>>> {
        let id = counts.next_key.fetch_add(1, Ordering::Relaxed);
        let node = Node {
            flags: AtomicU8::new(flags | PENDING),
            key: k,
            value: v,
        };
        RemBox::new_in_structure(node, &self.structure, id)
    }

    fn backend(&self) -> &dyn aifm_core::Backend {
        self.structure.backend()
    }

    /// A reader guard on `q` if it is in local memory.
    pub(crate) fn read_local<Q>(&self, si: usize, h: u64, q: &Q) -> Result<Option<Ref<'_, K, V>>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let shard = &self.shards[si];
        let mut spins = 0;
        loop {
            let t = shard.read();
            let scope = Scope::new();
            match t.find_read(h, q, &scope, &shard.guards)? {
                Probe::Hit(_, n) => {
                    drop(t);
                    // SAFETY: `find_read` counted us in the shard and dereferenced `n` through
                    // `scope`.
                    return Ok(Some(unsafe { Ref::new(scope, shard, n) }));
                }
                Probe::Miss { .. } => return Ok(None),
                Probe::Busy => {}
            }
            drop((scope, t));
            backoff(&mut spins);
        }
    }

    /// Takes `WRITER` on bucket `b` (under the write lock `t`, through `scope`) and makes the
    /// writer guard.
    fn writer<'a>(
        &'a self,
        si: usize,
        t: RwLockWriteGuard<'a, Table<K, V>>,
        b: *const Bucket<K, V>,
        scope: Scope,
    ) -> Result<RefMut<'a, K, V>> {
        let shard = &self.shards[si];
        // SAFETY: the bucket is in the table under the write lock `t`.
        let b = unsafe { &*b };
        b.state.fetch_or(WRITER, Ordering::AcqRel);
        // SAFETY: WRITER is ours and the write lock is held: no other use of the box.
        let pair = unsafe { b.pair_mut() };
        let id = pair.key();
        match pair.try_deref_mut(&scope) {
            Ok(node) => {
                let node: *mut Node<K, V> = node;
                shard.guards.fetch_add(1, Ordering::AcqRel);
                let h = b.hash;
                drop(t);
                // SAFETY: WRITER is ours, we are counted, `node` came from `scope`.
                Ok(unsafe { RefMut::new(scope, shard, h, id, node) })
            }
            Err(e) => {
                b.state.fetch_and(!WRITER, Ordering::AcqRel);
                Err(e)
            }
        }
    }

    /// The writer guard on `q` if it is in local memory (copying the pair if the shard has
    /// guards).
    pub(crate) fn write_local<Q>(
        &self,
        counts: &Counts,
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
            let mut t = shard.write();
            let scope = Scope::new();
            let (b, n) = match t.find_write(h, q, &scope)? {
                Probe::Hit(b, n) => (b, n),
                Probe::Miss { dead } => {
                    if dead {
                        t.sweep();
                    }
                    return Ok(None);
                }
                Probe::Busy => {
                    drop((scope, t));
                    backoff(&mut spins);
                    continue;
                }
            };
            if !shard.guarded() {
                return self.writer(si, t, b, scope).map(Some);
            }
            // Guards may hold this pair: they keep the old one; we write a copy.
            // SAFETY: `n` was dereferenced through `scope`, still open.
            let n = unsafe { &*n };
            let flags = n.flags.load(Ordering::Acquire) & FAR_COPY;
            let copy = self.node(counts, n.key.clone(), codec_copy(&n.value)?, flags)?;
            let new = Bucket::new(h, copy, 0);
            new.publish(&scope);
            let old = t.replace(h, b, new);
            t.retire(old, &scope);
            return self.writer(si, t, b, scope).map(Some);
        }
    }

    /// Inserts `node` (from [`Core::node`], allocated outside any scope), replacing the pair
    /// of its key, local or far; returns the old value and, if `guard`, a writer guard on the
    /// new pair. On error the map is unchanged.
    pub(crate) fn put(
        &self,
        counts: &Counts,
        si: usize,
        h: u64,
        node: RemBox<Node<K, V>>,
        guard: bool,
    ) -> Result<Put<'_, K, V>> {
        let shard = &self.shards[si];
        let mut spins = 0;
        loop {
            let mut t = shard.write();
            let scope = Scope::new();
            // A pending node stays local (see `Core::node`).
            let new_node: *const Node<K, V> = node.try_deref(&scope)?;
            // SAFETY: our own box, dereferenced through `scope`, which is open.
            let new_ref = unsafe { &*new_node };
            let (old, at) = match t.find_write(h, &new_ref.key, &scope)? {
                Probe::Busy => {
                    drop((scope, t));
                    backoff(&mut spins);
                    continue;
                }
                Probe::Hit(b, n) => {
                    // SAFETY: dereferenced through `scope`.
                    let n = unsafe { &*n };
                    let guarded = shard.guarded();
                    let copy = match guarded {
                        true => Some(codec_copy(&n.value)?),
                        false => None,
                    };
                    let far = n.flags.load(Ordering::Acquire) & FAR_COPY;
                    new_ref.flags.fetch_or(far, Ordering::AcqRel);
                    let old = t.replace(h, b, Bucket::new(h, node, 0));
                    let old = match copy {
                        Some(v) => {
                            t.retire(old, &scope);
                            v
                        }
                        None => match old.into_pair().try_into_inner() {
                            Ok(n) => n.value,
                            Err((e, pair)) => {
                                drop(t.replace(h, b, Bucket::new(h, pair, 0)));
                                return Err(e);
                            }
                        },
                    };
                    new_ref.flags.fetch_and(!PENDING, Ordering::AcqRel);
                    (Some(old), b)
                }
                Probe::Miss { dead } => {
                    if dead {
                        t.sweep();
                    }
                    let asked = match counts.maybe_far(si) {
                        true => Some(far_key(si, &new_ref.key)?),
                        false => None,
                    };
                    // No scope over the round trip: it would hold up evacuation rounds.
                    drop(scope);
                    let mut old = None;
                    let mut fk = None;
                    if let Some(k) = asked {
                        if let Some(bytes) = self.backend().read(self.structure.id(), &k)? {
                            old = Some(V::decode(&bytes)?);
                            fk = Some(k);
                        }
                    }
                    let scope = Scope::new();
                    let new_ref = node.try_deref(&scope)?;
                    if fk.is_some() {
                        new_ref.flags.fetch_or(FAR_COPY, Ordering::AcqRel);
                    }
                    new_ref.flags.fetch_and(!PENDING, Ordering::AcqRel);
                    drop(scope);
                    let at = t.insert(Bucket::new(h, node, 0));
                    if old.is_none() {
                        counts.len.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(k) = fk {
                        self.settle(&mut t, counts, si, at, &k);
                    }
                    (old, at)
                }
            };
            if !guard {
                return Ok((old, None));
            }
            let r = self.writer(si, t, at, Scope::new())?;
            return Ok((old, Some(r)));
        }
    }

    /// Phase two of bringing a pair home: removes the server's copy `fk` of the pair in
    /// bucket `b` (in the index, under the write lock `_locked`) and clears its `FAR_COPY`
    /// flag, all in one scope, so the pair cannot be evicted meanwhile (its eviction would
    /// write the copy this removes). If the pair was evicted already, the server's copy is the
    /// current one and stays; if the removal fails the flag stays, and a later removal or
    /// eviction settles the copy.
    fn settle(
        &self,
        _locked: &mut Table<K, V>,
        counts: &Counts,
        si: usize,
        b: *const Bucket<K, V>,
        fk: &[u8],
    ) {
        let scope = Scope::new();
        // SAFETY: the bucket is in the index under our write lock; we only touch the node's
        // atomic flags.
        let Ok(n) = unsafe { (*b).pair() }.try_deref(&scope) else {
            return;
        };
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
        let mut t = self.shards[si].write();
        {
            let scope = Scope::new();
            match t.find_write(h, q, &scope)? {
                Probe::Hit(..) | Probe::Busy => return Ok(true),
                Probe::Miss { dead } => {
                    if dead {
                        t.sweep();
                    }
                }
            }
        }
        let Some(bytes) = self.backend().read(self.structure.id(), &fk)? else {
            return Ok(false);
        };
        let v = V::decode(&bytes)?;
        let node = self.node(counts, key, v, FAR_COPY)?;
        let at = t.insert(Bucket::new(h, node, 0));
        // SAFETY: just inserted under our write lock.
        unsafe { (*at).publish(&Scope::new()) };
        self.structure.note_fetches(1, bytes.len() as u64);
        self.settle(&mut t, counts, si, at, &fk);
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
        // Ascending order; nothing else holds two shard locks, so this cannot deadlock.
        let mut locks: Vec<RwLockWriteGuard<'_, Table<K, V>>> =
            shards.iter().map(|&si| self.shards[si].write()).collect();
        let lock_of = |si: usize| shards.binary_search(&si).expect("locked");
        // Keys still missing locally, under the locks.
        let mut ask: Vec<usize> = Vec::new();
        {
            let scope = Scope::new();
            for (i, (si, h, k)) in misses.iter().enumerate() {
                let t = &mut locks[lock_of(*si)];
                if let Probe::Miss { dead } = t.find_write(*h, k, &scope)? {
                    if dead {
                        t.sweep();
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
        let mut placed: Vec<(usize, u64, u64, usize)> = Vec::new();
        for (j, (&i, v)) in ask.iter().zip(values).enumerate() {
            let Some(v) = v else { continue };
            let (si, h, k) = &misses[i];
            let node = self.node(counts, k.clone(), v.clone(), FAR_COPY)?;
            let id = node.key();
            let b = Bucket::new(*h, node, 0);
            b.publish(&Scope::new());
            locks[lock_of(*si)].insert(b);
            placed.push((*si, *h, id, j));
            out[i] = Some(v);
        }
        let total: u64 = found.iter().flatten().map(|b| b.len() as u64).sum();
        self.structure.note_fetches(placed.len() as u64, total);
        // Phase two in one scope, as in `settle`: pairs evicted again keep their server copy.
        let scope = Scope::new();
        let mut home: Vec<(usize, &Node<K, V>, usize)> = Vec::new();
        for (si, h, id, j) in placed {
            let t = &locks[lock_of(si)];
            for b in t.live.iter_hash(h) {
                // SAFETY: write lock held; the new pairs have no writer.
                let pair = unsafe { b.pair() };
                if b.hash == h && pair.key() == id {
                    if let Ok(n) = pair.try_deref(&scope) {
                        home.push((si, n, j));
                    }
                }
            }
        }
        let done: Vec<&[u8]> = home.iter().map(|p| refs[p.2]).collect();
        if !done.is_empty() && self.backend().remove_many(ds, &done).is_ok() {
            for (si, n, _) in home {
                n.flags.fetch_and(!FAR_COPY, Ordering::AcqRel);
                counts.settled(si);
            }
        }
        drop(scope);
        drop(locks);
        Ok(out)
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
            let mut t = shard.write();
            let scope = Scope::new();
            match t.find_write(h, q, &scope)? {
                Probe::Busy => {
                    drop((scope, t));
                    backoff(&mut spins);
                }
                Probe::Hit(b, n) => {
                    // SAFETY: dereferenced through `scope`.
                    let n = unsafe { &*n };
                    if n.flags.load(Ordering::Acquire) & FAR_COPY != 0 {
                        // A copy may be on the server (a partly accepted write-back, or a
                        // pair brought home whose server copy could not be removed): it
                        // goes first, or a later miss would bring it back.
                        self.backend().remove(ds, &far_key(si, &n.key)?)?;
                        n.flags.fetch_and(!FAR_COPY, Ordering::AcqRel);
                        counts.settled(si);
                    }
                    let copy = match shard.guarded() {
                        true => Some((n.key.clone(), codec_copy(&n.value)?)),
                        false => None,
                    };
                    let old = t.unlink(h, b);
                    counts.len.fetch_sub(1, Ordering::Relaxed);
                    if let Some(pair) = copy {
                        t.retire(old, &scope);
                        return Ok(Some(pair));
                    }
                    return match old.into_pair().try_into_inner() {
                        Ok(n) => Ok(Some((n.key, n.value))),
                        Err((e, pair)) => {
                            t.insert(Bucket::new(h, pair, 0));
                            counts.len.fetch_add(1, Ordering::Relaxed);
                            Err(e)
                        }
                    };
                }
                Probe::Miss { dead } => {
                    drop(scope);
                    if dead {
                        t.sweep();
                    }
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
