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
//! The local part of a `RemVec` is small: per chunk, a 16-byte pointer word in the vector's
//! own arena (`aifm_core::arena::SlotArena`; no `RemBox`, no runtime slot) plus a byte of
//! flags (about 1/240 of the data with 4 KiB chunks). Chunks are allocated in the vector's own
//! registered structure (device type [`DEVICE`]), keyed by chunk index, so the far side sees
//! them under keys it understands.
//!
//! # Access
//!
//! * [`RemVec::get`] / [`RemVec::get_mut`] take a [`Scope`](aifm_core::Scope) and return
//!   references that borrow it, like `RemBox::deref`. [`RemVec::get_cloned`] manages a scope itself.
//! * `Index` is not offered: `Index::index(&self, i) -> &T` has no place to put the scope that
//!   keeps the chunk from being evacuated while the reference lives, and a reference that
//!   outlives its scope could dangle.
//! * [`RemVec::chunks`] / [`RemVec::chunks_nt`] borrow the elements in place, a chunk at a
//!   time, each [`ChunkRef`] holding its chunk's scope (no clone, no copy).
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
//! * **Prefetching.** A per-vector [`Prefetcher`] (the core's stride detector: forward,
//!   reverse or strided) watches the chunks `get` misses on; once a constant stride is
//!   confirmed it hands the next chunks to the runtime's prefetch helpers in one batch
//!   (nontemporal, so unused prefetches are the first to go). Iterators know they are
//!   sequential and keep a window of chunks in flight ahead of themselves when far memory is
//!   across a network (with the in-process store there is no latency to hide, and helper
//!   threads would only compete for the cores). Both windows are sized by
//!   [`Runtime::scan_window`]: the link's measured bandwidth-delay product, within the free
//!   local memory.
//! * **Offloading.** With plain-data elements, the `aifm.vec` device (in [`device`]) gathers by
//!   an index vector ([`RemVec::gather`]), permutes ([`RemVec::permute`]), copies ranges
//!   ([`RemVec::copy_range`]) and aggregates ([`RemVec::sum`] … [`RemVec::group_by`]) next to
//!   the data. Before an offloaded operation, chunks that are only local (or changed since they
//!   were last sent) are written to far memory in batches; chunks already remote are current
//!   there by construction. Each operation has a local fallback built on the same code
//!   (`ops`), and [`Exec`](crate::Exec) chooses: `Auto` offloads when at least a quarter of
//!   the chunks are remote. Results of gathers and copies arrive as one reply per 256 output
//!   chunks and become a fresh `RemVec` in the same runtime.
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

mod access;
mod aggregates;
mod chunk;
pub(crate) mod client;
pub(crate) mod cloned;
pub mod device;
mod edit;
mod gather;
mod iter;
mod offload;
pub mod ops;
mod page;
mod rebuild;
mod scan;
mod striped;
mod traits;

pub use device::DEVICE;
pub use iter::{Drain, IntoIter, Iter, IterIn};
pub use ops::{AggValue, Aggregate, GroupKey, NumKind, Numeric};
pub use scan::{ChunkRef, Chunks};

use crate::common::{chunk_shift, new_token, DEFAULT_CHUNK_BYTES};
use aifm_core::prefetch::Prefetcher;
use aifm_core::{FarData, Placement, Runtime, Structure};
use chunk::ChunkTable;
use std::ops::{Bound, Range, RangeBounds};

/// Far memory holds this chunk's current contents (as far as the vector knows).
const SYNCED: u8 = 1;
/// The vector itself wrote a copy of this chunk (for an offload); remove it with the chunk.
const WROTE: u8 = 2;

/// Chunks visited between scope renewals in long loops (16 chunks of 4 KiB: 64 KiB).
const RENEW_CHUNKS: usize = 16;

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
    pub(crate) chunks: ChunkTable<T>,
    /// Invariant (unsafe code relies on it: `get` does not bounds-check the arena's segment
    /// table): every index below `len` lies in a chunk that was pushed into the current chunk
    /// table, so its arena slot exists. Edits push chunks before they grow `len`; a table is
    /// replaced only while `len` is 0. (An edit that panics on its way, in an element's
    /// `Drop`, may leave `len` past the chunks left, but never past the chunks once pushed,
    /// and an emptied slot sends `get` to its slow path, which finds no chunk.)
    pub(crate) len: usize,
    pub(crate) shift: u32,
    pub(crate) far: Far,
    prefetch: Prefetcher,
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
            chunks: ChunkTable::default(),
            len: 0,
            shift: chunk_shift::<T>(bytes),
            far: Far::new(runtime, Placement::Whole),
            prefetch: Prefetcher::new(crate::DEFAULT_CHUNK_BYTES),
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
