//! Server settings and the parsing of their command-line forms.
//!
//! [`Config`] is every knob the server has, with the defaults `docs/SECURITY.md` argues;
//! [`check`] refuses the settings no server can run with (both [`Server::bind`](crate::Server::bind)
//! and [`Dispatcher::new`](crate::Dispatcher::new) call it, so the two agree). The binary's
//! flags reach it through [`parse_duration`] and [`listen_address`]. Nothing here holds
//! state: a `Config` is consumed by [`Shared::new`](crate::shared::Shared::new).

use aifm_core::engine::DeviceRegistry;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

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

/// Refuses settings no server can run with.
pub(crate) fn check(config: &Config) -> io::Result<()> {
    if config.capacity == 0 || config.max_frame < 64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "capacity must be positive and max_frame at least 64 bytes",
        ));
    }
    Ok(())
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
