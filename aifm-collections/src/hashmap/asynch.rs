//! Async lookups: [`RemHashMap::get_async`] and [`RemHashMap::get_many_async`], on any
//! executor.
//!
//! # How misses overlap
//!
//! A lookup first probes the local index, as `get` does; a hit (or a key the shard has
//! nothing of in far memory) is answered at once. A miss is not fetched there: the future
//! queues its keys in a *batch* shared by every async lookup of the same map on the same
//! thread, wakes itself and returns `Pending` once. The executor then polls the thread's other
//! ready tasks, which queue their misses in the same batch; when the first of the queued
//! futures is polled again it takes the whole batch and answers it with **one**
//! [`RemHashMap::try_get_many_cloned`]: one `read_many` and one `remove_many` for every miss
//! of every task, pipelined on the backend's connection, the shard locks held across the
//! round trip exactly as the synchronous path holds them (so a pair is never brought home
//! twice, nor lost). The other futures find their answers when polled; each is woken.
//!
//! So there is no thread per outstanding miss, and no thread at all besides the executor's:
//! the thread that polls a batch's future blocks for that batch's round trip, which amortises
//! one round trip over all the misses its tasks had in flight. With several serving threads,
//! each drives its own batches and their round trips overlap on the connection.
//!
//! What this relies on from the executor: a task woken while it is being polled is polled
//! again after the other tasks that are ready (what tokio's, smol's and futures' executors
//! do). An executor that re-polls at once just makes smaller batches.
//!
//! # Cancellation
//!
//! A future dropped while its keys are queued takes them out of the batch; one dropped while
//! another future answers its batch leaves its answer unread (the pairs are home either way).
//! Any future in the batch may answer it, so no queued future waits for one that is gone.
//!
//! # Errors
//!
//! A batch that fails (the server died, a timeout) resolves every future of the batch to a
//! clone of the error; the pairs stay in far memory.
//!
//! # What it uses of the map
//!
//! The local probe (`Core::read_local`), the per-shard far counts (`Counts::maybe_far`) and
//! the hash; the misses go through the public [`RemHashMap::try_get_many_cloned`].

use super::far::shard_index;
use super::RemHashMap;
use aifm_core::{FarData, Result};
use std::any::Any;
use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

/// What one queued request resolves to: one value per key.
type Answer<V> = Result<Vec<Option<V>>>;

/// Where a request's answer lands.
struct Slot<V> {
    state: Mutex<(Option<Answer<V>>, Option<Waker>)>,
}

impl<V> Slot<V> {
    /// The answer if it is in; else remembers `waker` for it.
    fn take_or_wait(&self, waker: &Waker) -> Option<Answer<V>> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.0.take() {
            Some(a) => Some(a),
            None => {
                if !s.1.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    s.1 = Some(waker.clone());
                }
                None
            }
        }
    }

    fn answer(&self, a: Answer<V>) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.0 = Some(a);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The keys one future waits for.
struct Request<K, V> {
    keys: Vec<K>,
    slot: Arc<Slot<V>>,
}

/// The misses queued on one map by one thread's tasks.
struct Batch<K, V> {
    queued: Mutex<Vec<Request<K, V>>>,
}

/// A batch of any map, as the thread's registry holds it.
type AnyBatch = dyn Any + Send + Sync;

thread_local! {
    /// This thread's batches, by the map's address. An entry lives as long as a future holds
    /// its batch; dead ones are dropped when another is added.
    static BATCHES: RefCell<Vec<(usize, Weak<AnyBatch>)>> = const { RefCell::new(Vec::new()) };
}

/// This thread's batch for the map at `addr`. A map dropped and another of other types made
/// at the same address simply gets a new batch (the downcast fails); one of the same types
/// shares the old one's, which is harmless: a batch is always answered through the map of
/// the future that polls it.
fn batch_for<K: FarData, V: FarData>(addr: usize) -> Arc<Batch<K, V>> {
    BATCHES.with(|b| {
        let mut all = b.borrow_mut();
        let found = all
            .iter()
            .find(|(a, _)| *a == addr)
            .and_then(|(_, w)| w.upgrade())
            .and_then(|any| any.downcast::<Batch<K, V>>().ok());
        if let Some(batch) = found {
            return batch;
        }
        let batch = Arc::new(Batch {
            queued: Mutex::new(Vec::new()),
        });
        all.retain(|(a, w)| *a != addr && w.strong_count() > 0);
        let any: Arc<AnyBatch> = batch.clone();
        all.push((addr, Arc::downgrade(&any)));
        batch
    })
}

