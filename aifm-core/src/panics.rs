//! Containing panics of user code the runtime calls while it holds an object.
//!
//! The runtime calls user code (`FarData::decode`/`encode`/`heap_bytes`, `Drop`, evacuation
//! handlers) while it owns an object exclusively: its word is `BUSY`, or its header is still
//! being built. A panic unwinding through such a section would leave the word `BUSY` (every
//! later dereference and the evacuator's mark spin on it forever) or the header half built.
//! So every such call goes through [`contain`], and the caller restores the object's state
//! before it reports the panic: as [`Error::Panicked`] where it can return an error, by
//! resuming the unwind where it cannot (a `Drop`), or, on the evacuator's own thread, by
//! counting it and keeping the object local (`Stats::evacuation_panics`).

use crate::error::Error;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A caught panic's payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// Runs `f`, catching a panic. `f` only ever touches an object the caller owns exclusively
/// and restores before reporting the panic, so no broken invariant is observed afterwards
/// (hence the `AssertUnwindSafe`).
#[inline]
pub(crate) fn contain<R>(f: impl FnOnce() -> R) -> Result<R, Payload> {
    catch_unwind(AssertUnwindSafe(f))
}

/// The message of a panic payload (`panic!` with a literal or a formatted string).
pub(crate) fn message(payload: &Payload) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// A caught panic as an error.
pub(crate) fn to_error(payload: Payload) -> Error {
    Error::Panicked(message(&payload))
}
