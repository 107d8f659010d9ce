//! Whole-map operations, one shard at a time: snapshots for the iterators, `retain`,
//! `drain`, `clear`.
//!
//! Each takes the shard's write lock once no `RefMut` holds a pair of it (so a thread that
//! holds a `RefMut` must not call these on the same map: it would wait for itself), and keeps
//! one dereference scope over its local pass and its scan of the shard's far pairs: a pair it
//! saw locally cannot be evicted (and so also appear in the scan) before it is done. The one
//! pair that can be in both halves is a local pair flagged `FAR_COPY` (a stale server copy);
//! the local pair wins.

use super::far::far_key;
use super::index::{backoff, codec_copy, Bucket, Table, FAR_COPY};
use super::{RemHashMap, SHARDS};
use crate::common::fail;
use crate::vec::RemVec;
use aifm_core::codec::decode_serde;
use aifm_core::{Error, FarData, Result, Scope};
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::Ordering;
use std::sync::RwLockWriteGuard;

impl<K, V, S> RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Shard `si`'s write lock, taken when no `RefMut` holds any of its pairs; tombstones and
    /// retired pairs no guard can hold any more are dropped.
    fn lock_quiet(&self, si: usize) -> RwLockWriteGuard<'_, Table<K, V>> {
        let mut spins = 0;
        loop {
            let mut t = self.core.shards[si].write();
            if !t.has_writer() {
                t.sweep();
                return t;
            }
            drop(t);
            backoff(&mut spins);
        }
    }

    /// The far pairs of shard `si` with their server keys.
    fn scan(&self, si: usize) -> Result<Vec<(Vec<u8>, K, V)>> {
        if !self.shared.counts.maybe_far(si) {
            return Ok(Vec::new());
        }
        let out = self
            .core
            .structure
            .compute(super::device::SCAN, &(si as u16).to_le_bytes())?;
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = decode_serde(&out)?;
        pairs
            .into_iter()
            .map(|(k, v)| {
                let key = K::decode(k.get(2..).ok_or_else(|| {
                    Error::Protocol("a map key without its shard prefix".into())
                })?)?;
                Ok((k, key, V::decode(&v)?))
            })
            .collect()
    }

    /// Every pair of shard `si`, projected by `local` (local pairs) or `far` (far pairs).
    pub(crate) fn shard_snapshot<T>(
        &self,
        si: usize,
        local: fn(&K, &V) -> T,
        far: fn(K, V) -> T,
    ) -> Result<Vec<T>> {
        let t = self.lock_quiet(si);
        let scope = Scope::new();
        let mut out = Vec::with_capacity(t.live.len());
        let mut stale = HashSet::new();
        for b in t.live.iter() {
            // SAFETY: write lock held and no WRITER in the shard.
            match unsafe { b.pair() }.try_deref(&scope) {
                Ok(n) => {
                    if n.flags.load(Ordering::Acquire) & FAR_COPY != 0 {
                        stale.insert(far_key(si, &n.key)?);
                    }
                    out.push(local(&n.key, &n.value));
                }
                Err(Error::Detached) => {}
                Err(e) => return Err(e),
            }
        }
        for (kb, k, v) in self.scan(si)? {
            if !stale.contains(&kb) {
                out.push(far(k, v));
            }
        }
        Ok(out)
    }

    /// Keeps the pairs for which `keep` is true (it may also change the value). Far pairs
    /// are decoded, judged and written back (or removed) one shard at a time.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u8> = (0..10).map(|i| (i, i)).collect();
    /// m.retain(|k, v| { *v += 1; k % 2 == 0 });
    /// assert_eq!(m.len(), 5);
    /// assert_eq!(m.get_cloned(&4), Some(5));
    /// ```
    #[track_caller]
    pub fn retain(&self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        for si in 0..SHARDS {
            if let Err(e) = self.retain_shard(si, &mut keep) {
                fail("RemHashMap::retain", e)
            }
        }
    }

    fn retain_shard(&self, si: usize, keep: &mut impl FnMut(&K, &mut V) -> bool) -> Result<()> {
        let counts = &self.shared.counts;
        let ds = self.core.structure.id();
        let backend = self.core.structure.backend();
        let mut t = self.lock_quiet(si);
        let scope = Scope::new();
        let mut dropped = 0;
        let mut stale = HashSet::new();
        let buckets: Vec<_> = t.live.drain().collect();
        let mut rest = buckets.into_iter();
        while let Some(b) = rest.next() {
            let r = self.judge(&mut t, si, b, keep, &scope, &mut stale);
            match r {
                Ok(true) => {}
                Ok(false) => dropped += 1,
                Err(e) => {
                    for b in rest {
                        t.insert(b);
                    }
                    counts.len.fetch_sub(dropped, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        for (kb, k, mut v) in self.scan(si)? {
            if stale.contains(&kb) {
                continue;
            }
            if keep(&k, &mut v) {
                let mut bytes = Vec::new();
                v.encode(&mut bytes)?;
                backend.write(ds, &kb, &bytes)?;
            } else {
                backend.remove(ds, &kb)?;
                counts.settled(si);
                dropped += 1;
            }
        }
        counts.len.fetch_sub(dropped, Ordering::Relaxed);
        Ok(())
    }

    /// Judges one local bucket for `retain`, putting it back if kept; whether it was kept.
    /// On error the bucket is back in the table, unchanged.
    fn judge(
        &self,
        t: &mut Table<K, V>,
        si: usize,
        b: Bucket<K, V>,
        keep: &mut impl FnMut(&K, &mut V) -> bool,
        scope: &Scope,
        stale: &mut HashSet<Vec<u8>>,
    ) -> Result<bool> {
        let counts = &self.shared.counts;
        let ds = self.core.structure.id();
        let h = b.hash;
        // SAFETY: write lock held, no WRITER in the shard.
        let node = match unsafe { b.pair() }.try_deref(scope) {
            Ok(n) => n,
            Err(Error::Detached) => return Ok(true),
            Err(e) => {
                t.insert(b);
                return Err(e);
            }
        };
        let far = node.flags.load(Ordering::Acquire) & FAR_COPY;
        let far_key = match far != 0 {
            true => Some(far_key(si, &node.key)?),
            false => None,
        };
        let drop_far = |fk: &Option<Vec<u8>>| -> Result<()> {
            if let Some(fk) = fk {
                self.core.structure.backend().remove(ds, fk)?;
                counts.settled(si);
            }
            Ok(())
        };
        if self.core.shards[si].guarded() {
            // Readers hold the pair: judge a copy; they keep the old one.
            let k = node.key.clone();
            let mut v = match codec_copy(&node.value) {
                Ok(v) => v,
                Err(e) => {
                    t.insert(b);
                    return Err(e);
                }
            };
            if keep(&k, &mut v) {
                let new = match self.core.node(counts, k, v, far) {
                    Ok(n) => n,
                    Err(e) => {
                        t.insert(b);
                        return Err(e);
                    }
                };
                let new = Bucket::new(h, new, 0);
                new.publish(scope);
                t.insert(new);
                t.retire(b, scope);
                stale.extend(far_key);
                return Ok(true);
            }
            if let Err(e) = drop_far(&far_key) {
                t.insert(b);
                return Err(e);
            }
            t.retire(b, scope);
            return Ok(false);
        }
        // SAFETY: write lock held and no guard in the shard: the pair is ours alone.
        let node = unsafe { b.pair_mut() }.try_deref_mut(scope)?;
        if keep(&node.key, &mut node.value) {
            t.insert(b);
            stale.extend(far_key);
            return Ok(true);
        }
        if let Err(e) = drop_far(&far_key) {
            t.insert(b);
            return Err(e);
        }
        Ok(false)
    }

    /// Removes every pair.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u8> = (0..10).map(|i| (i, i)).collect();
    /// m.clear();
    /// assert!(m.is_empty() && m.get(&1).is_none());
    /// ```
    #[track_caller]
    pub fn clear(&self) {
        for si in 0..SHARDS {
            if let Err(e) = self.clear_shard(si) {
                fail("RemHashMap::clear", e)
            }
        }
    }

    fn clear_shard(&self, si: usize) -> Result<()> {
        let counts = &self.shared.counts;
        let mut t = self.lock_quiet(si);
        let scope = Scope::new();
        let mut n = 0;
        let mut far_copies = 0;
        for b in t.live.drain().collect::<Vec<_>>() {
            n += 1;
            // SAFETY: write lock held and no WRITER in the shard.
            if let Ok(node) = unsafe { b.pair() }.try_deref(&scope) {
                if node.flags.load(Ordering::Acquire) & FAR_COPY != 0 {
                    far_copies += 1;
                }
            }
            if self.core.shards[si].guarded() {
                t.retire(b, &scope);
            }
            // Unguarded pairs drop here.
        }
        drop(scope);
        if counts.maybe_far(si) {
            self.core
                .structure
                .compute(super::device::CLEAR_SHARD, &(si as u16).to_le_bytes())?;
            // Far pairs, less the stale copies of local pairs counted above.
            n += counts.remote[si]
                .swap(0, Ordering::AcqRel)
                .saturating_sub(far_copies);
        }
        let _ = counts
            .len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                Some(l.saturating_sub(n))
            });
        Ok(())
    }

    /// Removes every pair and returns them (moved into a [`RemVec`] in the same runtime
    /// first, so a large drain stays in far memory).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u8, u8> = (0..3).map(|i| (i, i)).collect();
    /// let mut d: Vec<_> = m.drain().collect();
    /// d.sort();
    /// assert_eq!(d, [(0, 0), (1, 1), (2, 2)]);
    /// assert!(m.is_empty());
    /// ```
    #[track_caller]
    pub fn drain(&self) -> crate::vec::IntoIter<(K, V)> {
        let mut out = RemVec::new_in(self.runtime());
        for si in 0..SHARDS {
            if let Err(e) = self.drain_shard(si, &mut out) {
                fail("RemHashMap::drain", e)
            }
        }
        out.into_iter()
    }

    fn drain_shard(&self, si: usize, out: &mut RemVec<(K, V)>) -> Result<()> {
        let counts = &self.shared.counts;
        let mut t = self.lock_quiet(si);
        let scope = Scope::new();
        let mut stale = HashSet::new();
        let mut n = 0;
        let buckets: Vec<_> = t.live.drain().collect();
        for b in buckets {
            // SAFETY: write lock held and no WRITER in the shard.
            let node = match unsafe { b.pair() }.try_deref(&scope) {
                Ok(n) => n,
                Err(Error::Detached) => continue,
                Err(e) => return Err(e),
            };
            if node.flags.load(Ordering::Acquire) & FAR_COPY != 0 {
                stale.insert(far_key(si, &node.key)?);
            }
            let pair = if self.core.shards[si].guarded() {
                let p = (node.key.clone(), codec_copy(&node.value)?);
                t.retire(b, &scope);
                p
            } else {
                let h = b.hash;
                match b.into_pair().try_into_inner() {
                    Ok(n) => (n.key, n.value),
                    Err((e, pair)) => {
                        t.insert(Bucket::new(h, pair, 0));
                        return Err(e);
                    }
                }
            };
            out.try_push(pair)?;
            n += 1;
        }
        for (kb, k, v) in self.scan(si)? {
            if !stale.contains(&kb) {
                out.try_push((k, v))?;
                n += 1;
            }
        }
        drop(scope);
        if counts.maybe_far(si) {
            self.core
                .structure
                .compute(super::device::CLEAR_SHARD, &(si as u16).to_le_bytes())?;
            counts.remote[si].store(0, Ordering::Release);
        }
        let _ = counts
            .len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                Some(l.saturating_sub(n))
            });
        Ok(())
    }
}
