//! Latency hiding: the prefetch detector, batched fetches, helper threads and futures.
//!
//! A miss costs a round trip to far memory. This module hides it three ways:
//!
//! * **Batching** ([`Runtime::fetch_many`](crate::Runtime::fetch_many)): many objects, one request per structure. Used by
//!   iterators and offload fallbacks; a [`FetchTicket`] names an object without borrowing it.
//! * **Prefetching** ([`Prefetcher`] + [`Runtime::prefetch`](crate::Runtime::prefetch)): a
//!   structure that uses a [`Prefetcher`] (one per structure instance) has it watch the indices
//!   its mutators touch and, once it sees a steady stride, asks the runtime's helper threads
//!   to fetch a window of objects ahead. A structure can also push a window or a static hint
//!   ("I will read these") straight to [`Runtime::prefetch`](crate::Runtime::prefetch), as
//!   the collections' iterators do. The collections' `RemVec` feeds a [`Prefetcher`] with the
//!   chunks its `get` misses on; there is one stride detector, this one.
//! * **Async** ([`Runtime::fetch_async`](crate::Runtime::fetch_async), [`RemBox::read_async`](crate::RemBox::read_async)):
//!   a future that resolves when objects are local, so thousands of tasks on any executor can
//!   have misses in flight at once. `fetch_async` hands them to the helper threads, which
//!   batch whatever is queued into one request; `read_async` joins the polling thread's
//!   [`batched`] request instead (no thread hand-off: the first task polled again fetches for
//!   all of the thread's tasks).
//!
//! # The detector
//!
//! Mutators call [`Prefetcher::record`] with the index they touch. It appends the index to a
//! lock-free 256-entry trace ring (two relaxed atomic operations, no lock, no allocation),
//! compares it with the previous one, and counts consecutive equal strides. After
//! `threshold` (default 8) hits it returns a [`Plan`] for the next `window` objects (1 MiB
//! worth by default, or [`Prefetcher::set_window`]); each further hit slides the window by one
//! object. A structure that records only its misses skips the objects a window brought in, so
//! a touch further along the same stride (no further than the window's end) also counts as a
//! hit. A different stride
//! resets it. Plans never reach past the structure's length (the caller passes it).
//!
//! # Window by bandwidth-delay
//!
//! Every batched fetch reports its size and time to the runtime's [`Link`]: a smoothed round
//! trip and throughput. [`Runtime::scan_window`](crate::Runtime::scan_window) turns them into
//! the objects a sequential reader keeps in flight: two bandwidth-delay products, capped by a
//! quarter of the free local memory (so prefetched objects, nontemporal until used, cannot
//! evict the hot set). Scans and the [`Prefetcher`]'s windows are sized from it.
//!
//! # Accounting
//!
//! Prefetched objects arrive marked `FRESH` (see [`crate::word`]). The first dereference
//! counts a useful prefetch; evicting a still-fresh object counts a wasted one. Requests the
//! helpers cannot take (queue full, no free memory: a prefetch never overdraws) are dropped
//! and counted. All four figures are in [`Stats`](crate::Stats).

mod batch;
mod detector;
mod helpers;

pub use crate::fetch_queue::FetchTicket;
pub use crate::link::{Link, DEFAULT_WINDOW, MAX_WINDOW, MIN_WINDOW};
pub use batch::{batched, Batched};
pub use detector::{Plan, Prefetcher};
pub use helpers::ActiveScan;
pub use helpers::FetchFuture;
