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

use super::Backend;
use crate::error::{Error, Result};
use crate::wire::{
    self, auth, Blob, Challenge, ClientHello, FrameReader, Login, Op, ResumeTicket, ServerMsg,
    ServerStats, SessionId, Welcome, WireError,
};
use crate::wire::{poll_fd, Answer};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Shortest interval between two reconnection attempts.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// Longest park of a follower between checks (a safety net: hand-offs unpark it sooner).
const FOLLOWER_NAP: Duration = Duration::from_millis(1);

/// Longest single `poll(2)` of a leader, so deadlines are checked now and then.
const LEADER_POLL: Duration = Duration::from_millis(50);

/// A connection that has heard nothing from the server for this long is checked (one
/// non-blocking read) before a call uses it: the server may have closed it meanwhile.
const QUIET_CHECK: Duration = Duration::from_millis(50);

/// Batches are split into pieces of at most this many keys.
const MAX_BATCH_KEYS: usize = 4096;

/// Keys asked for per page of a key listing ([`Backend::keys`]).
const KEYS_PAGE: u32 = 4096;

/// Settings of a TCP backend; [`TcpBuilder::connect`] makes the connection.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::tcp::TcpBuilder;
/// use std::time::Duration;
/// let b = TcpBuilder::new("127.0.0.1:1")
///     .token(b"secret".to_vec())
///     .timeout(Duration::from_millis(500))
///     .connect_timeout(Duration::from_millis(200))
///     .spin(Duration::from_micros(50))
///     .reconnect(false);
/// assert!(b.connect().unwrap_err().is_disconnected()); // nothing listens on port 1
/// ```
#[derive(Clone)]
#[must_use]
pub struct TcpBuilder {
    addr: String,
    token: Option<Vec<u8>>,
    timeout: Duration,
    connect_timeout: Duration,
    spin: Duration,
    max_frame: u32,
    reconnect: bool,
    resume: Option<ResumeTicket>,
}

impl std::fmt::Debug for TcpBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpBuilder")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("spin", &self.spin)
            .field("max_frame", &self.max_frame)
            .field("reconnect", &self.reconnect)
            .field("resume", &self.resume)
            .finish()
    }
}

/// The number in environment variable `var` (surrounding blanks ignored), `None` when it is
/// unset: the builders' `from_env` share this, so every `AIFM_*` number reads the same way.
///
/// # Errors
/// [`Error::Config`] naming the variable when it is set but not a non-negative integer.
pub(crate) fn env_number(var: &str) -> Result<Option<u64>> {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Config(format!("{var}={v:?} is not a number"))),
        Err(_) => Ok(None),
    }
}

impl TcpBuilder {
    /// Settings for the server at `addr` (`host:port`), with the defaults: no token, 10 s
    /// request timeout, 3 s connect timeout, 100 µs spin, 64 MiB frames, reconnection on.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::tcp::TcpBuilder;
    /// let b = TcpBuilder::new("127.0.0.1:7411");
    /// # let _ = b;
    /// ```
    pub fn new(addr: impl Into<String>) -> Self {
        TcpBuilder {
            addr: addr.into(),
            token: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            spin: Duration::from_micros(100),
            max_frame: wire::DEFAULT_MAX_FRAME,
            reconnect: true,
            resume: None,
        }
    }

    /// [`TcpBuilder::new`] plus the environment: `AIFM_TOKEN_FILE` (a file holding the token),
    /// `AIFM_TIMEOUT_MS` (request timeout) and `AIFM_SPIN_US` (spin before parking).
    ///
    /// # Errors
    /// [`Error::Config`] when a variable does not parse or the token file cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = aifm_core::backend::tcp::TcpBuilder::from_env("127.0.0.1:7411").unwrap();
    /// # let _ = b;
    /// ```
    pub fn from_env(addr: impl Into<String>) -> Result<Self> {
        let mut b = TcpBuilder::new(addr);
        if let Ok(path) = std::env::var("AIFM_TOKEN_FILE") {
            if !path.trim().is_empty() {
                b.token = Some(auth::read_token_file(path.trim())?);
            }
        }
        if let Some(ms) = env_number("AIFM_TIMEOUT_MS")? {
            b.timeout = Duration::from_millis(ms);
        }
        if let Some(us) = env_number("AIFM_SPIN_US")? {
            b.spin = Duration::from_micros(us);
        }
        Ok(b)
    }

