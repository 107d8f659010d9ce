//! The TCP backend: far memory on an `aifm-server`, reached over one pipelined connection.
//!
//! # The latency problem, and the shape of the answer
//!
//! On these machines a loopback round trip costs ~7 µs when both ends poll their sockets and
//! ~62 µs when each message wakes a sleeping thread (measured on a quiet machine, see
//! `docs/TRANSPORT.md`). A backend that hands each reply from a reader thread to the waiting
//! caller pays that wake-up on every fetch. So there is no reader thread:
//!
//! * **Leader/follower reading.** A caller that waits for a reply tries to take the
//!   connection's reader lock. The holder (the *leader*) reads the socket itself, delivers
//!   every reply it finds to the waiter it belongs to, and returns as soon as its own reply is
//!   in. With one request in flight the caller reads its own reply: no hand-off, no wake-up.
//! * **Spin, then park.** The leader polls the non-blocking socket for a short while (the
//!   `spin` setting, default 100 µs, longer than a loopback round trip), then blocks in
//!   `poll(2)`. A follower spins on its completion flag for the same while, then parks; the
//!   leader unparks it when its reply is delivered, and on leaving hands the reader role to one
//!   parked waiter, so replies for others are never left unread.
//! * **Spinning yields.** Each spin step is a `sched_yield(2)`, not a pause instruction. On a
//!   busy two-core machine the scheduler sometimes puts the client and the server thread on
//!   one core; a pure busy-wait then burns its whole spin window before the other side may run,
//!   and a 4 KiB fetch measured 210 µs instead of 16 µs. Yielding costs nothing when the core
//!   is otherwise idle and hands it over at once when it is not. The server does the same.
//! * **Pipelining.** Every request carries an id; any number may be in flight, from many
//!   threads or from one ([`TcpBackend::start_read`]; [`TcpBackend::start_reads`] sends a
//!   whole window of requests in one write). Batches ([`Backend::read_many`],
//!   [`Backend::write_many`], [`Backend::remove_many`]) travel as one request each, split only
//!   to respect the maximum frame size, and the pieces are themselves pipelined. Their
//!   `begin_*` forms ([`Backend::begin_read_many`], ...) send every piece and return at once,
//!   so one thread can have batches in flight on several servers. The backend's state lives
//!   behind an `Arc` that such a batch shares: a batch read whose replies turn out not to fit
//!   a frame is fetched again one object at a time when it is awaited, from its own copy of
//!   the keys.
//! * **Batch replies are lent, not copied.** A batch read's waiter takes its reply as the
//!   frame itself: the reader swaps its receive buffer out (copying only the smaller of the
//!   frame and the bytes read past it) and the waiter decodes the values borrowed and lends
//!   each to [`Backend::read_many_with`]'s sink, then gives the buffer back for the next swap.
//!   So a fetched object is copied once on this side after the kernel's copy: into its heap
//!   place.
//! * **Shared writes.** Senders append encoded requests to a queue; one thread at a time
//!   writes the whole queue, so requests from concurrent callers share system calls.
//! * **No write deadlock.** The socket is non-blocking; a writer whose send buffer is full
//!   drains replies (taking the reader role when free) before waiting for room, so a client
//!   that pipelines heavily never blocks the server on its own unread replies.
//!
//! # Faults
//!
//! Every request has a deadline ([`TcpBuilder::timeout`], default 10 s): past it the call
//! returns [`Error::Timeout`]. When the server closes the connection or the socket fails,
//! every request in flight completes at once with [`Error::Disconnected`]. A connection that
//! has been quiet for a while (50 ms) is checked with one non-blocking read before a call
//! uses it, so one the server closed meanwhile (its idle timeout, or eviction to make room
//! for another client) is noticed before, not after, sending. A call that finds its
//! connection dead reconnects (at most one attempt per 100 ms; [`TcpBuilder::reconnect`] turns this off) and
//! asks the server to resume its session: within the server's grace period the namespace and
//! its objects are intact and work simply goes on. If the server no longer holds the session
//! (it restarted, or the grace period passed) the far objects are gone: the backend then fails
//! every call with `Disconnected` rather than pretend, and the application decides.
//!
//! # Examples
//!
//! ```no_run
//! use aifm_core::backend::{tcp::TcpBuilder, Backend, OBJECT_STORE};
//! use std::time::Duration;
//! let far = TcpBuilder::new("127.0.0.1:7411")
//!     .timeout(Duration::from_secs(2))
//!     .connect()
//!     .unwrap();
//! far.write(OBJECT_STORE, b"k", b"v").unwrap();
//! assert_eq!(far.read(OBJECT_STORE, b"k").unwrap().as_deref(), Some(&b"v"[..]));
//! ```
//!
//! # Layout
//!
//! * `builder`: [`TcpBuilder`], the settings and `AIFM_*` environment variables; `connect`.
//! * `handshake`: connecting, the version check, the login (token proof, session resume).
//! * `conn`: one established connection: the shared write queue, leader/follower reading,
//!   spin-then-park waiting, deadlines, lending reply frames, and failing every waiter when
//!   the connection dies.
//! * `client`: what outlives a connection: the session ticket, reconnection with back-off,
//!   request ids, and splitting batches into pieces that fit a frame.
//! * `backend`: the [`Backend`] operations as requests on the wire.
//! * this file: the public handle, [`TcpBackend`], and its pipelined reads.

