//! The aifm-rs memory server: a TCP front end over the core's engine. (Under construction: see
//! the server issue.)
#![warn(missing_docs)]
