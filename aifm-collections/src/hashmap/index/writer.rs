//! The writer of a shard: [`Writer`], the holder of its mutex. Everything that changes the
//! index or the arena goes through it (the rules are the `index` essay's): allocating and
//! discarding pairs, placing, replacing and unlinking entries, rebuilding the array, retiring
//! pairs to the epoch and freeing those the epoch has let through.

use super::*;

/// A writer of a shard: its mutex, and (once it retires something) an epoch pin.
pub(crate) struct Writer<'a, K: FarData, V: FarData> {
    pub(super) meta: MutexGuard<'a, Meta<K, V>>,
    pub(super) shard: &'a Shard<K, V>,
    /// Taken the first time the writer hands something to the epoch (an insertion of a new
    /// key never does).
    pub(super) pin: Option<Guard>,
    /// Arena indexes of pairs this writer took out of the index, handed to the epoch when it
    /// is done.
    pub(super) retired: SmallVec<[usize; 2]>,
}

impl<K: FarData, V: FarData> Drop for Writer<'_, K, V> {
    fn drop(&mut self) {
        if self.retired.is_empty() {
            return;
        }
        let retired = std::mem::take(&mut self.retired);
        let reclaim = self.shard.reclaim.clone();
        // Readers pinned now may still hold these pairs' word addresses: the indexes are
        // freed (and may be reused) only once the epoch has passed them.
        self.pin
            .get_or_insert_with(epoch::pin)
            .defer(move || reclaim.push(&retired));
    }
}

impl<'a, K: FarData + Eq, V: FarData> Writer<'a, K, V> {
    pub(super) fn array(&self) -> &Array {
        // SAFETY: only mutex holders swap the array (and retire the one swapped out), and we
        // hold the mutex: the current array stays allocated while we do, pinned or not.
        unsafe {
            self.shard
                .array
                .load(Ordering::Acquire, epoch::unprotected())
                .deref()
        }
    }

    /// The epoch pin retired objects are handed to.
    fn pin(&mut self) -> &Guard {
        self.pin.get_or_insert_with(epoch::pin)
    }

