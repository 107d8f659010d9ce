//! Whole-map operations, one shard at a time: snapshots for the iterators, `retain`,
//! `drain`, `clear`.
//!
//! Each takes the shard's mutex once no `RefMut` holds a pair of it (so a thread that holds a
//! `RefMut` must not call these on the same map: it would wait for itself), and keeps one
//! dereference scope over its local pass and its scan of the shard's far pairs: a pair it saw
//! locally cannot be evicted (and so also appear in the scan) before it is done. The one pair
//! that can be in both halves is a local pair flagged `FAR_COPY` (a stale server copy); the
//! local pair wins. Readers go on meanwhile: a pair they hold is judged or drained as a copy,
//! as single-key writers do.

use super::far::far_key;
use super::index::{backoff, codec_copy, Node, Writer, DEAD, FAR_COPY, WRITER};
use super::{RemHashMap, SHARDS};
use crate::common::fail;
use crate::vec::RemVec;
use aifm_core::codec::decode_serde;
use aifm_core::{Error, FarData, Result, Scope};
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU32, Ordering};

/// Clears `WRITER` on a node judged in place when dropped, also if `keep` panics.
struct Judging<'a>(&'a AtomicU32);

impl Drop for Judging<'_> {
    fn drop(&mut self) {
        self.0.fetch_and(!WRITER, Ordering::Release);
    }
}

impl<K, V, S> RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Shard `si`'s mutex, taken when no `RefMut` holds any of its pairs; tombstones are
    /// dropped.
    fn lock_quiet(&self, si: usize) -> Writer<'_, K, V> {
        let mut spins = 0;
        loop {
            let mut w = self.core.shards[si].write();
            let scope = Scope::new();
            if !w.has_writer(&scope) {
                w.sweep(&scope);
                return w;
            }
            drop((scope, w));
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
        let w = self.lock_quiet(si);
        let scope = Scope::new();
        let mut out = Vec::new();
        let mut stale = HashSet::new();
        for i in w.entries() {
            match w.node(w.pair(i), &scope) {
                Ok(n) => {
                    // SAFETY: in the index under this mutex hold, through `scope`.
                    let n = unsafe { &*n };
                    if n.flags.load(Ordering::Acquire) & FAR_COPY != 0 {
                        stale.insert(far_key(si, &n.key)?);
                    }
                    // SAFETY: mutex held and no `WRITER` in the shard (new ones need the
                    // mutex): readers only read.
                    out.push(local(&n.key, unsafe { n.value() }));
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
        let mut w = self.lock_quiet(si);
        let scope = Scope::new();
        let mut dropped = 0;
        let mut stale = HashSet::new();
        for i in w.entries() {
            let n: *const Node<K, V> = match w.node(w.pair(i), &scope) {
                Ok(n) => n,
                Err(Error::Detached) => continue,
                Err(e) => {
                    counts.len.fetch_sub(dropped, Ordering::Relaxed);
                    return Err(e);
                }
            };
            match self.judge(&mut w, si, i, n, keep, &scope, &mut stale) {
                Ok(true) => {}
                Ok(false) => dropped += 1,
                Err(e) => {
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

    /// Judges the pair of entry `i` (node `n`, dereferenced through `scope`) for `retain`;
    /// whether it was kept. On error the pair is unchanged.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        w: &mut Writer<'_, K, V>,
        si: usize,
        i: usize,
        n: *const Node<K, V>,
        keep: &mut impl FnMut(&K, &mut V) -> bool,
        scope: &Scope,
        stale: &mut HashSet<Vec<u8>>,
    ) -> Result<bool> {
        let counts = &self.shared.counts;
        let ds = self.core.structure.id();
        // SAFETY: found under this mutex hold through `scope`, still open.
        let node = unsafe { &*n };
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
        // SAFETY: as above.
        if unsafe { w.claim_writer(n) } {
            // No reader: judged in place.
            let judging = Judging(&node.state);
            // SAFETY: `WRITER` is ours (the guard clears it), and this is the one reference.
            if keep(&node.key, unsafe { node.value_mut() }) {
                stale.extend(far_key);
                return Ok(true);
            }
            drop_far(&far_key)?;
            node.state.fetch_or(DEAD, Ordering::AcqRel);
            drop(judging);
            w.unlink(i, scope);
            return Ok(false);
        }
        // Readers hold the pair: judge a copy; they keep the old one.
        let k = node.key.clone();
        // SAFETY: readers only read; we hold the mutex.
        let mut v = codec_copy(unsafe { node.value() })?;
        if keep(&k, &mut v) {
            let new = w.alloc(k, v, far)?;
            let c = match w.node(new, scope) {
                Ok(c) => c,
                Err(e) => {
                    w.discard(new);
                    return Err(e);
                }
            };
            // SAFETY: our own pending pair, dereferenced through `scope`.
            unsafe { &*c }
                .flags
                .fetch_and(!super::index::PENDING, Ordering::AcqRel);
            // SAFETY: found under this hold; replaced just below.
            unsafe { w.kill(n) };
            w.replace(i, new, c, scope);
            stale.extend(far_key);
            return Ok(true);
        }
        drop_far(&far_key)?;
        // SAFETY: as above.
        unsafe { w.kill(n) };
        w.unlink(i, scope);
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
        let mut w = self.lock_quiet(si);
        let scope = Scope::new();
        let mut n = 0;
        let mut far_copies = 0;
        for i in w.entries() {
            n += 1;
            if let Ok(node) = w.node(w.pair(i), &scope) {
                // SAFETY: in the index under this hold, through `scope`.
                if unsafe { &*node }.flags.load(Ordering::Acquire) & FAR_COPY != 0 {
                    far_copies += 1;
                }
                // SAFETY: found under this hold through `scope`; unlinked just below.
                unsafe { w.kill(node) };
            }
            // Readers keep the pair until they are done; the epoch drops it after them.
            w.unlink(i, &scope);
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
        let mut w = self.lock_quiet(si);
        let scope = Scope::new();
        let mut stale = HashSet::new();
        let mut n = 0;
        for i in w.entries() {
            let node: *const Node<K, V> = match w.node(w.pair(i), &scope) {
                Ok(n) => n,
                Err(Error::Detached) => continue,
                Err(e) => return Err(e),
            };
            // SAFETY: found under this hold through `scope`, still open.
            let found = unsafe { &*node };
            let key = found.key.clone();
            if found.flags.load(Ordering::Acquire) & FAR_COPY != 0 {
                stale.insert(far_key(si, &key)?);
            }
            // SAFETY: as above; unlinked just below.
            let value = unsafe { w.take_value(node) }?;
            w.unlink(i, &scope);
            out.try_push((key, value))?;
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
