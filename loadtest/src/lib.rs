//! `rampart-loadtest`: a load generator for any RESP endpoint (Rampart's
//! proxy or a plain redis-server).
//!
//! - [`bench`]: redis-benchmark/memtier-like runs: connections × pipeline
//!   depth, a weighted mix of command templates ([`workload`]), duration or
//!   request count, HdrHistogram percentiles ([`report`]).
//! - [`populate`]: fills one big collection for reads on huge keys.
//! - [`conn`]: the small pipelined RESP client both use (and the incident
//!   scenario will use: it binds source addresses and decodes replies).

pub mod bench;
pub mod conn;
pub mod populate;
pub mod progress;
pub mod report;
pub mod workload;
