//! What a client may have: its byte quota, the pool all clients share, the limits on one
//! request, and the table its devices find each other in.
//!
//! A [`Quota`] is a namespace's account. Every device of the namespace is built with it and
//! charges every byte it keeps to it; the namespace charges each structure it constructs. A
//! charge is what the client really costs the server:
//!
//! * an object costs its key and value bytes plus [`Limits::object_overhead`] (the table entry
//!   and allocator headers around them); its payload alone is reported as stored bytes;
//! * a structure costs [`Limits::structure_cost`] (its empty tables) for as long as it lives;
//! * a reply being built is held against [`Limits::pending_bytes`] until it is encoded, and
//!   no reply may exceed [`Limits::reply_bytes`].
//!
//! Charges go to the namespace's own limit and, when the engine has one, to a [`Pool`]
//! shared by all its namespaces (a server's capacity), both or neither: a refused charge
//! takes nothing from either.
//!
//! # Batches are all-or-nothing
//!
//! [`Quota::reserved`] charges a batch's worst case up front (or refuses the whole batch),
//! then lets the charges the devices make while running it draw from that reservation
//! instead of the quota: a batch that was admitted cannot run out of quota half-way, and
//! what it did not use is given back. The reservation belongs to the thread running the
//! batch (devices run synchronously on it), so other requests never draw from it.
//!
//! # Peers
//!
//! An operation may need another structure of the same namespace (a gather reads an index
//! vector). The engine tells a device neither its namespace nor its id, so such devices
//! enter themselves in the namespace's [`Peers`] under a random token and look others up
//! there: a token from another namespace names nothing.

use crate::error::{Error, Result};
use crate::sync::MutexExt;
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Bytes charged per stored object on top of its key and value, on a server: a hash table
/// entry (two `Vec` headers, 48 bytes, at a load factor of 7/8) plus two heap blocks' headers
/// and rounding. Measured (`aifm-server`'s `quota_figures`): an empty object with an 8-byte
/// key takes 119 bytes of resident memory; it is charged 136.
pub const OBJECT_OVERHEAD: u64 = 128;

/// Bytes charged per constructed structure on a server: a device's empty shard tables
/// (64 locked maps). Measured (`quota_figures`): 3,701 bytes of resident memory each.
pub const STRUCTURE_COST: u64 = 4096;

/// Most keys one batch request may name on a server (clients send at most 4,096).
pub const MAX_BATCH_KEYS: usize = 1 << 16;

/// What a request of one namespace may cost beyond its stored bytes.
///
/// # Examples
///
/// ```
/// use aifm_core::engine::Limits;
/// let l = Limits::server(64 << 20);
/// assert!(l.reply_bytes < 64 << 20);
/// assert_eq!(Limits::UNMETERED.object_overhead, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes charged per object on top of its key and value.
    pub object_overhead: u64,
    /// Bytes charged per constructed structure.
    pub structure_cost: u64,
    /// Largest reply one request may produce.
    pub reply_bytes: u64,
    /// Most reply bytes of one namespace being built at once (over all its connections).
    pub pending_bytes: u64,
    /// Most keys one batch may name.
    pub batch_keys: usize,
}

impl Limits {
    /// No overheads and no bounds beyond the byte quota: the in-process engine, where the
    /// client is the process itself.
    pub const UNMETERED: Limits = Limits {
        object_overhead: 0,
        structure_cost: 0,
        reply_bytes: u64::MAX,
        pending_bytes: u64::MAX,
        batch_keys: usize::MAX,
    };

    /// A memory server's limits: replies fit one frame of `max_frame` bytes (less room for
    /// the response envelope), objects and structures cost what they take.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = aifm_core::engine::Limits::server(1 << 20);
    /// assert_eq!(l.pending_bytes, 4 * l.reply_bytes);
    /// ```
    pub fn server(max_frame: u32) -> Limits {
        let reply_bytes = (max_frame as u64).saturating_sub(64);
        Limits {
            object_overhead: OBJECT_OVERHEAD,
            structure_cost: STRUCTURE_COST,
            reply_bytes,
            pending_bytes: reply_bytes.saturating_mul(4),
            batch_keys: MAX_BATCH_KEYS,
        }
    }
}

/// Bytes shared by every namespace of an engine (a server's capacity).
///
/// # Examples
///
/// ```
/// let p = aifm_core::engine::Pool::new(10);
/// assert!(p.charge(8).is_ok());
/// assert!(p.charge(8).unwrap_err().is_server_full());
/// p.release(8);
/// assert_eq!(p.used(), 0);
/// ```
#[derive(Debug)]
pub struct Pool {
    capacity: u64,
    used: AtomicU64,
}

