//! `RemVec<T>`: a growable array in far memory, chunk by chunk.
//!
//! # Layout
//!
//! Elements live in *chunks* of `2^k` elements (about [`DEFAULT_CHUNK_BYTES`] by default,
//! [`RemVec::with_chunk_bytes`] to choose). Each chunk is one remote object. For plain data
//! whose chunk fills more than half of a 4 KiB page (the default for every primitive) the
//! elements live *inline* in that object; any other element type gets a `RemBox<Vec<T>>`
//! whose buffer is allocated once with room for exactly one chunk (see `chunk`). Chunk `i`
//! holds elements `i·2^k .. (i+1)·2^k`; every chunk but the last is full, and the last is
//! never empty. An index splits into chunk and offset with a shift and a mask.
//!
//! A scope pins every chunk it reached, and a chunk is 4 KiB: inside one scope, touching
//! many far chunks draws on the runtime's overdraft (a fetch inside an open scope cannot wait
//! for the evacuator), so loops over far data should renew their scope every few chunks, as
//! the iterators do.
//!
//! The local part of a `RemVec` is small: per chunk, one pointer-sized handle plus a byte of
//! flags (about 1/256 of the data with 4 KiB chunks). Chunks are allocated in the vector's own
//! registered structure (device type [`DEVICE`]), keyed by chunk index, so the far side sees
//! them under keys it understands.
//!
//! # Access
//!
//! * [`RemVec::get`] / [`RemVec::get_mut`] take a [`Scope`] and return references that borrow
//!   it, like `RemBox::deref`. [`RemVec::get_cloned`] manages a scope itself.
//! * `Index` is not offered: `Index::index(&self, i) -> &T` has no place to put the scope that
//!   keeps the chunk from being evacuated while the reference lives, and a reference that
//!   outlives its scope could dangle.
//! * [`RemVec::iter`] yields clones, from either end. Between calls to `next` it holds no
//!   scope (each chunk is cloned into a buffer inside a scope of its own), so a scan (or
//!   several zipped) never holds the evacuator back while your code runs; `fold` and the
//!   consumers built on it (`sum`, `for_each`, `max`, …) read each chunk in place, one scope
//!   per chunk. It cannot yield references for the same reason `Index` cannot.
//!   [`RemVec::iter_in`] yields references, borrowing a scope you hold (and never renewing
//!   it); [`RemVec::iter_nt`] is the nontemporal scan: chunks it brings in go to regions
//!   evicted first and are not heated, so a one-off scan does not push out the hot set.
//!
//! # Semantics the structure tells the runtime
//!
//! * **Evacuation.** The runtime's default write-back is right for chunks: a cold chunk is
//!   written whole (for plain data, one copy of its raw bytes) under its chunk index. No
//!   handler is registered.
//! * **Prefetching.** A per-vector [`StrideDetector`] watches
//!   the chunks `get` misses on; once a constant stride is confirmed it hands the next chunks
//!   to the runtime's prefetch helpers in one batch (nontemporal, so unused prefetches are the
//!   first to go). Iterators know they are sequential and keep [`PREFETCH_AHEAD`] chunks in
//!   flight ahead of themselves when far memory is across a network (with the in-process
//!   store there is no latency to hide, and helper threads would only compete for the cores).
//! * **Offloading.** With plain-data elements, the `aifm.vec` device (in [`device`]) gathers by
//!   an index vector ([`RemVec::gather`]), permutes ([`RemVec::permute`]), copies ranges
//!   ([`RemVec::copy_range`]) and aggregates ([`RemVec::sum`] … [`RemVec::group_by`]) next to
//!   the data. Before an offloaded operation, chunks that are only local (or changed since they
//!   were last sent) are written to far memory in batches; chunks already remote are current
//!   there by construction. Each operation has a local fallback built on the same code
//!   (`ops`), and [`Exec`] chooses: `Auto` offloads when at least a quarter of the chunks are
//!   remote. Results of gathers and copies arrive as one reply per 256 output chunks and
//!   become a fresh `RemVec` in the same runtime.
//!
//! # Default runtime
//!
//! [`RemVec::new`], `Default`, `FromIterator` (`collect()`) and `From<Vec<T>>` build in the
//! process-wide default runtime (`Runtime::global()`, 256 MiB of local memory unless
//! configured), not in a runtime you built; [`RemVec::new_in`], [`RemVec::from_iter_in`] and
//! [`RemVec::from_vec_in`] choose the runtime.
//!
//! # Placement over several servers
//!
//! On a backend of several servers a vector is placed *whole* by default: all its chunks on one
//! replica set, where the device sees every one of them. [`RemVec::striped_in`] (or
//! [`RemVec::with_placement`]) *stripes* it instead: each chunk placed by its index, so a large
//! vector spreads over every server. The offloads keep working, in one of two ways:
//!
//! | offload | kind | striped execution |
//! |---|---|---|
//! | [`sum`](RemVec::sum), [`min`](RemVec::min), [`max`](RemVec::max), [`count`](RemVec::count), [`mean`](RemVec::mean) | decomposable | each shard returns (count, sum, min, max) of its chunks; the client merges |
//! | [`median`](RemVec::median) | gathers | elements fetched per shard, ordered on the client |
//! | [`group_by`](RemVec::group_by) | gathers | values and keys fetched per shard, grouped on the client (the key vector's chunks are on other servers than the value chunks) |
//! | [`gather`](RemVec::gather), [`permute`](RemVec::permute) | gathers what it needs | the client reads the index vector; each shard returns the elements of its own chunks; the permutation check runs on the client |
//! | [`copy_range`](RemVec::copy_range) | gathers what it needs | each shard returns the part of the range in its chunks |
//!
//! The same paths run when only the index or key vector of an operation is striped. Integer
//! results equal the local ones exactly; a striped floating-point sum (and mean) adds
//! per-shard sums, so it may differ from the index-order sum in the last bits. (`RemHashMap`
//! always stays whole: its `TAKE` removes the pair it returns, so it must run where the pair
//! is.)

pub mod device;
mod chunk;
pub(crate) mod cloned;
mod iter;
pub(crate) mod local;
pub mod ops;
mod striped;

pub use device::DEVICE;
pub use iter::{Drain, IntoIter, Iter, IterIn};
pub use ops::{AggValue, Aggregate, GroupKey, NumKind, Numeric};

use chunk::{Chunk, Home};
use crate::common::{chunk_shift, fail, new_token, DEFAULT_CHUNK_BYTES};
use crate::prefetch::StrideDetector;
use crate::Exec;
use aifm_core::codec::{decode_pod, decode_serde, encode_serde};
use aifm_core::{Error, FarData, Placement, Pod, Result, Runtime, Scope, Structure};
use device::{Other, Reply, Request, Shape, OOB, OP};
use ops::{Acc, GroupAcc};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Bound, Range, RangeBounds};
use std::sync::atomic::Ordering;

/// Far memory holds this chunk's current contents (as far as the vector knows).
const SYNCED: u8 = 1;
/// The vector itself wrote a copy of this chunk (for an offload); remove it with the chunk.
const WROTE: u8 = 2;

/// Chunks visited between scope renewals in long loops (16 chunks of 4 KiB: 64 KiB).
const RENEW_CHUNKS: usize = 16;

/// Chunks an iterator keeps requested ahead of itself (64 KiB with 4 KiB chunks).
///
/// ```
/// assert_eq!(aifm_collections::vec::PREFETCH_AHEAD, 16);
/// ```
pub const PREFETCH_AHEAD: usize = 16;

/// Output chunks per offloaded gather/copy request.
const REPLY_CHUNKS: u64 = 256;

