//! The pauseless evacuator.
//!
//! # A round
//!
//! 1. **Select** up to `max(1, budget / 20)` sealed regions: nontemporal ones first, then the
//!    oldest.
//! 2. **Mark** every live object in them `EVACUATING` (a CAS on its word).
//! 3. **Wait** until every dereference scope that was open during marking has ended
//!    ([`crate::scope`]). Scopes opened later see the mark and take the slow path. Until the
//!    wait is over, a reference from an older scope may still point at the marked copy, so a
//!    mutator meeting the mark takes it off and uses the object in place (the round then keeps
//!    it); once every round is past its wait, the mutator migrates the object itself instead.
//! 4. **Move** each object still marked: claim it (`BUSY`); ask its structure's handler whether
//!    it is pinned ([`EvacuationHandler::pinned`]), and if so leave it where it is, unmarked;
//!    hot objects in normal regions are compacted into the evacuator's own lane and re-colded
//!    (CLOCK's second chance); cold ones go through their structure's handler, and dirty ones
//!    are written back in batches per structure; then the pointer turns remote.
//! 5. **Free** the regions. A region that still holds an object which could go nowhere (far
//!    memory refused it and no local room was left) is kept and re-sealed: nothing is lost.
//!    It goes back first in line, as what kept it is likely over soon; a region kept for a
//!    pinned object goes last, since a pin may be held for long (a guard on a sleeping
//!    thread), and a round that starts on it would free nothing.
//!
//! # Pins
//!
//! A structure may pin an object: record, in the object and inside the scope that found it,
//! that someone holds its address (the map's guards count themselves in their pair). The
//! holder may then end its scope and keep using the address, and holds up only that object
//! (and the one region around it), not every round: a round claims each object under `BUSY`
//! and asks the handler before it reads or moves it; a mutator that would migrate a marked
//! object asks too. The answer is complete because every scope open at the marking has ended
//! by then (so their pins are visible) and every later dereference meets the mark or `BUSY`
//! (see `object::pinned`). A round never waits for a pin, so `evacuate_now` returns with pins
//! held: each pinned object costs its region until the pin is gone and a later round empties
//! it.
//!
//! Nothing stops the world: mutators run throughout, waiting only on the one object that a
//! thread holds `BUSY` at that moment.

use crate::error::Error;
use crate::evacuation_handler::{Erased, EvacuationHandler, ObjectView, WriteBack};
use crate::heap::{Header, Kind, Sealed};
use crate::object::{self, Mode};
use crate::panics::{contain, to_error};
use crate::scope::{backoff, wait_for_older_scopes};
use crate::slots::{self, Slot};
use crate::state::{Inner, LaneState, CONSTRUCTING};
use crate::stats::Counters;
use crate::sync::MutexExt;
use crate::word::*;
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Most objects in one batched write-back request.
const WRITE_BATCH: usize = 256;

/// Starts evacuator thread `index` of a runtime. The thread holds only a weak reference, so a
/// runtime whose last handle and object are gone shuts it down.
pub(crate) fn spawn(inner: &Arc<Inner>, index: usize) -> crate::Result<()> {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name(format!("aifm-evacuator-{index}"))
        .spawn(move || loop {
            let Some(rt) = weak.upgrade() else { break };
            {
                let ev = &rt.evacuation;
                let mut signalled = ev.signal.locked();
                if !*signalled {
                    signalled = ev
                        .wake
                        .wait_timeout(signalled, Duration::from_millis(10))
                        .unwrap()
                        .0;
                }
                *signalled = false;
            }
            rt.evacuation.requested.store(false, Ordering::Release);
            if rt.heap.free_fraction() < rt.evacuation.levels(&rt.heap).start {
                run_until_target(&rt, Some(&rt.evacuator_lanes[index]));
            }
            // Panics of user code were counted and logged; nobody here to report them to.
            let _ = take_caught_panic();
            rt.flush_quarantine();
            rt.relieve_pressure();
        })
        .map(drop)
        .map_err(|e| crate::Error::Config(format!("cannot start the evacuator: {e}")))
}

