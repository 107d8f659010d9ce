//! One client connection: the handshake (in [`handshake`]), then the request loop, under the
//! deadlines of [`Wait`] and the connection table's eviction (see [`crate::limits`]).

mod handshake;

use crate::limits::Slot;
use crate::shared::Shared;
use aifm_core::engine::Namespace;
pub(crate) use aifm_core::wire::poll_fd;
use aifm_core::wire::{self, FrameReader, ServerMsg, SessionId, WireError};
use aifm_core::{Error, Result};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Answers are sent once this many bytes are waiting, even mid-batch.
const FLUSH_AT: usize = 256 << 10;

/// Longest single sleep in `poll(2)`, so shutdown is noticed.
const NAP: Duration = Duration::from_millis(100);

/// How long a fatal error frame may take to leave.
const FATAL_SEND: Duration = Duration::from_secs(1);

/// Turns a connection away before its handshake with a fatal frame (best effort).
pub(crate) fn refuse(stream: TcpStream, why: &str, max_frame: u32) {
    let mut out = Vec::new();
    let msg = ServerMsg::Fatal(WireError::Shutdown(why.into()));
    if wire::encode_frame(&msg, &mut out, max_frame).is_ok() {
        let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
        let _ = (&stream).write_all(&out);
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Why a connection ended.
enum End {
    /// The client closed it.
    Closed,
    /// The server is shutting down.
    Shutdown,
    /// The socket failed.
    Io(io::Error),
    /// The client broke the protocol or failed to log in (a fatal frame was sent).
    Refused(String),
    /// Closed by a limit: idle too long, or evicted to make room (a fatal frame was sent).
    Limit(&'static str),
}

/// What the connection waits for in [`Conn::fill`], and until when.
#[derive(Clone, Copy)]
enum Wait {
    /// A handshake message, until the handshake deadline.
    Handshake(Instant),
    /// The rest of a frame that has begun, until the frame deadline.
    Frame(Instant),
    /// A next request, until the idle deadline (`None`: for ever).
    Idle(Option<Instant>),
}

struct Conn<'s> {
    shared: &'s Shared,
    /// The connection's entry in the connection table (its number is in log lines).
    slot: Arc<Slot>,
    stream: TcpStream,
    fd: RawFd,
    rd: FrameReader,
    out: Vec<u8>,
    /// Holds one of the server's spinner slots.
    spinning: bool,
}

/// Undoes what a connection holds however its thread ends, a panic included: its session's
/// attachment, its table slot and its count.
struct Held<'s> {
    shared: &'s Shared,
    id: u64,
    session: Option<SessionId>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.shared.sessions.detach(s);
            tracing::debug!(conn = self.id, session = %s, "session detached");
        }
        self.shared.table.remove(self.id);
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection to its end.
pub(crate) fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, slot: Arc<Slot>) {
    let id = slot.id;
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let mut held = Held {
        shared: &shared,
        id,
        session: None,
    };
    tracing::debug!(conn = id, %peer, "connected");
    let outcome = match stream.set_nodelay(true).and(stream.set_nonblocking(true)) {
        Ok(()) => {
            let mut c = Conn {
                shared: &shared,
                slot,
                fd: stream.as_raw_fd(),
                stream,
                // Until the login, frames are the handshake's few dozen bytes.
                rd: FrameReader::new(wire::HANDSHAKE_MAX_FRAME),
                out: Vec::new(),
                spinning: false,
            };
            let r = c.run(&mut held.session);
            c.stop_spinning();
            r
        }
        Err(e) => Err(End::Io(e)),
    };
    match outcome {
        Ok(()) | Err(End::Closed) => tracing::debug!(conn = id, %peer, "client disconnected"),
        Err(End::Shutdown) => tracing::debug!(conn = id, %peer, "closed for shutdown"),
        Err(End::Io(e)) => tracing::info!(conn = id, %peer, "connection failed: {e}"),
        Err(End::Refused(why)) => {
            tracing::warn!(conn = id, %peer, "connection closed: {why}");
        }
        Err(End::Limit(why)) => tracing::info!(conn = id, %peer, "connection closed: {why}"),
    }
}