/// Chunks written per batch when syncing before an offload.
const SYNC_BATCH: usize = 64;

/// The runtime and the (lazily registered) far-memory structure of a vector.
pub(crate) struct Far {
    rt: Runtime,
    structure: Option<Structure>,
    token: u128,
    tried: bool,
    placement: Placement,
}

impl Far {
    fn new(rt: &Runtime, placement: Placement) -> Self {
        Far {
            rt: rt.clone(),
            structure: None,
            token: 0,
            tried: false,
            placement,
        }
    }

    fn ensure(&mut self) {
        if self.tried {
            return;
        }
        self.tried = true;
        crate::ensure_devices();
        let token = new_token();
        if let Ok(s) =
            self.rt
                .register_structure_placed(DEVICE, &token.to_le_bytes(), None, self.placement)
        {
            self.structure = Some(s);
            self.token = token;
        }
    }

    /// Removes the copy the vector wrote itself for a chunk that is going away.
    fn forget(&self, key: u64, flags: u8) {
        if flags & WROTE != 0 {
            if let Some(s) = &self.structure {
                let _ = s.backend().remove(s.id(), &key.to_le_bytes());
            }
        }
    }
}

/// A vector whose elements live in chunks that may be in local or far memory.
///
/// # Examples
///
/// ```
/// use aifm_collections::RemVec;
/// use aifm_core::Scope;
/// let mut v = RemVec::new();
/// v.extend(0..10_000u64);
/// v.push(10_000);
/// assert_eq!(v.len(), 10_001);
/// assert_eq!(v.get(1234, &Scope::new()), Some(&1234));
/// assert_eq!(v.iter().sum::<u64>(), 10_000 * 10_001 / 2);
/// assert_eq!(v.sum(), 10_000 * 10_001 / 2);   // possibly computed in far memory
/// ```
pub struct RemVec<T: FarData> {
    // Field order is drop order: chunks before their structure.
    pub(crate) chunks: Vec<Chunk<T>>,
    pub(crate) len: usize,
    pub(crate) shift: u32,
    pub(crate) far: Far,
    prefetch: StrideDetector,
}

