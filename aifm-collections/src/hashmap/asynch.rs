//! Async lookups: [`RemHashMap::get_async`] and [`RemHashMap::get_many_async`], on any
//! executor, and [`RemHashMap::insert_async`], whose far pair comes home the same way.
//!
//! # How misses overlap
//!
//! A lookup first probes the local index, as `get` does; a hit (or a key whose shard has
//! nothing in far memory) is answered at once. The keys that miss join the polling thread's
//! batch for this map ([`aifm_core::prefetch::batched`]): every task of the thread queues its
//! misses and yields once, and the first of them polled again answers the whole batch with
//! **one** [`RemHashMap::try_get_many_cloned`] of the distinct keys: one `read_many` and one
//! `remove_many` for every miss of every task, with the shard locks held across the round
//! trip exactly as the synchronous path holds them (so a pair is never brought home twice,
//! nor lost). No thread is parked per miss, and none but the executor's is involved.
//!
//! A future dropped while its keys are queued takes them out; a failed batch (the server
//! died, a timeout) resolves every lookup in it to a clone of the error, the pairs staying in
//! far memory.
//!
//! # What it uses of the map
//!
//! The local probe (`Core::read_local`), the per-shard far counts (`Counts::maybe_far`) and
//! the hash; the misses go through the public [`RemHashMap::try_get_many_cloned`].

use super::far::shard_index;
use super::RemHashMap;
use aifm_core::prefetch::batched;
use aifm_core::{FarData, Result};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// What the local probe found.
enum Local<V> {
    /// In local memory (a clone of the value).
    Hit(V),
    /// Not in the map: not local, and its shard has nothing in far memory.
    Absent,
    /// Not local; far memory may have it.
    MaybeFar,
}

impl<K, V, S> RemHashMap<K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData + Clone,
    S: BuildHasher + Send + Sync + 'static,
{
    /// The local index's answer for `q`, without asking far memory.
    fn probe_local<Q>(&self, q: &Q) -> Result<Local<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = self.shared.hash(q);
        let si = shard_index(h);
        if let Some(r) = self.core.read_local(si, h, q)? {
            return Ok(Local::Hit((*r).clone()));
        }
        Ok(match self.shared.counts.maybe_far(si) {
            true => Local::MaybeFar,
            false => Local::Absent,
        })
    }

    /// The values of `keys` with one batched lookup of the distinct ones (keys repeat across
    /// the tasks of a batch; the map must not be asked twice for one pair).
    fn lookup_distinct(&self, keys: Vec<K>) -> Result<Vec<Option<V>>> {
        let mut distinct: Vec<K> = Vec::new();
        let mut at: HashMap<&K, usize> = HashMap::new();
        let places: Vec<usize> = keys
            .iter()
            .map(|k| {
                *at.entry(k).or_insert_with(|| {
                    distinct.push(k.clone());
                    distinct.len() - 1
                })
            })
            .collect();
        // `try_get_many_cloned` probes locally first, so a key brought home since it was
        // queued costs no round trip.
        let values = self.try_get_many_cloned(&distinct)?;
        Ok(places.into_iter().map(|i| values[i].clone()).collect())
    }

    /// Waits for the values of `keys` (all local misses) with the thread's batch.
    async fn misses(&self, keys: Vec<K>) -> Result<Vec<Option<V>>> {
        let owner = self as *const Self as usize;
        batched(owner, keys, |all| self.lookup_distinct(all)).await
    }

    /// A clone of the value of `k`, fetching the pair from far memory with the misses of
    /// the thread's other tasks: the misses of all of a thread's tasks are fetched by one
    /// `read_many` ([`aifm_core::prefetch::batched`]), made by the first of them polled
    /// again, under the shard locks as [`RemHashMap::get`] holds them. Works on any executor.
    ///
    /// # Errors
    /// As [`RemHashMap::try_get`]; when far memory fails, every lookup of the failed batch
    /// gets the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::Future;
    /// let m: aifm_collections::RemHashMap<u32, u32> = (0..10).map(|i| (i, i * 3)).collect();
    /// let mut fut = std::pin::pin!(m.get_async(&4));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// let v = loop {
    ///     if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
    ///         break v.unwrap();
    ///     }
    /// };
    /// assert_eq!(v, Some(12));
    /// ```
    pub async fn get_async<Q>(&self, k: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.probe_local(k)? {
            Local::Hit(v) => Ok(Some(v)),
            Local::Absent => Ok(None),
            Local::MaybeFar => Ok(self.misses(vec![k.to_owned()]).await?.pop().flatten()),
        }
    }

    /// Inserts `v` under `k` and returns the old value, like [`RemHashMap::try_insert`], but
    /// a far pair of `k` is first brought home with the thread's batch (one round trip
    /// shared with the other tasks' misses), so the write itself finds it local instead of
    /// reading and removing the server's copy in two round trips of its own.
    ///
    /// # Errors
    /// As [`RemHashMap::try_insert`] and [`RemHashMap::get_async`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::Future;
    /// let m: aifm_collections::RemHashMap<u32, u32> = (0..10).map(|i| (i, i)).collect();
    /// let mut fut = std::pin::pin!(m.insert_async(3, 30));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// let old = loop {
    ///     if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
    ///         break v.unwrap();
    ///     }
    /// };
    /// assert_eq!((old, m.get_cloned(&3)), (Some(3), Some(30)));
    /// ```
    pub async fn insert_async(&self, k: K, v: V) -> Result<Option<V>> {
        if let Local::MaybeFar = self.probe_local(&k)? {
            self.misses(vec![k.clone()]).await?;
        }
        // Evacuated again meanwhile (memory pressure): the insert reads the far copy itself.
        self.try_insert(k, v)
    }

    /// Clones of the values of `keys`, in order: [`RemHashMap::get_async`] for a request that
    /// needs several lookups (its misses join the thread's batch together).
    ///
    /// # Errors
    /// As [`RemHashMap::get_async`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::Future;
    /// let m: aifm_collections::RemHashMap<u32, u32> = (0..10).map(|i| (i, i)).collect();
    /// let mut fut = std::pin::pin!(m.get_many_async(&[1, 20, 3]));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// let v = loop {
    ///     if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
    ///         break v.unwrap();
    ///     }
    /// };
    /// assert_eq!(v, [Some(1), None, Some(3)]);
    /// ```
    pub async fn get_many_async(&self, keys: &[K]) -> Result<Vec<Option<V>>> {
        let mut out: Vec<Option<V>> = Vec::with_capacity(keys.len());
        let mut missed: Vec<usize> = Vec::new();
        // As the blocking batch does: all the probes' cache misses in flight at once.
        let located: Vec<(usize, u64)> = keys.iter().map(|k| self.locate(k)).collect();
        self.prefetch_lookups(&located);
        for (i, (k, &(si, h))) in keys.iter().zip(&located).enumerate() {
            out.push(match self.core.read_local(si, h, k)? {
                Some(r) => Some((*r).clone()),
                None if self.shared.counts.maybe_far(si) => {
                    missed.push(i);
                    None
                }
                None => None,
            });
        }
        if missed.is_empty() {
            return Ok(out);
        }
        let asked = missed.iter().map(|&i| keys[i].clone()).collect();
        for (i, v) in missed.into_iter().zip(self.misses(asked).await?) {
            out[i] = v;
        }
        Ok(out)
    }
}