/// Adds `n` to `counter` unless that passes `limit`.
fn take(counter: &AtomicU64, n: u64, limit: u64) -> Result<()> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            u.checked_add(n).filter(|&t| t <= limit)
        })
        .map(drop)
        .map_err(|_| Error::ServerFull { needed: n })
}

/// Subtracts `n` from `counter` (saturating: a release never wraps).
fn give(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
        Some(u.saturating_sub(n))
    });
}

impl Pool {
    /// A pool of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        Pool {
            capacity,
            used: AtomicU64::new(0),
        }
    }

    /// Takes `n` bytes or refuses without taking anything.
    ///
    /// # Errors
    /// [`Error::ServerFull`] when fewer than `n` remain.
    pub fn charge(&self, n: u64) -> Result<()> {
        take(&self.used, n, self.capacity)
    }

    /// Gives `n` bytes back.
    pub fn release(&self, n: u64) {
        give(&self.used, n);
    }

    /// Bytes charged now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}

thread_local! {
    /// Reservations of batches running on this thread: (quota address, bytes left).
    static CREDIT: RefCell<Vec<(usize, u64)>> = const { RefCell::new(Vec::new()) };
}

/// A byte budget shared by every device of one namespace (see the module docs).
///
/// # Examples
///
/// ```
/// use aifm_core::engine::Quota;
/// let q = Quota::new(100);
/// q.charge(60).unwrap();
/// assert!(q.charge(60).unwrap_err().is_server_full());
/// q.release(60);
/// assert_eq!(q.used(), 0);
/// ```
#[derive(Debug)]
pub struct Quota {
    limit: u64,
    /// Everything charged: payload, overheads, structures.
    used: AtomicU64,
    /// Key and value bytes only.
    payload: AtomicU64,
    /// Reply bytes being built.
    pending: AtomicU64,
    pool: Option<Arc<Pool>>,
    limits: Limits,
    peers: Peers,
}

impl Quota {
    /// A quota of `limit` bytes, alone (no pool) and [`Limits::UNMETERED`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(aifm_core::engine::Quota::new(10).limit(), 10);
    /// ```
    pub fn new(limit: u64) -> Self {
        Self::with_limits(limit, None, Limits::UNMETERED)
    }

    /// A quota of `limit` bytes drawing also from `pool`, with `limits`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::{Limits, Pool, Quota};
    /// use std::sync::Arc;
    /// let pool = Arc::new(Pool::new(1000));
    /// let q = Quota::with_limits(10_000, Some(pool.clone()), Limits::server(1 << 20));
    /// q.add_object(2).unwrap(); // 2 bytes and the object's overhead
    /// assert_eq!(pool.used(), 2 + aifm_core::engine::OBJECT_OVERHEAD);
    /// assert_eq!(q.payload(), 2);
    /// ```
    pub fn with_limits(limit: u64, pool: Option<Arc<Pool>>, limits: Limits) -> Self {
        Quota {
            limit,
            used: AtomicU64::new(0),
            payload: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            pool,
            limits,
            peers: Peers::default(),
        }
    }

    fn key(&self) -> usize {
        self as *const Quota as usize
    }

    /// Charges `total` bytes (drawing first on a reservation of this thread), counting
    /// `payload` of them as stored.
    fn take(&self, total: u64, payload: u64) -> Result<()> {
        let key = self.key();
        let covered = CREDIT.with(|c| {
            let mut c = c.borrow_mut();
            match c.iter_mut().rev().find(|(k, _)| *k == key) {
                Some((_, left)) => {
                    let d = (*left).min(total);
                    *left -= d;
                    d
                }
                None => 0,
            }
        });
        let rest = total - covered;
        if rest > 0 {
            if let Err(e) = self.charge_raw(rest) {
                self.credit_back(covered);
                return Err(match e {
                    Error::ServerFull { .. } => Error::ServerFull { needed: total },
                    e => e,
                });
            }
        }
        self.payload.fetch_add(payload, Ordering::AcqRel);
        Ok(())
    }

    /// Returns `n` bytes to this thread's reservation (a charge that failed after all).
    fn credit_back(&self, n: u64) {
        if n == 0 {
            return;
        }
        let key = self.key();
        CREDIT.with(|c| {
            if let Some((_, left)) = c.borrow_mut().iter_mut().rev().find(|(k, _)| *k == key) {
                *left += n;
            }
        });
    }

    /// Charges `n` to the quota and the pool, both or neither.
    fn charge_raw(&self, n: u64) -> Result<()> {
        take(&self.used, n, self.limit)?;
        if let Some(pool) = &self.pool {
            if let Err(e) = pool.charge(n) {
                give(&self.used, n);
                return Err(e);
            }
        }
        Ok(())
    }

