//! The one error type of the runtime.
//!
//! Every fallible operation of aifm-rs returns [`Error`]. Panicking twins (`RemBox::new`,
//! `deref`, ...) call the `try_*` form and panic with its `Display` text, so the two never drift.

use std::fmt;

/// Errors of the aifm-rs runtime and its backends.
///
/// # Examples
///
/// ```
/// use aifm_core::Error;
/// let e = Error::ServerFull { needed: 4096 };
/// assert!(e.is_server_full());
/// assert_eq!(e.to_string(), "far memory is full (a write of 4096 bytes was refused)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The far-memory server cannot be reached (or went away mid-request).
    Disconnected(String),
    /// A request did not complete within the configured timeout.
    Timeout,
    /// The far store refused a write: its capacity (or this client's quota) is used up.
    /// Nothing already stored was harmed.
    ServerFull {
        /// Bytes the refused write needed.
        needed: u64,
    },
    /// The server refused our credentials.
    AuthFailed(String),
    /// The far store does not hold the object asked for.
    NotFound,
    /// No remote device of this type is registered on the server.
    UnknownDevice(String),
    /// The device does not implement this opcode.
    UnknownOpcode(u32),
    /// The data structure id does not exist (never constructed, or destructed).
    UnknownStructure(u32),
    /// A frame or message broke the protocol (malformed, truncated, oversized, wrong version).
    Protocol(String),
    /// An object could not be encoded or decoded on its way to or from far memory.
    Codec(String),
    /// The object is larger than one local-heap region can hold.
    ObjectTooLarge {
        /// Size of the object (header included).
        size: usize,
        /// The largest object a region holds.
        max: usize,
    },
    /// Local memory and its bounded overdraft are exhausted inside a dereference scope.
    /// End (or `renew`) long-lived scopes so the evacuator can make room.
    LocalMemoryExhausted,
    /// The object was detached by its data structure's evacuation handler; the structure
    /// (not the runtime) knows where it lives now.
    Detached,
    /// A device or backend reported a failure of its own.
    Remote(String),
    /// The runtime was configured with an invalid setting.
    Config(String),
    /// The backend or device does not offer this operation (listing keys of a device that
    /// cannot enumerate them, say). Nothing was changed.
    Unsupported(String),
    /// User code (`FarData::decode`, `encode` or `heap_bytes`, an evacuation handler)
    /// panicked while the runtime worked on an object; the object was left as it was before
    /// (remote objects stay remote, local ones local and intact). Holds the panic's message.
    Panicked(String),
}

impl Error {
    /// True for [`Error::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_core::Error::Disconnected("gone".into()).is_disconnected());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Error::Disconnected(_))
    }
    /// True for [`Error::ServerFull`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!aifm_core::Error::Timeout.is_server_full());
    /// ```
    pub fn is_server_full(&self) -> bool {
        matches!(self, Error::ServerFull { .. })
    }
    /// True for [`Error::NotFound`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_core::Error::NotFound.is_not_found());
    /// ```
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound)
    }
    /// True for [`Error::Unsupported`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aifm_core::Error::Unsupported("keys".into()).is_unsupported());
    /// ```
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Error::Unsupported(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Disconnected(why) => write!(f, "far-memory server disconnected: {why}"),
            Error::Timeout => f.write_str("far-memory request timed out"),
            Error::ServerFull { needed } => {
                write!(
                    f,
                    "far memory is full (a write of {needed} bytes was refused)"
                )
            }
            Error::AuthFailed(why) => write!(f, "authentication failed: {why}"),
            Error::NotFound => f.write_str("object not found in far memory"),
            Error::UnknownDevice(name) => write!(f, "unknown remote device type {name:?}"),
            Error::UnknownOpcode(op) => write!(f, "unknown remote-device opcode {op}"),
            Error::UnknownStructure(id) => write!(f, "unknown data structure id {id}"),
            Error::Protocol(why) => write!(f, "protocol error: {why}"),
            Error::Codec(why) => write!(f, "object encoding error: {why}"),
            Error::ObjectTooLarge { size, max } => {
                write!(
                    f,
                    "object of {size} bytes exceeds the largest local object ({max} bytes)"
                )
            }
            Error::LocalMemoryExhausted => f.write_str(
                "local memory exhausted inside a dereference scope (end or renew long scopes)",
            ),
            Error::Detached => f.write_str("object was detached by its data structure"),
            Error::Remote(why) => write!(f, "remote failure: {why}"),
            Error::Config(why) => write!(f, "invalid configuration: {why}"),
            Error::Unsupported(what) => write!(f, "unsupported operation: {what}"),
            Error::Panicked(msg) => write!(f, "user code panicked: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for `Result<T, aifm_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
