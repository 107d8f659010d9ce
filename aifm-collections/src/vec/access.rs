//! Element access of `RemVec`: bounds check, the chunk's word, one flag test, the element.
//!
//! `get` and friends split an index into chunk and offset with a shift and a mask and
//! dereference the chunk in the caller's scope. Misses (a chunk that is not local) feed the
//! vector's stride detector, which hands the next chunks of a confirmed stride to the
//! runtime's prefetch helpers; hits cost nothing extra.
//!
//! `get`'s hit is about 20 instructions (`ChunkTable::elem`): the length check, the table's
//! tag, for inline chunks a split by constants, the arena's segment and word without a
//! bounds check (the length check covers it: the invariant on `RemVec::len`), one AND
//! testing the word, the element. Its cost is the word in front of the element: two
//! dependent cache misses where `Vec` has one (`docs/PERFORMANCE.md`, "RemVec against Vec").

use super::{RemVec, SYNCED};
use crate::common::fail;
use aifm_core::{Error, FarData, Result, Scope};
use std::ops::Range;

impl<T: FarData> RemVec<T> {
    /// Feeds a miss on `chunk` to the stride detector and prefetches what it plans.
    #[cold]
    pub(super) fn observe(&self, chunk: usize) {
        let bytes = self.chunk_len() * std::mem::size_of::<T>();
        self.prefetch.set_window(self.far.rt.scan_window(bytes));
        let plan = self.prefetch.record(chunk as u64, self.chunks.len() as u64);
        if plan.size_hint().1 != Some(0) {
            let tickets = plan
                .map(|c| self.chunks.at(c as usize))
                .filter(|c| !c.is_local())
                .map(|c| c.ticket());
            self.far.rt.prefetch(tickets, true);
        }
    }

    /// Asks the runtime's prefetch helpers to bring the chunks in `range` in ahead of use, as
    /// one batch, nontemporally (not heated; placed in regions evicted first), skipping those
    /// already local. Never blocks. This is the action of the vector's stride prefetcher and
    /// of its iterators; call it yourself before a known access pattern.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u64> = (0..10_000).collect();
    /// v.prefetch_chunks(0..4);
    /// ```
    pub fn prefetch_chunks(&self, range: Range<usize>) {
        let end = range.end.min(self.chunks.len());
        let tickets = self
            .chunks
            .range(range.start.min(end)..end)
            .filter(|c| !c.is_local())
            .map(|c| c.ticket());
        self.far.rt.prefetch(tickets, true);
    }

    /// A reference to element `index`, valid while `scope` lives; `None` out of bounds.
    ///
    /// # Panics
    /// If far memory fails (see [`RemVec::try_get`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u32> = (0..100).collect();
    /// let scope = aifm_core::Scope::new();
    /// assert_eq!(v.get(42, &scope), Some(&42));
    /// assert_eq!(v.get(100, &scope), None);
    /// ```
    #[inline]
    #[track_caller]
    pub fn get<'a>(&'a self, index: usize, scope: &'a Scope) -> Option<&'a T> {
        if index >= self.len {
            return None;
        }
        // The detector only watches accesses that miss: hits cost nothing extra.
        // SAFETY: `index < len`, so its chunk was pushed (the invariant on `RemVec::len`).
        unsafe {
            self.chunks
                .elem(index, self.shift, scope, |c| self.observe(c))
        }
    }

    /// The first element, valid while `scope` lives (`None` when empty).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u32> = (5..100).collect();
    /// let scope = aifm_core::Scope::new();
    /// assert_eq!((v.first(&scope), v.last(&scope)), (Some(&5), Some(&99)));
    /// ```
    #[inline]
    #[track_caller]
    pub fn first<'a>(&'a self, scope: &'a Scope) -> Option<&'a T> {
        self.get(0, scope)
    }

    /// The last element, valid while `scope` lives (`None` when empty).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = aifm_collections::RemVec::<u8>::new();
    /// assert_eq!(v.last(&aifm_core::Scope::new()), None);
    /// ```
    #[inline]
    #[track_caller]
    pub fn last<'a>(&'a self, scope: &'a Scope) -> Option<&'a T> {
        self.len.checked_sub(1).and_then(|i| self.get(i, scope))
    }

    /// [`RemVec::get`], reporting far-memory failures.
    ///
    /// # Errors
    /// As `RemBox::try_deref`.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u32> = (0..100).collect();
    /// assert_eq!(v.try_get(7, &aifm_core::Scope::new()).unwrap(), Some(&7));
    /// ```
    pub fn try_get<'a>(&'a self, index: usize, scope: &'a Scope) -> Result<Option<&'a T>> {
        if index >= self.len {
            return Ok(None);
        }
        let c = index >> self.shift;
        if !self.chunks.at(c).is_local() {
            self.observe(c);
        }
        Ok(self.chunks.at(c).slice(scope)?.get(index & self.mask()))
    }

    /// Element `index` for a one-time read: its chunk is not heated and, if it must be
    /// fetched, lands in a region the evacuator empties first, so reads that will not be
    /// repeated do not push the hot set out.
    ///
    /// # Errors
    /// Far-memory errors.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u32> = (0..100).collect();
    /// let scope = aifm_core::Scope::new();
    /// assert_eq!(v.get_nt(42, &scope).unwrap(), Some(&42));
    /// ```
    pub fn get_nt<'a>(&'a self, index: usize, scope: &'a Scope) -> Result<Option<&'a T>> {
        if index >= self.len {
            return Ok(None);
        }
        let c = index >> self.shift;
        if !self.chunks.at(c).is_local() {
            self.observe(c);
        }
        Ok(self.chunks.at(c).slice_nt(scope)?.get(index & self.mask()))
    }

