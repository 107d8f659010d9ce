//! The `aifm-server` binary: the far-memory server's command line.

#![forbid(unsafe_code)]

use aifm_core::runtime::parse_size;
use aifm_server::{listen_address, parse_duration, Config, Registration, Server};
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Device types this binary hosts besides the core's object store: the server-side halves of
/// the `aifm-collections` structures (vector offloads, hash-map lookups).
const DEVICES: &[Registration] = &[aifm_collections::register_devices];

/// A far-memory server for aifm-rs: clients keep their evicted objects here, each in its own
/// namespace, and run data-structure code next to the data.
///
/// Clients connect with `Runtime::builder().server("HOST:PORT")` or `AIFM_SERVER=HOST:PORT`;
/// a client proves a token with `AIFM_TOKEN_FILE=PATH`. Stop with Ctrl-C or SIGTERM (a second
/// Ctrl-C exits at once).
#[derive(Debug, Parser)]
#[command(name = "aifm-server", version)]
struct Args {
    /// Address to listen on: `HOST:PORT`, or a bare host/IP for port 7411. The default accepts
    /// loopback connections only; bind another address only on a network you trust, and use
    /// --token-file there. Port 0 picks a free port (printed on start).
    #[arg(short, long, default_value = "127.0.0.1", value_name = "ADDR")]
    listen: String,

    /// Far memory this server holds over all clients, e.g. `8GiB`, `512MiB`, `4096`.
    #[arg(short, long, default_value = "8GiB", value_parser = size, value_name = "SIZE")]
    capacity: u64,

    /// Most far memory one client may use (default: the whole capacity).
    #[arg(long, value_parser = size, value_name = "SIZE")]
    client_quota: Option<u64>,

    /// File holding a shared secret that clients must prove before they are served. The proof
    /// is an HMAC of a fresh random challenge: the token itself never crosses the network.
    /// Surrounding whitespace in the file is ignored.
    #[arg(short, long, value_name = "PATH")]
    token_file: Option<PathBuf>,

    /// Log level: error, warn, info, debug or trace. Logs go to standard error.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log_level: tracing::Level,

    /// How long a disconnected client's namespace is kept for it to reconnect and resume
    /// (`30s`, `500ms`, `5m`); after it, its objects are freed.
    #[arg(long, default_value = "30s", value_parser = duration, value_name = "TIME")]
    grace: Duration,

    /// Interval of the statistics log line (`0` for none).
    #[arg(long, default_value = "60s", value_parser = duration, value_name = "TIME")]
    stats_interval: Duration,

    /// Largest frame (message) accepted from a client, e.g. `64MiB`.
    #[arg(long, default_value = "64MiB", value_parser = frame_size, value_name = "SIZE")]
    max_frame: u32,

    /// How long a connection polls for the next request before it sleeps (`100us`; `0` to
    /// sleep at once). Polling saves a thread wake-up per request on a busy connection.
    #[arg(long, default_value = "100us", value_parser = duration, value_name = "TIME")]
    spin: Duration,

    /// Connections served at once (one thread each). At the limit the connection that has
    /// gone longest without a request makes room if it has been quiet for
    /// --evict-idle-after; otherwise the newcomer is refused.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_connections: usize,

    /// Connections one peer address may hold at once (the same rule applies at this limit).
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_connections_per_ip: usize,

    /// Sessions held at once, with or without a connection (an empty one costs about 4 KiB
    /// and outlives its connection for --grace). At the cap a new session takes the place of
    /// the one that has waited longest for its client; when all have connections, logins
    /// are refused.
    #[arg(long, default_value_t = 16384, value_name = "N")]
    max_sessions: usize,

    /// How long a connection must have gone without a request before it may be closed to
    /// make room at a connection limit (its client resumes its session on its next call).
    #[arg(long, default_value = "1s", value_parser = duration, value_name = "TIME")]
    evict_idle_after: Duration,

    /// How long a new connection may take to log in.
    #[arg(long, default_value = "5s", value_parser = duration, value_name = "TIME")]
    handshake_timeout: Duration,

    /// How long a frame may take to arrive once it has begun, and a batch of answers to be
    /// read by the client: slower clients are cut off.
    #[arg(long, default_value = "30s", value_parser = duration, value_name = "TIME")]
    frame_timeout: Duration,

    /// How long a logged-in connection may go without a request before it is closed (`0`
    /// for never); its session stays for the grace period.
    #[arg(long, default_value = "5m", value_parser = duration, value_name = "TIME")]
    idle_timeout: Duration,

    /// Requests one connection may have read but not yet answered: past it the server stops
    /// reading that connection until its answers drain.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_in_flight: usize,
}

fn size(s: &str) -> Result<u64, String> {
    parse_size(s)
        .map(|n| n as u64)
        .ok_or_else(|| format!("{s:?} is not a size (try 8GiB, 512MiB or 4096)"))
}

fn frame_size(s: &str) -> Result<u32, String> {
    let n = size(s)?;
    u32::try_from(n)
        .ok()
        .filter(|&n| n >= 64)
        .ok_or_else(|| format!("{s:?} must be between 64 bytes and 4GiB"))
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration (try 30s, 500ms or 5m)"))
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(args) {
        tracing::error!("{e}");
        eprintln!("aifm-server: {e}");
        std::process::exit(1);
    }
}

#[allow(clippy::needless_update)] // `..Config::default()`: see below
fn run(args: Args) -> Result<(), String> {
    let token = match &args.token_file {
        Some(path) => {
            Some(aifm_core::wire::auth::read_token_file(path).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let listen = listen_address(&args.listen);
    let config = Config {
        listen: listen.clone(),
        capacity: args.capacity,
        client_quota: args.client_quota,
        token,
        grace: args.grace,
        stats_interval: Some(args.stats_interval).filter(|d| !d.is_zero()),
        max_frame: args.max_frame,
        spin: args.spin,
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        max_sessions: args.max_sessions,
        evict_idle_after: args.evict_idle_after,
        handshake_timeout: args.handshake_timeout,
        frame_timeout: args.frame_timeout,
        idle_timeout: args.idle_timeout,
        max_in_flight: args.max_in_flight,
        devices: DEVICES.to_vec(),
        // Every field has a flag today; settings added later start at their defaults.
        ..Config::default()
    };
    let server = Server::bind(config).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let flag = server.shutdown_handle().flag();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while shutting down exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 1, flag.clone())
            .and_then(|_| signal_hook::flag::register(sig, flag.clone()))
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    }
    let addr = server.local_addr();
    if !addr.ip().is_loopback() && args.token_file.is_none() {
        tracing::warn!(%addr, "listening beyond loopback without a token: anyone who can reach this port can use it");
    }
    // The first line on stdout names the address (scripts and tests read it).
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "aifm-server listening on {addr}");
    let _ = out.flush();
    drop(out);
    server.run().map_err(|e| e.to_string())?;
    Ok(())
}
