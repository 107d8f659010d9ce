//! # aifm-server: the far-memory server
//!
//! A TCP front end over the core's [`Engine`]: clients (the
//! [`TcpBackend`](aifm_core::backend::tcp::TcpBackend) of `aifm-core`) connect, each gets its
//! own namespace with its own quota, and the engine's remote devices run next to the data.
//! The `aifm-server` binary wraps this library with a command line.
//!
//! ```
//! use aifm_core::backend::{tcp::TcpBuilder, Backend, OBJECT_STORE};
//! use aifm_server::{Config, Server};
//!
//! let server = Server::bind(Config {
//!     listen: "127.0.0.1:0".into(), // an ephemeral port
//!     capacity: 64 << 20,
//!     ..Config::default()
//! })
//! .unwrap()
//! .spawn()
//! .unwrap();
//! let far = TcpBuilder::new(server.addr().to_string()).connect().unwrap();
//! far.write(OBJECT_STORE, b"k", b"far away").unwrap();
//! assert_eq!(far.read(OBJECT_STORE, b"k").unwrap().unwrap(), b"far away");
//! let stats = server.stop();
//! assert_eq!(stats.requests.write, 1);
//! ```
//!
//! # How it serves
//!
//! * **One thread per connection, polling adaptively.** A connection thread reads every
//!   complete request in its buffer, answers them all, and sends the answers in one write.
//!   Then it polls its non-blocking socket for the next request for a short while (the
//!   `spin` setting) before it sleeps in `poll(2)`: a client that sends its next request
//!   within that window pays no thread wake-up on this side either. At most
//!   `cores - 1` connections spin at a time (at least one), so a crowd of clients cannot
//!   starve the machine.
//! * **Sessions.** A login names no session (a fresh namespace) or asks to resume one. A
//!   session whose last connection closed is kept for the grace period, then reclaimed: its
//!   structures are cleared and its bytes return to the capacity.
//! * **Capacity.** Each namespace has its own quota (`client_quota`, default: the whole
//!   capacity); on top, the server's capacity is a pool shared by all (the engine's
//!   [`Pool`](aifm_core::engine::Pool)): every charge takes from both or from neither, so a
//!   write beyond either is refused with `ServerFull` and nothing already stored is harmed.
//!   A charge is what the client costs: key and value bytes plus a per-object overhead, a
//!   fixed cost per constructed structure; a batch is admitted or refused as a whole (see
//!   [`aifm_core::engine::quota`]). The limits are [`Limits::server`] of the frame size.
//! * **Requests.** Each is run by [`dispatch`]: panics in a device become a typed error for
//!   that request, replies are sized before they are built (at most one frame), batches
//!   name at most [`MAX_BATCH_KEYS`](aifm_core::engine::MAX_BATCH_KEYS) keys.
//!   [`Dispatcher`] runs the same code without sockets (tests, fuzzing).
//! * **Limits and deadlines.** Before login a connection accepts only 4 KiB frames and must
//!   log in within `handshake_timeout`; after it, a frame must arrive within
//!   `frame_timeout` of its first byte, answers must be read within the same, and a
//!   connection without requests for `idle_timeout` is closed. At `max_connections` (or
//!   `max_connections_per_ip` for one address) a newcomer closes the connection that has
//!   gone longest without completing a request, once that one has been quiet for
//!   `evict_idle_after`; otherwise it is refused. A session resumes only with the secret of
//!   its [`ResumeTicket`](aifm_core::wire::ResumeTicket). `docs/SECURITY.md` has the threat
//!   model and the defaults.
//! * **Bad input.** A frame that cannot be read (oversized, malformed, wrong version, no
//!   hello) ends that connection with a fatal error frame and a log line; a request whose op
//!   is unknown is answered with an error for its id and the connection goes on. Other
//!   connections never notice.
//! * **Devices.** The server's engine starts with the core's object store; more device types
//!   come from [`Config::devices`], a list of [`Registration`] functions (the binary's list
//!   is where `aifm-collections` plugs in).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod conn;
pub mod dispatch;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod limits;
mod sessions;
mod stats;

