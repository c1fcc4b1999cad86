//! The storage engine: one RocksDB instance holding the Raft log and the Redis
//! data in separate column families, behind a narrow API.
//!
//! One DB (not two) on purpose: a single WAL means the synced write of a Raft
//! log append also makes every earlier state-machine write durable.
//!
//! CONTRACT (shared by `commands/` and `raft/`; change only together):
//! - `Engine::open(dir)` opens/creates the DB with all column families in
//!   [`cf`].
//! - `commands/` reads through [`ReadView`] (point-in-time reads for one
//!   command) and writes through [`Txn`] (an overlay: reads see the txn's own
//!   earlier writes; nothing reaches RocksDB until the state machine commits).
//! - `raft/` turns a `Txn` into a `rocksdb::WriteBatch` with
//!   [`Txn::into_write_batch`], adds its own `sm_meta`/`dedup` writes, and
//!   writes the batch atomically.

pub mod keys;
pub mod meta;
mod txn;

use std::path::Path;
use std::sync::Arc;

pub use txn::Txn;

/// Column family names.
pub mod cf {
    /// Raft log entries, keyed by big-endian index.
    pub const RAFT_LOG: &str = "raft_log";
    /// Raft vote, committed index, last purged log id.
    pub const RAFT_META: &str = "raft_meta";
    /// Redis data: meta records, sub-keys, expiry index, counters.
    pub const DATA: &str = "data";
    /// State machine bookkeeping: last applied log id, membership.
    pub const SM_META: &str = "sm_meta";
    /// Replies of applied writes by (client id, seq, part), for retries.
    pub const DEDUP: &str = "dedup";
    pub const ALL: &[&str] = &[RAFT_LOG, RAFT_META, DATA, SM_META, DEDUP];
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

pub type DB = rocksdb::DB;

/// Cheap to clone; all clones share one RocksDB instance.
#[derive(Clone)]
pub struct Engine {
    db: Arc<DB>,
}

impl Engine {
    pub fn open(dir: &Path) -> Result<Engine, EngineError> {
        let _ = dir;
        todo!("engine helper")
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    pub fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("column family opened at start")
    }

    /// A read view for executing read commands (reads the latest applied
    /// state; one command runs against one view).
    pub fn read_view(&self) -> ReadView<'_> {
        todo!("engine helper")
    }

    /// Starts a write transaction for applying one Raft entry.
    pub fn txn(&self) -> Txn<'_> {
        todo!("engine helper")
    }

    /// All key/value pairs of the DATA column family in key order, taken from
    /// one consistent RocksDB snapshot (for building a Raft snapshot).
    pub fn export_data(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, EngineError> {
        todo!("engine helper")
    }

    /// Adds to `batch` the writes that replace the whole DATA column family
    /// with `pairs` (for installing a Raft snapshot).
    pub fn import_data_into(
        &self,
        batch: &mut rocksdb::WriteBatch,
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    ) {
        let _ = (batch, pairs);
        todo!("engine helper")
    }

    /// Up to `limit` user keys whose TTL is at or before `now_ms`, from the
    /// expiry index (for the leader's active expiry).
    pub fn expired_keys(&self, now_ms: i64, limit: usize) -> Result<Vec<Vec<u8>>, EngineError> {
        let _ = (now_ms, limit);
        todo!("engine helper")
    }
}

/// Read access to the applied data for one read command.
pub struct ReadView<'a> {
    engine: &'a Engine,
}
