//! `rampart-loadtest`: a load generator for any RESP endpoint (Rampart's
//! proxy or a plain redis-server).
//!
//! - [`bench`]: redis-benchmark/memtier-like runs: connections × pipeline
//!   depth, a weighted mix of command templates ([`workload`]), duration or
//!   request count, HdrHistogram percentiles ([`report`]).
//! - [`populate`]: fills one big collection for reads on huge keys.
//! - [`incident`]: the outage of SPEC §1 (big stream, ordinary clients,
//!   an abusive host, the nodes' Raft metrics), as a table, JSON and a plot.
//! - [`conn`]: the small pipelined RESP client all of them use (it binds
//!   source addresses and scans replies incrementally).

pub mod bench;
pub mod chaos;
pub mod conn;
pub mod incident;
pub mod populate;
pub mod progress;
pub mod report;
pub mod workload;