pub use aifm_core::wire::ServerStats;
pub use dispatch::{Dispatcher, Session};

use aifm_core::wire;

use aifm_core::engine::{DeviceRegistry, Engine, Limits};
use limits::{ConnLimits, ConnTable};
use sessions::Sessions;
use stats::Counters;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Registers device types with a server's engine (see [`Config::devices`]).
///
/// # Examples
///
/// ```
/// use aifm_core::engine::{DeviceRegistry, ObjectStore};
/// fn my_devices(r: &DeviceRegistry) {
///     r.register("my.store", |_params, quota| Ok(Box::new(ObjectStore::new(quota))));
/// }
/// let config = aifm_server::Config {
///     devices: vec![my_devices],
///     ..Default::default()
/// };
/// # let _ = config;
/// ```
pub type Registration = fn(&DeviceRegistry);

/// The default TCP port.
pub const DEFAULT_PORT: u16 = 7411;

/// Server settings.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let c = aifm_server::Config {
///     capacity: 1 << 30,
///     client_quota: Some(256 << 20),
///     grace: Duration::from_secs(5),
///     ..Default::default()
/// };
/// assert_eq!(c.listen, "127.0.0.1:7411");
/// ```
#[derive(Clone)]
pub struct Config {
    /// `host:port` to listen on (default `127.0.0.1:7411`, loopback only).
    pub listen: String,
    /// Bytes the server stores over all clients.
    pub capacity: u64,
    /// Bytes one client may store (default: the whole capacity).
    pub client_quota: Option<u64>,
    /// The shared secret clients must prove; `None` accepts everyone.
    pub token: Option<Vec<u8>>,
    /// How long a disconnected client's namespace waits for it to come back.
    pub grace: Duration,
    /// Interval of the statistics log line; `None` for none.
    pub stats_interval: Option<Duration>,
    /// The largest frame body accepted (and sent).
    pub max_frame: u32,
    /// How long a connection polls for the next request before it sleeps.
    pub spin: Duration,
    /// How long a new connection may take to log in.
    pub handshake_timeout: Duration,
    /// How long a frame may take to arrive once its first byte has (and a batch of answers
    /// to be sent): a client that trickles a frame, or reads its answers too slowly, is cut
    /// off after this.
    pub frame_timeout: Duration,
    /// How long a logged-in connection may go without a request before it is closed
    /// (`Duration::ZERO`: never). Its session stays for the grace period.
    pub idle_timeout: Duration,
    /// Connections served at once; at the limit the stalest connection makes room (see
    /// `evict_idle_after`), else newcomers are refused with a fatal frame.
    pub max_connections: usize,
    /// Connections one peer address may hold at once (same rule at the limit).
    pub max_connections_per_ip: usize,
    /// Sessions held at once, with or without a connection: at the cap a new session takes
    /// the place of the one detached longest ago; when all have connections, logins are
    /// refused.
    pub max_sessions: usize,
    /// How long a connection must have gone without completing a request before it may be
    /// closed to make room for a newcomer at a connection limit.
    pub evict_idle_after: Duration,
    /// Requests one connection may have read but not yet answered and sent: past it the
    /// server stops reading that socket until its answers drain.
    pub max_in_flight: usize,
    /// Device registrations run on the server's engine at start.
    pub devices: Vec<Registration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: format!("127.0.0.1:{DEFAULT_PORT}"),
            capacity: 8 << 30,
            client_quota: None,
            token: None,
            grace: Duration::from_secs(30),
            stats_interval: Some(Duration::from_secs(60)),
            max_frame: aifm_core::wire::DEFAULT_MAX_FRAME,
            spin: Duration::from_micros(100),
            handshake_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            max_connections: 1024,
            max_connections_per_ip: 256,
            max_sessions: 16384,
            evict_idle_after: Duration::from_secs(1),
            max_in_flight: 1024,
            devices: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("capacity", &self.capacity)
            .field("client_quota", &self.client_quota)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("grace", &self.grace)
            .field("stats_interval", &self.stats_interval)
            .field("max_frame", &self.max_frame)
            .field("spin", &self.spin)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("frame_timeout", &self.frame_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("max_sessions", &self.max_sessions)
            .field("evict_idle_after", &self.evict_idle_after)
            .field("max_in_flight", &self.max_in_flight)
            .field("devices", &self.devices.len())
            .finish()
    }
}

