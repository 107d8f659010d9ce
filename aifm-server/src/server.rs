//! The running server: [`Server`] binds the socket and builds the [`Shared`] state,
//! [`Server::run`] is the accept loop, [`RunningServer`] is the same on a thread of its own.
//!
//! The accept loop is the only thread that admits connections: it asks the connection
//! table for a slot (which may evict the stalest connection, or refuse with a fatal
//! frame), then starts one thread per connection ([`conn::serve`](crate::conn)). It polls
//! the non-blocking listener at most every 100 ms so it notices a shutdown; on one it
//! stops accepting, joins every connection thread and the housekeeper, and returns the
//! final statistics.

use crate::shared::{housekeeper, Shared};
use crate::stats;
use crate::{conn, Config, ServerStats, ShutdownHandle};
use aifm_core::engine::DeviceRegistry;
use aifm_core::wire;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

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
        crate::config::check(&config)?;
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
