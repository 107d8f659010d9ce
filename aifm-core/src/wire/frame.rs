//! Length-prefixed frames: the encoder and the incremental, panic-free decoder.

use crate::error::{Error, Result};
use serde::Serialize;
use std::io::{self, Read};
use std::ops::Range;

/// Bytes of the length prefix in front of every frame body.
pub const LEN_PREFIX: usize = 4;

/// Smallest read a [`FrameReader`] offers the socket.
const MIN_READ: usize = 16 << 10;

/// An empty [`FrameReader`] buffer larger than this is released.
const SHRINK_ABOVE: usize = 1 << 20;

/// Appends one frame (length prefix, then the postcard encoding of `msg`) to `buf`.
///
/// # Errors
/// [`Error::Protocol`] when the body would exceed `max_frame` bytes; `buf` is left as it was.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::{encode_frame, FrameReader};
/// let mut buf = Vec::new();
/// encode_frame(&(1u8, 2u32), &mut buf, 1024).unwrap();
/// assert_eq!(buf, [2, 0, 0, 0, 1, 2]);
/// assert!(encode_frame(&[0u8; 8], &mut buf, 4).is_err());
/// assert_eq!(buf.len(), 6);
/// ```
pub fn encode_frame<T: Serialize + ?Sized>(
    msg: &T,
    buf: &mut Vec<u8>,
    max_frame: u32,
) -> Result<()> {
    let start = buf.len();
    buf.extend_from_slice(&[0; LEN_PREFIX]);
    if let Err(e) = postcard::to_extend(msg, Appender(buf)) {
        buf.truncate(start);
        return Err(Error::Protocol(format!("cannot encode message: {e}")));
    }
    let len = buf.len() - start - LEN_PREFIX;
    if len > max_frame as usize {
        buf.truncate(start);
        return Err(Error::Protocol(format!(
            "frame of {len} bytes exceeds the maximum of {max_frame}"
        )));
    }
    buf[start..start + LEN_PREFIX].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Lets postcard append to a borrowed vector.
struct Appender<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Appender<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// An incremental frame decoder over a growable receive buffer.
///
/// Bytes go in with [`FrameReader::read_from`] (a socket) or [`FrameReader::push`];
/// complete frame bodies come out of [`FrameReader::next_frame`]. A length beyond the
/// maximum is reported as soon as the prefix is seen, before any of the body is buffered.
/// A length within the maximum is not trusted either: the buffer grows with the bytes that
/// arrive (at most doubling per read), so what a peer costs is bounded by what it has sent,
/// not by what it announced.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::FrameReader;
/// let mut r = FrameReader::new(16);
/// r.push(&[3, 0, 0, 0, b'a', b'b']);
/// assert_eq!(r.next_frame().unwrap(), None); // truncated so far
/// r.push(b"c");
/// assert_eq!(r.next_frame().unwrap(), Some(&b"abc"[..]));
/// r.push(&[200, 0, 0, 0]);
/// assert!(r.next_frame().is_err()); // oversized
/// ```
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    /// Where the body [`FrameReader::next_frame`] last returned starts (it ends at `head`).
    last: usize,
    max_frame: u32,
}

impl FrameReader {
    /// An empty reader accepting frame bodies of at most `max_frame` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::wire::FrameReader;
    /// let r = FrameReader::new(1 << 20);
    /// assert_eq!(r.buffered(), 0);
    /// ```
    pub fn new(max_frame: u32) -> Self {
        FrameReader {
            buf: Vec::new(),
            head: 0,
            tail: 0,
            last: 0,
            max_frame,
        }
    }

