//! Redis command execution on the node, one module per command family.
//!
//! CONTRACT (used by `raft/` and `server/`):
//! - [`is_write`]: whether a command must go through the Raft log.
//! - [`execute_read`]: runs a read command against applied state.
//! - [`apply_write`]: applies a write command inside a Raft entry's `Txn`,
//!   deterministically: `now_ms` is the leader's clock stamped into the entry.
//! - [`apply_expire`]: deletes the given keys if they are expired at `now_ms`
//!   (the leader's active expiry, replicated through the log).
//! Every function returns the Redis reply; errors are replies, never panics.

use rampart_proto::Reply;

use crate::engine::{Engine, Txn};

/// Whether `argv` (name first) is a write that must be replicated.
/// Unknown commands count as reads (they are answered with an error).
pub fn is_write(argv: &[Vec<u8>]) -> bool {
    argv.first()
        .and_then(|name| rampart_proto::command_table::lookup(name))
        .map(|spec| spec.is_write())
        .unwrap_or(false)
}

pub fn execute_read(engine: &Engine, argv: &[Vec<u8>], now_ms: i64) -> Reply {
    let _ = (engine, argv, now_ms);
    todo!("commands helper")
}

pub fn apply_write(txn: &mut Txn<'_>, argv: &[Vec<u8>], now_ms: i64) -> Reply {
    let _ = (txn, argv, now_ms);
    todo!("commands helper")
}

pub fn apply_expire(txn: &mut Txn<'_>, keys: &[Vec<u8>], now_ms: i64) {
    let _ = (txn, keys, now_ms);
    todo!("commands helper")
}
