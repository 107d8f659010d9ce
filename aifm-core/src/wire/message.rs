//! The messages of the protocol.

use super::{MAGIC, VERSION};
use crate::error::Error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A byte string on the wire: encoded as one length and the raw bytes, decoded borrowed from
/// the receive buffer (no per-byte work, no copy).
///
/// # Examples
///
/// ```
/// use aifm_core::wire::Blob;
/// let bytes = postcard::to_allocvec(&Blob(b"abc")).unwrap();
/// assert_eq!(bytes, [3, b'a', b'b', b'c']);
/// let back: Blob<'_> = postcard::from_bytes(&bytes).unwrap();
/// assert_eq!(back.0, b"abc");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Blob<'a>(pub &'a [u8]);

impl fmt::Debug for Blob<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Serialize for Blob<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Blob<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de [u8]>::deserialize(d).map(Blob)
    }
}

/// A session: names one client namespace on the server across reconnections.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::SessionId;
/// assert_eq!(SessionId([0xab; 16]).to_string(), "abababababababababababababababab");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct SessionId(pub [u8; 16]);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// What resuming a session takes: its id and a secret that only the session's owner has.
///
/// The server draws the secret (32 bytes from the operating system's random source) when it
/// creates the session and hands it over once, in the [`Welcome`] of an authenticated login;
/// a [`Login::resume`] is honoured only when the secret matches (compared in constant time).
/// The id alone names a session in the owner's own logs and error messages and is worth
/// nothing to anyone else. `Debug` never shows the secret.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::{ResumeTicket, SessionId};
/// let t = ResumeTicket { session: SessionId([1; 16]), secret: [9; 32] };
/// assert!(!format!("{t:?}").contains("9, 9"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeTicket {
    /// The session to resume.
    pub session: SessionId,
    /// The session's secret.
    pub secret: [u8; 32],
}

impl fmt::Debug for ResumeTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumeTicket")
            .field("session", &self.session)
            .field("secret", &"<secret>")
            .finish()
    }
}

/// The client's first frame. Its layout (magic, then version) never changes.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::ClientHello;
/// assert_eq!(ClientHello::current().version, aifm_core::wire::VERSION);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The protocol version the client speaks.
    pub version: u16,
}

impl ClientHello {
    /// The hello of this crate's version.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = aifm_core::wire::ClientHello::current();
    /// assert_eq!(h.magic, *b"AIFM");
    /// ```
    pub fn current() -> Self {
        ClientHello {
            magic: MAGIC,
            version: VERSION,
        }
    }
}

/// The server's answer to a hello.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::Challenge;
/// let c = Challenge { version: 1, nonce: None, max_frame: 1 << 20 };
/// assert!(c.nonce.is_none()); // no token configured: no proof needed
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The protocol version the server will speak on this connection.
    pub version: u16,
    /// A fresh random nonce to prove the token against; `None` when the server has no token.
    pub nonce: Option<[u8; 32]>,
    /// The largest frame body the server accepts.
    pub max_frame: u32,
}

/// The client's second frame: its proof and the session it wants back.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::Login;
/// let l = Login { proof: None, resume: None };
/// assert_eq!(postcard::to_allocvec(&l).unwrap(), [0, 0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// HMAC-SHA256 of the challenge nonce under the token (see [`super::auth`]).
    pub proof: Option<[u8; 32]>,
    /// The session of an earlier connection to resume, with its secret (from that
    /// connection's [`Welcome`]).
    pub resume: Option<ResumeTicket>,
}

/// The server's acceptance of a login.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::{ResumeTicket, SessionId, Welcome};
/// let ticket = ResumeTicket { session: SessionId([1; 16]), secret: [2; 32] };
/// let w = Welcome { ticket, resumed: false, quota: 1 << 30 };
/// assert!(!w.resumed);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// This connection's session and its secret: quote both in a later [`Login::resume`],
    /// and keep the secret as private as the data.
    pub ticket: ResumeTicket,
    /// Whether the requested session was resumed (its objects are intact).
    pub resumed: bool,
    /// Bytes this session may store.
    pub quota: u64,
}