mod backend;
mod builder;
mod client;
mod conn;
mod handshake;

pub use builder::TcpBuilder;

#[cfg(doc)]
use super::Backend;
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::sync::{MutexExt, RwLockExt};
use crate::wire::{Answer, Blob, Op, ResumeTicket, ServerStats, SessionId};
use client::Client;
use conn::Call;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The far store on a memory server (see the [module docs](self)).
///
/// # Examples
///
/// ```no_run
/// use aifm_core::backend::{tcp::TcpBackend, Backend, OBJECT_STORE};
/// let far = TcpBackend::connect("127.0.0.1:7411").unwrap();
/// let pending: Vec<_> = (0u8..8)
///     .map(|i| far.start_read(OBJECT_STORE, &[i]).unwrap())
///     .collect(); // eight reads in flight
/// for p in pending {
///     let _value: Option<Vec<u8>> = p.wait().unwrap();
/// }
/// ```
pub struct TcpBackend {
    c: Arc<Client>,
}

impl std::fmt::Debug for TcpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpBackend")
            .field("opts", &self.c.opts)
            .field("state", &self.c.state)
            .finish_non_exhaustive()
    }
}

impl TcpBackend {
    /// Connects to `addr` with [`TcpBuilder::from_env`] settings.
    ///
    /// # Errors
    /// As [`TcpBuilder::from_env`] and [`TcpBuilder::connect`].
    ///
    /// # Examples
    ///
    /// ```
    /// let e = aifm_core::backend::tcp::TcpBackend::connect("127.0.0.1:1").unwrap_err();
    /// assert!(e.is_disconnected());
    /// ```
    pub fn connect(addr: &str) -> Result<TcpBackend> {
        TcpBuilder::from_env(addr)?.connect()
    }

    /// Settings for the server at `addr` (same as [`TcpBuilder::new`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use aifm_core::backend::tcp::TcpBackend;
    /// let far = TcpBackend::builder("127.0.0.1:7411").reconnect(false).connect();
    /// # let _ = far;
    /// ```
    pub fn builder(addr: impl Into<String>) -> TcpBuilder {
        TcpBuilder::new(addr)
    }

    /// This client's session on the server (an id for logs; resuming takes
    /// [`TcpBackend::resume_ticket`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let far = aifm_core::backend::tcp::TcpBackend::connect("127.0.0.1:7411").unwrap();
    /// println!("session {}", far.session());
    /// ```
    pub fn session(&self) -> SessionId {
        self.c.state.locked().ticket.session
    }

    /// What another backend needs to resume this session ([`TcpBuilder::resume`]): the id
    /// and its secret. Whoever holds it can read and change this session's far objects, so
    /// keep it as private as the data.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let far = aifm_core::backend::tcp::TcpBackend::connect("127.0.0.1:7411").unwrap();
    /// assert_eq!(far.resume_ticket().session, far.session());
    /// ```
    pub fn resume_ticket(&self) -> ResumeTicket {
        self.c.state.locked().ticket
    }

