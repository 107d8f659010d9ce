//! # aifm: far memory for Rust programs, integrated into the application
//!
//! This facade re-exports the workspace: the runtime ([`core`], also at the top level), the
//! remoteable collections ([`collections`]) and, with the feature `server`, the memory server's
//! library (`server`, to embed a server in a program; the `aifm-server` binary is its own
//! package).
//!
//! ```
//! use aifm::{RemBox, Scope};
//! let b = RemBox::new(vec![1u32, 2, 3]);
//! assert_eq!(b.deref(&Scope::new()).len(), 3);
//! ```
#![warn(missing_docs)]

pub use aifm_collections as collections;
pub use aifm_core as core;
pub use aifm_core::*;
#[cfg(feature = "server")]
pub use aifm_server as server;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