    fn give(&self, total: u64, payload: u64) {
        give(&self.used, total);
        if let Some(pool) = &self.pool {
            pool.release(total);
        }
        give(&self.payload, payload);
    }

    /// Takes `bytes` of payload from the quota, or refuses without taking anything.
    ///
    /// # Errors
    /// [`Error::ServerFull`] when fewer than `bytes` remain.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aifm_core::engine::Quota::new(10);
    /// assert!(q.charge(10).is_ok());
    /// assert!(q.charge(1).is_err());
    /// ```
    pub fn charge(&self, bytes: u64) -> Result<()> {
        self.take(bytes, bytes)
    }

    /// Gives `bytes` of payload back.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aifm_core::engine::Quota::new(10);
    /// q.charge(4).unwrap();
    /// q.release(4);
    /// assert_eq!(q.used(), 0);
    /// ```
    pub fn release(&self, bytes: u64) {
        self.give(bytes, bytes);
    }

    /// Charges a new object of `bytes` (key and value) and its overhead.
    ///
    /// # Errors
    /// [`Error::ServerFull`].
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aifm_core::engine::Quota::new(10);
    /// q.add_object(3).unwrap();
    /// q.remove_object(3);
    /// assert_eq!(q.used(), 0);
    /// ```
    pub fn add_object(&self, bytes: u64) -> Result<()> {
        self.take(bytes.saturating_add(self.limits.object_overhead), bytes)
    }

    /// Gives back an object of `bytes` and its overhead.
    pub fn remove_object(&self, bytes: u64) {
        self.give(bytes.saturating_add(self.limits.object_overhead), bytes);
    }

    /// An object's payload changes from `old` to `new` bytes (its overhead stays).
    ///
    /// # Errors
    /// [`Error::ServerFull`] when it grows beyond the quota (nothing is charged then).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aifm_core::engine::Quota::new(10);
    /// q.add_object(3).unwrap();
    /// q.replace_object(3, 8).unwrap();
    /// assert!(q.replace_object(8, 11).is_err());
    /// assert_eq!(q.payload(), 8);
    /// ```
    pub fn replace_object(&self, old: u64, new: u64) -> Result<()> {
        if new >= old {
            self.take(new - old, new - old)
        } else {
            self.give(old - new, old - new);
            Ok(())
        }
    }

    /// Charges one structure.
    ///
    /// # Errors
    /// [`Error::ServerFull`].
    pub fn add_structure(&self) -> Result<()> {
        self.take(self.limits.structure_cost, 0)
    }

    /// Gives one structure's charge back.
    pub fn remove_structure(&self) {
        self.give(self.limits.structure_cost, 0);
    }

    /// Runs `f` (a batch) against a reservation of `worst` bytes: refused as a whole when
    /// they are not there; while `f` runs on this thread, charges to this quota draw from
    /// the reservation first; what is left is given back after.
    ///
    /// # Errors
    /// [`Error::ServerFull`] before `f` runs, or `f`'s error.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aifm_core::engine::Quota::new(10);
    /// assert!(q.reserved(11, || Ok(())).unwrap_err().is_server_full());
    /// q.reserved(10, || { q.charge(4)?; q.charge(6) }).unwrap();
    /// assert_eq!(q.used(), 10);
    /// ```
    pub fn reserved<T>(&self, worst: u64, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.charge_raw(worst)?;
        let key = self.key();
        CREDIT.with(|c| c.borrow_mut().push((key, worst)));
        /// Pops the reservation and gives its rest back, also when `f` panics.
        struct Pop<'q>(&'q Quota);
        impl Drop for Pop<'_> {
            fn drop(&mut self) {
                let key = self.0.key();
                let left = CREDIT.with(|c| {
                    let mut c = c.borrow_mut();
                    let at = c.iter().rposition(|(k, _)| *k == key);
                    at.map_or(0, |i| c.remove(i).1)
                });
                self.0.give(left, 0);
            }
        }
        let _pop = Pop(self);
        f()
    }

    /// Holds `bytes` of a reply being built, until the hold is dropped.
    ///
    /// # Errors
    /// [`Error::Protocol`] when one reply would exceed [`Limits::reply_bytes`] (the client
    /// should ask for less at a time); [`Error::ServerFull`] when the namespace's replies in
    /// flight would exceed [`Limits::pending_bytes`].
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::engine::{Limits, Quota};
    /// let q = Quota::with_limits(1 << 20, None, Limits::server(4096));
    /// let mut hold = q.hold_reply(1000).unwrap();
    /// assert!(hold.grow(10_000).is_err());
    /// drop(hold);
    /// assert_eq!(q.pending(), 0);
    /// ```
    pub fn hold_reply(&self, bytes: u64) -> Result<ReplyHold<'_>> {
        let mut h = ReplyHold {
            quota: self,
            bytes: 0,
        };
        h.grow(bytes)?;
        Ok(h)
    }

    /// Refuses a reply of `bytes` before it is built.
    ///
    /// # Errors
    /// [`Error::Protocol`] beyond [`Limits::reply_bytes`].
    pub fn check_reply(&self, bytes: u64) -> Result<()> {
        if bytes > self.limits.reply_bytes {
            return Err(Error::Protocol(format!(
                "a reply of {bytes} bytes exceeds the {}-byte limit: ask for less at a time",
                self.limits.reply_bytes
            )));
        }
        Ok(())
    }

    /// Everything charged now (payload, overheads, structures).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aifm_core::engine::Quota::new(10);
    /// q.charge(3).unwrap();
    /// assert_eq!(q.used(), 3);
    /// ```
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Key and value bytes stored now.
    pub fn payload(&self) -> u64 {
        self.payload.load(Ordering::Acquire)
    }

    /// Reply bytes being built now.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// The limit in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(aifm_core::engine::Quota::new(u64::MAX).limit(), u64::MAX);
    /// ```
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The per-request limits of this namespace.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The namespace's table of structures by token.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }
}

