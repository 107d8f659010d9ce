//! One request of a logged-in client, answered against its namespace.
//!
//! The connection layer hands `answer` each complete request frame; it decodes it, runs
//! it, and appends the response frame. What holds for every request:
//!
//! * **A panic is a typed error.** A device that panics (a bug) fails that request with
//!   [`Error::Remote`]; the connection, its session and every other client go on.
//! * **Replies are sized before they are built.** A batch read stops as soon as its reply
//!   would pass one frame (the client then reads one object at a time), and holds its bytes
//!   against the namespace's replies in flight while it is built and encoded; devices check
//!   their own replies against the same limit before allocating them; a key listing is cut
//!   to fit.
//! * **Batches are bounded and atomic.** A batch names at most
//!   [`MAX_BATCH_KEYS`](aifm_core::engine::MAX_BATCH_KEYS) keys, and a write or remove batch
//!   is done whole or not at all ([`Namespace::write_many`]).
//! * **Everything is charged.** Writes, constructions and device growth charge the
//!   namespace's quota and the server's pool as they happen (see
//!   [`aifm_core::engine::quota`]); nothing is reserved or settled here.
//!
//! [`Dispatcher`] runs this same code without sockets, for tests and fuzzing.

use crate::shared::Shared;
use crate::Config;
use aifm_core::engine::{Namespace, ReplyHold};
use aifm_core::wire::{self, Answer, Blob, Op, ServerMsg, WireError};
use aifm_core::{Error, Result};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Answers one request frame `body` of `ns` into `out` (one response frame).
///
/// # Errors
/// Only when the body has no readable request id: the connection must end.
pub(crate) fn answer(
    shared: &Shared,
    ns: &Namespace,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let (id, op) = wire::decode_request(body)?;
    let mut hold = ns.reply_hold();
    let result = op.and_then(|op| {
        shared.counters.count(&op);
        execute(shared, ns, &op, &mut hold)
    });
    if let Err(e) = &result {
        shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(id, "request failed: {e}");
    }
    respond(out, id, result, shared.max_frame);
    Ok(())
}

fn respond(out: &mut Vec<u8>, id: u64, result: Result<Answer>, max_frame: u32) {
    let encoded = match &result {
        Ok(a) => wire::encode_frame(
            &ServerMsg::Response {
                id,
                result: Ok(a.as_reply()),
            },
            out,
            max_frame,
        ),
        Err(e) => wire::encode_frame(
            &ServerMsg::Response {
                id,
                result: Err(WireError::from(e)),
            },
            out,
            max_frame,
        ),
    };
    if let Err(e) = encoded {
        // The answer is larger than a frame after all (a device's estimate was short).
        let msg = ServerMsg::Response {
            id,
            result: Err(WireError::Protocol(format!("the reply does not fit: {e}"))),
        };
        let _ = wire::encode_frame(&msg, out, max_frame);
    }
}

/// Runs `op`, turning a panic into [`Error::Remote`].
fn execute(
    shared: &Shared,
    ns: &Namespace,
    op: &Op<'_>,
    hold: &mut ReplyHold<'_>,
) -> Result<Answer> {
    match panic::catch_unwind(AssertUnwindSafe(|| run(shared, ns, op, hold))) {
        Ok(r) => r,
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            tracing::error!(op = op.kind(), "request failed in the server: {why}");
            Err(Error::Remote(format!(
                "the server failed on this {} request: {why}",
                op.kind()
            )))
        }
    }
}

fn run(shared: &Shared, ns: &Namespace, op: &Op<'_>, hold: &mut ReplyHold<'_>) -> Result<Answer> {
    Ok(match *op {
        Op::Ping => Answer::Pong,
        Op::Read { ds, key } => {
            let v = ns.read(ds, key.0)?;
            hold.grow(v.as_ref().map_or(0, |v| v.len() as u64))?;
            Answer::Value(v)
        }
        Op::Write { ds, key, value } => {
            ns.write(ds, key.0, value.0)?;
            Answer::Done
        }
        Op::Remove { ds, key } => Answer::Removed(ns.remove(ds, key.0)?),
        Op::ReadMany { ds, ref keys } => {
            Answer::Values(ns.read_many(ds, keys.iter().map(|k| k.0), hold)?)
        }
        Op::WriteMany { ds, ref items } => {
            ns.write_many(ds, items.iter().map(|(k, v)| (k.0, v.0)))?;
            Answer::Done
        }
        Op::RemoveMany { ds, ref keys } => {
            ns.remove_many(ds, keys.iter().map(|k| k.0))?;
            Answer::Done
        }
        Op::Construct { ds, device, params } => {
            ns.construct(ds, device, params.0)?;
            Answer::Done
        }
        Op::Destruct { ds } => {
            ns.destruct(ds)?;
            Answer::Done
        }
        Op::Compute { ds, opcode, input } => {
            let output = ns.compute(ds, opcode, input.0)?;
            hold.grow(output.len() as u64)?;
            Answer::Output(output)
        }
        Op::StoredBytes => Answer::Bytes(ns.stored_bytes()),
        Op::Stats => Answer::Stats(shared.stats()),
        Op::Keys { ds, after, limit } => Answer::Keys(key_page(ns, ds, after, limit, hold)?),
    })
}

