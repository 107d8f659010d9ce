//! What outlives one connection: the session ticket and reconnection (with back-off, and
//! resumption of the session, or a permanent failure when the server lost it), request ids
//! and deadlines, and the splitting of batches into pieces that fit a frame.

use super::conn::{Call, Conn, Got, Waiter};
use super::handshake::handshake;
use super::{PendingRead, TcpBuilder};
use crate::error::{Error, Result};
use crate::sync::{MutexExt, RwLockExt};
use crate::wire::{Answer, Blob, Op, Reply, ResumeTicket, SessionId};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Shortest interval between two reconnection attempts.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// Batches are split into pieces of at most this many keys.
const MAX_BATCH_KEYS: usize = 4096;

pub(super) fn session_lost(s: SessionId) -> Error {
    Error::Disconnected(format!(
        "the server no longer holds session {s}: its far objects are lost"
    ))
}

/// A backend's state, shared (behind an [`Arc`]) with the batches it has in flight: a batch
/// whose replies turn out not to fit a frame falls back to single reads after the call that
/// started it has returned.
pub(super) struct Client {
    pub(super) opts: TcpBuilder,
    pub(super) conn: RwLock<Arc<Conn>>,
    pub(super) state: Mutex<Reconnect>,
    pub(super) next_id: AtomicU64,
    pub(super) last_stored: AtomicU64,
}

#[derive(Debug)]
pub(super) struct Reconnect {
    pub(super) ticket: ResumeTicket,
    pub(super) poisoned: Option<Error>,
    pub(super) last_failure: Option<(Instant, Error)>,
    pub(super) reconnects: u64,
}

impl Client {
    pub(super) fn start_reads(&self, ds: u32, keys: &[&[u8]]) -> Result<Vec<PendingRead>> {
        let ops: Vec<Op<'_>> = keys.iter().map(|k| Op::Read { ds, key: Blob(k) }).collect();
        let calls = self.start_all(&ops)?;
        Ok(calls.into_iter().map(|call| PendingRead { call }).collect())
    }

    /// Sends every piece of a batch read; returns the calls and the key range of each.
    pub(super) fn start_read_many(
        &self,
        ds: u32,
        keys: &[&[u8]],
    ) -> Result<Vec<(Call, Range<usize>)>> {
        self.pieces(keys.iter().map(|k| blob_size(k)))
            .into_iter()
            .map(|r| {
                let piece = keys[r.clone()].iter().map(|k| Blob(k)).collect();
                let op = Op::ReadMany { ds, keys: piece };
                Ok((self.start_as(&op, true)?, r))
            })
            .collect()
    }

    /// Collects the answers of [`Client::start_read_many`]'s pieces, in order.
    pub(super) fn finish_read_many<K: AsRef<[u8]>>(
        &self,
        ds: u32,
        keys: &[K],
        calls: Vec<(Call, Range<usize>)>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = vec![None; keys.len()];
        self.finish_read_many_with(ds, keys, calls, &mut |i, v| {
            out[i] = v.map(<[u8]>::to_vec);
        })?;
        Ok(out)
    }

