//! The server's state and its budget: one [`Shared`] per server, behind an `Arc` held by
//! the accept loop, every connection thread and the housekeeper.
//!
//! It owns the engine (whose pool is the capacity all namespaces share), the session
//! table, the counters, the connection table and the limits copied out of the
//! [`Config`]. Budget: each namespace is charged against its own quota
//! (`client_quota`) and the shared pool at once; a reclaimed session drops its namespace,
//! which gives every charge back ([`Shared::housekeep`], run by [`housekeeper`] every
//! quarter grace period, clamped to 10–100 ms). [`Shared::stats`] is the one place the
//! [`ServerStats`] a client or the log sees are assembled.

use crate::limits::{ConnLimits, ConnTable};
use crate::sessions::Sessions;
use crate::stats::{self, Counters};
use crate::{Config, ServerStats, ShutdownHandle};
use aifm_core::engine::{Engine, Limits};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

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
    pub(crate) fn new(config: Config) -> Shared {
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
    pub(crate) fn capacity(&self) -> u64 {
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
    pub(crate) fn reclaimed(
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

/// Reclaims expired sessions every quarter grace period and logs the statistics line every
/// `every`, until shutdown.
pub(crate) fn housekeeper(shared: &Shared, grace: Duration, every: Option<Duration>) {
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