/// Runs rounds until the free target is reached, a round neither frees a region nor moves an
/// object, or far memory refuses a write (then the evacuator backs off instead of churning).
/// With `lane: None` (a forced evacuation) the sealed regions are evacuated whatever the free
/// fraction, at most twice over (a second pass evicts the objects the first kept hot).
pub(crate) fn run_until_target(rt: &Inner, lane: Option<&Mutex<LaneState>>) {
    let own = Mutex::new(LaneState::default());
    let forced = lane.is_none();
    let lane = lane.unwrap_or(&own);
    let per_round = (rt.heap.budget_regions / 20).max(1);
    let budget_bytes = (rt.heap.budget_regions * rt.heap.region_size) as f64;
    let mut sealed_lanes = false;
    let mut sealed_own = false;
    let mut allowance = if forced {
        2 * rt.heap.sealed_regions() + 2
    } else {
        usize::MAX
    };
    while allowance > 0 {
        let target = rt.evacuation.levels(&rt.heap).target;
        if !forced && rt.heap.free_fraction() >= target {
            break;
        }
        // Enough regions to reach the target, counting the heap memory their objects own.
        let needed = if forced {
            usize::MAX
        } else {
            ((target - rt.heap.free_fraction()) * budget_bytes) as usize
        };
        let victims = rt.heap.victims(needed, per_round.min(allowance));
        if victims.is_empty() {
            if forced && !sealed_own {
                // The second pass: what the first kept hot (compacted into our own lane and
                // re-colded) is sealed now, so a forced evacuation evicts it unless someone
                // uses it meanwhile.
                sealed_own = true;
                own.locked().lane.seal_all(&rt.heap);
                continue;
            }
            if forced || sealed_lanes {
                break;
            }
            // Memory is short but nothing is sealed: the lanes' active regions hold it (objects
            // that own much heap fill the budget long before their region fills). Seal them.
            sealed_lanes = true;
            for lane in rt.lanes.iter().chain(rt.evacuator_lanes.iter()) {
                lane.locked().lane.seal_all(&rt.heap);
            }
            continue;
        }
        allowance -= victims.len();
        let outcome = round(rt, lane, victims);
        rt.relieve_pressure();
        if outcome.refused {
            // Far memory refused us: let the world move before trying again.
            std::thread::sleep(Duration::from_millis(5));
            break;
        }
        // A round that freed no region may still have moved objects out of regions kept for
        // the pinned objects among them: go on while anything moves.
        if outcome.freed == 0 && outcome.moved == 0 {
            break;
        }
    }
    if forced {
        own.locked().lane.seal_all(&rt.heap);
    }
}

/// What a round achieved.
struct Outcome {
    freed: usize,
    /// Marked objects that left their place (evicted, compacted, migrated or freed).
    moved: usize,
    /// Far memory refused a write-back (or a handler failed).
    refused: bool,
}

/// One marked object.
#[derive(Clone, Copy)]
struct Marked {
    header: NonNull<Header>,
    region: usize,
}

/// Marks the object of `h` EVACUATING; returns false if it is dead.
fn mark(h: &Header) -> bool {
    let mut spins = 0;
    loop {
        let s = h.slot(Ordering::Acquire);
        if s.is_null() {
            return false;
        }
        if s == CONSTRUCTING {
            backoff(&mut spins);
            continue;
        }
        let word = slots::word(NonNull::new(s).unwrap());
        let w = word.load(Ordering::Acquire);
        if w & BUSY != 0 || w & REMOTE != 0 || addr(w) != h.data() {
            // Another thread is moving or freeing it; `h.slot` turns null when it is done.
            backoff(&mut spins);
            continue;
        }
        if w & EVACUATING != 0
            || word
                .compare_exchange(w, w | EVACUATING, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return true;
        }
    }
}

/// What became of a marked object by the time the evacuator claims it.
enum Claim {
    /// The evacuator owns it now (pre-claim word).
    Ours(NonNull<Slot>, u64),
    /// A mutator moved or freed it: nothing left here.
    Gone,
    /// A mutator found no room to migrate it and took the mark off to use it in place; scopes
    /// newer than the marking may hold it, so it stays, and so does its region.
    Unmarked,
}

