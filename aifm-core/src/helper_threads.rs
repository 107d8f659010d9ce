//! The prefetch helper threads: each takes everything queued (up to [`QUEUE_LIMIT`]) and
//! serves it with one batched fetch per kind, demand fetches (futures) first.
//!
//! They hold the runtime's shared state only weakly and stop when it is gone or the queue's
//! sender is dropped. [`timed_fetch`] is the batched fetch every caller uses, reporting each
//! batch to the runtime's `Link` so prefetch windows follow the measured bandwidth-delay.

use crate::error::{Error, Result};
use crate::fetch_queue::{FetchTicket, Task, Ticket, QUEUE_LIMIT};
use crate::heap::Kind;
use crate::object::{fetch_batch, Mode};
use crate::scope::Scope;
use crate::state::{Alloc, Inner};
use crate::stats::Counters;
use crate::sync::MutexExt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

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

/// [`fetch_batch`], reporting the batch's objects, bytes and time to the runtime's [`Link`].
pub(crate) fn timed_fetch(
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