    /// Frees the pairs the epoch has let through (see [`Reclaim`]). A panic of a value's
    /// `Drop` is resumed once all are freed.
    pub(super) fn reclaim(&mut self) {
        let list = {
            let mut l = self.shard.reclaim.list.locked();
            self.shard.reclaim.any.store(false, Ordering::Release);
            std::mem::take(&mut *l)
        };
        let mut first = None;
        for i in list {
            let arena = &mut self.meta.arena;
            if let Err(p) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| arena.remove(i)))
            {
                first = first.or(Some(p));
            }
        }
        if let Some(p) = first {
            std::panic::resume_unwind(p);
        }
    }

    /// A new pair in the shard's arena, `PENDING` until the caller publishes it: the
    /// evacuator keeps it local meanwhile (it may move it), so an eviction never writes a pair
    /// that is not in the map yet. Call outside any scope where possible, so the allocation
    /// may wait for room. A pair that does not enter the index goes back with
    /// [`Writer::discard`].
    ///
    /// # Errors
    /// As `SlotArena::insert`; the pair is dropped.
    pub(crate) fn alloc(&mut self, k: K, v: V, flags: u8) -> Result<Pair<K, V>> {
        let arena = &mut self.meta.arena;
        let i = arena.insert(Node::new(k, v, flags | PENDING))?;
        let p = arena.word_ref(i).expect("just filled");
        if p.addr() >> 48 != 0 {
            arena.remove(i);
            return Err(Error::Unsupported(
                "an arena word above the 48-bit address space".into(),
            ));
        }
        Ok(p)
    }

    /// Frees pair `p` from [`Writer::alloc`], which never entered the index.
    pub(crate) fn discard(&mut self, p: Pair<K, V>) {
        let i = self.meta.arena.index_of(p);
        self.meta.arena.remove(i);
    }

    /// The node of pair `p` of this shard's arena (in the index, pending or retired by this
    /// writer), dereferenced through `scope`.
    pub(crate) fn node(&self, p: Pair<K, V>, scope: &Scope) -> Result<*const Node<K, V>> {
        debug_assert_eq!(
            self.meta.arena.word_ref(self.meta.arena.index_of(p)),
            Some(p)
        );
        // SAFETY: only a holder of this mutex frees the arena's indexes, and we hold it, so
        // the pair keeps its node until after `scope` ends or the caller releases the mutex
        // (callers use the node only while both last); no `&mut` to a node exists (values
        // are in `UnsafeCell`s).
        unsafe { p.deref(scope) }.map(|n| n as *const Node<K, V>)
    }

    /// Finds `q`. A writer's probe is not admitted, but reports `Busy` for a `WRITER` node.
    pub(crate) fn find<Q>(&self, h: u64, q: &Q, scope: &Scope) -> Result<Probe<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        // SAFETY: the current array, under the mutex.
        unsafe { probe(self.array(), h, q, scope, false) }
    }

    /// The pair of entry `i` (found live under this mutex hold, with no insertion since).
    pub(crate) fn pair(&self, i: usize) -> Pair<K, V> {
        let x = self.array().entries[i].word.load(Ordering::Relaxed);
        assert!(x > GONE, "entry {i} holds no pair");
        // SAFETY: a live first word under the mutex.
        unsafe { unpack(x) }
    }

    /// Makes room for `n` more entries, rebuilding the array if needed. Entry indices found
    /// before are invalid after this.
    pub(crate) fn reserve(&mut self, n: usize) {
        let cap = self.array().entries.len();
        if (self.meta.used + n) * 4 <= cap * 3 {
            return;
        }
        // Tombstones are not carried over: they are retired with the old array.
        let scope = Scope::new();
        self.sweep(&scope);
        let new = Array::new((self.meta.live + n) * 2);
        for e in self.array().entries.iter() {
            let x = e.word.load(Ordering::Relaxed);
            if x > GONE {
                let y = e.hint.load(Ordering::Relaxed);
                new.place(kept_hash(x, y), x, y, false);
            }
        }
        drop(scope);
        let shard = self.shard;
        let guard = self.pin();
        let old = shard.array.swap(Owned::new(new), Ordering::AcqRel, guard);
        // SAFETY: the old array is out of the shard; readers pinned before may still probe
        // it, and the epoch frees it after them. It owns nothing but its entries.
        unsafe { guard.defer_destroy(old) };
        // Writers pin rarely (see `pin`), so nothing else would collect the old arrays soon:
        // hand them to the global queue and collect what is already safe to free.
        guard.flush();
        self.meta.used = self.meta.live;
    }

    /// Inserts pair `p` of hash `h`, whose node is at `at` now, and returns its entry (a
    /// `GONE` entry of the probe is reused).
    pub(crate) fn insert(&mut self, h: u64, p: Pair<K, V>, at: *const Node<K, V>) -> usize {
        self.reserve(1);
        self.meta.live += 1;
        let (fresh, i) = self.array().place(h, pack(h, p), pack_hint(h, at), true);
        self.meta.used += usize::from(fresh);
        i
    }

    /// Puts pair `p` (its node now at `at`) in place of the pair of entry `i` (found under
    /// this hold, for the same key, so of the same hash) and retires the old one. Readers
    /// that loaded the old pair see its node `DEAD` (the caller's doing) and look again.
    pub(crate) fn replace(
        &mut self,
        i: usize,
        p: Pair<K, V>,
        at: *const Node<K, V>,
        scope: &Scope,
    ) {
        let old = self.pair(i);
        let e = &self.array().entries[i];
        let x = e.word.load(Ordering::Relaxed);
        let y = e.hint.load(Ordering::Relaxed);
        let h = kept_hash(x, y);
        e.hint.store(pack_hint(h, at), Ordering::Relaxed);
        e.word
            .store((x & !WORD_BITS) | (p.addr() as u64 >> 4), Ordering::Release);
        self.retire(old, scope);
    }

    /// Takes entry `i` (found under this hold) out of the index and retires its pair.
    pub(crate) fn unlink(&mut self, i: usize, scope: &Scope) {
        let p = self.pair(i);
        self.array().entries[i].word.store(GONE, Ordering::Release);
        self.meta.live -= 1;
        self.retire(p, scope);
    }

    /// Marks a pair out of the index `RETIRED` (the evacuator then drops it instead of
    /// writing it back) and hands its index to the epoch (when this writer is done).
    fn retire(&mut self, p: Pair<K, V>, scope: &Scope) {
        // SAFETY: the pair is still in the arena (freed only after the epoch), and flags are
        // atomics.
        if let Ok(n) = unsafe { p.deref(scope) } {
            n.flags.fetch_or(RETIRED, Ordering::AcqRel);
        }
        let i = self.meta.arena.index_of(p);
        self.retired.push(i);
    }

    /// Claims node `n` (of a hit under this hold) for removal: sets `DEAD` (readers back off
    /// until the entry is gone) and returns its value, moved out if no reader holds it,
    /// copied otherwise. On error `DEAD` is cleared and nothing changed.
    ///
    /// # Safety
    /// `n` was found under this hold through `scope`, which is still open; the caller
    /// unlinks its entry (or clears `DEAD`) before releasing the mutex.
    pub(crate) unsafe fn take_value(&self, n: *const Node<K, V>) -> Result<V> {
        // SAFETY: per the contract, the node is alive and stays put.
        let n = unsafe { &*n };
        let s = n.state.fetch_or(DEAD, Ordering::AcqRel);
        if s & READERS == 0 {
            // SAFETY: `DEAD` set with no reader admitted: no reader will be, and writers
            // serialise on the mutex, so the value is taken once.
            return Ok(unsafe { n.take_value() });
        }
        // SAFETY: readers only read; we hold the mutex.
        codec_copy(unsafe { n.value() }).inspect_err(|_| {
            n.state.fetch_and(!DEAD, Ordering::AcqRel);
        })
    }

    /// Retires node `n` without reading its value (its readers keep it).
    ///
    /// # Safety
    /// As [`Writer::take_value`].
    pub(crate) unsafe fn kill(&self, n: *const Node<K, V>) {
        // SAFETY: per the contract.
        unsafe { &*n }.state.fetch_or(DEAD, Ordering::AcqRel);
    }

    /// Claims node `n` for writing in place: whether it had no reader (then it is `WRITER`).
    ///
    /// # Safety
    /// As [`Writer::take_value`].
    pub(crate) unsafe fn claim_writer(&self, n: *const Node<K, V>) -> bool {
        // SAFETY: per the contract.
        let n = unsafe { &*n };
        n.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Visits every pair in the index (live pairs and tombstones) with its entry.
    pub(crate) fn for_each(&self, mut f: impl FnMut(usize, Pair<K, V>)) {
        for (i, e) in self.array().entries.iter().enumerate() {
            let x = e.word.load(Ordering::Relaxed);
            if x > GONE {
                // SAFETY: a live first word under the mutex.
                f(i, unsafe { unpack(x) });
            }
        }
    }

    /// The entries holding a pair (valid until the next insertion that rebuilds the array).
    pub(crate) fn entries(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.meta.live);
        self.for_each(|i, _| out.push(i));
        out
    }

    /// Drops the tombstones (entries of pairs evicted to far memory) on `h`'s probe: the
    /// ones a lookup of `h` walks past. Others go at the next rebuild or whole-shard pass.
    pub(crate) fn sweep_probe(&mut self, h: u64, scope: &Scope) {
        let mut dead = Vec::new();
        {
            let a = self.array();
            let mask = a.mask();
            let mut i = h as usize & mask;
            for _ in 0..=mask {
                let x = a.entries[i].word.load(Ordering::Relaxed);
                if x == EMPTY {
                    break;
                }
                // SAFETY: a live first word under the mutex.
                if x > GONE && !unsafe { unpack::<K, V>(x) }.is_local() {
                    dead.push(i);
                }
                i = (i + 1) & mask;
            }
        }
        for i in dead {
            self.unlink(i, scope);
        }
    }

    /// Drops every tombstone of the shard (entries of pairs evicted to far memory).
    pub(crate) fn sweep(&mut self, scope: &Scope) {
        let mut dead = Vec::new();
        self.for_each(|i, p| {
            if !p.is_local() {
                dead.push(i);
            }
        });
        for i in dead {
            self.unlink(i, scope);
        }
    }

    /// Whether a `RefMut` holds any pair of the shard.
    pub(crate) fn has_writer(&self, scope: &Scope) -> bool {
        let mut any = false;
        self.for_each(|_, p| {
            // SAFETY: a pair in the index, under the mutex.
            if let Ok(n) = unsafe { p.deref(scope) } {
                any |= n.state.load(Ordering::Acquire) & WRITER != 0;
            }
        });
        any
    }

    /// Pairs in local memory.
    pub(crate) fn local_len(&self) -> usize {
        let mut n = 0;
        self.for_each(|_, p| n += usize::from(p.is_local()));
        n
    }
}
