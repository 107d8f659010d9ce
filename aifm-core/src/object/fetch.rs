//! Bringing objects home: one object for the dereference slow path, or a batch of prefetch
//! tickets with one backend request per structure, decoded straight into their heap place and
//! published under the claim protocol of the parent module.

use super::{charge_heap, kill, Mode};
use crate::error::{Error, Result};
use crate::fetch_queue::Ticket;
use crate::heap::{Header, Kind, VTable};
use crate::panics::contain;
use crate::slots::{self, Slot};
use crate::state::{Alloc, Inner};
use crate::stats::Counters;
use crate::word::*;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

/// Fetches a remote object into local memory and publishes it.
///
/// # Safety
/// The caller holds BUSY on `slot`, whose pre-claim word is the remote word `w`.
pub(super) unsafe fn fetch(
    rt: &Inner,
    slot: NonNull<Slot>,
    w: u64,
    mode: Mode,
    vtable: &'static VTable,
) -> Result<*mut u8> {
    let key = slots::key(slot).to_le_bytes();
    let bytes = rt.backend.read(remote_ds(w), &key).inspect_err(|_| {
        Counters::add(&rt.counters.backend_errors, 1);
    })?;
    let bytes = bytes.ok_or(Error::NotFound)?;
    let ticket = Ticket {
        slot,
        generation: slots::generation(slot),
        vtable,
    };
    let kind = if mode == Mode::Nontemporal {
        Kind::Nontemporal
    } else {
        Kind::Normal
    };
    // SAFETY: forwarded from our caller.
    unsafe { place(rt, &ticket, w, &bytes, kind, Alloc::Mutator, Some(mode)) }
}

/// Claims the remote word of a ticket's slot if the slot is still in the same generation.
fn claim_ticket(t: &Ticket) -> Option<u64> {
    let word = slots::word(t.slot);
    let w = word.load(Ordering::Acquire);
    // Only remote, undetached, idle words; a NULL (free) word is never claimed, so slot
    // allocation (a plain store) cannot race with us.
    if w & (REMOTE | DETACHED | BUSY) != REMOTE {
        return None;
    }
    word.compare_exchange(w, w | BUSY, Ordering::Acquire, Ordering::Relaxed)
        .ok()?;
    if slots::generation(t.slot) != t.generation {
        word.store(w, Ordering::Release);
        return None;
    }
    Some(w)
}

/// Fetches every still-remote object among `tickets` with one backend request per structure,
/// into `kind` regions, as dereferences in `mode` would leave them (`None`: a prefetch, see
/// [`place`]). Returns how many objects were brought in.
///
/// # Errors
/// A backend failure: objects the backend had already handed over are local, every other
/// claimed object is left remote, untouched. Objects that find no room (a prefetch never
/// overdraws) are simply left remote.
pub(crate) fn fetch_batch(
    rt: &Inner,
    tickets: &[Ticket],
    kind: Kind,
    how: Alloc<'_>,
    mode: Option<Mode>,
) -> Result<usize> {
    let mut claimed: Vec<(&Ticket, u64)> = tickets
        .iter()
        .filter_map(|t| claim_ticket(t).map(|w| (t, w)))
        .collect();
    claimed.sort_by_key(|(_, w)| remote_ds(*w));
    let mut fetched = 0;
    let mut rest = &claimed[..];
    while let Some(((_, first), _)) = rest.split_first() {
        let ds = remote_ds(*first);
        let n = rest.iter().take_while(|(_, w)| remote_ds(*w) == ds).count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        let keys: Vec<[u8; 8]> = group
            .iter()
            .map(|(t, _)| slots::key(t.slot).to_le_bytes())
            .collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        // Every object's place is allocated before the read (an allocation may wait for the
        // evacuator, which must not happen while a backend lends its bytes, perhaps under a
        // lock the evacuator's write-backs need); then the backend lends each object's bytes
        // and they are decoded straight into their place (`None`: no room, left remote).
        // A fresh place is `CONSTRUCTING` until published, and an evacuator that meets one
        // waits for it; so only the first allocation may wait for room: waiting while holding
        // earlier places could wait on an evacuator that waits on them. The others take room
        // only if there is some (those left remote are fetched by their dereference).
        let no_wait = match how {
            Alloc::Mutator if !crate::scope::in_scope() => Alloc::Prefetch,
            other => other,
        };
        let places: Vec<Option<NonNull<Header>>> = group
            .iter()
            .enumerate()
            .map(|(i, (t, w))| {
                let how = if i == 0 { how } else { no_wait };
                rt.alloc_object(t.vtable, remote_ds(*w), kind, how).ok()
            })
            .collect();
        // Entries the sink published or gave back (a backend lends each index at most once
        // as far as we are concerned: a repeat is ignored).
        let mut handled = vec![false; group.len()];
        let read = rt.backend.read_many_with(ds, &refs, &mut |i, bytes| {
            let (Some((t, w)), Some(Some(header))) = (group.get(i), places.get(i)) else {
                return;
            };
            if std::mem::replace(&mut handled[i], true) {
                return;
            }
            // SAFETY: we hold BUSY on a remote word of the ticket's type, and `header` is a
            // fresh allocation for that type, used this once (`handled`).
            let placed = bytes.map(|b| unsafe { place_into(rt, t, *header, b, mode) });
            match placed {
                Some(Ok(_)) => fetched += 1,
                // `place_into` killed the header on its error.
                Some(Err(_)) => slots::word(t.slot).store(*w, Ordering::Release),
                None => {
                    // SAFETY: fresh header, never initialised or published.
                    kill(rt, unsafe { header.as_ref() });
                    slots::word(t.slot).store(*w, Ordering::Release);
                }
            }
        });
        // Objects the backend did not hand over (no room for them, or the read failed part
        // way) stay remote.
        for (((t, w), place), done) in group.iter().zip(&places).zip(&handled) {
            if !done {
                if let Some(header) = place {
                    // SAFETY: fresh header, never initialised or published.
                    kill(rt, unsafe { header.as_ref() });
                }
                slots::word(t.slot).store(*w, Ordering::Release);
            }
        }
        if let Err(e) = read {
            Counters::add(&rt.counters.backend_errors, 1);
            for (t, w) in rest {
                slots::word(t.slot).store(*w, Ordering::Release);
            }
            return Err(e);
        }
    }
    if mode.is_none() {
        Counters::add(&rt.counters.prefetch_issued, fetched as u64);
    }
    Ok(fetched)
}

