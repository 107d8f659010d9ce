//! # aifm-server: the far-memory server
//!
//! A TCP front end over the core's [`Engine`](aifm_core::engine::Engine): clients (the
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
//!   [`aifm_core::engine::quota`]). The limits are [`Limits::server`](aifm_core::engine::Limits::server) of the frame size.
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
//!
//! # Where things live
//!
//! `config` holds the settings ([`Config`]), `shutdown` the stop flag, `shared` the state one
//! server's threads share (engine, budget, sessions, counters), `server` the accept loop,
//! `conn` one connection's thread, `dispatch` one request, `limits` the connection table,
//! `sessions` the session table, `stats` the counters and the log line.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod conn;
pub mod dispatch;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod limits;
mod server;
mod sessions;
mod shared;
mod shutdown;
mod stats;

pub use aifm_core::wire::ServerStats;
pub use config::{listen_address, parse_duration, Config, Registration, DEFAULT_PORT};
pub use dispatch::{Dispatcher, Session};
pub use server::{RunningServer, Server};
pub use shutdown::ShutdownHandle;
