//! One established connection and the waiting on it: requests queued by any thread and
//! written by one, leader/follower reading (the caller that holds the reader lock reads for
//! everyone), spin-then-park, per-request deadlines, and the kill that fails every request
//! in flight when the connection dies. The module essay of [`super`] says why.

use crate::error::{Error, Result};
use crate::sync::MutexExt;
use crate::wire::{self, poll_fd, Answer, FrameReader, Op, Reply, ServerMsg};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::TcpStream;
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Longest park of a follower between checks (a safety net: hand-offs unpark it sooner).
const FOLLOWER_NAP: Duration = Duration::from_millis(1);

/// Longest single `poll(2)` of a leader, so deadlines are checked now and then.
const LEADER_POLL: Duration = Duration::from_millis(50);

/// A connection that has heard nothing from the server for this long is checked (one
/// non-blocking read) before a call uses it: the server may have closed it meanwhile.
const QUIET_CHECK: Duration = Duration::from_millis(50);

/// Largest receive buffer a connection keeps as its spare ([`Conn::give_back`]).
const SPARE_MAX: usize = 4 << 20;

/// One request in flight.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) conn: Arc<Conn>,
    pub(super) id: u64,
    pub(super) waiter: Arc<Waiter>,
    pub(super) deadline: Instant,
    pub(super) done: bool,
}

impl Call {
    /// The answer, owned (a lent frame is decoded and copied out).
    pub(super) fn finish(self) -> Result<Answer> {
        match self.finish_lent()? {
            Got::Answer(a) => Ok(a),
            Got::Frame(f) => f.reply().map(Answer::from),
        }
    }

    /// The answer as delivered: a lending call's batch reply comes as its frame.
    pub(super) fn finish_lent(mut self) -> Result<Got> {
        self.done = true;
        self.conn.wait(self.id, &self.waiter, self.deadline)
    }
}

/// What a waiter receives.
#[derive(Debug)]
pub(super) enum Got {
    /// A reply decoded into owned bytes.
    Answer(Answer),
    /// A successful [`Reply::Values`] to a lending waiter, still encoded: the values are
    /// borrowed from it, so each is copied once, by whoever consumes it.
    Frame(LentFrame),
}

/// One response frame taken out of the connection's receive buffer
/// ([`FrameReader::take_frame`]), to be given back with [`Conn::give_back`] once read.
#[derive(Debug)]
pub(super) struct LentFrame {
    pub(super) buf: Vec<u8>,
    pub(super) body: Range<usize>,
}

impl LentFrame {
    /// The reply it carries, borrowed from it.
    ///
    /// # Errors
    /// [`Error::Protocol`] when the frame is not a successful response (it was one when it was
    /// delivered, so only a broken invariant gets here).
    pub(super) fn reply(&self) -> Result<Reply<'_>> {
        match wire::decode_exact::<ServerMsg<'_>>(&self.buf[self.body.clone()])? {
            ServerMsg::Response { result: Ok(r), .. } => Ok(r),
            other => Err(Error::Protocol(format!(
                "a lent frame holds no reply: {other:?}"
            ))),
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.done {
            self.conn.pending.locked().remove(&self.id);
        }
    }
}

/// Where one caller's reply lands.
#[derive(Debug)]
pub(super) struct Waiter {
    done: AtomicBool,
    /// Takes a successful batch reply as its frame ([`Got::Frame`]) rather than decoded.
    lends: bool,
    result: Mutex<Option<Result<Got>>>,
    thread: Thread,
}

impl Waiter {
    pub(super) fn new(lends: bool) -> Self {
        Waiter {
            done: AtomicBool::new(false),
            lends,
            result: Mutex::new(None),
            thread: thread::current(),
        }
    }

    fn complete(&self, r: Result<Got>) {
        *self.result.locked() = Some(r);
        self.done.store(true, Ordering::Release);
        self.thread.unpark();
    }

    fn take(&self) -> Result<Got> {
        self.result
            .locked()
            .take()
            .unwrap_or_else(|| Err(Error::Protocol("reply taken twice".into())))
    }
}

/// One established connection.
#[derive(Debug)]
pub(super) struct Conn {
    stream: TcpStream,
    fd: RawFd,
    /// Requests encoded but not yet written (any sender appends).
    outq: Mutex<Vec<u8>>,
    /// The bytes being written, held by the one thread writing.
    writer: Mutex<Vec<u8>>,
    reader: Mutex<FrameReader>,
    /// A receive buffer a lent frame gave back, for the reader's next
    /// [`FrameReader::take_frame`] (so lending does not allocate a buffer per frame).
    spare: Mutex<Vec<u8>>,
    pub(super) pending: Mutex<HashMap<u64, Arc<Waiter>>>,
    pub(super) dead: AtomicBool,
    why: Mutex<Option<Error>>,
    pub(super) max_frame: u32,
    spin: Duration,
    /// When the connection was made (the origin of `heard_ms`).
    born: Instant,
    /// Milliseconds after `born` when the server was last heard from (or found alive).
    heard_ms: AtomicU64,
}

