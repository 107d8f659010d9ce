//! Fetch futures and the runtime's fetch API: tickets of boxes, batched, prefetched and
//! asynchronous fetches, scans. (Tickets and the helpers' queue are in `fetch_queue`, the
//! helper threads in `helper_threads`.)

use super::Link;
use crate::codec::FarData;
use crate::completion::Completion;
use crate::error::{Error, Result};
use crate::fetch_queue::{FetchTicket, Task, Ticket, QUEUE_LIMIT};
use crate::heap::{HasVTable, Kind};
use crate::helper_threads::timed_fetch;
use crate::object::{fetch_batch, Mode};
use crate::rembox::RemBox;
use crate::runtime::Runtime;
use crate::state::Alloc;
use crate::stats::Counters;
use crate::{slots, Scope};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

impl<T: FarData> RemBox<T> {
    /// A ticket naming this object for [`Runtime::fetch_many`], [`Runtime::prefetch`] or
    /// [`Runtime::fetch_async`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let b = aifm_core::RemBox::new_in([0u64; 64], &rt);
    /// rt.evacuate_now();
    /// let t = b.ticket();
    /// let _scope = aifm_core::Scope::new();
    /// assert_eq!(rt.fetch_many(&[t], false).unwrap(), 1);
    /// assert!(b.is_local());
    /// ```
    pub fn ticket(&self) -> FetchTicket {
        let slot = self.slot_ptr();
        FetchTicket(Ticket {
            slot,
            generation: slots::generation(slot),
            vtable: &T::VTABLE,
        })
    }

    /// A future that resolves once the object is local (fetched by the runtime's helpers,
    /// batched with whatever else is in flight).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::Future;
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let b = aifm_core::RemBox::new_in([3u64; 64], &rt);
    /// rt.evacuate_now();
    /// let mut fut = std::pin::pin!(b.read_async(|v| v[0]));
    /// let waker = std::task::Waker::noop();
    /// let mut cx = std::task::Context::from_waker(&waker);
    /// let value = loop {
    ///     if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) { break v.unwrap() }
    ///     std::thread::yield_now();
    /// };
    /// assert_eq!(value, 3);
    /// ```
    pub fn fetch_async(&self) -> FetchFuture {
        self.runtime().fetch_async(vec![self.ticket()])
    }

    /// Runs `f` on the value once it is local. A miss joins the polling thread's batch (see
    /// [`batched`](crate::prefetch::batched)): the misses of all of a thread's tasks are
    /// fetched by one request, made by the first of them polled again, with no thread per
    /// miss and no hand-off to the helper threads.
    ///
    /// # Errors
    /// As [`RemBox::try_deref`]; a failed batch fails every read in it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::Future;
    /// let b = aifm_core::RemBox::new(vec![1u8, 2, 3]);
    /// let mut fut = std::pin::pin!(b.read_async(|v| v.len()));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// let n = loop {
    ///     if let std::task::Poll::Ready(n) = fut.as_mut().poll(&mut cx) {
    ///         break n.unwrap();
    ///     }
    /// };
    /// assert_eq!(n, 3);
    /// ```
    pub async fn read_async<R>(&self, f: impl FnOnce(&T) -> R) -> Result<R> {
        let ticket = self.ticket();
        if !ticket.is_local() {
            self.runtime().fetch_batched(vec![ticket]).await?;
        }
        // Evacuated again meanwhile (memory pressure): the dereference fetches it alone.
        let scope = Scope::new();
        self.try_deref(&scope).map(f)
    }
}

/// A future that resolves when a set of objects has been fetched; yields how many of them
/// were local at that moment. Under memory pressure one may already be evacuated again by
/// the time the caller looks: a dereference then fetches it once more (synchronously).
///
/// # Examples
///
/// ```
/// let b = aifm_core::RemBox::new(1u8);
/// let fut: aifm_core::prefetch::FetchFuture = b.fetch_async(); // already local: ready at once
/// drop(fut);
/// ```
#[derive(Debug)]
pub struct FetchFuture {
    state: Option<Arc<Completion<Result<usize>>>>,
}