/// Places fetched bytes for a claimed ticket in a `kind` region and publishes the local word as
/// a dereference in `mode` would leave it (heated unless nontemporal, dirty for a write).
/// `None` is a prefetch: marked `FRESH` (its first use counts as useful), not heated.
///
/// # Safety
/// The caller holds BUSY on the ticket's slot, whose pre-claim word is the remote word `w`.
unsafe fn place(
    rt: &Inner,
    t: &Ticket,
    w: u64,
    bytes: &[u8],
    kind: Kind,
    how: Alloc<'_>,
    mode: Option<Mode>,
) -> Result<*mut u8> {
    let header = rt.alloc_object(t.vtable, remote_ds(w), kind, how)?;
    // SAFETY: the caller's guarantee; a fresh header for the ticket's type.
    unsafe { place_into(rt, t, header, bytes, mode) }
}

/// [`place`] into `header`, allocated by the caller (killed here on an error).
///
/// # Safety
/// As [`place`]; and `header` is a fresh allocation for the ticket's type, not yet
/// initialised or published, which this call consumes.
unsafe fn place_into(
    rt: &Inner,
    t: &Ticket,
    header: NonNull<Header>,
    bytes: &[u8],
    mode: Option<Mode>,
) -> Result<*mut u8> {
    // SAFETY: fresh header from `alloc_object` (the caller's guarantee).
    let h = unsafe { header.as_ref() };
    // SAFETY: room for the ticket's type, which its vtable decodes.
    if let Err(e) = unsafe { (t.vtable.decode_into)(bytes, h.data()) } {
        kill(rt, h);
        return Err(e);
    }
    // SAFETY: the object is initialised.
    match unsafe { (t.vtable.heap_bytes)(h.data()) } {
        Ok(n) => charge_heap(rt, h, n),
        Err(e) => {
            // SAFETY: the value was decoded above and nothing else refers to it. A second
            // panic (in its `Drop`) only leaks the value's own heap memory.
            let _ = contain(|| unsafe { (t.vtable.drop)(h.data()) });
            kill(rt, h);
            return Err(e);
        }
    }
    slots::set_far_len(t.slot, Some(bytes.len()));
    h.set_slot(t.slot.as_ptr(), Ordering::Release);
    Counters::add(&rt.counters.fetches, 1);
    Counters::add(&rt.counters.fetched_bytes, bytes.len() as u64);
    // Kept far copy = clean, unless the caller writes or the type can change behind `&T`.
    let clean = mode != Some(Mode::Write) && !t.vtable.interior_mutable;
    let mut new = local(h.data(), clean);
    match mode {
        None => new |= FRESH,
        Some(Mode::Nontemporal) => {}
        Some(Mode::Read | Mode::Write) => new = heated(new),
    }
    slots::word(t.slot).store(new, Ordering::Release);
    Ok(h.data())
}