/// Reply bytes held against a namespace's [`Limits::pending_bytes`] (see
/// [`Quota::hold_reply`]); released when dropped.
#[derive(Debug)]
pub struct ReplyHold<'q> {
    quota: &'q Quota,
    bytes: u64,
}

impl ReplyHold<'_> {
    /// Holds `more` bytes of the same reply.
    ///
    /// # Errors
    /// As [`Quota::hold_reply`]; nothing more is held then.
    pub fn grow(&mut self, more: u64) -> Result<()> {
        let total = self.bytes.saturating_add(more);
        self.quota.check_reply(total)?;
        take(&self.quota.pending, more, self.quota.limits.pending_bytes)?;
        self.bytes = total;
        Ok(())
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for ReplyHold<'_> {
    fn drop(&mut self) {
        give(&self.quota.pending, self.bytes);
    }
}

type Peer = Weak<dyn Any + Send + Sync>;

/// A namespace's structures by (device type, token), for devices that name each other (see
/// the module docs). Entries are weak: a dropped structure names nothing.
///
/// # Examples
///
/// ```
/// use aifm_core::engine::Peers;
/// use std::sync::Arc;
/// let peers = Peers::default();
/// let v = Arc::new(5u32);
/// peers.enter("t", 1, &v).unwrap();
/// assert!(peers.enter("t", 1, &Arc::new(6u32)).is_err(), "a live token is taken");
/// assert_eq!(*peers.find::<u32>("t", 1).unwrap(), 5);
/// peers.leave("t", 1, &v);
/// assert!(peers.find::<u32>("t", 1).is_none());
/// ```
#[derive(Default)]
pub struct Peers {
    map: Mutex<HashMap<(&'static str, u128), Peer>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("entries", &self.map.locked().len())
            .finish()
    }
}

impl Peers {
    /// Enters `peer` under `(kind, token)`.
    ///
    /// # Errors
    /// [`Error::Remote`] when a live structure holds that token already (it keeps it).
    pub fn enter<T: Any + Send + Sync>(
        &self,
        kind: &'static str,
        token: u128,
        peer: &Arc<T>,
    ) -> Result<()> {
        let mut map = self.map.locked();
        if map
            .get(&(kind, token))
            .is_some_and(|w| w.strong_count() > 0)
        {
            return Err(Error::Remote(format!(
                "{kind}: the token is taken by another structure"
            )));
        }
        let any: Arc<dyn Any + Send + Sync> = peer.clone();
        map.insert((kind, token), Arc::downgrade(&any));
        Ok(())
    }

    /// The live structure under `(kind, token)`, if it is a `T`.
    pub fn find<T: Any + Send + Sync>(&self, kind: &'static str, token: u128) -> Option<Arc<T>> {
        let any = self.map.locked().get(&(kind, token))?.upgrade()?;
        any.downcast::<T>().ok()
    }

    /// Removes `(kind, token)` if it names `peer`.
    pub fn leave<T: Any + Send + Sync>(&self, kind: &'static str, token: u128, peer: &Arc<T>) {
        let mut map = self.map.locked();
        if map
            .get(&(kind, token))
            .is_some_and(|w| std::ptr::addr_eq(w.as_ptr(), Arc::as_ptr(peer)))
        {
            map.remove(&(kind, token));
        }
    }
}