/// Asks a running server to stop; cloneable, usable from any thread (or a signal handler's
/// flag, see [`ShutdownHandle::flag`]).
///
/// # Examples
///
/// ```
/// let server = aifm_server::Server::bind(aifm_server::Config {
///     listen: "127.0.0.1:0".into(),
///     ..Default::default()
/// })
/// .unwrap();
/// let stop = server.shutdown_handle();
/// let t = std::thread::spawn(move || server.run().unwrap());
/// stop.shutdown();
/// t.join().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ShutdownHandle(Arc<AtomicBool>);

impl ShutdownHandle {
    /// Starts a graceful shutdown: no new connections; open ones are told and closed.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// let stop = server.shutdown_handle();
    /// stop.shutdown();
    /// assert!(stop.is_shutdown());
    /// server.run().unwrap(); // returns at once
    /// ```
    pub fn shutdown(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a shutdown was asked for.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// assert!(!server.shutdown_handle().is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, for `signal_hook::flag::register`.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// let flag = server.shutdown_handle().flag();
    /// // e.g. signal_hook::flag::register(SIGTERM, flag.clone())
    /// flag.store(true, std::sync::atomic::Ordering::SeqCst);
    /// assert!(server.shutdown_handle().is_shutdown());
    /// ```
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// Refuses settings no server can run with.
fn check(config: &Config) -> io::Result<()> {
    if config.capacity == 0 || config.max_frame < 64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "capacity must be positive and max_frame at least 64 bytes",
        ));
    }
    Ok(())
}

/// State shared by the accept loop, the connections and the housekeeper.
pub(crate) struct Shared {
    pub engine: Engine,
    pub sessions: Sessions,
    pub counters: Counters,
    pub shutdown: ShutdownHandle,
    pub token: Option<Vec<u8>>,
    pub client_quota: u64,
    pub max_frame: u32,
    pub spin: Duration,
    pub handshake_timeout: Duration,
    pub frame_timeout: Duration,
    /// `None`: connections may idle for ever.
    pub idle_timeout: Option<Duration>,
    pub max_in_flight: usize,
    pub max_sessions: usize,
    pub table: ConnTable,
    pub spinners: AtomicUsize,
    pub max_spinners: usize,
    pub connections: AtomicU64,
    pub started: Instant,
}