/// Claims a marked object for the evacuator.
fn claim_marked(h: &Header) -> Claim {
    let mut spins = 0;
    loop {
        let Some(slot) = NonNull::new(h.slot(Ordering::Acquire)) else {
            return Claim::Gone;
        };
        let word = slots::word(slot);
        let w = word.load(Ordering::Acquire);
        if w & BUSY != 0 || w & REMOTE != 0 || addr(w) != h.data() {
            backoff(&mut spins);
            continue;
        }
        if w & EVACUATING == 0 {
            return Claim::Unmarked;
        }
        if word
            .compare_exchange(w, w | BUSY, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return Claim::Ours(slot, w);
        }
    }
}

/// A cold object waiting for its batched write-back.
struct Outgoing {
    header: NonNull<Header>,
    slot: NonNull<Slot>,
    word: u64,
    region: usize,
    key: Vec<u8>,
    bytes: Vec<u8>,
    /// Detach the object once written (`WriteBack::DetachAs`).
    detach: bool,
}

/// Marks objects (`mark_them` returns those it marked) and waits until every scope open while
/// it marked has ended. The round counts as unsettled from before the first mark until the
/// wait is over (SeqCst: a mutator that claims a marked word and then reads zero unsettled
/// rounds knows the mark's grace period is over; see `object::slow_path`).
fn mark_and_wait(rt: &Inner, mark_them: impl FnOnce() -> Vec<Marked>) -> Vec<Marked> {
    rt.evacuation
        .unsettled_rounds
        .fetch_add(1, Ordering::SeqCst);
    let marked = mark_them();
    wait_for_older_scopes();
    rt.evacuation
        .unsettled_rounds
        .fetch_sub(1, Ordering::SeqCst);
    marked
}

