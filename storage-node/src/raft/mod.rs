//! The Raft layer: openraft types, the RocksDB log store and state machine,
//! and the gRPC network between nodes.

pub mod commit_clock;
pub mod log_store;
pub mod network;
pub mod snapshot_file;
pub mod state_machine;
pub mod types;

pub use types::{NodeId, NodeInfo, Op, Raft, Request, Response, TypeConfig};
