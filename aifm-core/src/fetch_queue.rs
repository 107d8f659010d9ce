//! What travels from the mutators to the prefetch helper threads: a [`Ticket`] names a remote
//! object without a handle ([`FetchTicket`] is its public face), a [`Task`] carries tickets to
//! the helpers' queue, which [`QUEUE_LIMIT`] bounds.
//!
//! It sits below the runtime's shared state (which owns the queue's sender) and knows only
//! slots, vtables and [`Completion`]; fetching a ticket is the object module's claim protocol,
//! and the helpers' loop is in `helper_threads`.

use crate::completion::Completion;
use crate::error::Result;
use crate::heap::VTable;
use crate::slots::{self, Slot};
use crate::word::REMOTE;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;

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

/// A claim on a remote object for a batched fetch, made without a handle: the slot plus the
/// generation it had when the ticket was made, and how to build its type.
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    pub slot: NonNull<Slot>,
    pub generation: u32,
    pub vtable: &'static VTable,
}

// SAFETY: a ticket is an address plus a generation; it is only acted on through the claim
// protocol (`fetch_batch`), which re-checks that the slot still belongs to the same object.
unsafe impl Send for Ticket {}
// SAFETY: as above.
unsafe impl Sync for Ticket {}

/// Work for the helper threads.
pub(crate) struct Task {
    pub tickets: Vec<Ticket>,
    pub nontemporal: bool,
    /// Set for demand fetches (futures); `None` for prefetches.
    pub done: Option<Arc<Completion<Result<usize>>>>,
}