impl<T: FarData> RemVec<T> {
    /// An empty vector in the default runtime (registers nothing until the first push).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = aifm_collections::RemVec::<u8>::new();
    /// assert!(v.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::new_in(Runtime::global())
    }

    /// An empty vector in `runtime`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let mut v = aifm_collections::RemVec::new_in(&rt);
    /// v.push(1u32);
    /// assert_eq!(v.len(), 1);
    /// ```
    pub fn new_in(runtime: &Runtime) -> Self {
        Self::with_chunk_bytes_in(DEFAULT_CHUNK_BYTES, runtime)
    }

    /// A vector in `runtime` holding the elements of `iter` in order: `collect()` in a runtime
    /// of your choice (`collect()` itself builds in the default runtime).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let v = aifm_collections::RemVec::from_iter_in((0..10u32).map(|i| i * i), &rt);
    /// assert_eq!(v.get_cloned(3), Some(9));
    /// assert_eq!(v.runtime().stats().budget_bytes, 4 << 20);
    /// ```
    #[track_caller]
    pub fn from_iter_in(iter: impl IntoIterator<Item = T>, runtime: &Runtime) -> Self {
        let mut v = Self::new_in(runtime);
        v.extend(iter);
        v
    }

    /// A vector in `runtime` holding the elements of `vec` (`RemVec::from(vec)` builds in the
    /// default runtime).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let v = aifm_collections::RemVec::from_vec_in(vec![1u8, 2, 3], &rt);
    /// assert_eq!(v, vec![1, 2, 3]);
    /// ```
    #[track_caller]
    pub fn from_vec_in(vec: Vec<T>, runtime: &Runtime) -> Self {
        Self::from_iter_in(vec, runtime)
    }

    /// An empty vector with room for `capacity` elements' chunk handles.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = aifm_collections::RemVec::<u64>::with_capacity(1 << 20);
    /// assert_eq!(v.len(), 0);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        let mut v = Self::new();
        v.chunks.reserve(capacity.div_ceil(v.chunk_len()));
        v
    }

    /// An empty vector in the default runtime whose chunks hold about `bytes` of elements
    /// (rounded down to a power-of-two element count, at least one element).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = aifm_collections::RemVec::<u64>::with_chunk_bytes(1000);
    /// assert_eq!(v.chunk_len(), 64); // 125 elements, rounded down to 2^6
    /// ```
    pub fn with_chunk_bytes(bytes: usize) -> Self {
        Self::with_chunk_bytes_in(bytes, Runtime::global())
    }

    /// [`RemVec::with_chunk_bytes`] in `runtime`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let v = aifm_collections::RemVec::<u16>::with_chunk_bytes_in(64 << 10, &rt);
    /// assert_eq!(v.chunk_len(), 32 << 10);
    /// ```
    pub fn with_chunk_bytes_in(bytes: usize, runtime: &Runtime) -> Self {
        RemVec {
            chunks: Vec::new(),
            len: 0,
            shift: chunk_shift::<T>(bytes),
            far: Far::new(runtime, Placement::Whole),
            prefetch: StrideDetector::new(),
        }
    }

    /// An empty vector in `runtime` whose chunks are *striped* over all the servers of a
    /// backend that has several ([`Placement::Striped`]), instead of living whole on one
    /// replica set. Aggregates then run on every shard and merge on the client; the other
    /// offloads gather what they need (see the [module documentation](self)). With one
    /// server it behaves exactly like [`RemVec::new_in`].
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::{Exec, RemVec};
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let mut v = RemVec::striped_in(&rt);
    /// v.extend(0..10_000u64);
    /// assert_eq!(v.placement(), aifm_core::Placement::Striped);
    /// assert_eq!(v.try_sum(Exec::Remote).unwrap(), 10_000 * 9_999 / 2);
    /// ```
    pub fn striped_in(runtime: &Runtime) -> Self {
        Self::new_in(runtime).with_placement(Placement::Striped)
    }

    /// Chooses how the vector's chunks are placed over several servers (whole by default).
    ///
    /// # Panics
    /// If the vector already holds elements (its far-memory structure exists, and placement
    /// is fixed when it is created).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::Placement;
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let v = aifm_collections::RemVec::<u8>::with_chunk_bytes_in(1024, &rt)
    ///     .with_placement(Placement::Striped);
    /// assert_eq!(v.placement(), Placement::Striped);
    /// ```
    #[track_caller]
    pub fn with_placement(mut self, placement: Placement) -> Self {
        assert!(
            !self.far.tried,
            "RemVec::with_placement: the vector's far-memory structure already exists"
        );
        self.far.placement = placement;
        self
    }

    /// How the vector's chunks are placed over several servers.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = aifm_collections::RemVec::<u8>::new();
    /// assert_eq!(v.placement(), aifm_core::Placement::Whole);
    /// ```
    pub fn placement(&self) -> Placement {
        self.far.placement
    }

    /// Elements per chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(aifm_collections::RemVec::<u64>::new().chunk_len(), 512);
    /// ```
    #[inline]
    pub fn chunk_len(&self) -> usize {
        1 << self.shift
    }

    #[inline]
    fn mask(&self) -> usize {
        self.chunk_len() - 1
    }

    /// Number of elements.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u8> = (0..5).collect();
    /// assert_eq!(v.len(), 5);
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the vector is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_collections::RemVec::<u8>::new().is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The runtime the vector lives in.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = aifm_collections::RemVec::<u8>::new();
    /// assert_eq!(v.runtime().backend_name(), "embedded");
    /// ```
    pub fn runtime(&self) -> &Runtime {
        &self.far.rt
    }

    /// How many chunks are in local memory right now (a snapshot: the evacuator may change
    /// it at any moment), and how many chunks there are.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u64> = (0..2048).collect();
    /// assert_eq!(v.local_chunks(), (4, 4));
    /// ```
    pub fn local_chunks(&self) -> (usize, usize) {
        let local = self.chunks.iter().filter(|c| c.is_local()).count();
        (local, self.chunks.len())
    }

    // ----- element access -------------------------------------------------------------------

    #[inline]
    fn observe(&self, chunk: usize) {
        if self.prefetch.last() != chunk as u64 {
            self.observe_slow(chunk);
        }
    }

    #[cold]
    fn observe_slow(&self, chunk: usize) {
        if let Some(w) = self.prefetch.observe(chunk as u64) {
            self.prefetch_chunks(w.start as usize..w.end as usize);
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
        let tickets = self.chunks[range.start.min(end)..end]
            .iter()
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
        let c = index >> self.shift;
        let chunk = &self.chunks[c];
        if !chunk.is_local() {
            // The detector only watches accesses that miss: hits cost nothing extra.
            self.observe(c);
        }
        chunk.deref(scope).get(index & self.mask())
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
        if !self.chunks[c].is_local() {
            self.observe(c);
        }
        Ok(self.chunks[c].slice(scope)?.get(index & self.mask()))
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
        if !self.chunks[c].is_local() {
            self.observe(c);
        }
        Ok(self.chunks[c].slice_nt(scope)?.get(index & self.mask()))
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
        if !self.chunks[c].is_local() {
            self.observe(c);
        }
        let chunk = &mut self.chunks[c];
        *chunk.flags.get_mut() &= !SYNCED;
        Ok(chunk.slice_mut(scope)?.get_mut(off))
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

    /// A clone of element `index`, without blocking the executor while its chunk is fetched:
    /// the runtime's helper threads bring the chunk in (batched with every other miss in
    /// flight), and the future resolves once it is local. Thousands of such lookups can be in
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
        match self.chunks[index >> self.shift].fetch_async().await {
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

    /// Appends an element.
    ///
    /// # Panics
    /// If far memory fails (see [`RemVec::try_push`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v = aifm_collections::RemVec::new();
    /// v.push("x".to_string());
    /// assert_eq!(v.len(), 1);
    /// ```
    #[track_caller]
    pub fn push(&mut self, value: T) {
        if let Err(e) = self.try_push(value) {
            fail("RemVec::push", e)
        }
    }

    /// Appends an element, reporting far-memory failures (the last chunk may have to be
    /// fetched). On failure the value is dropped: the runtime's allocation does not hand it
    /// back.
    ///
    /// # Errors
    /// As `RemBox::try_deref_mut` and `RemBox::new_in_structure`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v = aifm_collections::RemVec::new();
    /// v.try_push(1u8).unwrap();
    /// assert_eq!(v.get_cloned(0), Some(1));
    /// ```
    pub fn try_push(&mut self, value: T) -> Result<()> {
        if self.len & self.mask() == 0 {
            self.push_chunk(vec![value])?;
        } else {
            let cl = self.chunk_len();
            let chunk = self.chunks.last_mut().expect("a partial chunk");
            *chunk.flags.get_mut() &= !SYNCED;
            let scope = Scope::new();
            chunk.edit(&scope)?.push(value, cl);
        }
        self.len += 1;
        Ok(())
    }

    /// Adds a chunk (not counted in `len` yet).
    fn push_chunk(&mut self, v: Vec<T>) -> Result<()> {
        self.far.ensure();
        let key = self.chunks.len() as u64;
        let home = match &self.far.structure {
            Some(s) => Home::Structure(s, key),
            None => Home::Runtime(&self.far.rt),
        };
        self.chunks.push(Chunk::new(v, self.chunk_len(), home)?);
        Ok(())
    }

    fn pop_chunk(&mut self) -> Option<Chunk<T>> {
        let c = self.chunks.pop()?;
        self.far.forget(c.key(), c.flags.load(Ordering::Relaxed));
        Some(c)
    }

    /// Removes and returns the last element.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u8> = (0..3).collect();
    /// assert_eq!(v.pop(), Some(2));
    /// assert_eq!(v.len(), 2);
    /// ```
    #[track_caller]
    pub fn pop(&mut self) -> Option<T> {
        match self.try_pop() {
            Ok(v) => v,
            Err(e) => fail("RemVec::pop", e),
        }
    }

    /// [`RemVec::pop`], reporting far-memory failures (the vector is unchanged on error).
    ///
    /// # Errors
    /// As `RemBox::try_deref_mut`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v = aifm_collections::RemVec::<u8>::new();
    /// assert_eq!(v.try_pop().unwrap(), None);
    /// ```
    pub fn try_pop(&mut self) -> Result<Option<T>> {
        if self.len == 0 {
            return Ok(None);
        }
        let x = {
            let chunk = self.chunks.last_mut().expect("non-empty");
            *chunk.flags.get_mut() &= !SYNCED;
            let scope = Scope::new();
            chunk.edit(&scope)?.pop()
        };
        self.len -= 1;
        if self.len & self.mask() == 0 {
            drop(self.pop_chunk());
        }
        Ok(x)
    }

    /// Shortens the vector to `len` elements (no effect if it is not longer).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u64> = (0..5000).collect();
    /// v.truncate(600);
    /// assert_eq!((v.len(), v.get_cloned(599)), (600, Some(599)));
    /// ```
    #[track_caller]
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let keep_chunks = len.div_ceil(self.chunk_len());
        while self.chunks.len() > keep_chunks {
            drop(self.pop_chunk());
        }
        self.len = len;
        let tail = len & self.mask();
        if tail != 0 {
            let chunk = self.chunks.last_mut().expect("a partial chunk");
            *chunk.flags.get_mut() &= !SYNCED;
            let scope = Scope::new();
            chunk.edit_now(&scope).truncate(tail);
        }
    }

    /// Removes every element (keeping the vector's far-memory structure).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u64> = (0..5000).collect();
    /// v.clear();
    /// assert!(v.is_empty());
    /// ```
    pub fn clear(&mut self) {
        while self.pop_chunk().is_some() {}
        self.len = 0;
        self.prefetch.reset();
    }

    /// Inserts `value` at `index`, shifting later elements right (one dereference per later
    /// chunk).
    ///
    /// # Panics
    /// If `index > len`, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u8> = (0..3).collect();
    /// v.insert(1, 9);
    /// assert_eq!(v.iter().collect::<Vec<_>>(), [0, 9, 1, 2]);
    /// ```
    #[track_caller]
    pub fn insert(&mut self, index: usize, value: T) {
        assert!(
            index <= self.len,
            "RemVec::insert: index {index} out of bounds for length {}",
            self.len
        );
        if index == self.len {
            return self.push(value);
        }
        let cl = self.chunk_len();
        let mut carry = Some(value);
        let mut scope = Scope::new();
        let first = index >> self.shift;
        for c in first..self.chunks.len() {
            let chunk = &mut self.chunks[c];
            *chunk.flags.get_mut() &= !SYNCED;
            let mut v = chunk.edit_now(&scope);
            let out = if v.len() == cl { v.pop() } else { None };
            let at = if c == first { index & (cl - 1) } else { 0 };
            v.insert(at, carry.take().expect("carried"), cl);
            carry = out;
            if carry.is_none() {
                break;
            }
            drop(scope);
            scope = Scope::new();
        }
        drop(scope);
        self.len += 1;
        if let Some(x) = carry {
            if let Err(e) = self.push_chunk(vec![x]) {
                self.len -= 1;
                fail("RemVec::insert", e);
            }
        }
    }

    /// Removes and returns element `index`, shifting later elements left.
    ///
    /// # Panics
    /// If `index >= len`, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u8> = (0..3).collect();
    /// assert_eq!(v.remove(0), 0);
    /// assert_eq!(v.iter().collect::<Vec<_>>(), [1, 2]);
    /// ```
    #[track_caller]
    pub fn remove(&mut self, index: usize) -> T {
        assert!(
            index < self.len,
            "RemVec::remove: index {index} out of bounds for length {}",
            self.len
        );
        let first = index >> self.shift;
        let cl = self.chunk_len();
        let mut scope = Scope::new();
        let off = index & self.mask();
        let out = {
            let chunk = &mut self.chunks[first];
            *chunk.flags.get_mut() &= !SYNCED;
            chunk.edit_now(&scope).remove(off)
        };
        for c in first + 1..self.chunks.len() {
            let (a, b) = self.chunks.split_at_mut(c);
            let (prev, next) = (&mut a[c - 1], &mut b[0]);
            *prev.flags.get_mut() &= !SYNCED;
            *next.flags.get_mut() &= !SYNCED;
            let moved = next.edit_now(&scope).remove(0);
            prev.edit_now(&scope).push(moved, cl);
            drop(scope);
            scope = Scope::new();
        }
        drop(scope);
        self.len -= 1;
        if self.len & self.mask() == 0 {
            drop(self.pop_chunk());
        }
        out
    }

    /// Swaps elements `a` and `b`.
    ///
    /// # Panics
    /// If either index is out of bounds, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u64> = (0..2000).collect();
    /// v.swap(0, 1999);
    /// assert_eq!((v.get_cloned(0), v.get_cloned(1999)), (Some(1999), Some(0)));
    /// ```
    #[track_caller]
    pub fn swap(&mut self, a: usize, b: usize) {
        assert!(
            a < self.len && b < self.len,
            "RemVec::swap: index out of bounds"
        );
        let (ca, cb) = (a >> self.shift, b >> self.shift);
        let (oa, ob) = (a & self.mask(), b & self.mask());
        let scope = Scope::new();
        if ca == cb {
            let chunk = &mut self.chunks[ca];
            *chunk.flags.get_mut() &= !SYNCED;
            chunk.edit_now(&scope).into_slice().swap(oa, ob);
            return;
        }
        let (lo, hi, olo, ohi) = if ca < cb {
            (ca, cb, oa, ob)
        } else {
            (cb, ca, ob, oa)
        };
        let (x, y) = self.chunks.split_at_mut(hi);
        let (p, q) = (&mut x[lo], &mut y[0]);
        *p.flags.get_mut() &= !SYNCED;
        *q.flags.get_mut() &= !SYNCED;
        std::mem::swap(
            &mut p.edit_now(&scope).into_slice()[olo],
            &mut q.edit_now(&scope).into_slice()[ohi],
        );
    }

    /// Calls `f` on every element, mutably, one chunk (and one dereference) at a time.
    /// (`iter_mut` is not offered: a `&mut T` handed out by an iterator would outlive the
    /// scope renewals that long scans need.)
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u32> = (0..1000).collect();
    /// v.for_each_mut(|x| *x *= 2);
    /// assert_eq!(v.get_cloned(999), Some(1998));
    /// ```
    #[track_caller]
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut T)) {
        let mut scope = Scope::new();
        for (i, c) in self.chunks.iter_mut().enumerate() {
            *c.flags.get_mut() &= !SYNCED;
            c.edit_now(&scope).into_slice().iter_mut().for_each(&mut f);
            if i % RENEW_CHUNKS == RENEW_CHUNKS - 1 {
                drop(scope);
                scope = Scope::new();
            }
        }
    }

    /// Calls `f` on each chunk's elements in order (one dereference per chunk, the scope
    /// renewed between chunks): the fastest way to read everything. Stops at the first
    /// error `f` or far memory reports.
    ///
    /// # Errors
    /// Far-memory errors, or the first error of `f`.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u64> = (0..100_000).collect();
    /// let mut sum = 0;
    /// v.try_for_each_chunk(|xs| {
    ///     sum += xs.iter().sum::<u64>();
    ///     Ok(())
    /// })
    /// .unwrap();
    /// assert_eq!(sum, 99_999 * 100_000 / 2);
    /// ```
    pub fn try_for_each_chunk(&self, mut f: impl FnMut(&[T]) -> Result<()>) -> Result<()> {
        let mut scope = Scope::new();
        for (i, c) in self.chunks.iter().enumerate() {
            f(c.slice(&scope)?)?;
            if i % RENEW_CHUNKS == RENEW_CHUNKS - 1 {
                drop(scope);
                scope = Scope::new();
            }
        }
        Ok(())
    }

    /// Keeps the elements for which `keep` is true, in order. Chunks are consumed and rebuilt
    /// one at a time, so only a couple of chunks are ever in hand.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u32> = (0..10_000).collect();
    /// v.retain(|x| x % 3 == 0);
    /// assert_eq!(v.len(), 3334);
    /// assert_eq!(v.get_cloned(1), Some(3));
    /// ```
    #[track_caller]
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.rebuild(|_, x| if keep(&x) { Ok(x) } else { Err(x) }, drop);
    }

    /// Removes the elements in `range` and returns them as an iterator (they are moved into
    /// a fresh vector in the same runtime first, so a large drain stays in far memory).
    ///
    /// # Panics
    /// If the range is out of bounds, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v: aifm_collections::RemVec<u32> = (0..10).collect();
    /// let d: Vec<u32> = v.drain(2..5).collect();
    /// assert_eq!(d, [2, 3, 4]);
    /// assert_eq!(v.iter().collect::<Vec<_>>(), [0, 1, 5, 6, 7, 8, 9]);
    /// ```
    #[track_caller]
    pub fn drain(&mut self, range: impl RangeBounds<usize>) -> Drain<T> {
        let Range { start, end } = to_range(range, self.len);
        let mut out = RemVec::with_chunk_bytes_in(
            self.chunk_len() * std::mem::size_of::<T>().max(1),
            &self.far.rt,
        );
        let mut buf = Vec::new();
        self.rebuild(
            |i, x| {
                if (start..end).contains(&i) {
                    Err(x)
                } else {
                    Ok(x)
                }
            },
            |x| {
                if buf.capacity() == 0 {
                    buf.reserve_exact(out.chunk_len());
                }
                buf.push(x);
                if buf.len() == out.chunk_len() {
                    out.push_full(std::mem::take(&mut buf));
                }
            },
        );
        if !buf.is_empty() {
            out.push_full(buf);
        }
        Drain::new(out.into_iter())
    }

    /// Appends a chunk-capacity buffer of elements as a new chunk (the tail must be full).
    #[track_caller]
    fn push_full(&mut self, v: Vec<T>) {
        debug_assert_eq!(self.len & self.mask(), 0);
        let n = v.len();
        if let Err(e) = self.push_chunk(v) {
            fail("RemVec", e);
        }
        self.len += n;
    }

    /// Streams every element through `decide` (index, value): `Ok` keeps it, `Err` hands it
    /// to `removed`. Old chunk `i` is consumed before new chunk `i` exists, so keys never
    /// collide.
    #[track_caller]
    fn rebuild(
        &mut self,
        mut decide: impl FnMut(usize, T) -> std::result::Result<T, T>,
        mut removed: impl FnMut(T),
    ) {
        let old = std::mem::take(&mut self.chunks);
        self.len = 0;
        self.prefetch.reset();
        let cl = self.chunk_len();
        let mut buf = Vec::with_capacity(cl);
        let mut i = 0;
        for c in old {
            let key = c.key();
            let flags = c.flags.load(Ordering::Relaxed);
            let items = c.into_vec();
            self.far.forget(key, flags);
            for x in items {
                match decide(i, x) {
                    Ok(x) => {
                        buf.push(x);
                        if buf.len() == cl {
                            self.push_full(std::mem::replace(&mut buf, Vec::with_capacity(cl)));
                        }
                    }
                    Err(x) => removed(x),
                }
                i += 1;
            }
        }
        if !buf.is_empty() {
            self.push_full(buf);
        }
    }

    /// Moves every element of `other` to the end of `self`.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut a: aifm_collections::RemVec<u8> = (0..3).collect();
    /// let mut b: aifm_collections::RemVec<u8> = (3..6).collect();
    /// a.append(&mut b);
    /// assert_eq!((a.len(), b.len()), (6, 0));
    /// ```
    #[track_caller]
    pub fn append(&mut self, other: &mut RemVec<T>) {
        let fresh = RemVec::with_chunk_bytes_in(1, &other.far.rt).with_placement(other.placement());
        let taken = std::mem::replace(other, fresh);
        other.shift = taken.shift;
        self.extend(taken);
    }

    /// [`Extend::extend`], reporting far-memory failures; elements taken from the iterator
    /// before the failure are kept.
    ///
    /// # Errors
    /// As [`RemVec::try_push`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut v = aifm_collections::RemVec::new();
    /// v.try_extend(0..10u8).unwrap();
    /// assert_eq!(v.len(), 10);
    /// ```
    pub fn try_extend(&mut self, iter: impl IntoIterator<Item = T>) -> Result<()> {
        let mut iter = iter.into_iter();
        let cl = self.chunk_len();
        if self.len & self.mask() != 0 {
            let chunk = self.chunks.last_mut().expect("a partial chunk");
            *chunk.flags.get_mut() &= !SYNCED;
            let scope = Scope::new();
            let mut tail = chunk.edit(&scope)?;
            while tail.len() < cl {
                match iter.next() {
                    Some(x) => {
                        tail.push(x, cl);
                        self.len += 1;
                    }
                    None => return Ok(()),
                }
            }
        }
        loop {
            let mut v = Vec::with_capacity(cl);
            v.extend(iter.by_ref().take(cl));
            let n = v.len();
            if n == 0 {
                return Ok(());
            }
            self.push_chunk(v)?;
            self.len += n;
            if n < cl {
                return Ok(());
            }
        }
    }

    /// Writes every chunk far memory does not hold in its current form to far memory, in
    /// batches, so the vector's device can compute on all of it.
    fn sync_far(&self) -> Result<()> {
        let Some(s) = &self.far.structure else {
            return Err(Error::UnknownStructure(u32::MAX));
        };
        let mut scope = Scope::new();
        let mut batch: Vec<([u8; 8], Vec<u8>)> = Vec::new();
        let mut marks = Vec::new();
        let flush = |batch: &mut Vec<([u8; 8], Vec<u8>)>, marks: &mut Vec<usize>| -> Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            let items: Vec<(&[u8], &[u8])> = batch.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            s.backend().write_many(s.id(), &items)?;
            for &i in marks.iter() {
                self.chunks[i]
                    .flags
                    .fetch_or(SYNCED | WROTE, Ordering::Relaxed);
            }
            batch.clear();
            marks.clear();
            Ok(())
        };
        for (i, c) in self.chunks.iter().enumerate() {
            if c.flags.load(Ordering::Relaxed) & SYNCED != 0 {
                continue;
            }
            if !c.is_local() {
                // Only the runtime moves chunks out, and it writes what changed.
                c.flags.fetch_or(SYNCED, Ordering::Relaxed);
                continue;
            }
            let mut bytes = Vec::new();
            c.encode_nt(&scope, &mut bytes)?;
            batch.push((c.key().to_le_bytes(), bytes));
            marks.push(i);
            if batch.len() == SYNC_BATCH {
                flush(&mut batch, &mut marks)?;
                scope.renew();
            }
        }
        flush(&mut batch, &mut marks)
    }

    fn shape(&self) -> Shape {
        Shape {
            elem: std::mem::size_of::<T>() as u32,
            chunk_len: self.chunk_len() as u64,
            len: self.len as u64,
        }
    }

    fn other(&self) -> Option<Other> {
        self.far.structure.as_ref().map(|_| Other {
            token: self.far.token,
            shape: self.shape(),
        })
    }

    /// Whether `Auto` should offload an operation over `self` (and `others`).
    fn worth_offloading(&self, others: &[(usize, usize)]) -> bool {
        if self.far.structure.is_none() {
            return false;
        }
        let (local, all) = self.local_chunks();
        let (mut remote, mut total) = (all - local, all);
        for &(l, a) in others {
            remote += a - l;
            total += a;
        }
        total > 0 && remote * 4 >= total
    }

    fn call(&self, req: &Request) -> Result<Reply> {
        let s = self
            .far
            .structure
            .as_ref()
            .ok_or_else(|| Error::UnknownDevice(DEVICE.into()))?;
        let mut input = Vec::new();
        encode_serde(req, &mut input)?;
        let out = s.compute(OP, &input)?;
        decode_serde(&out)
    }

    fn same_far<U: FarData>(&self, other: &RemVec<U>) -> Result<()> {
        let a = self.far.rt.backend() as *const dyn aifm_core::Backend as *const u8;
        let b = other.far.rt.backend() as *const dyn aifm_core::Backend as *const u8;
        if a == b && other.far.structure.is_some() {
            Ok(())
        } else {
            Err(Error::Remote(
                "the vectors do not share far memory: cannot offload".into(),
            ))
        }
    }
}