    /// The token proving this client to a server that requires one.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::tcp::TcpBuilder;
    /// let secret = std::fs::read("/etc/aifm/token").unwrap_or_default();
    /// let b = TcpBuilder::new("10.0.0.5:7411").token(secret);
    /// # let _ = b;
    /// ```
    pub fn token(mut self, token: impl Into<Vec<u8>>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How long one request may take before it fails with [`Error::Timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::tcp::TcpBuilder;
    /// let b = TcpBuilder::new("127.0.0.1:7411").timeout(std::time::Duration::from_secs(1));
    /// # let _ = b;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting and the handshake may take.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::tcp::TcpBuilder;
    /// let e = TcpBuilder::new("127.0.0.1:1")
    ///     .connect_timeout(std::time::Duration::from_millis(100))
    ///     .connect()
    ///     .unwrap_err();
    /// assert!(e.is_disconnected());
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a waiting caller polls before it parks (zero: park at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::tcp::TcpBuilder;
    /// // Park at once: lowest CPU use, one thread wake-up per reply.
    /// let b = TcpBuilder::new("127.0.0.1:7411").spin(std::time::Duration::ZERO);
    /// # let _ = b;
    /// ```
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// The largest frame body this client sends or accepts.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::tcp::TcpBuilder;
    /// let b = TcpBuilder::new("127.0.0.1:7411").max_frame(1 << 20);
    /// # let _ = b;
    /// ```
    pub fn max_frame(mut self, bytes: u32) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Whether a call after a lost connection reconnects (default: yes).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::backend::tcp::TcpBuilder;
    /// let b = TcpBuilder::new("127.0.0.1:7411").reconnect(false);
    /// # let _ = b;
    /// ```
    pub fn reconnect(mut self, on: bool) -> Self {
        self.reconnect = on;
        self
    }

    /// Resumes the session of an earlier backend (see [`TcpBackend::resume_ticket`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use aifm_core::backend::tcp::TcpBuilder;
    /// let first = TcpBuilder::new("127.0.0.1:7411").connect().unwrap();
    /// let ticket = first.resume_ticket();
    /// drop(first); // e.g. the process restarts, within the server's grace period
    /// let again = TcpBuilder::new("127.0.0.1:7411").resume(ticket).connect().unwrap();
    /// # let _ = again;
    /// ```
    pub fn resume(mut self, ticket: ResumeTicket) -> Self {
        self.resume = Some(ticket);
        self
    }

    /// Connects, shakes hands and logs in.
    ///
    /// # Errors
    /// [`Error::Disconnected`] when the server cannot be reached (or a resumed session is
    /// gone), [`Error::AuthFailed`] for a wrong or missing token, [`Error::Protocol`] for a
    /// server that speaks another protocol version.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use aifm_core::backend::tcp::TcpBuilder;
    /// use aifm_core::backend::{Backend, OBJECT_STORE};
    /// let far = TcpBuilder::new("127.0.0.1:7411").connect().unwrap();
    /// far.write(OBJECT_STORE, b"k", b"v").unwrap();
    /// ```
    pub fn connect(self) -> Result<TcpBackend> {
        let (conn, welcome) = handshake(&self, self.resume)?;
        if let (Some(asked), false) = (self.resume, welcome.resumed) {
            return Err(session_lost(asked.session));
        }
        Ok(TcpBackend {
            c: Arc::new(Client {
                state: Mutex::new(Reconnect {
                    ticket: welcome.ticket,
                    poisoned: None,
                    last_failure: None,
                    reconnects: 0,
                }),
                conn: RwLock::new(conn),
                next_id: AtomicU64::new(1),
                last_stored: AtomicU64::new(0),
                opts: self,
            }),
        })
    }
}

fn session_lost(s: SessionId) -> Error {
    Error::Disconnected(format!(
        "the server no longer holds session {s}: its far objects are lost"
    ))
}

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

/// A backend's state, shared (behind an [`Arc`]) with the batches it has in flight: a batch
/// whose replies turn out not to fit a frame falls back to single reads after the call that
/// started it has returned.
struct Client {
    opts: TcpBuilder,
    conn: RwLock<Arc<Conn>>,
    state: Mutex<Reconnect>,
    next_id: AtomicU64,
    last_stored: AtomicU64,
}

#[derive(Debug)]
struct Reconnect {
    ticket: ResumeTicket,
    poisoned: Option<Error>,
    last_failure: Option<(Instant, Error)>,
    reconnects: u64,
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
        self.c.state.lock().unwrap().ticket.session
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
        self.c.state.lock().unwrap().ticket
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
        self.c.state.lock().unwrap().reconnects
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
        !self.c.conn.read().unwrap().dead.load(Ordering::SeqCst)
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

impl Client {
    fn start_reads(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<PendingRead>> {
        let ops: Vec<Op<'_>> = keys.iter().map(|k| Op::Read { ds, key: Blob(k) }).collect();
        let calls = self.start_all(&ops)?;
        Ok(calls.into_iter().map(|call| PendingRead { call }).collect())
    }

    /// Sends every piece of a batch read; returns the calls and the key range of each.
    fn start_read_many(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<(Call, Range<usize>)>> {
        self.pieces(keys.iter().map(|k| blob_size(k)))
            .into_iter()
            .map(|r| {
                let piece = keys[r.clone()].iter().map(|k| Blob(k)).collect();
                Ok((self.start(&Op::ReadMany { ds, keys: piece })?, r))
            })
            .collect()
    }

    /// Collects the answers of [`Client::start_read_many`]'s pieces, in order. A piece whose
    /// replies did not fit one frame (the server answers [`Error::Protocol`]) is fetched again
    /// one object at a time, pipelined.
    fn finish_read_many<K: AsRef<[u8]>>(
        &self,
        ds: u32,
        keys: &[K],
        calls: Vec<(Call, Range<usize>)>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        for (call, range) in calls {
            match call.finish() {
                Ok(Answer::Values(vs)) if vs.len() == range.len() => out.extend(vs),
                Ok(other) => return Err(other.unexpected()),
                Err(Error::Protocol(_)) => {
                    let piece: Vec<&[u8]> = keys[range].iter().map(AsRef::as_ref).collect();
                    for p in self.start_reads(ds, &piece)? {
                        out.push(p.wait()?);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Sends `op(piece)` for every piece of `sizes` (encoded element sizes) that fits a frame.
    fn start_pieces<'a>(
        &self,
        sizes: impl Iterator<Item = usize>,
        op: impl Fn(Range<usize>) -> Op<'a>,
    ) -> Result<Vec<Call>> {
        self.pieces(sizes)
            .into_iter()
            .map(|r| self.start(&op(r)))
            .collect()
    }
    fn connection(&self) -> Result<Arc<Conn>> {
        {
            let c = self.conn.read().unwrap();
            if !c.dead.load(Ordering::SeqCst) && c.alive_after_quiet() {
                return Ok(c.clone());
            }
        }
        self.reconnect()
    }

    fn reconnect(&self) -> Result<Arc<Conn>> {
        let mut st = self.state.lock().unwrap();
        let old = self.conn.read().unwrap().clone();
        if !old.dead.load(Ordering::SeqCst) {
            return Ok(old); // another thread reconnected meanwhile
        }
        if let Some(e) = &st.poisoned {
            return Err(e.clone());
        }
        if !self.opts.reconnect {
            return Err(old.why());
        }
        if let Some((at, e)) = &st.last_failure {
            if at.elapsed() < RECONNECT_BACKOFF {
                return Err(e.clone());
            }
        }
        match handshake(&self.opts, Some(st.ticket)) {
            Ok((conn, welcome)) if welcome.resumed => {
                st.last_failure = None;
                st.reconnects += 1;
                *self.conn.write().unwrap() = conn.clone();
                Ok(conn)
            }
            Ok((conn, _)) => {
                conn.kill(Error::Disconnected("session lost".into()));
                let e = session_lost(st.ticket.session);
                st.poisoned = Some(e.clone());
                Err(e)
            }
            Err(e) => {
                st.last_failure = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    fn start(&self, op: &Op<'_>) -> Result<Call> {
        let conn = self.connection()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.opts.timeout;
        let waiter = Arc::new(Waiter::new());
        conn.register(id, &waiter)?;
        let call = Call {
            conn,
            id,
            waiter,
            deadline,
            done: false,
        };
        call.conn.send(&[(id, op)], deadline)?; // on error, `call` unregisters as it drops
        Ok(call)
    }

    /// Sends `ops` in one write; one call each.
    fn start_all(&self, ops: &[Op<'_>]) -> Result<Vec<Call>> {
        let conn = self.connection()?;
        let first = self.next_id.fetch_add(ops.len() as u64, Ordering::Relaxed);
        let deadline = Instant::now() + self.opts.timeout;
        let mut calls = Vec::with_capacity(ops.len());
        for i in 0..ops.len() as u64 {
            let waiter = Arc::new(Waiter::new());
            conn.register(first + i, &waiter)?; // on error, `calls` unregister as they drop
            calls.push(Call {
                conn: conn.clone(),
                id: first + i,
                waiter,
                deadline,
                done: false,
            });
        }
        let reqs: Vec<(u64, &Op<'_>)> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| (first + i as u64, op))
            .collect();
        conn.send(&reqs, deadline)?;
        Ok(calls)
    }

    fn call(&self, op: &Op<'_>) -> Result<Answer> {
        self.start(op)?.finish()
    }

    /// Frame budget for one batch piece: the agreed maximum minus room for the envelope.
    fn batch_budget(&self) -> usize {
        (self.conn.read().unwrap().max_frame as usize).saturating_sub(64)
    }

    /// Splits `sizes` (encoded size of each element) into ranges that fit one frame.
    fn pieces(&self, sizes: impl Iterator<Item = usize>) -> Vec<Range<usize>> {
        let budget = self.batch_budget();
        let mut out = Vec::new();
        let (mut start, mut bytes, mut n) = (0, 0, 0);
        for (i, s) in sizes.enumerate() {
            if n > 0 && (bytes + s > budget || n == MAX_BATCH_KEYS) {
                out.push(start..i);
                (start, bytes, n) = (i, 0, 0);
            }
            bytes += s;
            n += 1;
        }
        if n > 0 {
            out.push(start..start + n);
        }
        out
    }
}

/// Waits for every call of a batch (each answers `Done`); the first error wins.
fn finish_all(calls: Result<Vec<Call>>) -> super::InFlight<()> {
    match calls {
        Ok(calls) => super::InFlight::later(move || {
            let mut first_err = None;
            for call in calls {
                if let Err(e) = call.finish().and_then(Answer::done) {
                    first_err.get_or_insert(e);
                }
            }
            first_err.map_or(Ok(()), Err)
        }),
        Err(e) => super::InFlight::done(Err(e)),
    }
}

/// Encoded size of a byte string: a varint length (at most 5 bytes here) and the bytes.
fn blob_size(b: &[u8]) -> usize {
    b.len() + 5
}

impl Backend for TcpBackend {
    fn name(&self) -> String {
        format!("tcp://{}", self.c.opts.addr)
    }

    /// Sends the read now ([`TcpBackend::start_read`]); waiting collects the answer.
    fn begin_read(&self, ds: u32, key: &[u8]) -> super::ReadInFlight {
        match self.start_read(ds, key) {
            Ok(pending) => super::ReadInFlight::later(move || pending.wait()),
            Err(e) => super::ReadInFlight::done(Err(e)),
        }
    }

    fn read(&self, ds: u32, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.c.call(&Op::Read { ds, key: Blob(key) })?.value()
    }

    fn write(&self, ds: u32, key: &[u8], value: &[u8]) -> Result<()> {
        self.c
            .call(&Op::Write {
                ds,
                key: Blob(key),
                value: Blob(value),
            })?
            .done()
    }

    fn remove(&self, ds: u32, key: &[u8]) -> Result<bool> {
        match self.c.call(&Op::Remove { ds, key: Blob(key) })? {
            Answer::Removed(b) => Ok(b),
            other => Err(other.unexpected()),
        }
    }

    fn read_many(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let calls = self.c.start_read_many(ds, keys)?;
        self.c.finish_read_many(ds, keys, calls)
    }

    /// Sends every piece now; the answer keeps a copy of the keys (and a handle on this
    /// backend) in case a piece must fall back to single reads.
    fn begin_read_many(&self, ds: u32, keys: &[&[u8]]) -> super::ManyInFlight {
        match self.c.start_read_many(ds, keys) {
            Ok(calls) => {
                let (client, keys) = (self.c.clone(), keys.iter().map(|k| k.to_vec()));
                let keys: Vec<Vec<u8>> = keys.collect();
                super::InFlight::later(move || client.finish_read_many(ds, &keys, calls))
            }
            Err(e) => super::InFlight::done(Err(e)),
        }
    }

    fn write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> Result<()> {
        self.begin_write_many(ds, items).wait()
    }

    /// Sends every piece now; waiting collects the answers.
    fn begin_write_many(&self, ds: u32, items: &[(&[u8], &[u8])]) -> super::InFlight<()> {
        let sizes = items.iter().map(|(k, v)| blob_size(k) + blob_size(v));
        let calls = self.c.start_pieces(sizes, |r| Op::WriteMany {
            ds,
            items: items[r].iter().map(|(k, v)| (Blob(k), Blob(v))).collect(),
        });
        finish_all(calls)
    }

    fn remove_many(&self, ds: u32, keys: &[&[u8]]) -> Result<()> {
        self.begin_remove_many(ds, keys).wait()
    }

    /// Sends every piece now; waiting collects the answers.
    fn begin_remove_many(&self, ds: u32, keys: &[&[u8]]) -> super::InFlight<()> {
        let calls = self
            .c
            .start_pieces(keys.iter().map(|k| blob_size(k)), |r| Op::RemoveMany {
                ds,
                keys: keys[r].iter().map(|k| Blob(k)).collect(),
            });
        finish_all(calls)
    }

    fn construct(&self, ds: u32, device: &str, params: &[u8]) -> Result<()> {
        self.c
            .call(&Op::Construct {
                ds,
                device,
                params: Blob(params),
            })?
            .done()
    }

    fn destruct(&self, ds: u32) -> Result<()> {
        self.c.call(&Op::Destruct { ds })?.done()
    }

    fn begin_compute(&self, ds: u32, opcode: u32, input: &[u8]) -> super::ComputeInFlight {
        let op = Op::Compute {
            ds,
            opcode,
            input: Blob(input),
        };
        match self.c.start(&op) {
            Ok(call) => super::InFlight::later(move || match call.finish()? {
                Answer::Output(v) => Ok(v),
                other => Err(other.unexpected()),
            }),
            Err(e) => super::InFlight::done(Err(e)),
        }
    }

    /// One request carrying the keys ([`super::sharded::encode_shard_input`]), sent now.
    fn begin_compute_sharded(
        &self,
        ds: u32,
        opcode: u32,
        keys: &[&[u8]],
        input: &[u8],
    ) -> super::InFlight<Vec<Vec<u8>>> {
        if keys.is_empty() {
            return super::InFlight::done(Ok(Vec::new()));
        }
        let call = self.begin_compute(ds, opcode, &super::sharded::encode_shard_input(keys, input));
        super::InFlight::later(move || Ok(vec![call.wait()?]))
    }

    fn compute(&self, ds: u32, opcode: u32, input: &[u8]) -> Result<Vec<u8>> {
        match self.c.call(&Op::Compute {
            ds,
            opcode,
            input: Blob(input),
        })? {
            Answer::Output(v) => Ok(v),
            other => Err(other.unexpected()),
        }
    }

    /// Pages of 4096 keys, each starting after the last key of the previous one,
    /// until the server returns an empty page.
    fn keys(&self, ds: u32) -> Result<Vec<Vec<u8>>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        loop {
            let after = out.last().map(|k| Blob(k));
            let page = match self.c.call(&Op::Keys {
                ds,
                after,
                limit: KEYS_PAGE,
            })? {
                Answer::Keys(page) => page,
                other => return Err(other.unexpected()),
            };
            if page.is_empty() {
                return Ok(out);
            }
            // Each page must continue strictly upwards, or a broken server could loop us.
            let mut prev = out.last().map(|k| &k[..]);
            for k in &page {
                if prev.is_some_and(|p| p >= &k[..]) {
                    return Err(Error::Protocol(
                        "key listing page is not in increasing order".into(),
                    ));
                }
                prev = Some(k);
            }
            if page.len() > KEYS_PAGE as usize {
                return Err(Error::Protocol(format!(
                    "key listing page of {} keys (asked for {KEYS_PAGE})",
                    page.len()
                )));
            }
            out.extend(page);
        }
    }

    /// Asks the server; when it cannot be asked, the last known figure.
    fn stored_bytes(&self) -> u64 {
        match self.c.call(&Op::StoredBytes) {
            Ok(Answer::Bytes(n)) => {
                self.c.last_stored.store(n, Ordering::Relaxed);
                n
            }
            _ => self.c.last_stored.load(Ordering::Relaxed),
        }
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

/// One request in flight.
#[derive(Debug)]
struct Call {
    conn: Arc<Conn>,
    id: u64,
    waiter: Arc<Waiter>,
    deadline: Instant,
    done: bool,
}

impl Call {
    fn finish(mut self) -> Result<Answer> {
        self.done = true;
        self.conn.wait(self.id, &self.waiter, self.deadline)
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.done {
            self.conn.pending.lock().unwrap().remove(&self.id);
        }
    }
}

impl Answer {
    fn unexpected(&self) -> Error {
        Error::Protocol(format!("unexpected reply {self:?}"))
    }
    fn value(self) -> Result<Option<Vec<u8>>> {
        match self {
            Answer::Value(v) => Ok(v),
            other => Err(other.unexpected()),
        }
    }
    fn done(self) -> Result<()> {
        match self {
            Answer::Done => Ok(()),
            other => Err(other.unexpected()),
        }
    }
    fn expect_pong(self) -> Result<()> {
        match self {
            Answer::Pong => Ok(()),
            other => Err(other.unexpected()),
        }
    }
}

/// Where one caller's reply lands.
#[derive(Debug)]
struct Waiter {
    done: AtomicBool,
    result: Mutex<Option<Result<Answer>>>,
    thread: Thread,
}

impl Waiter {
    fn new() -> Self {
        Waiter {
            done: AtomicBool::new(false),
            result: Mutex::new(None),
            thread: thread::current(),
        }
    }

    fn complete(&self, r: Result<Answer>) {
        *self.result.lock().unwrap() = Some(r);
        self.done.store(true, Ordering::Release);
        self.thread.unpark();
    }

    fn take(&self) -> Result<Answer> {
        self.result
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(|| Err(Error::Protocol("reply taken twice".into())))
    }
}

/// One established connection.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    fd: RawFd,
    /// Requests encoded but not yet written (any sender appends).
    outq: Mutex<Vec<u8>>,
    /// The bytes being written, held by the one thread writing.
    writer: Mutex<Vec<u8>>,
    reader: Mutex<FrameReader>,
    pending: Mutex<HashMap<u64, Arc<Waiter>>>,
    dead: AtomicBool,
    why: Mutex<Option<Error>>,
    max_frame: u32,
    spin: Duration,
    /// When the connection was made (the origin of `heard_ms`).
    born: Instant,
    /// Milliseconds after `born` when the server was last heard from (or found alive).
    heard_ms: AtomicU64,
}

impl Conn {
    fn age_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// Whether the connection can take a call. One that has been quiet for
    /// [`QUIET_CHECK`] with nothing in flight may have been closed by the server (its idle
    /// timeout, or to make room for another client): a non-blocking read finds out, and
    /// delivers the server's parting frame, which marks it dead so that the call
    /// reconnects and resumes instead of failing.
    fn alive_after_quiet(&self) -> bool {
        let now = self.age_ms();
        if now.saturating_sub(self.heard_ms.load(Ordering::Relaxed))
            < QUIET_CHECK.as_millis() as u64
            || !self.pending.lock().unwrap().is_empty()
        {
            return true;
        }
        let Ok(mut rd) = self.reader.try_lock() else {
            return true; // someone is reading it: it is in use
        };
        let alive = self.drain(&mut rd).is_ok() && !self.dead.load(Ordering::SeqCst);
        self.heard_ms.store(now, Ordering::Relaxed);
        alive
    }

    fn why(&self) -> Error {
        self.why
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| Error::Disconnected("connection closed".into()))
    }

    /// Marks the connection dead and fails every request in flight with `e`; returns `e`.
    fn kill(&self, e: Error) -> Error {
        {
            let mut why = self.why.lock().unwrap();
            if why.is_none() {
                *why = Some(e.clone());
            }
        }
        self.dead.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let waiters: Vec<Arc<Waiter>> = self
            .pending
            .lock()
            .unwrap()
            .drain()
            .map(|(_, w)| w)
            .collect();
        let why = self.why();
        for w in waiters {
            w.complete(Err(why.clone()));
        }
        why
    }

    fn register(&self, id: u64, w: &Arc<Waiter>) -> Result<()> {
        self.pending.lock().unwrap().insert(id, w.clone());
        // `kill` sets `dead` before draining `pending`: either it drains our entry, or we
        // see `dead` here.
        if self.dead.load(Ordering::SeqCst) {
            self.pending.lock().unwrap().remove(&id);
            return Err(self.why());
        }
        Ok(())
    }

    /// Queues requests `(id, op)` and writes them, together with whatever other threads
    /// queued meanwhile.
    fn send(&self, reqs: &[(u64, &Op<'_>)], deadline: Instant) -> Result<()> {
        {
            let mut q = self.outq.lock().unwrap();
            let start = q.len();
            for (id, op) in reqs {
                if let Err(e) = wire::encode_request(*id, op, &mut q, self.max_frame) {
                    q.truncate(start);
                    return Err(e);
                }
            }
        }
        self.flush(deadline)
    }

    /// Writes the queued requests. One thread writes at a time; a thread that finds the
    /// writer busy leaves its requests queued and returns, and the writer takes them before
    /// it lets go (so concurrent senders share system calls).
    fn flush(&self, deadline: Instant) -> Result<()> {
        loop {
            let Ok(mut buf) = self.writer.try_lock() else {
                return Ok(());
            };
            {
                let mut q = self.outq.lock().unwrap();
                if q.is_empty() {
                    drop(q);
                    drop(buf);
                    // A sender may have queued after our look, before we let go of the writer.
                    if self.outq.lock().unwrap().is_empty() {
                        return Ok(());
                    }
                    continue;
                }
                buf.clear();
                std::mem::swap(&mut *q, &mut *buf);
            }
            self.write_all(&buf, deadline)?;
            buf.clear();
            if buf.capacity() > 1 << 20 {
                *buf = Vec::new(); // give back the room a huge batch needed once
            }
        }
    }

    fn write_all(&self, mut rest: &[u8], deadline: Instant) -> Result<()> {
        while !rest.is_empty() {
            match (&self.stream).write(rest) {
                Ok(0) => {
                    return Err(self.kill(Error::Disconnected("the server stopped reading".into())))
                }
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Make room: read replies if nobody else is, then wait for the socket.
                    if let Ok(mut rd) = self.reader.try_lock() {
                        self.drain(&mut rd)?;
                    }
                    if Instant::now() >= deadline {
                        // A partly written frame leaves the stream unusable.
                        self.kill(Error::Disconnected(
                            "a request could not be sent within the timeout".into(),
                        ));
                        return Err(Error::Timeout);
                    }
                    poll_fd(self.fd, libc::POLLOUT, FOLLOWER_NAP);
                }
                Err(e) => {
                    return Err(self.kill(Error::Disconnected(format!("send failed: {e}"))));
                }
            }
        }
        Ok(())
    }

    /// Reads everything available without blocking and delivers it.
    fn drain(&self, rd: &mut FrameReader) -> Result<()> {
        loop {
            match rd.read_from(&self.stream) {
                Ok(0) => return Err(self.closed()),
                Ok(_) => self.deliver(rd)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    fn closed(&self) -> Error {
        self.kill(Error::Disconnected(
            "the server closed the connection".into(),
        ))
    }

    fn failed(&self, e: io::Error) -> Error {
        self.kill(Error::Disconnected(format!("connection failed: {e}")))
    }

    /// Hands every complete frame in `rd` to its waiter.
    fn deliver(&self, rd: &mut FrameReader) -> Result<()> {
        self.heard_ms.store(self.age_ms(), Ordering::Relaxed);
        loop {
            let body = match rd.next_frame() {
                Ok(Some(body)) => body,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.kill(e)),
            };
            match wire::decode_exact::<ServerMsg<'_>>(body) {
                Ok(ServerMsg::Response { id, result }) => {
                    let waiter = self.pending.lock().unwrap().remove(&id);
                    if let Some(w) = waiter {
                        w.complete(result.map(Answer::from).map_err(Error::from));
                    }
                }
                Ok(ServerMsg::Fatal(e)) => return Err(self.kill(e.into())),
                Ok(other) => {
                    return Err(self.kill(Error::Protocol(format!(
                        "unexpected message after the handshake: {other:?}"
                    ))))
                }
                Err(e) => return Err(self.kill(e)),
            }
        }
    }

    /// Reads as the leader until `me` is complete, the deadline passes, or the connection dies.
    fn lead(&self, rd: &mut FrameReader, me: &Waiter, deadline: Instant) -> Result<()> {
        let spin_until = Instant::now() + self.spin;
        loop {
            if me.done.load(Ordering::Acquire) {
                return Ok(());
            }
            match rd.read_from(&self.stream) {
                Ok(0) => return Err(self.closed()),
                Ok(_) => self.deliver(rd)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::Timeout);
                    }
                    if now < spin_until {
                        thread::yield_now();
                    } else {
                        poll_fd(self.fd, libc::POLLIN, (deadline - now).min(LEADER_POLL));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    /// Gives the reader role to a waiter still waiting (it may be parked).
    fn hand_off(&self) {
        let pending = self.pending.lock().unwrap();
        if let Some(w) = pending.values().find(|w| !w.done.load(Ordering::Acquire)) {
            w.thread.unpark();
        }
    }

    /// Waits for request `id`.
    fn wait(&self, id: u64, me: &Arc<Waiter>, deadline: Instant) -> Result<Answer> {
        let spin_until = Instant::now() + self.spin;
        loop {
            if me.done.load(Ordering::Acquire) {
                return me.take();
            }
            if let Ok(mut rd) = self.reader.try_lock() {
                let r = self.lead(&mut rd, me, deadline);
                drop(rd);
                self.hand_off();
                match r {
                    Ok(()) => return me.take(),
                    Err(Error::Timeout) => return self.abandon(id, me),
                    // `kill` completed every waiter, this one included.
                    Err(e) => {
                        return if me.done.load(Ordering::Acquire) {
                            me.take()
                        } else {
                            Err(e)
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return self.abandon(id, me);
            }
            if now < spin_until {
                thread::yield_now();
            } else {
                thread::park_timeout((deadline - now).min(FOLLOWER_NAP));
            }
        }
    }

    /// Gives up on request `id` at its deadline (unless its reply is being delivered).
    fn abandon(&self, id: u64, me: &Waiter) -> Result<Answer> {
        if self.pending.lock().unwrap().remove(&id).is_some() {
            return Err(Error::Timeout);
        }
        // Removed by a deliverer (or by `kill`), which completes it right after.
        while !me.done.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        me.take()
    }
}

/// What the server may say during the handshake.
enum Greeting {
    Challenge(Challenge),
    Welcome(Welcome),
    Fatal(WireError),
}

fn read_greeting(mut stream: &TcpStream, rd: &mut FrameReader) -> Result<Greeting> {
    loop {
        if let Some(body) = rd.next_frame()? {
            return match wire::decode_exact::<ServerMsg<'_>>(body)? {
                ServerMsg::Challenge(c) => Ok(Greeting::Challenge(c)),
                ServerMsg::Welcome(w) => Ok(Greeting::Welcome(w)),
                ServerMsg::Fatal(e) => Ok(Greeting::Fatal(e)),
                other => Err(Error::Protocol(format!(
                    "unexpected message during the handshake: {other:?}"
                ))),
            };
        }
        match rd.read_from(&mut stream) {
            Ok(0) => {
                return Err(Error::Disconnected(
                    "the server closed the connection during the handshake".into(),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Error::Disconnected("the handshake timed out".into()))
            }
            Err(e) => return Err(Error::Disconnected(format!("handshake failed: {e}"))),
        }
    }
}

/// Connects to `opts.addr`, shakes hands and logs in (resuming `resume`).
fn handshake(opts: &TcpBuilder, resume: Option<ResumeTicket>) -> Result<(Arc<Conn>, Welcome)> {
    let unreachable =
        |e: &dyn std::fmt::Display| Error::Disconnected(format!("cannot reach {}: {e}", opts.addr));
    let addrs: Vec<_> = opts
        .addr
        .to_socket_addrs()
        .map_err(|e| unreachable(&e))?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the address resolves to nothing");
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, opts.connect_timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let stream = stream.ok_or_else(|| unreachable(&last))?;
    let setup = |s: &TcpStream| -> io::Result<()> {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(opts.connect_timeout))?;
        s.set_write_timeout(Some(opts.connect_timeout))
    };
    setup(&stream).map_err(|e| unreachable(&e))?;
    // The server's handshake messages are small; its replies may be large once logged in.
    let mut rd = FrameReader::new(wire::HANDSHAKE_MAX_FRAME);
    let mut buf = Vec::new();
    wire::encode_frame(&ClientHello::current(), &mut buf, opts.max_frame)?;
    (&stream).write_all(&buf).map_err(|e| unreachable(&e))?;
    let challenge = match read_greeting(&stream, &mut rd)? {
        Greeting::Challenge(c) => c,
        Greeting::Fatal(e) => return Err(e.into()),
        Greeting::Welcome(_) => return Err(Error::Protocol("welcome before login".into())),
    };
    if challenge.version != wire::VERSION {
        return Err(Error::Protocol(format!(
            "the server speaks protocol version {}, this client {}",
            challenge.version,
            wire::VERSION
        )));
    }
    let proof = match (challenge.nonce, &opts.token) {
        (Some(nonce), Some(token)) => Some(auth::proof(token, &nonce)),
        _ => None,
    };
    buf.clear();
    wire::encode_frame(&Login { proof, resume }, &mut buf, opts.max_frame)?;
    (&stream).write_all(&buf).map_err(|e| unreachable(&e))?;
    let welcome = match read_greeting(&stream, &mut rd)? {
        Greeting::Welcome(w) => w,
        Greeting::Fatal(e) => return Err(e.into()),
        Greeting::Challenge(_) => return Err(Error::Protocol("second challenge".into())),
    };
    let go = |s: &TcpStream| -> io::Result<()> {
        s.set_read_timeout(None)?;
        s.set_write_timeout(None)?;
        s.set_nonblocking(true)
    };
    go(&stream).map_err(|e| unreachable(&e))?;
    rd.set_max_frame(opts.max_frame);
    let conn = Conn {
        fd: stream.as_raw_fd(),
        stream,
        outq: Mutex::new(Vec::new()),
        writer: Mutex::new(Vec::new()),
        reader: Mutex::new(rd),
        pending: Mutex::new(HashMap::new()),
        dead: AtomicBool::new(false),
        why: Mutex::new(None),
        max_frame: opts.max_frame.min(challenge.max_frame),
        spin: opts.spin,
        born: Instant::now(),
        heard_ms: AtomicU64::new(0),
    };
    Ok((Arc::new(conn), welcome))
}

#[cfg(test)]
mod tests {
    use super::env_number;
    use crate::Error;

    #[test]
    fn env_numbers_parse_trimmed_and_name_the_variable_when_bad() {
        // Variables of this test only: no other test reads them.
        std::env::set_var("AIFM_TEST_ENV_NUMBER_GOOD", " 250 ");
        std::env::set_var("AIFM_TEST_ENV_NUMBER_BAD", "12ms");
        assert_eq!(env_number("AIFM_TEST_ENV_NUMBER_GOOD").unwrap(), Some(250));
        assert_eq!(env_number("AIFM_TEST_ENV_NUMBER_UNSET").unwrap(), None);
        match env_number("AIFM_TEST_ENV_NUMBER_BAD") {
            Err(Error::Config(m)) => assert!(m.contains("AIFM_TEST_ENV_NUMBER_BAD"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
