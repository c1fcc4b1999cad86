//! The Raft layer: openraft types, the log store and state machine over the
//! engine, and the gRPC network between nodes.
//!
//! State machine modules (each depends only on those listed after it):
//! - `state_machine`: applies committed entries (openraft's
//!   `RaftStateMachine`);
//! - `snapshot_store`: builds, installs and records snapshots;
//! - `snapshot_format`: a snapshot's byte stream (written and read
//!   without holding the data set);
//! - `snapshot_file`: a snapshot's bytes in a file beside the DB, the file
//!   handle openraft sends and receives chunks through;
//! - `clock`: the never-decreasing applied time (docs/time.md);
//! - `dedup`: request-id deduplication of retried writes;
//! - `sm_meta`: applied state in `sm_meta` and shared helpers.

pub mod clock;
pub mod commit_clock;
pub mod dedup;
pub mod log_store;
pub mod network;
mod sm_meta;
pub mod snapshot_file;
pub mod snapshot_format;
pub mod snapshot_store;
pub mod state_machine;
pub mod types;

pub use types::{NodeId, NodeInfo, Op, Raft, Request, Response, TypeConfig};
