//! The map's public single-key operations: lookups (by any borrowed form of the key),
//! writes, removals, the entry point of the entry API, and batched lookups. Each goes to its
//! shard's `Core` operation (see the `core` module) and reports far-memory failures in its
//! `try_` form; the plain forms panic on them, as std's would on allocation failure.

use super::far::shard_index;
use super::{Entry, Ref, RefMut, RemHashMap, VacantEntry};
use crate::common::fail;
use aifm_core::{FarData, Result};
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

impl<K, V, S> RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData,
    S: BuildHasher + Send + Sync + 'static,
{
    pub(super) fn locate<Q: Hash + ?Sized>(&self, q: &Q) -> (usize, u64) {
        let h = self.shared.hash(q);
        (shard_index(h), h)
    }

    /// Overlaps the cache misses of a batch of lookups: every first entry, then every
    /// pointer word and node, are requested before the first probe waits for any of them.
    pub(super) fn prefetch_lookups(&self, located: &[(usize, u64)]) {
        let pin = crossbeam_epoch::pin();
        for stage in 0..2 {
            for &(si, h) in located {
                self.core.shards[si].prefetch(h, stage, &pin);
            }
        }
    }

    /// A guard for the value of `k`, fetching the pair from far memory if needed. Any
    /// borrowed form of the key works, as with `HashMap::get`.
    ///
    /// # Panics
    /// If far memory fails (see [`RemHashMap::try_get`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert("one".to_string(), 1u32);
    /// assert_eq!(m.get("one").as_deref(), Some(&1));
    /// assert!(m.get("two").is_none());
    /// ```
    #[track_caller]
    pub fn get<Q>(&self, k: &Q) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.try_get(k) {
            Ok(r) => r,
            Err(e) => fail("RemHashMap::get", e),
        }
    }

    /// [`RemHashMap::get`], reporting far-memory failures (the pair stays in far memory).
    ///
    /// # Errors
    /// Backend errors, [`aifm_core::Error::Codec`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u32, 1u32);
    /// assert_eq!(*m.try_get(&1).unwrap().unwrap(), 1);
    /// ```
    pub fn try_get<Q>(&self, k: &Q) -> Result<Option<Ref<'_, K, V>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let (si, h) = self.locate(k);
        loop {
            if let Some(r) = self.core.read_local(si, h, k)? {
                return Ok(Some(r));
            }
            if !self.core.fetch(&self.shared.counts, si, h, k)? {
                return Ok(None);
            }
        }
    }

    /// The key and value of `k`, as a guard ([`Ref::key`] and `*guard`).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert("k".to_string(), 2u8);
    /// let kv = m.get_key_value("k").unwrap();
    /// assert_eq!((kv.key().as_str(), *kv), ("k", 2));
    /// ```
    #[track_caller]
    pub fn get_key_value<Q>(&self, k: &Q) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.get(k)
    }

    /// A mutable guard for the value of `k`.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u32, vec![1u8]);
    /// m.get_mut(&1).unwrap().push(2);
    /// assert_eq!(m.get_cloned(&1), Some(vec![1, 2]));
    /// ```
    #[track_caller]
    pub fn get_mut<Q>(&self, k: &Q) -> Option<RefMut<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.try_get_mut(k) {
            Ok(r) => r,
            Err(e) => fail("RemHashMap::get_mut", e),
        }
    }

    /// [`RemHashMap::get_mut`], reporting far-memory failures.
    ///
    /// # Errors
    /// As [`RemHashMap::try_get`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u32, 1u32);
    /// *m.try_get_mut(&1).unwrap().unwrap() = 3;
    /// assert_eq!(m.get_cloned(&1), Some(3));
    /// ```
    pub fn try_get_mut<Q>(&self, k: &Q) -> Result<Option<RefMut<'_, K, V>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let (si, h) = self.locate(k);
        let counts = &self.shared.counts;
        loop {
            if let Some(r) = self.core.write_local(si, h, k)? {
                return Ok(Some(r));
            }
            if !self.core.fetch(counts, si, h, k)? {
                return Ok(None);
            }
        }
    }

    /// A clone of the value of `k`.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u32, 1u32);
    /// assert_eq!(m.get_cloned(&1), Some(1));
    /// ```
    #[track_caller]
    pub fn get_cloned<Q>(&self, k: &Q) -> Option<V>
    where
        V: Clone,
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.get(k).map(|r| (*r).clone())
    }

    /// Clones of the values of many keys, with **one** far-memory round trip for all the keys
    /// that missed locally (instead of one each): what a request that needs several lookups
    /// should use.
    ///
    /// # Panics
    /// If far memory fails (see [`RemHashMap::try_get_many_cloned`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u32, u32> = (0..100).map(|i| (i, i * 2)).collect();
    /// assert_eq!(m.get_many_cloned(&[3, 200, 7]), [Some(6), None, Some(14)]);
    /// ```
    #[track_caller]
    pub fn get_many_cloned(&self, keys: &[K]) -> Vec<Option<V>>
    where
        V: Clone,
    {
        match self.try_get_many_cloned(keys) {
            Ok(v) => v,
            Err(e) => fail("RemHashMap::get_many_cloned", e),
        }
    }

    /// [`RemHashMap::get_many_cloned`], reporting far-memory failures. Whatever fails, every
    /// pair stays in the map. When far memory cannot answer the batch in one reply (it does
    /// not fit a frame), the misses are asked for one by one.
    ///
    /// # Errors
    /// Backend errors, [`aifm_core::Error::Codec`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m: aifm_collections::RemHashMap<u32, u32> = (0..10).map(|i| (i, i)).collect();
    /// assert_eq!(m.try_get_many_cloned(&[1, 2]).unwrap(), [Some(1), Some(2)]);
    /// ```
    pub fn try_get_many_cloned(&self, keys: &[K]) -> Result<Vec<Option<V>>>
    where
        V: Clone,
    {
        let counts = &self.shared.counts;
        let mut out: Vec<Option<V>> = keys.iter().map(|_| None).collect();
        let mut at: Vec<usize> = Vec::new();
        let mut misses: Vec<(usize, u64, K)> = Vec::new();
        let located: Vec<(usize, u64)> = keys.iter().map(|k| self.locate(k)).collect();
        self.prefetch_lookups(&located);
        for (i, (k, &(si, h))) in keys.iter().zip(&located).enumerate() {
            match self.core.read_local(si, h, k)? {
                Some(r) => out[i] = Some((*r).clone()),
                None if counts.maybe_far(si) => {
                    at.push(i);
                    misses.push((si, h, k.clone()));
                }
                None => {}
            }
        }
        if misses.is_empty() {
            return Ok(out);
        }
        let got = match self.core.adopt_many(counts, &misses) {
            Ok(got) => got,
            Err(e) if e.is_disconnected() => return Err(e),
            // Most likely a reply too large for one frame: one by one, then.
            Err(_) => misses.iter().map(|_| None).collect(),
        };
        for ((i, (_, _, k)), v) in at.into_iter().zip(&misses).zip(got) {
            out[i] = match v {
                Some(v) => Some(v),
                // Not far after all, or brought home meanwhile, or not asked: look again.
                None => self.try_get(k)?.map(|r| (*r).clone()),
            };
        }
        Ok(out)
    }

    /// Whether `k` is in the map (asking far memory if needed).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u32, ());
    /// assert!(m.contains_key(&1) && !m.contains_key(&2));
    /// ```
    #[track_caller]
    pub fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.get(k).is_some()
    }

    /// Inserts a pair, returning the old value of the key if there was one.
    ///
    /// # Panics
    /// If far memory fails (see [`RemHashMap::try_insert`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// assert_eq!(m.insert(1u8, 'a'), None);
    /// assert_eq!(m.insert(1u8, 'b'), Some('a'));
    /// ```
    #[track_caller]
    pub fn insert(&self, k: K, v: V) -> Option<V> {
        match self.try_insert(k, v) {
            Ok(old) => old,
            Err(e) => fail("RemHashMap::insert", e),
        }
    }

    /// [`RemHashMap::insert`], reporting far-memory failures (the map is unchanged then).
    ///
    /// # Errors
    /// Backend errors; [`aifm_core::Error::LocalMemoryExhausted`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// assert_eq!(m.try_insert(1u8, 2u8).unwrap(), None);
    /// ```
    pub fn try_insert(&self, k: K, v: V) -> Result<Option<V>> {
        let (si, h) = self.locate(&k);
        let counts = &self.shared.counts;
        Ok(self.core.put(counts, si, h, (k, v), false)?.0)
    }

    /// Removes `k`, returning its value.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert(1u8, 2u8);
    /// assert_eq!(m.remove(&1), Some(2));
    /// assert_eq!(m.remove(&1), None);
    /// ```
    #[track_caller]
    pub fn remove<Q>(&self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.remove_entry(k).map(|(_, v)| v)
    }

    /// Removes `k`, returning its key and value.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// m.insert("a".to_string(), 2u8);
    /// assert_eq!(m.remove_entry("a"), Some(("a".to_string(), 2)));
    /// ```
    #[track_caller]
    pub fn remove_entry<Q>(&self, k: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.try_remove_entry(k) {
            Ok(v) => v,
            Err(e) => fail("RemHashMap::remove", e),
        }
    }

    /// [`RemHashMap::remove`], reporting far-memory failures (the map is unchanged then).
    ///
    /// # Errors
    /// Backend errors.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// assert_eq!(m.try_remove(&1).unwrap(), None);
    /// ```
    pub fn try_remove<Q>(&self, k: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        Ok(self.try_remove_entry(k)?.map(|(_, v)| v))
    }

    /// [`RemHashMap::remove_entry`], reporting far-memory failures (the map is unchanged
    /// then).
    ///
    /// # Errors
    /// Backend errors.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// assert_eq!(m.try_remove_entry(&1).unwrap(), None);
    /// ```
    pub fn try_remove_entry<Q>(&self, k: &Q) -> Result<Option<(K, V)>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let (si, h) = self.locate(k);
        self.core.remove(&self.shared.counts, si, h, k)
    }

    /// The entry of `k`, for in-place manipulation. It holds no lock: an occupied entry is a
    /// [`RefMut`]; a vacant one re-checks the key when it inserts.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::new();
    /// for w in "a b a".split(' ') {
    ///     *m.entry(w.to_string()).or_insert(0u32) += 1;
    /// }
    /// assert_eq!(m.get_cloned("a"), Some(2));
    /// ```
    #[track_caller]
    pub fn entry(&self, k: K) -> Entry<'_, K, V> {
        match self.try_entry(k) {
            Ok(e) => e,
            Err(e) => fail("RemHashMap::entry", e),
        }
    }

    /// [`RemHashMap::entry`], reporting far-memory failures.
    ///
    /// # Errors
    /// As [`RemHashMap::try_get`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = aifm_collections::RemHashMap::<u8, u8>::new();
    /// m.try_entry(1).unwrap().or_insert(2);
    /// assert_eq!(m.get_cloned(&1), Some(2));
    /// ```
    pub fn try_entry(&self, k: K) -> Result<Entry<'_, K, V>> {
        let (si, h) = self.locate(&k);
        let counts = &self.shared.counts;
        loop {
            if let Some(r) = self.core.write_local(si, h, &k)? {
                return Ok(Entry::Occupied(r));
            }
            if !self.core.fetch(counts, si, h, &k)? {
                return Ok(Entry::Vacant(VacantEntry::new(
                    k, si, h, &self.core, counts,
                )));
            }
        }
    }
}