fn round(rt: &Inner, lane: &Mutex<LaneState>, victims: Vec<Sealed>) -> Outcome {
    let marked = mark_and_wait(rt, || {
        let mut marked = Vec::new();
        for (i, r) in victims.iter().enumerate() {
            r.for_each_header(|h| {
                if mark(h) {
                    marked.push(Marked {
                        header: NonNull::from(h),
                        region: i,
                    });
                }
            });
        }
        marked
    });

    let mut retained = vec![false; victims.len()];
    // Regions kept for a pinned object: its pin may be held long, so they go to the back of
    // the queue, or every round would start on them and free nothing.
    let mut pinned = vec![false; victims.len()];
    let mut refused = false;
    let mut outgoing: HashMap<u32, Vec<Outgoing>> = HashMap::new();
    let mut handlers: HashMap<u32, Option<Arc<dyn EvacuationHandler>>> = HashMap::new();
    for m in &marked {
        // SAFETY: headers of victim regions stay valid until the regions are released below.
        let h = unsafe { m.header.as_ref() };
        let (slot, w) = match claim_marked(h) {
            Claim::Ours(slot, w) => (slot, w),
            Claim::Gone => continue,
            // A mutator used it in place while the round waited: it stays, and so does
            // its region, which goes back first in line (`Heap::reseal`): the rest of it
            // is dead space once this round is done.
            Claim::Unmarked => {
                retained[m.region] = true;
                continue;
            }
        };
        let ds = h.ds();
        let handler = handlers.entry(ds).or_insert_with(|| rt.handler(ds)).clone();
        if let Some(handler) = &handler {
            // Asked before anything reads the object: a pinned one may be in use by its pin
            // holders, and only its handler knows what of it they leave alone.
            // SAFETY: we hold BUSY on the local word `w`, and this round is past its wait.
            let pin = unsafe { object::pinned(&**handler, slot, w) }.unwrap_or_else(|e| {
                note_panic(rt, &e);
                true
            });
            if pin {
                Counters::add(&rt.counters.pinned_kept, 1);
                pinned[m.region] = true;
                stay(slot, w, &mut retained[m.region]);
                continue;
            }
        }
        // SAFETY: we hold BUSY and the structure holds no pin, so the object is ours alone.
        match unsafe { (h.vtable().heap_bytes)(h.data()) } {
            Ok(n) => object::charge_heap(rt, h, n),
            Err(e) => {
                note_panic(rt, &e);
                stay(slot, w, &mut retained[m.region]);
                continue;
            }
        }
        let hot = victims[m.region].kind == Kind::Normal && w & COLD == 0;
        if hot {
            keep(rt, lane, slot, w, &mut retained[m.region]);
            continue;
        }
        let view = ObjectView {
            obj: Erased {
                data: h.data(),
                vtable: h.vtable(),
                key: slots::key(slot),
                ds,
                _life: std::marker::PhantomData,
            },
            dirty: w & CLEAN == 0,
        };
        let action = match handler {
            Some(handler) => contain(|| handler.write_back(&view, &*rt.backend))
                .unwrap_or_else(|p| Err(to_error(p))),
            None => Ok(WriteBack::Default),
        };
        match action {
            Ok(WriteBack::Default) if w & CLEAN == 0 => match view.encode() {
                Ok(bytes) => outgoing.entry(ds).or_default().push(Outgoing {
                    header: m.header,
                    slot,
                    word: w,
                    region: m.region,
                    key: slots::key(slot).to_le_bytes().to_vec(),
                    bytes,
                    detach: false,
                }),
                Err(e) => {
                    note_panic(rt, &e);
                    keep(rt, lane, slot, w, &mut retained[m.region]);
                }
            },
            Ok(WriteBack::DetachAs { key, value }) => {
                outgoing.entry(ds).or_default().push(Outgoing {
                    header: m.header,
                    slot,
                    word: w,
                    region: m.region,
                    key,
                    bytes: value,
                    detach: true,
                })
            }
            Ok(WriteBack::Default) => {
                Counters::add(&rt.counters.discarded_clean, 1);
                let len = slots::far_len(slot).unwrap_or(0);
                evict(rt, h, slot, remote(len, ds));
            }
            Ok(WriteBack::Written) => {
                Counters::add(&rt.counters.write_backs, 1);
                evict(rt, h, slot, remote(0, ds));
            }
            Ok(WriteBack::Detached) => {
                Counters::add(&rt.counters.write_backs, 1);
                if let Some(old) = slots::far_len(slot) {
                    Counters::sub(&rt.counters.far_bytes, old as u64);
                }
                evict(rt, h, slot, remote(0, ds) | DETACHED);
            }
            Err(e @ Error::Panicked(_)) => {
                note_panic(rt, &e);
                stay(slot, w, &mut retained[m.region]);
            }
            Err(_) => {
                Counters::add(&rt.counters.backend_errors, 1);
                refused = true;
                keep(rt, lane, slot, w, &mut retained[m.region]);
            }
        }
    }

    for (ds, items) in outgoing {
        for batch in items.chunks(WRITE_BATCH) {
            refused |= !write_back(rt, lane, ds, batch, &mut retained);
        }
    }

    // A header whose slot is null holds no object any more: it left.
    let left = |m: &&Marked| {
        // SAFETY: the headers stay valid until their regions are released below.
        let h = unsafe { m.header.as_ref() };
        h.slot(Ordering::Acquire).is_null()
    };
    let moved = marked.iter().filter(left).count();
    let mut freed = 0;
    for ((r, keep_it), pin) in victims.into_iter().zip(retained).zip(pinned) {
        if pin {
            rt.heap.requeue(r);
        } else if keep_it {
            rt.heap.reseal(r);
        } else {
            rt.heap.release(r.base);
            freed += 1;
        }
    }
    Counters::add(&rt.counters.rounds, 1);
    Counters::add(&rt.counters.regions_freed, freed as u64);
    Outcome {
        freed,
        moved,
        refused,
    }
}