/// One operation of a request frame.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::{Blob, Op};
/// let op = Op::Write { ds: 0, key: Blob(b"k"), value: Blob(b"v") };
/// assert_eq!(op.kind(), "write");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op<'a> {
    /// Liveness check; answered with [`Reply::Pong`].
    Ping,
    /// Read one object.
    Read {
        /// Structure id.
        ds: u32,
        /// Object key.
        #[serde(borrow)]
        key: Blob<'a>,
    },
    /// Store one object.
    Write {
        /// Structure id.
        ds: u32,
        /// Object key.
        #[serde(borrow)]
        key: Blob<'a>,
        /// Encoded object.
        #[serde(borrow)]
        value: Blob<'a>,
    },
    /// Remove one object.
    Remove {
        /// Structure id.
        ds: u32,
        /// Object key.
        #[serde(borrow)]
        key: Blob<'a>,
    },
    /// Read many objects of one structure (prefetch).
    ReadMany {
        /// Structure id.
        ds: u32,
        /// Object keys.
        #[serde(borrow)]
        keys: Vec<Blob<'a>>,
    },
    /// Store many objects of one structure (write-back).
    WriteMany {
        /// Structure id.
        ds: u32,
        /// Keys and encoded objects.
        #[serde(borrow)]
        items: Vec<(Blob<'a>, Blob<'a>)>,
    },
    /// Remove many objects of one structure.
    RemoveMany {
        /// Structure id.
        ds: u32,
        /// Object keys.
        #[serde(borrow)]
        keys: Vec<Blob<'a>>,
    },
    /// Create a structure served by a remote device type.
    Construct {
        /// Structure id.
        ds: u32,
        /// Device type name.
        device: &'a str,
        /// Construction parameters.
        #[serde(borrow)]
        params: Blob<'a>,
    },
    /// Destroy a structure and everything it stores.
    Destruct {
        /// Structure id.
        ds: u32,
    },
    /// Run a device operation next to the data.
    Compute {
        /// Structure id.
        ds: u32,
        /// Device opcode.
        opcode: u32,
        /// Operation input.
        #[serde(borrow)]
        input: Blob<'a>,
    },
    /// Bytes stored by this session.
    StoredBytes,
    /// Server statistics.
    Stats,
    /// One page of the keys of a structure: the keys greater than `after` (all keys when
    /// `None`) in bytewise order, at most `limit` of them (the server may return fewer to fit
    /// a frame; an empty page means there are no more). Answered with [`Reply::Keys`].
    Keys {
        /// Structure id.
        ds: u32,
        /// The last key of the previous page.
        #[serde(borrow)]
        after: Option<Blob<'a>>,
        /// Most keys wanted (positive).
        limit: u32,
    },
}

impl Op<'_> {
    /// A short name for logs and statistics.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(aifm_core::wire::Op::Stats.kind(), "stats");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::Read { .. } => "read",
            Op::Write { .. } => "write",
            Op::Remove { .. } => "remove",
            Op::ReadMany { .. } => "read_many",
            Op::WriteMany { .. } => "write_many",
            Op::RemoveMany { .. } => "remove_many",
            Op::Construct { .. } => "construct",
            Op::Destruct { .. } => "destruct",
            Op::Compute { .. } => "compute",
            Op::StoredBytes => "stored_bytes",
            Op::Stats => "stats",
            Op::Keys { .. } => "keys",
        }
    }
}

