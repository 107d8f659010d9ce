//! The wire protocol between the TCP backend and `aifm-server`.
//!
//! # Frames
//!
//! Every message travels in one *frame*: a 4-byte little-endian body length, then the body,
//! encoded with postcard. A frame longer than the receiver's maximum ([`DEFAULT_MAX_FRAME`]
//! unless configured; the server announces its own in the handshake) is a protocol error:
//! the receiver answers with a fatal error and closes the connection before reading the body.
//! A length within the maximum is not trusted either: [`FrameReader`], the incremental decoder
//! both sides use, grows its buffer with the bytes that arrive (at most doubling per read),
//! never to the announced length up front, so a hostile length costs only what was really
//! sent. Before login both sides accept only [`HANDSHAKE_MAX_FRAME`]-byte frames, so a
//! connection that has proved nothing holds at most that much. The reader never panics on
//! any byte sequence (a quickcheck test and a cargo-fuzz target check this).
//!
//! # Handshake
//!
//! ```text
//! client                                   server
//!   ClientHello { magic, version }   ──▶
//!                                    ◀──   ServerMsg::Challenge { version, nonce?, max_frame }
//!   Login { proof?, resume? }        ──▶
//!                                    ◀──   ServerMsg::Welcome { ticket, resumed, .. }
//!                                          or ServerMsg::Fatal(..) and close
//! ```
//!
//! The version is checked once, in the hello, whose layout (`magic`, then `version`) is frozen
//! for every future version: a server that does not speak the client's version says so with a
//! fatal error and closes. When the server has a token, the challenge carries a fresh random
//! nonce and the client answers with HMAC-SHA256(token, context ‖ nonce) (see [`auth`]): the
//! token itself never crosses the wire, and a recorded proof is useless against a new nonce.
//! The welcome carries a [`ResumeTicket`]: the session's id and a 32-byte random secret the
//! server drew for it. `resume` presents the ticket of an earlier connection; within the
//! server's grace period, and only when the secret matches (compared in constant time, see
//! [`auth::same_secret`]), the client gets its namespace (and all its far objects) back. A
//! ticket with a wrong secret gets the same answer as one for a session that is gone (a fresh
//! session, `resumed: false`), so guessing learns nothing. Neither end logs the secret, and
//! the server logs session ids only at debug level.
//!
//! # Requests
//!
//! After the handshake each client frame is one request: a request id (varint) followed by an
//! [`Op`]. The server answers each with [`ServerMsg::Response`] carrying the same id, so many
//! requests may be in flight on one connection (pipelining), and a request whose op cannot be
//! decoded (an unknown op from a newer client, say) is answered with an error for its id while
//! the connection keeps working. Batched ops (`ReadMany`, `WriteMany`, `RemoveMany`) carry
//! prefetch and write-back traffic in one frame.
//!
//! Byte strings are encoded as postcard byte arrays (one length, then a memcpy) and decoded
//! borrowed from the receive buffer ([`Blob`]), so a 4 KiB object is copied once on each side.

pub mod auth;
mod frame;
mod message;

pub use frame::{encode_frame, FrameReader, LEN_PREFIX};
pub use message::{
    Answer, Blob, Challenge, ClientHello, Login, Op, Reply, RequestCounts, ResumeTicket, ServerMsg,
    ServerStats, SessionId, Welcome, WireError,
};

use crate::error::{Error, Result};
use std::os::fd::RawFd;
use std::time::Duration;

/// Waits up to `timeout` (at least 1 ms) for `events` (`libc::POLLIN`, `libc::POLLOUT`) on
/// `fd`: the one blocking wait both ends of a connection use once they stop spinning.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsRawFd;
/// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// // Nobody connects: returns after the timeout.
/// aifm_core::wire::poll_fd(listener.as_raw_fd(), libc::POLLIN, std::time::Duration::from_millis(1));
/// ```
pub fn poll_fd(fd: RawFd, events: libc::c_short, timeout: Duration) {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: `p` is a valid, exclusively borrowed pollfd for the duration of the call, and
    // the count passed is 1.
    unsafe {
        libc::poll(&mut p, 1, ms);
    }
}

/// The first four bytes of every client hello.
pub const MAGIC: [u8; 4] = *b"AIFM";