/// Sends one batch of cold, dirty objects of structure `ds` to far memory, then evicts them;
/// if far memory refuses the batch, keeps them all locally. Returns whether it was accepted.
fn write_back(
    rt: &Inner,
    lane: &Mutex<LaneState>,
    ds: u32,
    batch: &[Outgoing],
    retained: &mut [bool],
) -> bool {
    let items: Vec<(&[u8], &[u8])> = batch.iter().map(|o| (&o.key[..], &o.bytes[..])).collect();
    match rt.backend.write_many(ds, &items) {
        Ok(()) => {
            for o in batch {
                // SAFETY: the header stays valid until its region is released.
                let h = unsafe { o.header.as_ref() };
                let old = slots::far_len(o.slot).unwrap_or(0) as u64;
                Counters::sub(&rt.counters.far_bytes, old);
                Counters::add(&rt.counters.write_backs, 1);
                Counters::add(&rt.counters.written_bytes, o.bytes.len() as u64);
                if o.detach {
                    // The structure owns these bytes now; they are not the runtime's far bytes.
                    evict(rt, h, o.slot, remote(0, ds) | DETACHED);
                } else {
                    Counters::add(&rt.counters.far_bytes, o.bytes.len() as u64);
                    evict(rt, h, o.slot, remote(o.bytes.len(), ds));
                }
            }
            true
        }
        Err(_) => {
            Counters::add(&rt.counters.backend_errors, 1);
            for o in batch {
                keep(rt, lane, o.slot, o.word, &mut retained[o.region]);
            }
            false
        }
    }
}

/// Drops the local copy of a claimed object and publishes `remote_word`.
fn evict(rt: &Inner, h: &Header, slot: NonNull<Slot>, remote_word: u64) {
    if slots::word(slot).load(Ordering::Relaxed) & FRESH != 0 {
        Counters::add(&rt.counters.prefetch_wasted, 1);
    }
    // SAFETY: the evacuator holds BUSY, so no reference to the object exists; it is dropped
    // once, here, and its header is then marked dead. A panicking `Drop` still leaves it
    // dropped (its far copy is the object now).
    if let Err(p) = contain(|| unsafe { (h.vtable().drop)(h.data()) }) {
        note_panic(rt, &to_error(p));
    }
    object::kill(rt, h);
    slots::word(slot).store(remote_word, Ordering::Release);
}

/// Keeps a claimed object local by compacting it into the evacuator's lane. If even that
/// fails, leaves it where it is, unmarked, and retains its region.
fn keep(rt: &Inner, lane: &Mutex<LaneState>, slot: NonNull<Slot>, w: u64, retained: &mut bool) {
    // SAFETY: we hold BUSY on the local word `w`.
    match unsafe { object::migrate(rt, slot, w, Mode::Read, Some(lane)) } {
        Ok(()) => Counters::add(&rt.counters.compacted, 1),
        Err(e) => {
            note_panic(rt, &e);
            // No room to compact it: it stays, turned cold (its second chance is used up),
            // so the next round evicts it. Staying hot would let a heap full of hot objects
            // and no room to move them keep every round from freeing anything.
            stay(slot, (w | COLD) & !HOTNESS_MASK, retained);
        }
    }
}

/// Leaves a claimed object where it is, unmarked, and retains its region.
fn stay(slot: NonNull<Slot>, w: u64, retained: &mut bool) {
    *retained = true;
    slots::word(slot).store(w & !(EVACUATING | BUSY), Ordering::Release);
}

thread_local! {
    /// The first panic of user code that evacuation work on this thread caught since
    /// [`take_caught_panic`] last looked (so `evacuate_now` can report it to its caller).
    static CAUGHT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Counts and remembers `e` if it is a caught panic of user code (other errors are the
/// caller's to handle).
fn note_panic(rt: &Inner, e: &Error) {
    if let Error::Panicked(msg) = e {
        Counters::add(&rt.counters.evacuation_panics, 1);
        tracing::warn!("evacuation kept an object whose user code panicked: {msg}");
        CAUGHT.with(|c| {
            c.borrow_mut().get_or_insert_with(|| msg.clone());
        });
    }
}

/// The first panic caught by evacuation work on this thread since the last call.
pub(crate) fn take_caught_panic() -> Option<String> {
    CAUGHT.with(|c| c.borrow_mut().take())
}