/// The future behind the async lookups' misses; see the [module docs](self).
struct Misses<'a, K: FarData, V: FarData, S> {
    map: &'a RemHashMap<K, V, S>,
    batch: Arc<Batch<K, V>>,
    slot: Arc<Slot<V>>,
    /// Whether it has yielded once, to let the thread's other tasks queue their misses.
    yielded: bool,
    done: bool,
}

impl<K, V, S> Future for Misses<'_, K, V, S>
where
    K: FarData + Hash + Eq + Clone,
    V: FarData + Clone,
    S: BuildHasher + Send + Sync + 'static,
{
    type Output = Answer<V>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer<V>> {
        let this = self.get_mut();
        if let Some(a) = this.slot.take_or_wait(cx.waker()) {
            this.done = true;
            return Poll::Ready(a);
        }
        if !this.yielded {
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let requests = {
            let mut q = this.batch.queued.lock().unwrap_or_else(|e| e.into_inner());
            if !q.iter().any(|r| Arc::ptr_eq(&r.slot, &this.slot)) {
                // Another thread is answering the batch we are in; it wakes us.
                return Poll::Pending;
            }
            std::mem::take(&mut *q)
        };
        this.map.answer_batch(requests);
        match this.slot.take_or_wait(cx.waker()) {
            Some(a) => {
                this.done = true;
                Poll::Ready(a)
            }
            None => Poll::Pending, // unreachable: our request was in the batch just answered
        }
    }
}

impl<K: FarData, V: FarData, S> Drop for Misses<'_, K, V, S> {
    fn drop(&mut self) {
        if !self.done {
            let mut q = self.batch.queued.lock().unwrap_or_else(|e| e.into_inner());
            q.retain(|r| !Arc::ptr_eq(&r.slot, &self.slot));
        }
    }
}

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

    /// Answers every request of a batch with one batched lookup of their distinct keys.
    fn answer_batch(&self, requests: Vec<Request<K, V>>) {
        let mut distinct: Vec<K> = Vec::new();
        let mut at: HashMap<&K, usize> = HashMap::new();
        let places: Vec<Vec<usize>> = requests
            .iter()
            .map(|r| {
                r.keys
                    .iter()
                    .map(|k| {
                        *at.entry(k).or_insert_with(|| {
                            distinct.push(k.clone());
                            distinct.len() - 1
                        })
                    })
                    .collect()
            })
            .collect();
        // `try_get_many_cloned` probes locally first, so a key brought home since it was
        // queued costs no round trip.
        let values = self.try_get_many_cloned(&distinct);
        for (r, places) in requests.iter().zip(places) {
            r.slot.answer(match &values {
                Ok(v) => Ok(places.iter().map(|&i| v[i].clone()).collect()),
                Err(e) => Err(e.clone()),
            });
        }
    }

    /// Queues `keys` (all local misses) in this thread's batch and waits for their values.
    async fn misses(&self, keys: Vec<K>) -> Answer<V> {
        let batch = batch_for::<K, V>(self as *const Self as usize);
        let slot = Arc::new(Slot {
            state: Mutex::new((None, None)),
        });
        batch
            .queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Request {
                keys,
                slot: slot.clone(),
            });
        Misses {
            map: self,
            batch,
            slot,
            yielded: false,
            done: false,
        }
        .await
    }

    /// A clone of the value of `k`, fetching the pair from far memory without blocking the
    /// executor per miss: the misses of all the tasks of a thread travel together (see the
    /// [module docs](self)). Works on any executor.
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
        for (i, k) in keys.iter().enumerate() {
            out.push(match self.probe_local(k)? {
                Local::Hit(v) => Some(v),
                Local::Absent => None,
                Local::MaybeFar => {
                    missed.push(i);
                    None
                }
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
