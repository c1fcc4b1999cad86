use super::{Engine, EngineError};

/// Write transaction for one Raft entry: an overlay over RocksDB whose reads
/// see its own writes. Filled in by the engine helper.
pub struct Txn<'a> {
    engine: &'a Engine,
}

impl<'a> Txn<'a> {
    /// The atomic batch of everything written; the caller adds its own
    /// bookkeeping and writes it.
    pub fn into_write_batch(self) -> Result<rocksdb::WriteBatch, EngineError> {
        let _ = self.engine;
        todo!("engine helper")
    }
}