/// Whether `perm` holds every index `0..n` exactly once (read here, chunk by chunk).
fn local_is_permutation(perm: &RemVec<u64>, n: usize) -> bool {
    if perm.len() != n {
        return false;
    }
    let mut seen = vec![false; n];
    perm.iter().all(|i| match seen.get_mut(i as usize) {
        Some(s) if !*s => {
            *s = true;
            true
        }
        _ => false,
    })
}

/// The index range `r` names in a sequence of `len` elements.
///
/// # Panics
/// Like std's slice methods: when a bound is past `usize::MAX` (`Excluded(usize::MAX)` as a
/// start, `Included(usize::MAX)` as an end: these must not wrap to 0), when the start is
/// after the end, or when the end is past `len`.
#[track_caller]
pub(crate) fn to_range(r: impl RangeBounds<usize>, len: usize) -> Range<usize> {
    let start = match r.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s
            .checked_add(1)
            .expect("attempted to index slice from after maximum usize"),
        Bound::Unbounded => 0,
    };
    let end = match r.end_bound() {
        Bound::Included(&e) => e
            .checked_add(1)
            .expect("attempted to index slice up to maximum usize"),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    assert!(
        start <= end && end <= len,
        "range {start}..{end} out of bounds for length {len}"
    );
    start..end
}