    /// Lends every value of [`Client::start_read_many`]'s pieces to `sink`, with its index in
    /// `keys`, in order: each straight from the frame it arrived in, so `sink` copies it
    /// once. A piece whose replies did not fit one frame (the server answers
    /// [`Error::Protocol`] and the connection lives on) is fetched again one object at a
    /// time, pipelined. A reply with
    /// another count of values than keys asked, or of another kind, is [`Error::Protocol`]
    /// (and `sink` has then seen the pieces before it).
    pub(super) fn finish_read_many_with<K: AsRef<[u8]>>(
        &self,
        ds: u32,
        keys: &[K],
        calls: Vec<(Call, Range<usize>)>,
        sink: &mut dyn FnMut(usize, Option<&[u8]>),
    ) -> Result<()> {
        for (call, range) in calls {
            let conn = call.conn.clone();
            match call.finish_lent() {
                Ok(Got::Frame(frame)) => {
                    let lent = frame.reply().and_then(|r| lend_values(r, range, sink));
                    conn.give_back(frame);
                    lent?;
                }
                Ok(Got::Answer(a)) => lend_values(a.as_reply(), range, sink)?,
                // The server's own answer, not a reply the connection could not read (which
                // killed it): the piece did not fit a frame.
                Err(Error::Protocol(_)) if !conn.dead.load(Ordering::SeqCst) => {
                    let piece: Vec<&[u8]> = keys[range.clone()].iter().map(AsRef::as_ref).collect();
                    for (i, p) in range.zip(self.start_reads(ds, &piece)?) {
                        sink(i, p.wait()?.as_deref());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends `op(piece)` for every piece of `sizes` (encoded element sizes) that fits a frame.
    pub(super) fn start_pieces<'a>(
        &self,
        sizes: impl Iterator<Item = usize>,
        op: impl Fn(Range<usize>) -> Op<'a>,
    ) -> Result<Vec<Call>> {
        self.pieces(sizes)
            .into_iter()
            .map(|r| self.start(&op(r)))
            .collect()
    }
    fn connection(&self) -> Result<Arc<Conn>> {
        {
            let c = self.conn.reading();
            if !c.dead.load(Ordering::SeqCst) && c.alive_after_quiet() {
                return Ok(c.clone());
            }
        }
        self.reconnect()
    }

    fn reconnect(&self) -> Result<Arc<Conn>> {
        let mut st = self.state.locked();
        let old = self.conn.reading().clone();
        if !old.dead.load(Ordering::SeqCst) {
            return Ok(old); // another thread reconnected meanwhile
        }
        if let Some(e) = &st.poisoned {
            return Err(e.clone());
        }
        if !self.opts.reconnect {
            return Err(old.why());
        }
        if let Some((at, e)) = &st.last_failure {
            if at.elapsed() < RECONNECT_BACKOFF {
                return Err(e.clone());
            }
        }
        match handshake(&self.opts, Some(st.ticket)) {
            Ok((conn, welcome)) if welcome.resumed => {
                st.last_failure = None;
                st.reconnects += 1;
                *self.conn.writing() = conn.clone();
                Ok(conn)
            }
            Ok((conn, _)) => {
                conn.kill(Error::Disconnected("session lost".into()));
                let e = session_lost(st.ticket.session);
                st.poisoned = Some(e.clone());
                Err(e)
            }
            Err(e) => {
                st.last_failure = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    pub(super) fn start(&self, op: &Op<'_>) -> Result<Call> {
        self.start_as(op, false)
    }

    /// Sends `op`; a `lends` call takes a batch reply as its frame ([`Call::finish_lent`]).
    fn start_as(&self, op: &Op<'_>, lends: bool) -> Result<Call> {
        let conn = self.connection()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.opts.timeout;
        let waiter = Arc::new(Waiter::new(lends));
        conn.register(id, &waiter)?;
        let call = Call {
            conn,
            id,
            waiter,
            deadline,
            done: false,
        };
        call.conn.send(&[(id, op)], deadline)?; // on error, `call` unregisters as it drops
        Ok(call)
    }

    /// Sends `ops` in one write; one call each.
    fn start_all(&self, ops: &[Op<'_>]) -> Result<Vec<Call>> {
        let conn = self.connection()?;
        let first = self.next_id.fetch_add(ops.len() as u64, Ordering::Relaxed);
        let deadline = Instant::now() + self.opts.timeout;
        let mut calls = Vec::with_capacity(ops.len());
        for i in 0..ops.len() as u64 {
            let waiter = Arc::new(Waiter::new(false));
            conn.register(first + i, &waiter)?; // on error, `calls` unregister as they drop
            calls.push(Call {
                conn: conn.clone(),
                id: first + i,
                waiter,
                deadline,
                done: false,
            });
        }
        let reqs: Vec<(u64, &Op<'_>)> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| (first + i as u64, op))
            .collect();
        conn.send(&reqs, deadline)?;
        Ok(calls)
    }

    pub(super) fn call(&self, op: &Op<'_>) -> Result<Answer> {
        self.start(op)?.finish()
    }

    /// Frame budget for one batch piece: the agreed maximum minus room for the envelope.
    fn batch_budget(&self) -> usize {
        (self.conn.reading().max_frame as usize).saturating_sub(64)
    }

    /// Splits `sizes` (encoded size of each element) into ranges that fit one frame.
    fn pieces(&self, sizes: impl Iterator<Item = usize>) -> Vec<Range<usize>> {
        let budget = self.batch_budget();
        let mut out = Vec::new();
        let (mut start, mut bytes, mut n) = (0, 0, 0);
        for (i, s) in sizes.enumerate() {
            if n > 0 && (bytes + s > budget || n == MAX_BATCH_KEYS) {
                out.push(start..i);
                (start, bytes, n) = (i, 0, 0);
            }
            bytes += s;
            n += 1;
        }
        if n > 0 {
            out.push(start..start + n);
        }
        out
    }
}

impl Answer {
    pub(super) fn unexpected(&self) -> Error {
        Error::Protocol(format!("unexpected reply {self:?}"))
    }
    pub(super) fn value(self) -> Result<Option<Vec<u8>>> {
        match self {
            Answer::Value(v) => Ok(v),
            other => Err(other.unexpected()),
        }
    }
    pub(super) fn done(self) -> Result<()> {
        match self {
            Answer::Done => Ok(()),
            other => Err(other.unexpected()),
        }
    }
    pub(super) fn expect_pong(self) -> Result<()> {
        match self {
            Answer::Pong => Ok(()),
            other => Err(other.unexpected()),
        }
    }
}

/// Lends each value of a batch reply for the keys `range` to `sink`, with its index.
///
/// # Errors
/// [`Error::Protocol`] when `reply` is not [`Reply::Values`] with one value per key; `sink`
/// has then seen nothing of it.
pub(super) fn lend_values(
    reply: Reply<'_>,
    range: Range<usize>,
    sink: &mut dyn FnMut(usize, Option<&[u8]>),
) -> Result<()> {
    match reply {
        Reply::Values(vs) if vs.len() == range.len() => {
            for (i, v) in range.zip(vs) {
                sink(i, v.map(|b| b.0));
            }
            Ok(())
        }
        Reply::Values(vs) => Err(Error::Protocol(format!(
            "{} values in reply to a batch read of {} keys",
            vs.len(),
            range.len()
        ))),
        other => Err(Error::Protocol(format!(
            "unexpected reply to a batch read: {other:?}"
        ))),
    }
}

/// Encoded size of a byte string: a varint length (at most 5 bytes here) and the bytes.
pub(super) fn blob_size(b: &[u8]) -> usize {
    b.len() + 5
}
