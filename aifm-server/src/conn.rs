//! One client connection: the handshake, then the request loop.

use crate::Shared;
use aifm_core::engine::Namespace;
pub(crate) use aifm_core::wire::poll_fd;
use aifm_core::wire::{
    self, auth, Challenge, ClientHello, FrameReader, Login, ServerMsg, SessionId, Welcome,
    WireError,
};
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
}

struct Conn<'s> {
    shared: &'s Shared,
    stream: TcpStream,
    fd: RawFd,
    rd: FrameReader,
    out: Vec<u8>,
    /// Holds one of the server's spinner slots.
    spinning: bool,
}

/// Serves one connection to its end.
pub(crate) fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, id: u64) {
    shared.connections.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(conn = id, %peer, "connected");
    let mut session = None;
    let outcome = match stream.set_nodelay(true).and(stream.set_nonblocking(true)) {
        Ok(()) => {
            let mut c = Conn {
                shared: &shared,
                fd: stream.as_raw_fd(),
                stream,
                rd: FrameReader::new(shared.max_frame),
                out: Vec::new(),
                spinning: false,
            };
            let r = c.run(&mut session);
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
    }
    if let Some(s) = session {
        shared.sessions.detach(s);
        tracing::debug!(conn = id, session = %s, "session detached");
    }
    shared.connections.fetch_sub(1, Ordering::Relaxed);
}

impl Conn<'_> {
    fn run(&mut self, session: &mut Option<SessionId>) -> Result<(), End> {
        let (id, ns) = self.handshake()?;
        *session = Some(id);
        loop {
            loop {
                let more = answer_buffered(self.shared, &ns, &mut self.rd, &mut self.out);
                match more {
                    Ok(more) => {
                        self.flush()?;
                        if !more {
                            break;
                        }
                    }
                    Err(e) => return Err(self.fatal(e)),
                }
            }
            self.fill(None)?;
        }
    }

    fn handshake(&mut self) -> Result<(SessionId, Arc<Namespace>), End> {
        let shared = self.shared;
        let deadline = Some(Instant::now() + shared.handshake_timeout);
        let hello: ClientHello = self.read_msg(deadline)?;
        if hello.magic != wire::MAGIC {
            return Err(self.fatal(Error::Protocol("not an aifm client (bad magic)".into())));
        }
        if hello.version != wire::VERSION {
            return Err(self.fatal(Error::Protocol(format!(
                "protocol version {} is not supported (this server speaks {})",
                hello.version,
                wire::VERSION
            ))));
        }
        let nonce = shared
            .token
            .as_ref()
            .map(|_| crate::sessions::random::<32>());
        self.send(&ServerMsg::Challenge(Challenge {
            version: wire::VERSION,
            nonce,
            max_frame: shared.max_frame,
        }))?;
        let login: Login = self.read_msg(deadline)?;
        if let (Some(token), Some(nonce)) = (&shared.token, nonce) {
            let why = match login.proof {
                Some(p) if auth::verify(token, &nonce, &p) => None,
                Some(_) => Some("wrong token"),
                None => Some("this server requires a token"),
            };
            if let Some(why) = why {
                shared
                    .counters
                    .auth_failures
                    .fetch_add(1, Ordering::Relaxed);
                return Err(self.fatal(Error::AuthFailed(why.into())));
            }
        }
        let (id, ns, resumed) =
            shared
                .sessions
                .attach(&shared.engine, login.resume, shared.client_quota);
        match (login.resume, resumed) {
            (Some(_), true) => tracing::info!(session = %id, "session resumed"),
            (Some(old), false) => {
                tracing::info!(session = %id, old = %old, "session to resume is gone; new session")
            }
            (None, _) => tracing::debug!(session = %id, "new session"),
        }
        if let Err(e) = self.send(&ServerMsg::Welcome(Welcome {
            session: id,
            resumed,
            quota: shared.client_quota,
        })) {
            shared.sessions.detach(id);
            return Err(e);
        }
        Ok((id, ns))
    }

    /// Reads one whole handshake message.
    fn read_msg<T: serde::de::DeserializeOwned>(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<T, End> {
        loop {
            match self.rd.next_frame() {
                Ok(Some(body)) => {
                    let msg = wire::decode_exact::<T>(body);
                    return msg.map_err(|e| self.fatal(e));
                }
                Ok(None) => self.fill(deadline)?,
                Err(e) => return Err(self.fatal(e)),
            }
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
        self.out.clear();
        let _ = wire::encode_frame(
            &ServerMsg::Fatal(WireError::from(&e)),
            &mut self.out,
            self.shared.max_frame,
        );
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
        End::Refused(e.to_string())
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

    /// Reads at least once: polls for `spin`, then sleeps in `poll(2)`.
    fn fill(&mut self, deadline: Option<Instant>) -> Result<(), End> {
        let spin_until = Instant::now() + self.shared.spin;
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
                    if deadline.is_some_and(|d| now >= d) {
                        return Err(
                            self.fatal(Error::Protocol("no login within the timeout".into()))
                        );
                    }
                    poll_fd(self.fd, libc::POLLIN, NAP);
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

    /// Sends everything in `out`. While the client's window is full, keeps reading its
    /// requests (up to a bound) so a pipelining client cannot deadlock against us.
    fn flush(&mut self) -> Result<(), End> {
        let mut sent = 0;
        while sent < self.out.len() {
            match (&self.stream).write(&self.out[sent..]) {
                Ok(0) => return Err(End::Closed),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.rd.buffered() < 4 * self.shared.max_frame as usize {
                        match self.rd.read_from(&self.stream) {
                            Ok(0) => return Err(End::Closed),
                            Ok(_) => continue,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(End::Io(e)),
                        }
                    }
                    self.check_shutdown()?;
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

/// Answers the complete requests in `rd` into `out`. Returns whether it stopped early to
/// let `out` be sent (more requests may be buffered).
///
/// # Errors
/// A frame that cannot be read at all (oversized, or no request id): the connection must end.
fn answer_buffered(
    shared: &Shared,
    ns: &Namespace,
    rd: &mut FrameReader,
    out: &mut Vec<u8>,
) -> Result<bool> {
    while let Some(body) = rd.next_frame()? {
        crate::dispatch::answer(shared, ns, body, out)?;
        if out.len() >= FLUSH_AT {
            return Ok(true);
        }
    }
    Ok(false)
}
