//! Remoteable collections for aifm-rs: `RemVec`, `RemHashMap`, `RemList`, `RemQueue`.
//!
//! Each collection keeps its client side and its server-side device in one module. (Under
//! construction: see the collections issue.)
#![warn(missing_docs)]