    /// A mutable reference to element `index`, valid while `scope` lives.
    ///
    /// # Panics
    /// If far memory fails (see [`RemVec::try_get_mut`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u32> = (0..100).collect();
    /// let scope = aifm_core::Scope::new();
    /// *v.get_mut(3, &scope).unwrap() = 7;
    /// assert_eq!(v.get(3, &scope), Some(&7));
    /// ```
    #[inline]
    #[track_caller]
    pub fn get_mut<'a>(&'a mut self, index: usize, scope: &'a Scope) -> Option<&'a mut T> {
        match self.try_get_mut(index, scope) {
            Ok(r) => r,
            Err(e) => fail("RemVec::get_mut", e),
        }
    }

    /// [`RemVec::get_mut`], reporting far-memory failures.
    ///
    /// # Errors
    /// As `RemBox::try_deref_mut`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u32> = (0..10).collect();
    /// let scope = aifm_core::Scope::new();
    /// *v.try_get_mut(9, &scope).unwrap().unwrap() += 1;
    /// assert_eq!(v.get_cloned(9), Some(10));
    /// ```
    pub fn try_get_mut<'a>(
        &'a mut self,
        index: usize,
        scope: &'a Scope,
    ) -> Result<Option<&'a mut T>> {
        if index >= self.len {
            return Ok(None);
        }
        let off = index & self.mask();
        let c = index >> self.shift;
        if !self.chunks.at(c).is_local() {
            self.observe(c);
        }
        *self.chunks.flags_mut(c) &= !SYNCED;
        Ok(self.chunks.edit(c, scope)?.into_slice().get_mut(off))
    }

    /// A clone of element `index` (the scope is managed for you).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    /// assert_eq!(v.get_cloned(1).as_deref(), Some("b"));
    /// ```
    #[track_caller]
    pub fn get_cloned(&self, index: usize) -> Option<T>
    where
        T: Clone,
    {
        self.get(index, &Scope::new()).cloned()
    }

    /// [`RemVec::get_cloned`], reporting far-memory failures.
    ///
    /// # Errors
    /// As `RemBox::try_deref`.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u8> = (0..3).collect();
    /// assert_eq!(v.try_get_cloned(2).unwrap(), Some(2));
    /// ```
    pub fn try_get_cloned(&self, index: usize) -> Result<Option<T>>
    where
        T: Clone,
    {
        Ok(self.try_get(index, &Scope::new())?.cloned())
    }

    /// A clone of element `index`; a miss joins the polling thread's batch
    /// ([`Runtime::fetch_batched`](aifm_core::Runtime::fetch_batched)): the chunks missed by
    /// all of the thread's tasks come in one request. Thousands of such lookups can be in
    /// flight at once from any executor.
    ///
    /// # Errors
    /// Far-memory errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::Future;
    /// let v: aifm_collections::RemVec<u32> = (0..10_000).collect();
    /// let mut fut = std::pin::pin!(v.get_async(1234));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// let got = loop {
    ///     if let std::task::Poll::Ready(r) = fut.as_mut().poll(&mut cx) { break r.unwrap() }
    ///     std::thread::yield_now();
    /// };
    /// assert_eq!(got, Some(1234));
    /// ```
    pub async fn get_async(&self, index: usize) -> Result<Option<T>>
    where
        T: Clone,
    {
        if index >= self.len {
            return Ok(None);
        }
        let ticket = self.chunks.at(index >> self.shift).ticket();
        match self.runtime().fetch_batched(vec![ticket]).await {
            // The helpers fetch every demand in flight as one batch inside one scope; a batch
            // larger than the overdraft fails whole. The dereference below fetches this chunk
            // alone, as any `get` does.
            Ok(_) | Err(Error::LocalMemoryExhausted) => {}
            Err(e) => return Err(e),
        }
        self.try_get_cloned(index)
    }

    /// Replaces element `index`, returning the old value.
    ///
    /// # Panics
    /// If `index >= len`, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u8> = (0..3).collect();
    /// assert_eq!(v.set(1, 9), 1);
    /// assert_eq!(v.get_cloned(1), Some(9));
    /// ```
    #[track_caller]
    pub fn set(&mut self, index: usize, value: T) -> T {
        let len = self.len;
        match self.try_set(index, value) {
            Ok(Some(old)) => old,
            Ok(None) => panic!("RemVec::set: index {index} out of bounds for length {len}"),
            Err(e) => fail("RemVec::set", e),
        }
    }

    /// Replaces element `index`; `Ok(None)` (and `value` dropped) out of bounds.
    ///
    /// # Errors
    /// As `RemBox::try_deref_mut`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u8> = (0..3).collect();
    /// assert_eq!(v.try_set(0, 5).unwrap(), Some(0));
    /// assert_eq!(v.try_set(3, 5).unwrap(), None);
    /// ```
    pub fn try_set(&mut self, index: usize, value: T) -> Result<Option<T>> {
        let scope = Scope::new();
        Ok(self
            .try_get_mut(index, &scope)?
            .map(|slot| std::mem::replace(slot, value)))
    }
}
