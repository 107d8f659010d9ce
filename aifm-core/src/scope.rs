//! Dereference scopes: cheap, nestable, `!Send` epoch guards.
//!
//! # The protocol
//!
//! Every thread that opens a scope owns a `Participant` record in a process-wide registry.
//! Its `state` word is odd while the thread is inside an (outermost) scope and even otherwise;
//! every pin and unpin bumps it, so two different scopes never show the same odd value.
//!
//! * **Mutator (enter):** `state = seq | 1`, then a fence, then it may load pointer words.
//! * **Evacuator:** sets `EVACUATING` on the objects it wants, runs a *heavy* barrier, then
//!   snapshots every participant's state and waits until each odd one has changed
//!   (`wait_for_older_scopes`).
//!
//! This is Dekker's pattern: either the evacuator sees the mutator's pin (and waits for it), or
//! the mutator sees the mark (and takes the slow path). To keep the mutator's side free of a
//! hardware fence, the heavy barrier is Linux `membarrier(PRIVATE_EXPEDITED)`, which makes every
//! running thread of the process execute a full fence; the mutator then only needs a compiler
//! fence. Where `membarrier` is unavailable both sides fall back to `SeqCst` fences.
//!
//! Only the outermost scope pins; nested scopes bump a thread-local counter. So **a thread
//! with any scope open holds up every evacuation round that began meanwhile**, and
//! [`Scope::renew`] only helps on the outermost scope. Code that runs other code while it holds
//! a scope (an iterator between `next` calls, a guard returned to the caller) must keep that
//! window short: the collections' iterators copy a chunk out inside a scope of their own and
//! hold none while the caller works. A structure that must hand out an address for longer
//! pins the object instead (`EvacuationHandler::pinned`): it records the pin in the object
//! inside the scope, then ends the scope, and holds up that one object rather than every
//! round (the map's guards do). A reference from `deref` borrows its scope, so the
//! compiler rejects one that outlives it:
//!
//! ```compile_fail
//! use aifm_core::{RemBox, Runtime, Scope};
//! let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
//! let b = RemBox::new_in(5u64, &rt);
//! let r;
//! {
//!     let scope = Scope::new();
//!     r = b.deref(&scope);
//! }
//! println!("{r}"); // error: `scope` does not live long enough
//! ```
//!
//! and a scope cannot move to another thread:
//!
//! ```compile_fail
//! use aifm_core::Scope;
//! let scope = Scope::new();
//! std::thread::spawn(move || drop(scope)); // error: `*const ()` cannot be sent between threads
//! ```

use crate::sync::MutexExt;
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{compiler_fence, fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// One thread's pin state, shared with evacuators. Never freed; reused after its thread exits.
#[repr(align(64))]
#[derive(Debug)]
pub(crate) struct Participant {
    state: AtomicU64,
    in_use: AtomicBool,
}

static PARTICIPANTS: Mutex<Vec<&'static Participant>> = Mutex::new(Vec::new());
/// True once `membarrier` is registered: mutators may then use a compiler fence only.
static ASYMMETRIC: AtomicBool = AtomicBool::new(false);
/// How many runtimes are so short of memory that their mutators' new scopes should wait for
/// their evacuators (the fast check); `CRITICAL` says which.
static PRESSURE: AtomicUsize = AtomicUsize::new(0);
static CRITICAL: Mutex<Vec<u64>> = Mutex::new(Vec::new());
/// Longest a new scope waits for memory pressure to clear before going ahead anyway.
const PRESSURE_WAIT: Duration = Duration::from_millis(20);

struct Local {
    participant: Cell<Option<&'static Participant>>,
    nest: Cell<usize>,
    seq: Cell<u64>,
}

thread_local! {
    static LOCAL: Local = const {
        Local { participant: Cell::new(None), nest: Cell::new(0), seq: Cell::new(0) }
    };
    static RELEASE: ReleaseOnExit = const { ReleaseOnExit(Cell::new(None)) };
    /// The runtime this thread last allocated in (0: none).
    static LAST_RUNTIME: Cell<u64> = const { Cell::new(0) };
}

/// Hands a thread's participant back to the registry when the thread exits.
struct ReleaseOnExit(Cell<Option<&'static Participant>>);

impl Drop for ReleaseOnExit {
    fn drop(&mut self) {
        if let Some(p) = self.0.get() {
            p.state.store(0, Ordering::Release);
            p.in_use.store(false, Ordering::Release);
        }
    }
}

#[cold]
fn register() -> &'static Participant {
    let p = {
        let mut all = PARTICIPANTS.locked();
        let reusable = all.iter().find(|p| {
            p.in_use
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        match reusable {
            Some(p) => *p,
            None => {
                let p: &'static Participant = Box::leak(Box::new(Participant {
                    state: AtomicU64::new(0),
                    in_use: AtomicBool::new(true),
                }));
                all.push(p);
                p
            }
        }
    };
    // The participant's state is even (unpinned) here; pins keep it below this thread's `seq`.
    let _ = RELEASE.try_with(|r| r.0.set(Some(p)));
    LOCAL.with(|l| {
        l.participant.set(Some(p));
        l.seq.set(p.state.load(Ordering::Relaxed) & !1);
    });
    p
}

