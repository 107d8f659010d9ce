//! Evacuation handlers and data-structure ids: how a structure tells the runtime what it knows.
//!
//! A data structure registers itself with [`Runtime::register_structure`](crate::Runtime::register_structure), naming the remote
//! device type that serves it in far memory and, optionally, an [`EvacuationHandler`]. It gets
//! back a [`Structure`] handle carrying its id; objects allocated with that id
//! ([`RemBox::new_in_structure`](crate::RemBox::new_in_structure)) are evacuated through the
//! handler. Dropping the handle (and the
//! last arena of the structure, if any) destroys the structure in far memory and releases the id.
//!
//! The items live where the layers need them (the handler trait below the runtime's shared
//! state, the handle beside the runtime handle); this module gathers them for structure authors.

pub use crate::evacuation_handler::{EvacuationHandler, ObjectView, PinView, WriteBack};
pub use crate::runtime::Structure;