/// A successful answer to an [`Op`].
///
/// # Examples
///
/// ```
/// use aifm_core::wire::{Blob, Reply};
/// let r = Reply::Value(Some(Blob(b"v")));
/// assert_ne!(r, Reply::Value(None));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply<'a> {
    /// To [`Op::Ping`].
    Pong,
    /// The operation succeeded and returns nothing.
    Done,
    /// To [`Op::Read`].
    Value(#[serde(borrow)] Option<Blob<'a>>),
    /// To [`Op::Remove`]: whether the object existed.
    Removed(bool),
    /// To [`Op::ReadMany`], in key order.
    Values(#[serde(borrow)] Vec<Option<Blob<'a>>>),
    /// To [`Op::Compute`].
    Output(#[serde(borrow)] Blob<'a>),
    /// To [`Op::StoredBytes`].
    Bytes(u64),
    /// To [`Op::Stats`].
    Stats(ServerStats),
    /// To [`Op::Keys`]: one page of keys, in increasing bytewise order.
    Keys(#[serde(borrow)] Vec<Blob<'a>>),
}

/// A [`Reply`] that owns its bytes: what the server builds before encoding it, and what the
/// client keeps after decoding it.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::{Answer, Reply};
/// let a = Answer::Value(Some(b"v".to_vec()));
/// let back = Answer::from(a.as_reply());
/// assert!(matches!(back, Answer::Value(Some(v)) if v == b"v"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// [`Reply::Pong`].
    Pong,
    /// [`Reply::Done`].
    Done,
    /// [`Reply::Value`].
    Value(Option<Vec<u8>>),
    /// [`Reply::Removed`].
    Removed(bool),
    /// [`Reply::Values`].
    Values(Vec<Option<Vec<u8>>>),
    /// [`Reply::Output`].
    Output(Vec<u8>),
    /// [`Reply::Bytes`].
    Bytes(u64),
    /// [`Reply::Stats`].
    Stats(ServerStats),
    /// [`Reply::Keys`].
    Keys(Vec<Vec<u8>>),
}

impl From<Reply<'_>> for Answer {
    fn from(r: Reply<'_>) -> Self {
        match r {
            Reply::Pong => Answer::Pong,
            Reply::Done => Answer::Done,
            Reply::Value(v) => Answer::Value(v.map(|b| b.0.to_vec())),
            Reply::Removed(b) => Answer::Removed(b),
            Reply::Values(vs) => {
                Answer::Values(vs.into_iter().map(|v| v.map(|b| b.0.to_vec())).collect())
            }
            Reply::Output(b) => Answer::Output(b.0.to_vec()),
            Reply::Bytes(n) => Answer::Bytes(n),
            Reply::Stats(s) => Answer::Stats(s),
            Reply::Keys(ks) => Answer::Keys(ks.into_iter().map(|k| k.0.to_vec()).collect()),
        }
    }
}

impl Answer {
    /// The borrowed form, for encoding.
    pub fn as_reply(&self) -> Reply<'_> {
        match self {
            Answer::Pong => Reply::Pong,
            Answer::Done => Reply::Done,
            Answer::Value(v) => Reply::Value(v.as_deref().map(Blob)),
            Answer::Removed(b) => Reply::Removed(*b),
            Answer::Values(vs) => {
                Reply::Values(vs.iter().map(|v| v.as_deref().map(Blob)).collect())
            }
            Answer::Output(v) => Reply::Output(Blob(v)),
            Answer::Bytes(n) => Reply::Bytes(*n),
            Answer::Stats(s) => Reply::Stats(*s),
            Answer::Keys(ks) => Reply::Keys(ks.iter().map(|k| Blob(k)).collect()),
        }
    }
}

/// A server-to-client frame.
///
/// # Examples
///
/// ```
/// use aifm_core::wire::{Reply, ServerMsg};
/// let m = ServerMsg::Response { id: 3, result: Ok(Reply::Done) };
/// let body = postcard::to_allocvec(&m).unwrap();
/// assert_eq!(aifm_core::wire::decode_exact::<ServerMsg<'_>>(&body).unwrap(), m);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg<'a> {
    /// Answer to the hello.
    Challenge(Challenge),
    /// Answer to a successful login.
    Welcome(Welcome),
    /// Answer to the request with this id.
    Response {
        /// The request id.
        id: u64,
        /// The outcome.
        #[serde(borrow)]
        result: Result<Reply<'a>, WireError>,
    },
    /// The connection is over (bad version, bad token, broken frame, shutdown); the server
    /// closes it after this frame.
    Fatal(WireError),
}