/// Runs `remote` or `local` as `exec` says (`Auto`: remote when `offload`, falling back to
/// local on any failure of the remote path).
fn dispatch<R>(
    exec: Exec,
    trivial: bool,
    offload: impl FnOnce() -> bool,
    remote: impl FnOnce() -> Result<R>,
    local: impl FnOnce() -> Result<R>,
) -> Result<R> {
    if trivial {
        // Nothing to compute on (and perhaps no far-memory structure yet).
        return local();
    }
    match exec {
        Exec::Local => local(),
        Exec::Remote => remote(),
        Exec::Auto => {
            if offload() {
                match remote() {
                    Ok(r) => return Ok(r),
                    Err(Error::Remote(m)) if m.starts_with(OOB) => {
                        return Err(Error::Remote(m));
                    }
                    Err(_) => {}
                }
            }
            local()
        }
    }
}

/// Panics on a contract violation reported by either path; passes other errors through.
#[track_caller]
fn contract<R>(r: Result<R>, what: &str) -> Result<R> {
    match r {
        Err(Error::Remote(m)) if m.starts_with(OOB) => panic!("{what}: {m}"),
        r => r,
    }
}

impl<T: Numeric> RemVec<T> {
    /// Computes an aggregate of all elements; `None` for min, max, mean and median of an
    /// empty vector.
    ///
    /// # Errors
    /// Far-memory errors; with [`Exec::Remote`], also when the backend cannot run the
    /// `aifm.vec` device.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::vec::{AggValue, Aggregate};
    /// use aifm_collections::{Exec, RemVec};
    /// let v: RemVec<f64> = [1.5, 0.5, 4.0].into_iter().collect();
    /// let r = v.try_aggregate(Aggregate::Mean, Exec::Remote).unwrap();
    /// assert_eq!(r, Some(AggValue::Mean(2.0)));
    /// ```
    pub fn try_aggregate(&self, agg: Aggregate, exec: Exec) -> Result<Option<AggValue<T>>> {
        dispatch(
            exec,
            self.is_empty(),
            || self.worth_offloading(&[]),
            || {
                if self.is_striped() {
                    return self.striped_aggregate(agg);
                }
                self.sync_far()?;
                match self.call(&Request::Aggregate {
                    kind: T::KIND,
                    agg,
                    shape: self.shape(),
                })? {
                    Reply::Agg(None) => Ok(None),
                    Reply::Agg(Some((tag, b))) => AggValue::from_wire(tag, &b).map(Some),
                    r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
                }
            },
            || {
                let mut acc = Acc::<T>::new(agg);
                self.try_for_each_chunk(|xs| {
                    acc.push_slice(xs);
                    Ok(())
                })?;
                Ok(acc.finish())
            },
        )
    }