#[inline]
fn pin(l: &Local) {
    let p = match l.participant.get() {
        Some(p) => p,
        None => register(),
    };
    let seq = l.seq.get() + 2;
    l.seq.set(seq);
    p.state.store(seq | 1, Ordering::Relaxed);
    if ASYMMETRIC.load(Ordering::Relaxed) {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

#[inline]
fn unpin(l: &Local) {
    if let Some(p) = l.participant.get() {
        // Release: every access made inside the scope happens-before an evacuator that
        // observes the new state.
        p.state.store(l.seq.get(), Ordering::Release);
    }
}

/// Registers the process for `membarrier`; called once before any evacuator starts.
pub(crate) fn init_barriers() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;
        // SAFETY: membarrier takes (cmd, flags, cpu_id) integers and touches no memory of ours.
        let r = unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0, 0) };
        ASYMMETRIC.store(r == 0, Ordering::Release);
    });
}

/// A full fence on every running thread of the process (see the module essay).
pub(crate) fn heavy_barrier() {
    if ASYMMETRIC.load(Ordering::Acquire) {
        const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
        // SAFETY: as in `init_barriers`; registration succeeded, so the command is allowed.
        let r = unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) };
        if r == 0 {
            return;
        }
    }
    fence(Ordering::SeqCst);
}