/// Most keys one listing page returns, whatever the client asks.
const MAX_KEYS_PAGE: u32 = 1 << 16;

/// One page of a key listing, cut short (never empty unless the listing is over) so that the
/// reply fits a frame.
fn key_page(
    ns: &Namespace,
    ds: u32,
    after: Option<Blob<'_>>,
    limit: u32,
    hold: &mut ReplyHold<'_>,
) -> Result<Vec<Vec<u8>>> {
    if limit == 0 {
        return Err(Error::Protocol(
            "a key listing asks for at least one key".into(),
        ));
    }
    let mut page = ns.keys(ds, after.map(|a| a.0), limit.min(MAX_KEYS_PAGE) as usize)?;
    // A varint length (at most 5 bytes) per key.
    let budget = ns.quota().limits().reply_bytes;
    let mut used = 0u64;
    let fits = page
        .iter()
        .position(|k| {
            used += k.len() as u64 + 5;
            used > budget
        })
        .unwrap_or(page.len());
    page.truncate(fits.max(1));
    hold.grow(page.iter().map(|k| k.len() as u64 + 5).sum())?;
    Ok(page)
}

/// A server's request handling without its sockets: the same engine, devices, limits and
/// `answer` path as a running server, driven by request frame bodies. For tests and
/// fuzzing; a connection's handshake, deadlines and flow control are not part of it.
///
/// # Examples
///
/// ```
/// use aifm_core::backend::OBJECT_STORE;
/// use aifm_core::wire::{Answer, Blob, Op};
/// let d = aifm_server::Dispatcher::new(aifm_server::Config::default()).unwrap();
/// let s = d.session();
/// s.call(&Op::Write { ds: OBJECT_STORE, key: Blob(b"k"), value: Blob(b"v") }).unwrap();
/// assert_eq!(s.call(&Op::Read { ds: OBJECT_STORE, key: Blob(b"k") }).unwrap(),
///            Answer::Value(Some(b"v".to_vec())));
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A server's request handling for `config` (its listen address is not used).
    ///
    /// # Errors
    /// A zero capacity or a frame size under 64 bytes, as [`Server::bind`](crate::Server::bind).
    pub fn new(config: Config) -> std::io::Result<Dispatcher> {
        crate::config::check(&config)?;
        Ok(Dispatcher {
            shared: Arc::new(Shared::new(config)),
        })
    }

    /// A new client: a fresh namespace with the configured client quota.
    pub fn session(&self) -> Session {
        Session {
            ns: Arc::new(self.shared.engine.namespace(self.shared.client_quota)),
            shared: self.shared.clone(),
        }
    }

    /// Bytes charged over all sessions now (the server's pool).
    pub fn charged_bytes(&self) -> u64 {
        self.shared.engine.pool().map_or(0, |p| p.used())
    }

    /// The statistics a server would report.
    pub fn stats(&self) -> crate::ServerStats {
        self.shared.stats()
    }
}

/// One client of a [`Dispatcher`]; its namespace is dropped (every charge given back) with
/// it.
pub struct Session {
    shared: Arc<Shared>,
    ns: Arc<Namespace>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("ns", &self.ns).finish()
    }
}

impl Session {
    /// Answers one request frame body (request id, then op) into `out`, as a connection
    /// does: one response frame is appended.
    ///
    /// # Errors
    /// When the body has no readable request id (a server would end the connection).
    pub fn request(&self, body: &[u8], out: &mut Vec<u8>) -> Result<()> {
        answer(&self.shared, &self.ns, body, out)
    }

    /// Sends `op` and decodes its answer.
    ///
    /// # Errors
    /// The request's error, as a client would see it.
    pub fn call(&self, op: &Op<'_>) -> Result<Answer> {
        let mut frame = Vec::new();
        wire::encode_request(0, op, &mut frame, u32::MAX)?;
        let mut out = Vec::new();
        self.request(&frame[wire::LEN_PREFIX..], &mut out)?;
        match wire::decode_exact::<ServerMsg<'_>>(&out[wire::LEN_PREFIX..])? {
            ServerMsg::Response { result, .. } => result.map(Answer::from).map_err(Error::from),
            other => Err(Error::Protocol(format!("unexpected {other:?}"))),
        }
    }

    /// Key and value bytes this session stores.
    pub fn stored_bytes(&self) -> u64 {
        self.ns.stored_bytes()
    }

    /// Everything this session is charged (see [`Namespace::charged_bytes`]).
    pub fn charged_bytes(&self) -> u64 {
        self.ns.charged_bytes()
    }
}
