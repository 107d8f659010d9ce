//! # aifm-core: application-integrated far memory for Rust
//!
//! The runtime of aifm-rs. Objects live behind remoteable pointers ([`RemBox`]); while local
//! they sit in a bounded, log-structured local heap; when local memory runs low a pauseless
//! evacuator moves cold objects out to far memory (a [`Backend`]: the embedded store by
//! default, or a memory server), and a dereference brings them back.
//!
//! ```
//! use aifm_core::{RemBox, Runtime, Scope};
//! // 4 MiB of local memory for 16 MiB of objects.
//! let rt = Runtime::builder().local_memory(4 << 20).build().unwrap();
//! let boxes: Vec<RemBox<[u64; 128]>> = (0..16 * 1024).map(|i| RemBox::new_in([i; 128], &rt)).collect();
//! let mut scope = Scope::new();
//! for (i, b) in boxes.iter().enumerate() {
//!     assert_eq!(b.deref(&scope)[127], i as u64);
//!     scope.renew(); // let the evacuator past now and then
//! }
//! assert!(rt.stats().write_backs > 0 && rt.stats().fetches > 0);
//! ```
//!
//! # Map of the crate
//!
//! | module | what it owns |
//! |---|---|
//! | [`word`] | the bits of a pointer word |
//! | [`scope`] | dereference scopes (epoch guards) and the grace-period wait |
//! | `slots` | never-moving storage for pointer words: runtime slots and arena slots |
//! | [`arena`] | `SlotArena<T>`: pointer words a structure keeps for its own objects, by index |
//! | `heap` | regions, object headers, bump-allocation lanes, the budget |
//! | `state` | a runtime's shared state (`Inner`): allocation lanes, slot pool, pressure, handler table |
//! | `object` | the dereference slow path: fetch, migrate, free |
//! | `evacuator` | the background rounds: mark, wait, compact or write back, free |
//! | `link`, `completion` | the link's measured round trip and throughput; a one-shot answer for a future |
//! | `fetch_queue`, `helper_threads` | tickets and the helpers' tasks; the prefetch helper threads |
//! | [`prefetch`] | latency hiding: stride detector, batched fetches, futures, the runtime's fetch API |
//! | [`rembox`] | the typed `RemBox<T>` API |
//! | [`remarc`] | `RemArc<T>`: shared ownership of one far object |
//! | `panics` | containing panics of user code the runtime calls while it holds an object |
//! | [`sync`] | the one policy for poisoned locks (recover), as `locked`/`reading`/`writing` |
//! | `evacuation_handler` | what a structure's handler sees and answers, the handler table |
//! | [`handlers`] | evacuation handlers and structure ids for data-structure authors (re-exports) |
//! | [`codec`] | how values are encoded when they leave the process |
//! | [`backend`], [`engine`] | where far memory lives, and the code a memory server runs |
//! | [`runtime`] | the public handle and the process-wide default (`mod.rs`), the [`Structure`] handle (`structure.rs`), the builder and environment (`builder.rs`) |
//! | [`wire`] | the memory server's protocol: frames, messages, authentication |
//! | `error` | [`Error`], the one error type of every fallible call |
//! | `stats` | counters and the [`Stats`] snapshot |
//!
//! The modules import each other in layers, without a circle (`scripts/check-layers` checks
//! it; `docs/ARCHITECTURE.md` draws the layers): the shared state sits below `object`, the
//! evacuator and the helper threads, and only `runtime` and the modules built on its handle
//! (`handlers`, `rembox`, `prefetch`, `remarc`, `arena`) sit above them.
#![warn(missing_docs)]

pub mod arena;
pub mod backend;
pub mod codec;
mod completion;
pub mod engine;
mod error;
mod evacuation_handler;
mod evacuator;
mod fetch_queue;
pub mod handlers;
mod heap;
mod helper_threads;
mod link;
mod object;
mod panics;
pub mod prefetch;
pub mod remarc;
pub mod rembox;
pub mod runtime;
pub mod scope;
mod slots;
mod state;
mod stats;
pub mod sync;
pub mod wire;
pub mod word;

pub use backend::{Backend, Placement};
pub use codec::{FarData, Pod, Serde};
pub use error::{Error, Result};
pub use handlers::{EvacuationHandler, ObjectView, PinView, Structure, WriteBack};
pub use remarc::{RemArc, RemWeak};
pub use rembox::RemBox;
pub use runtime::{Runtime, RuntimeBuilder};
pub use scope::Scope;
pub use stats::Stats;