impl Shared {
    /// The server's state for `config`: its engine (with `config.devices` registered), one
    /// pool of `config.capacity` bytes for all namespaces, the server's [`Limits`].
    fn new(config: Config) -> Shared {
        let engine = Engine::with_limits(config.capacity, Limits::server(config.max_frame));
        for register in &config.devices {
            register(engine.registry());
        }
        let cores = thread::available_parallelism().map_or(2, |n| n.get());
        Shared {
            engine,
            sessions: Sessions::default(),
            counters: Counters::default(),
            shutdown: ShutdownHandle(Arc::new(AtomicBool::new(false))),
            token: config.token,
            client_quota: config.client_quota.unwrap_or(config.capacity),
            max_frame: config.max_frame,
            spin: config.spin,
            handshake_timeout: config.handshake_timeout,
            frame_timeout: config.frame_timeout,
            idle_timeout: Some(config.idle_timeout).filter(|d| !d.is_zero()),
            max_in_flight: config.max_in_flight.max(1),
            max_sessions: config.max_sessions.max(1),
            table: ConnTable::new(ConnLimits {
                max_connections: config.max_connections.max(1),
                max_per_ip: config.max_connections_per_ip.max(1),
                evict_after: config.evict_idle_after,
            }),
            spinners: AtomicUsize::new(0),
            max_spinners: (cores - 1).max(1),
            connections: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// The capacity shared by all namespaces.
    fn capacity(&self) -> u64 {
        self.engine.pool().map_or(u64::MAX, |p| p.capacity())
    }

    pub fn stats(&self) -> ServerStats {
        let (sessions, structures, stored) = self.sessions.totals();
        ServerStats {
            connections: self.connections.load(Ordering::Relaxed),
            sessions,
            structures,
            stored_bytes: stored,
            capacity_bytes: self.capacity(),
            requests: self.counters.requests(),
            errors: self.counters.errors.load(Ordering::Relaxed),
            protocol_errors: self.counters.protocol_errors.load(Ordering::Relaxed),
            auth_failures: self.counters.auth_failures.load(Ordering::Relaxed),
            reclaimed_sessions: self.counters.reclaimed.load(Ordering::Relaxed),
            uptime_ms: self.started.elapsed().as_millis() as u64,
        }
    }

    /// Logs, counts and frees a session taken out of the table.
    fn reclaimed(
        &self,
        id: aifm_core::wire::SessionId,
        ns: Arc<aifm_core::engine::Namespace>,
        why: &str,
    ) {
        // The id only at debug level (see `conn`).
        tracing::info!(bytes = ns.stored_bytes(), "{why}");
        tracing::debug!(session = %id, "session reclaimed");
        self.counters.reclaimed.fetch_add(1, Ordering::Relaxed);
        drop(ns); // clears its structures
    }

    /// Reclaims expired sessions (dropping a namespace gives all its charges back).
    fn housekeep(&self, grace: Duration) {
        let reclaimed = self.sessions.reap(grace);
        for (id, ns) in reclaimed {
            self.reclaimed(id, ns, "session reclaimed after the grace period");
        }
    }
}

/// A bound, not yet running, memory server.
///
/// # Examples
///
/// ```
/// let server = aifm_server::Server::bind(aifm_server::Config {
///     listen: "127.0.0.1:0".into(),
///     ..Default::default()
/// })
/// .unwrap();
/// assert!(server.local_addr().ip().is_loopback());
/// assert_eq!(server.stats().connections, 0);
/// ```
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    grace: Duration,
    stats_interval: Option<Duration>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Server {
    /// Binds the listening socket and builds the engine (running `config.devices`).
    ///
    /// # Errors
    /// The address does not resolve or cannot be bound; a zero capacity or frame size.
    ///
    /// # Examples
    ///
    /// ```
    /// let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let taken = busy.local_addr().unwrap().to_string();
    /// let e = aifm_server::Server::bind(aifm_server::Config { listen: taken, ..Default::default() });
    /// assert!(e.is_err());
    /// ```
    pub fn bind(config: Config) -> io::Result<Server> {
        check(&config)?;
        let addrs: Vec<SocketAddr> = config.listen.to_socket_addrs()?.collect();
        let listener = TcpListener::bind(&addrs[..])?;
        let (grace, stats_interval) = (config.grace, config.stats_interval);
        let shared = Arc::new(Shared::new(config));
        Ok(Server {
            listener,
            shared,
            grace,
            stats_interval: stats_interval.filter(|d| !d.is_zero()),
        })
    }

    /// The address actually bound (useful with port 0).
    ///
    /// # Panics
    /// If the socket cannot report its address (it always can once bound).
    ///
    /// # Examples
    ///
    /// ```
    /// let server = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// assert_ne!(server.local_addr().port(), 0);
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// A handle that stops [`Server::run`].
    ///
    /// # Examples
    ///
    /// ```
    /// let server = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// let h = server.shutdown_handle();
    /// # let _ = h;
    /// ```
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shared.shutdown.clone()
    }

    /// The server's statistics now.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// assert_eq!(server.stats().capacity_bytes, 8 << 30);
    /// ```
    pub fn stats(&self) -> ServerStats {
        self.shared.stats()
    }

    /// The device registry of this server's engine (to register more device types).
    ///
    /// # Examples
    ///
    /// ```
    /// let server = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// assert!(server.registry().contains(aifm_core::backend::OBJECT_STORE_DEVICE));
    /// ```
    pub fn registry(&self) -> &DeviceRegistry {
        self.shared.engine.registry()
    }

    /// Serves until shut down, then closes every connection and returns the final statistics.
    ///
    /// # Errors
    /// Only when the listening socket cannot be configured.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// let stop = server.shutdown_handle();
    /// let t = std::thread::spawn(move || server.run());
    /// stop.shutdown();
    /// let final_stats = t.join().unwrap().unwrap();
    /// assert_eq!(final_stats.connections, 0);
    /// ```
    pub fn run(self) -> io::Result<ServerStats> {
        self.listener.set_nonblocking(true)?;
        let shared = self.shared.clone();
        tracing::info!(
            addr = %self.local_addr(),
            capacity = shared.capacity(),
            client_quota = shared.client_quota,
            auth = shared.token.is_some(),
            "aifm-server serving"
        );
        let keeper = {
            let shared = shared.clone();
            let (grace, every) = (self.grace, self.stats_interval);
            thread::Builder::new()
                .name("aifm-housekeeper".into())
                .spawn(move || housekeeper(&shared, grace, every))?
        };
        let mut conns: Vec<JoinHandle<()>> = Vec::new();
        let mut next_id = 0u64;
        while !shared.shutdown.is_shutdown() {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    conns.retain(|h| !h.is_finished());
                    next_id += 1;
                    let id = next_id;
                    let slot = match shared.table.admit(id, peer.ip()) {
                        Ok(slot) => slot,
                        Err(why) => {
                            tracing::warn!(%peer, "connection refused: {why}");
                            conn::refuse(stream, why, wire::HANDSHAKE_MAX_FRAME);
                            continue;
                        }
                    };
                    let shared = shared.clone();
                    let table = shared.clone();
                    match thread::Builder::new()
                        .name(format!("aifm-conn-{id}"))
                        .spawn(move || conn::serve(shared, stream, peer, slot))
                    {
                        Ok(h) => conns.push(h),
                        Err(e) => {
                            table.table.remove(id);
                            tracing::error!(%peer, "cannot start a connection thread: {e}");
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn::poll_fd(
                        self.listener.as_raw_fd(),
                        libc::POLLIN,
                        Duration::from_millis(100),
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors and the like: wait for connections to close.
                    tracing::warn!("accept failed: {e}");
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
        tracing::info!(connections = conns.len(), "shutting down");
        drop(self.listener);
        for h in conns {
            let _ = h.join();
        }
        let _ = keeper.join();
        let stats = shared.stats();
        tracing::info!("final {}", stats::line(&stats));
        Ok(stats)
    }

    /// Runs the server on a background thread.
    ///
    /// # Errors
    /// When the thread cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// let running = server.spawn().unwrap();
    /// assert!(running.addr().ip().is_loopback());
    /// ```
    pub fn spawn(self) -> io::Result<RunningServer> {
        let addr = self.local_addr();
        let handle = self.shutdown_handle();
        let shared = self.shared.clone();
        let thread = thread::Builder::new()
            .name("aifm-server".into())
            .spawn(move || self.run())?;
        Ok(RunningServer {
            addr,
            handle,
            shared,
            thread: Some(thread),
        })
    }
}

/// A server running on a background thread ([`Server::spawn`]); stopped when dropped.
///
/// # Examples
///
/// ```
/// let running = aifm_server::Server::bind(aifm_server::Config {
///     listen: "127.0.0.1:0".into(),
///     ..Default::default()
/// })
/// .unwrap()
/// .spawn()
/// .unwrap();
/// assert_eq!(running.stats().sessions, 0);
/// let _final_stats = running.stop();
/// ```
pub struct RunningServer {
    addr: SocketAddr,
    handle: ShutdownHandle,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<ServerStats>>>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// The address clients connect to.
    ///
    /// # Examples
    ///
    /// ```
    /// let running = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap()
    /// .spawn()
    /// .unwrap();
    /// let far = aifm_core::backend::tcp::TcpBackend::connect(&running.addr().to_string()).unwrap();
    /// far.ping().unwrap();
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's statistics now.
    ///
    /// # Examples
    ///
    /// ```
    /// let running = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap()
    /// .spawn()
    /// .unwrap();
    /// assert_eq!(running.stats().connections, 0);
    /// ```
    pub fn stats(&self) -> ServerStats {
        self.shared.stats()
    }

    /// A handle that stops the server.
    ///
    /// # Examples
    ///
    /// ```
    /// let running = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap()
    /// .spawn()
    /// .unwrap();
    /// running.shutdown_handle().shutdown(); // stops it; `stop` would also wait
    /// ```
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Shuts down gracefully and returns the final statistics.
    ///
    /// # Examples
    ///
    /// ```
    /// let running = aifm_server::Server::bind(aifm_server::Config {
    ///     listen: "127.0.0.1:0".into(),
    ///     ..Default::default()
    /// })
    /// .unwrap()
    /// .spawn()
    /// .unwrap();
    /// let stats = running.stop();
    /// assert_eq!(stats.requests.total(), 0);
    /// ```
    pub fn stop(mut self) -> ServerStats {
        self.finish()
    }

    fn finish(&mut self) -> ServerStats {
        self.handle.shutdown();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(stats))) => stats,
            _ => self.shared.stats(),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.finish();
        }
    }
}

fn housekeeper(shared: &Shared, grace: Duration, every: Option<Duration>) {
    let tick = (grace / 4).clamp(Duration::from_millis(10), Duration::from_millis(100));
    let mut last_log = Instant::now();
    while !shared.shutdown.is_shutdown() {
        thread::sleep(tick);
        shared.housekeep(grace);
        if let Some(every) = every {
            if last_log.elapsed() >= every {
                last_log = Instant::now();
                tracing::info!("{}", stats::line(&shared.stats()));
            }
        }
    }
}

/// Parses a duration as the `humantime` crate reads one (`"30s"`, `"500ms"`, `"250us"`,
/// `"2m"`, `"1h 30m"`), or plain seconds (`"5"`).
///
/// # Examples
///
/// ```
/// use aifm_server::parse_duration;
/// use std::time::Duration;
/// assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
/// assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
/// assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
/// assert_eq!(parse_duration("soon"), None);
/// ```
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    match s.parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(s).ok(),
    }
}

/// Turns a `--listen` value into `host:port`: a bare host or IP gets [`DEFAULT_PORT`].
///
/// # Examples
///
/// ```
/// use aifm_server::listen_address;
/// assert_eq!(listen_address("127.0.0.1"), "127.0.0.1:7411");
/// assert_eq!(listen_address("::1"), "[::1]:7411");
/// assert_eq!(listen_address("[::1]"), "[::1]:7411");
/// assert_eq!(listen_address("localhost"), "localhost:7411");
/// assert_eq!(listen_address("0.0.0.0:9000"), "0.0.0.0:9000");
/// ```
pub fn listen_address(s: &str) -> String {
    let s = s.trim();
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return SocketAddr::new(ip, DEFAULT_PORT).to_string();
    }
    if s.starts_with('[') && s.ends_with(']') {
        return format!("{s}:{DEFAULT_PORT}");
    }
    if s.contains(':') {
        s.to_string()
    } else {
        format!("{s}:{DEFAULT_PORT}")
    }
}