    /// The largest body accepted.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::wire::FrameReader;
    /// assert_eq!(FrameReader::new(64).max_frame(), 64);
    /// ```
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Changes the largest body accepted (after a handshake agreed on one).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::wire::FrameReader;
    /// let mut r = FrameReader::new(64);
    /// r.set_max_frame(4096);
    /// assert_eq!(r.max_frame(), 4096);
    /// ```
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
    }

    /// Bytes received but not yet returned as frames.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::wire::FrameReader;
    /// let mut r = FrameReader::new(64);
    /// r.push(&[1, 0, 0]);
    /// assert_eq!(r.buffered(), 3);
    /// ```
    pub fn buffered(&self) -> usize {
        self.tail - self.head
    }

    /// Bytes of receive buffer the reader holds now (what a connection costs in it).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::wire::FrameReader;
    /// assert_eq!(FrameReader::new(64).allocated(), 0);
    /// ```
    pub fn allocated(&self) -> usize {
        self.buf.len()
    }

    /// Length of the body of the frame at the head, if its prefix has arrived.
    fn pending_len(&self) -> Option<usize> {
        if self.tail - self.head < LEN_PREFIX {
            return None;
        }
        let mut prefix = [0; LEN_PREFIX];
        prefix.copy_from_slice(&self.buf[self.head..self.head + LEN_PREFIX]);
        Some(u32::from_le_bytes(prefix) as usize)
    }

    /// Makes room for at least `want` more bytes after `tail`.
    fn reserve(&mut self, want: usize) {
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
            if self.buf.len() > SHRINK_ABOVE && want <= MIN_READ {
                // Give back the room a huge frame needed once.
                self.buf = Vec::new();
            }
        }
        if self.buf.len() - self.tail >= want {
            return;
        }
        if self.head > 0 {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        if self.buf.len() - self.tail < want {
            self.buf.resize(self.tail + want, 0);
        }
    }

    /// How much room the next read should offer.
    ///
    /// The rest of the pending frame, but never more than what is already buffered (so the
    /// buffer at most doubles per read, and a length prefix alone, honest or hostile, costs
    /// no more than the bytes that really arrived), and at least [`MIN_READ`] so that small
    /// pipelined frames arrive many per read. Neither bound exceeds one whole frame of the
    /// maximum size, which keeps a reader with a small maximum (the handshake's) small.
    fn read_hint(&self) -> usize {
        let whole = LEN_PREFIX + self.max_frame as usize;
        let floor = MIN_READ.min(whole);
        let missing = match self.pending_len() {
            Some(len) if len <= self.max_frame as usize => {
                (LEN_PREFIX + len).saturating_sub(self.buffered())
            }
            _ => 0,
        };
        missing.min(self.buffered()).max(floor)
    }

    /// Gives back the whole buffer when no bytes are waiting in it, so an idle connection
    /// holds no receive buffer at all (the next read allocates a small one again).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::wire::FrameReader;
    /// let mut r = FrameReader::new(64);
    /// let mut input: &[u8] = &[1, 0, 0, 0, 7];
    /// r.read_from(&mut input).unwrap();
    /// assert!(r.allocated() > 0);
    /// assert_eq!(r.next_frame().unwrap(), Some(&[7][..]));
    /// r.release();
    /// assert_eq!(r.allocated(), 0);
    /// ```
    pub fn release(&mut self) {
        if self.head == self.tail {
            self.buf = Vec::new();
            self.head = 0;
            self.tail = 0;
        }
    }

    /// Reads once from `r` into the buffer; returns the byte count (0 at end of stream).
    ///
    /// # Errors
    /// Whatever `r.read` returns (`WouldBlock` on a non-blocking socket with nothing to read).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::wire::FrameReader;
    /// let mut r = FrameReader::new(64);
    /// let mut input: &[u8] = &[2, 0, 0, 0, 7, 8];
    /// assert_eq!(r.read_from(&mut input).unwrap(), 6);
    /// assert_eq!(r.next_frame().unwrap(), Some(&[7, 8][..]));
    /// ```
    pub fn read_from(&mut self, mut r: impl Read) -> io::Result<usize> {
        self.reserve(self.read_hint());
        let n = r.read(&mut self.buf[self.tail..])?;
        self.tail += n;
        Ok(n)
    }

    /// Appends `bytes` as if they had been read.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::wire::FrameReader;
    /// let mut r = FrameReader::new(64);
    /// r.push(&[0, 0, 0, 0]);
    /// assert_eq!(r.next_frame().unwrap(), Some(&[][..])); // an empty frame
    /// ```
    pub fn push(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.buf[self.tail..self.tail + bytes.len()].copy_from_slice(bytes);
        self.tail += bytes.len();
    }

    /// Takes the next complete frame body, `None` if it has not fully arrived.
    ///
    /// # Errors
    /// [`Error::Protocol`] when the announced length exceeds the maximum; the reader stays
    /// in that state (the stream cannot be resynchronised).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::wire::FrameReader;
    /// let mut r = FrameReader::new(64);
    /// r.push(&[1, 0, 0, 0, 42, 1, 0, 0, 0, 43]);
    /// assert_eq!(r.next_frame().unwrap(), Some(&[42][..]));
    /// assert_eq!(r.next_frame().unwrap(), Some(&[43][..]));
    /// assert_eq!(r.next_frame().unwrap(), None);
    /// ```
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>> {
        let Some(len) = self.pending_len() else {
            return Ok(None);
        };
        if len > self.max_frame as usize {
            return Err(Error::Protocol(format!(
                "frame of {len} bytes exceeds the maximum of {}",
                self.max_frame
            )));
        }
        if self.buffered() < LEN_PREFIX + len {
            return Ok(None);
        }
        let start = self.head + LEN_PREFIX;
        self.head = start + len;
        self.last = start;
        Ok(Some(&self.buf[start..start + len]))
    }

    /// Takes the body [`FrameReader::next_frame`] last returned out of the reader, as a
    /// buffer and the body's range in it, so a consumer can keep borrowing from it after the
    /// reader reads on; `spare` (any buffer, say one given back earlier) takes its place.
    /// Copies whichever is smaller: the bytes buffered after the body (into `spare`, which
    /// becomes the reader's buffer, while the body leaves in the old one) or the body itself
    /// (into `spare`, which is returned). So a large frame leaves without being copied.
    /// Called before any `next_frame`, or twice for one frame, it returns an empty body.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::wire::FrameReader;
    /// let mut r = FrameReader::new(64);
    /// r.push(&[3, 0, 0, 0, 7, 8, 9, 1, 0]);
    /// assert_eq!(r.next_frame().unwrap(), Some(&[7, 8, 9][..]));
    /// let (buf, body) = r.take_frame(Vec::new());
    /// assert_eq!(&buf[body], &[7, 8, 9]);
    /// r.push(&[0, 0, 5]); // the rest of the second frame
    /// assert_eq!(r.next_frame().unwrap(), Some(&[5][..]));
    /// ```
    pub fn take_frame(&mut self, mut spare: Vec<u8>) -> (Vec<u8>, Range<usize>) {
        let body = self.last.min(self.head)..self.head;
        self.last = self.head; // a second take finds an empty body
        let rest = self.tail - self.head;
        if body.len() <= rest {
            spare.clear();
            spare.extend_from_slice(&self.buf[body]);
            let len = spare.len();
            return (spare, 0..len);
        }
        if spare.len() < rest {
            spare.resize(rest, 0);
        }
        spare[..rest].copy_from_slice(&self.buf[self.head..self.tail]);
        let old = std::mem::replace(&mut self.buf, spare);
        (self.head, self.tail, self.last) = (0, rest, 0);
        (old, body)
    }

    /// How many complete frames are buffered, counting no further than `limit`.
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::wire::FrameReader;
    /// let mut r = FrameReader::new(64);
    /// r.push(&[1, 0, 0, 0, 42, 0, 0, 0, 0, 9, 0]);
    /// assert_eq!(r.complete_frames(10), 2); // the third has not fully arrived
    /// assert_eq!(r.complete_frames(1), 1);
    /// ```
    pub fn complete_frames(&self, limit: usize) -> usize {
        let mut at = self.head;
        let mut n = 0;
        while n < limit && self.tail - at >= LEN_PREFIX {
            let mut prefix = [0; LEN_PREFIX];
            prefix.copy_from_slice(&self.buf[at..at + LEN_PREFIX]);
            let len = u32::from_le_bytes(prefix) as usize;
            if len > self.max_frame as usize || self.tail - at - LEN_PREFIX < len {
                break;
            }
            at += LEN_PREFIX + len;
            n += 1;
        }
        n
    }

    /// Whether a partial frame is buffered (so an end of stream now truncates it).
    ///
    /// # Examples
    ///
    /// ```
    /// use aifm_core::wire::FrameReader;
    /// let mut r = FrameReader::new(64);
    /// r.push(&[5, 0]);
    /// assert!(r.has_partial());
    /// ```
    pub fn has_partial(&self) -> bool {
        self.buffered() > 0
    }
}