impl Conn {
    /// A connection over `stream` (already non-blocking and logged in); `rd` holds whatever
    /// the handshake read past its last message.
    pub(super) fn new(stream: TcpStream, rd: FrameReader, max_frame: u32, spin: Duration) -> Self {
        Conn {
            fd: stream.as_raw_fd(),
            stream,
            outq: Mutex::new(Vec::new()),
            writer: Mutex::new(Vec::new()),
            reader: Mutex::new(rd),
            spare: Mutex::new(Vec::new()),
            pending: Mutex::new(HashMap::new()),
            dead: AtomicBool::new(false),
            why: Mutex::new(None),
            max_frame,
            spin,
            born: Instant::now(),
            heard_ms: AtomicU64::new(0),
        }
    }

    fn age_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// Whether the connection can take a call. One that has been quiet for
    /// [`QUIET_CHECK`] with nothing in flight may have been closed by the server (its idle
    /// timeout, or to make room for another client): a non-blocking read finds out, and
    /// delivers the server's parting frame, which marks it dead so that the call
    /// reconnects and resumes instead of failing.
    pub(super) fn alive_after_quiet(&self) -> bool {
        let now = self.age_ms();
        if now.saturating_sub(self.heard_ms.load(Ordering::Relaxed))
            < QUIET_CHECK.as_millis() as u64
            || !self.pending.locked().is_empty()
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

    pub(super) fn why(&self) -> Error {
        self.why
            .locked()
            .clone()
            .unwrap_or_else(|| Error::Disconnected("connection closed".into()))
    }

    /// Marks the connection dead and fails every request in flight with `e`; returns `e`.
    pub(super) fn kill(&self, e: Error) -> Error {
        {
            let mut why = self.why.locked();
            if why.is_none() {
                *why = Some(e.clone());
            }
        }
        self.dead.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let waiters: Vec<Arc<Waiter>> = self.pending.locked().drain().map(|(_, w)| w).collect();
        let why = self.why();
        for w in waiters {
            w.complete(Err(why.clone()));
        }
        why
    }

    /// Takes back the buffer of a frame lent to a waiter; the larger of it and the one
    /// already kept is kept, unless it is larger than [`SPARE_MAX`] (the room a huge batch
    /// needed once is given back).
    pub(super) fn give_back(&self, frame: LentFrame) {
        let mut spare = self.spare.locked();
        if frame.buf.len() > spare.len() && frame.buf.len() <= SPARE_MAX {
            *spare = frame.buf;
        }
    }

    pub(super) fn register(&self, id: u64, w: &Arc<Waiter>) -> Result<()> {
        self.pending.locked().insert(id, w.clone());
        // `kill` sets `dead` before draining `pending`: either it drains our entry, or we
        // see `dead` here.
        if self.dead.load(Ordering::SeqCst) {
            self.pending.locked().remove(&id);
            return Err(self.why());
        }
        Ok(())
    }

    /// Queues requests `(id, op)` and writes them, together with whatever other threads
    /// queued meanwhile.
    pub(super) fn send(&self, reqs: &[(u64, &Op<'_>)], deadline: Instant) -> Result<()> {
        {
            let mut q = self.outq.locked();
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
                let mut q = self.outq.locked();
                if q.is_empty() {
                    drop(q);
                    drop(buf);
                    // A sender may have queued after our look, before we let go of the writer.
                    if self.outq.locked().is_empty() {
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
            let (id, result) = match wire::decode_exact::<ServerMsg<'_>>(body) {
                Ok(ServerMsg::Response { id, result }) => (id, result),
                Ok(ServerMsg::Fatal(e)) => return Err(self.kill(e.into())),
                Ok(other) => {
                    return Err(self.kill(Error::Protocol(format!(
                        "unexpected message after the handshake: {other:?}"
                    ))))
                }
                Err(e) => return Err(self.kill(e)),
            };
            let Some(w) = self.pending.locked().remove(&id) else {
                continue; // abandoned at its deadline
            };
            if w.lends && matches!(result, Ok(Reply::Values(_))) {
                // The waiter decodes the frame again and lends each value from it.
                let spare = std::mem::take(&mut *self.spare.locked());
                let (buf, body) = rd.take_frame(spare);
                w.complete(Ok(Got::Frame(LentFrame { buf, body })));
            } else {
                w.complete(result.map(|r| Got::Answer(r.into())).map_err(Error::from));
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
        let pending = self.pending.locked();
        if let Some(w) = pending.values().find(|w| !w.done.load(Ordering::Acquire)) {
            w.thread.unpark();
        }
    }

    /// Waits for request `id`.
    fn wait(&self, id: u64, me: &Arc<Waiter>, deadline: Instant) -> Result<Got> {
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
    fn abandon(&self, id: u64, me: &Waiter) -> Result<Got> {
        if self.pending.locked().remove(&id).is_some() {
            return Err(Error::Timeout);
        }
        // Removed by a deliverer (or by `kill`), which completes it right after.
        while !me.done.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        me.take()
    }
}