    fn agg_or_panic(&self, agg: Aggregate, what: &str) -> Option<AggValue<T>> {
        match self.try_aggregate(agg, Exec::Auto) {
            Ok(v) => v,
            Err(e) => fail(what, e),
        }
    }

    /// Sum of the elements, with [`Exec`] choosing where.
    ///
    /// # Errors
    /// As [`RemVec::try_aggregate`].
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::{Exec, RemVec};
    /// let v: RemVec<i8> = [-100, -100, 50].into_iter().collect();
    /// assert_eq!(v.try_sum(Exec::Local).unwrap(), -150i128);
    /// ```
    pub fn try_sum(&self, exec: Exec) -> Result<T::Sum> {
        match self.try_aggregate(Aggregate::Sum, exec)? {
            Some(AggValue::Sum(s)) => Ok(s),
            _ => unreachable!("a sum is always defined"),
        }
    }

    /// Sum of the elements (widened: `i128`, `u128` or `f64`).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u8> = [200, 100].into_iter().collect();
    /// assert_eq!(v.sum(), 300u128);
    /// ```
    #[track_caller]
    pub fn sum(&self) -> T::Sum {
        match self.agg_or_panic(Aggregate::Sum, "RemVec::sum") {
            Some(AggValue::Sum(s)) => s,
            _ => unreachable!("a sum is always defined"),
        }
    }

    /// Smallest element (IEEE total order for floats).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<i32> = [3, -7, 5].into_iter().collect();
    /// assert_eq!(v.min(), Some(-7));
    /// ```
    #[track_caller]
    pub fn min(&self) -> Option<T> {
        match self.agg_or_panic(Aggregate::Min, "RemVec::min") {
            Some(AggValue::Min(x)) => Some(x),
            _ => None,
        }
    }

    /// Largest element (IEEE total order for floats).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<f32> = [3.0, -7.0, 5.0].into_iter().collect();
    /// assert_eq!(v.max(), Some(5.0));
    /// ```
    #[track_caller]
    pub fn max(&self) -> Option<T> {
        match self.agg_or_panic(Aggregate::Max, "RemVec::max") {
            Some(AggValue::Max(x)) => Some(x),
            _ => None,
        }
    }

    /// Mean of the elements.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u16> = [1, 2].into_iter().collect();
    /// assert_eq!(v.mean(), Some(1.5));
    /// ```
    #[track_caller]
    pub fn mean(&self) -> Option<f64> {
        match self.agg_or_panic(Aggregate::Mean, "RemVec::mean") {
            Some(AggValue::Mean(m)) => Some(m),
            _ => None,
        }
    }

    /// Number of elements, counted where the data is (equals [`RemVec::len`]).
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u16> = (0..7).collect();
    /// assert_eq!(v.count(), 7);
    /// ```
    #[track_caller]
    pub fn count(&self) -> u64 {
        match self.agg_or_panic(Aggregate::Count, "RemVec::count") {
            Some(AggValue::Count(c)) => c,
            _ => 0,
        }
    }

    /// Lower median: element `(len - 1) / 2` in sorted (total) order.
    ///
    /// # Panics
    /// If far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u32> = [9, 1, 5, 3].into_iter().collect();
    /// assert_eq!(v.median(), Some(3));
    /// ```
    #[track_caller]
    pub fn median(&self) -> Option<T> {
        match self.agg_or_panic(Aggregate::Median, "RemVec::median") {
            Some(AggValue::Median(x)) => Some(x),
            _ => None,
        }
    }

    /// Aggregates `self` per distinct key of `keys` (which must have the same length):
    /// `result[k]` is the aggregate of every `self[i]` with `keys[i] == k`.
    ///
    /// # Errors
    /// Far-memory errors; with [`Exec::Remote`], also when the two vectors do not share a
    /// backend that runs the `aifm.vec` device.
    ///
    /// # Panics
    /// If the lengths differ.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::vec::{AggValue, Aggregate};
    /// use aifm_collections::{Exec, RemVec};
    /// let trips: RemVec<f64> = [10.0, 20.0, 5.0, 7.0].into_iter().collect();
    /// let day: RemVec<u8> = [1, 2, 1, 1].into_iter().collect();
    /// let m = trips.try_group_by(&day, Aggregate::Median, Exec::Auto).unwrap();
    /// assert_eq!(m[&1], AggValue::Median(7.0));
    /// assert_eq!(m[&2], AggValue::Median(20.0));
    /// ```
    #[track_caller]
    pub fn try_group_by<K: GroupKey>(
        &self,
        keys: &RemVec<K>,
        agg: Aggregate,
        exec: Exec,
    ) -> Result<BTreeMap<K, AggValue<T>>> {
        assert_eq!(
            keys.len(),
            self.len(),
            "RemVec::group_by: key and value lengths differ"
        );
        dispatch(
            exec,
            self.is_empty(),
            || {
                (self.is_striped() || keys.is_striped() || self.same_far(keys).is_ok())
                    && self.worth_offloading(&[keys.local_chunks()])
            },
            || {
                if self.is_striped() || keys.is_striped() {
                    return self.gathered_group_by(keys, agg);
                }
                self.same_far(keys)?;
                self.sync_far()?;
                keys.sync_far()?;
                let req = Request::GroupBy {
                    kind: T::KIND,
                    agg,
                    shape: self.shape(),
                    key_kind: K::KIND,
                    keys: keys.other().expect("checked"),
                };
                match self.call(&req)? {
                    Reply::Groups(g) => g
                        .into_iter()
                        .map(|(k, tag, b)| Ok((K::from_i128(k), AggValue::from_wire(tag, &b)?)))
                        .collect(),
                    r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
                }
            },
            || {
                let mut acc = GroupAcc::<T>::new(agg);
                let mut ks = keys.iter();
                self.try_for_each_chunk(|xs| {
                    for &x in xs {
                        acc.push(ks.next().expect("same length").to_i128(), x);
                    }
                    Ok(())
                })?;
                Ok(acc
                    .finish()
                    .into_iter()
                    .map(|(k, v)| (K::from_i128(k), v))
                    .collect())
            },
        )
    }

