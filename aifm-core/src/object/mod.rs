//! Type-erased object transitions: the dereference slow path, fetch, migration and free.
//!
//! Every transition of a pointer word other than heating and dirtying happens while the
//! transitioning thread holds the word's `BUSY` bit ([`claim`]); it ends with a single
//! `Release` store of the new word, which also clears `BUSY`. Threads that meet `BUSY` wait for
//! that one object only.
//!
//! No transition moves an object its structure has pinned ([`pinned`]): a mutator that meets
//! such an object under evacuation takes the mark off and uses it in place, as it does while
//! a round is still waiting for older scopes.
//!
//! Bringing objects home (one for the slow path, or a batch of prefetch tickets) is in
//! `fetch`; it follows the same protocol.

use crate::backend::OBJECT_STORE;
use crate::codec::FarData;
use crate::error::{Error, Result};
use crate::evacuation_handler::{Erased, EvacuationHandler, PinView};
use crate::heap::{HasVTable, Header, Kind, VTable};
use crate::panics::{contain, to_error, Payload};
use crate::scope::backoff;
use crate::slots::{self, Slot};
use crate::state::{Alloc, Inner, LaneState};
use crate::stats::Counters;
use crate::sync::MutexExt;
use crate::word::*;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

mod fetch;

use fetch::fetch;
pub(crate) use fetch::fetch_batch;

/// What a dereference wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `&T`; heats the object.
    Read,
    /// `&mut T`; heats and dirties the object.
    Write,
    /// `&T` for a one-time read: never heats; fetched objects go to nontemporal regions.
    Nontemporal,
}

impl Mode {
    fn slow_mask(self) -> u64 {
        match self {
            Mode::Read => READ_SLOW,
            Mode::Write => WRITE_SLOW,
            Mode::Nontemporal => NT_SLOW,
        }
    }
}

/// Waits out `BUSY` and sets it; returns the word as it was before.
pub(crate) fn claim(slot: NonNull<Slot>) -> u64 {
    let word = slots::word(slot);
    let mut spins = 0;
    loop {
        let w = word.load(Ordering::Acquire);
        if w & BUSY == 0
            && word
                .compare_exchange_weak(w, w | BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return w;
        }
        backoff(&mut spins);
    }
}