impl Future for FetchFuture {
    type Output = Result<usize>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<usize>> {
        let Some(state) = &self.state else {
            return Poll::Ready(Ok(0));
        };
        match state.take_or_wait(cx.waker()) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }
}

/// One sequential scan in progress, counted by its runtime until dropped (see
/// [`Runtime::enter_scan`]).
#[derive(Debug)]
pub struct ActiveScan(Runtime);

impl Drop for ActiveScan {
    fn drop(&mut self) {
        self.0.inner.link.scan_ended();
    }
}

impl Runtime {
    /// Fetches every remote object among `tickets` now, with one request per structure
    /// (instead of one per object). Call it inside the scope you will dereference them in.
    ///
    /// # Errors
    /// Backend errors; the objects stay remote and intact.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::{RemBox, Runtime, Scope};
    /// let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let boxes: Vec<_> = (0..100u64).map(|i| RemBox::new_in([i; 64], &rt)).collect();
    /// rt.evacuate_now();
    /// let scope = Scope::new();
    /// let tickets: Vec<_> = boxes.iter().map(RemBox::ticket).collect();
    /// assert!(rt.fetch_many(&tickets, false).unwrap() > 0);
    /// assert!(boxes.iter().all(RemBox::is_local));
    /// ```
    pub fn fetch_many(&self, tickets: &[FetchTicket], nontemporal: bool) -> Result<usize> {
        let tickets: Vec<Ticket> = tickets.iter().map(|t| t.0).collect();
        let kind = if nontemporal {
            Kind::Nontemporal
        } else {
            Kind::Normal
        };
        let mode = if nontemporal {
            Mode::Nontemporal
        } else {
            Mode::Read
        };
        timed_fetch(&self.inner, &tickets, kind, Alloc::Mutator, Some(mode))
    }

    /// Objects of `object_bytes` a sequential reader should keep in flight ahead of itself
    /// right now: two bandwidth-delay products of the measured link, at most a quarter of
    /// the free local memory (see [`Link`]). With the in-process store (nothing to hide) it is
    /// still an estimate, of copying speed.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// // Nothing measured yet: the default window (memory permitting).
    /// assert_eq!(rt.scan_window(4096), aifm_core::prefetch::DEFAULT_WINDOW);
    /// ```
    pub fn scan_window(&self, object_bytes: usize) -> usize {
        let h = &self.inner.heap;
        let budget = (h.budget_regions * h.region_size) as f64;
        let free = (h.free_fraction().max(0.0) * budget) as usize;
        self.inner.link.window(object_bytes, free)
    }

    /// Counts a sequential scan in progress until the returned guard drops: the windows of
    /// [`Runtime::scan_window`] share the free memory among the scans counted, so zipped
    /// scans do not evict each other's prefetches.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let alone = rt.scan_window(4096);
    /// let scans: Vec<_> = (0..64).map(|_| rt.enter_scan()).collect();
    /// assert!(rt.scan_window(4096) < alone);
    /// drop(scans);
    /// assert_eq!(rt.scan_window(4096), alone);
    /// ```
    pub fn enter_scan(&self) -> ActiveScan {
        self.inner.link.scan_started();
        ActiveScan(self.clone())
    }

    /// The measured link to far memory (round trip, throughput).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// assert!(rt.link().round_trip().is_none()); // nothing fetched yet
    /// ```
    pub fn link(&self) -> &Link {
        &self.inner.link
    }