    /// [`RemVec::try_group_by`] with [`Exec::Auto`].
    ///
    /// # Panics
    /// If the lengths differ, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::vec::{AggValue, Aggregate};
    /// let v: aifm_collections::RemVec<u32> = (0..10).collect();
    /// let k: aifm_collections::RemVec<u8> = (0..10).map(|i| (i % 2) as u8).collect();
    /// let m = v.group_by(&k, Aggregate::Count);
    /// assert_eq!(m[&0], AggValue::Count(5));
    /// ```
    #[track_caller]
    pub fn group_by<K: GroupKey>(
        &self,
        keys: &RemVec<K>,
        agg: Aggregate,
    ) -> BTreeMap<K, AggValue<T>> {
        match self.try_group_by(keys, agg, Exec::Auto) {
            Ok(m) => m,
            Err(e) => fail("RemVec::group_by", e),
        }
    }
}

/// Whether `T`'s slice encoding is its raw bytes (what the device's gathers and copies move).
fn raw_encoding<T: FarData + Pod>() -> bool {
    let size = std::mem::size_of::<T>();
    let Ok(zero) = decode_pod::<T>(&vec![0u8; size]) else {
        return false;
    };
    let mut out = Vec::new();
    T::encode_slice(&[zero, zero], &mut out).is_ok() && out.len() == 2 * size
}

impl<T: FarData + Pod> RemVec<T> {
    /// Appends elements decoded from raw bytes (a device reply).
    fn extend_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let size = std::mem::size_of::<T>();
        if size == 0 {
            return Err(Error::Codec("zero-sized elements do not travel".into()));
        }
        self.try_extend(
            bytes
                .chunks_exact(size)
                .map(|b| decode_pod::<T>(b).expect("exact")),
        )
    }

    fn empty_like(&self) -> RemVec<T> {
        RemVec::with_chunk_bytes_in(self.chunk_len() * std::mem::size_of::<T>(), &self.far.rt)
            .with_placement(self.far.placement)
    }

    /// Fetches output `0..n` of a device operation in replies of [`REPLY_CHUNKS`] chunks.
    fn remote_build(&self, n: u64, req: impl Fn(u64, u64) -> Request) -> Result<RemVec<T>> {
        self.build_from(n, |from, to| match self.call(&req(from, to))? {
            Reply::Bytes(b) => Ok(b),
            r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        })
    }

    /// A new vector of `n` elements whose raw bytes `window(from, to)` returns, asked in
    /// windows of [`REPLY_CHUNKS`] chunks.
    fn build_from(
        &self,
        n: u64,
        mut window: impl FnMut(u64, u64) -> Result<Vec<u8>>,
    ) -> Result<RemVec<T>> {
        if !raw_encoding::<T>() || std::mem::size_of::<T>() == 0 {
            return Err(Error::Remote("elements do not travel as raw bytes".into()));
        }
        let mut out = self.empty_like();
        let step = REPLY_CHUNKS * self.chunk_len() as u64;
        let mut from = 0;
        while from < n {
            let to = (from + step).min(n);
            out.extend_raw(&window(from, to)?)?;
            from = to;
        }
        Ok(out)
    }

    fn local_gather(&self, idx: &RemVec<u64>) -> Result<RemVec<T>> {
        let mut out = self.empty_like();
        let mut scope = Scope::new();
        let mut err = None;
        let mut n = 0usize;
        out.try_extend(idx.iter().map_while(|i| {
            n += 1;
            if n % 1024 == 0 {
                scope.renew();
            }
            match self.try_get(i as usize, &scope) {
                Ok(Some(x)) => Some(*x),
                Ok(None) => {
                    err = Some(Error::Remote(format!(
                        "{OOB}: index {i} out of bounds for length {}",
                        self.len
                    )));
                    None
                }
                Err(e) => {
                    err = Some(e);
                    None
                }
            }
        }))?;
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// A new vector of `self[idx[0]], self[idx[1]], …` (a filter when `idx` lists the rows to
    /// keep).
    ///
    /// # Errors
    /// Far-memory errors; with [`Exec::Remote`], also when the device cannot be used.
    ///
    /// # Panics
    /// If an index is out of bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::{Exec, RemVec};
    /// let v: RemVec<u32> = (0..100).map(|i| i * 10).collect();
    /// let idx: RemVec<u64> = [5, 0, 99].into_iter().collect();
    /// let g = v.try_gather(&idx, Exec::Remote).unwrap();
    /// assert_eq!(g.iter().collect::<Vec<_>>(), [50, 0, 990]);
    /// ```
    #[track_caller]
    pub fn try_gather(&self, idx: &RemVec<u64>, exec: Exec) -> Result<RemVec<T>> {
        let r = dispatch(
            exec,
            self.is_empty() || idx.is_empty(),
            || {
                (self.is_striped() || idx.is_striped() || self.same_far(idx).is_ok())
                    && self.worth_offloading(&[idx.local_chunks()])
            },
            || {
                if self.is_striped() || idx.is_striped() {
                    return self.picked_gather(idx);
                }
                self.same_far(idx)?;
                self.sync_far()?;
                idx.sync_far()?;
                let other = idx.other().expect("checked");
                let shape = self.shape();
                self.remote_build(idx.len() as u64, |from, to| Request::Gather {
                    shape,
                    idx: other,
                    from,
                    to,
                })
            },
            || self.local_gather(idx),
        );
        contract(r, "RemVec::gather")
    }

    /// [`RemVec::try_gather`] with [`Exec::Auto`].
    ///
    /// # Panics
    /// If an index is out of bounds, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u8> = (0..10).collect();
    /// let idx: aifm_collections::RemVec<u64> = [9, 9].into_iter().collect();
    /// assert_eq!(v.gather(&idx).iter().collect::<Vec<_>>(), [9, 9]);
    /// ```
    #[track_caller]
    pub fn gather(&self, idx: &RemVec<u64>) -> RemVec<T> {
        match self.try_gather(idx, Exec::Auto) {
            Ok(v) => v,
            Err(e) => fail("RemVec::gather", e),
        }
    }

    /// A new vector with `out[j] = self[perm[j]]`, where `perm` must hold every index
    /// `0..len` exactly once (the shuffle step of a sort).
    ///
    /// # Errors
    /// As [`RemVec::try_gather`].
    ///
    /// # Panics
    /// If `perm` is not a permutation of `0..len`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::{Exec, RemVec};
    /// let v: RemVec<u8> = [10, 20, 30].into_iter().collect();
    /// let p: RemVec<u64> = [2, 0, 1].into_iter().collect();
    /// assert_eq!(v.try_permute(&p, Exec::Local).unwrap().iter().collect::<Vec<_>>(), [30, 10, 20]);
    /// ```
    #[track_caller]
    pub fn try_permute(&self, perm: &RemVec<u64>, exec: Exec) -> Result<RemVec<T>> {
        let n = self.len as u64;
        let is_perm = dispatch(
            exec,
            self.is_empty() || perm.is_empty(),
            || {
                (self.is_striped() || perm.is_striped() || self.same_far(perm).is_ok())
                    && self.worth_offloading(&[perm.local_chunks()])
            },
            || {
                if self.is_striped() || perm.is_striped() {
                    // No device sees all of both: the permutation check runs here.
                    return Ok(local_is_permutation(perm, self.len));
                }
                self.same_far(perm)?;
                perm.sync_far()?;
                match self.call(&Request::IsPermutation {
                    idx: perm.other().expect("checked"),
                    n,
                })? {
                    Reply::Bool(b) => Ok(b),
                    r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
                }
            },
            || Ok(local_is_permutation(perm, self.len)),
        )?;
        assert!(is_perm, "RemVec::permute: not a permutation of 0..{n}");
        self.try_gather(perm, exec)
    }

    /// [`RemVec::try_permute`] with [`Exec::Auto`].
    ///
    /// # Panics
    /// If `perm` is not a permutation of `0..len`, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u8> = [10, 20].into_iter().collect();
    /// let p: aifm_collections::RemVec<u64> = [1, 0].into_iter().collect();
    /// assert_eq!(v.permute(&p).iter().collect::<Vec<_>>(), [20, 10]);
    /// ```
    #[track_caller]
    pub fn permute(&self, perm: &RemVec<u64>) -> RemVec<T> {
        match self.try_permute(perm, Exec::Auto) {
            Ok(v) => v,
            Err(e) => fail("RemVec::permute", e),
        }
    }

    /// A new vector holding a copy of `range` (a column copy, or a slice of one).
    ///
    /// # Errors
    /// As [`RemVec::try_gather`].
    ///
    /// # Panics
    /// If the range is out of bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_collections::{Exec, RemVec};
    /// let v: RemVec<u64> = (0..5000).collect();
    /// let c = v.try_copy_range(1000..1003, Exec::Remote).unwrap();
    /// assert_eq!(c.iter().collect::<Vec<_>>(), [1000, 1001, 1002]);
    /// ```
    #[track_caller]
    pub fn try_copy_range(&self, range: impl RangeBounds<usize>, exec: Exec) -> Result<RemVec<T>> {
        let Range { start, end } = to_range(range, self.len);
        dispatch(
            exec,
            start == end,
            || self.worth_offloading(&[]),
            || {
                if self.is_striped() {
                    return self.striped_copy_range(start as u64, end as u64);
                }
                self.sync_far()?;
                let shape = self.shape();
                self.remote_build((end - start) as u64, |from, to| Request::CopyRange {
                    shape,
                    from: start as u64 + from,
                    to: start as u64 + to,
                })
            },
            || {
                let mut out = self.empty_like();
                out.try_extend(self.iter().skip(start).take(end - start))?;
                Ok(out)
            },
        )
    }

    /// [`RemVec::try_copy_range`] with [`Exec::Auto`].
    ///
    /// # Panics
    /// If the range is out of bounds, or far memory fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let v: aifm_collections::RemVec<u8> = (0..10).collect();
    /// assert_eq!(v.copy_range(8..).iter().collect::<Vec<_>>(), [8, 9]);
    /// ```
    #[track_caller]
    pub fn copy_range(&self, range: impl RangeBounds<usize>) -> RemVec<T> {
        match self.try_copy_range(range, Exec::Auto) {
            Ok(v) => v,
            Err(e) => fail("RemVec::copy_range", e),
        }
    }
}

