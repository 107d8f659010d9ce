//! Shared helpers of the facade's integration tests.

pub mod redis_cluster;