/// The protocol version this crate speaks (2: resuming a session takes its secret).
pub const VERSION: u16 = 2;

/// The default largest frame body either side accepts (64 MiB).
pub const DEFAULT_MAX_FRAME: u32 = 64 << 20;

/// The largest frame body accepted before login (4 KiB): the handshake's messages are a few
/// dozen bytes, so a connection that has not proved anything costs at most this much buffer.
pub const HANDSHAKE_MAX_FRAME: u32 = 4 << 10;

/// Decodes a request frame body into its id and op.
///
/// The id is decoded first, so a body whose op is unknown or malformed still yields its id
/// (`Ok((id, Err(..)))`) and can be answered; a body without a readable id is `Err`.
///
/// # Errors
/// [`Error::Protocol`] when not even the id can be read.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::{decode_request, encode_request, Blob, FrameReader, Op};
/// let mut buf = Vec::new();
/// encode_request(7, &Op::Read { ds: 0, key: Blob(b"k") }, &mut buf, 1 << 20).unwrap();
/// let mut r = FrameReader::new(1 << 20);
/// r.push(&buf);
/// let body = r.next_frame().unwrap().unwrap();
/// let (id, op) = decode_request(body).unwrap();
/// assert_eq!(id, 7);
/// assert_eq!(op.unwrap(), Op::Read { ds: 0, key: Blob(b"k") });
/// ```
pub fn decode_request(body: &[u8]) -> Result<(u64, Result<Op<'_>>)> {
    let (id, rest) = postcard::take_from_bytes::<u64>(body)
        .map_err(|e| Error::Protocol(format!("unreadable request id: {e}")))?;
    Ok((id, decode_exact::<Op<'_>>(rest)))
}

/// Appends one request frame (`id`, then `op`) to `buf`.
///
/// # Errors
/// [`Error::Protocol`] when the frame would exceed `max_frame` (nothing is appended).
///
/// # Examples
///
/// ```
/// use aifm_core::wire::{encode_request, Op};
/// let mut buf = Vec::new();
/// encode_request(1, &Op::Ping, &mut buf, 1024).unwrap();
/// assert_eq!(&buf[..4], &2u32.to_le_bytes()); // id 1, op tag
/// ```
pub fn encode_request(id: u64, op: &Op<'_>, buf: &mut Vec<u8>, max_frame: u32) -> Result<()> {
    encode_frame(&(id, op), buf, max_frame)
}

/// Decodes a whole frame body as one `T`; trailing bytes are an error.
///
/// # Errors
/// [`Error::Protocol`] for malformed or trailing bytes.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::{decode_exact, ClientHello};
/// let body = postcard::to_allocvec(&ClientHello::current()).unwrap();
/// assert_eq!(decode_exact::<ClientHello>(&body).unwrap(), ClientHello::current());
/// assert!(decode_exact::<ClientHello>(&body[..3]).is_err());
/// ```
pub fn decode_exact<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(Error::Protocol(format!(
            "{} trailing bytes after the message",
            rest.len()
        ))),
        Err(e) => Err(Error::Protocol(format!("malformed message: {e}"))),
    }
}

/// Feeds arbitrary bytes through every decoder of the protocol and reports how many frames
/// were found. Used by the fuzz target and the property tests: it must never panic.
///
/// # Examples
///
/// ```
/// assert_eq!(aifm_core::wire::decode_all(&[1, 0, 0, 0, 9], 64), 1);
/// assert_eq!(aifm_core::wire::decode_all(&[255, 255, 255, 255], 64), 0); // oversized
/// ```
pub fn decode_all(data: &[u8], max_frame: u32) -> usize {
    let mut reader = FrameReader::new(max_frame);
    // Feed in two uneven pieces to exercise the incremental path.
    let cut = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let mut frames = 0;
    for piece in [&data[..cut], &data[cut..]] {
        reader.push(piece);
        loop {
            match reader.next_frame() {
                Ok(Some(body)) => {
                    frames += 1;
                    let _ = decode_exact::<ClientHello>(body);
                    let _ = decode_exact::<Login>(body);
                    let _ = decode_exact::<ServerMsg<'_>>(body);
                    let _ = decode_request(body);
                }
                Ok(None) => break,
                Err(_) => return frames,
            }
        }
    }
    frames
}

#[cfg(test)]
mod tests;