/// Waits until every scope that was open when this is called has ended (or renewed).
/// Call after marking objects; see the module essay.
pub(crate) fn wait_for_older_scopes() {
    heavy_barrier();
    // Every participant's state is loaded with acquire, not only the pinned ones: reading a
    // scope's end (a release store) is what makes the pins it took visible to the caller
    // (`object::pinned`); a load that reads an even value from before such a scope began
    // means, by the barrier, that the scope saw the caller's marks.
    let snapshot: Vec<(&'static Participant, u64)> = PARTICIPANTS
        .locked()
        .iter()
        .map(|p| (*p, p.state.load(Ordering::Acquire)))
        .filter(|(_, s)| s & 1 == 1)
        .collect();
    for (p, s) in snapshot {
        let mut spins = 0u32;
        while p.state.load(Ordering::Acquire) == s {
            backoff(&mut spins);
        }
    }
}

/// Spins briefly, then yields, then sleeps: for short waits on another thread's progress.
pub(crate) fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else if *spins < 256 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Whether the calling thread is inside a dereference scope.
///
/// # Examples
///
/// ```
/// assert!(!aifm_core::scope::in_scope());
/// let s = aifm_core::Scope::new();
/// assert!(aifm_core::scope::in_scope());
/// drop(s);
/// ```
#[inline]
pub fn in_scope() -> bool {
    LOCAL.with(|l| l.nest.get() > 0)
}

/// Marks (or clears) runtime `id`'s request that new scopes of its mutators wait for its
/// evacuator.
pub(crate) fn set_pressure(id: u64, on: bool) {
    let mut critical = CRITICAL.locked();
    if on {
        critical.push(id);
        PRESSURE.fetch_add(1, Ordering::AcqRel);
    } else if let Some(i) = critical.iter().position(|&c| c == id) {
        critical.swap_remove(i);
        PRESSURE.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Records that the calling thread works with runtime `id` (it just allocated there), so
/// that only that runtime's memory pressure holds up its new scopes.
#[inline]
pub(crate) fn note_runtime(id: u64) {
    let _ = LAST_RUNTIME.try_with(|r| r.set(id));
}

/// Waits (briefly) while the runtime this thread last allocated in is critically short of
/// memory. Threads of other runtimes, and threads that never allocated, go ahead at once.
#[cold]
fn wait_for_pressure() {
    let Ok(id) = LAST_RUNTIME.try_with(Cell::get) else {
        return;
    };
    let deadline = Instant::now() + PRESSURE_WAIT;
    let mut spins = 0;
    while id != 0 && CRITICAL.locked().contains(&id) && Instant::now() < deadline {
        backoff(&mut spins);
    }
}

/// A dereference scope: while it lives, objects dereferenced through it stay put.
///
/// Scopes are cheap (a thread-local counter and one store), nest freely, and cannot leave
/// their thread. Keep them short, or call [`Scope::renew`] in long loops: the evacuator cannot
/// move an object out while any scope older than its marking is open.
///
/// # Examples
///
/// ```
/// use aifm_core::{RemBox, Runtime, Scope};
/// let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
/// let mut b = RemBox::new_in(41u64, &rt);
/// let scope = Scope::new();
/// *b.deref_mut(&scope) += 1;
/// assert_eq!(*b.deref(&scope), 42);
/// ```
#[derive(Debug)]
pub struct Scope {
    _not_send: PhantomData<*const ()>,
}

impl Scope {
    /// Enters a scope. If this is the thread's outermost scope and some runtime is almost out
    /// of local memory, it first waits (briefly) for that runtime's evacuator.
    ///
    /// # Examples
    ///
    /// ```
    /// let outer = aifm_core::Scope::new();
    /// let inner = aifm_core::Scope::new(); // nesting is free
    /// drop((inner, outer));
    /// ```
    #[inline]
    pub fn new() -> Scope {
        LOCAL.with(|l| {
            let n = l.nest.get();
            if n == 0 {
                if PRESSURE.load(Ordering::Relaxed) != 0 {
                    wait_for_pressure();
                }
                pin(l);
            }
            l.nest.set(n + 1);
        });
        Scope {
            _not_send: PhantomData,
        }
    }

    /// Lets the evacuator past: ends and re-enters the scope. References from this scope are
    /// borrowed mutably here, so none survive. If the scope is nested, the outer scopes still
    /// hold the thread, and `renew` does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut scope = aifm_core::Scope::new();
    /// for i in 0..1000 {
    ///     if i % 64 == 0 {
    ///         scope.renew();
    ///     }
    /// }
    /// ```
    ///
    /// A reference cannot outlive a `renew` of its scope (the evacuator may move the object
    /// once the scope lets it past):
    ///
    /// ```compile_fail
    /// let b = aifm_core::RemBox::new(1u64);
    /// let mut scope = aifm_core::Scope::new();
    /// let r = b.deref(&scope);
    /// scope.renew();
    /// assert_eq!(*r, 1);
    /// ```
    #[inline]
    pub fn renew(&mut self) {
        LOCAL.with(|l| {
            if l.nest.get() == 1 {
                unpin(l);
                if PRESSURE.load(Ordering::Relaxed) != 0 {
                    wait_for_pressure();
                }
                pin(l);
            }
        });
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope::new()
    }
}

impl Drop for Scope {
    #[inline]
    fn drop(&mut self) {
        LOCAL.with(|l| {
            let n = l.nest.get() - 1;
            l.nest.set(n);
            if n == 0 {
                unpin(l);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn nesting_pins_once() {
        assert!(!in_scope());
        let a = Scope::new();
        let b = Scope::new();
        assert!(in_scope());
        drop(a);
        assert!(in_scope());
        drop(b);
        assert!(!in_scope());
    }

    #[test]
    fn grace_waits_for_open_scope() {
        init_barriers();
        let entered = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let (e, r) = (entered.clone(), release.clone());
        let t = std::thread::spawn(move || {
            let _s = Scope::new();
            e.store(true, Ordering::SeqCst);
            while !r.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        });
        while !entered.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let waiter = std::thread::spawn(move || {
            wait_for_older_scopes();
            d.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !done.load(Ordering::SeqCst),
            "grace period ended while a scope was open"
        );
        release.store(true, Ordering::SeqCst);
        waiter.join().unwrap();
        t.join().unwrap();
        assert!(done.load(Ordering::SeqCst));
    }
}