    /// Asks the helper threads to bring `tickets` in ahead of use. Never blocks: when the
    /// helpers are behind, the request is dropped (and counted in the statistics).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let boxes: Vec<_> = (0..64u64).map(|i| aifm_core::RemBox::new_in([i; 64], &rt)).collect();
    /// rt.evacuate_now();
    /// rt.prefetch(boxes.iter().map(aifm_core::RemBox::ticket), false); // returns at once
    /// let scope = aifm_core::Scope::new();
    /// assert_eq!(boxes[63].deref(&scope)[0], 63);
    /// ```
    pub fn prefetch(&self, tickets: impl IntoIterator<Item = FetchTicket>, nontemporal: bool) {
        let tickets: Vec<Ticket> = tickets
            .into_iter()
            .filter(|t| !t.is_local())
            .map(|t| t.0)
            .collect();
        if tickets.is_empty() {
            return;
        }
        let i = &self.inner;
        if i.prefetch_queued.fetch_add(1, Ordering::Relaxed) >= QUEUE_LIMIT {
            i.prefetch_queued.fetch_sub(1, Ordering::Relaxed);
            Counters::add(&i.counters.prefetch_dropped, tickets.len() as u64);
            return;
        }
        let task = Task {
            tickets,
            nontemporal,
            done: None,
        };
        if i.prefetch_tx.send(task).is_err() {
            i.prefetch_queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A future that resolves once every object among `tickets` has been fetched by the
    /// polling thread's batch (see [`batched`](crate::prefetch::batched)): one request for
    /// the misses of all the thread's tasks, made by the first of them polled again. As with
    /// [`FetchFuture`], memory pressure may evacuate an object again before it is used.
    ///
    /// # Errors
    /// Backend errors, for every future of the failed batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::Future;
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let b = aifm_core::RemBox::new_in([4u64; 64], &rt);
    /// rt.evacuate_now();
    /// let mut fut = std::pin::pin!(rt.fetch_batched(vec![b.ticket()]));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// while fut.as_mut().poll(&mut cx).is_pending() {}
    /// assert!(b.is_local());
    /// ```
    pub async fn fetch_batched(&self, tickets: Vec<FetchTicket>) -> Result<()> {
        if tickets.iter().all(FetchTicket::is_local) {
            return Ok(());
        }
        let inner = &self.inner;
        let owner = Arc::as_ptr(inner) as usize;
        super::batched(owner, tickets, |all: Vec<FetchTicket>| {
            let all: Vec<Ticket> = all.iter().map(|t| t.0).collect();
            // A demand fetch stands in for dereferences: like them it runs in a scope, so it
            // may overdraw briefly instead of waiting for the evacuator.
            let _scope = Scope::new();
            match fetch_batch(inner, &all, Kind::Normal, Alloc::Mutator, Some(Mode::Read)) {
                // A batch larger than the overdraft fails whole; each dereference then
                // fetches its object alone, waiting for room as a dereference does.
                Ok(_) | Err(Error::LocalMemoryExhausted) => Ok(vec![(); all.len()]),
                Err(e) => Err(e),
            }
        })
        .await?;
        Ok(())
    }

    /// A future that resolves once every object among `tickets` has been fetched by the
    /// helper threads (see [`FetchFuture`] for what memory pressure may change afterwards).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::Future;
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let b = aifm_core::RemBox::new_in([4u64; 64], &rt);
    /// rt.evacuate_now();
    /// let mut fut = std::pin::pin!(rt.fetch_async(vec![b.ticket()]));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// while fut.as_mut().poll(&mut cx).is_pending() {
    ///     std::thread::yield_now();
    /// }
    /// assert!(b.is_local());
    /// ```
    pub fn fetch_async(&self, tickets: Vec<FetchTicket>) -> FetchFuture {
        if tickets.iter().all(FetchTicket::is_local) {
            return FetchFuture { state: None };
        }
        let done = Arc::new(Completion::default());
        let task = Task {
            tickets: tickets.iter().map(|t| t.0).collect(),
            nontemporal: false,
            done: Some(done.clone()),
        };
        if self.inner.prefetch_tx.send(task).is_err() {
            done.complete(Err(Error::Config(
                "the runtime's helpers have stopped".into(),
            )));
        }
        FetchFuture { state: Some(done) }
    }
}
