//! Fetch tickets, the prefetch helper threads, and fetch futures.

use super::completion::Completion;
use super::Link;
use crate::codec::FarData;
use crate::error::{Error, Result};
use crate::heap::{HasVTable, Kind};
use crate::object::{fetch_batch, Mode, Ticket};
use crate::rembox::RemBox;
use crate::runtime::Runtime;
use crate::state::{Alloc, Inner};
use crate::stats::Counters;
use crate::sync::MutexExt;
use crate::word::REMOTE;
use crate::{slots, Scope};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

/// Most prefetch tasks waiting for the helpers; more are dropped (and counted).
pub(crate) const QUEUE_LIMIT: usize = 256;

/// Names one object for a batched or background fetch without borrowing its `RemBox`.
///
/// A ticket stays safe to use after its box is dropped or its slot reused: the fetch checks
/// the slot's generation and simply skips objects that are no longer the same.
///
/// # Examples
///
/// ```
/// let b = aifm_core::RemBox::new(1u8);
/// let t = b.ticket();
/// drop(b);
/// // A ticket outliving its box is harmless: fetching it does nothing.
/// let _s = aifm_core::Scope::new();
/// assert_eq!(aifm_core::Runtime::global().fetch_many(&[t], false).unwrap(), 0);
/// ```
#[derive(Clone, Copy)]
pub struct FetchTicket(pub(crate) Ticket);

impl std::fmt::Debug for FetchTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchTicket")
            .field("key", &slots::key(self.0.slot))
            .field("generation", &self.0.generation)
            .finish()
    }
}

impl FetchTicket {
    /// Whether the object is (right now) local.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = aifm_core::Runtime::builder().local_memory(4 << 20).build().unwrap();
    /// let b = aifm_core::RemBox::new_in([0u64; 64], &rt);
    /// assert!(b.ticket().is_local());
    /// ```
    pub fn is_local(&self) -> bool {
        slots::word(self.0.slot).load(Ordering::Acquire) & REMOTE == 0
    }
}

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

/// Work for the helper threads.
pub(crate) struct Task {
    tickets: Vec<Ticket>,
    nontemporal: bool,
    /// Set for demand fetches (futures); `None` for prefetches.
    done: Option<Arc<Completion<Result<usize>>>>,
}

/// Starts `n` helper threads draining `rx` for the runtime behind `weak`.
pub(crate) fn spawn_helpers(weak: Weak<Inner>, rx: Receiver<Task>, n: usize) -> Result<()> {
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let (weak, rx) = (weak.clone(), rx.clone());
        std::thread::Builder::new()
            .name(format!("aifm-prefetch-{i}"))
            .spawn(move || helper_loop(&weak, &rx))
            .map_err(|e| Error::Config(format!("cannot start a prefetch helper: {e}")))?;
    }
    Ok(())
}

fn helper_loop(weak: &Weak<Inner>, rx: &Mutex<Receiver<Task>>) {
    loop {
        // Take everything queued: one backend request serves all of it.
        let tasks = {
            let rx = rx.locked();
            let Ok(first) = rx.recv() else { return };
            let mut tasks = vec![first];
            while tasks.len() < QUEUE_LIMIT {
                match rx.try_recv() {
                    Ok(t) => tasks.push(t),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            tasks
        };
        let Some(rt) = weak.upgrade() else { return };
        rt.prefetch_queued.fetch_sub(
            tasks.iter().filter(|t| t.done.is_none()).count(),
            Ordering::Relaxed,
        );
        let (demand, prefetch): (Vec<Task>, Vec<Task>) =
            tasks.into_iter().partition(|t| t.done.is_some());
        if !demand.is_empty() {
            let tickets: Vec<Ticket> = demand
                .iter()
                .flat_map(|t| t.tickets.iter().copied())
                .collect();
            let kind = if demand.iter().all(|t| t.nontemporal) {
                Kind::Nontemporal
            } else {
                Kind::Normal
            };
            // A demand fetch stands in for a dereference: like one, it runs in a scope, so it
            // may overdraw briefly instead of waiting for the evacuator.
            let scope = Scope::new();
            let r = fetch_batch(&rt, &tickets, kind, Alloc::Mutator, Some(Mode::Read));
            drop(scope);
            // An object fetched and already evacuated again (or left far for want of room)
            // is not an error: the caller's dereference fetches it again, waiting for room
            // as a dereference does. Only far-memory failures are.
            for t in demand {
                let local = t
                    .tickets
                    .iter()
                    .filter(|t| FetchTicket(**t).is_local())
                    .count();
                t.done.unwrap().complete(match &r {
                    Ok(_) => Ok(local),
                    Err(e) => Err(e.clone()),
                });
            }
        }
        for nt in [false, true] {
            let tickets: Vec<Ticket> = prefetch
                .iter()
                .filter(|t| t.nontemporal == nt)
                .flat_map(|t| t.tickets.iter().copied())
                .collect();
            if tickets.is_empty() {
                continue;
            }
            let kind = if nt { Kind::Nontemporal } else { Kind::Normal };
            if let Ok(n) = timed_fetch(&rt, &tickets, kind, Alloc::Prefetch, None) {
                let missed = tickets
                    .iter()
                    .filter(|t| !FetchTicket(**t).is_local())
                    .count();
                Counters::add(
                    &rt.counters.prefetch_dropped,
                    missed.min(tickets.len() - n) as u64,
                );
            }
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

/// [`fetch_batch`], reporting the batch's objects, bytes and time to the runtime's [`Link`].
fn timed_fetch(
    rt: &Inner,
    tickets: &[Ticket],
    kind: Kind,
    how: Alloc<'_>,
    mode: Option<Mode>,
) -> Result<usize> {
    let bytes_before = rt.counters.fetched_bytes.load(Ordering::Relaxed);
    let t = Instant::now();
    let r = fetch_batch(rt, tickets, kind, how, mode);
    if let Ok(n) = r {
        // Other threads' fetches may land in the same counter meanwhile: a sample that is
        // off by a little only nudges a smoothed estimate.
        let bytes = rt.counters.fetched_bytes.load(Ordering::Relaxed) - bytes_before;
        rt.link.record(n, bytes as usize, t.elapsed());
    }
    r
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