impl Conn<'_> {
    fn run(&mut self, session: &mut Option<SessionId>) -> Result<(), End> {
        let (id, ns) = self.handshake()?;
        *session = Some(id);
        self.shared.table.touch(&self.slot);
        self.rd.set_max_frame(self.shared.max_frame);
        let mut last_request = Instant::now();
        // When the partial frame in the reader (if any) began, as far as we can tell: the
        // read that brought its first bytes ended no later than this.
        let mut frame_began: Option<Instant> = None;
        loop {
            self.slot.set_busy(true);
            let mut answered = 0;
            loop {
                match answer_buffered(self.shared, &ns, &mut self.rd, &mut self.out) {
                    Ok((n, more)) => {
                        answered += n;
                        self.flush()?;
                        if !more {
                            break;
                        }
                    }
                    Err(e) => return Err(self.fatal(e)),
                }
            }
            let now = Instant::now();
            if answered > 0 {
                last_request = now;
                self.shared.table.touch(&self.slot);
            }
            if answered > 0 || frame_began.is_none() || !self.rd.has_partial() {
                frame_began = self.rd.has_partial().then_some(now);
            }
            self.slot.set_busy(false);
            let wait = match frame_began {
                Some(t) => Wait::Frame(t + self.shared.frame_timeout),
                None => Wait::Idle(self.shared.idle_timeout.map(|d| last_request + d)),
            };
            self.fill(wait)?;
        }
    }

    fn send(&mut self, msg: &ServerMsg<'_>) -> Result<(), End> {
        wire::encode_frame(msg, &mut self.out, self.shared.max_frame)
            .map_err(|e| End::Refused(e.to_string()))?;
        self.flush()
    }

    /// Sends `e` as a fatal frame (best effort) and ends the connection.
    fn fatal(&mut self, e: Error) -> End {
        if !matches!(e, Error::AuthFailed(_)) {
            self.shared
                .counters
                .protocol_errors
                .fetch_add(1, Ordering::Relaxed);
        }
        self.last_word(WireError::from(&e));
        End::Refused(e.to_string())
    }

    /// Closes the connection for a limit (idle, evicted), telling the client why.
    fn limit(&mut self, why: &'static str) -> End {
        self.last_word(WireError::Shutdown(why.into()));
        End::Limit(why)
    }

    /// Sends a fatal frame (best effort, for at most [`FATAL_SEND`]) and shuts the socket's
    /// sending side.
    fn last_word(&mut self, e: WireError) {
        self.out.clear();
        let _ = wire::encode_frame(&ServerMsg::Fatal(e), &mut self.out, self.shared.max_frame);
        let deadline = Instant::now() + FATAL_SEND;
        let mut rest = &self.out[..];
        while !rest.is_empty() && Instant::now() < deadline {
            match (&self.stream).write(rest) {
                Ok(0) => break,
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    poll_fd(self.fd, libc::POLLOUT, Duration::from_millis(10));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.out.clear();
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    fn try_spin(&mut self) -> bool {
        if !self.spinning {
            let max = self.shared.max_spinners;
            self.spinning = self
                .shared
                .spinners
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok();
        }
        self.spinning
    }

    fn stop_spinning(&mut self) {
        if self.spinning {
            self.spinning = false;
            self.shared.spinners.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Reads at least once: polls for `spin`, then sleeps in `poll(2)` until bytes come,
    /// the wait's deadline passes, the server shuts down or the connection is evicted. After
    /// one nap without bytes the connection gives back its receive buffer, so an idle
    /// connection holds none.
    fn fill(&mut self, wait: Wait) -> Result<(), End> {
        let spin_until = Instant::now() + self.shared.spin;
        let mut napped = false;
        loop {
            match self.rd.read_from(&self.stream) {
                Ok(0) if self.rd.has_partial() => {
                    return Err(self.fatal(Error::Protocol(format!(
                        "truncated frame: the stream ended {} bytes into it",
                        self.rd.buffered()
                    ))))
                }
                Ok(0) => return Err(End::Closed),
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now < spin_until && self.try_spin() {
                        std::thread::yield_now();
                        continue;
                    }
                    self.stop_spinning();
                    self.check_shutdown()?;
                    if self.slot.evicted() {
                        return Err(self.limit(
                            "closed to make room for another connection: this one was idle",
                        ));
                    }
                    match wait {
                        Wait::Handshake(d) if now >= d => {
                            return Err(self.fatal(Error::Protocol(
                                "no login within the handshake timeout".into(),
                            )))
                        }
                        Wait::Frame(d) if now >= d => {
                            return Err(self.fatal(Error::Protocol(
                                "a frame did not arrive within the frame timeout".into(),
                            )))
                        }
                        Wait::Idle(Some(d)) if now >= d => {
                            return Err(self.limit("closed after the idle timeout"))
                        }
                        _ => {}
                    }
                    if napped {
                        self.rd.release();
                        self.out = Vec::new();
                    }
                    poll_fd(self.fd, libc::POLLIN, NAP);
                    napped = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Io(e)),
            }
        }
    }

    fn check_shutdown(&mut self) -> Result<(), End> {
        if self.shared.shutdown.is_shutdown() {
            self.out.clear();
            let _ = wire::encode_frame(
                &ServerMsg::Fatal(WireError::Shutdown("the server is shutting down".into())),
                &mut self.out,
                self.shared.max_frame,
            );
            let _ = (&self.stream).write(&self.out);
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
            return Err(End::Shutdown);
        }
        Ok(())
    }

    /// Sends everything in `out` within the frame timeout. While the client's window is
    /// full, keeps reading its requests (up to one frame's worth and `max_in_flight`
    /// requests) so a pipelining client cannot deadlock against us.
    fn flush(&mut self) -> Result<(), End> {
        let deadline = Instant::now() + self.shared.frame_timeout;
        let read_ahead = wire::LEN_PREFIX + self.shared.max_frame as usize;
        let mut sent = 0;
        while sent < self.out.len() {
            match (&self.stream).write(&self.out[sent..]) {
                Ok(0) => return Err(End::Closed),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.rd.buffered() < read_ahead
                        && self.rd.complete_frames(self.shared.max_in_flight)
                            < self.shared.max_in_flight
                    {
                        match self.rd.read_from(&self.stream) {
                            Ok(0) => return Err(End::Closed),
                            Ok(_) => continue,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(End::Io(e)),
                        }
                    }
                    self.check_shutdown()?;
                    if Instant::now() >= deadline {
                        // The pipe is full: no fatal frame can get through.
                        let _ = self.stream.shutdown(std::net::Shutdown::Both);
                        return Err(End::Refused(
                            "the client did not read its answers within the frame timeout".into(),
                        ));
                    }
                    poll_fd(self.fd, libc::POLLOUT, Duration::from_millis(10));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Io(e)),
            }
        }
        self.out.clear();
        if self.out.capacity() > 1 << 20 {
            self.out = Vec::new(); // give back the room a huge answer needed once
        }
        Ok(())
    }
}

/// Answers the complete requests in `rd` into `out`. Returns how many it answered and
/// whether it stopped early to let `out` be sent (more requests may be buffered): after
/// [`FLUSH_AT`] bytes of answers or `max_in_flight` answers.
///
/// # Errors
/// A frame that cannot be read at all (oversized, or no request id): the connection must end.
fn answer_buffered(
    shared: &Shared,
    ns: &Namespace,
    rd: &mut FrameReader,
    out: &mut Vec<u8>,
) -> Result<(usize, bool)> {
    let mut answered = 0;
    while let Some(body) = rd.next_frame()? {
        answered += 1;
        crate::dispatch::answer(shared, ns, body, out)?;
        if out.len() >= FLUSH_AT || answered >= shared.max_in_flight {
            return Ok((answered, true));
        }
    }
    Ok((answered, false))
}
