//! The settings of a TCP backend, where they come from (code or `AIFM_*` variables), and
//! [`TcpBuilder::connect`], which makes the first connection and the client state that
//! outlives it.

use super::client::{session_lost, Client, Reconnect};
use super::handshake::handshake;
use super::TcpBackend;
use crate::backend::env::env_number;
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::wire::{self, auth, ResumeTicket};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

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
    pub(super) addr: String,
    pub(super) token: Option<Vec<u8>>,
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) spin: Duration,
    pub(super) max_frame: u32,
    pub(super) reconnect: bool,
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