/// The dereference slow path: brings the object local (fetching or migrating it), heats and
/// dirties it as `mode` asks, and returns its address.
///
/// # Safety
/// The caller must be inside a scope, own `slot` (through a live handle), and pass the vtable
/// of the object's real type.
pub(crate) unsafe fn slow_path(
    rt: &Inner,
    slot: NonNull<Slot>,
    mode: Mode,
    vtable: &'static VTable,
) -> Result<*mut u8> {
    let word = slots::word(slot);
    let mut spins = 0;
    loop {
        let w = word.load(Ordering::Acquire);
        if w & mode.slow_mask() == 0 {
            return Ok(addr(w));
        }
        if w & BUSY != 0 {
            backoff(&mut spins);
            continue;
        }
        if w & REMOTE != 0 {
            if w & DETACHED != 0 {
                return Err(Error::Detached);
            }
            if word
                .compare_exchange(w, w | BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // SAFETY: we hold BUSY on a remote word of the vtable's type.
            return unsafe { fetch(rt, slot, w, mode, vtable) }.inspect_err(|_| {
                word.store(w, Ordering::Release);
            });
        }
        if w & EVACUATING != 0 {
            if word
                .compare_exchange(w, w | BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // A scope older than the mark may still hold a reference to this copy until the
            // marking round's grace period is over: moving it now would leave two live copies.
            // Take the mark off instead and use the object where it is (the round keeps it).
            if rt.evacuation.unsettled_rounds.load(Ordering::SeqCst) != 0 {
                Counters::add(&rt.counters.unmarked_in_place, 1);
                word.store(w & !EVACUATING, Ordering::Release);
                continue;
            }
            // A pinned object never moves: its structure may hold its address beyond any
            // scope. Take the mark off and use it where it is (the round keeps it).
            // SAFETY: we hold BUSY on the local word `w`.
            if unsafe { pinned_by_structure(rt, slot, w) } {
                Counters::add(&rt.counters.pinned_kept, 1);
                word.store(w & !EVACUATING, Ordering::Release);
                continue;
            }
            // SAFETY: we hold BUSY on a local word; every round is past its grace period, so
            // no reference to the old copy exists (newer scopes took this slow path), and the
            // structure holds no pin on it (asked just now, under BUSY).
            match unsafe { migrate(rt, slot, w, mode, None) } {
                Ok(()) => Counters::add(&rt.counters.migrations, 1),
                // No room to move it: take the mark off and use it where it is. The evacuator
                // sees the missing mark and keeps the object (and its region).
                Err(Error::LocalMemoryExhausted) => word.store(w & !EVACUATING, Ordering::Release),
                Err(e) => {
                    word.store(w, Ordering::Release);
                    return Err(e);
                }
            }
            continue;
        }
        // Local and stable: only bookkeeping is left.
        let mut new = w & !FRESH;
        if w & FRESH != 0 {
            Counters::add(&rt.counters.prefetch_useful, 1);
        }
        if mode != Mode::Nontemporal && w & COLD != 0 {
            new = heated(new);
        }
        if mode == Mode::Write {
            new &= !CLEAN;
        }
        if word
            .compare_exchange(w, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(addr(new));
        }
    }
}

/// Whether `handler` pins the local object of word `w` in place
/// ([`EvacuationHandler::pinned`]): a move must then leave it where it is. `Err` is a panic of
/// the handler, which the caller takes as pinned (keeping an object in place is always safe).
///
/// Why the answer is complete: a pin is taken inside a scope, after the dereference that found
/// the object. The object's word carries the `EVACUATING` mark of a round past its wait (every
/// scope open at the marking has ended, and the wait's acquire loads of every participant's
/// state made what those scopes did visible), and the caller holds `BUSY`: a thread that
/// reaches the object now takes the slow path and waits for the caller's decision. So every
/// pin that can ever use this copy is already counted where the handler looks.
///
/// # Safety
/// The caller holds BUSY on `slot`, whose pre-claim word is the local word `w`, and the mark's
/// round is past its wait (`unsettled_rounds` read zero, or the caller is that round).
pub(crate) unsafe fn pinned(
    handler: &dyn EvacuationHandler,
    slot: NonNull<Slot>,
    w: u64,
) -> Result<bool> {
    // SAFETY: a local word points at a live object's data, which BUSY keeps in place.
    let h = unsafe { Header::of(addr(w)) };
    let view = PinView {
        obj: Erased {
            data: h.data(),
            vtable: h.vtable(),
            key: slots::key(slot),
            ds: h.ds(),
            _life: std::marker::PhantomData,
        },
    };
    contain(|| handler.pinned(&view)).map_err(to_error)
}

/// [`pinned`] for the mutator's slow path: looks the handler up (a panic counts as pinned).
///
/// # Safety
/// As [`pinned`].
unsafe fn pinned_by_structure(rt: &Inner, slot: NonNull<Slot>, w: u64) -> bool {
    // SAFETY: a local word points at a live object's data.
    let ds = unsafe { Header::of(addr(w)) }.ds();
    let Some(handler) = rt.handler(ds) else {
        return false;
    };
    // SAFETY: forwarded from our caller.
    unsafe { pinned(&*handler, slot, w) }.unwrap_or_else(|_| {
        Counters::add(&rt.counters.evacuation_panics, 1);
        true
    })
}

/// Moves a local object to a fresh place (a mutator meeting an object under evacuation, or
/// the evacuator compacting a hot one) and publishes it. With `lane`, the evacuator's own lane
/// is used and the object is re-colded (CLOCK); otherwise it is heated as `mode` asks.
///
/// # Safety
/// The caller holds BUSY on `slot`, whose pre-claim word is the local word `w`.
pub(crate) unsafe fn migrate(
    rt: &Inner,
    slot: NonNull<Slot>,
    w: u64,
    mode: Mode,
    lane: Option<&Mutex<LaneState>>,
) -> Result<()> {
    let old_data = addr(w);
    // SAFETY: a local word points at the data of a live object.
    let old = unsafe { Header::of(old_data) };
    let kind = if mode == Mode::Nontemporal {
        Kind::Nontemporal
    } else {
        Kind::Normal
    };
    let how = lane.map_or(Alloc::Mutator, Alloc::Evacuator);
    let header = rt.alloc_object(old.vtable(), old.ds(), kind, how)?;
    // SAFETY: fresh header from `alloc_object`.
    let h = unsafe { header.as_ref() };
    // SAFETY: both areas hold `len` bytes and do not overlap; a Rust value may be moved by
    // copying its bytes, and the old copy is never used again.
    unsafe { std::ptr::copy_nonoverlapping(old_data, h.data(), old.len()) };
    if let Some(handler) = rt.handler(old.ds()) {
        if let Err(p) = contain(|| handler.on_move(old_data, h.data())) {
            // The handler did not take the move: the old copy stays the object, and the new
            // bytes (a bitwise copy, never a value of its own) are simply abandoned.
            kill(rt, h);
            return Err(to_error(p));
        }
    }
    h.swap_heap(old.heap());
    old.set_slot(std::ptr::null_mut(), Ordering::Release);
    rt.heap
        .live_bytes
        .fetch_sub(old.footprint() as i64, Ordering::Relaxed);
    h.set_slot(slot.as_ptr(), Ordering::Release);
    let mut new = local(h.data(), w & CLEAN != 0) | (w & FRESH);
    match (lane.is_some(), mode) {
        (true, _) | (false, Mode::Nontemporal) => {}
        (false, Mode::Read | Mode::Write) => new = heated(heated(new)),
    }
    slots::word(slot).store(new, Ordering::Release);
    Ok(())
}

/// Marks a constructed-or-failed object dead and returns its bytes.
pub(crate) fn kill(rt: &Inner, h: &Header) {
    h.set_slot(std::ptr::null_mut(), Ordering::Release);
    rt.heap
        .live_bytes
        .fetch_sub(h.footprint() as i64, Ordering::Relaxed);
    let (_, old) = h.swap_heap(0);
    rt.heap.owned_bytes.fetch_sub(old as i64, Ordering::Relaxed);
}

/// Records a new measurement of an object's owned heap bytes.
pub(crate) fn charge_heap(rt: &Inner, h: &Header, bytes: usize) {
    let (new, old) = h.swap_heap(bytes);
    rt.heap
        .owned_bytes
        .fetch_add(new as i64 - old as i64, Ordering::Relaxed);
}

/// What happens to an object's far copy when the object is freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FarCopy {
    /// Remove it (batched through the quarantine for object-store slots).
    Remove,
    /// Leave it: the whole structure's far store is about to be destroyed (an arena dropped
    /// with its structure), so one request per object would be wasted.
    Forget,
}

/// Frees the object behind `slot` (claimed by the caller: pre-claim word `w`), taking its
/// value out with `take` if it is local (`take` must drop or move it), and deals with any far
/// copy as `far` says. A runtime slot goes back to the pool (or to the quarantine until its
/// far copy is removed); an arena slot stays with its arena, NULL. A panic in `take` does not
/// stop any of this: it is caught and returned, for the caller to resume once its own
/// bookkeeping is done.
///
/// # Safety
/// The caller holds BUSY on `slot` and owns it (through its only handle, or as the arena
/// that holds it); `take` must consume the object of the header's type at the pointer.
#[must_use = "a panic of the value's `Drop` must be resumed by the caller"]
pub(crate) unsafe fn free(
    rt: &Inner,
    slot: NonNull<Slot>,
    w: u64,
    far: FarCopy,
    take: impl FnOnce(*mut u8),
) -> Option<Payload> {
    let mut unwinding = None;
    let (ds, far_len) = if w & REMOTE != 0 {
        (remote_ds(w), (w & DETACHED == 0).then(|| remote_len(w)))
    } else {
        // SAFETY: a local word points at a live object's data.
        let h = unsafe { Header::of(addr(w)) };
        // A panic in `take` (the value's `Drop`) still frees the object, like a `Box` whose
        // value panics in `drop`; it is resumed once the slot is released.
        unwinding = contain(|| take(h.data())).err();
        kill(rt, h);
        (h.ds(), slots::far_len(slot))
    };

    slots::word(slot).store(NULL, Ordering::Release);
    let runtime_slot = slots::is_runtime_slot(slot);
    let release = |slot| {
        if runtime_slot {
            rt.free_slot(slot)
        }
    };
    let Some(len) = far_len else {
        release(slot);
        return unwinding;
    };
    Counters::sub(&rt.counters.far_bytes, len as u64);
    if far == FarCopy::Forget {
        release(slot);
    } else if ds == OBJECT_STORE && runtime_slot {
        let mut q = rt.quarantine.locked();
        q.push(slots::SlotPtr(slot));
        let full = q.len() >= 256;
        drop(q);
        if full {
            rt.flush_quarantine();
        }
    } else {
        // Removed before the slot can be reused: its key (for an arena slot, its index) may
        // be handed to a new object right after.
        if rt
            .backend
            .remove(ds, &slots::key(slot).to_le_bytes())
            .is_err()
        {
            Counters::add(&rt.counters.backend_errors, 1);
        }
        release(slot);
    }
    unwinding
}

/// Builds `value` as a new local object of structure `ds` whose pointer word is `slot`, and
/// publishes the word. The slot's key (for a runtime slot) must be set already.
///
/// # Errors
/// As [`Inner::alloc_object`]; `value` is dropped.
///
/// # Safety
/// `slot` must be a free slot (NULL word) that the caller owns and that no other thread can
/// publish to.
pub(crate) unsafe fn construct<T: FarData>(
    rt: &Inner,
    value: T,
    ds: u32,
    slot: NonNull<Slot>,
) -> Result<()> {
    // Measured before the header exists: a panic here leaves nothing half built.
    let heap = value.heap_bytes();
    let header = rt.alloc_object(&T::VTABLE, ds, Kind::Normal, Alloc::Mutator)?;
    // SAFETY: fresh header from `alloc_object`; its data area is room for a T.
    let h = unsafe { header.as_ref() };
    // SAFETY: as above.
    unsafe { (h.data() as *mut T).write(value) };
    charge_heap(rt, h, heap);
    slots::next_generation(slot);
    h.set_slot(slot.as_ptr(), Ordering::Release);
    slots::word(slot).store(local(h.data(), false), Ordering::Release);
    Ok(())
}

/// Takes the value of the object behind `slot` out (fetching it if it is remote) and frees
/// the object, dealing with its far copy as `far` says. On an error the object is left as it
/// was.
///
/// # Safety
/// The caller owns `slot` (through its only handle, or as its arena), whose object is a `T`;
/// no reference to the object may be live.
pub(crate) unsafe fn take_out<T: FarData>(
    rt: &Inner,
    slot: NonNull<Slot>,
    far: FarCopy,
) -> Result<T> {
    let w = claim(slot);
    let mut out = None;
    if w & REMOTE != 0 {
        let fetched = if w & DETACHED != 0 {
            Err(Error::Detached)
        } else {
            rt.backend
                .read(remote_ds(w), &slots::key(slot).to_le_bytes())
                .and_then(|b| b.ok_or(Error::NotFound))
                .and_then(|b| contain(|| T::decode(&b)).map_err(to_error)?)
        };
        match fetched {
            Ok(v) => out = Some(v),
            Err(e) => {
                slots::word(slot).store(w, Ordering::Release);
                return Err(e);
            }
        }
    }
    // SAFETY: we hold BUSY and own the slot; `take` moves the local T out exactly once (a
    // read, which cannot panic, so there is nothing to resume).
    let _ = unsafe { free(rt, slot, w, far, |p| out = Some((p as *mut T).read())) };
    Ok(out.expect("a local or fetched value"))
}

/// Drops the object behind `slot` and frees it, dealing with its far copy as `far` says.
/// Returns the panic of the value's `Drop`, if it panicked, for the caller to resume once its
/// own bookkeeping is done (the object is freed either way).
///
/// # Safety
/// As [`take_out`].
#[must_use = "a panic of the value's `Drop` must be resumed by the caller"]
pub(crate) unsafe fn destroy<T: FarData>(
    rt: &Inner,
    slot: NonNull<Slot>,
    far: FarCopy,
) -> Option<Payload> {
    let w = claim(slot);
    // SAFETY: we hold BUSY and own the slot; `take` drops the T in place once.
    unsafe { free(rt, slot, w, far, |p| std::ptr::drop_in_place(p as *mut T)) }
}