/// An empty vector in the process-wide default runtime (`Runtime::global()`: 256 MiB of
/// local memory unless configured); [`RemVec::new_in`] chooses the runtime.
impl<T: FarData> Default for RemVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: FarData + fmt::Debug> fmt::Debug for RemVec<T> {
    /// Lists the elements (fetching what is remote), like `Vec`'s `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut scope = Scope::new();
        for c in &self.chunks {
            match c.slice(&scope) {
                Ok(xs) => {
                    list.entries(xs.iter());
                }
                Err(e) => {
                    list.entry(&format_args!("<{e}>"));
                }
            }
            scope.renew();
        }
        list.finish()
    }
}

impl<T: FarData + Clone> Clone for RemVec<T> {
    /// Clones chunk by chunk into a new vector in the same runtime.
    fn clone(&self) -> Self {
        let mut out =
            RemVec::with_chunk_bytes_in(1, &self.far.rt).with_placement(self.far.placement);
        out.shift = self.shift;
        out.clone_from(self);
        out
    }

    fn clone_from(&mut self, source: &Self) {
        self.clear();
        self.shift = source.shift;
        let cl = self.chunk_len();
        let mut scope = Scope::new();
        for c in &source.chunks {
            let mut v = Vec::with_capacity(cl);
            v.extend_from_slice(c.deref(&scope));
            scope.renew();
            self.push_full(v);
        }
    }
}

impl<T: FarData + PartialEq> PartialEq for RemVec<T> {
    fn eq(&self, other: &Self) -> bool {
        if self.len != other.len {
            return false;
        }
        let mut scope = Scope::new();
        if self.shift == other.shift {
            for (a, b) in self.chunks.iter().zip(&other.chunks) {
                if a.deref(&scope) != b.deref(&scope) {
                    return false;
                }
                scope.renew();
            }
            return true;
        }
        for i in 0..self.len {
            if self.get(i, &scope) != other.get(i, &scope) {
                return false;
            }
            if i % 1024 == 1023 {
                scope.renew();
            }
        }
        true
    }
}

impl<T: FarData + Eq> Eq for RemVec<T> {}

impl<T: FarData + PartialEq> PartialEq<[T]> for RemVec<T> {
    fn eq(&self, other: &[T]) -> bool {
        if self.len != other.len() {
            return false;
        }
        let cl = self.chunk_len();
        let mut scope = Scope::new();
        for (c, b) in self.chunks.iter().zip(other.chunks(cl)) {
            if c.deref(&scope) != b {
                return false;
            }
            scope.renew();
        }
        true
    }
}

impl<T: FarData + PartialEq> PartialEq<Vec<T>> for RemVec<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        *self == other[..]
    }
}

impl<T: FarData> Extend<T> for RemVec<T> {
    #[track_caller]
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        if let Err(e) = self.try_extend(iter) {
            fail("RemVec::extend", e)
        }
    }
}

impl<'a, T: FarData + Copy> Extend<&'a T> for RemVec<T> {
    #[track_caller]
    fn extend<I: IntoIterator<Item = &'a T>>(&mut self, iter: I) {
        self.extend(iter.into_iter().copied())
    }
}

/// `collect()` builds in the process-wide default runtime (`Runtime::global()`: 256 MiB of
/// local memory unless configured), not in a runtime you built: use
/// [`RemVec::from_iter_in`] for that.
impl<T: FarData> FromIterator<T> for RemVec<T> {
    #[track_caller]
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut v = RemVec::new();
        v.extend(iter);
        v
    }
}

/// Builds in the process-wide default runtime (`Runtime::global()`); use
/// [`RemVec::from_vec_in`] to choose one.
impl<T: FarData> From<Vec<T>> for RemVec<T> {
    #[track_caller]
    fn from(v: Vec<T>) -> Self {
        v.into_iter().collect()
    }
}

#[cfg(feature = "serde")]
impl<T: FarData + Clone + serde::Serialize> serde::Serialize for RemVec<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(feature = "serde")]
impl<'de, T: FarData + serde::Deserialize<'de>> serde::Deserialize<'de> for RemVec<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Vec::<T>::deserialize(d).map(RemVec::from)
    }
}