    /// How many times the connection was re-established.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let far = aifm_core::backend::tcp::TcpBackend::connect("127.0.0.1:7411").unwrap();
    /// assert_eq!(far.reconnects(), 0);
    /// ```
    pub fn reconnects(&self) -> u64 {
        self.c.state.locked().reconnects
    }

    /// Whether the current connection is up (a hint; the next call may find it gone).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let far = aifm_core::backend::tcp::TcpBackend::connect("127.0.0.1:7411").unwrap();
    /// assert!(far.is_connected());
    /// ```
    pub fn is_connected(&self) -> bool {
        !self.c.conn.reading().dead.load(Ordering::SeqCst)
    }

    /// One round trip with no work on the server.
    ///
    /// # Errors
    /// Transport errors.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let far = aifm_core::backend::tcp::TcpBackend::connect("127.0.0.1:7411").unwrap();
    /// let t = std::time::Instant::now();
    /// far.ping().unwrap();
    /// println!("round trip {:?}", t.elapsed());
    /// ```
    pub fn ping(&self) -> Result<()> {
        self.c.call(&Op::Ping).and_then(|a| a.expect_pong())
    }

    /// The server's statistics.
    ///
    /// # Errors
    /// Transport errors.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let far = aifm_core::backend::tcp::TcpBackend::connect("127.0.0.1:7411").unwrap();
    /// let s = far.server_stats().unwrap();
    /// println!("{} of {} bytes used", s.stored_bytes, s.capacity_bytes);
    /// ```
    pub fn server_stats(&self) -> Result<ServerStats> {
        match self.c.call(&Op::Stats)? {
            Answer::Stats(s) => Ok(s),
            other => Err(other.unexpected()),
        }
    }

    /// Sends a read and returns at once; [`PendingRead::wait`] collects the value. Many reads
    /// may be in flight at once (the pipelined form of [`Backend::read`]).
    ///
    /// # Errors
    /// Transport errors while sending.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let far = aifm_core::backend::tcp::TcpBackend::connect("127.0.0.1:7411").unwrap();
    /// let a = far.start_read(0, b"a").unwrap();
    /// let b = far.start_read(0, b"b").unwrap(); // both in flight
    /// let (a, b) = (a.wait().unwrap(), b.wait().unwrap());
    /// # let _ = (a, b);
    /// ```
    pub fn start_read(&self, ds: u32, key: &[u8]) -> Result<PendingRead> {
        self.c
            .start(&Op::Read { ds, key: Blob(key) })
            .map(|call| PendingRead { call })
    }

    /// Sends one read per key, all in one write, and returns at once: many reads in flight
    /// that complete one by one (where [`Backend::read_many`] is one request that completes
    /// as a whole).
    ///
    /// # Errors
    /// Transport errors while sending.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use aifm_core::backend::tcp::TcpBackend;
    /// let far = TcpBackend::connect("127.0.0.1:7411").unwrap();
    /// let keys: Vec<[u8; 8]> = (0u64..32).map(u64::to_le_bytes).collect();
    /// let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    /// for p in far.start_reads(0, &refs).unwrap() {
    ///     let _value = p.wait().unwrap();
    /// }
    /// ```
    pub fn start_reads(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<PendingRead>> {
        self.c.start_reads(ds, keys)
    }
}

/// A read in flight; see [`TcpBackend::start_read`]. Dropping it abandons the read.
///
/// # Examples
///
/// ```no_run
/// use aifm_core::backend::tcp::TcpBackend;
/// let far = TcpBackend::connect("127.0.0.1:7411").unwrap();
/// let p = far.start_read(0, b"key").unwrap();
/// // ... other work while the request travels ...
/// let value = p.wait().unwrap();
/// # let _ = value;
/// ```
#[derive(Debug)]
pub struct PendingRead {
    call: Call,
}

impl PendingRead {
    /// Waits for the value (`None`: no such object).
    ///
    /// # Errors
    /// As [`Backend::read`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let far = aifm_core::backend::tcp::TcpBackend::connect("127.0.0.1:7411").unwrap();
    /// let value = far.start_read(0, b"key").unwrap().wait().unwrap();
    /// # let _ = value;
    /// ```
    pub fn wait(self) -> Result<Option<Vec<u8>>> {
        self.call.finish()?.value()
    }
}