/// An error as it travels on the wire (a mirror of the runtime's [`Error`]).
///
/// # Examples
///
/// ```
/// use aifm_core::{wire::WireError, Error};
/// let w = WireError::from(&Error::ServerFull { needed: 10 });
/// assert!(Error::from(w).is_server_full());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    /// [`Error::ServerFull`].
    ServerFull {
        /// Bytes the refused write needed.
        needed: u64,
    },
    /// [`Error::AuthFailed`].
    AuthFailed(String),
    /// [`Error::NotFound`].
    NotFound,
    /// [`Error::UnknownDevice`].
    UnknownDevice(String),
    /// [`Error::UnknownOpcode`].
    UnknownOpcode(u32),
    /// [`Error::UnknownStructure`].
    UnknownStructure(u32),
    /// [`Error::Protocol`].
    Protocol(String),
    /// [`Error::Codec`].
    Codec(String),
    /// The server is going away; becomes [`Error::Disconnected`].
    Shutdown(String),
    /// Anything else; becomes [`Error::Remote`].
    Remote(String),
    /// [`Error::Unsupported`] (added after `Remote`, so older variants keep their tags).
    Unsupported(String),
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        match e {
            Error::ServerFull { needed } => WireError::ServerFull { needed: *needed },
            Error::AuthFailed(s) => WireError::AuthFailed(s.clone()),
            Error::NotFound => WireError::NotFound,
            Error::UnknownDevice(s) => WireError::UnknownDevice(s.clone()),
            Error::UnknownOpcode(op) => WireError::UnknownOpcode(*op),
            Error::UnknownStructure(ds) => WireError::UnknownStructure(*ds),
            Error::Protocol(s) => WireError::Protocol(s.clone()),
            Error::Codec(s) => WireError::Codec(s.clone()),
            Error::Remote(s) => WireError::Remote(s.clone()),
            Error::Unsupported(s) => WireError::Unsupported(s.clone()),
            other => WireError::Remote(other.to_string()),
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::ServerFull { needed } => Error::ServerFull { needed },
            WireError::AuthFailed(s) => Error::AuthFailed(s),
            WireError::NotFound => Error::NotFound,
            WireError::UnknownDevice(s) => Error::UnknownDevice(s),
            WireError::UnknownOpcode(op) => Error::UnknownOpcode(op),
            WireError::UnknownStructure(ds) => Error::UnknownStructure(ds),
            WireError::Protocol(s) => Error::Protocol(s),
            WireError::Codec(s) => Error::Codec(s),
            WireError::Shutdown(s) => Error::Disconnected(s),
            WireError::Remote(s) => Error::Remote(s),
            WireError::Unsupported(s) => Error::Unsupported(s),
        }
    }
}

/// Requests served, by type.
///
/// # Examples
///
/// ```
/// let c = aifm_core::wire::RequestCounts::default();
/// assert_eq!(c.total(), 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Single reads.
    pub read: u64,
    /// Single writes.
    pub write: u64,
    /// Single removes.
    pub remove: u64,
    /// Batched reads (one per batch).
    pub read_many: u64,
    /// Batched writes (one per batch).
    pub write_many: u64,
    /// Batched removes (one per batch).
    pub remove_many: u64,
    /// Structure constructions.
    pub construct: u64,
    /// Structure destructions.
    pub destruct: u64,
    /// Remote-device computations.
    pub compute: u64,
    /// Pings, key listings, stored-bytes and stats requests.
    pub other: u64,
}

impl RequestCounts {
    /// All requests.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = aifm_core::wire::RequestCounts { read: 2, write: 1, ..Default::default() };
    /// assert_eq!(c.total(), 3);
    /// ```
    pub fn total(&self) -> u64 {
        self.read
            + self.write
            + self.remove
            + self.read_many
            + self.write_many
            + self.remove_many
            + self.construct
            + self.destruct
            + self.compute
            + self.other
    }
}

/// A snapshot of a memory server's statistics.
///
/// # Examples
///
/// ```
/// let s = aifm_core::wire::ServerStats::default();
/// assert_eq!(s.requests.total(), 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStats {
    /// Connections open now.
    pub connections: u64,
    /// Sessions held (connected, or detached within the grace period).
    pub sessions: u64,
    /// Live structures over all sessions (each session's object store included).
    pub structures: u64,
    /// Bytes stored over all sessions.
    pub stored_bytes: u64,
    /// The server's capacity in bytes.
    pub capacity_bytes: u64,
    /// Requests served, by type.
    pub requests: RequestCounts,
    /// Requests answered with an error.
    pub errors: u64,
    /// Connections closed for a protocol violation.
    pub protocol_errors: u64,
    /// Logins refused.
    pub auth_failures: u64,
    /// Sessions reclaimed after their grace period.
    pub reclaimed_sessions: u64,
    /// Milliseconds since the server started.
    pub uptime_ms: u64,
}
